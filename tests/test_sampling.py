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
    full = np.exp(logits - logits.max()); full /= full.sum()
    order = np.argsort(-full)
    n = int(np.searchsorted(np.cumsum(full[order]), 0.9)) + 1
    assert set(np.flatnonzero(q)) == set(order[:n].tolist())
