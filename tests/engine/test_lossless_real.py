"""Lossless on the real models: greedy output of every method equals the target alone, token
for token, on Spec-Bench prompts from every category; under the rejection rule, sampled first
tokens follow the target (seeded sampling, exact: test_seeded_real.py).
"""

import numpy as np
import pytest
from scipy.stats import chisquare
from spec_bench import spec_bench_prompts

from anyspec.config import GeneratorConfig
from anyspec.engine import SpeculativeGenerator
from anyspec.sampling import SamplingParams, target_probs

pytestmark = pytest.mark.slow

PROMPTS = spec_bench_prompts(20)  # 13 categories, translation included
N_TOKENS = 64


_TARGET_ALONE: dict[tuple[int, str], list[int]] = {}  # (id(target), prompt) -> greedy ids


def _target_alone(target, prompt):
    key = (id(target), prompt)
    if key not in _TARGET_ALONE:
        _TARGET_ALONE[key] = SpeculativeGenerator(target).generate(prompt, N_TOKENS).token_ids
    return _TARGET_ALONE[key]


def _assert_greedy_equal(target, generator):
    drafted = 0
    for category, prompt in PROMPTS:
        expected = _target_alone(target, prompt)
        got = generator.generate(prompt, N_TOKENS)
        assert got.token_ids == expected, f"{generator.method} differs on a {category} prompt"
        drafted += got.stats.drafted
    assert drafted > 0  # speculation really ran


def test_sd_greedy_equals_target_alone(gemma_hf, gemma_llamacpp):
    """Same-vocabulary pair: Gemma 3 Q4 on llama.cpp drafts for Gemma 3 fp32 on transformers."""
    proposer = GeneratorConfig(method="sd").proposer(gemma_hf, gemma_llamacpp)
    _assert_greedy_equal(gemma_hf, SpeculativeGenerator(gemma_hf, proposer, "auto"))


@pytest.mark.parametrize("method", ["slem", "tokentiming", "tli", "slrs"])
def test_cross_vocabulary_greedy_equals_target_alone(method, gemma_llamacpp, smollm_llamacpp):
    proposer = GeneratorConfig(method=method).proposer(gemma_llamacpp, smollm_llamacpp)
    _assert_greedy_equal(gemma_llamacpp, SpeculativeGenerator(gemma_llamacpp, proposer, 4))


@pytest.mark.parametrize("method", ["lookup", "suffix", "hybrid"])
def test_lookup_and_hybrid_greedy_equal_target_alone(method, gemma_llamacpp, smollm_llamacpp):
    """Chains (llama.cpp verifies no trees); suffix and hybrid also match the earlier prompts'
    outputs, since one generator runs them all."""
    generator = GeneratorConfig(method=method).build(gemma_llamacpp, smollm_llamacpp)
    _assert_greedy_equal(gemma_llamacpp, generator)


@pytest.mark.parametrize("method", ["suffix", "hybrid"])
def test_lookup_trees_and_hybrid_trees_greedy_equal_target_alone(method, gemma_hf, smollm_llamacpp):
    """On transformers: suffix's matches as a tree, hybrid's lookup and draft as two branches."""
    generator = GeneratorConfig(method=method).build(gemma_hf, smollm_llamacpp)
    for category, prompt in PROMPTS[:13:2]:
        got = generator.generate(prompt, N_TOKENS)
        assert got.token_ids == _target_alone(gemma_hf, prompt), category


def test_a_draft_reading_only_the_end_of_the_prompt_changes_nothing(gemma_llamacpp,
                                                                     smollm_llamacpp):
    """A 16-token draft window (most prompts cut) changes what is proposed, not the output."""
    proposer = GeneratorConfig(method="tokentiming", draft_window=16).proposer(gemma_llamacpp, smollm_llamacpp)
    generator = SpeculativeGenerator(gemma_llamacpp, proposer, 4)
    drafted = 0
    for category, prompt in PROMPTS[:13:3]:
        got = generator.generate(prompt, N_TOKENS)
        assert got.token_ids == _target_alone(gemma_llamacpp, prompt), category
        draft_text = proposer.side.text
        assert draft_text.start > 0  # the prompt was cut
        assert smollm_llamacpp.tokenizer.decode_bytes(draft_text.ids) == \
            bytes(proposer.side.committed_text[draft_text.start:draft_text.covered])
        drafted += got.stats.drafted
    assert drafted > 0


@pytest.mark.parametrize("method", ["tli", "slrs"])
def test_sampled_first_token_follows_the_target(method, gemma_llamacpp, smollm_llamacpp):
    """The rejection rule (coupling off), T=1, top-k 8: the first generated token is the one
    the draft's proposal, sampled from p, is verified at; over 1500 seeds it must follow the
    target's q (chi-square over the 8 tokens). One round per seed: 2 tokens, k = 1. Point
    masses and coupled drafts commit the target's own draw: test_seeded_real checks them
    token for token."""
    target = gemma_llamacpp
    params = SamplingParams(1.0, top_k=8)
    prompt = "My favourite thing to do on a Sunday morning is"
    q = target_probs(target.logits(target.tokenizer.encode(prompt))[-1], params).astype(np.float64)
    q /= q.sum()  # float32 sums to 1 to 1e-7; the chi-square wants its totals equal to 1e-8
    support = np.flatnonzero(q)
    proposer = GeneratorConfig(method=method).proposer(target, smollm_llamacpp)
    gen = SpeculativeGenerator(target, proposer, 1, coupling="off")
    counts = dict.fromkeys(support.tolist(), 0)
    n, drafted = 1500, 0
    for seed in range(n):
        out = gen.generate(prompt, 2, SamplingParams(1.0, top_k=8, seed=seed))
        counts[out.token_ids[0]] += 1
        drafted += out.stats.drafted
    assert drafted >= n // 2  # most rounds really proposed a token
    assert chisquare([counts[t] for t in support], q[support] * n).pvalue > 1e-3


