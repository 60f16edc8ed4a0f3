"""Hugging Face transformers + PyTorch backend: HF model directories or GGUF files, CPU or CUDA.

GGUF files are dequantised by transformers in Python (about a minute for Gemma 3 270M), so the
converted model is saved once as safetensors under ~/.cache/anyspec/hf and loaded from there.
The KV cache is a DynamicCache built without a config: every layer, sliding-window ones
included, keeps all positions, so the cache can be cropped back to any length.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import AnyspecError, require
from .base import LanguageModel, Tokenizer

logger = logging.getLogger(__name__)

# Tokens that end a turn in common chat formats (llama.cpp treats these as end-of-generation too).
END_OF_TURN = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>",
               "<|end_of_text|>", "<|return|>", "</s>")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map that byte-level BPE vocabularies are written in."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


_BYTE_DECODER = {c: b for b, c in _bytes_to_unicode().items()}


class HFTokenizer(Tokenizer):
    def __init__(self, tok, vocab_size: int, generation_config=None) -> None:
        self._tok = tok
        self.vocab_size = vocab_size  # the logits width; may exceed the tokenizer's size
        self.bos_id = tok.bos_token_id
        self.chat_template = getattr(tok, "chat_template", None)
        # what tokenizer(text) adds by default: BOS for Gemma, nothing for SmolLM2
        probe = tok("a", add_special_tokens=True)["input_ids"]
        self._add_bos = self.bos_id is not None and bool(probe) and probe[0] == self.bos_id
        eos = {tok.eos_token_id}
        gen_eos = getattr(generation_config, "eos_token_id", None)
        eos.update(gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos])
        vocab = tok.get_vocab()
        eos.update(vocab[t] for t in END_OF_TURN if t in vocab)
        self.eos_ids = frozenset(i for i in eos if i is not None and 0 <= i < vocab_size)
        self._byte_level = "ByteLevel" in _decoder_description(tok)

    def encode(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        # split_special_tokens: "<start_of_turn>" typed in text stays text, as in llama.cpp, so
        # decode(encode(text)) == text; control tokens come only from add_special
        ids = self._tok(text, add_special_tokens=False,
                        split_special_tokens=not parse_special)["input_ids"]
        return [self.bos_id] + ids if add_special and self._add_bos else ids

    def _token_bytes(self, token: int) -> bytes:
        return self.bytes_table()[token]

    def bytes_table(self) -> list[bytes]:
        if self._bytes_table is None:
            self._bytes_table = self._build_table()
        return self._bytes_table

    def _build_table(self) -> list[bytes]:
        tok = self._tok
        n = min(len(tok), self.vocab_size)
        pieces = tok.convert_ids_to_tokens(list(range(n)))  # one call, not n
        added = tok.added_tokens_decoder  # id -> AddedToken: text as written, not in vocab form
        special = set(tok.all_special_ids) | {i for i, t in added.items() if t.special}
        table = [b""] * self.vocab_size
        for i, piece in enumerate(pieces):
            if piece is None or i in special or i in self.eos_ids:
                continue  # control and end-of-generation tokens add no text (as in llama.cpp)
            if i in added:
                table[i] = added[i].content.encode()
            elif self._byte_level:
                table[i] = bytes(_BYTE_DECODER[c] for c in piece)
            elif len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
                table[i] = bytes([int(piece[3:5], 16)])  # SentencePiece byte fallback
            else:
                table[i] = piece.replace("▁", " ").encode()
        return table


def _decoder_description(tok) -> str:
    """The tokenizer's decoder as text, enough to tell byte-level BPE from SentencePiece."""
    backend = getattr(tok, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None)
    if decoder is None:
        return ""
    try:
        return decoder.__getstate__().decode()  # JSON, lists the parts of a Sequence decoder
    except Exception:
        return type(decoder).__name__


