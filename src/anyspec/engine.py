"""The one decoding loop every method runs.

    committed = prompt ids (target tokenizer)
    loop: proposal = proposer.propose(committed, k)      # target ids (+ their draft laws)
          logits   = target.logits(committed + proposal, k + 1)   # one target pass
          n, next  = verify_chain(proposal, logits)      # the lossless rule, verify/chain.py
          committed += proposal[:n] + [next]

A proposal may be a tree (token i hangs from parents[i]); then the pass is
target.tree_logits and the walk verify_tree, which commits the accepted branch the same way.

Randomness: one `Draws` per generation, keyed by the seed and the absolute position of each
token (noise.py), so sampled output depends on the seed and the target, not on the rounds.

The target's committed ids are the truth; both models' caches follow them by prefix matching
(models/base.py), so no method does cache arithmetic. Stopping (EOS, stop strings, token and
context limits), streaming and per-round statistics live here and nowhere else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

from .control import make_controller
from .errors import AnyspecError, ContextOverflowError
from .models.base import LanguageModel
from .noise import Draws
from .proposers import NoProposer, Proposer
from .sampling import SamplingParams
from .trees import depths
from .verify.chain import verify_chain
from .verify.tree import verify_tree
from .vocab import incomplete_utf8_tail, leading_tokens


@dataclass
class GenerationStats:
    method: str
    rounds: int = 0  # target forward passes after prefill
    new_tokens: int = 0  # tokens in the output (after stopping)
    round_tokens: int = 0  # tokens the rounds committed, before any cut at a stop
    drafted: int = 0
    accepted: int = 0
    accepted_at: list[int] = field(default_factory=list)  # [i]: rounds accepting >= i+1 tokens
    drafted_at: list[int] = field(default_factory=list)  # [i]: rounds drafting >= i+1 tokens
    prefill_seconds: float = 0.0
    draft_seconds: float = 0.0  # draft forward passes during rounds
    target_seconds: float = 0.0  # target forward passes during rounds
    overhead_seconds: float = 0.0  # everything else in rounds: proposing, verifying, text
    total_seconds: float = 0.0  # prefill + rounds
    overhead_ms: list[float] = field(default_factory=list)  # [i]: round i's overhead
    draft_lengths: list[int] = field(default_factory=list)  # [i]: tokens round i verified
    accept_lengths: list[int] = field(default_factory=list)  # [i]: tokens round i committed

    @property
    def mat(self) -> float:
        """Mean tokens committed per target pass (accepted draft tokens plus the bonus)."""
        return self.round_tokens / self.rounds if self.rounds else 0.0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def decode_tokens_per_second(self) -> float:
        rounds_s = self.total_seconds - self.prefill_seconds
        return self.new_tokens / rounds_s if rounds_s > 0 else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.total_seconds if self.total_seconds > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(mat=self.mat, acceptance_rate=self.acceptance_rate,
                 tokens_per_second=self.tokens_per_second,
                 decode_tokens_per_second=self.decode_tokens_per_second)
        return d

    def summary(self) -> str:
        line = (f"{self.new_tokens} tokens in {self.total_seconds:.2f} s "
                f"({self.tokens_per_second:.1f} tok/s, {self.decode_tokens_per_second:.1f} after "
                f"prefill) | {self.method} | MAT {self.mat:.2f}")
        if self.drafted:
            line += f" | acceptance {self.acceptance_rate:.0%} of {self.drafted} drafted"
        return line


@dataclass
class Generation:
    text: str
    token_ids: list[int]  # target ids generated (EOS excluded)
    finish_reason: str  # "stop" (EOS or stop string), "length" (max_new_tokens), "context"
    stats: GenerationStats


PREFILL_CHUNK = 512  # prompt tokens the target reads between two chances to stop


class Stream:
    """Iterates over text pieces as they are committed; `.result` is set when it ends.
    A piece may be empty: the engine is between two chunks of a long prompt's prefill."""

    def __init__(self, pieces: Iterator[str | Generation]) -> None:
        self._pieces = pieces
        self.result: Generation | None = None

    def __iter__(self) -> Iterator[str]:
        for piece in self._pieces:
            if isinstance(piece, Generation):
                self.result = piece
            else:
                yield piece


