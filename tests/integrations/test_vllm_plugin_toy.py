"""The vLLM plugin's parts that need no vLLM: settings, batched greedy drafting, the per-request
proposer with toy models in place of vLLM's and llama.cpp's, the kernel fix."""

import numpy as np
import pytest
from synthetic import ToyModel, ToyTokenizer

from anyspec.config import GeneratorConfig
from anyspec.errors import AnyspecError
from anyspec.integrations.vllm import Settings, TokenTiming, _expand
from anyspec.proposers.draft_chain import draft_chain, greedy_chains
from anyspec.sampling import SamplingParams


class ManySequences:
    """A toy model behind the `logits_many` interface LlamaCppSequences offers."""

    def __init__(self, model):
        self.model, self.tokenizer, self.n_ctx = model, model.tokenizer, model.n_ctx
        self.released = []

    def logits_many(self, requests):
        return {seq: self.model.logits(list(ids))[0] for seq, ids in requests.items()}

    def release(self, seq):
        self.released.append(seq)


@pytest.mark.parametrize("stop", [None, 0.3])
def test_greedy_chains_draft_what_draft_chain_drafts(stop):
    pieces = ["a", "b", "c", "d", "ab", "ba", "cd", "."]
    model = ToyModel(ToyTokenizer(pieces, eos=7), seed=3, n_ctx=12)
    contexts = {0: [0, 1], 3: [2, 2, 3], 5: [1] * 9}  # the last has room for 2 tokens only
    banned = np.array([7])
    runs = greedy_chains(ManySequences(model), contexts, 6, banned, stop_after_product=stop)
    for seq, ids in contexts.items():
        one = draft_chain(model, ids, 6, SamplingParams(temperature=0.0), banned=banned,
                          confidence=stop is not None, stop_after_product=stop)
        assert runs[seq].tokens == one.tokens
        assert runs[seq].confidence == pytest.approx(one.confidence)


def test_settings_from_the_environment():
    s = Settings.from_env(None, 4, {"ANYSPEC_METHOD": "slem", "ANYSPEC_DTW_BAND": "4",
                                    "ANYSPEC_DRAFT_WINDOW": "256"})
    assert (s.method, s.config.dtw_band, s.config.draft_window) == ("slem", 4, 256)
    assert Settings.from_env("tokentiming", 4, {}).config.min_confidence == 0.05


@pytest.mark.parametrize("env, message", [
    ({"ANYSPEC_METHOD": "tli"}, "tokentiming or slem"),
    ({"ANYSPEC_DTW_BAND": "wide"}, "not a number"),
    ({"ANYSPEC_MIN_CONFIDENCE": "2"}, "probability"),
    ({"ANYSPEC_DRAFT_CONTEXT": "8"}, "ANYSPEC_DRAFT_CONTEXT"),
    ({"ANYSPEC_DRAFT": "no-such-model"}, "unknown model"),
    ({"ANYSPEC_DRAFT_THREADS": "0"}, "ANYSPEC_DRAFT_THREADS"),
])
def test_settings_say_what_is_wrong(env, message):
    with pytest.raises(AnyspecError, match=message):
        Settings.from_env(None, 4, env)


def test_expand_repeats_each_value_over_its_tokens_in_the_output_dtype():
    torch = pytest.importorskip("torch")
    out = torch.full((6,), -9.0)
    _expand(out, torch.tensor([0.7, -1.0, 1.0]), torch.tensor([2, 2, 5], dtype=torch.int32),
            -1.0, 0.0)
    assert out.tolist() == pytest.approx([0.7, 0.7, 1.0, 1.0, 1.0, -9.0])


TARGET_PIECES = ["a", "b", "c", "ab", "ca", " "]
DRAFT_PIECES = ["a", "b", "c", "bc", "abc", " a", " "]


def toy_vllm_proposer(k=3, n_seq=2, max_model_len=64):
    """TokenTiming as vLLM would build it, with toy models in place of llama.cpp's draft and
    the target's tokenizer."""
    target = ToyModel(ToyTokenizer(TARGET_PIECES), seed=21, n_ctx=300)
    draft = ToyModel(ToyTokenizer(DRAFT_PIECES), seed=21, n_ctx=300)
    proposer = TokenTiming.__new__(TokenTiming)
    proposer.k, proposer.max_model_len, proposer.drafts = k, max_model_len, True
    proposer.settings = Settings.from_env("tokentiming", k, {})
    proposer.requests, proposer.rows, proposer.budgets = {}, None, {}
    proposer.draft, proposer.target = ManySequences(draft), target
    proposer._free = list(range(n_seq - 1, -1, -1))
    return proposer, target, draft


def test_each_row_gets_what_tokentiming_proposes_alone_and_state_follows_vllms():
    proposer, target, draft = toy_vllm_proposer()
    alone = GeneratorConfig(method="tokentiming", draft_length=3).proposer(target, draft)
    committed = {"r1": [0, 3, 5, 1], "r2": [4, 4, 2], "r3": [1, 2]}
    ids = np.zeros((3, 16), dtype=np.int64)
    for i, c in enumerate(committed.values()):
        ids[i, :len(c)] = c
    proposer.bind(["r1", "r2", "r3"], {"r1", "r2", "r3"}, {"r2": 2})
    out = proposer.propose([[1], [2], [3]], [4, 3, 2], ids)
    alone.prefill(committed["r1"], warm=False)
    assert out[0] and out[0] == alone.propose(committed["r1"], 3, SamplingParams(0.0), None).tokens
    assert len(out[1]) <= 1  # r2 may emit 2 more tokens: one draft at most
    assert out[2] == [] and set(proposer.requests) == {"r1", "r2"}  # 2 draft sequences only
    with pytest.raises(AnyspecError, match="plugin is not loaded"):
        proposer.propose([[1]], [4], ids)  # rows are bound for one step only
    proposer.bind(["r2"], {"r2"})  # r1 ended: its state and its draft sequence go
    proposer.propose([[]], [3], ids[1:])  # r2 is mid-prefill: no new ids, nothing drafted
    assert set(proposer.requests) == {"r2"} and len(proposer.draft.released) == 1
    proposer.release("r2")
    assert not proposer.requests and sorted(proposer._free) == [0, 1]
