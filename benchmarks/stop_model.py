"""`auto` with and without a model of drafting stopping early, and a fixed length, on the same
prompts.

    python benchmarks/stop_model.py [--target-backend hf|llamacpp] [--method tokentiming]
                                    [--fixed 12] [--per-category 1] [--max-new-tokens 64]

Drafting often stops short of the length `auto` asks for (the draft's confidence falls below
`--draft-stop-below`, or below tokentiming's floor). `auto` now learns how often (a stop
rate per drafted token) and how many target tokens a draft pass yields, and prices a pass by
the passes really run. The variant "auto, k drafted" is the model before that: every round
drafts the k asked for, one target token per pass. Each variant keeps one generator over all
questions (auto learns across prompts, as a server's does); the order rotates question by
question so that machine drift falls on all alike. Greedy: all must give the same output.
"""

from __future__ import annotations

import argparse
import collections

from anyspec.bench.data import read_questions, select_questions
from anyspec.control import CostAwareDraftLength
from anyspec.control.draft_length import draft_stop_below
from anyspec.engine import SpeculativeGenerator
from anyspec.models.registry import load_model
from anyspec.proposers import make_proposer
from anyspec.sampling import SamplingParams


class KDrafted(CostAwareDraftLength):
    """The model before early stops were learnt: a round drafts the k it asks for."""

    tokens_per_pass = 1.0

    def observe(self, drafted, accepted, draft_seconds=0.0, other_seconds=0.0, passes=None):
        super().observe(drafted, accepted, draft_seconds, other_seconds, None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target-backend", choices=["llamacpp", "hf"], default="hf")
    ap.add_argument("--method", default="tokentiming")
    ap.add_argument("--fixed", type=int, default=12, help="the fixed draft length compared")
    ap.add_argument("--per-category", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()

    target = load_model("gemma-3-270m", args.target_backend)
    draft = load_model("smollm2-135m-instruct", "llamacpp", draft=True)
    questions = select_questions(read_questions(), None, args.per_category)
    params = SamplingParams(temperature=0.0)

    def generator(length, controller=None):
        proposer = make_proposer(args.method, target, draft,
                                 stop_below=draft_stop_below(None, length))
        gen = SpeculativeGenerator(target, proposer, length)
        if controller:
            gen._learning_controller = controller(target, draft)
        return gen

    variants = {"auto, stops learnt": generator("auto"),
                "auto, k drafted": generator("auto", KDrafted),
                f"fixed {args.fixed}": generator(args.fixed)}
    totals = {name: collections.Counter() for name in variants}
    names = list(variants)
    for n, q in enumerate(questions):
        prompt = target.tokenizer.encode(q.turns[0])
        outputs = {}
        for name in names[n % len(names):] + names[:n % len(names)]:
            out = variants[name].generate(prompt, args.max_new_tokens, params)
            s, t = out.stats, totals[name]
            outputs[name] = out.token_ids
            t["rounds"] += s.rounds
            t["committed"] += s.round_tokens
            t["drafted"] += s.drafted
            t["new"] += s.new_tokens
            t["total"] += s.total_seconds
            t["decode"] += s.total_seconds - s.prefill_seconds
        if len(set(map(tuple, outputs.values()))) != 1:
            raise SystemExit(f"question {q.question_id}: the variants' outputs differ")
    print(f"{args.method}, {args.target_backend} target, {len(questions)} questions, "
          f"{args.max_new_tokens} new tokens, greedy")
    print("| variant | tok/s | tok/s after prefill | MAT | target tokens drafted per round |")
    print("|---|---|---|---|---|")
    for name, t in totals.items():
        print(f"| {name} | {t['new'] / t['total']:.1f} | {t['new'] / t['decode']:.1f} | "
              f"{t['committed'] / t['rounds']:.2f} | {t['drafted'] / t['rounds']:.2f} |")
    learnt = variants["auto, stops learnt"]._learning_controller
    print(f"\nlearnt: acceptance {learnt.acceptance:.2f}, stop rate {learnt.stop_rate:.2f}, "
          f"{learnt.tokens_per_pass:.2f} target tokens per pass, "
          f"{1000 * learnt.draft_cost:.1f} ms per draft pass")


if __name__ == "__main__":
    main()
