"""Statistical tests of the acceptance rule on small distributions that can be enumerated.

Each test draws many rounds with a fixed seed and compares the distribution of the first
committed token with q by a chi-square test; a biased rule (e.g. accepting with p instead of
q/p, or resampling from q instead of the residual) fails these by a wide margin.
"""

import numpy as np
import pytest
from scipy.stats import chisquare

from anyspec.sampling import SamplingParams, sample
from anyspec.verify import DenseLaw, PointMass, accept_or_resample, verify_chain

N = 40_000


def _first_token_counts(q, p, draw_token, rng, point_mass):
    counts = np.zeros(len(q))
    for _ in range(N):
        t = draw_token(rng)
        law = PointMass(t, len(q)) if point_mass else DenseLaw(p)
        out = accept_or_resample(t, q, law, rng)
        counts[t if out is None else out] += 1
    return counts


@pytest.mark.parametrize("seed", [0, 1])
def test_sampled_draft_gives_target_distribution(seed):
    rng = np.random.default_rng(seed)
    q = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
    p = np.array([0.1, 0.1, 0.3, 0.3, 0.2])
    counts = _first_token_counts(q, p, lambda r: sample(p, r), rng, point_mass=False)
    assert chisquare(counts, q * N).pvalue > 1e-3


@pytest.mark.parametrize("fixed_token", [0, 3])
def test_point_mass_proposal_gives_target_distribution(fixed_token):
    rng = np.random.default_rng(7)
    q = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
    counts = _first_token_counts(q, None, lambda r: fixed_token, rng, point_mass=True)
    assert chisquare(counts, q * N).pvalue > 1e-3


def test_biased_rule_would_be_caught():
    """Guards the test itself: resampling from q (not the residual) is biased and fails."""
    rng = np.random.default_rng(3)
    q = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
    p = np.array([0.1, 0.1, 0.3, 0.3, 0.2])
    counts = np.zeros(5)
    for _ in range(N):
        t = sample(p, rng)
        accepted = rng.random() < min(1.0, q[t] / p[t])
        counts[t if accepted else sample(q, rng)] += 1
    assert chisquare(counts, q * N).pvalue < 1e-6


def test_chain_two_positions_joint_distribution():
    """Two proposed tokens: the joint law of the first two committed tokens is q1 x q2."""
    rng = np.random.default_rng(11)
    q_rows = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    logits = np.log(q_rows)
    p = np.array([0.2, 0.3, 0.5])
    params = SamplingParams(temperature=1.0)
    counts = np.zeros((3, 3))
    for _ in range(30_000):
        d = [sample(p, rng), sample(p, rng)]
        n, nxt = verify_chain(d, [DenseLaw(p), DenseLaw(p)], logits, params, rng)
        out = (d[:n] + [nxt])
        if len(out) < 2:  # the second token comes from the next round's row, here row 1
            out.append(sample(q_rows[1], rng))
        counts[out[0], out[1]] += 1
    expected = np.outer(q_rows[0], q_rows[1]).ravel() * counts.sum()
    assert chisquare(counts.ravel(), expected).pvalue > 1e-3


def test_greedy_accepts_matching_prefix_then_corrects():
    logits = np.array([[0, 5, 1], [4, 0, 1], [0, 0, 9], [1, 2, 3]], dtype=np.float32)
    rng = np.random.default_rng(0)
    assert verify_chain([1, 0, 2], None, logits, SamplingParams(), rng) == (3, 2)
    assert verify_chain([1, 2, 2], None, logits, SamplingParams(), rng) == (1, 0)
    assert verify_chain([], None, logits[:1], SamplingParams(), rng) == (0, 1)
