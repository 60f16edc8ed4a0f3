"""How much `tli` could accept at temperature 1, by the draft's temperature.

    python benchmarks/draft_overlap.py [--tokens 24]

`tli` proposes from p', the draft's distribution renormalised over the shared tokens, and
accepts with probability sum(min(p', q)) per position (q: the target at temperature 1). This
samples Gemma 3 text (seed = question index) for one Spec-Bench question per category, and at
each position computes that overlap with the draft's logits divided by several temperatures.
Nothing is timed, so the numbers do not depend on the machine's load.
"""

from __future__ import annotations

import argparse

import numpy as np

from anyspec.bench.data import read_questions, select_questions
from anyspec.engine import SpeculativeGenerator
from anyspec.models.registry import load_model
from anyspec.sampling import SamplingParams, target_probs
from anyspec.vocab import shared_token_map

TEMPERATURES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=24, help="sampled target tokens per question")
    args = ap.parse_args()

    target = load_model("gemma-3-270m", "llamacpp")
    draft = load_model("smollm2-135m-instruct", "llamacpp", draft=True)
    to_target = shared_token_map(draft.tokenizer, target.tokenizer)
    shared = to_target >= 0
    overlaps: dict[float, list[float]] = {t: [] for t in TEMPERATURES}
    plain = SpeculativeGenerator(target)
    for i, question in enumerate(select_questions(read_questions(), per_category=1)):
        prompt = target.tokenizer.encode(question.turns[0])
        out = plain.generate(prompt, args.tokens, SamplingParams(1.0, seed=i)).token_ids
        seq = prompt + out
        rows = target.logits(seq, n_last=len(out) + 1)
        for j in range(len(out)):
            q = target_probs(rows[j], SamplingParams(1.0)).astype(np.float64)
            text = target.tokenizer.decode_bytes(seq[:len(prompt) + j])
            try:
                context = draft.tokenizer.encode(text.decode("utf-8"), add_special=True)
            except UnicodeDecodeError:  # the text ends inside a character: no draft context
                continue
            row = draft.logits(context, 1)[0].astype(np.float64)
            for t in TEMPERATURES:
                z = np.where(shared, row / t, -np.inf)
                p = np.exp(z - z.max())
                p /= p.sum()
                on_target = np.zeros(target.vocab_size)
                on_target[to_target[shared]] = p[shared]
                overlaps[t].append(float(np.minimum(on_target, q).sum()))
    n = len(overlaps[1.0])
    print(f"| draft temperature | mean overlap sum(min(p', q)) over {n} positions |\n|---|---|")
    for t in TEMPERATURES:
        print(f"| {t} | {np.mean(overlaps[t]):.3f} |")


if __name__ == "__main__":
    main()
