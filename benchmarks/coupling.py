"""Coupled drafting against the rejection rule, on the real pair, interleaved.

    python benchmarks/coupling.py [--methods tli,slrs] [--temperatures 1,0.7]
                                  [--questions 13] [--tokens 64] [--draft-length 4]
                                  [--target-backend llamacpp]

For each Spec-Bench question (one per category) and temperature, target-only decoding (`ar`)
and each method with `coupling on` (the draft samples with the target's per-position noise,
point masses) and `coupling off` (its own noise, min(1, q/p)) write the same number of tokens
with the same seed, one after another. Prints per method and temperature: MAT, acceptance of
drafted tokens, tokens/s, the ratio of on to off, and how many coupled outputs equal ar's
token for token (all should; the rejection rule's need not). sd needs a pair with one
vocabulary: `--methods sd --target-backend hf --draft-backend llamacpp --draft gemma-3-270m`
runs Gemma 3 on transformers drafted by its own Q4 on llama.cpp.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from anyspec.bench.data import read_questions, select_questions
from anyspec.cli import configure_process
from anyspec.config import GeneratorConfig
from anyspec.engine import SpeculativeGenerator
from anyspec.models.registry import DEFAULT_DRAFT, DEFAULT_TARGET, load_model
from anyspec.sampling import SamplingParams


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default="tli,slrs")
    p.add_argument("--temperatures", default="1,0.7")
    p.add_argument("--questions", type=int, default=13)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--draft-length", default="4")
    p.add_argument("--target", default=DEFAULT_TARGET)
    p.add_argument("--draft", default=DEFAULT_DRAFT)
    p.add_argument("--target-backend", default="llamacpp")
    p.add_argument("--draft-backend", default="llamacpp")
    args = p.parse_args()
    configure_process()
    target = load_model(args.target, args.target_backend)
    draft = load_model(args.draft, args.draft_backend, draft=True)
    methods = args.methods.split(",")
    temperatures = [float(t) for t in args.temperatures.split(",")]
    k = args.draft_length if args.draft_length in ("auto", "adaptive") else int(args.draft_length)
    gens = {(m, c): GeneratorConfig(method=m, draft_length=k, coupling=c).build(target, draft)
            for m in methods for c in ("on", "off")}
    alone = SpeculativeGenerator(target)
    alone.generate("Warm up", 8)
    for gen in gens.values():
        gen.generate("Warm up", 8, SamplingParams(1.0, seed=0))
    totals = defaultdict(lambda: defaultdict(float))  # (method, T, coupling) -> sums
    questions = select_questions(read_questions(), per_category=1)[:args.questions]
    for n, question in enumerate(questions):
        prompt = question.turns[0]
        for temperature in temperatures:
            sampling = SamplingParams(temperature, seed=1000 + n)
            ar = alone.generate(prompt, args.tokens, sampling)
            row = totals["ar", temperature, "-"]
            row["tokens"] += ar.stats.new_tokens
            row["seconds"] += ar.stats.total_seconds
            for (method, coupling), gen in gens.items():
                out = gen.generate(prompt, args.tokens, sampling)
                row = totals[method, temperature, coupling]
                s = out.stats
                for key, value in (("tokens", s.new_tokens), ("seconds", s.total_seconds),
                                   ("rounds", s.rounds), ("round_tokens", s.round_tokens),
                                   ("drafted", s.drafted), ("accepted", s.accepted),
                                   ("equal", out.token_ids == ar.token_ids)):
                    row[key] += value
        print(f"question {n + 1}/{len(questions)} ({question.category}) done", flush=True)

    print(f"\n{len(questions)} questions, {args.tokens} tokens, draft length {args.draft_length}, "
          f"{args.target_backend} target, {time.strftime('%H:%M')}\n")
    print("| method | T | coupling | MAT | acceptance | tok/s | x ar | on / off | equal to ar |")
    print("|---|---|---|---|---|---|---|---|---|")
    for temperature in temperatures:
        base = totals["ar", temperature, "-"]
        ar_speed = base["tokens"] / base["seconds"]
        print(f"| ar | {temperature:g} | - | 1.00 | - | {ar_speed:.1f} | 1.00 | - | - |")
        for method in methods:
            speeds = {}
            for coupling in ("on", "off"):
                r = totals[method, temperature, coupling]
                speeds[coupling] = r["tokens"] / r["seconds"]
            for coupling in ("on", "off"):
                r = totals[method, temperature, coupling]
                ratio = f"{speeds['on'] / speeds['off']:.3f}" if coupling == "on" else ""
                print(f"| {method} | {temperature:g} | {coupling} | "
                      f"{r['round_tokens'] / r['rounds']:.2f} | "
                      f"{r['accepted'] / max(r['drafted'], 1):.1%} | {speeds[coupling]:.1f} | "
                      f"{speeds[coupling] / ar_speed:.2f} | {ratio} | "
                      f"{int(r['equal'])}/{len(questions)} |")


if __name__ == "__main__":
    main()
