"""A method with chains and with token trees of several sizes, on the same prompts and seeds.

    python benchmarks/tree_sizes.py [--method tli] [--temperature 1] [--depth 8]
                                    [--sizes chain,16,32] [--values learnt|draft]
                                    [--per-category 1] [--seeds 1]

Transformers Gemma 3 target, llama.cpp SmolLM2 draft (trees need the transformers target).
For each size: MAT, tokens/s after prefill, and per round the draft's passes, the target's
verified tokens and the time of each part. `--values draft` grows trees by DySpec's own
estimate (a child is accepted with its draft probability) instead of the acceptance learnt
per rank and draft probability. Each size runs on a fresh proposer over the same loaded
models, one after the other; compare sizes within one run (machine speed drifts between runs).
"""

from __future__ import annotations

import argparse

from anyspec.bench.data import read_questions, select_questions
from anyspec.cli import configure_process
from anyspec.config import GeneratorConfig
from anyspec.engine import SpeculativeGenerator
from anyspec.models.registry import load_model
from anyspec.proposers.tree import DraftProbability
from anyspec.sampling import SamplingParams


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", default="tli", help="sd needs one vocabulary: not this pair")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--depth", type=int, default=8, help="draft length: a chain's, a tree's depth")
    ap.add_argument("--sizes", default="chain,16,32", help="chain, auto or numbers of tokens")
    ap.add_argument("--values", choices=["learnt", "draft"], default="learnt")
    ap.add_argument("--per-category", type=int, default=1, help="questions per category")
    ap.add_argument("--categories", default=None, help="comma-separated (default: all 13)")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()
    configure_process()  # the OpenMP spin count `anyspec` runs with, before a model loads

    target = load_model("gemma-3-270m", "hf")
    draft = load_model("smollm2-135m-instruct", "llamacpp", draft=True)
    categories = args.categories.split(",") if args.categories else None
    questions = select_questions(read_questions(), categories, args.per_category)
    print(f"{args.method}, {len(questions)} questions x {args.seeds} seeds, "
          f"temperature {args.temperature}, "
          f"depth {args.depth}, tree values: {args.values}")
    print("| size | MAT | tok/s after prefill | draft passes / ms per round | "
          "target tokens / ms per round | overhead ms per round |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        tree = None if size == "chain" else size
        proposer = GeneratorConfig(method=args.method, tree=tree).proposer(target, draft)
        if tree is not None and args.values == "draft":
            proposer.tree.acceptance = DraftProbability()
        gen = SpeculativeGenerator(target, proposer, args.depth)
        rounds = committed = new = 0
        decode = draft_s = target_s = 0.0
        passes = verified = 0
        for q in questions:
            prompt = target.tokenizer.encode(q.turns[0])
            for seed in range(args.seeds):
                target.reset()  # every prefill reads the whole prompt: its share is known
                draft.reset()
                d0, t0 = draft.counter.calls, target.counter.tokens
                s = gen.generate(prompt, args.max_new_tokens,
                                 SamplingParams(args.temperature, seed=seed)).stats
                # the rounds' share: the prefill is one draft pass and len(prompt) - 1
                # target tokens (the last prompt id is read in the first round)
                passes += draft.counter.calls - d0 - 1
                verified += target.counter.tokens - t0 - (len(prompt) - 1)
                rounds += s.rounds
                committed += s.round_tokens
                new += s.new_tokens
                decode += s.total_seconds - s.prefill_seconds
                draft_s += s.draft_seconds
                target_s += s.target_seconds
        other = decode - draft_s - target_s
        print(f"| {size} | {committed / rounds:.2f} | {new / decode:.1f} | "
              f"{passes / rounds:.1f} / {1000 * draft_s / rounds:.0f} | "
              f"{verified / rounds:.1f} / {1000 * target_s / rounds:.0f} | "
              f"{1000 * other / rounds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
