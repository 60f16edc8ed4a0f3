"""Cross-vocabulary methods on toy models with different segmentations of the same alphabet:
the law of the first three target tokens is enumerated exactly and compared (chi-square), and
greedy output must equal the target alone. Exercises re-tokenization, the vocabulary
intersection and draft re-synchronisation after partial acceptance.
"""

import numpy as np
import pytest
from laws import three_token_law_test
from synthetic import ToyModel, ToyTokenizer

from anyspec.config import GeneratorConfig
from anyspec.engine import SpeculativeGenerator
from anyspec.sampling import SamplingParams

TARGET_PIECES = ["a", "b", "c", "ab", "ca", " "]
DRAFT_PIECES = ["a", "b", "c", "bc", "abc", " a", " "]


@pytest.mark.parametrize("method, tree, sampled", [
    ("slem", None, False), ("tokentiming", None, False), ("tli", None, False),
    ("slrs", None, False),
    # re-tokenized trees: siblings are distinct proxies, verified as point masses (a greedy
    # drafted tree, the dearest case, runs in the slow tier)
    pytest.param("slem", 6, False, marks=pytest.mark.slow), ("tokentiming", 5, True)])
def test_cross_vocabulary_keeps_the_target_law(method, tree, sampled):
    target = ToyModel(ToyTokenizer(TARGET_PIECES), seed=11, sharpness=1.5)
    draft = ToyModel(ToyTokenizer(DRAFT_PIECES), seed=12, sharpness=1.5)
    proposer = GeneratorConfig(method=method, tree=tree, sampled_drafting=sampled).proposer(target, draft)
    gen = SpeculativeGenerator(target, proposer, 3, coupling="off")  # tli, slrs: rejection rule
    n_runs = 8000
    pvalue, drafted = three_token_law_test(gen, [0, 5], SamplingParams(1.0), 5, n_runs)
    assert drafted > n_runs  # proposals were made and verified
    assert pvalue > 1e-3


@pytest.mark.parametrize("method, tree", [
    ("slem", None), ("tokentiming", None), ("tli", None), ("slrs", None),
    ("slem", 8), ("tokentiming", 3)])
def test_cross_vocabulary_greedy_equals_target_alone(method, tree):
    target = ToyModel(ToyTokenizer(TARGET_PIECES), seed=21, n_ctx=300)
    draft = ToyModel(ToyTokenizer(DRAFT_PIECES), seed=21, n_ctx=300)
    ar = SpeculativeGenerator(ToyModel(ToyTokenizer(TARGET_PIECES), seed=21, n_ctx=300))
    proposer = GeneratorConfig(method=method, tree=tree).proposer(target, draft)
    gen = SpeculativeGenerator(target, proposer, "auto" if tree is None else 4)
    for prompt in ([0], [3, 5, 1], [4, 4]):
        assert gen.generate(prompt, 60).token_ids == ar.generate(prompt, 60).token_ids


def test_tli_reads_the_draft_law_where_it_lies():
    """SharedLaw, tli's p' without a row over the target's ids, gives the same p'(t) and the
    same residual, to the bit, as the row it replaces (the verifier's only two reads)."""
    from anyspec.proposers.intersection import SharedLaw

    target = ToyModel(ToyTokenizer(TARGET_PIECES), seed=11)
    draft = ToyModel(ToyTokenizer(DRAFT_PIECES), seed=12)
    proposer = GeneratorConfig(method="tli").proposer(target, draft)
    rng = np.random.default_rng(3)
    p = rng.random(len(DRAFT_PIECES)).astype(np.float32)
    p[proposer.banned] = 0.0
    p /= p.sum()
    row = np.zeros(len(TARGET_PIECES), dtype=np.float32)  # p' moved onto the target's ids
    row[proposer.shared_target] = p[proposer.allowed]
    law = proposer._law(p)
    assert isinstance(law, SharedLaw)
    np.testing.assert_array_equal(law.dense(), row)
    assert [law.prob(t) for t in range(len(TARGET_PIECES))] == [float(x) for x in row]
    q = rng.random(len(TARGET_PIECES)).astype(np.float32)
    q /= q.sum()
    residual = law.residual(q)
    assert residual.dtype == np.float32
    np.testing.assert_array_equal(residual, np.maximum(q - row, 0.0))
