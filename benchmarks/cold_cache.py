"""What small steps of a round cost right after a forward pass, against the same steps warm.

    python benchmarks/cold_cache.py [--repeats 200]

A forward pass streams the model's weights through the CPU caches and evicts everything else,
so the Python and numpy work that follows it runs cold. Each step is timed right after a
SmolLM2 draft pass (cold) and again right after itself (warm); the table shows the medians.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import time

import numpy as np

from anyspec.models.registry import load_model

TEXT = "The results of the experiment were clear, and the"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()

    draft = load_model("smollm2-135m-instruct", "llamacpp", draft=True)
    target = load_model("gemma-3-270m", "llamacpp")
    context = draft.tokenizer.encode(TEXT)
    row = draft.logits(context, 1)[0]
    steps = {
        "a trivial numpy call (np.add of two floats)": lambda: np.add(1.0, 2.0),
        "argmax of a 49k-logit row": lambda: np.argmax(row),
        # how fast_exp.exp_sum hands a row to ggml's C loop: the old way and the current one
        "a row's address by row.__array_interface__": lambda: row.__array_interface__["data"][0],
        "a row's address by ctypes.c_char.from_buffer":
            lambda: ctypes.addressof(ctypes.c_char.from_buffer(row)),
        "Gemma 3 tokenizer, 50 characters": lambda: target.tokenizer.encode(TEXT, add_special=False),
        "SmolLM2 tokenizer, 50 characters": lambda: draft.tokenizer.encode(TEXT, add_special=False),
    }
    print("| step | after a forward pass | warm |\n|---|---|---|")
    for name, step in steps.items():
        cold, warm = [], []
        for i in range(args.repeats):
            draft.logits(context + [i % 100 + 10], 1)  # a new token each time: a real pass
            for times in (cold, warm):
                began = time.perf_counter()
                step()
                times.append(time.perf_counter() - began)
        print(f"| {name} | {1e6 * statistics.median(cold):.0f} us | "
              f"{1e6 * statistics.median(warm):.0f} us |")


if __name__ == "__main__":
    main()
