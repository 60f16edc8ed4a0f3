"""Verifying a chain of proposed target tokens against the target's distributions.

At each position the target decides its own token y from its distribution q and that
position's noise (noise.py): the argmax at temperature 0, else the seeded Gumbel-max sample,
exactly what target-only decoding commits there.

- A token chosen without a law to verify against (an argmax, re-tokenized text, a draft coupled
  to the target's noise) is a point mass: accepted exactly when it equals y, otherwise y is
  committed and the round ends. This realises the point-mass rule "accept with q(t), else draw
  from q without t" with the target's own draw, so the output is target-only output for the
  seed, token for token.
- A token drawn from a draft law p with the draft's own noise takes the standard rejection
  rule: accepted with probability min(1, q(t)/p(t)), else replaced by a draw from
  norm(max(0, q - p)) (Leviathan et al. 2023, Chen et al. 2023).

Either way the committed tokens are distributed exactly as the target's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..noise import Draws
from ..sampling import SamplingParams, scaled_logits, target_probs
from .laws import DraftLaw


def accepts(token: int, q: np.ndarray, law: DraftLaw, u: float) -> bool:
    """The standard test with uniform u: accept `token` with probability min(1, q/p)."""
    p_t = law.prob(token)
    return p_t > 0 and bool(u * p_t < q[token])  # u < q/p, no division by a tiny p


def residual(q: np.ndarray, law: DraftLaw) -> np.ndarray:
    """What is left of q once a token drawn from `law` is rejected, unnormalised."""
    left = law.residual(q)
    if left.sum() <= 0:  # q == p: rejection had probability 0; kept for float safety
        return q
    return left


class TargetChoice:
    """The target's token at a position, from its logits row: the argmax when greedy, else
    the seeded draw from q. in_place: rows are read once, so q may be computed in them."""

    def __init__(self, params: SamplingParams, draws: Draws, in_place: bool = False) -> None:
        self.params, self.draws, self.in_place = params, draws, in_place

    def q_of(self, row: np.ndarray) -> np.ndarray:
        return target_probs(row, self.params, self.in_place)

    def __call__(self, row: np.ndarray, pos: int) -> int:
        if self.params.greedy:
            return int(np.argmax(row))
        if self.params.top_p < 1:  # the nucleus needs q itself
            return self.draws.target.sample(self.q_of(row), pos)
        # the same draw as from q = softmax(z), without q over the whole vocabulary
        return self.draws.target.sample_logits(scaled_logits(row, self.params, self.in_place),
                                               pos)

    def rejection(self, token: int, row: np.ndarray, law: DraftLaw, pos: int) -> int | None:
        """The standard rule for `token` drawn from `law`: None if accepted, else the token
        drawn from the residual."""
        q = self.q_of(row)
        if accepts(token, q, law, self.draws.accept.uniform(pos)):
            return None
        return self.draws.target.sample(residual(q, law), pos)


def verify_chain(
    tokens: Sequence[int],
    laws: Sequence[DraftLaw] | None,
    target_logits: np.ndarray,
    params: SamplingParams,
    draws: Draws,
    at: int,
    in_place: bool = False,
) -> tuple[int, int]:
    """Walk a chain of k proposed tokens; return (number accepted, the next token).

    laws[i]: the law token i was drawn from; None: every token is a point mass.
    target_logits has k+1 rows: row i is the target's prediction after the first i proposed
    tokens; row k gives the bonus token when all k are accepted. `at` is the absolute
    position of the first proposed token (the number of committed ids); in_place: the rows
    may be overwritten. Every round commits n_accepted + 1 tokens.
    """
    choose = TargetChoice(params, draws, in_place)
    for i, t in enumerate(tokens):
        if laws is None or params.greedy:
            y = choose(target_logits[i], at + i)
            if y != t:
                return i, y
        else:
            replacement = choose.rejection(t, target_logits[i], laws[i], at + i)
            if replacement is not None:
                return i, replacement
    return len(tokens), choose(target_logits[len(tokens)], at + len(tokens))