class SpeculativeGenerator:
    """A target model plus a proposer (None: target only) and a draft-length controller."""

    def __init__(self, target: LanguageModel, proposer: Proposer | None = None,
                 draft_length: str | int = "auto", coupling: str = "auto") -> None:
        self.target = target
        self.proposer = proposer or NoProposer()
        self.draft_length = draft_length
        self.coupling = coupling  # config.COUPLING
        self._learning_controller = None  # auto's, kept from one prompt to the next
        target.tokenizer.bytes_table()  # built now, not in the first round

    @property
    def method(self) -> str:
        return self.proposer.name

    @property
    def draft(self) -> LanguageModel | None:
        return self.proposer.draft

    def generate(self, prompt: str | Sequence[int], max_new_tokens: int = 128,
                 sampling: SamplingParams = SamplingParams(), stop: Sequence[str] = (),
                 on_text: Callable[[str], None] | None = None) -> Generation:
        stream = self.stream(prompt, max_new_tokens, sampling, stop)
        for piece in stream:
            if on_text and piece:
                on_text(piece)
        assert stream.result is not None
        return stream.result

    def stream(self, prompt: str | Sequence[int], max_new_tokens: int = 128,
               sampling: SamplingParams = SamplingParams(), stop: Sequence[str] = ()) -> Stream:
        prompt_ids = self._prompt_ids(prompt)
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise AnyspecError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
        stop = [s for s in stop if s]
        return Stream(self._run(prompt_ids, max_new_tokens, sampling, stop))

    def coupled(self, sampling: SamplingParams) -> bool:
        """Whether a draft that samples shares the target's noise (noise.py). auto: when a
        seed is given, so that it reproduces the target-only text whatever the method and
        draft length; without one, the rejection rule, which accepts more (docs/performance.md)."""
        if self.coupling == "auto":
            return sampling.seed is not None
        return self.coupling == "on"

    def _controller(self, draft: LanguageModel | None):
        """auto keeps what it measured of this pair (costs, acceptance) from one prompt to the
        next, so it can decide before the first round whether the draft is worth running; the
        other controllers start afresh for every prompt, as transformers' do."""
        if self.draft_length not in ("auto", None):
            return make_controller(self.draft_length, self.target, draft)
        if self._learning_controller is None:
            self._learning_controller = make_controller(self.draft_length, self.target, draft)
        return self._learning_controller

    def _prompt_ids(self, prompt: str | Sequence[int]) -> list[int]:
        ids = self.target.tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if not ids:
            raise AnyspecError("the prompt is empty and the target adds no BOS token; give some text")
        if len(ids) >= self.target.n_ctx:
            raise ContextOverflowError(
                f"the prompt is {len(ids)} tokens but {self.target.name} has a context of "
                f"{self.target.n_ctx}, which leaves no room to generate; shorten the prompt or "
                "raise the context size (n_ctx)"
            )
        return ids

    def _run(self, prompt_ids: list[int], max_new_tokens: int, sampling: SamplingParams,
             stop: list[str]) -> Iterator[str | Generation]:
        target, proposer = self.target, self.proposer
        draft = proposer.draft
        controller = self._controller(draft)
        draws = Draws(sampling.seed, coupled=self.coupled(sampling))
        stats = GenerationStats(method=proposer.name)
        text = TextTracker(target.tokenizer, stop)
        eos = target.tokenizer.eos_ids
        committed = list(prompt_ids)
        generated: list[int] = []
        finish = None
        started = time.perf_counter()
        # fill the caches now, so rounds measure decoding only; in chunks, yielding an empty
        # piece after each, so a caller (the server) can abandon a long prompt between them
        for end in range(PREFILL_CHUNK, len(committed) - 1, PREFILL_CHUNK):
            target.logits(committed[:end], n_last=1)
            yield ""
        if len(committed) > 1:
            target.logits(committed[:-1], n_last=1)
        proposer.prefill(committed, warm=controller.start(len(committed), max_new_tokens))
        stats.prefill_seconds = time.perf_counter() - started

        while finish is None:
            round_start = time.perf_counter()
            draft_before = draft.counter.seconds if draft else 0.0
            target_before = target.counter.seconds
            room = min(max_new_tokens - len(generated), target.n_ctx - len(committed))
            # a round commits drafted + 1 tokens at most: draft no more than can be kept
            k = max(0, min(controller.k(), room - 1))
            proposal = proposer.propose(committed, k, sampling, draws)
            n_draft = len(proposal.tokens)
            if proposal.parents is not None and n_draft:  # a tree: one pass, one walk
                depth = depths(proposal.parents)
                if max(depth) > room - 1:
                    raise AnyspecError(f"{proposer.name} drafted a tree {max(depth)} deep "
                                       f"where {room - 1} was the most asked for")
                logits = target.tree_logits(committed, proposal.tokens, proposal.parents)
                path, next_token = verify_tree(proposal.tokens, proposal.parents, proposal.laws,
                                               logits, sampling, draws, len(committed),
                                               in_place=True)  # fresh rows, each read once
                n_ok, n_deep = len(path), max(depth)
                new = [proposal.tokens[i] for i in path] + [next_token]
            else:
                # re-tokenized text can be more target tokens than k: verify what fits
                tokens = proposal.tokens[:room - 1]
                laws = None if proposal.laws is None else proposal.laws[:room - 1]
                n_draft = len(tokens)
                logits = target.logits(committed + tokens, n_last=n_draft + 1)
                n_ok, next_token = verify_chain(tokens, laws, logits, sampling, draws,
                                                len(committed), in_place=True)
                n_deep = n_draft
                new = tokens[:n_ok] + [next_token]
            draft_s = (draft.counter.seconds - draft_before) if draft else 0.0
            target_s = target.counter.seconds - target_before
            controller.observe(n_deep, n_ok, draft_s,
                               time.perf_counter() - round_start - draft_s - target_s)
            _count_round(stats, n_draft, n_deep, n_ok, len(new))

            for tok in new:  # commit one by one: EOS or the token limit may cut the round short
                if tok in eos:
                    finish = "stop"
                    break
                committed.append(tok)
                generated.append(tok)
                if len(generated) >= max_new_tokens:
                    finish = "length"
                    break
                if len(committed) >= target.n_ctx:
                    finish = "context"
                    break
            piece, hit_stop = text.update(generated, final=finish is not None)
            if hit_stop:
                finish = "stop"

            stats.draft_seconds += draft_s
            stats.target_seconds += target_s
            now = time.perf_counter()
            stats.overhead_ms.append(1000 * (now - round_start - draft_s - target_s))
            stats.total_seconds = now - started
            if piece:
                yield piece

        stats.overhead_seconds = (stats.total_seconds - stats.prefill_seconds
                                  - stats.draft_seconds - stats.target_seconds)
        ids = generated[:text.n_tokens_kept] if text.stopped else generated
        stats.new_tokens = len(ids)
        yield Generation(text.text, ids, finish, stats)


