"""The keyed draws (noise.py): exact Gumbel-max samples, read a block at a time."""

import numpy as np
import pytest
from scipy.stats import chisquare

from anyspec.noise import BLOCK, Draws, Noise, key_of


def full_argmax(noise, weights, pos):
    """The definition: every id's exponential drawn, then argmax weights / E."""
    n_blocks = -(-len(weights) // BLOCK)
    smallest, where = noise.minima(pos, n_blocks)
    e = np.concatenate([noise.block(pos, b, smallest[b], where[b]) for b in range(n_blocks)])
    return int(np.argmax(weights / e[:len(weights)]))


def test_reading_blocks_lazily_gives_the_full_argmax():
    noise = Noise(key_of(5), 0)
    rng = np.random.default_rng(1)
    for trial in range(200):
        n = int(rng.integers(1, 300_000)) if trial % 2 else int(rng.integers(1, 3000))
        w = (rng.random(n) ** rng.integers(1, 40)).astype(np.float32)
        if trial % 5 == 0:  # sparse, as after top-k or top-p
            w[rng.random(n) < 0.99] = 0
            w[0] += 1e-3
        assert noise.sample(w, trial) == full_argmax(noise, w, trial), trial


def test_draws_follow_the_weights():
    noise = Noise(key_of(2), 0)
    q = np.array([0.5, 0.3, 0.15, 0.05, 0.0])
    counts = np.bincount([noise.sample(q, pos) for pos in range(20_000)], minlength=5)
    assert counts[4] == 0
    assert chisquare(counts[:4], q[:4] * 20_000).pvalue > 1e-3
    big = np.zeros(5000)
    big[[7, 1500, 4999]] = [2.0, 1.0, 1.0]  # unnormalised, in three blocks
    counts = np.bincount([noise.sample(big, pos) for pos in range(8000)], minlength=5000)
    assert chisquare(counts[[7, 1500, 4999]], [4000, 2000, 2000]).pvalue > 1e-3


def test_a_position_draws_the_same_whatever_else_is_read():
    """Keyed, not streamed: the draw at a position does not depend on earlier draws, on the
    vocabulary's length past the ids with weight, or on which stream was read first."""
    w = np.zeros(262_144, dtype=np.float32)
    w[[3, 70_000, 200_000]] = [0.2, 0.5, 0.3]
    a, b = Draws(9), Draws(9)
    b.target.sample(w, 40), b.own.sample(w, 41), b.accept.uniform(41)
    assert [a.target.sample(w, p) for p in (41, 40)] == [b.target.sample(w, p) for p in (41, 40)]
    assert a.target.sample(w[:200_001], 41) == a.target.sample(w, 41)
    assert a.accept.uniform(41, 2) == b.accept.uniform(41, 2)


def test_streams_and_seeds_are_independent():
    q = np.full(64, 1 / 64)
    d = Draws(1, coupled=False)
    same = sum(d.target.sample(q, p) == d.own.sample(q, p) for p in range(3000))
    assert same < 3000 / 64 * 2  # about 1/64 by chance
    other = Draws(2)
    same = sum(d.target.sample(q, p) == other.target.sample(q, p) for p in range(3000))
    assert same < 3000 / 64 * 2
    assert Draws(-3).target.sample(q, 0) == Draws(-3).target.sample(q, 0)  # any integer seeds


def test_coupling_picks_the_noise_a_draft_samples_with():
    d = Draws(1)
    assert d.draft is d.target
    d = Draws(1, coupled=False)
    assert d.draft is d.own


def test_all_zero_weights_are_an_error():
    with pytest.raises(ValueError, match="every weight is zero"):
        Noise(key_of(0), 0).sample(np.zeros(10), 0)


def test_a_race_over_logits_is_the_race_over_their_softmax():
    noise = Noise(key_of(4), 0)
    rng = np.random.default_rng(2)
    for pos in range(100):
        z = (rng.normal(0, 3, 262_144 if pos % 4 == 0 else 5000)).astype(np.float32)
        if pos % 3 == 0:
            z[rng.random(len(z)) < 0.9] = -np.inf  # top-k's mask
        q = np.exp(z.astype(np.float64) - z.max())
        assert noise.sample_logits(z, pos) == noise.sample(q, pos)
    with pytest.raises(ValueError):
        noise.sample_logits(np.full(4, -np.inf, dtype=np.float32), 0)
