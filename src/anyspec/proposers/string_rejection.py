"""String-level rejection sampling (`slrs`, Timor et al. 2025, algorithms.md section 4).

The draft is a process that writes draft tokens; what it proposes to the target is the target
token its text spells. The proposal distribution over target tokens is

    r(t) = sum over segmentations d1..dj of t's bytes into draft tokens of
           p(d1) p(d2 | d1) ... p(dj | d1..dj-1),  restricted to where the process stops at t,

and a token sampled from r is verified with min(1, q(t)/r(t)) and residual norm(max(0, q - r))
(verify/chain.py): lossless, and unlike slem it can accept a token the draft did not rank first.

The exact r needs draft passes for every prefix of every segmentation. The cost is bounded by
two caps, and r is defined with them (it stays a true distribution, so the rule stays exact):
- segmentations of at most two draft tokens, and the process takes the longest match: after
  d1 it draws d2, and stops at the two-piece token if d1+d2 spells one, otherwise at d1's
  token (or proposes nothing when d1 alone spells no target token);
- only the `branches` most likely first pieces that begin a longer target token, and only
  those with more than `branch_floor` of p1's mass, get the extra draft pass for d2 (the others
  stop at one piece). A branch moves at most its first piece's mass, so a rare first piece
  adds little to the chance a proposal is accepted (`benchmarks/slrs_acceptance.py`
  computes it).
Draft distributions are memoised by prefix, so the pass along the chosen path is reused for the
next position. Per proposed token this costs up to 1 + `branches` draft rows (one-token
forwards through the prefix cache) instead of slem's 1: the price of the higher acceptance. The
branches' rows sit at the same position, so they go in one pass where the backend can batch
siblings (`sibling_logits`).

At temperature 0 the target is a point mass: the rule accepts a proposal only when it is the
target's greedy token, whatever r gives it. r's argmax (one target token at a time, at most
two pieces) found that token less often than slem's proposal, the draft's greedy text
re-encoded for the target (a lower MAT on Spec-Bench), at a higher cost per round, so greedy
`slrs` proposes as `slem` does.

A sampled proposal draws its token from r with the noise of its position (noise.py): the
draft's own noise, verified against r, or the target's (coupled), a point mass. The verifier
reads r at the token and its residual max(0, q - r) from r's two parts, the draft's p1 and the
ids the branches change (`SparseLaw`), rather than a row over every target id.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

from ..models.base import LanguageModel
from ..noise import Draws
from ..sampling import SamplingParams, target_probs
from ..verify.laws import DenseLaw
from ..vocab import ids_by_bytes, one_to_one, per_tokenizer, per_tokenizer_pair, shared_token_map
from .base import Proposal
from .retokenize import RetokenizingProposer


class TwoPieceTokens:
    """For a draft token d1, the pairs (d2, t) where bytes(d1) + bytes(d2) == bytes(t), t a
    target token; computed on first use and kept (a prefix range in the sorted target texts).
    One per pair of tokenizers (`per_tokenizer_pair`), so requests share what was found."""

    def __init__(self, draft_tokenizer, target_tokenizer) -> None:
        self.draft_table = draft_tokenizer.bytes_table()
        self.draft_by_bytes = per_tokenizer(draft_tokenizer, ids_by_bytes)
        target_by_bytes = per_tokenizer(target_tokenizer, ids_by_bytes)
        self.target_texts = sorted(target_by_bytes)
        self.target_ids = [target_by_bytes[b] for b in self.target_texts]
        self._pairs: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, d1: int) -> tuple[np.ndarray, np.ndarray]:
        if d1 not in self._pairs:
            head = self.draft_table[d1]
            lo = bisect.bisect_right(self.target_texts, head)  # strictly longer, same head
            d2s, ts = [], []
            for i in range(lo, len(self.target_texts)):
                text = self.target_texts[i]
                if not text.startswith(head):
                    break
                d2 = self.draft_by_bytes.get(text[len(head):])
                if d2 is not None:
                    d2s.append(d2)
                    ts.append(self.target_ids[i])
            self._pairs[d1] = (np.array(d2s, dtype=np.int64), np.array(ts, dtype=np.int64))
        return self._pairs[d1]


class StringRejectionProposer:
    name = "slrs"

    def __init__(self, draft: LanguageModel, target: LanguageModel,
                 stop_below: float | None = None, draft_window: int | None = None,
                 branches: int = 2, branch_floor: float = 0.1) -> None:
        # greedy proposals (module docstring); both draft along one DraftSide
        self.exact_match = RetokenizingProposer(draft, target, "slem", stop_below=stop_below,
                                                draft_window=draft_window)
        self.side = self.exact_match.side
        self.draft = draft
        self.target_vocab = target.vocab_size
        self.stop_below = stop_below
        self.branches, self.branch_floor = branches, branch_floor
        self.one_piece = shared_token_map(draft.tokenizer, target.tokenizer)
        self._spelling = np.flatnonzero(self.one_piece >= 0)  # draft ids that spell a target id
        self._spelt = self.one_piece[self._spelling]  # ... and that target id
        self._speller = np.full(self.target_vocab, -1, dtype=np.int64)  # target id -> draft id
        self._speller[self._spelt[::-1]] = self._spelling[::-1]  # the lowest, if several
        self._injective = one_to_one(self.one_piece)
        self.two_pieces = per_tokenizer_pair(draft.tokenizer, target.tokenizer, TwoPieceTokens)

    def prefill(self, committed: Sequence[int], warm: bool = True) -> None:
        self.side.prefill(committed, warm)

    def propose(self, committed: Sequence[int], k: int, params: SamplingParams,
                draws: Draws) -> Proposal:
        if params.greedy:
            return self.exact_match.propose(committed, k, params, draws)
        if self.side.sync(committed) or not self.side.readable:  # committed text ends inside
            return Proposal()  # a character, or the draft has no text to read: skip a round
        context = list(self.side.text.ids)
        memo: dict[tuple[int, ...], np.ndarray] = {}  # draft pieces after context -> p
        tokens, laws, path = [], [], []
        for _ in range(k):
            if len(context) + len(path) + 1 > self.draft.n_ctx:
                break
            p1, branches = self._pieces(context, path, params, memo)
            # stop on the step's distribution before drawing (the draft's most likely first
            # piece), never on the token drawn: that would bias the law verified
            if self.stop_below is not None and tokens and float(p1.max()) < self.stop_below:
                break
            law = self._law(p1, branches)
            if law is None:
                break
            # the draft's noise (verified against r) or, coupled, the target's (a point mass)
            t = draws.draft.sample(law.dense(), len(committed) + len(tokens))
            tokens.append(t)
            laws.append(law)
            path += _likeliest_pair(branches, t) or [int(self._speller[t])]
        self.side.last_drafted = path
        return Proposal(tokens, None if draws.coupled else laws)

    def _draft_p(self, context: list[int], pieces: list[int], params: SamplingParams,
                 memo: dict[tuple[int, ...], np.ndarray]) -> np.ndarray:
        """The draft's distribution after context + pieces, its end-of-text ids removed: the
        softmax at the sampling temperature, truncated as the target's q is when top-k or
        top-p is set."""
        key = tuple(pieces)
        if key not in memo:
            memo[key] = self._dist(self.draft.logits(context + pieces, n_last=1)[0], params)
        return memo[key]

    def _draft_p_after_each(self, context: list[int], path: list[int], d1s: list[int],
                            params: SamplingParams, memo: dict) -> list[np.ndarray]:
        """_draft_p after path + [d1] for each d1; those not memoised come from one sibling
        pass (the backend batches them where it can). The first d1 stays in the draft's cache."""
        missing = [d1 for d1 in d1s if tuple(path + [d1]) not in memo]
        if missing:
            rows = self.draft.sibling_logits(context + path, missing)  # a new array: ours
            for d1, row in zip(missing, rows):
                memo[tuple(path + [d1])] = self._dist(row, params)
        return [memo[tuple(path + [d1])] for d1 in d1s]

    def _dist(self, row: np.ndarray, params: SamplingParams) -> np.ndarray:
        """A logits row (ours to overwrite) as _draft_p's distribution."""
        p = target_probs(row, params, in_place=True)
        p[self.side.banned] = 0.0
        total = p.sum(dtype=np.float64)
        if total > 0:
            p /= np.float32(total)
        return p

    def _pieces(self, context: list[int], path: list[int], params: SamplingParams,
                memo: dict) -> tuple[np.ndarray, list[tuple]]:
        """The draft's first-piece distribution p1 after context + path and the two-piece
        branches: (d1, d2s, target ids, masses p1(d1) p2(d2 | d1)) for each of the likeliest
        first pieces that begin longer target tokens."""
        p1 = self._draft_p(context, path, params, memo)
        n_head = min(8 * self.branches, len(p1))
        head = np.argpartition(p1, -n_head)[-n_head:]
        head_p = p1[head]
        continued = []  # (d1, p1(d1), d2s, ts): the likeliest pieces that begin longer tokens
        for i in np.argsort(-head_p, kind="stable").tolist():
            if head_p[i] <= self.branch_floor or len(continued) == self.branches:
                break
            d1 = int(head[i])
            d2s, ts = self.two_pieces(d1)
            if len(d2s):
                continued.append((d1, float(head_p[i]), d2s, ts))
        p2s = self._draft_p_after_each(context, path, [c[0] for c in continued], params, memo)
        branches = [(d1, d2s, ts, (p_d1 * p2[d2s]).astype(np.float64))
                    for (d1, p_d1, d2s, ts), p2 in zip(continued, p2s)]
        return p1, branches

    def _law(self, p1: np.ndarray, branches: list[tuple]) -> SparseLaw | DenseLaw | None:
        """The proposal law r over target ids; None when no target token has mass."""
        if self._injective:
            law = SparseLaw(p1, branches, self)
            return law if law.total > 0 else None
        r = proposal_law(p1, branches, self._spelling, self._spelt, self.one_piece,
                         self.target_vocab)
        return DenseLaw(r) if r is not None else None