class HFModel(LanguageModel):
    backend = "hf"

    def __init__(self, path: str | Path, name: str | None = None, device: str = "cpu",
                 dtype=None, n_ctx: int | None = None, gguf_file: str | None = None) -> None:
        super().__init__()
        require("torch", "transformers", extra="hf", feature="the hf backend")
        import torch
        import transformers
        self._torch = torch
        path = Path(path).expanduser()
        if gguf_file is not None:
            path = path / gguf_file
        self.name = name or path.name
        self.path = path
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise AnyspecError(f"device '{device}' was asked for but PyTorch sees no CUDA GPU "
                               f"(torch {torch.__version__}); run on the cpu device")
        self.device = device
        if os.environ.get("ANYSPEC_THREADS"):
            torch.set_num_threads(int(os.environ["ANYSPEC_THREADS"]))
        if dtype is None:
            dtype = torch.float32 if device == "cpu" else torch.bfloat16
        elif isinstance(dtype, str):
            dtype = getattr(torch, dtype)

        model_dir = _model_dir(path)
        try:
            self._model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
            tok = transformers.AutoTokenizer.from_pretrained(model_dir)
        except Exception as e:
            raise AnyspecError(f"transformers could not load {path} as a causal LM: {e}") from e
        self._model.to(device).eval()
        if device == "cpu":
            _slice_large_output_layer(self._model)
        config = self._model.config
        self.n_ctx = n_ctx or min(getattr(config, "max_position_embeddings", None) or 32768, 32768)
        width = self._model.get_output_embeddings().weight.shape[0]
        self.tokenizer = HFTokenizer(tok, width, self._model.generation_config)
        self._cache = transformers.DynamicCache()  # no config: full layers, croppable
        # transformers 5.24 renamed forward's `past_key_values` to `cache` (the old name goes
        # in 5.40); earlier 5.x releases know only the old one
        forward_parameters = inspect.signature(self._model.forward).parameters
        self._cache_keyword = "cache" if "cache" in forward_parameters else "past_key_values"

    def _forward(self, ids: Sequence[int], start: int, n_logits: int) -> np.ndarray:
        torch = self._torch
        if self._cache.get_seq_length() != start:
            raise RuntimeError(f"cache holds {self._cache.get_seq_length()} positions, "
                               f"forward asked to start at {start}")
        with torch.inference_mode():
            input_ids = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
            pos = torch.arange(start, start + len(ids), device=self.device)
            try:
                out = self._model(input_ids=input_ids, position_ids=pos[None], cache_position=pos,
                                  **{self._cache_keyword: self._cache}, use_cache=True,
                                  logits_to_keep=n_logits)  # skip unneeded output-layer rows
            except BaseException:  # stopped midway, some layers may hold the new ids: start over
                self._cache = type(self._cache)()
                self.cached = []
                raise
            return out.logits[0, -n_logits:].float().cpu().numpy()

    @property
    def supports_trees(self) -> bool:
        """The tree mask reproduces full and sliding-window attention as the config declares
        them (`layer_types`); another kind of layer (chunked attention, ...), or a sliding
        window not tied to layer types, would verify against a different distribution."""
        config = self._model.config
        kinds = getattr(config, "layer_types", None)
        if kinds is None:
            return not getattr(config, "sliding_window", None)
        return set(kinds) <= {"full_attention", "sliding_attention"}

    def no_trees_message(self) -> str:
        return (f"{self.name}'s attention (layer types "
                f"{sorted(set(getattr(self._model.config, 'layer_types', None) or []))}, "
                "sliding window) is not one anyspec can mask for a token tree; draft chains (no tree)")

    def _forward_tree(self, ids: Sequence[int], start: int, parents: Sequence[int],
                      n_logits: int) -> np.ndarray:
        """One pass with an ancestors-only attention mask and positions by depth, given as
        an additive float mask (boolean masks are wrong under eager attention), one per
        layer type so that sliding-window layers keep their window."""
        torch = self._torch
        if not self.supports_trees:
            raise AnyspecError(self.no_trees_message())
        if self._cache.get_seq_length() != start:
            raise RuntimeError(f"cache holds {self._cache.get_seq_length()} positions, "
                               f"forward asked to start at {start}")
        n = len(ids)
        depth = np.zeros(n, dtype=np.int64)
        sees = np.zeros((n, n), dtype=bool)  # sees[i, j]: entry i attends to entry j
        for i, parent in enumerate(parents):
            if parent >= 0:
                depth[i] = depth[parent] + 1
                sees[i] = sees[parent]
            sees[i, i] = True
        pos = start + depth
        key_pos = np.concatenate([np.arange(start), pos])
        allowed = np.concatenate([np.ones((n, start), dtype=bool), sees], axis=1)
        masks = {}
        config = self._model.config
        for layer_type in set(getattr(config, "layer_types", None) or ["full_attention"]):
            ok = allowed
            window = getattr(config, "sliding_window", None)
            if layer_type == "sliding_attention" and window:
                ok = allowed & (pos[:, None] - key_pos[None, :] < window)
            mask = torch.zeros((1, 1, n, start + n), dtype=self._model.dtype)
            mask.masked_fill_(torch.from_numpy(~ok), torch.finfo(self._model.dtype).min)
            masks[layer_type] = mask.to(self.device)
        attention_mask = masks if hasattr(config, "layer_types") else masks["full_attention"]
        with torch.inference_mode():
            input_ids = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
            position_ids = torch.from_numpy(pos).to(self.device)[None]
            try:
                out = self._model(input_ids=input_ids, position_ids=position_ids,
                                  attention_mask=attention_mask,
                                  cache_position=torch.arange(start, start + n, device=self.device),
                                  **{self._cache_keyword: self._cache}, use_cache=True,
                                  logits_to_keep=n_logits)
            except BaseException:
                self._cache = type(self._cache)()
                self.cached = []
                raise
            return out.logits[0, -n_logits:].float().cpu().numpy()

    def _truncate(self, length: int) -> None:
        if length == 0:
            self._cache = type(self._cache)()
            return
        extra = self._cache.get_seq_length() - length
        if extra > 0:
            self._cache.crop(-extra)  # transformers 5.x: a negative count of tokens to drop


