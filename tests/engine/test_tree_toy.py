"""Draft trees (DySpec) through the whole engine loop, on toy models whose sequence law can be
enumerated: the tree pass, the walk, the commit and the caches must keep the target's law."""

import pytest
from laws import three_token_law_pvalue
from synthetic import ToyModel, ToyTokenizer

from anyspec.config import GeneratorConfig
from anyspec.engine import SpeculativeGenerator
from anyspec.errors import AnyspecError
from anyspec.noise import Draws
from anyspec.proposers.base import draw_at
from anyspec.proposers.draft_chain import DraftChainProposer
from anyspec.proposers.tree import DraftTree, confirmed_branch, grow_tree
from anyspec.sampling import SamplingParams
from anyspec.trees import depths

PIECES = ["a", "b", "c", "d", "e"]


T1, TOP_K = SamplingParams(1.0), SamplingParams(0.7, top_k=3)
SLOW = pytest.mark.slow  # 12,000 generations each: the fast tier runs one case of each params


@pytest.mark.parametrize("params, budget, depth", [
    pytest.param(T1, 6, 2, id="T1-6-2"), pytest.param(TOP_K, 8, 3, id="top_k-8-3"),
    pytest.param(T1, 3, 1, id="T1-3-1", marks=SLOW),
    pytest.param(TOP_K, 3, 1, id="top_k-3-1", marks=SLOW),
    pytest.param(TOP_K, 6, 2, id="top_k-6-2", marks=SLOW),
    pytest.param(T1, 8, 3, id="T1-8-3", marks=SLOW)])
def test_tree_keeps_the_target_law_over_three_tokens(params, budget, depth):
    tok = ToyTokenizer(PIECES)
    target, draft = ToyModel(tok, seed=1), ToyModel(tok, seed=2)
    gen = SpeculativeGenerator(target, DraftChainProposer(draft, target, tree_budget=budget),
                               draft_length=depth, coupling="off")
    assert three_token_law_pvalue(gen, params, seed=budget) > 1e-3


@pytest.mark.parametrize("budget, depth", [(1, 1), (4, 2), (10, 4), (16, "auto")])
def test_tree_greedy_equals_ar(budget, depth):
    tok = ToyTokenizer(PIECES)
    target, draft = ToyModel(tok, seed=3, n_ctx=200), ToyModel(tok, seed=4, n_ctx=200)
    ar = SpeculativeGenerator(ToyModel(tok, seed=3, n_ctx=200)).generate([1, 2, 3], 80)
    gen = SpeculativeGenerator(target, DraftChainProposer(draft, target, tree_budget=budget),
                               depth)
    out = gen.generate([1, 2, 3], 80)
    assert out.token_ids == ar.token_ids
    assert out.stats.drafted >= out.stats.accepted


def test_a_wider_tree_accepts_more_per_pass():
    """Same pair, same prompts: a tree's extra branches catch tokens a chain misses."""
    tok = ToyTokenizer(PIECES)
    mats = []
    for budget in (None, 12):
        target, draft = ToyModel(tok, seed=1), ToyModel(tok, seed=2)
        gen = SpeculativeGenerator(
            target, DraftChainProposer(draft, target, tree_budget=budget), draft_length=3)
        outs = [gen.generate([0, 1], 30, SamplingParams(1.0, seed=s)) for s in range(30)]
        mats.append(sum(o.stats.round_tokens for o in outs) / sum(o.stats.rounds for o in outs))
    assert mats[1] > mats[0] * 1.1, mats


def test_grown_tree_shape():
    tok = ToyTokenizer(PIECES)
    draft = ToyModel(tok, seed=2, sharpness=0.5)
    for params in (SamplingParams(), SamplingParams(1.0)):
        draw = None if params.greedy else draw_at(Draws(0).own, 2)
        tree = grow_tree(draft, [0, 1], budget=9, max_depth=3, params=params, draw=draw)
        assert len(tree.tokens) == 9 and max(depths(tree.parents)) <= 3
        assert all(-1 <= p < i for i, p in enumerate(tree.parents))
        # depth-first: the first children from the root lead
        assert tree.parents[:2] == [-1, 0]
        for parent in set(tree.parents):  # siblings drawn without replacement
            kids = [i for i, p in enumerate(tree.parents) if p == parent]
            assert len({tree.tokens[i] for i in kids}) == len(kids)
            for earlier, later in zip(kids, kids[1:]):  # later ones drawn without the earlier
                assert tree.probs[later][tree.tokens[earlier]] == 0
        for r in tree.probs:
            assert r.sum() == pytest.approx(1, abs=1e-5)
    one_deep = grow_tree(draft, [0], budget=5, max_depth=1, params=SamplingParams())
    assert one_deep.parents == [-1] * 5  # all five tokens as alternatives for one position
    assert grow_tree(draft, [0], 4, 0, SamplingParams()).tokens == []


