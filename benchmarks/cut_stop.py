"""`tokentiming` drafting past its confidence cut, and stopping there, on the same prompts.

    python benchmarks/cut_stop.py [--target-backend llamacpp|hf] [--draft-lengths 4,8]
                                  [--per-category 1] [--max-new-tokens 64]

`tokentiming` proposes proxies while the product of the linked draft tokens' probabilities
stays above `--min-confidence`. Draft tokens after the product has fallen below it can only
be cut, so the proposer stops drafting there (`stop_at_cut`). This runs each draft length
with and without the stop, question by question, alternating which goes first so that
machine drift falls on both alike, and prints MAT, tokens/s after prefill and per round the
draft's passes and the time of each part. Greedy (temperature 0): both variants must give
the target's own output, and the script checks that they agree with each other.
"""

from __future__ import annotations

import argparse
import collections

from anyspec.bench.data import read_questions, select_questions
from anyspec.engine import SpeculativeGenerator
from anyspec.models.registry import load_model
from anyspec.proposers import make_proposer
from anyspec.sampling import SamplingParams


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target-backend", choices=["llamacpp", "hf"], default="llamacpp")
    ap.add_argument("--draft-lengths", default="4,8", help="comma-separated fixed lengths")
    ap.add_argument("--min-confidence", type=float, default=0.05)
    ap.add_argument("--per-category", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()

    target = load_model("gemma-3-270m", args.target_backend)
    draft = load_model("smollm2-135m-instruct", "llamacpp", draft=True)
    questions = select_questions(read_questions(), None, args.per_category)
    params = SamplingParams(temperature=0.0)
    print(f"tokentiming, {args.target_backend} target, {len(questions)} questions, "
          f"{args.max_new_tokens} new tokens, min confidence {args.min_confidence}")
    print("| draft length | stop at cut | MAT | tok/s after prefill | draft passes / ms per "
          "round | target ms per round | overhead ms per round (median) |")
    print("|---|---|---|---|---|---|---|")
    for k in (int(x) for x in args.draft_lengths.split(",")):
        totals = {stop: collections.Counter() for stop in (False, True)}
        overheads = {False: [], True: []}
        for n, q in enumerate(questions):
            prompt = target.tokenizer.encode(q.turns[0])
            outputs = {}
            for stop in ((False, True) if n % 2 == 0 else (True, False)):
                proposer = make_proposer("tokentiming", target, draft,
                                         min_confidence=args.min_confidence)
                proposer.stop_at_cut = stop
                gen = SpeculativeGenerator(target, proposer, k)
                passes_before = draft.counter.calls
                out = gen.generate(prompt, args.max_new_tokens, params)
                s, t = out.stats, totals[stop]
                outputs[stop] = out.token_ids
                t["rounds"] += s.rounds
                t["committed"] += s.round_tokens
                t["new"] += s.new_tokens
                t["decode"] += s.total_seconds - s.prefill_seconds
                t["draft"] += s.draft_seconds
                t["target"] += s.target_seconds
                t["passes"] += draft.counter.calls - passes_before - 1  # less the prefill
                overheads[stop] += s.overhead_ms
            if outputs[False] != outputs[True]:
                raise SystemExit(f"question {q.question_id}: the two variants' outputs differ")
        for stop in (False, True):
            t, r = totals[stop], totals[stop]["rounds"]
            median = sorted(overheads[stop])[len(overheads[stop]) // 2]
            print(f"| {k} | {'yes' if stop else 'no'} | {t['committed'] / r:.2f} | "
                  f"{t['new'] / t['decode']:.1f} | {t['passes'] / r:.2f} / "
                  f"{1000 * t['draft'] / r:.1f} | {1000 * t['target'] / r:.1f} | "
                  f"{median:.2f} |")


if __name__ == "__main__":
    main()
