"""Verifying a chain of proposed target tokens against the target's distributions.

One rule covers every method. A proposed token t comes with the distribution p it was drawn
from; a token chosen deterministically (argmax, re-tokenization, alignment) has p = onehot(t),
a point mass. Accept t with probability min(1, q(t)/p(t)); on rejection draw from
norm(max(0, q - p)). With p = onehot(t) this is "accept with q(t), else draw from q without t",
so one function serves SD, TLI, SLEM and TokenTiming, and the output is distributed exactly
as q (Leviathan et al. 2023, Chen et al. 2023).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..sampling import SamplingParams, sample, target_probs


def accepts(token: int, q: np.ndarray, p: np.ndarray | None, rng: np.random.Generator) -> bool:
    """The standard test: accept `token` with probability min(1, q(token) / p(token)).

    q: target distribution at this position. p: the draft distribution `token` was drawn from
    (same index space as q), or None for a point mass on `token`.
    """
    p_t = 1.0 if p is None else float(p[token])
    return p_t > 0 and bool(rng.random() * p_t < q[token])  # u < q/p, no division by a tiny p


def residual(token: int, q: np.ndarray, p: np.ndarray | None) -> np.ndarray:
    """What is left of q once `token` (drawn from p; None: a point mass) is rejected,
    unnormalised: max(0, q - p), which for a point mass is q without `token`."""
    if p is None:
        left = q.copy()
        left[token] = 0.0
    elif hasattr(p, "residual_of"):  # a law kept in parts, whose full row costs (slrs)
        left = p.residual_of(q)
    else:
        left = np.maximum(q - np.asarray(p), 0.0)
    if left.sum() <= 0:  # q == p: rejection had probability 0; kept for float safety
        return q
    return left


def accept_or_resample(
    token: int, q: np.ndarray, p: np.ndarray | None, rng: np.random.Generator
) -> int | None:
    """None if `token` is accepted, else the replacement token drawn from the residual."""
    if accepts(token, q, p, rng):
        return None
    return sample(residual(token, q, p), rng)


def verify_chain(
    tokens: Sequence[int],
    draft_probs: Sequence[np.ndarray | None] | None,
    target_logits: np.ndarray,
    params: SamplingParams,
    rng: np.random.Generator,
    q_of: Callable[[np.ndarray], np.ndarray] | None = None,
    argmaxes: Sequence[int] | None = None,
) -> tuple[int, int]:
    """Walk a chain of k proposed tokens; return (number accepted, the next token).

    target_logits has k+1 rows: row i is the target's prediction after the first i proposed
    tokens; row k gives the bonus token when all k are accepted. Every round therefore commits
    n_accepted + 1 tokens. argmaxes: the rows' argmaxes if already taken (greedy_logits).
    """
    if params.greedy:  # q is a point mass on argmax: accept iff the draft agrees
        # (the array method, not np.argmax: its Python wrapper costs tens of microseconds
        # with the caches cold after the target's pass)
        for i, t in enumerate(tokens):
            best = argmaxes[i] if argmaxes is not None else int(target_logits[i].argmax())
            if best != t:
                return i, best
        n = len(tokens)
        return n, argmaxes[n] if argmaxes is not None else int(target_logits[n].argmax())

    q_of = q_of or (lambda row: target_probs(row, params))
    for i, t in enumerate(tokens):
        q = q_of(target_logits[i])  # computed lazily: rows after a rejection are never needed
        p = None if draft_probs is None else draft_probs[i]
        replacement = accept_or_resample(t, q, p, rng)
        if replacement is not None:
            return i, replacement
    return len(tokens), sample(q_of(target_logits[len(tokens)]), rng)
