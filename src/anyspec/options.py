"""The command-line options that generate, serve and bench share, and what they build: a
GeneratorConfig, SamplingParams, and an early check of both models' backends."""

from __future__ import annotations

import argparse

from .config import COUPLING, METHODS, GeneratorConfig
from .models.registry import BACKENDS, DEFAULT_DRAFT, DEFAULT_TARGET, EMBEDDED
from .sampling import SamplingParams


def _methods_help() -> str:
    return "; ".join(f"{name}: {what}" for name, (_, what) in METHODS.items())


def add_model_options(p: argparse.ArgumentParser) -> None:
    names = ", ".join(EMBEDDED)
    p.add_argument("--target", default=DEFAULT_TARGET,
                   help=f"target model: an embedded name ({names}), a .gguf file or a Hugging Face "
                        f"model directory (default {DEFAULT_TARGET})")
    p.add_argument("--draft", default=DEFAULT_DRAFT, help=f"draft model, same forms (default {DEFAULT_DRAFT})")
    p.add_argument("--method", default="auto", choices=["auto", *METHODS],
                   help="auto (default): hybrid, or with --tree the draft model's method "
                        "(sd when the vocabularies match, else tokentiming). "
                        f"{_methods_help()}")
    p.add_argument("--target-backend", default="auto", choices=BACKENDS,
                   help="auto: llamacpp for .gguf files on CPU, hf (transformers) otherwise")
    p.add_argument("--draft-backend", default="auto", choices=BACKENDS, help="as --target-backend, for the draft")
    p.add_argument("--device", default="cpu", help="cpu or cuda (hf backend; bf16 on cuda)")
    p.add_argument("--draft-length", default="auto", metavar="K",
                   help="draft tokens per round: auto (default) picks the k with the most expected "
                        "tokens per second from measured model costs and acceptance, and plain "
                        "decoding when drafting does not pay; adaptive is Hugging Face's +2/-1 "
                        "rule; an integer fixes k")
    p.add_argument("--draft-stop-below", type=float, default=None, metavar="P",
                   help="stop drafting before a step where the draft's most likely token has "
                        "probability < P (default 0.4 with auto or adaptive, off with a fixed "
                        "length and for tokentiming, which stops by --min-confidence)")
    p.add_argument("--sampled-drafting", action="store_true",
                   help="slem/tokentiming: sample the draft at the target's temperature instead "
                        "of taking its argmax (verification stays exact either way)")
    p.add_argument("--dtw-band", type=int, default=8, metavar="W",
                   help="tokentiming: Sakoe-Chiba band of the DTW alignment (default 8)")
    p.add_argument("--min-confidence", type=float, default=0.05, metavar="C",
                   help="tokentiming: draft, and propose target tokens, while the aligned "
                        "draft confidence stays >= C (default 0.05; 0 proposes all, like slem)")
    p.add_argument("--draft-window", type=int, default=None, metavar="N",
                   help="cross-vocabulary methods: the draft reads only the last N of its tokens "
                        "of a prompt, so a long prompt costs it a bounded prefill (default: all)")
    p.add_argument("--tree", default=None, metavar="N|auto",
                   help="sd, tli, slem, tokentiming: draft a token tree per round instead of a "
                        "chain (DySpec: grown where acceptance is likeliest, learnt as it goes; "
                        "siblings sampled without replacement; slem and tokentiming re-tokenize "
                        "each branch) and verify it in one target pass. N: N tokens; "
                        "auto: grown while the measured costs say a token pays. --draft-length "
                        "bounds its depth. Needs --target-backend hf (default: chains)")
    p.add_argument("--coupling", default="auto", choices=list(COUPLING),
                   help="how a draft that samples (sd, tli, slrs, sampled trees) meets the "
                        "target's randomness. on: " + COUPLING["on"] + "; off: "
                        + COUPLING["off"] + " (default auto: " + COUPLING["auto"] + ")")
    p.add_argument("--n-ctx", type=int, default=None, help="context size in tokens (default: the model's, at most 4096 on llamacpp)")


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); > 0 samples")
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0 = off)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1 = off)")
    p.add_argument("--seed", type=int, default=None,
                   help="same seed, same output: every method, draft length and tree gives the "
                        "text target-only decoding (--method ar) gives with this seed (with "
                        "--coupling off, only the same method and draft lengths do)")


def generator_config(args, method: str | None = None) -> GeneratorConfig:
    """The GeneratorConfig the model options describe, validated. args: the parsed options,
    or anything with the same attributes (a bench run's saved settings; a run saved before
    coupling was an option ran with its default)."""
    return GeneratorConfig(method=method or args.method, draft_length=args.draft_length,
                           draft_stop_below=args.draft_stop_below,
                           sampled_drafting=args.sampled_drafting, dtw_band=args.dtw_band,
                           min_confidence=args.min_confidence, draft_window=args.draft_window,
                           tree=args.tree,
                           coupling=getattr(args, "coupling", "auto")).validate()


def sampling_params(args) -> SamplingParams:
    return SamplingParams(args.temperature, args.top_k, args.top_p, args.seed)


def needs_draft(method: str) -> bool:
    return method == "auto" or METHODS[method][0]


def load_models(args) -> tuple:
    """(target, draft) as the model options name them; no draft for ar, lookup and suffix."""
    from .models.registry import load_model

    check_backends(args)
    target = load_model(args.target, args.target_backend, args.device, args.n_ctx)
    if not needs_draft(args.method):
        return target, None
    return target, load_model(args.draft, args.draft_backend, args.device, args.n_ctx, draft=True)


def check_backends(args) -> None:
    """Answer an unknown model or a missing backend for either model in seconds, before
    minutes of loading the other."""
    from .models.registry import choose_backend

    choose_backend(args.target, args.target_backend, args.device)
    if needs_draft(args.method):
        choose_backend(args.draft, args.draft_backend, args.device)
