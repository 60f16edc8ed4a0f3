"""What a greedy verification's argmax over one Gemma row costs, by when it is taken.

    python benchmarks/argmax_in_cache.py [--repeats 30]

Gemma 3's rows are 262k floats (1 MB). After a 5-row target pass (llama.cpp) this times, per
row: the copy out of llama.cpp's buffer, the argmax right after that copy (the row is in
cache: what `greedy_logits` does), the argmax of a row once all five are copied (what taking
it after the pass costs), and the argmax read from llama.cpp's own buffer with no copy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from anyspec.models.registry import load_model

PROMPT = "User: Tell me about the history of Rome.\nAssistant: Rome was founded"
ROWS = 5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()

    target = load_model("gemma-3-270m", "llamacpp")
    lc, vocab = target._llama_cpp, target.vocab_size
    ids = target.tokenizer.encode(PROMPT)
    target.logits(ids[:-1], n_last=1)
    ids = ids + ids[-ROWS + 1:]  # ROWS positions to score after the cached prompt
    spent: dict[str, list[float]] = {name: [] for name in
                                     ("copy", "argmax right after its copy",
                                      "argmax once all rows are copied",
                                      "argmax in llama.cpp's buffer, no copy")}

    def source(j: int) -> np.ndarray:
        return np.ctypeslib.as_array(lc.llama_get_logits_ith(target._ctx, j), shape=(vocab,))

    def timed(name: str, fn) -> None:
        began = time.perf_counter()
        fn()
        spent[name].append(1e6 * (time.perf_counter() - began))

    for _ in range(args.repeats):
        target.logits(ids, n_last=ROWS)  # a pass; the rows are then read in each way
        rows = np.empty((ROWS, vocab), dtype=np.float32)
        for j in range(ROWS):
            timed("copy", lambda: rows.__setitem__(j, source(j)))
            timed("argmax right after its copy", rows[j].argmax)
        timed("argmax once all rows are copied", rows[0].argmax)
        target.rollback(len(ids) - ROWS)
        target.logits(ids, n_last=ROWS)
        for j in range(ROWS):
            timed("argmax in llama.cpp's buffer, no copy", source(j).argmax)
        target.rollback(len(ids) - ROWS)
    print(f"gemma-3-270m, llama.cpp, {ROWS} rows a pass, {args.repeats} passes: median us a row")
    print("| step | us |\n|---|---|")
    for name, values in spent.items():
        print(f"| {name} | {statistics.median(values):.1f} |")


if __name__ == "__main__":
    main()
