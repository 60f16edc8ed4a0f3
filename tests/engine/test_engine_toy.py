"""The engine loop on toy models whose sequence distributions can be enumerated exactly.

Checks that the whole loop (proposing, verifying, committing, the bonus token, cache rollback,
stopping) keeps the target's law over multi-token outputs, not just the first token.
"""

import numpy as np
import pytest
from laws import exact_sequence_law, three_token_law_pvalue
from scipy.stats import chisquare
from synthetic import ToyModel, ToyTokenizer

from anyspec.engine import SpeculativeGenerator
from anyspec.errors import AnyspecError, ContextOverflowError
from anyspec.proposers.draft_chain import DraftChainProposer
from anyspec.sampling import SamplingParams, target_probs

PIECES = ["a", "b", "c", "d"]


@pytest.mark.parametrize("params", [SamplingParams(1.0), SamplingParams(0.7, top_k=3)])
@pytest.mark.parametrize("k", [1, 3])
def test_sd_keeps_the_target_law_over_three_tokens(params, k):
    tok = ToyTokenizer(PIECES)
    target, draft = ToyModel(tok, seed=1), ToyModel(tok, seed=2)  # a different, imperfect draft
    gen = SpeculativeGenerator(target, DraftChainProposer(draft, target), draft_length=k,
                               coupling="off")  # the rejection rule (coupled: test_seeded_toy)
    assert three_token_law_pvalue(gen, params, seed=7) > 1e-3


def test_a_biased_draft_rule_is_caught():
    """Guard for the test above: trusting the draft's tokens outright must fail it."""
    tok = ToyTokenizer(PIECES)
    target, draft = ToyModel(tok, seed=1), ToyModel(tok, seed=2)
    params = SamplingParams(1.0)
    law = exact_sequence_law(target, [0, 1], 2, params)
    rng = np.random.default_rng(3)
    counts = dict.fromkeys(law, 0)
    for _ in range(6000):  # the bias: take the draft's samples without verification
        ctx, seq = [0, 1], []
        for _ in range(2):
            t = int(rng.choice(4, p=target_probs(draft.row(ctx), params)))
            seq.append(t)
            ctx.append(t)
        counts[tuple(seq)] += 1
    expected = np.array([law[s] for s in law]) * 6000
    assert chisquare(np.array([counts[s] for s in law]), expected).pvalue < 1e-6


@pytest.mark.parametrize("k", [1, 2, 5, "auto"])
def test_sd_greedy_equals_ar_and_caches_stay_consistent(k):
    tok = ToyTokenizer(PIECES)
    target, draft = ToyModel(tok, seed=3, n_ctx=200), ToyModel(tok, seed=4, n_ctx=200)
    ar = SpeculativeGenerator(ToyModel(tok, seed=3, n_ctx=200)).generate([1, 2, 3], 80)
    sd = SpeculativeGenerator(target, DraftChainProposer(draft, target), k).generate([1, 2, 3], 80)
    assert sd.token_ids == ar.token_ids
    assert sd.stats.round_tokens >= sd.stats.new_tokens == 80
    # each target position is run once per round at most: rollbacks re-run only rejected tails
    assert len(target.forwarded) <= 3 + 80 + sd.stats.drafted


def test_draft_identical_to_target_accepts_everything():
    tok = ToyTokenizer(PIECES)
    target, draft = ToyModel(tok, seed=5), ToyModel(tok, seed=5)
    out = SpeculativeGenerator(target, DraftChainProposer(draft, target), 4).generate([0], 41)
    # 8 rounds of 4 accepted + 1 bonus, then one round with room for a single token
    assert out.stats.acceptance_rate == 1.0 and out.stats.rounds == 9
    assert out.stats.accepted_at == [8, 8, 8, 8] and out.stats.drafted == 32
    assert out.stats.mat == pytest.approx(41 / 9)


class _NeverDraft:
    """A controller that has learnt drafting does not pay on this pair."""

    def start(self, prompt_tokens, max_new_tokens=None):
        return False

    def k(self):
        return 0

    def observe(self, *args):
        pass


def test_auto_keeps_its_controller_and_a_plain_decoding_choice_never_runs_the_draft():
    tok = ToyTokenizer(PIECES)
    target, draft = ToyModel(tok, seed=1), ToyModel(tok, seed=2)
    gen = SpeculativeGenerator(target, DraftChainProposer(draft, target), "auto")
    first = gen.generate([0, 1, 2, 3], 6)
    assert gen._controller(draft) is gen._controller(draft)  # learnt once, kept across prompts
    gen._learning_controller = _NeverDraft()
    calls = draft.counter.calls
    second = gen.generate([0, 1, 2, 3], 6)
    assert draft.counter.calls == calls  # no prefill, no drafting
    assert second.token_ids == first.token_ids  # greedy: the same text either way
    assert second.stats.drafted == 0


