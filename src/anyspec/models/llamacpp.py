"""llama.cpp backend (llama-cpp-python) for GGUF files: fast on CPU.

Uses the low-level API for batches so that logits are computed and copied only for the rows
asked for (a Gemma row is 262k floats), and the cache is rolled back by position.

Split invariance. ggml's CPU backend picks its matmul kernel by batch shape, and the kernels
round differently: one row goes through `vec_dot`, two or more through llamafile's tinyBLAS
(Q8_0/Q5_0 weights, the f16 K/V products of attention); K-quant weights that are repacked at
load (Q4_K -> q4_K_8x8) use a 4-row `gemm` for whole groups of 4 rows and a `gemv` for the rest,
and unrepacked K-quants switch to the "tiled" kernel at 8 rows or more. A position's logits
then depend on how the ids were cut into calls: last-ulp differences that Gemma 3 (huge
residual stream, Q8 activation quantisation) amplifies to about 1 logit. Speculative decoding
scores in chunks of varying size, plain decoding one token at a time, so they drift apart.

With `split_invariant=True` (the default) every kernel is one whose result for a row does not
depend on the rest of the batch: no repacking (`use_extra_bufts=False`), no tiled kernel
(`GGML_CPU_TILED_MM=0`, a process-wide switch ggml reads once), and never a batch of one row:
a lone token gets a throwaway twin at the next position (causal, so it cannot affect the real
one; its cache cell is dropped at once), and a batch asking for one logits row asks for two
(the last layer and the output matmul run on the output rows only). Logits are then
bit-identical for every split, at the price of a slower one-token step.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import AnyspecError, require
from .base import LanguageModel, Tokenizer, common_prefix_length

logger = logging.getLogger(__name__)


class LlamaCppTokenizer(Tokenizer):
    def __init__(self, llm) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        self._llm = llm  # the vocab pointer below lives as long as the Llama object: keep it
        self._vocab = llm._model.vocab
        self.vocab_size = llama_cpp.llama_vocab_n_tokens(self._vocab)
        bos = llama_cpp.llama_vocab_bos(self._vocab)
        self.bos_id = bos if bos >= 0 else None
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self.eos_ids = frozenset(
            i for i in _special_candidates(llama_cpp, self._vocab, self.vocab_size)
            if llama_cpp.llama_vocab_is_eog(self._vocab, i)
        )
        self.chat_template = llm.metadata.get("tokenizer.chat_template")

    def encode(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        data = text.encode("utf-8")
        n_max = len(data) + 8
        buf = (self._llama_cpp.llama_token * n_max)()
        n = self._llama_cpp.llama_tokenize(
            self._vocab, data, len(data), buf, n_max, add_special and self._add_bos, parse_special
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


_LOAD_LOCK = threading.Lock()  # the no-repack load patches a llama_cpp module function briefly
_LOG_CALLBACK = None  # kept referenced: llama.cpp calls it from C


# logged at error level although it only confirms the swa_full=True that rollback needs
_EXPECTED_NOTES = (b"llama_kv_cache_iswa: using full-size SWA cache",)


def _quiet_llama_cpp_logs(llama_cpp) -> None:
    """Pass on llama.cpp's errors only, less the notes we expect, so nothing interleaves with
    streamed text."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is None:
        @llama_cpp.llama_log_callback
        def errors_only(level, text, user_data):
            if level == 3 and not text.startswith(_EXPECTED_NOTES):  # GGML_LOG_LEVEL_ERROR
                logger.error("llama.cpp: %s", text.decode("utf-8", errors="replace").rstrip())

        _LOG_CALLBACK = errors_only
        llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


def _load_without_repacking(Llama, llama_cpp_llama, **kwargs):
    """Llama(**kwargs) without repacking the weights at load. llama-cpp-python does not expose
    llama_model_params.use_extra_bufts, so the default params it starts from are patched for
    the duration of this one construction."""
    lib = llama_cpp_llama.llama_cpp  # the ctypes module llama.py takes its defaults from
    with _LOAD_LOCK:
        defaults = lib.llama_model_default_params

        def model_params():
            params = defaults()
            params.use_extra_bufts = False
            return params

        lib.llama_model_default_params = model_params
        try:
            return Llama(**kwargs)
        finally:
            lib.llama_model_default_params = defaults


