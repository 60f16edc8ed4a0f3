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
from ..vocab import shared_token_map
from . import Proposal
from .draft_chain import draft_chain
from .retokenize import DraftSide


class IntersectionProposer:
    name = "tli"

    def __init__(self, draft: LanguageModel, target: LanguageModel,
                 stop_below: float | None = None) -> None:
        self.to_target = shared_token_map(draft.tokenizer, target.tokenizer)
        self.allowed = self.to_target >= 0
        if not self.allowed.any():
            raise AnyspecError(
                f"method tli needs tokens that {draft.name} and {target.name} share, and they "
                "share none; use slem or tokentiming, which work on text")
        self.side = DraftSide(draft, target)
        self.draft = draft
        self.target_vocab = target.vocab_size
        self.stop_below = stop_below

    @property
    def shared_fraction(self) -> float:
        return float(self.allowed.mean())

    def prefill(self, committed: Sequence[int], warm: bool = True) -> None:
        self.side.prefill(committed, warm)

    def propose(self, committed: Sequence[int], k: int, params: SamplingParams,
                rng: np.random.Generator) -> Proposal:
        if self.side.sync(committed):  # committed text ends inside a character: skip a round
            return Proposal()
        run = draft_chain(self.draft, self.side.text.ids, k, params, rng,
                          sampled=not params.greedy, stop_below=self.stop_below,
                          allowed=self.allowed)
        self.side.last_drafted = run.tokens
        tokens = [int(self.to_target[t]) for t in run.tokens]
        if params.greedy:
            return Proposal(tokens)
        probs = []
        for p in run.probs:  # p' moved onto the target's ids
            on_target = np.zeros(self.target_vocab)
            np.add.at(on_target, self.to_target[self.allowed], p[self.allowed])
            probs.append(on_target)
        return Proposal(tokens, probs)
