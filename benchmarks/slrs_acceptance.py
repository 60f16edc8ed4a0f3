"""How often each sampled proposal is accepted, computed exactly instead of counted.

    python benchmarks/slrs_acceptance.py [--questions 13] [--tokens 64] [--temperature 1]

MAT from a run at temperature 1 moves by +-0.06 between two runs of the same code here (a
draw flips where two passes differ in the last bits), more than the gain of `slrs`'s two-piece
branches. So this takes the draws out: the target alone writes 64 tokens per Spec-Bench
question (one per category, llama.cpp pair, seeded), and at each of those positions every
proposer proposes one token for the same committed text. For a proposal drawn from p the
first token is accepted with probability sum_t min(q(t), p(t)); for a point mass on t (`slem`)
with q(t). Prints the mean over positions with its standard error (the positions are the
same for every row, so differences between rows are paired and tighter than the errors), and
the draft's rows per proposed token (one-token forwards, siblings counted apiece).
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from anyspec.bench.data import read_questions, select_questions
from anyspec.config import GeneratorConfig
from anyspec.engine import SpeculativeGenerator
from anyspec.models.registry import load_model
from anyspec.noise import Draws
from anyspec.proposers.string_rejection import StringRejectionProposer
from anyspec.sampling import SamplingParams, target_probs


def acceptance(proposal, q: np.ndarray) -> float:
    if not proposal.tokens:
        return 0.0
    if proposal.laws is None:  # a point mass on the proposed token
        return float(q[proposal.tokens[0]])
    p = np.asarray(proposal.laws[0].dense(), dtype=np.float64)
    return float(np.minimum(q, p).sum())


def count_rows(draft, counter: list[int]) -> None:
    """counter[0] += rows the draft computes for a proposal (its logits and sibling calls)."""
    logits, siblings = draft.logits, draft.sibling_logits

    def counted_logits(ids, n_last=1):
        counter[0] += 1
        return logits(ids, n_last=n_last)

    def counted_siblings(ids, sibling_ids):
        before = counter[0]
        rows = siblings(ids, sibling_ids)
        counter[0] = before + len(sibling_ids)  # a lone sibling goes through logits: once
        return rows
    draft.logits, draft.sibling_logits = counted_logits, counted_siblings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=13)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=1.0)
    args = ap.parse_args()

    target = load_model("gemma-3-270m", "llamacpp")
    draft = load_model("smollm2-135m-instruct", "llamacpp", draft=True)
    rows = [0]
    count_rows(draft, rows)
    proposers = {
        "slem (point mass)": GeneratorConfig(method="slem").proposer(target, draft),
        "tli": GeneratorConfig(method="tli").proposer(target, draft),
        "slrs, no branches": StringRejectionProposer(draft, target, branches=0),
        "slrs, 1 branch": StringRejectionProposer(draft, target, branches=1),
        "slrs, 2 branches, no floor": StringRejectionProposer(draft, target, branch_floor=0.0),
        "slrs (2 branches, floor 0.1)": StringRejectionProposer(draft, target),
        "slrs, 2 branches, floor 0.3": StringRejectionProposer(draft, target, branch_floor=0.3),
    }
    params = SamplingParams(temperature=args.temperature)
    accepted = {name: [] for name in proposers}
    drafted_rows = dict.fromkeys(proposers, 0)
    questions = select_questions(read_questions(), per_category=1)[:args.questions]
    for n, question in enumerate(questions):
        prompt = target.tokenizer.encode(question.turns[0])
        written = SpeculativeGenerator(target).generate(
            prompt, args.tokens, SamplingParams(args.temperature, seed=n)).token_ids
        target_rows = target.logits(prompt + written[:-1], n_last=len(written))
        for i in range(len(written)):
            committed = prompt + written[:i]
            q = target_probs(target_rows[i], params).astype(np.float64)
            for name, proposer in proposers.items():
                proposer.prefill(committed, warm=False)
                before = rows[0]
                proposal = proposer.propose(committed, 1, params, Draws(i, coupled=False))
                drafted_rows[name] += rows[0] - before
                accepted[name].append(acceptance(proposal, q))
        print(f"question {n + 1}/{len(questions)} ({question.category}) done", flush=True)

    positions = len(next(iter(accepted.values())))
    print(f"\n{positions} positions, temperature {args.temperature}\n")
    print("| proposer | P(first token accepted) | draft rows per proposal |\n|---|---|---|")
    for name, values in accepted.items():
        mean = float(np.mean(values))
        error = float(np.std(values)) / math.sqrt(len(values))
        print(f"| {name} | {mean:.4f} +- {error:.4f} | {drafted_rows[name] / positions:.2f} |")


if __name__ == "__main__":
    main()