class LlamaCppModel(LanguageModel):
    backend = "llamacpp"

    def __init__(self, path: str | Path, name: str | None = None, n_ctx: int = 4096,
                 n_threads: int | None = None, n_batch: int = 512,
                 split_invariant: bool = True) -> None:
        super().__init__()
        require("llama_cpp", extra="llamacpp", feature="the llamacpp backend")
        import llama_cpp
        import llama_cpp.llama as llama_cpp_llama
        from llama_cpp import Llama
        self._llama_cpp = llama_cpp
        _quiet_llama_cpp_logs(llama_cpp)
        path = Path(path)
        self.name = name or path.name
        self.path = path
        self.split_invariant = split_invariant
        # Read once per process by ggml, at the first matmul planned: set it before any, even
        # for a model that need not be split invariant (a draft), since a target may follow.
        tiled = os.environ.setdefault("GGML_CPU_TILED_MM", "0")
        if split_invariant:
            if tiled.strip() not in ("0", ""):
                warnings.warn(
                    f"GGML_CPU_TILED_MM={tiled} is set: llama.cpp logits will depend on how ids "
                    "are split into calls (speculative and plain greedy output may differ)",
                    stacklevel=2)
        threads = n_threads or int(os.environ.get("ANYSPEC_THREADS", 0)) or os.cpu_count() or 1
        # one spare cell: a lone token at the last position still gets its throwaway twin
        extra = 1 if split_invariant else 0
        try:
            load = (partial(_load_without_repacking, Llama, llama_cpp_llama) if split_invariant
                    else Llama)
            self._llm = load(
                model_path=str(path), n_ctx=n_ctx + extra, n_batch=n_batch, n_ubatch=n_batch,
                n_threads=threads, n_threads_batch=threads, verbose=False,
                swa_full=True,  # sliding-window layers keep every position, so rollback works
            )
        except Exception as e:  # llama.cpp says little more than "failed to load"
            raise AnyspecError(f"llama.cpp could not load {path} as a GGUF model: {e}") from e
        self.n_ctx = min(n_ctx, self._llm.n_ctx() - extra)
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
            chunk = list(ids[chunk_start:chunk_start + self._n_batch])
            n_real = len(chunk)
            wanted = [chunk_start + j >= first_logit for j in range(n_real)]
            if self.split_invariant:
                # Never a one-row matmul (see the module docstring): a lone token gets a twin
                # at the next position, a single logits row a neighbour. Their rows are
                # computed and thrown away.
                if n_real == 1:
                    chunk.append(chunk[0])
                    wanted.append(wanted[0])
                elif sum(wanted) == 1:
                    wanted[n_real - 2] = True
            b = self._batch
            b.n_tokens = len(chunk)
            for j, tok in enumerate(chunk):
                b.token[j] = tok
                b.pos[j] = start + chunk_start + j
                b.n_seq_id[j] = 1
                b.seq_id[j][0] = 0
                b.logits[j] = wanted[j]
            rc = lc.llama_decode(self._ctx, b)
            if rc != 0:
                raise RuntimeError(f"llama_decode failed with code {rc}")
            if len(chunk) > n_real:  # drop the twin's cache cell
                self._truncate(start + chunk_start + n_real)
            for j in range(n_real):
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


