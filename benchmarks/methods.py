"""Every method against target-only decoding on Spec-Bench prompts, in one process.

    python benchmarks/methods.py --per-category 1 --max-new-tokens 64 --temperature 0

Runs the methods interleaved per prompt (machine drift hits all alike), after one warm-up
generation, and prints a markdown table: tokens/s, ratio to `ar` on the same backend, MAT,
acceptance, drafted tokens per round, and the time split (draft / target / overhead per round).
At temperature 0 it also checks every output against `ar`'s and says so if one differs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from anyspec.engine import SpeculativeGenerator
from anyspec.models.registry import load_model
from anyspec.proposers import make_proposer
from anyspec.sampling import SamplingParams

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "spec_bench" / "question.jsonl"


def prompts(per_category: int) -> list[tuple[str, str]]:
    seen: dict[str, int] = {}
    out = []
    for line in DATA.read_text().splitlines():
        row = json.loads(line)
        if seen.get(row["category"], 0) < per_category:
            seen[row["category"]] = seen.get(row["category"], 0) + 1
            out.append((row["category"], row["turns"][0]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="gemma-3-270m")
    ap.add_argument("--draft", default="smollm2-135m-instruct")
    ap.add_argument("--target-backend", default="llamacpp")
    ap.add_argument("--draft-backend", default="llamacpp")
    ap.add_argument("--methods", default="ar,slem,tokentiming,tli")
    ap.add_argument("--per-category", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--draft-length", default="4")
    args = ap.parse_args()

    target = load_model(args.target, args.target_backend)
    draft = load_model(args.draft, args.draft_backend)
    methods = args.methods.split(",")
    stop_below = 0.4 if args.draft_length == "auto" else None
    gens = {m: SpeculativeGenerator(target, make_proposer(m, target, draft, stop_below), args.draft_length)
            for m in methods}
    rows = prompts(args.per_category)
    for g in gens.values():  # warm-up: first calls allocate buffers and fill caches
        g.generate("Hello", 8)
    results = {m: [] for m in methods}
    mismatches = []
    for i, (category, prompt) in enumerate(rows):
        for m, g in gens.items():
            params = SamplingParams(args.temperature, seed=i)
            results[m].append(g.generate(prompt, args.max_new_tokens, params))
        if args.temperature == 0 and "ar" in results:
            for m in methods:
                if results[m][-1].token_ids != results["ar"][-1].token_ids:
                    mismatches.append((m, category))
        print(f"[{i + 1}/{len(rows)}] {category}", file=sys.stderr)

    def total(m, attr):
        return sum(getattr(r.stats, attr) for r in results[m])

    ar_tps = total("ar", "new_tokens") / total("ar", "total_seconds") if "ar" in results else None
    print(f"target {target.describe()}, draft {draft.describe()}, T={args.temperature}, "
          f"draft length {args.draft_length}, {len(rows)} prompts x {args.max_new_tokens} tokens\n")
    print("| method | tok/s | vs ar | MAT | acceptance | drafted/round | draft ms/round | target ms/round | overhead ms/round (median) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in methods:
        rounds = total(m, "rounds")
        tps = total(m, "new_tokens") / total(m, "total_seconds")
        drafted = total(m, "drafted")
        overhead = statistics.median(r.stats.overhead_seconds / max(r.stats.rounds, 1) for r in results[m])
        print(f"| {m} | {tps:.1f} | {tps / ar_tps:.2f}x | {total(m, 'round_tokens') / rounds:.2f} | "
              f"{(total(m, 'accepted') / drafted if drafted else 0):.0%} | {drafted / rounds:.2f} | "
              f"{1000 * total(m, 'draft_seconds') / rounds:.1f} | {1000 * total(m, 'target_seconds') / rounds:.1f} | "
              f"{1000 * overhead:.2f} |")
    if args.temperature == 0:
        print("\ngreedy outputs equal to ar: " + ("all" if not mismatches else f"NO, differ: {mismatches}"))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
