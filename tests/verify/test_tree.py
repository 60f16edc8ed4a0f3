"""Statistical tests of the tree walk on small distributions that can be enumerated.

Trees are drawn as the DySpec proposer draws them (siblings sampled without replacement from
the parent's draft distribution) or chosen deterministically; the joint law of the first two
committed tokens must be q1(x) q2(y | x) whatever the tree looked like. Each round has its own
seed.
"""

import numpy as np
import pytest
from scipy.stats import chisquare

from anyspec.noise import Draws
from anyspec.sampling import SamplingParams
from anyspec.trees import children_of
from anyspec.verify import DenseLaw, main_path_length, verify_tree

V = 4
Q1 = np.array([0.45, 0.3, 0.15, 0.1])
Q2 = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.2, 0.3, 0.4],
               [0.25, 0.25, 0.25, 0.25], [0.05, 0.05, 0.1, 0.8]])
P1 = np.array([0.1, 0.2, 0.3, 0.4])  # a poor draft: its favourites are the target's least liked
P2 = np.array([[0.4, 0.4, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25],
               [0.1, 0.1, 0.1, 0.7], [0.3, 0.3, 0.3, 0.1]])
N = 15_000


def without_replacement(p, m, noise, pos):
    """m tokens drawn one after another from p with the earlier ones removed (the draws of
    one race at `pos`), and the distribution each was drawn from."""
    p = p.copy()
    tokens, dists = [], []
    for _ in range(m):
        if p.sum() <= 0:
            break
        p = p / p.sum()
        t = noise.sample(p, pos)
        tokens.append(t)
        dists.append(p.copy())
        p[t] = 0.0
    return tokens, dists


def sampled_tree(noise, width1, width2):
    """width1 children of the root, each with width2 children of its own."""
    tokens, parents, probs = [], [], []
    firsts, dists = without_replacement(P1, width1, noise, 0)
    for t, d in zip(firsts, dists):
        node = len(tokens)
        tokens.append(t), parents.append(-1), probs.append(d)
        seconds, dists2 = without_replacement(P2[t], width2, noise, 1)
        tokens += seconds
        parents += [node] * len(seconds)
        probs += dists2
    return tokens, parents, probs


def logits_for(tokens):
    rows = [np.log(Q1)] + [np.log(Q2[t]) for t in tokens]
    return np.array(rows, dtype=np.float32)


def two_token_counts(make_tree, seed0, point_mass=False):
    """make_tree(draft noise, seed) -> (tokens, parents, probs); N rounds, seeds seed0 on."""
    params = SamplingParams(temperature=1.0)
    counts = np.zeros((V, V))
    for seed in range(seed0 * N, (seed0 + 1) * N):
        draws = Draws(seed, coupled=False)
        tokens, parents, probs = make_tree(draws.own, seed)
        laws = None if point_mass else [DenseLaw(p) for p in probs]
        path, nxt = verify_tree(tokens, parents, laws, logits_for(tokens), params, draws, 0)
        out = [tokens[i] for i in path] + [nxt]
        if len(out) < 2:  # the second token would come from the next round's q
            out.append(draws.target.sample(Q2[out[0]], 1))
        counts[out[0], out[1]] += 1
    return counts


def joint_pvalue(counts):
    expected = (Q1[:, None] * Q2).ravel() * counts.sum()
    return chisquare(counts.ravel(), expected).pvalue


@pytest.mark.parametrize("widths", [(1, 1), (2, 1), (3, 2), (4, 0)])
def test_sampled_tree_keeps_the_joint_law(widths):
    counts = two_token_counts(lambda noise, _: sampled_tree(noise, *widths), sum(widths))
    assert joint_pvalue(counts) > 1e-3


def test_random_shapes_keep_the_joint_law():
    """The number of children may depend on what the draft drew (as in DySpec's heap)."""
    def make(noise, seed):
        return sampled_tree(noise, 1 + seed % 3, (seed // 3) % 3)
    counts = two_token_counts(make, 5)
    assert joint_pvalue(counts) > 1e-3


def test_point_mass_children_keep_the_joint_law():
    """Deterministic children (the draft's two favourites), each verified as a point mass."""
    def make(noise, seed):
        first = list(np.argsort(-P1)[:2])
        tokens, parents = list(first), [-1, -1]
        for i, t in enumerate(first):
            tokens.append(int(np.argmax(P2[t])))
            parents.append(i)
        return tokens, parents, None
    counts = two_token_counts(make, 9, point_mass=True)
    assert joint_pvalue(counts) > 1e-3


def test_keeping_p_for_later_siblings_would_be_caught():
    """Guards the test: verifying the second sibling against the original p (not p with the
    first sibling removed) is biased, and the same statistic rejects it."""
    def make(noise, seed):
        tokens, parents, probs = sampled_tree(noise, 3, 0)
        return tokens, parents, [P1] * len(tokens)
    counts = two_token_counts(make, 2)
    assert joint_pvalue(counts) < 1e-6


def test_greedy_follows_the_argmax_through_any_branch():
    # root predicts 2; node 1 (token 2) predicts 3; node 3 (token 3) predicts 0
    tokens, parents = [1, 2, 0, 3], [-1, -1, 0, 1]
    logits = np.zeros((5, V), dtype=np.float32)
    for row, best in [(0, 2), (1, 1), (2, 3), (3, 1), (4, 0)]:
        logits[row, best] = 5.0
    draws = Draws(0)
    assert verify_tree(tokens, parents, None, logits, SamplingParams(), draws, 0) == ([1, 3], 0)
    logits[0] = 0
    logits[0, 0] = 5.0  # the root now predicts a token no child has
    assert verify_tree(tokens, parents, None, logits, SamplingParams(), draws, 0) == ([], 0)


def test_coupled_tree_commits_the_targets_own_draws():
    """Siblings drawn by the target's race (Gumbel-top-k) and verified as point masses: the
    committed tokens are the target's own draws at each position."""
    params = SamplingParams(temperature=1.0)
    accepted = 0
    for seed in range(500):
        draws = Draws(seed)
        tokens, parents, _ = sampled_tree(draws.target, 2, 2)
        path, nxt = verify_tree(tokens, parents, None, logits_for(tokens), params, draws, 0)
        out = [tokens[i] for i in path] + [nxt]
        y1 = draws.target.sample(Q1, 0)
        assert out[0] == y1
        if len(out) > 1:
            assert out[1] == draws.target.sample(Q2[y1], 1)
        accepted += len(path)
    assert accepted > 0


def test_tree_shape_helpers():
    assert children_of([-1, 0, -1, 1]) == [[0, 2], [1], [3], [], []]
    assert main_path_length([-1, 0, -1, 1]) == 2
    assert main_path_length([-1, 0, 1]) == 3
    assert main_path_length([]) == 0
    with pytest.raises(ValueError):
        children_of([-1, 2, 0])
