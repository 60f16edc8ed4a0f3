"""Peers: other implementations, run on the same prompts, models and sampling settings.

- hf-uag: transformers' universal assisted generation, `target.generate(ids, assistant_model=
  draft, tokenizer=..., assistant_tokenizer=...)`: greedy re-tokenizes the draft's text (SLEM-like),
  sampling uses a vocabulary-intersection translator (TLI-like).
- hf-lookup: transformers' prompt lookup decoding, `generate(ids, prompt_lookup_num_tokens=10)`:
  candidates copied from the latest match of the last tokens (up to 2) in the prompt and output.
- hf-ar: transformers' `generate` with the target alone, the baseline hf peers are measured
  against (same library, same fp32 weights, same stopping).

transformers does not report rounds, so forward hooks on both torch models record each call:
the new tokens it got and the cache length before it. A round is one target call; HF keeps the
last committed token out of the cache, so committed length before round r > 0 is cache + 1, and
the draft tokens of round r are its new tokens - 1 (round 0 also carries the whole prompt). There
is no separate prefill: the first round processes the prompt, so prefill_seconds is 0.
"""

from __future__ import annotations

import time

from ..engine import GenerationStats
from ..sampling import SamplingParams

PROMPT_LOOKUP_TOKENS = 10  # the value transformers' documentation uses

PEERS = {
    "hf-uag": (True, "transformers' universal assisted generation (its own draft/verify loop)"),
    "hf-lookup": (False, "transformers' prompt lookup decoding (generate(prompt_lookup_num_tokens"
                         f"={PROMPT_LOOKUP_TOKENS}), no draft model)"),
    "hf-ar": (False, "transformers generate, target alone: the baseline of the hf peers"),
}
PEER_BASELINE = "hf-ar"


