"""slrs reads its proposal law at a few hundred target ids instead of building it over every
target id: a sampled proposal must be drawn from, and valued by, the full law, on the real
vocabularies. Greedy slrs proposes as slem does."""

import numpy as np
import pytest

from anyspec.config import GeneratorConfig
from anyspec.engine import SpeculativeGenerator
from anyspec.proposers.string_rejection import SparseLaw, proposal_law

pytestmark = pytest.mark.slow  # the real models


@pytest.fixture(scope="module")
def slrs(gemma_llamacpp, smollm_llamacpp):
    return GeneratorConfig(method="slrs", draft_stop_below=0.1).proposer(gemma_llamacpp, smollm_llamacpp)


def _random_pieces(proposer, rng, sharpness):
    """A draft distribution p1 (random logits; sharper ones concentrate as real drafts do),
    its head and branches shaped as `_pieces` makes them, with random second pieces."""
    n = len(proposer.one_piece)
    p1 = np.exp(sharpness * rng.standard_normal(n)).astype(np.float32)
    p1 /= p1.sum()
    head = np.argpartition(p1, -16)[-16:]
    branches = []
    for d1 in head[np.argsort(-p1[head], kind="stable")].tolist():
        d2s, ts = proposer.two_pieces(d1)
        if len(d2s) and len(branches) < 2:
            p2 = rng.dirichlet(np.full(len(d2s), 0.3))
            branches.append((d1, d2s, ts, float(p1[d1]) * 0.9 * p2))
    return p1, head, branches


@pytest.mark.parametrize("sharpness", [0.0, 3.0, 6.0])
def test_sparse_law_is_the_full_law(slrs, sharpness):
    rng = np.random.default_rng(100 + int(sharpness))
    for _ in range(10):
        p1, head, branches = _random_pieces(slrs, rng, sharpness)
        law = proposal_law(p1, branches, slrs._spelling, slrs._spelt, slrs.one_piece,
                           slrs.target_vocab)
        sparse = SparseLaw(p1, branches, slrs)
        unspelt = np.flatnonzero(slrs._speller < 0)[:5]
        for t in np.concatenate([sparse.changed, slrs.one_piece[head], unspelt,
                                 rng.integers(0, slrs.target_vocab, 20)]).tolist():
            if t >= 0:
                assert sparse.prob(t) == pytest.approx(float(law[t]), rel=1e-6, abs=1e-12)
        np.testing.assert_allclose(sparse.dense(), law, rtol=1e-6, atol=1e-12)


def test_sparse_law_when_most_of_p1_spells_nothing(slrs):
    """Where most of p1 is on draft ids spelling no target token (say, pieces of a character),
    r stays the full law to float precision."""
    rng = np.random.default_rng(9)
    p1, head, branches = _random_pieces(slrs, rng, 3.0)
    unspelt = np.flatnonzero(slrs.one_piece < 0)
    p1[unspelt[:50]] += 100.0 * p1.max()
    p1 /= p1.sum()
    branches = [(d1, d2s, ts, float(p1[d1]) * 0.9 * mass / mass.sum())
                for d1, d2s, ts, mass in branches]
    law = proposal_law(p1, branches, slrs._spelling, slrs._spelt, slrs.one_piece,
                       slrs.target_vocab)
    sparse = SparseLaw(p1, branches, slrs)
    assert sparse.base.sum() < 0.05  # most of p1 left base
    np.testing.assert_allclose(sparse.dense(), law, rtol=1e-6, atol=1e-12)
    t = int(np.argmax(law))
    assert sparse.prob(t) == pytest.approx(float(law[t]), rel=1e-6)


def test_sparse_residual_is_the_full_one(slrs):
    """The verifier's max(0, q - r) from the law's parts equals the one from the full r,
    for a q that is above r on some of r's ids and below it on others."""
    rng = np.random.default_rng(11)
    for sharpness in (0.0, 6.0):
        p1, _, branches = _random_pieces(slrs, rng, sharpness)
        law = proposal_law(p1, branches, slrs._spelling, slrs._spelt,
                           slrs.one_piece, slrs.target_vocab)
        noise = rng.dirichlet(np.full(slrs.target_vocab, 0.1))
        q = (0.7 * law + 0.3 * noise).astype(np.float32)
        q[rng.integers(0, slrs.target_vocab, 50)] = 0.0
        q /= q.sum(dtype=np.float64)
        got = SparseLaw(p1, branches, slrs).residual(q)
        want = np.maximum(q - law, 0.0)
        assert (got > 0).sum() > 1000 and (q - law < 0).sum() > 1000  # both signs occur
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)  # float32 against float64


def test_proposers_share_the_pair_tables(slrs, gemma_llamacpp, smollm_llamacpp):
    """The server makes a proposer per request: the vocabulary-wide tables are built once per
    pair of tokenizers, and what one request found about two-piece tokens serves the next."""
    again = GeneratorConfig(method="slrs").proposer(gemma_llamacpp, smollm_llamacpp)
    assert again.two_pieces is slrs.two_pieces
    assert again.one_piece is slrs.one_piece
    assert not again.one_piece.flags.writeable


def test_sparse_law_leaves_the_draft_distribution_alone(slrs):
    """The law keeps its own arrays: p1 reads the same after it is built."""
    rng = np.random.default_rng(5)
    p1, _, branches = _random_pieces(slrs, rng, 3.0)
    before = p1.copy()
    SparseLaw(p1, branches, slrs)
    np.testing.assert_array_equal(p1, before)


def test_greedy_slrs_proposes_as_slem(gemma_llamacpp, smollm_llamacpp):
    """At temperature 0 the target accepts only its greedy token, whatever the law gives it,
    and the draft's greedy text finds it more often: every round's proposal and the output
    are slem's."""
    prompt = gemma_llamacpp.tokenizer.encode("Write a haiku about rivers, then explain it.")
    runs = {}
    for method in ("slem", "slrs"):
        proposer = GeneratorConfig(method=method).proposer(gemma_llamacpp, smollm_llamacpp)
        proposals = []

        def recorded(*args, propose=proposer.propose, proposals=proposals):
            proposals.append(propose(*args))
            return proposals[-1]

        proposer.propose = recorded
        out = SpeculativeGenerator(gemma_llamacpp, proposer, 4).generate(prompt, 32)
        runs[method] = (out.token_ids, [(p.tokens, p.laws) for p in proposals])
    assert runs["slrs"] == runs["slem"]
    assert sum(len(tokens) for tokens, _ in runs["slrs"][1]) > 16  # it did propose
