"""Sampling parameters and the target distribution q they define.

Every losslessness guarantee in anyspec is relative to the distribution computed here: the
target's logits after temperature, top-k and top-p. Greedy (temperature 0) is argmax.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import AnyspecError

# top-p sorts this many of the largest probabilities first rather than the whole vocabulary,
# and everything only when they hold less than top_p
_TOP_P_HEAD = 2048


GREEDY_BELOW = 1e-5


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off
    seed: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.temperature, (int, float)) or self.temperature < 0:
            raise AnyspecError(f"temperature must be >= 0 (0 means greedy), got {self.temperature!r}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise AnyspecError(f"top_k must be an integer >= 0 (0 turns it off), got {self.top_k!r}")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise AnyspecError(f"top_p must be in (0, 1] (1 turns it off), got {self.top_p!r}")

    @property
    def greedy(self) -> bool:
        """Temperature 0, or one so small that it is argmax all the same (vLLM's cut): below
        it 1 / temperature overflows the logits' precision and softmax is undefined."""
        return self.temperature < GREEDY_BELOW


def scaled_logits(logits: np.ndarray, params: SamplingParams,
                  in_place: bool = False) -> np.ndarray:
    """The logits after temperature and top-k (-inf outside the k largest), float32: q is
    their softmax, then top-p. in_place: computed in `logits` itself when it is float32 and
    writable, for a caller that reads the row only once."""
    if in_place and logits.dtype == np.float32 and logits.flags.writeable:
        z = logits
    else:
        z = np.array(logits, dtype=np.float32)  # a copy: the caller's logits stay as they were
    if params.temperature != 1:
        z *= np.float32(1.0 / params.temperature)
    if 0 < params.top_k < z.shape[0]:
        kth = np.partition(z, -params.top_k)[-params.top_k]
        z[z < kth] = -np.inf
    return z


def target_probs(logits: np.ndarray, params: SamplingParams,
                 in_place: bool = False) -> np.ndarray:
    """The processed distribution q over the vocabulary (float32, sums to 1).

    in_place: as in scaled_logits. Every method and the plain baseline sample from this same
    q; its sum is accumulated in float64.
    """
    if params.greedy:
        q = np.zeros(logits.shape[-1], dtype=np.float32)
        q[int(np.argmax(logits))] = 1.0
        return q
    z = scaled_logits(logits, params, in_place)
    z -= z.max()
    np.exp(z, out=z)
    z *= np.float32(1.0 / z.sum(dtype=np.float64))
    if params.top_p < 1.0:
        z = _apply_top_p(z, params.top_p)
    return z


def _apply_top_p(q: np.ndarray, top_p: float) -> np.ndarray:
    """Keep the smallest set of most likely tokens whose mass reaches top_p (nucleus)."""
    head = min(_TOP_P_HEAD, q.shape[0])
    idx = np.argpartition(q, -head)[-head:]
    if q[idx].sum() < top_p:  # the nucleus is wider than the head: sort everything
        idx = np.arange(q.shape[0])
    order = idx[np.argsort(-q[idx], kind="stable")]
    cum = np.cumsum(q[order], dtype=np.float64)
    n_keep = int(np.searchsorted(cum, top_p)) + 1
    out = np.zeros_like(q)
    keep = order[:n_keep]
    out[keep] = q[keep]
    return out / out.sum(dtype=np.float64)