class SparseLaw:
    """The proposal law r (`proposal_law`) as its two parts: the draft's p1 on the draft ids
    that spell a target id (`base`, zero at the branches' first pieces) and r at the few
    target ids the branches change (`changed`, `changed_r`), both unnormalised (`total`).
    r(t) and the verifier's residual then read the draft's ids, not every target id;
    `dense` builds the full row. For a spelling where each target id has at most one draft
    id (`one_to_one`)."""

    def __init__(self, p1: np.ndarray, branches: list[tuple], proposer) -> None:
        self.one_piece, self.speller = proposer.one_piece, proposer._speller
        self.spelling, self.spelt = proposer._spelling, proposer._spelt
        self.base = np.zeros_like(p1)
        self.base[self.spelling] = p1[self.spelling]
        ids, values = [np.zeros(0, dtype=np.int64)], [np.zeros(0)]
        for d1, _, ts, mass in branches:
            if self.one_piece[d1] >= 0:  # d1's own token keeps what does not continue
                ids.append(self.one_piece[d1:d1 + 1])
                values.append(np.array([float(self.base[d1]) - mass.sum()]))
                self.base[d1] = 0.0
            ids.append(ts)
            values.append(mass)
        self.changed, where = np.unique(np.concatenate(ids), return_inverse=True)
        # base is zero at a first piece's token, so this clip is proposal_law's
        self.changed_r = np.maximum(np.bincount(where, np.concatenate(values),
                                                minlength=len(self.changed)), 0.0)
        self.total = float(self.base.sum(dtype=np.float64)) + float(self.changed_r.sum())

    def prob(self, token: int) -> float:
        d = self.speller[token]
        r = float(self.base[d]) if d >= 0 else 0.0
        i = np.searchsorted(self.changed, token)
        if i < len(self.changed) and self.changed[i] == token:
            r += float(self.changed_r[i])
        return r / self.total

    def residual(self, q: np.ndarray) -> np.ndarray:
        """max(0, q - r) from r's two parts, in q's precision."""
        left = q.copy()
        left[self.spelt] -= self.base[self.spelling] * np.float32(1.0 / self.total)
        left[self.changed] -= (self.changed_r / self.total).astype(q.dtype)
        return np.maximum(left, 0.0, out=left)

    def dense(self) -> np.ndarray:
        r = np.zeros(len(self.speller))
        r[self.spelt] = self.base[self.spelling]  # one draft id each
        r[self.changed] += self.changed_r
        return r / self.total


