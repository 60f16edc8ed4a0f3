"""Token-level intersection (`tli`, Timor et al. 2025): the draft may only use tokens whose
bytes are also one target token, so each draft token is a target token and the draft's
distribution, renormalised over the shared tokens, is a real proposal distribution p'.
Verified with min(1, q/p'): lossless.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import AnyspecError
from ..models.base import LanguageModel
from ..sampling import SamplingParams
from ..vocab import one_to_one, per_tokenizer_pair, shared_token_map
from . import Proposal
from .draft_chain import draft_chain
from .retokenize import DraftSide
from .tree import TreeDrafting


class IntersectionProposer:
    name = "tli"

    def __init__(self, draft: LanguageModel, target: LanguageModel,
                 stop_below: float | None = None, draft_window: int | None = None,
                 tree_budget: int | None = None) -> None:
        self.to_target = shared_token_map(draft.tokenizer, target.tokenizer)
        self.allowed = self.to_target >= 0
        if not self.allowed.any():
            raise AnyspecError(
                f"method tli needs tokens that {draft.name} and {target.name} share, and they "
                "share none; use slem or tokentiming, which work on text")
        self.side = DraftSide(draft, target, draft_window)
        self.banned = np.flatnonzero(~self.allowed)
        self.shared_target = self.to_target[self.allowed]
        # one draft token per shared target token (distinct bytes): p' is read where it lies
        # (SharedLaw), else moved by a sum
        self.one_to_one = one_to_one(self.to_target)
        self.from_target, self.law_target, self.law_draft = (
            per_tokenizer_pair(draft.tokenizer, target.tokenizer, _target_side)
            if self.one_to_one else (None, None, None))
        self.draft = draft
        self.target_vocab = target.vocab_size
        self.stop_below = stop_below
        self.tree = TreeDrafting(tree_budget, target) if tree_budget else None  # else chains

    @property
    def shared_fraction(self) -> float:
        return float(self.allowed.mean())

    def prefill(self, committed: Sequence[int], warm: bool = True) -> None:
        self.side.prefill(committed, warm)
        if self.tree:
            self.tree.reset()

    def propose(self, committed: Sequence[int], k: int, params: SamplingParams,
                rng: np.random.Generator) -> Proposal:
        if self.side.sync(committed) or not self.side.readable:  # committed text ends inside
            return Proposal()  # a character, or the draft has no text to read: skip a round
        if self.tree:
            return self._propose_tree(committed, k, params, rng)
        run = draft_chain(self.draft, self.side.text.ids, k, params, rng,
                          sampled=not params.greedy, stop_below=self.stop_below,
                          banned=self.banned)
        self.side.last_drafted = run.tokens
        tokens = [int(self.to_target[t]) for t in run.tokens]
        if params.greedy:
            return Proposal(tokens)
        if self.one_to_one:
            return Proposal(tokens, [SharedLaw(p, self) for p in run.probs])
        return Proposal(tokens, [self._on_target(p) for p in run.probs])

    def _propose_tree(self, committed: Sequence[int], depth: int, params: SamplingParams,
                      rng: np.random.Generator) -> Proposal:
        tree, tokens = self.tree.grow(self.draft, self.side.text.ids, committed, depth, params,
                                      rng, self.banned, self.to_target)
        self.side.last_drafted = tree
        if params.greedy:
            return Proposal(tokens, parents=tree.parents)
        if self.one_to_one:
            return Proposal(tokens, [SharedLaw(p, self) for p in tree.probs], tree.parents)
        return Proposal(tokens, _OnTargetRows(tree.probs, self._on_target), tree.parents)

    def _on_target(self, p: np.ndarray) -> np.ndarray:
        """p' over the draft's ids moved onto the target's ids, where several draft ids may
        share one (one-to-one maps read p' where it lies: SharedLaw)."""
        return np.bincount(self.shared_target, weights=p[self.allowed],
                           minlength=self.target_vocab)


class SharedLaw:
    """p' on the target's ids, read where it lies: the draft's p over its own ids (zero off the
    shared tokens), through a one-to-one map. The verifier reads p'(t) of the proposed token,
    and after a rejection max(0, q - p') (`residual_of`, verify/chain.py): neither needs the
    262k-wide row that moving p onto the target's ids built for every drafted token, right
    after a draft pass when every 1 MB write is slow. np.asarray builds that row."""

    def __init__(self, p: np.ndarray, proposer: IntersectionProposer) -> None:
        self.p = p
        self.from_target = proposer.from_target
        self.shared_target, self.shared_draft = proposer.law_target, proposer.law_draft

    def __getitem__(self, t: int) -> float:
        d = self.from_target[t]
        return float(self.p[d]) if d >= 0 else 0.0

    def residual_of(self, q: np.ndarray) -> np.ndarray:
        left = q.copy()  # q less nothing off the shared tokens
        left[self.shared_target] = np.maximum(q[self.shared_target] - self.p[self.shared_draft],
                                              0.0)
        return left

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        row = np.zeros(len(self.from_target), dtype=dtype or self.p.dtype)
        row[self.shared_target] = self.p[self.shared_draft]
        return row


def _target_side(draft_tokenizer, target_tokenizer) -> tuple[np.ndarray, ...]:
    """The shared tokens seen from the target's side, for SharedLaw, where the map is
    one-to-one: for each target id the draft id with the same bytes, or -1; and the shared
    (target id, draft id) pairs in the target's id order, so that reads and writes over a
    1 MB target row go forward through it (a quarter faster than in the draft's order).
    Built once per pair (an argsort of 46k ids takes milliseconds) and shared: read-only."""
    to_target = shared_token_map(draft_tokenizer, target_tokenizer)
    draft_ids = np.flatnonzero(to_target >= 0)
    target_ids = to_target[draft_ids]
    order = np.argsort(target_ids, kind="stable")
    from_target = np.full(target_tokenizer.vocab_size, -1, dtype=np.int64)
    from_target[target_ids] = draft_ids
    parts = (from_target, target_ids[order], draft_ids[order])
    for part in parts:
        part.flags.writeable = False
    return parts


class _OnTargetRows:
    """A tree's draft distributions, each moved onto the target's ids when verification
    first reads it: a walk reads only the children of the nodes it reaches."""

    def __init__(self, rows: list[np.ndarray], convert) -> None:
        self.rows, self.convert, self.done = rows, convert, {}

    def __getitem__(self, i: int) -> np.ndarray:
        if i not in self.done:
            self.done[i] = self.convert(self.rows[i])
        return self.done[i]

    def __len__(self) -> int:
        return len(self.rows)
