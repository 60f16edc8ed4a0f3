"""Cost of one forward pass of each embedded model on each backend, by number of new tokens.

    python benchmarks/forward_costs.py [--repeats 20] [--context 100]

For k in 1, 2, 4, 8, 16: the median time of `LanguageModel.logits` for k new tokens after a
cached context (logits for all k rows, as verification needs), rolled back between repeats.
Prints a markdown table. These costs decide whether speculation can pay on a machine: a round
that drafts k tokens costs k draft steps plus one target pass over k + 1 tokens.
"""

from __future__ import annotations

import argparse
import statistics
import time

from anyspec.cli import configure_process
from anyspec.models.registry import load_model

SIZES = (1, 2, 4, 8, 16)
PAIRS = [("gemma-3-270m", "hf"), ("gemma-3-270m", "llamacpp"),
         ("smollm2-135m-instruct", "hf"), ("smollm2-135m-instruct", "llamacpp")]


def forward_ms(model, context: list[int], k: int, repeats: int) -> float:
    new = context[:k]  # real tokens, so the pass does real work
    times = []
    for _ in range(repeats + 2):  # two warm-up passes
        model.logits(context, n_last=1)
        start = time.perf_counter()
        model.logits(context + new, n_last=k)
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:]) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--context", type=int, default=100, help="tokens already in the cache")
    args = ap.parse_args()
    configure_process()  # the OpenMP spin count `anyspec` runs with, before a model loads
    text = ("Speculative decoding lets a small model propose tokens that a large model checks "
            "in one pass. ") * 20
    print("| model, backend | " + " | ".join(f"k = {k}" for k in SIZES) + " |")
    print("|---|" + "---|" * len(SIZES))
    for name, backend in PAIRS:
        model = load_model(name, backend)
        context = model.tokenizer.encode(text)[:args.context]
        cells = [f"{forward_ms(model, context, k, args.repeats):.1f} ms" for k in SIZES]
        print(f"| {name}, {backend} | " + " | ".join(cells) + " |", flush=True)
        del model


if __name__ == "__main__":
    main()
