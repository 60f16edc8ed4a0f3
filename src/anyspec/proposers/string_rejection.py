"""String-level rejection sampling (`slrs`, Timor et al. 2025, algorithms.md section 4).

The draft is a process that writes draft tokens; what it proposes to the target is the target
token its text spells. The proposal distribution over target tokens is

    r(t) = sum over segmentations d1..dj of t's bytes into draft tokens of
           p(d1) p(d2 | d1) ... p(dj | d1..dj-1),  restricted to where the process stops at t,

and a token sampled from r is verified with min(1, q(t)/r(t)) and residual norm(max(0, q - r))
(verify/chain.py): lossless, and unlike slem it can accept a token the draft did not rank first.

The exact r needs draft passes for every prefix of every segmentation. The cost is bounded by
two caps, and r is defined with them (it stays a true distribution, so the rule stays exact):
- segmentations of at most two draft tokens (`max_pieces`), and the process takes the longest
  match: after d1 it draws d2, and stops at the two-piece token if d1+d2 spells one, otherwise
  at d1's token (or proposes nothing when d1 alone spells no target token);
- only the `branches` most likely first pieces that begin a longer target token get the extra
  draft pass for d2 (the others stop at one piece).
Draft distributions are memoised by prefix, so the pass along the chosen path is reused for the
next position. Per proposed token this costs 1 + `branches` draft passes (one-token forwards
through the prefix cache) instead of slem's 1: the price of the higher acceptance.
"""

from __future__ import annotations

import bisect
from typing import Sequence

import numpy as np

from ..models.base import LanguageModel
from ..sampling import SamplingParams, sample, target_probs
from ..vocab import ids_by_bytes, per_tokenizer, shared_token_map
from . import Proposal
from .retokenize import DraftSide


class TwoPieceTokens:
    """For a draft token d1, the pairs (d2, t) where bytes(d1) + bytes(d2) == bytes(t), t a
    target token; computed on first use and kept (a prefix range in the sorted target texts)."""

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
                 branches: int = 2) -> None:
        self.side = DraftSide(draft, target, draft_window)
        self.draft = draft
        self.target_vocab = target.vocab_size
        self.stop_below = stop_below
        self.branches = branches
        self.one_piece = shared_token_map(draft.tokenizer, target.tokenizer)
        self._spelling = np.flatnonzero(self.one_piece >= 0)  # draft ids that spell a target id
        self._spelt = self.one_piece[self._spelling]  # ... and that target id
        self.two_pieces = TwoPieceTokens(draft.tokenizer, target.tokenizer)

    def prefill(self, committed: Sequence[int], warm: bool = True) -> None:
        self.side.prefill(committed, warm)

    def propose(self, committed: Sequence[int], k: int, params: SamplingParams,
                rng: np.random.Generator) -> Proposal:
        if self.side.sync(committed):  # committed text ends inside a character: skip a round
            return Proposal()
        context = list(self.side.text.ids)
        memo: dict[tuple[int, ...], np.ndarray] = {}  # draft pieces after context -> p
        tokens, probs, path = [], [], []
        for _ in range(k):
            if len(context) + len(path) + 1 > self.draft.n_ctx:
                break
            r, branches = self._proposal_law(context, path, params, memo)
            if r is None:
                break
            t = int(np.argmax(r)) if params.greedy else sample(r, rng)
            if self.stop_below is not None and tokens and r[t] < self.stop_below:
                break
            tokens.append(t)
            probs.append(r)
            path += _likeliest_pair(branches, t) or [int(self._spelling[self._spelt == t][0])]
        self.side.last_drafted = path
        return Proposal(tokens, None if params.greedy else probs)

    def _draft_p(self, context: list[int], pieces: list[int], params: SamplingParams,
                 memo: dict[tuple[int, ...], np.ndarray]) -> np.ndarray:
        key = tuple(pieces)
        if key not in memo:
            row = self.draft.logits(context + pieces, n_last=1)[0]
            p = _softmax(row) if params.greedy else target_probs(row, params)
            p[self.side.banned] = 0.0
            memo[key] = p / p.sum()
        return memo[key]

    def _proposal_law(self, context: list[int], path: list[int], params: SamplingParams,
                      memo: dict) -> tuple[np.ndarray | None, list[tuple]]:
        """r over target ids after the draft's context + path, and the two-piece branches
        behind it: (d1, d2s, target ids, masses) for each first piece that was continued."""
        p1 = self._draft_p(context, path, params, memo)
        r = np.bincount(self._spelt, weights=p1[self._spelling], minlength=self.target_vocab)
        branches = []
        for d1 in self._branch_points(p1):
            d2s, ts = self.two_pieces(d1)
            mass = p1[d1] * self._draft_p(context, path + [d1], params, memo)[d2s]
            if self.one_piece[d1] >= 0:  # what continues into a longer token leaves d1's token
                r[self.one_piece[d1]] -= mass.sum()
            np.add.at(r, ts, mass)
            branches.append((d1, d2s, ts, mass))
        np.maximum(r, 0.0, out=r)  # float dust from the subtraction
        total = r.sum()
        if total <= 0:
            return None, branches
        r /= total
        return r, branches

    def _branch_points(self, p1: np.ndarray) -> list[int]:
        """The `branches` likeliest first pieces that begin some longer target token."""
        n = min(len(p1), 8 * self.branches)
        head = np.argpartition(-p1, n - 1)[:n]
        out = []
        for d1 in head[np.argsort(-p1[head], kind="stable")].tolist():
            if p1[d1] <= 0 or len(out) == self.branches:
                break
            if len(self.two_pieces(d1)[0]):
                out.append(d1)
        return out


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


def _softmax(row: np.ndarray) -> np.ndarray:
    p = np.exp(row - row.max(), dtype=np.float64)
    return p / p.sum()
