"""The vLLM plugin's parts that need no vLLM: settings, batched greedy drafting, the kernel fix."""

import numpy as np
import pytest

from anyspec.errors import AnyspecError
from anyspec.integrations.vllm import Settings, _expand
from anyspec.proposers.draft_chain import draft_chain, greedy_chains
from anyspec.sampling import SamplingParams
from tests.synthetic import ToyModel, ToyTokenizer


class ManySequences:
    """A toy model behind the `logits_many` interface LlamaCppSequences offers."""

    def __init__(self, model):
        self.model, self.tokenizer, self.n_ctx = model, model.tokenizer, model.n_ctx

    def logits_many(self, requests):
        return {seq: self.model.logits(list(ids))[0] for seq, ids in requests.items()}


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