def proposal_law(p1: np.ndarray, branches: list[tuple], spelling: np.ndarray,
                 spelt: np.ndarray, one_piece: np.ndarray, vocab_size: int) -> np.ndarray | None:
    """r over all target ids (float64, sums to 1), or None when no target token has mass:
    each draft id's p1 on the target id it spells, less what its branch continues into
    longer tokens, plus the two-piece masses."""
    r = np.bincount(spelt, weights=p1[spelling], minlength=vocab_size)
    for d1, _, ts, mass in branches:
        if one_piece[d1] >= 0:  # what continues into a longer token leaves d1's token
            r[one_piece[d1]] -= mass.sum()
        np.add.at(r, ts, mass)
    np.maximum(r, 0.0, out=r)  # float dust from the subtraction
    total = r.sum()
    if total <= 0:
        return None
    r /= total
    return r


def _likeliest_pair(branches: list[tuple], t: int) -> list[int] | None:
    """The two draft pieces (d1, d2) with the most mass among those spelling target id t (the
    draft's path when t is chosen); None when no branch reaches t."""
    best, best_mass = None, 0.0
    for d1, d2s, ts, mass in branches:
        hits = np.flatnonzero(ts == t)
        if len(hits):
            i = hits[np.argmax(mass[hits])]
            if mass[i] > best_mass:
                best, best_mass = [d1, int(d2s[i])], float(mass[i])
    return best
