"""The target's verification passes as they run inside speculative decoding, by size.

    python benchmarks/verify_in_context.py [--method tokentiming] [--target-backend hf]
    GOMP_SPINCOUNT=1000 python benchmarks/verify_in_context.py     # another OpenMP spin count

A target pass timed alone (benchmarks/forward_costs.py) can be much faster than the same pass
right after the draft ran: the two models' thread pools and caches interfere. This runs the
method on one Spec-Bench question per category (64 tokens, k = 4) and prints the median time of
the target's passes by number of new tokens, then the totals.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import time

from anyspec.bench.data import read_questions, select_questions
from anyspec.cli import configure_process
from anyspec.config import GeneratorConfig
from anyspec.models.registry import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", default="tokentiming")
    ap.add_argument("--target-backend", default="hf")
    ap.add_argument("--draft-backend", default="llamacpp")
    ap.add_argument("--questions", type=int, default=5, help="how many questions (one per category)")
    args = ap.parse_args()
    configure_process()  # the OpenMP spin count `anyspec` runs with, before a model loads

    target = load_model("gemma-3-270m", args.target_backend)
    draft = load_model("smollm2-135m-instruct", args.draft_backend, draft=True)
    passes = collections.defaultdict(list)
    forward = target._forward

    def timed_forward(ids, start, n_logits):
        began = time.perf_counter()
        out = forward(ids, start, n_logits)
        passes[len(ids)].append(time.perf_counter() - began)
        return out

    target._forward = timed_forward
    gen = GeneratorConfig(method=args.method, draft_length=4).build(target, draft)
    questions = select_questions(read_questions(), per_category=1)[:args.questions]
    seconds = draft_seconds = 0.0
    for q in questions:
        target.reset()
        draft.reset()
        stats = gen.generate(target.tokenizer.encode(q.turns[0]), 64).stats
        seconds += stats.total_seconds
        draft_seconds += stats.draft_seconds
    print(f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT')}, {args.method}, "
          f"target {args.target_backend}, draft {args.draft_backend}")
    print("| new tokens | passes | median ms |\n|---|---|---|")
    for n in sorted(passes):
        if n <= 17:
            print(f"| {n} | {len(passes[n])} | {1000 * statistics.median(passes[n]):.1f} |")
    print(f"total {seconds:.2f} s, of which draft {draft_seconds:.2f} s")


if __name__ == "__main__":
    main()
