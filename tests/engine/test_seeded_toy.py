"""Seeded sampling is a function of the seed and the target alone: every method, draft length
and tree gives, token for token, the text target-only decoding gives with the same seed
(noise.py). On toy models, so that every combination runs in the fast tier."""

import pytest
from synthetic import ToyModel, ToyTokenizer

from anyspec.config import GeneratorConfig
from anyspec.engine import SpeculativeGenerator
from anyspec.sampling import SamplingParams

SAME_PIECES = ["a", "b", "c", "d", "e"]
TARGET_PIECES = ["a", "b", "c", "ab", "ca", " "]
DRAFT_PIECES = ["a", "b", "c", "bc", "abc", " a", " "]
PARAMS = [SamplingParams(1.0), SamplingParams(0.7, top_k=3, top_p=0.9)]


def models(method):
    if method == "sd":
        tok = ToyTokenizer(SAME_PIECES)
        return ToyModel(tok, seed=1, n_ctx=200), ToyModel(tok, seed=2, n_ctx=200)
    return (ToyModel(ToyTokenizer(TARGET_PIECES), seed=11, sharpness=1.5, n_ctx=200),
            ToyModel(ToyTokenizer(DRAFT_PIECES), seed=12, sharpness=1.5, n_ctx=200))


def assert_seeded_equal_to_target_alone(method, seeds=range(12), n_tokens=40, **options):
    target, draft = models(method)
    alone = SpeculativeGenerator(target)
    gen = GeneratorConfig(method=method, **options).build(target, draft)
    prompt = [0, 1]
    drafted = 0
    for params in PARAMS:
        for seed in seeds:
            sampling = SamplingParams(params.temperature, params.top_k, params.top_p, seed)
            want = alone.generate(prompt, n_tokens, sampling).token_ids
            got = gen.generate(prompt, n_tokens, sampling)
            assert got.token_ids == want, (method, options, params, seed)
            drafted += got.stats.drafted
    return drafted


@pytest.mark.parametrize("draft_length", [1, 4, "auto", "adaptive"])
@pytest.mark.parametrize("method", ["sd", "slem", "tokentiming", "tli", "slrs"])
def test_every_method_and_draft_length_gives_the_target_alone_text(method, draft_length):
    drafted = assert_seeded_equal_to_target_alone(method, draft_length=draft_length)
    assert drafted > 0 or draft_length == "auto"  # auto may find drafting does not pay


@pytest.mark.parametrize("draft_length", [1, 4, "auto"])
@pytest.mark.parametrize("method", ["lookup", "suffix", "hybrid"])
def test_lookup_and_hybrid_give_the_target_alone_text(method, draft_length):
    assert_seeded_equal_to_target_alone(method, draft_length=draft_length)


@pytest.mark.parametrize("method", ["sd", "slem", "tokentiming", "tli"])
@pytest.mark.parametrize("tree", [1, 3, 8, "auto"])
def test_every_tree_gives_the_target_alone_text(method, tree):
    assert_seeded_equal_to_target_alone(method, tree=tree, draft_length=4)


@pytest.mark.parametrize("method", ["slem", "tokentiming"])
def test_sampled_drafting_gives_the_target_alone_text(method):
    assert_seeded_equal_to_target_alone(method, sampled_drafting=True, draft_length=3)
    assert_seeded_equal_to_target_alone(method, sampled_drafting=True, tree=5, draft_length=3)


def test_the_rejection_rule_reproduces_a_seed_for_one_method_and_length():
    """coupling off: a seed still gives the same text for the same method and draft length,
    but not the target-alone text (the draft's own draws decide where rounds end)."""
    target, draft = models("tli")
    gen = GeneratorConfig(method="tli", draft_length=3, coupling="off").build(target, draft)
    alone = SpeculativeGenerator(target)
    differ = 0
    for seed in range(10):
        sampling = SamplingParams(1.0, seed=seed)
        a = gen.generate([0, 1], 40, sampling).token_ids
        assert gen.generate([0, 1], 40, sampling).token_ids == a
        differ += a != alone.generate([0, 1], 40, sampling).token_ids
    assert differ > 0


def test_a_seed_does_not_depend_on_how_the_prompt_is_given():
    """Draws are keyed by absolute position: a prompt given as text or ids, and a generation
    continued from its own first half, give the same tokens."""
    target, _ = models("slem")
    alone = SpeculativeGenerator(target)
    full = alone.generate([0, 1], 30, SamplingParams(1.0, seed=4)).token_ids
    half = alone.generate([0, 1] + full[:15], 15, SamplingParams(1.0, seed=4)).token_ids
    assert half == full[15:]
