"""lookup, suffix and hybrid on toy models: what lookup proposes, and that every one of them
keeps the target's output (greedy: equal to the target alone; sampled without a seed's
coupling: the exact law of three tokens; seeded: test_seeded_toy.py)."""

import numpy as np
import pytest
from laws import three_token_law_test
from synthetic import ToyModel, ToyTokenizer

from anyspec.config import GeneratorConfig
from anyspec.engine import SpeculativeGenerator
from anyspec.errors import AnyspecError
from anyspec.models.base import LanguageModel
from anyspec.noise import Draws
from anyspec.proposers.hybrid import (
    Calibration,
    HybridProposer,
    Plan,
    both_expected_tokens,
    non_decreasing,
)
from anyspec.proposers.lookup import LookupProposer, Trie, match_starts
from anyspec.sampling import SamplingParams

TARGET_PIECES = ["a", "b", "c", "ab", "ca", " "]
DRAFT_PIECES = ["a", "b", "c", "bc", "abc", " a", " "]
SAME_PIECES = ["a", "b", "c", "d", "e"]
GREEDY = SamplingParams(0.0)


class NoTrees(ToyModel):
    """A toy target that verifies chains only, as llama.cpp."""

    _forward_tree = LanguageModel._forward_tree


def target(seed=21, trees=True, n_ctx=300):
    return (ToyModel if trees else NoTrees)(ToyTokenizer(TARGET_PIECES), seed=seed, n_ctx=n_ctx)


def propose(proposer, committed, k=4):
    return proposer.propose(committed, k, GREEDY, Draws(None))


def test_match_starts_finds_every_earlier_match_with_a_continuation():
    tokens = np.array([1, 2, 3, 1, 2, 4, 1, 2])
    assert match_starts(tokens, np.array([1, 2])).tolist() == [0, 3]  # not the suffix itself
    assert match_starts(tokens, np.array([9, 9])).tolist() == []
    assert match_starts(np.array([1, 2]), np.array([1, 2])).tolist() == []


def test_the_trie_counts_matches_and_keeps_the_most_matched_nodes():
    trie = Trie()
    for continuation in ([1, 2, 3], [1, 4], [1, 2, 5], [6]):
        trie.add(continuation)
    assert trie.best_chain() == [1, 2, 3]  # 1 (3 matches), 2 (2), then 3 before 5 (added first)
    tokens, parents = trie.top(4)
    assert tokens == [1, 2, 3, 4] and parents == [-1, 0, 1, 0]


def test_lookup_continues_the_latest_match_of_the_longest_ngram():
    proposer = LookupProposer(target(trees=False))
    proposer.prefill([0, 1])
    # [1, 2] occurs twice; [0, 1, 2] only once, followed by 3, 3
    assert propose(proposer, [0, 1, 2, 3, 3, 5, 1, 2, 4, 4, 0, 1, 2]).tokens == [3, 3, 5, 1]
    assert propose(proposer, [5, 1, 2, 4, 0, 1, 2, 3, 3, 1, 2], k=2).tokens == [3, 3]
    assert propose(proposer, [0, 1, 2, 3, 4, 5]).tokens == []  # no repeated bigram
    assert propose(proposer, [0, 1, 0, 1], k=0).tokens == []


def test_suffix_also_matches_earlier_sequences_and_lookup_does_not():
    for history in (False, True):
        proposer = LookupProposer(target(trees=False), history=history)
        proposer.prefill([0, 1])
        propose(proposer, [0, 1, 2, 3, 4, 5, 1, 1])  # the first prompt and its output
        proposer.prefill([3, 4])  # a new prompt: the last sequence seen goes into the history
        assert propose(proposer, [3, 4]).tokens == ([5, 1, 1] if history else [])


def test_lookup_drafts_a_tree_of_different_continuations_where_the_target_takes_trees():
    committed = [0, 1, 2, 0, 1, 3, 4, 0, 1, 2, 5, 0, 1]
    chain = propose(LookupProposer(target(trees=False), tree_budget=16), committed, k=2)
    assert chain.tokens == [2, 5] and chain.parents is None  # latest among the most matched
    tree = propose(LookupProposer(target(), tree_budget=16), committed, k=2)
    assert sorted(zip(tree.tokens, tree.parents)) == [(0, 0), (2, -1), (3, -1), (4, 2), (5, 0)]
    assert tree.laws is None


