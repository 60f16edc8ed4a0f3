"""llama.cpp backend (llama-cpp-python) for GGUF files: fast on CPU.

Uses the low-level API for batches so that logits are computed and copied only for the rows
asked for (a Gemma row is 262k floats), and the cache is rolled back by position.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import AnyspecError
from .base import LanguageModel, Tokenizer


class LlamaCppTokenizer(Tokenizer):
    def __init__(self, llm) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        self._vocab = llm._model.vocab
        self._model = llm._model
        self.vocab_size = llama_cpp.llama_vocab_n_tokens(self._vocab)
        bos = llama_cpp.llama_vocab_bos(self._vocab)
        self.bos_id = bos if bos >= 0 else None
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self.eos_ids = frozenset(
            i for i in _special_candidates(llama_cpp, self._vocab, self.vocab_size)
            if llama_cpp.llama_vocab_is_eog(self._vocab, i)
        )
        self.chat_template = llm.metadata.get("tokenizer.chat_template")

    def encode(self, text: str, add_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        n_max = len(data) + 8
        buf = (self._llama_cpp.llama_token * n_max)()
        n = self._llama_cpp.llama_tokenize(
            self._vocab, data, len(data), buf, n_max, add_special and self._add_bos, False
        )
        if n < 0:
            raise RuntimeError(f"llama_tokenize needed {-n} slots")
        return list(buf[:n])

    def _token_bytes(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = self._llama_cpp.llama_token_to_piece(self._vocab, token, buf, 256, 0, False)
        return buf.raw[:n] if n > 0 else b""


def _special_candidates(llama_cpp, vocab, n_vocab: int) -> list[int]:
    """Ids that may be end-of-generation tokens: control tokens are few, scan them all."""
    ids = []
    for i in range(n_vocab):
        attr = llama_cpp.llama_vocab_get_attr(vocab, i)
        if attr & (llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED):
            ids.append(i)
    return ids


class LlamaCppModel(LanguageModel):
    backend = "llamacpp"

    def __init__(self, path: str | Path, name: str | None = None, n_ctx: int = 4096,
                 n_threads: int | None = None, n_batch: int = 512) -> None:
        super().__init__()
        try:
            from llama_cpp import Llama
            import llama_cpp
        except ImportError as e:  # pragma: no cover - install problem
            raise AnyspecError(
                "the llamacpp backend needs llama-cpp-python: pip install llama-cpp-python==0.3.36"
            ) from e
        self._llama_cpp = llama_cpp
        path = Path(path)
        self.name = name or path.name
        self.path = path
        threads = n_threads or int(os.environ.get("ANYSPEC_THREADS", 0)) or os.cpu_count() or 1
        try:
            self._llm = Llama(
                model_path=str(path), n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch,
                n_threads=threads, n_threads_batch=threads, verbose=False,
                swa_full=True,  # sliding-window layers keep every position, so rollback works
            )
        except Exception as e:  # llama.cpp says little more than "failed to load"
            raise AnyspecError(f"llama.cpp could not load {path} as a GGUF model: {e}") from e
        self.n_ctx = self._llm.n_ctx()
        self.tokenizer = LlamaCppTokenizer(self._llm)
        self._ctx = self._llm._ctx.ctx
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._n_batch = n_batch
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)

    def _forward(self, ids: Sequence[int], start: int, n_logits: int) -> np.ndarray:
        lc = self._llama_cpp
        out = np.empty((n_logits, self.vocab_size), dtype=np.float32)
        first_logit = len(ids) - n_logits
        for chunk_start in range(0, len(ids), self._n_batch):
            chunk = ids[chunk_start:chunk_start + self._n_batch]
            b = self._batch
            b.n_tokens = len(chunk)
            for j, tok in enumerate(chunk):
                i = chunk_start + j
                b.token[j] = tok
                b.pos[j] = start + i
                b.n_seq_id[j] = 1
                b.seq_id[j][0] = 0
                b.logits[j] = i >= first_logit
            rc = lc.llama_decode(self._ctx, b)
            if rc != 0:
                raise RuntimeError(f"llama_decode failed with code {rc}")
            for j in range(len(chunk)):
                i = chunk_start + j
                if i >= first_logit:  # copy only the rows asked for
                    ptr = lc.llama_get_logits_ith(self._ctx, j)
                    out[i - first_logit] = np.ctypeslib.as_array(ptr, shape=(self.vocab_size,))
        return out

    def _truncate(self, length: int) -> None:
        if not self._llama_cpp.llama_memory_seq_rm(self._memory, 0, length, -1):
            raise RuntimeError(f"llama.cpp could not roll the cache back to {length}")

    def __del__(self) -> None:
        batch = getattr(self, "_batch", None)
        if batch is not None:
            self._llama_cpp.llama_batch_free(batch)
            self._batch = None