@pytest.mark.parametrize("method, tree", [("tli", 10), ("tli", "auto"), ("slem", 10),
                                          ("tokentiming", "auto")])
def test_tree_greedy_equals_target_alone(method, tree, gemma_hf, smollm_llamacpp):
    """Token trees (one transformers pass each, ancestor-only mask), grown to 10 tokens or
    sized by measured costs, keep greedy output token for token; for slem and tokentiming each
    branch's text is re-tokenized into a tree of proxies."""
    proposer = GeneratorConfig(method=method, tree=tree).proposer(gemma_hf, smollm_llamacpp)
    generator = SpeculativeGenerator(gemma_hf, proposer, 4)
    if tree == 10:
        _assert_greedy_equal(gemma_hf, generator)
        return
    drafted = 0
    for category, prompt in PROMPTS[:13:4]:
        got = generator.generate(prompt, N_TOKENS)
        assert got.token_ids == _target_alone(gemma_hf, prompt), category
        drafted += got.stats.drafted
    assert drafted > 0


def test_tree_sampled_first_token_follows_the_target(gemma_hf, smollm_llamacpp):
    """The rejection rule (coupling off), T=1, top-k 8, a 6-token tli tree at most 2 deep:
    the first token is verified against up to six siblings drawn without replacement
    (multi-branch rejection); over 1200 seeds it must follow the target's q."""
    target = gemma_hf
    params = SamplingParams(1.0, top_k=8)
    prompt = "My favourite thing to do on a Sunday morning is"
    target.reset()
    q = target_probs(target.logits(target.tokenizer.encode(prompt))[-1], params).astype(np.float64)
    q /= q.sum()
    support = np.flatnonzero(q)
    proposer = GeneratorConfig(method="tli", tree=6).proposer(target, smollm_llamacpp)
    gen = SpeculativeGenerator(target, proposer, 2, coupling="off")
    first_rounds = []  # how many first tokens each prompt's first tree offered
    propose = proposer.propose

    def propose_and_count(committed, *args):
        proposal = propose(committed, *args)
        if len(committed) == len(prompt_ids):
            first_rounds.append(proposal.parents.count(-1))
        return proposal

    proposer.propose = propose_and_count
    prompt_ids = target.tokenizer.encode(prompt)
    counts = dict.fromkeys(support.tolist(), 0)
    n = 1200
    for seed in range(n):
        out = gen.generate(prompt, 2, SamplingParams(1.0, top_k=8, seed=seed))
        counts[out.token_ids[0]] += 1
    assert len(first_rounds) == n and np.mean(np.array(first_rounds) >= 2) > 0.5
    assert chisquare([counts[t] for t in support], q[support] * n).pvalue > 1e-3


@pytest.mark.parametrize("method", ["slem", "tokentiming", "tli", "slrs"])
def test_prompts_without_text_or_with_stray_bytes(method, gemma_llamacpp, smollm_llamacpp):
    """An empty prompt (BOS only), control tokens only, and token ids whose bytes are not
    valid UTF-8 (byte tokens: a stray continuation byte) run with every method, greedy as
    the target alone and sampled without error."""
    target = gemma_llamacpp
    stray = target.tokenizer.bytes_table().index(b"\x80")  # a byte-fallback token
    proposer = GeneratorConfig(method=method).proposer(target, smollm_llamacpp)
    generator = SpeculativeGenerator(target, proposer, 4)
    ar = SpeculativeGenerator(target)
    for prompt in ("", [2], [1, 2, 3], [2, 9259, stray], [stray, stray], [2, stray, 9259]):
        want = ar.generate(prompt, 12).token_ids
        assert generator.generate(prompt, 12).token_ids == want, prompt
        assert generator.generate(prompt, 12, SamplingParams(1.0, seed=1)).stats.new_tokens


@pytest.mark.parametrize("method", ["tli", "slrs"])
def test_sampled_second_token_follows_the_target_under_default_settings(
        method, gemma_llamacpp, smollm_llamacpp):
    """T=1 over the whole vocabulary, `adaptive` with its default early stop (what the CLI
    and the server build): four tokens, so drafts after the first are where the stop can
    cut. Given the likeliest first token a, the second must follow q(. | prompt, a)."""
    from anyspec.control import draft_stop_below

    target = gemma_llamacpp
    prompt = "Once upon a time, there"
    ids = target.tokenizer.encode(prompt)
    params = SamplingParams(1.0)
    first = int(np.argmax(target.logits(ids)[-1]))
    q = target_probs(target.logits(ids + [first])[-1], params).astype(np.float64)
    q /= q.sum()
    stop_below = draft_stop_below(None, "adaptive", method)
    assert stop_below is not None
    proposer = GeneratorConfig(method=method, draft_stop_below=stop_below).proposer(target, smollm_llamacpp)
    gen = SpeculativeGenerator(target, proposer, "adaptive", coupling="off")
    counts: dict[int, int] = {}
    for seed in range(700):
        out = gen.generate(prompt, 4, SamplingParams(1.0, seed=seed))
        if out.token_ids[0] == first:
            counts[out.token_ids[1]] = counts.get(out.token_ids[1], 0) + 1
    n = sum(counts.values())
    assert n > 300
    expected = q * n
    common = np.flatnonzero(expected >= 5)  # the rest pooled in one cell
    observed = [counts.get(int(t), 0) for t in common]
    observed.append(n - sum(observed))
    expected = np.append(expected[common], n - expected[common].sum())
    assert chisquare(observed, expected).pvalue > 1e-3