class ForwardTimer:
    """Hooks on a torch module: per forward call, (new tokens, cache length before, seconds)."""

    def __init__(self, module, cuda: bool = False) -> None:
        import torch

        self.calls: list[tuple[int, int, float]] = []
        self._sync = torch.cuda.synchronize if cuda else (lambda: None)
        self._pending: tuple[int, int, float] | None = None
        self._handles = [module.register_forward_pre_hook(self._before, with_kwargs=True),
                         module.register_forward_hook(self._after)]

    def _before(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        # transformers 5.24 renamed the forward's `past_key_values` keyword to `cache`
        cache = kwargs.get("past_key_values", kwargs.get("cache"))
        start = cache.get_seq_length() if cache is not None else 0
        self._sync()
        self._pending = (int(ids.shape[1]) if ids is not None else 0, int(start), time.perf_counter())

    def _after(self, module, args, output):
        self._sync()
        n, start, t0 = self._pending
        self.calls.append((n, start, time.perf_counter() - t0))

    @property
    def seconds(self) -> float:
        return sum(c[2] for c in self.calls)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def rounds_from_calls(calls: list[tuple[int, int, float]], prompt_len: int,
                      final_len: int) -> tuple[list[int], list[int]]:
    """(draft tokens, committed tokens) per round, from the target's forward calls."""
    drafted, starts = [], []
    for r, (n_in, start, _) in enumerate(calls):
        committed_before = prompt_len if r == 0 else start + 1
        drafted.append(n_in - (committed_before - start))
        starts.append(committed_before)
    ends = starts[1:] + [final_len]
    return drafted, [e - s for s, e in zip(starts, ends)]


def stats_from_rounds(method: str, drafted: list[int], committed: list[int], new_tokens: int,
                      draft_seconds: float, target_seconds: float,
                      total_seconds: float) -> GenerationStats:
    stats = GenerationStats(method=method, rounds=len(drafted), new_tokens=new_tokens,
                            round_tokens=sum(committed), draft_seconds=draft_seconds,
                            target_seconds=target_seconds, total_seconds=total_seconds)
    for d, c in zip(drafted, committed):
        a = max(0, min(d, c - 1))
        stats.drafted += d
        stats.accepted += a
        for per_position, n in ((stats.drafted_at, d), (stats.accepted_at, a)):
            per_position.extend([0] * (n - len(per_position)))
            for i in range(n):
                per_position[i] += 1
    stats.overhead_seconds = total_seconds - draft_seconds - target_seconds
    return stats


def assistant_settings(draft_length: str | int, stop_below: float | None) -> dict:
    """transformers' drafting settings for our --draft-length: an integer k drafts k tokens;
    adaptive is its own +2/-1 heuristic (from 4, reset every call, as ours); auto keeps its
    defaults (up to 20 tokens, stopping below draft confidence 0.4)."""
    if str(draft_length).isdigit():
        return {"num_assistant_tokens": int(draft_length), "num_assistant_tokens_schedule": "constant",
                "assistant_confidence_threshold": stop_below}
    if draft_length == "adaptive":
        return {"num_assistant_tokens": 4, "num_assistant_tokens_schedule": "heuristic_transient",
                "assistant_confidence_threshold": 0.4 if stop_below is None else stop_below}
    return {"num_assistant_tokens": 20, "num_assistant_tokens_schedule": "constant",
            "assistant_confidence_threshold": 0.4 if stop_below is None else stop_below}


class HFPeer:
    """One transformers pair (HFModel objects from models/hf.py) and its forward timers.

    The draft must not be shared with the engine: sampled UAG prunes the assistant's LM head
    to the shared vocabulary in place.
    """

    def __init__(self, target, draft=None, draft_length: str | int = "auto",
                 stop_below: float | None = None) -> None:
        self.target, self.draft = target, draft
        cuda = str(target.device).startswith("cuda")
        self.target_timer = ForwardTimer(target._model, cuda)
        self.draft_timer = ForwardTimer(draft._model, cuda) if draft is not None else None
        self.assistant = assistant_settings(draft_length, stop_below)

    def generate(self, method: str, prompt_ids: list[int], max_new_tokens: int,
                 sampling: SamplingParams, timeout: float | None = None) -> dict:
        import torch

        target, tok = self.target, self.target.tokenizer
        eos = sorted(tok.eos_ids)
        kwargs = dict(max_new_tokens=max_new_tokens, eos_token_id=eos, pad_token_id=eos[0],
                      do_sample=not sampling.greedy, max_time=timeout)
        if not sampling.greedy:
            kwargs.update(temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p)
        if method == "hf-uag":
            # reset each call: HF adapts these in place, which would leak from one sample to the next
            for key, value in self.assistant.items():
                setattr(self.draft._model.generation_config, key, value)
            kwargs.update(assistant_model=self.draft._model, tokenizer=tok._tok,
                          assistant_tokenizer=self.draft.tokenizer._tok)
        elif method == "hf-lookup":
            kwargs.update(prompt_lookup_num_tokens=PROMPT_LOOKUP_TOKENS)
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        self.target_timer.calls.clear()
        if self.draft_timer:
            self.draft_timer.calls.clear()
        ids = torch.tensor([prompt_ids], device=target.device)
        start = time.perf_counter()
        with torch.inference_mode():
            out = target._model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
        total = time.perf_counter() - start

        generated = out[0, len(prompt_ids):].tolist()
        cut = next((i for i, t in enumerate(generated) if t in tok.eos_ids), None)
        token_ids = generated if cut is None else generated[:cut]
        finish = "stop" if cut is not None else "length" if len(generated) >= max_new_tokens else "time"
        drafted, committed = rounds_from_calls(self.target_timer.calls, len(prompt_ids),
                                               len(prompt_ids) + len(generated))
        draft_s = self.draft_timer.seconds if method == "hf-uag" else 0.0
        stats = stats_from_rounds(method, drafted, committed, len(token_ids), draft_s,
                                  self.target_timer.seconds, total)
        return {"output": tok.decode(token_ids), "token_ids": token_ids, "finish_reason": finish,
                "stats": stats.to_dict(), "draft_lengths": drafted, "accept_lengths": committed}