def _count_round(stats: GenerationStats, n_draft: int, n_deep: int, n_ok: int,
                 n_new: int) -> None:
    """n_draft: tokens drafted; n_deep: positions they reach (a tree's depth; a chain's length)."""
    stats.rounds += 1
    stats.round_tokens += n_new
    stats.draft_lengths.append(n_draft)
    stats.accept_lengths.append(n_new)
    stats.drafted += n_draft
    stats.accepted += n_ok
    for per_position, n in ((stats.drafted_at, n_deep), (stats.accepted_at, n_ok)):
        per_position.extend([0] * (n - len(per_position)))
        for i in range(n):
            per_position[i] += 1


class TextTracker:
    """Turns the growing list of generated ids into text pieces safe to show.

    Holds back a trailing incomplete UTF-8 character and any tail that could still become a
    stop string, so a streamed client never sees text that is later taken back. Each round
    decodes and searches only what is new, so a long generation costs no more per round.
    """

    def __init__(self, tokenizer, stop: list[str]) -> None:
        self.tokenizer = tokenizer
        self.stop = stop
        self.longest_stop = max(map(len, stop), default=0)
        self.text = ""  # the full text so far (up to a stop string, once one is found)
        self.emitted = 0  # characters of self.text already handed out
        self.stopped = False
        self.n_tokens_kept = 0
        self.data = bytearray()  # the bytes of the ids seen so far, extended each round
        self.n_decoded = 0  # ids whose bytes are in data
        self.n_text_bytes = 0  # bytes of data decoded into text: always a character boundary

    def update(self, ids: list[int], final: bool) -> tuple[str, bool]:
        """ids: the generated ids so far (the list only grows)."""
        if self.stopped:
            return "", True
        self.data += self.tokenizer.decode_bytes(ids[self.n_decoded:])
        self.n_decoded = len(ids)
        data = self.data
        end = len(data) if final else len(data) - incomplete_utf8_tail(data)
        searched = len(self.text)
        if end > self.n_text_bytes:  # decoding from a character boundary: as decoding all
            self.text += data[self.n_text_bytes:end].decode("utf-8", errors="replace")
            self.n_text_bytes = end
        # a stop string found now ends in the new text
        since = max(0, searched - self.longest_stop + 1)
        cut = min((i for i in (self.text.find(s, since) for s in self.stop) if i >= 0),
                  default=-1)
        if cut >= 0:
            self.stopped = True
            self.text = self.text[:cut]
            self.n_tokens_kept = leading_tokens(self.tokenizer.bytes_table(), ids,
                                                len(self.text.encode("utf-8")))[0]
        text = self.text
        safe = len(text) if final or self.stopped else len(text) - _stop_prefix_tail(text, self.stop)
        piece = text[self.emitted:safe] if safe > self.emitted else ""
        self.emitted = max(self.emitted, safe)
        return piece, self.stopped


def _stop_prefix_tail(text: str, stop: list[str]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of some stop string."""
    best = 0
    for s in stop:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
    return best
