"""Verifying a chain of proposed target tokens against the target's distributions.

One rule covers every method. A proposed token t comes with the law p it was drawn from
(verify/laws.py); a token chosen deterministically (argmax, re-tokenization, alignment) is a
point mass on t. Accept t with probability min(1, q(t)/p(t)); on rejection draw from
norm(max(0, q - p)). For a point mass this is "accept with q(t), else draw from q without t",
so one function serves SD, TLI, SLEM, TokenTiming and SLRS, and the output is distributed
exactly as q (Leviathan et al. 2023, Chen et al. 2023).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..sampling import SamplingParams, sample, target_probs
from .laws import DraftLaw, PointMass


def accepts(token: int, q: np.ndarray, law: DraftLaw, rng: np.random.Generator) -> bool:
    """The standard test: accept `token` with probability min(1, q(token) / p(token))."""
    p_t = law.prob(token)
    return p_t > 0 and bool(rng.random() * p_t < q[token])  # u < q/p, no division by a tiny p


def residual(q: np.ndarray, law: DraftLaw) -> np.ndarray:
    """What is left of q once a token drawn from `law` is rejected, unnormalised."""
    left = law.residual(q)
    if left.sum() <= 0:  # q == p: rejection had probability 0; kept for float safety
        return q
    return left


def law_of(laws: Sequence[DraftLaw] | None, i: int, token: int, q: np.ndarray) -> DraftLaw:
    """Proposed token i's law: given, or a point mass on it."""
    return laws[i] if laws is not None else PointMass(token, len(q))


def accept_or_resample(token: int, q: np.ndarray, law: DraftLaw,
                       rng: np.random.Generator) -> int | None:
    """None if `token` is accepted, else the replacement token drawn from the residual."""
    if accepts(token, q, law, rng):
        return None
    return sample(residual(q, law), rng)


def verify_chain(
    tokens: Sequence[int],
    laws: Sequence[DraftLaw] | None,
    target_logits: np.ndarray,
    params: SamplingParams,
    rng: np.random.Generator,
    q_of: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[int, int]:
    """Walk a chain of k proposed tokens; return (number accepted, the next token).

    laws[i]: the law token i was drawn from; None: every token is a point mass.
    target_logits has k+1 rows: row i is the target's prediction after the first i proposed
    tokens; row k gives the bonus token when all k are accepted. Every round therefore commits
    n_accepted + 1 tokens.
    """
    if params.greedy:  # q is a point mass on the argmax: accept while the draft agrees
        for i, t in enumerate(tokens):
            best = int(np.argmax(target_logits[i]))
            if best != t:
                return i, best
        return len(tokens), int(np.argmax(target_logits[len(tokens)]))

    q_of = q_of or (lambda row: target_probs(row, params))
    for i, t in enumerate(tokens):
        q = q_of(target_logits[i])  # computed lazily: rows after a rejection are never needed
        replacement = accept_or_resample(t, q, law_of(laws, i, t, q), rng)
        if replacement is not None:
            return i, replacement
    return len(tokens), sample(q_of(target_logits[len(tokens)]), rng)
