"""How long making a proposer takes, first and warm: the server makes one for each setting,
at its first request.

    python benchmarks/build_time.py [--repeats 5]

Loads the embedded pair on llama.cpp and times GeneratorConfig.proposer for each cross-vocabulary
method: the first build (vocabulary-wide tables are made) and the median of the later ones
(the tables are shared per tokenizer, or per pair of tokenizers).
"""

from __future__ import annotations

import argparse
import statistics
import time

from anyspec.cli import configure_process
from anyspec.config import CROSS_VOCABULARY, GeneratorConfig
from anyspec.models.registry import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="warm builds per method")
    args = parser.parse_args()
    configure_process()  # the OpenMP spin count `anyspec` runs with, before a model loads
    target = load_model("gemma-3-270m", "llamacpp")
    draft = load_model("smollm2-135m-instruct", "llamacpp", draft=True)
    print("| method | first build ms | warm build ms, median |\n|---|---|---|")
    for method in CROSS_VOCABULARY:
        ms = []
        for _ in range(1 + args.repeats):
            began = time.perf_counter()
            GeneratorConfig(method=method).proposer(target, draft)
            ms.append(1e3 * (time.perf_counter() - began))
        print(f"| {method} | {ms[0]:.1f} | {statistics.median(ms[1:]):.1f} |")


if __name__ == "__main__":
    main()
