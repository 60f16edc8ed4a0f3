"""Seeded sampling on the real pair is exact: every method, draft length and tree gives, token
for token, the text target-only decoding gives with the same seed (noise.py), on Spec-Bench
prompts from every category, at temperature 1 over the whole vocabulary and at 0.7 with top-k
and top-p. Prompts alternate between the two settings, so each configuration meets both; the
draws are seeded per prompt."""

import pytest
from spec_bench import spec_bench_prompts

from anyspec.config import GeneratorConfig
from anyspec.engine import SpeculativeGenerator
from anyspec.sampling import SamplingParams

pytestmark = pytest.mark.slow

PROMPTS = spec_bench_prompts(20)
N_TOKENS = 64
SETTINGS = [SamplingParams(1.0), SamplingParams(0.7, top_k=40, top_p=0.9)]

_ALONE: dict[tuple, list[int]] = {}  # (id(target), prompt, sampling) -> ids


def sampling_for(i: int) -> SamplingParams:
    s = SETTINGS[i % 2]
    return SamplingParams(s.temperature, s.top_k, s.top_p, seed=100 + i)


def target_alone(target, i: int, prompt: str) -> list[int]:
    key = (id(target), prompt, sampling_for(i))
    if key not in _ALONE:
        _ALONE[key] = SpeculativeGenerator(target).generate(prompt, N_TOKENS,
                                                            sampling_for(i)).token_ids
    return _ALONE[key]


def assert_equal_to_target_alone(target, draft, indices, **options):
    gen = GeneratorConfig(**options).build(target, draft)
    drafted = 0
    for i in indices:
        category, prompt = PROMPTS[i]
        got = gen.generate(prompt, N_TOKENS, sampling_for(i))
        assert got.token_ids == target_alone(target, i, prompt), (options, category, i)
        drafted += got.stats.drafted
    return drafted


# the default (auto) and a fixed length on all 20 prompts; 1 and adaptive on 10 each, which
# together cover the 20, to keep the slow tier within CI's time
@pytest.mark.parametrize("draft_length, indices", [
    (4, range(20)), ("auto", range(20)), (1, range(0, 20, 2)), ("adaptive", range(1, 20, 2))])
@pytest.mark.parametrize("method", ["slem", "tokentiming", "tli", "slrs"])
def test_cross_vocabulary_sampling_equals_target_alone(method, draft_length, indices,
                                                       gemma_llamacpp, smollm_llamacpp):
    drafted = assert_equal_to_target_alone(gemma_llamacpp, smollm_llamacpp, indices,
                                           method=method, draft_length=draft_length)
    assert drafted > 0 or draft_length == "auto"  # auto may find drafting does not pay


@pytest.mark.parametrize("draft_length", [1, 4, "auto", "adaptive"])
def test_sd_sampling_equals_target_alone(draft_length, gemma_hf, gemma_llamacpp):
    """One vocabulary: Gemma 3 on transformers drafted by its Q4 on llama.cpp."""
    assert_equal_to_target_alone(gemma_hf, gemma_llamacpp, range(6), method="sd",
                                 draft_length=draft_length)


@pytest.mark.parametrize("method, tree", [("tli", 4), ("tli", 16), ("tli", "auto"),
                                          ("slem", 16), ("tokentiming", "auto")])
def test_tree_sampling_equals_target_alone(method, tree, gemma_hf, smollm_llamacpp):
    """Token trees in one transformers pass: a tli tree's siblings are the draft's
    Gumbel-top-k under the target's noise; re-tokenized trees are point masses."""
    drafted = assert_equal_to_target_alone(gemma_hf, smollm_llamacpp, range(6),
                                           method=method, tree=tree, draft_length=4)
    assert drafted > 0


def test_sd_tree_sampling_equals_target_alone(gemma_hf, gemma_llamacpp):
    assert_equal_to_target_alone(gemma_hf, gemma_llamacpp, range(6), method="sd", tree=8,
                                 draft_length=4)


def test_sampled_drafting_equals_target_alone(gemma_llamacpp, smollm_llamacpp):
    assert_equal_to_target_alone(gemma_llamacpp, smollm_llamacpp, range(8),
                                 method="tokentiming", sampled_drafting=True, draft_length=4)
