"""Tests of the acceptance rules on small distributions that can be enumerated.

The statistical tests draw many rounds, each with its own seed, and compare the distribution
of the first committed token with q by a chi-square test; a biased rule (e.g. accepting with p
instead of q/p, or resampling from q instead of the residual) fails these by a wide margin.
"""

import numpy as np
import pytest
from scipy.stats import chisquare

from anyspec.noise import Draws
from anyspec.sampling import SamplingParams
from anyspec.verify import DenseLaw, verify_chain

N = 40_000
T1 = SamplingParams(temperature=1.0)


def _first_token_counts(q, laws, draw_token, seed0):
    """The first committed token over N rounds with seeds seed0, seed0 + 1, ...; draw_token
    (draws) -> the proposed token."""
    logits = np.log(np.array([q, q], dtype=np.float32))
    counts = np.zeros(len(q))
    for seed in range(seed0, seed0 + N):
        draws = Draws(seed, coupled=laws is None)
        t = draw_token(draws)
        n, nxt = verify_chain([t], laws, logits, T1, draws, 0)
        counts[t if n else nxt] += 1
    return counts


Q = np.array([0.5, 0.2, 0.15, 0.1, 0.05], dtype=np.float32)
P = np.array([0.1, 0.1, 0.3, 0.3, 0.2])


@pytest.mark.parametrize("seed", [0, 1])
def test_sampled_draft_gives_target_distribution(seed):
    """The rejection rule: a draft token drawn with the draft's own noise, verified with p."""
    counts = _first_token_counts(Q, [DenseLaw(P)], lambda d: d.own.sample(P, 0), seed * N)
    assert chisquare(counts, Q * N).pvalue > 1e-3


@pytest.mark.parametrize("fixed_token", [0, 3])
def test_point_mass_proposal_gives_target_distribution(fixed_token):
    counts = _first_token_counts(Q, None, lambda d: fixed_token, 7)
    assert chisquare(counts, Q * N).pvalue > 1e-3


def test_coupled_draft_commits_the_targets_own_draw():
    """A draft coupled to the target's noise is a point mass: whatever it proposes, the
    committed token is the target's draw at that position, and it agrees often."""
    agree = 0
    logits = np.log(np.array([Q, Q], dtype=np.float32))
    for seed in range(2000):
        draws = Draws(seed)
        y = draws.target.sample(Q, 5)
        t = draws.draft.sample(P, 5)
        n, nxt = verify_chain([t], None, logits, T1, draws, 5)
        assert (t if n else nxt) == y
        agree += n
    assert agree / 2000 > 0.3  # P(argmax P/E == argmax Q/E) is about 0.4 here


def test_biased_rule_would_be_caught():
    """Guards the test itself: resampling from q (not the residual) is biased and fails."""
    counts = np.zeros(5)
    for seed in range(N):
        draws = Draws(seed, coupled=False)
        t = draws.own.sample(P, 0)
        accepted = draws.accept.uniform(0) < min(1.0, Q[t] / P[t])
        counts[t if accepted else draws.target.sample(Q, 0)] += 1
    assert chisquare(counts, Q * N).pvalue < 1e-6


def test_chain_two_positions_joint_distribution():
    """Two proposed tokens: the joint law of the first two committed tokens is q1 x q2."""
    q_rows = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]], dtype=np.float32)
    logits = np.log(q_rows)
    p = np.array([0.2, 0.3, 0.5])
    counts = np.zeros((3, 3))
    for seed in range(30_000):
        draws = Draws(seed, coupled=False)
        d = [draws.own.sample(p, 0), draws.own.sample(p, 1)]
        n, nxt = verify_chain(d, [DenseLaw(p), DenseLaw(p)], logits, T1, draws, 0)
        out = (d[:n] + [nxt])
        if len(out) < 2:  # the second token comes from the next round's row, here row 1
            out.append(draws.target.sample(q_rows[1], 1))
        counts[out[0], out[1]] += 1
    expected = np.outer(q_rows[0], q_rows[1]).astype(np.float64).ravel()
    expected *= counts.sum() / expected.sum()
    assert chisquare(counts.ravel(), expected).pvalue > 1e-3


def test_greedy_accepts_matching_prefix_then_corrects():
    logits = np.array([[0, 5, 1], [4, 0, 1], [0, 0, 9], [1, 2, 3]], dtype=np.float32)
    draws = Draws(0)
    assert verify_chain([1, 0, 2], None, logits, SamplingParams(), draws, 0) == (3, 2)
    assert verify_chain([1, 2, 2], None, logits, SamplingParams(), draws, 0) == (1, 0)
    assert verify_chain([], None, logits[:1], SamplingParams(), draws, 0) == (0, 1)