class LlamaCppSequences:
    """A llama.cpp draft model with many sequences in one context, for an engine that drafts
    for a batch of requests: `logits_many` runs every sequence's new ids in one llama_decode.

    Each sequence keeps the ids in its cache and reuses their longest common prefix with the
    next request, as `LanguageModel.logits` does for one. A draft's logits need not be split
    invariant (its output is only proposed), so llama.cpp's fastest kernels are used.
    """

    backend = "llamacpp"

    def __init__(self, path: str | Path, n_seq: int, n_ctx: int = 2048, n_cells: int | None = None,
                 n_threads: int | None = None, n_batch: int = 512, name: str | None = None) -> None:
        """n_ctx: the most ids one sequence holds; n_cells: cache cells for all of them
        together (default n_seq * n_ctx). When a step finds no free cell, every sequence is
        dropped and reads its ids again at its next step."""
        require("llama_cpp", extra="llamacpp", feature="the llamacpp backend")
        import llama_cpp
        from llama_cpp import Llama

        self._llama_cpp = llama_cpp
        _quiet_llama_cpp_logs(llama_cpp)
        path = Path(path)
        self.name = name or path.name
        threads = n_threads or os.cpu_count() or 1
        try:  # the model and its tokenizer; the context it comes with is left unused (small)
            self._llm = Llama(model_path=str(path), n_ctx=64, n_threads=threads, verbose=False)
        except Exception as e:
            raise AnyspecError(f"llama.cpp could not load {path} as a GGUF model: {e}") from e
        self.tokenizer = LlamaCppTokenizer(self._llm)
        self.vocab_size = self.tokenizer.vocab_size
        self.n_ctx = n_ctx  # per sequence
        self.n_seq = n_seq
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_cells or n_ctx * n_seq
        params.n_batch = params.n_ubatch = n_batch
        params.n_seq_max = n_seq
        params.kv_unified = True  # one pool of cells: a long sequence may use a short one's
        params.n_threads = params.n_threads_batch = threads
        self._ctx = llama_cpp.llama_init_from_model(self._llm._model.model, params)
        if not self._ctx:
            raise AnyspecError(f"llama.cpp could not make a context of {n_seq} sequences x "
                               f"{n_ctx} tokens for {path}")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._n_batch = n_batch
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.cached: dict[int, list[int]] = {}  # sequence -> the ids its cache holds

    def logits_many(self, requests: dict[int, Sequence[int]]) -> dict[int, np.ndarray | None]:
        """Sequence -> the logits row after its ids (None when llama.cpp had no room)."""
        lc = self._llama_cpp
        work: list[tuple[int, int, int]] = []  # (sequence, position, token)
        for seq, ids in requests.items():
            if not 0 <= seq < self.n_seq or not ids or len(ids) > self.n_ctx:
                raise ValueError(f"sequence {seq}: ids must be 1..{self.n_ctx} long")
            cached = self.cached.get(seq, [])
            # the last id is run again for its row
            keep = min(common_prefix_length(cached, list(ids)), len(ids) - 1)
            if keep < len(cached):
                lc.llama_memory_seq_rm(self._memory, seq, keep, -1)
            self.cached[seq] = list(ids[:keep])
            work.extend((seq, pos, ids[pos]) for pos in range(keep, len(ids)))
        last = {seq: len(ids) - 1 for seq, ids in requests.items()}
        out: dict[int, np.ndarray | None] = dict.fromkeys(requests)
        b = self._batch
        for start in range(0, len(work), self._n_batch):
            chunk = work[start:start + self._n_batch]
            b.n_tokens = len(chunk)
            for j, (seq, pos, token) in enumerate(chunk):
                b.token[j] = token
                b.pos[j] = pos
                b.n_seq_id[j] = 1
                b.seq_id[j][0] = seq
                b.logits[j] = pos == last[seq]
            if lc.llama_decode(self._ctx, b) != 0:  # no room left: forget every sequence
                self.clear()
                return dict.fromkeys(requests)
            for j, (seq, pos, _) in enumerate(chunk):
                if pos == last[seq]:
                    ptr = lc.llama_get_logits_ith(self._ctx, j)
                    out[seq] = np.ctypeslib.as_array(ptr, shape=(self.vocab_size,)).copy()
        for seq, ids in requests.items():
            self.cached[seq] = list(ids)
        return out

    def release(self, seq: int) -> None:
        """Drop a sequence's cache (its request finished)."""
        self._llama_cpp.llama_memory_seq_rm(self._memory, seq, 0, -1)
        self.cached.pop(seq, None)

    def clear(self) -> None:
        self._llama_cpp.llama_memory_clear(self._memory, True)
        self.cached.clear()

    def __del__(self) -> None:
        lc = getattr(self, "_llama_cpp", None)
        if lc is not None and getattr(self, "_batch", None) is not None:
            lc.llama_batch_free(self._batch)
            self._batch = None
        if lc is not None and getattr(self, "_ctx", None):
            lc.llama_free(self._ctx)
            self._ctx = None
