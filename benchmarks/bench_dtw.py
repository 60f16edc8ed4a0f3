"""Micro-benchmark for anyspec.align.dtw_align on 16 x 16 token windows.

    python benchmarks/bench_dtw.py

Draft and target windows come from the same English text split into subwords
by two different deterministic splitters (as two vocabularies would), so the
pairs look like real cross-vocabulary alignments.  Each window is aligned with
the default band (8) and with no band.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

try:
    from anyspec.align import dtw_align
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from anyspec.align import dtw_align

TEXT = (
    "Speculative decoding speeds up inference of large language models by letting a "
    "small draft model propose several tokens that the large target model verifies in "
    "a single forward pass. When the two models use different tokenizers the proposed "
    "tokens must be mapped onto the target vocabulary, and dynamic time warping over "
    "the token strings gives a monotone alignment with one-to-one, many-to-one and "
    "one-to-many links. Scaling laws suggest that bigger models are better, but the "
    "latency of autoregressive generation grows with model size, which is exactly the "
    "problem that speculative execution was designed to solve without changing the "
    "output distribution of the target model in any way whatsoever."
)

N = 16


def subword_split(text: str, seed: int, max_piece: int) -> list[str]:
    """Split words (with their leading space) into random-length pieces."""
    rng = random.Random(seed)
    out: list[str] = []
    for i, word in enumerate(text.split(" ")):
        s = word if i == 0 else " " + word
        while s:
            n = rng.randint(1, max_piece)
            if len(s) <= 4 and rng.random() < 0.7:  # short words usually stay whole
                n = len(s)
            out.append(s[:n])
            s = s[n:]
    return out


def windows() -> list[tuple[list[str], list[str]]]:
    draft = subword_split(TEXT, seed=1, max_piece=4)
    target = subword_split(TEXT, seed=2, max_piece=6)
    # Start each window at the same text position on both sides.
    d_pos, t_pos = [0], [0]
    for tok in draft:
        d_pos.append(d_pos[-1] + len(tok))
    for tok in target:
        t_pos.append(t_pos[-1] + len(tok))
    t_index = {p: j for j, p in enumerate(t_pos)}
    out = []
    for i, p in enumerate(d_pos[:-1]):
        j = t_index.get(p)
        if j is not None and i + N <= len(draft) and j + N <= len(target):
            out.append((draft[i : i + N], target[j : j + N]))
    return out


def measure(pairs, band, reps: int) -> list[int]:
    samples = []
    clock = time.perf_counter_ns
    for r in range(reps):
        d, t = pairs[r % len(pairs)]
        t0 = clock()
        dtw_align(d, t, band)
        samples.append(clock() - t0)
    return samples


def report(name: str, samples: list[int]) -> None:
    us = sorted(x / 1000 for x in samples)
    p90 = us[int(0.9 * (len(us) - 1))]
    print(f"{name:<22} median {statistics.median(us):8.1f} us   p90 {p90:8.1f} us   (n={len(us)})")


def main() -> None:
    pairs = windows()
    print(f"{len(pairs)} distinct {N}x{N} windows, e.g.")
    print(f"  draft : {pairs[0][0]}")
    print(f"  target: {pairs[0][1]}")
    for band in (8, None):
        measure(pairs, band, 500)  # warm up the interpreter
        report(f"w={band}", measure(pairs, band, 5000))


if __name__ == "__main__":
    main()