def test_eos_stops_and_is_not_in_the_output():
    tok = ToyTokenizer(PIECES, eos=3)
    model = ToyModel(tok, seed=0, sharpness=0.1)  # near uniform: EOS comes soon
    out = SpeculativeGenerator(model).generate([0], 200, SamplingParams(1.0, seed=1))
    assert out.finish_reason == "stop" and 3 not in out.token_ids and len(out.token_ids) < 200


def test_stop_string_cuts_text_and_tokens_and_streams_nothing_past_it():
    tok = ToyTokenizer(PIECES)
    model = ToyModel(tok, seed=0, sharpness=0.1)
    gen = SpeculativeGenerator(model)
    full = gen.generate([0], 60, SamplingParams(1.0, seed=5)).text
    stop = full[20:23]
    pieces = []
    out = gen.generate([0], 60, SamplingParams(1.0, seed=5), stop=[stop], on_text=pieces.append)
    assert out.text == full[:full.find(stop)]
    assert "".join(pieces) == out.text
    assert tok.decode(out.token_ids).startswith(out.text) and out.finish_reason == "stop"


def test_same_seed_same_output():
    tok = ToyTokenizer(PIECES)
    target, draft = ToyModel(tok, seed=1), ToyModel(tok, seed=2)
    gen = SpeculativeGenerator(target, DraftChainProposer(draft, target), 3)
    a = gen.generate([0], 30, SamplingParams(0.9, seed=11)).token_ids
    b = gen.generate([0], 30, SamplingParams(0.9, seed=11)).token_ids
    assert a == b


def test_context_limits():
    tok = ToyTokenizer(PIECES)
    gen = SpeculativeGenerator(ToyModel(tok, seed=0, n_ctx=10))
    with pytest.raises(ContextOverflowError, match="context of 10"):
        gen.generate(list(range(4)) * 3, 5)
    out = gen.generate([0, 1, 2], 50)
    assert out.finish_reason == "context" and len(out.token_ids) == 7


def test_bad_arguments_are_clear_errors():
    tok = ToyTokenizer(PIECES)
    gen = SpeculativeGenerator(ToyModel(tok, seed=0))
    with pytest.raises(AnyspecError, match="max_new_tokens"):
        gen.generate([0], 0)
    with pytest.raises(AnyspecError, match="empty"):
        gen.generate("", 5)
    other = ToyModel(ToyTokenizer(["x", "y", "z", "w", "v"]), seed=0)
    with pytest.raises(AnyspecError, match="share one vocabulary"):
        DraftChainProposer(other, gen.target)


class BytesTokenizer(ToyTokenizer):
    """Tokens that are raw bytes, so one character can span two tokens."""

    def __init__(self, pieces: list[bytes]) -> None:
        super().__init__([""] * len(pieces))
        self.raw = pieces

    def _token_bytes(self, token: int) -> bytes:
        return self.raw[token]


def test_streaming_never_splits_a_character():
    from anyspec.engine import TextTracker

    tok = BytesTokenizer([b"a", "é".encode()[:1], "é".encode()[1:], "日".encode()[:2], "日".encode()[2:]])
    tracker = TextTracker(tok, stop=[])
    ids, pieces = [], []
    for t in [0, 1, 2, 3, 4, 0]:
        ids.append(t)
        piece, _ = tracker.update(ids, final=False)
        pieces.append(piece)
    assert pieces == ["a", "", "é", "", "日", "a"]


def test_streamed_text_is_what_decoding_everything_each_round_gives():
    """TextTracker decodes and searches only the new bytes each round. Against decoding all
    the bytes every round, on random byte tokens (split and invalid UTF-8 included) and stop
    strings that span rounds: the same pieces, text and kept tokens."""
    from anyspec.engine import TextTracker, _stop_prefix_tail
    from anyspec.vocab import incomplete_utf8_tail, leading_tokens

    pieces = [b"a", b"b", b" ", b"ab", "é".encode()[:1], "é".encode()[1:], "日".encode()[:2],
              "日".encode()[2:], b"\xff", b"\x80", "😀".encode()[:3], "😀".encode()[3:]]
    tok = BytesTokenizer(pieces)
    rng = np.random.default_rng(3)
    for trial in range(300):
        ids = [int(t) for t in rng.integers(len(pieces), size=int(rng.integers(1, 30)))]
        stop = [s for s in ["ba", "b a", "é日", "aab"] if rng.random() < 0.5]
        tracker = TextTracker(tok, stop)
        got, want, emitted, cut_ids = [], [], 0, None
        n = 0
        while n < len(ids) and cut_ids is None:
            n = min(len(ids), n + int(rng.integers(1, 5)))
            final = n == len(ids)
            got.append(tracker.update(ids[:n], final))
            data = tok.decode_bytes(ids[:n])  # the reference: everything, every round
            text = (data if final else data[:len(data) - incomplete_utf8_tail(data)]).decode(
                "utf-8", errors="replace")
            cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
            if cut >= 0:
                text = text[:cut]
                cut_ids = leading_tokens(tok.bytes_table(), ids[:n], len(text.encode()))[0]
            safe = len(text) if final or cut >= 0 else len(text) - _stop_prefix_tail(text, stop)
            want.append((text[emitted:safe] if safe > emitted else "", cut >= 0))
            emitted = max(emitted, safe)
        assert got == want, (trial, ids, stop)
        assert tracker.text == text and tracker.stopped == (cut_ids is not None)
        assert cut_ids is None or tracker.n_tokens_kept == cut_ids