def _slice_large_output_layer(model) -> None:
    """Swap a large output layer (Gemma 3's 262k x 640 weight) for `VocabSlicedLinear`.

    On CPU, torch's matmul of a few rows against such a weight streams it from memory once per
    few rows, and that is most of the cost of verifying several tokens in one pass; slices of
    the vocabulary small enough to stay in cache read it once.
    """
    import torch

    from .sliced_linear import VocabSlicedLinear

    head = model.get_output_embeddings()
    if type(head) is torch.nn.Linear and head.weight.numel() * head.weight.element_size() >= 256 << 20:
        model.set_output_embeddings(VocabSlicedLinear(head))


def _model_dir(path: Path) -> Path:
    """A directory from_pretrained can load: `path` itself, or the cached conversion of a GGUF."""
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise AnyspecError(f"{path} is a directory without config.json; expected a Hugging "
                               "Face model directory (config.json, weights, tokenizer) or a "
                               ".gguf file")
        return path
    if not path.is_file():
        raise AnyspecError(f"{path} does not exist; expected a .gguf file or a Hugging Face "
                           "model directory")
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise AnyspecError(f"{path} is not a GGUF file (no GGUF magic); expected a .gguf "
                               "model file or a Hugging Face model directory")
    st = path.stat()
    # a changed file converts again, and so does every file when the conversion changes (v2)
    stamp = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|v2"
    key = hashlib.sha256(stamp.encode()).hexdigest()[:12]
    root = Path(os.environ.get("ANYSPEC_CACHE") or Path.home() / ".cache" / "anyspec") / "hf"
    cached = root / f"{path.stem}-{key}"
    if (cached / "config.json").is_file():
        return cached
    _convert_gguf(path, cached)
    return cached


def _convert_gguf(path: Path, dest: Path) -> None:
    """Dequantise a GGUF through transformers once and save it as safetensors, atomically."""
    require("gguf", "sentencepiece", "accelerate", extra="hf",
            feature="reading a GGUF file with the hf backend")
    import transformers

    logger.info("converting %s to safetensors for the hf backend (one time, about a minute); "
                "cached at %s", path.name, dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is an ordinary directory
    try:
        kw = {"gguf_file": path.name}
        model = transformers.AutoModelForCausalLM.from_pretrained(
            path.parent, dtype="float32", **kw,
            quantization_config=transformers.GgufConfig(dequantize=True))  # plain dense weights
        # transformers' GGUF conversion drops the file's add-BOS flag; without BOS Gemma 3
        # repeats itself, and the two backends would not score the same ids
        tok = transformers.AutoTokenizer.from_pretrained(path.parent, **kw,
                                                         add_bos_token=_gguf_adds_bos(path))
        # the weights are dense now: drop the GGUF quantizer, which refuses to be saved
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            os.rename(tmp, dest)
        except OSError:  # another process finished first: keep its copy
            if not (dest / "config.json").is_file():
                raise
    except Exception as e:
        raise AnyspecError(f"transformers could not convert {path} (GGUF) into a model: {e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _gguf_adds_bos(path: Path) -> bool:
    from gguf import GGUFReader

    field = GGUFReader(path).fields.get("tokenizer.ggml.add_bos_token")
    return bool(field.parts[field.data[0]][0]) if field is not None else False


def hf_directory(spec: str) -> Path:
    """A Hugging Face directory for `spec` (an embedded name, a .gguf file or a directory,
    returned as is), for engines that load only those (vLLM; `anyspec hf-dir`): the cached
    conversion the hf backend loads."""
    from .registry import resolve

    _, path = resolve(spec)
    require("torch", "transformers", "gguf", extra="hf", feature="a Hugging Face directory")
    return _model_dir(path)
