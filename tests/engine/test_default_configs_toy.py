"""Sampled output keeps the target's law under the settings users actually get.

The CLI, the server and the bench build every proposer with `draft_stop_below` over the
default draft length (`auto`, or `adaptive`): drafting then stops early where the draft is
unsure. That stop must be decided on the step's distribution, before a token is drawn; a stop
that looks at the drawn token keeps only likely draws and biases every method that verifies a
draft distribution (sd, tli, slrs). The last test plants that bug and checks these tests see it.
"""

import numpy as np
import pytest
from laws import exact_sequence_law, law_pvalue
from synthetic import ToyModel, ToyTokenizer

from anyspec.config import GeneratorConfig
from anyspec.control import draft_stop_below
from anyspec.engine import SpeculativeGenerator
from anyspec.noise import Draws
from anyspec.proposers import Proposal
from anyspec.proposers.base import draw_at
from anyspec.proposers.draft_chain import draft_chain
from anyspec.sampling import SamplingParams
from anyspec.verify import DenseLaw
from anyspec.verify.chain import verify_chain

SAME_PIECES = ["a", "b", "c", "d"]
TARGET_PIECES = ["a", "b", "c", "ab", "ca", " "]
DRAFT_PIECES = ["a", "b", "c", "bc", "abc", " a", " "]


def default_generator(method: str, draft_length: str,
                      coupling: str = "off") -> SpeculativeGenerator:
    """The generator the CLI builds for `method` with no options but the draft length and,
    by default, the rejection rule (coupled drafts are checked exactly, test_seeded_toy)."""
    if method == "sd":
        tok = ToyTokenizer(SAME_PIECES)
        target, draft = ToyModel(tok, seed=1), ToyModel(tok, seed=2)
    else:
        target = ToyModel(ToyTokenizer(TARGET_PIECES), seed=11, sharpness=1.5)
        draft = ToyModel(ToyTokenizer(DRAFT_PIECES), seed=12, sharpness=1.5)
    assert draft_stop_below(None, draft_length, method) == (None if method == "tokentiming" else 0.4)
    return GeneratorConfig(method=method, draft_length=draft_length,
                           coupling=coupling).build(target, draft)


def three_token_pvalue(gen: SpeculativeGenerator, n_runs: int = 6000) -> tuple[float, int]:
    """The p-value of 3-token outputs at T=1 against the target's exact law, and how many
    tokens were drafted in all."""
    prompt = [0, 1] if gen.method == "sd" else [0, 5]
    law = exact_sequence_law(gen.target, prompt, 3, SamplingParams(1.0))
    rng = np.random.default_rng(5)
    counts = dict.fromkeys(law, 0)
    drafted = 0
    for _ in range(n_runs):
        out = gen.generate(prompt, 3, SamplingParams(1.0, seed=int(rng.integers(2**63))))
        counts[tuple(out.token_ids)] += 1
        drafted += out.stats.drafted
    return law_pvalue(counts, law, n_runs), drafted


# auto, which may find that drafting does not pay, runs in the slow tier: adaptive always drafts
@pytest.mark.parametrize("draft_length", ["adaptive", pytest.param("auto", marks=pytest.mark.slow)])
@pytest.mark.parametrize("method", ["sd", "tli", "slrs", "slem", "tokentiming"])
def test_default_settings_keep_the_target_law(method, draft_length):
    gen = default_generator(method, draft_length)
    pvalue, drafted = three_token_pvalue(gen)
    if draft_length == "adaptive":
        assert drafted > 6000  # proposals were made (auto may find drafting does not pay)
    assert pvalue > 1e-3


def test_the_stop_decides_before_drawing():
    """The audit's reproducer: p = [0.7, 0.2, 0.1] at every step, q = [0.1, 0.3, 0.6], a stop
    at 0.4. Each committed token must follow q; a stop on the drawn token gave the second one
    [0.13, 0.19, 0.68]."""
    tok = ToyTokenizer(["a", "b", "c"])
    draft, target = ToyModel(tok, seed=0), ToyModel(tok, seed=0)
    draft.table[:] = np.log([0.7, 0.2, 0.1])
    target.table[:] = np.log([0.1, 0.3, 0.6])
    params = SamplingParams(1.0)
    second = np.zeros(3)
    for seed in range(20_000):
        draws = Draws(seed, coupled=False)
        run = draft_chain(draft, [0], 2, params, draw_at(draws.own, 1), stop_below=0.4)
        logits = target.logits([0] + run.tokens, n_last=len(run.tokens) + 1)
        n_ok, nxt = verify_chain(run.tokens, [DenseLaw(p) for p in run.probs], logits, params,
                                 draws, 1)
        committed = run.tokens[:n_ok] + [nxt]
        if len(committed) >= 2:
            second[committed[1]] += 1
    assert second.sum() > 5000
    np.testing.assert_allclose(second / second.sum(), [0.1, 0.3, 0.6], atol=0.02)


class StopOnTheDrawnToken:
    """The planted bug: keep drafted tokens only while each one's own draft probability is
    at least `floor` (the first always kept), as a stop after drawing does."""

    def __init__(self, proposer, floor: float) -> None:
        self.inner, self.floor = proposer, floor
        self.name, self.draft = proposer.name, proposer.draft

    def prefill(self, committed, warm=True):
        self.inner.prefill(committed, warm)

    def propose(self, committed, k, params, draws):
        proposal = self.inner.propose(committed, k, params, draws)
        if proposal.laws is not None:
            for i in range(1, len(proposal.tokens)):
                if proposal.laws[i].prob(proposal.tokens[i]) < self.floor:
                    return Proposal(proposal.tokens[:i], proposal.laws[:i])
        return proposal


@pytest.mark.parametrize("method", ["sd", "tli"])
def test_a_stop_on_the_drawn_token_is_caught(method):
    gen = default_generator(method, "adaptive")
    # a fixed draft length: no stop of the proposer's own (control.draft_stop_below)
    inner = GeneratorConfig(method=method, draft_length=4).proposer(gen.target, gen.draft)
    gen = SpeculativeGenerator(gen.target, StopOnTheDrawnToken(inner, 0.4), "adaptive",
                               coupling="off")
    pvalue, _ = three_token_pvalue(gen)
    assert pvalue < 1e-3