def test_confirmed_branch_follows_the_committed_text():
    table = [b"a", b"b", b"ab", b"c"]
    tree = DraftTree(tokens=[0, 1, 2, 3, 1], parents=[-1, 0, -1, 2, 0])
    assert confirmed_branch(tree, table, b"xxabc", 2) == [2, 3]  # "ab" then "c"
    assert confirmed_branch(tree, table, b"ab", 0) == [0, 1]
    assert confirmed_branch(tree, table, b"c", 0) == []


def test_tree_only_for_methods_that_draft_trees():
    tok = ToyTokenizer(PIECES)
    target, draft = ToyModel(tok, seed=1), ToyModel(tok, seed=2)
    with pytest.raises(AnyspecError, match="trees work with sd, tli, slem, tokentiming, lookup, suffix; slrs"):
        GeneratorConfig(method="slrs", tree=8).proposer(target, draft)
    for bad in (0, "-3", "wide", 2.5):
        with pytest.raises(AnyspecError, match="tree must be auto or a number"):
            GeneratorConfig(method="sd", tree=bad).proposer(target, draft)
    assert GeneratorConfig(method="sd", tree="4").proposer(target, draft).tree.budget == 4
    assert GeneratorConfig(method="tli", tree="auto").proposer(target, draft).tree.by_cost


def test_costs_size_the_tree():
    """Sized by cost: cheap passes and tokens let a tree grow to the budget; a dear draft pass
    keeps it to the root's alternatives; a dearer one, or dear tokens, leave plain decoding,
    without even the root's draft pass."""
    from anyspec.proposers.tree import RoundCosts

    tok = ToyTokenizer(PIECES)
    draft = ToyModel(tok, seed=2, sharpness=3.0)
    draw = draw_at(Draws(0).own, 2)

    def grown(costs):
        calls = draft.counter.calls
        tree = grow_tree(draft, [0, 1], 30, 6, SamplingParams(1.0), draw, costs=costs)
        return tree, draft.counter.calls - calls

    free, _ = grown(RoundCosts(plain=1.0, draft_pass=0.0, per_token=1e-4))
    assert len(free.tokens) == 30
    shallow, passes = grown(RoundCosts(plain=1.0, draft_pass=0.2, per_token=1e-3))
    assert passes == 1 and max(depths(shallow.parents)) == 1 and len(shallow.tokens) >= 2
    for costs in (RoundCosts(plain=1.0, draft_pass=10.0, per_token=1e-3),
                  RoundCosts(plain=1.0, draft_pass=0.0, per_token=5.0)):
        nothing, passes = grown(costs)
        assert nothing.tokens == [] and passes == 0


def test_a_wide_tree_runs_up_to_the_end_of_the_context():
    """Positions go by depth: a 12-token tree 3 deep fits where 12 chained tokens would not."""
    tok = ToyTokenizer(PIECES)
    ar = SpeculativeGenerator(ToyModel(tok, seed=3, n_ctx=20)).generate([1, 2, 3], 100)
    target, draft = ToyModel(tok, seed=3, n_ctx=20), ToyModel(tok, seed=4, n_ctx=20)
    gen = SpeculativeGenerator(target, DraftChainProposer(draft, target, tree_budget=12), 3)
    out = gen.generate([1, 2, 3], 100)
    assert out.finish_reason == ar.finish_reason == "context"
    assert out.token_ids == ar.token_ids


def test_dyspec_draft_probability_values_keep_the_law_too():
    """DySpec's own value estimate (kept for comparison) grows other shapes, the same law."""
    from anyspec.proposers.tree import DraftProbability

    tok = ToyTokenizer(PIECES)
    target, draft = ToyModel(tok, seed=1), ToyModel(tok, seed=2)
    proposer = DraftChainProposer(draft, target, tree_budget=6)
    proposer.tree.acceptance = DraftProbability()
    gen = SpeculativeGenerator(target, proposer, draft_length=2)
    assert three_token_law_pvalue(gen, SamplingParams(1.0), seed=4) > 1e-3
