"""Plain decoding speed of Gemma 3 on each backend under the current OpenMP settings.

    GOMP_SPINCOUNT=10000 python benchmarks/omp_spin.py            # the anyspec command's default
    GOMP_SPINCOUNT=1000 python benchmarks/omp_spin.py --busy      # beside one busy process

The spin count must be in the environment before Python starts (libgomp reads it once); with
none set, libgomp's own default (300000) applies, as for any library user of anyspec.
--busy runs a process that keeps one core busy for the duration, as on a shared machine.
Prints decode tokens/s (48 tokens, 3 repeats) for llama.cpp and transformers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from anyspec.engine import SpeculativeGenerator
from anyspec.models.registry import load_model

PROMPT = "Write a short story about a robot who learns to paint."


def decode_rates(backend: str, repeats: int = 3) -> list[float]:
    model = load_model("gemma-3-270m", backend)
    gen = SpeculativeGenerator(model)
    ids = model.tokenizer.encode(PROMPT)
    gen.generate(ids, 8)  # warm-up
    rates = []
    for _ in range(repeats):
        model.reset()
        rates.append(gen.generate(ids, 48).stats.decode_tokens_per_second)
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--busy", action="store_true", help="keep one core busy meanwhile")
    args = ap.parse_args()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        print(f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT')} "
              f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} busy={args.busy}")
        for backend in ("llamacpp", "hf"):
            rates = decode_rates(backend)
            print(f"{backend}: " + " ".join(f"{r:.1f}" for r in rates) + " tok/s")
    finally:
        if busy is not None:
            busy.kill()


if __name__ == "__main__":
    main()
