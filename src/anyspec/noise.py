"""Randomness keyed by (seed, position): the same seed gives the same text whatever the method.

Every draw a generation's output depends on is a function of the seed and the absolute
position of the token being decided, never of a stream shared across rounds. The target's
token at a position is the Gumbel-max (exponential race) sample

    y = argmax_i q_i / E_i,   E_i ~ Exp(1) i.i.d., fixed by (seed, position, i),

which is distributed as q. Target-only decoding takes y at each position; a speculative
method commits y too, whatever it proposed (verify/chain.py), so its output equals target-only
output token for token. A draft that samples with the same E at the same position (`Draws.
coupled`) proposes y whenever its p and the target's q pick the same token under that noise.

Sampling reads the noise one block of ids at a time. Each block's exponentials are drawn as
its minimum m (an Exp(1) / BLOCK variable), the index holding it, and m + Exp(1) for the rest:
i.i.d. Exp(1) all the same (the exponential's lack of memory), and a block whose largest weight
over m cannot beat the best ratio found is never drawn. A draw therefore usually reads one or
two blocks of a 262k vocabulary, and returns exactly what the full argmax would.
"""

from __future__ import annotations

import numpy as np

BLOCK = 1024

# what the fourth word of a Philox counter holds: which draws of a position it makes
_MINIMA, _UNIFORMS, _FIRST_BLOCK = 0, 1, 2

TARGET, OWN, ACCEPT = 0, 1, 2  # the streams of a generation's Draws


def key_of(seed: int) -> np.ndarray:
    """The 128-bit Philox key of a seed (any integer)."""
    return np.random.SeedSequence(seed % 2**128).generate_state(2, np.uint64)


class Noise:
    """Exponentials and uniforms keyed by (seed, stream, position)."""

    def __init__(self, key: np.ndarray, stream: int) -> None:
        self.key, self.stream = key, stream

    def _uniforms(self, pos: int, word: int, n: int) -> np.ndarray:
        counter = np.array([0, self.stream, pos, word], dtype=np.uint64)
        return np.random.Generator(np.random.Philox(key=self.key, counter=counter)).random(n)

    def uniform(self, pos: int, index: int = 0) -> float:
        """The index-th uniform on [0, 1) of a position."""
        return float(self._uniforms(pos, _UNIFORMS, index + 1)[index])

    def minima(self, pos: int, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
        """Each block's smallest exponential and the index within the block that holds it."""
        u = self._uniforms(pos, _MINIMA, 2 * n_blocks).reshape(2, n_blocks)
        smallest = np.maximum(-np.log1p(-u[0]) / BLOCK, 1e-300)  # > 0: ratios stay finite
        return smallest, (u[1] * BLOCK).astype(np.int64)

    def block(self, pos: int, b: int, smallest: float, where: int,
              size: int = BLOCK) -> np.ndarray:
        """The exponentials of ids b * BLOCK ... b * BLOCK + size - 1 at a position (the
        first `size` of the block's BLOCK: the same whatever the size)."""
        e = smallest - np.log1p(-self._uniforms(pos, _FIRST_BLOCK + b, size))
        if where < size:
            e[where] = smallest
        return e

    def sample(self, weights: np.ndarray, pos: int) -> int:
        """argmax_i weights_i / E_i at `pos`: a draw from weights / sum(weights) (any
        non-negative vector, not all zero)."""
        return self._race(weights, pos, lambda w: w)

    def sample_logits(self, z: np.ndarray, pos: int) -> int:
        """sample(exp(z - max z), pos) without exponentiating the whole vocabulary: only the
        blocks the race reads (z may hold -inf, not only)."""
        top = float(z.max())
        if not np.isfinite(top):
            raise ValueError("nothing to sample: every logit is -inf")
        return self._race(z, pos, lambda v: np.exp(v.astype(np.float64) - top))

    def _race(self, values: np.ndarray, pos: int, weight) -> int:
        """argmax_i weight(values)_i / E_i, reading one block of values at a time; weight is
        elementwise and increasing."""
        n = values.shape[0]
        starts = np.arange(0, n, BLOCK)
        smallest, where = self.minima(pos, len(starts))
        bound = weight(np.maximum.reduceat(values, starts)) / smallest  # no block beats its bound
        best, best_ratio = -1, 0.0
        for b in np.argsort(-bound, kind="stable").tolist():
            if bound[b] <= best_ratio:
                break
            w = weight(values[b * BLOCK:(b + 1) * BLOCK])
            ratios = w / self.block(pos, b, smallest[b], where[b], len(w))
            i = int(np.argmax(ratios))
            if ratios[i] > best_ratio:
                best, best_ratio = b * BLOCK + i, float(ratios[i])
        if best < 0:
            raise ValueError("nothing to sample: every weight is zero")
        return best


class Draws:
    """The randomness of one generation.

    target: decides the target's token at each position (and, under the rejection rule, the
        replacement for a rejected draft token).
    own: a draft's draws that are verified against their law, independent of `target`.
    accept: the uniforms of the rejection rule's acceptance tests.
    coupled: drafts that sample do so with `target`'s noise and propose point masses, so the
        output is target-only output for the seed (noise.py); else with `own`, verified by
        the rejection rule min(1, q/p) against their law.
    """

    def __init__(self, seed: int | None = None, coupled: bool = True) -> None:
        if seed is None:
            seed = int(np.random.SeedSequence().entropy)
        key = key_of(seed)
        self.target, self.own, self.accept = (Noise(key, s) for s in (TARGET, OWN, ACCEPT))
        self.coupled = coupled

    @property
    def draft(self) -> Noise:
        """The noise a draft samples target tokens with."""
        return self.target if self.coupled else self.own
