"""Token-level intersection (`tli`, Timor et al. 2025): the draft may only use tokens whose
bytes are also one target token, so each draft token is a target token and the draft's
distribution, renormalised over the shared tokens, is a real proposal distribution p'.
Verified with min(1, q/p'): lossless. Coupled to the target's noise (noise.py), the draft
runs its race over the target's ids and proposes point masses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import AnyspecError
from ..models.base import LanguageModel
from ..noise import Draws
from ..sampling import SamplingParams
from ..verify.laws import DenseLaw
from ..vocab import one_to_one, per_tokenizer_pair, shared_token_map
from .base import Draw, Proposal, draw_at
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
        self.shared_draft = np.flatnonzero(self.allowed)
        self.shared_target = self.to_target[self.shared_draft]
        # one draft token per shared target token (distinct bytes): p' is read where it lies
        # (SharedLaw), else moved onto the target's ids by a sum
        self.one_to_one = one_to_one(self.to_target)
        self.from_target = (per_tokenizer_pair(draft.tokenizer, target.tokenizer, _from_target)
                            if self.one_to_one else None)
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
                draws: Draws) -> Proposal:
        if self.side.sync(committed) or not self.side.readable:  # committed text ends inside
            return Proposal()  # a character, or the draft has no text to read: skip a round
        draw = self._draw(params, draws, len(committed))
        verified = draw is not None and not draws.coupled  # else point masses
        if self.tree:
            tree, tokens = self.tree.grow(self.draft, self.side.text.ids, committed, k, params,
                                          draw, self.banned, self.to_target)
            self.side.last_drafted = tree
            laws = [self._law(p) for p in tree.probs] if verified else None
            return Proposal(tokens, laws, tree.parents)
        run = draft_chain(self.draft, self.side.text.ids, k, params, draw,
                          stop_below=self.stop_below, banned=self.banned)
        self.side.last_drafted = run.tokens
        tokens = [int(self.to_target[t]) for t in run.tokens]
        return Proposal(tokens, [self._law(p) for p in run.probs] if verified else None)

    def _draw(self, params: SamplingParams, draws: Draws, at: int) -> Draw | None:
        """How the draft samples (None: greedily). Each draft token is one target token, so
        step i decides target position at + i."""
        if params.greedy:
            return None
        if not draws.coupled:  # a race over the draft's ids, verified against p'
            return draw_at(draws.own, at)
        noise = draws.target

        def coupled(p: np.ndarray, i: int) -> int:
            """The target's race at at + i, run over p'; the draft id it stands for."""
            t = noise.sample(self._law(p).dense(), at + i)
            ids = self.shared_draft[self.shared_target == t]  # the likeliest spelling of t
            return int(ids[np.argmax(p[ids])])

        return coupled

    def _law(self, p: np.ndarray) -> SharedLaw | DenseLaw:
        """p', the draft's p over its own ids (zero off the shared tokens), as a law over the
        target's ids: read where it lies when the map is one-to-one, else moved by a sum."""
        if self.one_to_one:
            return SharedLaw(p, self.from_target, self.shared_draft, self.shared_target)
        return DenseLaw(np.bincount(self.shared_target, weights=p[self.allowed],
                                    minlength=self.target_vocab))


class SharedLaw:
    """p' on the target's ids, read where it lies: the draft's p over its own ids (zero off
    the shared tokens), through a one-to-one map of the shared tokens. The verifier reads
    p'(t) and the residual max(0, q - p') without a row over the target's vocabulary being
    built for every drafted token; `dense` builds it."""

    def __init__(self, p: np.ndarray, from_target: np.ndarray, shared_draft: np.ndarray,
                 shared_target: np.ndarray) -> None:
        self.p, self.from_target = p, from_target
        self.shared_draft, self.shared_target = shared_draft, shared_target  # the shared pairs

    def prob(self, token: int) -> float:
        d = self.from_target[token]
        return float(self.p[d]) if d >= 0 else 0.0

    def residual(self, q: np.ndarray) -> np.ndarray:
        left = q.copy()  # q less nothing off the shared tokens
        left[self.shared_target] = np.maximum(q[self.shared_target] - self.p[self.shared_draft],
                                              0.0)
        return left

    def dense(self) -> np.ndarray:
        row = np.zeros(len(self.from_target), dtype=self.p.dtype)
        row[self.shared_target] = self.p[self.shared_draft]
        return row


def _from_target(draft_tokenizer, target_tokenizer) -> np.ndarray:
    """For each target id the draft id with the same bytes, or -1, where the shared tokens
    map one to one. Built once per pair of tokenizers and shared: read-only."""
    to_target = shared_token_map(draft_tokenizer, target_tokenizer)
    draft_ids = np.flatnonzero(to_target >= 0)
    from_target = np.full(target_tokenizer.vocab_size, -1, dtype=np.int64)
    from_target[to_target[draft_ids]] = draft_ids
    from_target.flags.writeable = False
    return from_target
