"""Verifying a tree of proposed target tokens in one walk from the root (algorithms.md 0, 6).

Point masses (laws None, or greedy): at each node the target decides its token y as in
verify/chain.py, and the walk goes on into the child equal to y, if any; else y is committed.
Trying point-mass children one by one ("accept c with q(c), else q <- q without c") accepts
with the same probabilities, and this way the output is target-only output for the seed.

Children drawn from laws (sampled without replacement: each child's p is its parent's draft
distribution less the earlier siblings, renormalised) take the standard rule in the order
they were drawn: accepted with min(1, q(c)/p(c)), else q <- norm(max(0, q - p)); if every
child is rejected the next token is drawn from what is left of q (SpecInfer, Sequoia). At
each step this is one rejection-sampling step whose output law is the current q.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..noise import Draws
from ..sampling import SamplingParams
from ..trees import children_of
from .chain import TargetChoice, accepts, residual
from .laws import DraftLaw


def verify_tree(
    tokens: Sequence[int],
    parents: Sequence[int],
    laws: Sequence[DraftLaw] | None,
    target_logits: np.ndarray,
    params: SamplingParams,
    draws: Draws,
    at: int,
    in_place: bool = False,
) -> tuple[list[int], int]:
    """Walk a tree of proposed tokens; return (the accepted nodes, root first; the next token).

    parents[i]: node i's parent (-1: a child of the root; parents come before children).
    laws[i]: the law node i was drawn from (verify/laws.py); None: every node is a point
    mass. target_logits row 0 is the target's prediction at the root, row i + 1 its
    prediction after node i. `at`: the absolute position of the root's children; in_place:
    the rows may be overwritten.
    """
    children = children_of(parents)
    choose = TargetChoice(params, draws, in_place)
    path: list[int] = []
    row = 0  # the target row of the current node: 0 for the root, i + 1 for node i
    while True:
        pos = at + len(path)
        if laws is None or params.greedy:
            y = choose(target_logits[row], pos)
            match = next((c for c in children[row] if tokens[c] == y), None)
            if match is None:
                return path, y
        else:
            q = choose.q_of(target_logits[row])
            match = None
            for rank, c in enumerate(children[row]):
                if accepts(tokens[c], q, laws[c], draws.accept.uniform(pos, rank)):
                    match = c
                    break
                left = residual(q, laws[c])  # the next sibling is tried against this
                q = left / np.float32(left.sum(dtype=np.float64))
            if match is None:
                return path, draws.target.sample(q, pos)
        path.append(match)
        row = match + 1
