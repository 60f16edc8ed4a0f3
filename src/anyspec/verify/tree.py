"""Verifying a tree of proposed target tokens in one walk from the root (algorithms.md 0, 6).

At each node the children are tried in the order they were drawn. A child drawn from p (its
parent's draft distribution with the earlier siblings removed and renormalised, i.e. sampled
without replacement) is accepted with min(1, q(c)/p(c)); on rejection q <- norm(max(0, q - p)).
A child chosen deterministically is a point mass: accepted with q(c), else q <- q without c.
If every child is rejected the next token is drawn from what is left of q; if one is accepted
the walk goes on from it. At each step this is one rejection-sampling step whose output law is
the current q, so the committed tokens are distributed exactly as the target's (SpecInfer,
Sequoia). Greedy: q is a point mass on the argmax, so accept the child equal to it, if any.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..sampling import SamplingParams, sample, target_probs
from ..trees import children_of
from .chain import accepts, law_of, residual
from .laws import DraftLaw


def verify_tree(
    tokens: Sequence[int],
    parents: Sequence[int],
    laws: Sequence[DraftLaw] | None,
    target_logits: np.ndarray,
    params: SamplingParams,
    rng: np.random.Generator,
    q_of: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[list[int], int]:
    """Walk a tree of proposed tokens; return (the accepted nodes, root first; the next token).

    parents[i]: node i's parent (-1: a child of the root; parents come before children).
    laws[i]: the law node i was drawn from (verify/laws.py); None: every node is a point
    mass. target_logits row 0 is the target's prediction at the root, row i + 1
    its prediction after node i.
    """
    children = children_of(parents)
    path: list[int] = []
    row = 0  # the target row of the current node: 0 for the root, i + 1 for node i
    if params.greedy:
        while True:
            best = int(np.argmax(target_logits[row]))
            match = next((c for c in children[row] if tokens[c] == best), None)
            if match is None:
                return path, best
            path.append(match)
            row = match + 1

    q_of = q_of or (lambda r: target_probs(r, params))
    while True:
        q = q_of(target_logits[row])
        accepted = None
        for c in children[row]:
            law = law_of(laws, c, tokens[c], q)
            if accepts(tokens[c], q, law, rng):
                accepted = c
                break
            left = residual(q, law)  # the next sibling is tried against this
            q = left / np.float32(left.sum(dtype=np.float64))
        if accepted is None:
            return path, sample(q, rng)
        path.append(accepted)
        row = accepted + 1
