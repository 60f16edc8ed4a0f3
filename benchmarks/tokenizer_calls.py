"""How often a cross-vocabulary method calls a tokenizer inside its rounds.

    python benchmarks/tokenizer_calls.py [--method tokentiming] [--repeats 1]

A cross-vocabulary method re-encodes text with the other tokenizer every round
(vocab/bridge.py). This runs the method greedily on one Spec-Bench question per category
(64 tokens, k = 4, llama.cpp pair) in one process and counts the calls each tokenizer gets
during generation (prompts excluded), and their mean cost, per pass over the questions.
"""

from __future__ import annotations

import argparse
import collections
import time

from anyspec.bench.data import read_questions, select_questions
from anyspec.cli import configure_process
from anyspec.config import GeneratorConfig
from anyspec.models.registry import load_model
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

    gen = GeneratorConfig(method=args.method, draft_length=4).build(target, draft)
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
