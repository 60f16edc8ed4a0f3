"""exp over a float32 row in place, and its sum: the one softmax pass every sampled or
confidence-reading step pays for.

numpy's float32 exp is scalar on AVX2 machines. ggml's `ggml_vec_soft_max_f32`, the loop
llama.cpp's own softmax runs, is vectorised, about 3x faster on a SmolLM2 row, and within
5e-6 of the exact exp (tests/test_fast_exp.py).
llama-cpp-python, a dependency, ships it, but not in ggml's public header, so it is looked
up by name with its C signature written down here; numpy stays the fallback wherever the
library or the symbol is missing.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path
from typing import Callable

import numpy as np


_FLOAT32 = np.dtype(np.float32)


def exp_sum(row: np.ndarray, shift: float) -> float:
    """row <- exp(row - shift), in place; returns the sum of the new row in float64.

    shift should be the row's maximum, so nothing overflows; -inf entries become 0."""
    ggml = _ggml_soft_max()
    if ggml is not None and row.dtype is _FLOAT32 and row.ndim == 1:
        # the address by ctypes' buffer protocol: right after a forward pass, with the caches
        # cold, row.__array_interface__ or row.ctypes costs 30 us, this 10
        try:
            address = ctypes.addressof(ctypes.c_char.from_buffer(row))
        except (TypeError, ValueError):  # not contiguous, read-only or empty: numpy's way
            pass
        else:
            return ggml(row.size, address, address, shift)
    row -= row.dtype.type(shift)
    np.exp(row, out=row)
    return float(row.sum(dtype=np.float64))


@functools.cache
def _ggml_soft_max() -> Callable[[int, int, int, float], float] | None:
    """ggml_float ggml_vec_soft_max_f32(const int n, float * y, const float * x, float max):
    y[i] = expf(x[i] - max), returns the sum (ggml_float is double). None if not found."""
    try:
        import llama_cpp
    except ImportError:
        return None
    # the one CPU library a source build makes; builds with a library per CPU variant
    # (libggml-cpu-haswell.so, ...) hold code this CPU may not run: numpy there
    for name in ("libggml-cpu.so", "libggml-cpu.dylib", "ggml-cpu.dll"):
        path = Path(llama_cpp.__file__).parent / "lib" / name
        if not path.exists():
            continue
        try:
            fn = ctypes.CDLL(str(path)).ggml_vec_soft_max_f32
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_double
        fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_float]
        return fn
    return None
