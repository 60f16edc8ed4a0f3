"""How often a cross-vocabulary method calls a tokenizer inside its rounds.

    python benchmarks/tokenizer_calls.py [--method tokentiming] [--repeats 1]

Right after a forward pass a tokenizer call costs ~200 us (cold caches), so the bridge spells
what it can without one (vocab/bridge.py, SpaceWords). This runs the method greedily on one
Spec-Bench question per category (64 tokens, k = 4, llama.cpp pair) in one process and counts
the calls each tokenizer gets during generation (prompts excluded), per pass over the
questions: the first pass also pays for what SpaceWords has not learned yet.
"""

from __future__ import annotations

import argparse
import collections
import time

from anyspec.bench.data import read_questions, select_questions
from anyspec.cli import configure_process
from anyspec.engine import SpeculativeGenerator
from anyspec.models.registry import load_model
from anyspec.proposers import make_proposer
from anyspec.sampling import SamplingParams


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", default="tokentiming")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    configure_process()  # the OpenMP spin count `anyspec` runs with, before a model loads

    target = load_model("gemma-3-270m", "llamacpp")
    draft = load_model("smollm2-135m-instruct", "llamacpp", draft=True)
    calls: collections.Counter = collections.Counter()
    seconds: collections.Counter = collections.Counter()
    counting = [False]
    for name, model in (("target", target), ("draft", draft)):
        encode = model.tokenizer.encode

        def counted(*a, _encode=encode, _name=name, **kw):
            began = time.perf_counter()
            try:
                return _encode(*a, **kw)
            finally:
                calls[_name] += counting[0]
                seconds[_name] += counting[0] * (time.perf_counter() - began)
        model.tokenizer.encode = counted

    gen = SpeculativeGenerator(target, make_proposer(args.method, target, draft), 4)
    questions = select_questions(read_questions(), per_category=1)
    print("| pass | rounds | target tokenizer calls | draft tokenizer calls | per round "
          "| us per call |")
    print("|---|---|---|---|---|---|")
    for n in range(1, args.repeats + 1):
        calls.clear()
        seconds.clear()
        rounds = 0
        for q in questions:
            target.reset()
            draft.reset()
            prompt = target.tokenizer.encode(q.turns[0])
            counting[0] = True
            rounds += gen.generate(prompt, 64, SamplingParams(temperature=0.0)).stats.rounds
            counting[0] = False
        total = calls["target"] + calls["draft"]
        print(f"| {n} | {rounds} | {calls['target']} | {calls['draft']} | {total / rounds:.2f} "
              f"| {1e6 * sum(seconds.values()) / max(total, 1):.0f} |")


if __name__ == "__main__":
    main()