def test_greedy_drafting_reports_the_draft_probability_of_each_token():
    """draft_chain's confidence is softmax(row)[argmax] over the tokens it may propose."""
    from anyspec.proposers.draft_chain import draft_chain

    draft = ToyModel(ToyTokenizer(PIECES), seed=5, sharpness=1.0)
    banned = np.array([1])
    run = draft_chain(draft, [0, 2], 4, SamplingParams(), banned=banned, confidence=True)
    context = [0, 2]
    for token, confidence in zip(run.tokens, run.confidence):
        row = draft.row(context).astype(np.float64)
        row[banned] = -np.inf
        p = np.exp(row - row.max())
        p /= p.sum()
        assert token == int(np.argmax(p)) != 1
        assert confidence == pytest.approx(p[token], rel=1e-5)
        context.append(token)
    assert len(run.tokens) == 4


@pytest.mark.parametrize("shift", [0.0, -58.0, 58.0, -75.0, 75.0, 300.0])
def test_top_probability_is_the_softmax_at_the_maximum_however_far_the_row_is_shifted(shift):
    """Exact wherever the logits sit: the exps are taken relative to the maximum."""
    from anyspec.proposers.draft_chain import top_probability

    rng = np.random.default_rng(1)
    for width in (5, 49152, 262144):
        row = (rng.normal(0.0, 4.0, width) + shift).astype(np.float32)
        row[rng.integers(width, size=3)] = -np.inf  # masked tokens
        token = int(row.argmax())
        exact = 1.0 / np.exp(row.astype(np.float64) - row[token]).sum()
        assert top_probability(row.copy(), token) == pytest.approx(exact, rel=1e-5)


def test_greedy_drafting_masks_many_banned_tokens_too():
    """More than a handful of banned ids take the vectorised mask: same rule."""
    from anyspec.proposers.draft_chain import draft_chain

    pieces = [chr(ord("a") + i) for i in range(12)]
    draft = ToyModel(ToyTokenizer(pieces), seed=5, sharpness=1.0)
    for allowed in ([3, 7], [0, 11, 5]):
        banned = np.array([i for i in range(len(pieces)) if i not in allowed])
        assert len(banned) > 8
        run = draft_chain(draft, [0, 2], 4, SamplingParams(), banned=banned, confidence=True)
        context = [0, 2]
        for token, confidence in zip(run.tokens, run.confidence):
            row = draft.row(context)[allowed].astype(np.float64)
            p = np.exp(row - row.max())
            assert token == allowed[int(np.argmax(row))]
            assert confidence == pytest.approx(1.0 / p.sum(), rel=1e-5)
            context.append(token)
        assert len(run.tokens) == 4


@pytest.mark.parametrize("sampled", [False, True])
def test_drafting_stops_after_the_token_that_takes_the_product_below_the_floor(sampled):
    """stop_after_product: the run is a prefix of the unstopped one, ending at the first
    token whose running product of probabilities is below the floor."""
    from anyspec.noise import Draws
    from anyspec.proposers.base import draw_at
    from anyspec.proposers.draft_chain import draft_chain

    draft = ToyModel(ToyTokenizer(PIECES), seed=5, sharpness=1.0)
    params = SamplingParams(temperature=1.0 if sampled else 0.0)
    draw = draw_at(Draws(3).own, 2) if sampled else None
    full = draft_chain(draft, [0, 2], 8, params, draw, confidence=True)
    products = np.cumprod(full.confidence)
    floor = float(products[2]) * 1.0001  # falls below at the third token
    assert products[1] >= floor
    run = draft_chain(draft, [0, 2], 8, params, draw, stop_after_product=floor)
    assert run.tokens == full.tokens[:3]
    assert run.confidence == full.confidence[:3]


def test_tables_over_a_vocabulary_are_built_once_per_tokenizer():
    """The server makes a proposer per request: per-tokenizer tables must not be rebuilt."""
    from anyspec.vocab import per_tokenizer

    tok, calls = ToyTokenizer(PIECES), []

    def build(tokenizer):
        calls.append(tokenizer)
        return len(calls)

    assert per_tokenizer(tok, build) == per_tokenizer(tok, build) == 1
    assert per_tokenizer(ToyTokenizer(PIECES), build) == 2  # another tokenizer, its own table