def test_the_methods_need_the_right_models_and_options():
    t, d = target(), ToyModel(ToyTokenizer(DRAFT_PIECES), seed=1)
    assert GeneratorConfig(method="lookup").proposer(t, None).name == "lookup"
    assert GeneratorConfig(method="suffix").proposer(t, None).name == "suffix"
    with pytest.raises(AnyspecError, match="needs a draft"):
        GeneratorConfig(method="hybrid").proposer(t, None)
    hybrid = GeneratorConfig(method="hybrid").build(t, d)
    assert hybrid.proposer.model.name == "tokentiming" and hybrid.draft_length == 16
    same = ToyTokenizer(SAME_PIECES)
    assert GeneratorConfig(method="hybrid").proposer(ToyModel(same, 1), ToyModel(same, 2)).model.name == "sd"
    with pytest.raises(AnyspecError, match="tree"):
        GeneratorConfig(method="hybrid", tree=4).validate()
    assert GeneratorConfig().resolve_method(t, d) == "hybrid"  # the default
    assert GeneratorConfig(tree=4).resolve_method(t, d) == "tokentiming"  # trees of the draft
    assert GeneratorConfig().resolve_method(t, None) == "ar"
    with pytest.raises(AnyspecError, match="draft window"):
        GeneratorConfig(method="lookup", draft_window=8).validate()


def test_hybrid_learns_each_sources_acceptance_from_what_was_committed():
    t, d = target(), ToyModel(ToyTokenizer(DRAFT_PIECES), seed=1)
    hybrid = GeneratorConfig(method="hybrid").proposer(t, d)
    hybrid._pending = (3, Plan("both", 2), 0.0, {"lookup": [1, 2, 3], "model": [1, 5]})
    hybrid._learn([0, 0, 0, 1, 2, 4], 1.0)  # lookup: 2 accepted then a miss; model: 1 then a miss
    lookup, model = hybrid.sources["lookup"], hybrid.sources["model"]
    assert (lookup.accepted, lookup.rejected) == (0.95 + 2, 0.95 + 1)
    assert (model.accepted, model.rejected) == (0.95 + 1, 0.95 + 1)
    # lookup's chain is scored every round; a chain longer than what was committed and
    # matching all of it counts no rejection
    hybrid._pending = (6, Plan("model", 1), 1.0, {"lookup": [7, 8, 9]})
    hybrid._learn([0, 0, 0, 1, 2, 4, 7, 8], 2.0)
    assert (lookup.accepted, lookup.rejected) == (0.95 * (0.95 + 2) + 2, 0.95 * (0.95 + 1))
    assert both_expected_tokens(0.5, 2, 0.0, 0) == pytest.approx(1 + 0.5 + 0.25)
    assert both_expected_tokens(0.5, 1, 0.5, 1) == pytest.approx(1 + 0.75)


def test_target_costs_are_made_non_decreasing():
    assert non_decreasing([1, 3, 2, 4], [1, 1, 1, 1]) == [1, 2.5, 2.5, 4]
    # a noisy size measured once pools with the well-measured sizes around it
    assert non_decreasing([1, 3, 2, 4, 0.5, 6], [1, 1, 1, 1, 2, 1]) == pytest.approx([1, 2, 2, 2, 2, 6])


def test_a_plans_score_is_corrected_by_how_its_rounds_went():
    calibration = Calibration()
    assert calibration.gain == 1.0
    for _ in range(40):  # rounds commit half the tokens predicted, in twice the time
        calibration.fade()
        calibration.observe(Plan("both", 2, tokens=8.0, seconds=0.1), 4, 0.2)
    assert 0.25 < calibration.gain < 0.35  # a quarter, less the prior's pull towards 1
    for _ in range(300):  # not chosen again: it fades back towards the prior
        calibration.fade()
    assert calibration.gain > 0.9
    calibration.observe(Plan("model", 4), 4, 1.0)  # a plan with no estimate is not scored
    assert calibration.gain > 0.9


