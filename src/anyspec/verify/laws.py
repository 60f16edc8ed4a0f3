"""What the verifier reads of the distribution a proposed token was drawn from.

A proposer hands the verifier, for each sampled token, a DraftLaw over the target's ids. The
verifier needs three things of it: p(t) for the token proposed (the acceptance test), the
residual max(0, q - p) after a rejection, and, for tests and analysis, the whole row. A
proposer whose law is cheaper to read in parts (tli's shared tokens, slrs's two pieces)
implements the protocol over its own arrays; every other proposer wraps a row in DenseLaw.

A token chosen deterministically (an argmax, re-tokenized draft text) has no law: it is a
point mass on itself, which the verifier handles as `PointMass`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class DraftLaw(Protocol):
    def prob(self, token: int) -> float:
        """p(token): the probability the proposer gave the target id `token`."""
        ...

    def residual(self, q: np.ndarray) -> np.ndarray:
        """max(0, q - p) over the target's ids, unnormalised: a new array, q untouched."""
        ...

    def dense(self) -> np.ndarray:
        """p over every target id."""
        ...


class DenseLaw:
    """A law held as one row over the target's ids."""

    def __init__(self, p: np.ndarray) -> None:
        self.p = p

    def prob(self, token: int) -> float:
        return float(self.p[token])

    def residual(self, q: np.ndarray) -> np.ndarray:
        return np.maximum(q - self.p, 0.0)

    def dense(self) -> np.ndarray:
        return self.p


class PointMass:
    """All the mass on one token: what a deterministic proposal is drawn from."""

    def __init__(self, token: int, vocab_size: int) -> None:
        self.token, self.vocab_size = token, vocab_size

    def prob(self, token: int) -> float:
        return 1.0 if token == self.token else 0.0

    def residual(self, q: np.ndarray) -> np.ndarray:
        left = q.copy()
        left[self.token] = 0.0
        return left

    def dense(self) -> np.ndarray:
        p = np.zeros(self.vocab_size)
        p[self.token] = 1.0
        return p
