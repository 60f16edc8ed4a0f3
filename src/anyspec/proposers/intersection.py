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
from ..vocab import one_to_one, shared_token_map
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
        # one draft token per shared target token (distinct bytes): p' moves by assignment
        self.one_to_one = one_to_one(self.to_target)
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
        if self.side.sync(committed):  # committed text ends inside a character: skip a round
            return Proposal()
        if self.tree:
            return self._propose_tree(committed, k, params, rng)
        run = draft_chain(self.draft, self.side.text.ids, k, params, rng,
                          sampled=not params.greedy, stop_below=self.stop_below,
                          banned=self.banned)
        self.side.last_drafted = run.tokens
        tokens = [int(self.to_target[t]) for t in run.tokens]
        if params.greedy:
            return Proposal(tokens)
        return Proposal(tokens, [self._on_target(p) for p in run.probs])

    def _propose_tree(self, committed: Sequence[int], depth: int, params: SamplingParams,
                      rng: np.random.Generator) -> Proposal:
        tree, tokens = self.tree.grow(self.draft, self.side.text.ids, committed, depth, params,
                                      rng, self.banned, self.to_target)
        self.side.last_drafted = tree
        if params.greedy:
            return Proposal(tokens, parents=tree.parents)
        return Proposal(tokens, _OnTargetRows(tree.probs, self._on_target), tree.parents)

    def _on_target(self, p: np.ndarray) -> np.ndarray:
        """p' over the draft's ids moved onto the target's ids."""
        if not self.one_to_one:
            return np.bincount(self.shared_target, weights=p[self.allowed],
                               minlength=self.target_vocab)
        on_target = np.zeros(self.target_vocab, dtype=p.dtype)
        on_target[self.shared_target] = p[self.allowed]
        return on_target


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
