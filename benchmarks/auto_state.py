"""What `auto` knows after `anyspec bench`'s warm-up: the passes measured and its estimates.

    python benchmarks/auto_state.py [--target-backend hf] [--method tokentiming]

Builds the method as `anyspec bench` does, runs the bench's warm-up (one 8-token generation),
and prints the passes each model recorded by size (seconds, in order), the controller's
acceptance, draft cost and best draft length, the same with the estimates used before commit
dbf545e, and the estimates of the draft reading a 300-token prompt next to the draft actually
reading one. Run it a few times: the warm-up's first passes are cold, and how far they stray
is what the estimates have to survive.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np

from anyspec.bench.runner import WARM_UP_PROMPT, build_methods, warm_up

PROMPT_TOKENS = 300


class OldCosts:
    """The estimates before commit dbf545e: a moving average (0.2) per size seeded by its
    first pass, and linear extrapolation from the largest size measured."""

    def __init__(self, costs) -> None:
        self.seconds = {}
        for n, passes in costs.recent.items():  # every pass, while a size has at most 4
            value = passes[0]
            for seconds in passes[1:]:
                value += 0.2 * (seconds - value)
            self.seconds[n] = value

    def estimate(self, n_tokens: int) -> float:
        sizes = sorted(self.seconds)
        if n_tokens > sizes[-1]:
            return self.seconds[sizes[-1]] * n_tokens / sizes[-1]
        return float(np.interp(n_tokens, sizes, [self.seconds[n] for n in sizes]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target-backend", default="hf", choices=["hf", "llamacpp"])
    ap.add_argument("--method", default="tokentiming")
    args = ap.parse_args()

    settings = {"target": "gemma-3-270m", "draft": "smollm2-135m-instruct",
                "target_backend": args.target_backend, "draft_backend": "auto", "device": "cpu",
                "n_ctx": None, "draft_length": "auto", "draft_stop_below": None,
                "sampled_drafting": False, "dtw_band": 8, "min_confidence": 0.05,
                "draft_window": None, "tree": None, "temperature": 0.0, "top_k": 0,
                "top_p": 1.0, "seed": None}
    methods, _, _ = build_methods(["ar", args.method], settings)
    warm_up(methods, settings)
    generator = next(cell.cell_contents for cell in methods[args.method].run.__closure__
                     if type(cell.cell_contents).__name__ == "SpeculativeGenerator")
    controller = generator._learning_controller
    target, draft = generator.target, generator.proposer.inner.draft

    for name, model in (("target", target), ("draft", draft)):
        print(f"{name} passes by size (s):")
        for n in sorted(model.costs.recent):
            passes = ", ".join(f"{s:.4f}" for s in model.costs.recent[n])
            print(f"  {n:4d}: {passes}  -> estimate {model.costs.estimate(n):.4f}")
    print(f"acceptance {controller.acceptance:.3f}, draft cost per token "
          f"{controller.draft_cost:.4f} s, best k {controller.best_k()}")
    print("expected round seconds for k = 0, 1, 2, 4, 8, 16:",
          [round(controller.expected_round_seconds(k), 3) for k in (0, 1, 2, 4, 8, 16)])

    old = copy.copy(controller)
    old.target_costs, old.draft_costs = OldCosts(target.costs), OldCosts(draft.costs)
    print(f"with the old estimates: best k {old.best_k()}, round seconds for the same k:",
          [round(old.expected_round_seconds(k), 3) for k in (0, 1, 2, 4, 8, 16)])

    estimate = draft.costs.estimate(PROMPT_TOKENS)
    old_estimate = old.draft_costs.estimate(PROMPT_TOKENS)
    ids = (draft.tokenizer.encode(WARM_UP_PROMPT + " ") * PROMPT_TOKENS)[:PROMPT_TOKENS]
    draft.rollback(0)
    start = time.perf_counter()
    draft.logits(ids, n_last=1)
    seconds = time.perf_counter() - start
    print(f"draft reading {PROMPT_TOKENS} tokens: estimated {estimate:.3f} s before it "
          f"(old estimate {old_estimate:.3f} s), measured {seconds:.3f} s")


if __name__ == "__main__":
    main()
