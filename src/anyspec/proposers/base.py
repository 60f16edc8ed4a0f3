"""What a proposer returns and the interface the engine calls it through."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..models.base import LanguageModel
from ..noise import Draws, Noise
from ..sampling import SamplingParams
from ..verify.laws import DraftLaw

# how a drafting loop samples: draw(p, i) is step i's token, drawn from p (over the ids p
# covers); the proposer decides which noise, and which position, step i reads
Draw = Callable[[np.ndarray, int], int]


def draw_at(noise: Noise, start: int) -> Draw:
    """Step i reads `noise` at position start + i, over p's own ids."""
    return lambda p, i: noise.sample(p, start + i)


@dataclass(frozen=True)
class Proposal:
    tokens: list[int] = field(default_factory=list)  # target ids
    # laws[i]: the law token i was drawn from (verify/laws.py); None: every token was chosen
    # deterministically, a point mass
    laws: Sequence[DraftLaw] | None = None
    # a tree: parents[i] is token i's parent (-1: follows the committed ids); None: a chain
    parents: list[int] | None = None


class Proposer(Protocol):
    name: str
    draft: LanguageModel | None  # the draft model it runs, whose passes the engine times

    def prefill(self, committed: Sequence[int], warm: bool = True) -> None:
        """A new prompt. warm: the draft reads it now, so rounds time decoding only; else the
        draft reads it the first time it drafts (never, if plain decoding is all it takes)."""
        ...

    def propose(self, committed: Sequence[int], k: int, params: SamplingParams,
                draws: Draws) -> Proposal:
        """Up to k draft steps' worth of target tokens that may follow `committed`.

        A proposer that samples its tokens draws them from `draws` (noise.py): with
        `draws.draft` at the target positions they would take, and with point masses for
        laws when `draws.coupled`; else laws for the rejection rule."""
        ...


class NoProposer:
    """Target-only decoding (`ar`): every round is one plain decoding step."""

    name = "ar"
    draft = None

    def prefill(self, committed, warm: bool = True) -> None:
        pass

    def propose(self, committed, k, params, draws) -> Proposal:
        return Proposal()