CASES = [("lookup", None, True), ("suffix", None, True), ("lookup", None, False),
         ("suffix", 3, True), ("hybrid", "cross", True), ("hybrid", "cross", False),
         ("hybrid", "same", True)]


def pair(kind, trees=True, seed=21, n_ctx=300):
    if kind == "same":
        tok = ToyTokenizer(SAME_PIECES)
        cls = ToyModel if trees else NoTrees
        return cls(tok, seed=seed, n_ctx=n_ctx), ToyModel(tok, seed=seed + 1, n_ctx=n_ctx)
    return target(seed, trees, n_ctx), ToyModel(ToyTokenizer(DRAFT_PIECES), seed=seed + 1, n_ctx=n_ctx)


@pytest.mark.parametrize("method, option, trees", CASES)
def test_greedy_equals_the_target_alone(method, option, trees):
    t, d = pair(option if method == "hybrid" else "cross", trees)
    tree = option if method != "hybrid" else None
    alone = SpeculativeGenerator(pair(option if method == "hybrid" else "cross", trees)[0])
    gen = GeneratorConfig(method=method, tree=tree).build(t, d)
    drafted = 0
    for prompt in ([0], [3, 5, 1], [4, 4], [0, 1, 2, 0, 1]):
        got = gen.generate(prompt, 60)
        assert got.token_ids == alone.generate(prompt, 60).token_ids, prompt
        drafted += got.stats.drafted
    assert drafted > 0


@pytest.mark.parametrize("method, option, trees", CASES)
def test_sampled_keeps_the_target_law(method, option, trees):
    t, d = pair(option if method == "hybrid" else "cross", trees, seed=11, n_ctx=64)
    tree = option if method != "hybrid" else None
    gen = GeneratorConfig(method=method, tree=tree, draft_length=3, coupling="off").build(t, d)
    if method == "hybrid":
        any_plan(gen.proposer, np.random.default_rng(7))
    n_runs = 6000  # the prompt repeats: lookup has matches from the first round
    pvalue, drafted = three_token_law_test(gen, [0, 1, 2, 0, 1, 2, 0, 1], SamplingParams(1.0), 5,
                                           n_runs)
    assert drafted > n_runs / 3  # proposals were made and verified
    assert pvalue > 1e-3
    if isinstance(gen.proposer, HybridProposer):
        assert set(gen.proposer.chosen) == {"plain", "lookup", "model"} | ({"both"} if trees else set())


def any_plan(hybrid, rng):
    """Make the hybrid pick a random plan each round, of a random length: its output must keep
    the law whatever the cost model would choose (on toys it mostly chooses plain decoding)."""
    def plan(n_lookup, k, at, tree_size=0):
        plans = ["plain", "model"] + ["lookup", "both"][:(n_lookup > 0) * (1 + hybrid.trees)]
        name = plans[rng.integers(len(plans))]
        return Plan(name, int(rng.integers(1, (n_lookup if name == "lookup" else k) + 1)))

    hybrid._plan = plan


@pytest.mark.parametrize("kind, coupling", [("cross", "auto"), ("same", "auto"), ("same", "on")])
def test_seeded_hybrid_gives_the_target_alone_text_whatever_its_plans(kind, coupling):
    t, d = pair(kind)
    alone = SpeculativeGenerator(pair(kind)[0])
    gen = GeneratorConfig(method="hybrid", coupling=coupling).build(t, d)
    any_plan(gen.proposer, np.random.default_rng(3))
    for seed in range(20):
        sampling = SamplingParams(1.0, seed=seed)
        for prompt in ([0, 1, 2, 0, 1], [3]):
            assert gen.generate(prompt, 40, sampling).token_ids == \
                alone.generate(prompt, 40, sampling).token_ids, (seed, prompt)
    assert set(gen.proposer.chosen) == {"plain", "lookup", "model", "both"}
