"""Exact sequence laws of toy models, and chi-square tests of sampled outputs against them:
shared by the engine's lossless tests on toy models."""

import itertools

import numpy as np
from scipy.stats import chisquare

from anyspec.sampling import SamplingParams, target_probs


def exact_sequence_law(model, prompt, n, params):
    """P(x_1..x_n | prompt) for every sequence, from the processed target distributions."""
    law = {}
    for seq in itertools.product(range(model.vocab_size), repeat=n):
        p, ctx = 1.0, list(prompt)
        for t in seq:
            q = target_probs(model.row(ctx), params).astype(np.float64)
            p *= q[t] / q.sum()  # q is float32: its sum is 1 to 1e-7, the chi-square wants 1e-8
            ctx.append(t)
        law[seq] = p
    return law


def law_pvalue(counts, law, n_runs):
    """Chi-square p-value of observed sequence counts against the exact law."""
    keys = [s for s in law if law[s] > 0]
    assert sum(counts[s] for s in keys) == n_runs, "outputs outside the target's support"
    expected = np.array([law[s] for s in keys]) * n_runs
    observed = np.array([counts[s] for s in keys])
    # pool rare sequences so every cell expects >= 5
    rare = expected < 5
    observed = np.append(observed[~rare], observed[rare].sum())
    expected = np.append(expected[~rare], expected[rare].sum())
    return chisquare(observed, expected).pvalue


def three_token_law_pvalue(gen, params, seed, n_runs=12_000):
    """Generate 3 tokens after [0, 1] n_runs times (seeds drawn from `seed`); the p-value of
    the sequence counts against the target's exact law."""
    return three_token_law_test(gen, [0, 1], params, seed, n_runs)[0]


def three_token_law_test(gen, prompt, params, seed, n_runs):
    """(p-value, tokens drafted): 3 tokens after `prompt`, n_runs times with seeds drawn from
    `seed`, against the target's exact law."""
    law = exact_sequence_law(gen.target, prompt, 3, params)
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(law, 0)
    drafted = 0
    for _ in range(n_runs):
        out = gen.generate(prompt, 3, SamplingParams(params.temperature, params.top_k,
                                                     seed=int(rng.integers(2**63))))
        counts[tuple(out.token_ids)] += 1
        drafted += out.stats.drafted
    return law_pvalue(counts, law, n_runs), drafted
