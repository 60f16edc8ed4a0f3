"""Where a round's overhead goes: the work outside the two models' forward passes, by part.

    python benchmarks/overhead_parts.py [--method tokentiming] [--questions 5] [--temperature 0]

Runs the method on one Spec-Bench question per category (64 tokens, k = 4, llama.cpp pair)
with a timer around each part of the round, and prints the median round overhead and each
part's mean microseconds per round. Forward passes are subtracted from the parts that contain
them. The timers cost about a microsecond each, so the parts add up to slightly more than the
overhead measured without them.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time

import anyspec.engine as engine
import anyspec.proposers.draft_chain as draft_chain_module
import anyspec.proposers.retokenize as retokenize
from anyspec.bench.data import read_questions, select_questions
from anyspec.cli import configure_process
from anyspec.config import GeneratorConfig
from anyspec.models.registry import load_model
from anyspec.sampling import SamplingParams

spent = collections.Counter()  # part -> seconds, forward passes excluded
forward_seconds = [0.0]  # forward time so far, to subtract from enclosing parts


def timed(name, fn):
    def wrapper(*args, **kwargs):
        forward_before = forward_seconds[0]
        began = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - began - (forward_seconds[0] - forward_before)
    return wrapper


def count_forward(model):
    forward = model._forward

    def wrapper(*args):
        began = time.perf_counter()
        try:
            return forward(*args)
        finally:
            forward_seconds[0] += time.perf_counter() - began
    model._forward = wrapper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", default="tokentiming")
    ap.add_argument("--questions", type=int, default=5)
    ap.add_argument("--temperature", type=float, default=0.0)
    args = ap.parse_args()
    configure_process()  # the OpenMP spin count `anyspec` runs with, before a model loads

    target = load_model("gemma-3-270m", "llamacpp")
    draft = load_model("smollm2-135m-instruct", "llamacpp", draft=True)
    for model in (target, draft):
        count_forward(model)
        model.logits = timed(f"{'target' if model is target else 'draft'}.logits bookkeeping",
                             model.logits)
    engine.verify_chain = timed("verify_chain", engine.verify_chain)
    engine.TextTracker.update = timed("TextTracker.update", engine.TextTracker.update)
    retokenize.DraftSide.sync = timed("DraftSide.sync", retokenize.DraftSide.sync)
    retokenize.reencode_continuation = timed("reencode_continuation",
                                             retokenize.reencode_continuation)
    retokenize.RetokenizingProposer._confident_prefix = timed(
        "DTW confidence", retokenize.RetokenizingProposer._confident_prefix)
    for module in (retokenize, draft_chain_module):
        module.draft_chain = timed("draft_chain (less logits)", draft_chain_module.draft_chain)

    proposer = GeneratorConfig(method=args.method, draft_length=4).proposer(target, draft)
    proposer.propose = timed("propose (all)", proposer.propose)
    gen = engine.SpeculativeGenerator(target, proposer, 4)
    questions = select_questions(read_questions(), per_category=1)[:args.questions]
    params = SamplingParams(temperature=args.temperature, seed=0)
    overheads, rounds = [], 0
    for q in questions:
        target.reset()
        draft.reset()
        stats = gen.generate(target.tokenizer.encode(q.turns[0]), 64, params).stats
        overheads += stats.overhead_ms
        rounds += stats.rounds
    # the bookkeeping of draft.logits runs inside draft_chain: report it apart
    spent["draft_chain (less logits)"] -= spent["draft.logits bookkeeping"]
    print(f"{args.method}, T={args.temperature}, {len(questions)} questions, {rounds} rounds; "
          f"overhead per round: median {statistics.median(overheads):.2f} ms, "
          f"mean {statistics.mean(overheads):.2f} ms")
    print("| part | us per round |\n|---|---|")
    for name, seconds in spent.most_common():
        print(f"| {name} | {1e6 * seconds / rounds:.0f} |")


if __name__ == "__main__":
    main()
