import numpy as np
import pytest

from anyspec.errors import AnyspecError
from anyspec.sampling import SamplingParams, target_probs


def test_bad_parameters_are_rejected_with_a_message():
    with pytest.raises(AnyspecError, match="temperature"):
        SamplingParams(temperature=-0.1)
    with pytest.raises(AnyspecError, match="top_p"):
        SamplingParams(temperature=1, top_p=0)
    with pytest.raises(AnyspecError, match="top_k"):
        SamplingParams(temperature=1, top_k=-1)


def test_greedy_is_a_point_mass_on_argmax():
    q = target_probs(np.array([0.1, 3.0, 2.0]), SamplingParams())
    assert q.tolist() == [0.0, 1.0, 0.0]


def test_top_k_and_top_p_keep_the_right_tokens():
    logits = np.log(np.array([0.4, 0.3, 0.2, 0.1]))
    q = target_probs(logits, SamplingParams(temperature=1.0, top_k=2))
    assert np.allclose(q, [4 / 7, 3 / 7, 0, 0])
    q = target_probs(logits, SamplingParams(temperature=1.0, top_p=0.65))
    assert np.allclose(q, [4 / 7, 3 / 7, 0, 0])
    q = target_probs(logits, SamplingParams(temperature=1.0, top_p=0.75))
    assert np.allclose(q, [4 / 9, 3 / 9, 2 / 9, 0])


def test_top_p_on_a_large_vocabulary_matches_full_sort():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=50_000) * 0.5  # flat: the nucleus is wider than the head
    q = target_probs(logits, SamplingParams(temperature=1.0, top_p=0.9))
    full = np.exp(logits - logits.max())
    full /= full.sum()
    order = np.argsort(-full)
    n = int(np.searchsorted(np.cumsum(full[order]), 0.9)) + 1
    assert set(np.flatnonzero(q)) == set(order[:n].tolist())


def test_target_probs_is_the_softmax_of_the_scaled_logits():
    logits = np.random.default_rng(2).normal(size=262_144).astype(np.float32) * 4
    q = target_probs(logits, SamplingParams(temperature=0.7))
    exact = np.exp((logits.astype(np.float64) - logits.max()) / 0.7)
    np.testing.assert_allclose(q, exact / exact.sum(), rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("params", [SamplingParams(1.0), SamplingParams(0.7, top_k=50),
                                    SamplingParams(1.3, top_p=0.9)])
def test_q_computed_in_the_row_is_q_computed_in_a_copy(params):
    """in_place (the engine's rows, read once) changes where q is computed, not q; a row it
    may not write, or not float32, is copied as before."""
    rng = np.random.default_rng(2)
    logits = rng.normal(0.0, 4.0, 5000).astype(np.float32)
    expected = target_probs(logits, params)
    row = logits.copy()
    np.testing.assert_array_equal(target_probs(row, params, in_place=True), expected)
    frozen = logits.copy()
    frozen.flags.writeable = False
    np.testing.assert_array_equal(target_probs(frozen, params, in_place=True), expected)
    np.testing.assert_array_equal(frozen, logits)
    wide = logits.astype(np.float64)
    np.testing.assert_array_equal(target_probs(wide, params, in_place=True), expected)
    np.testing.assert_array_equal(wide, logits.astype(np.float64))


def test_a_temperature_too_small_to_scale_by_is_greedy():
    """1 / 1e-300 overflows float32: such a temperature is argmax, not a row of NaN."""
    logits = np.array([1, 2, -3, 2.5], np.float32)
    for t in (1e-300, 1e-39, 1e-6):
        params = SamplingParams(t)
        assert params.greedy
        np.testing.assert_array_equal(target_probs(logits, params), [0, 0, 0, 1])
    assert not SamplingParams(1e-4).greedy
