"""The `anyspec` command. Thin: parses options and calls the library."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from . import __version__
from .errors import AnyspecError
from .models.registry import BACKENDS, DEFAULT_DRAFT, DEFAULT_TARGET, EMBEDDED
from .proposers import METHODS
from .bench.cli import add_bench_parser, cmd_bench
from .server.cli import add_serve_parser, cmd_serve


def _methods_help() -> str:
    return "; ".join(f"{name}: {what}" for name, (_, what) in METHODS.items())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anyspec",
        description="Universal speculative decoding: speed up a target LLM with any draft model, "
                    "even one with a different tokenizer, without changing its output.",
    )
    parser.add_argument("--version", action="version", version=f"anyspec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser(
        "generate", help="generate text, streaming it, then print one summary line",
        description="Generate a continuation of PROMPT with the target model, drafted by the "
                    "draft model. Output is exactly what the target alone would produce (greedy) "
                    "or distributed as it (sampling).",
    )
    gen.add_argument("prompt", help="the text to continue")
    add_model_options(gen)
    add_sampling_options(gen)
    gen.add_argument("--max-new-tokens", type=int, default=128, help="stop after this many tokens (default 128)")
    gen.add_argument("--stop", action="append", default=[], metavar="TEXT",
                     help="stop when TEXT appears (not included in the output); may be repeated")
    gen.add_argument("--json", action="store_true", help="print the result and its statistics as JSON instead of streaming")

    sub.add_parser("models", help="list the embedded models, their tokenizers and where they live")
    add_bench_parser(sub)
    add_serve_parser(sub)
    return parser


def add_model_options(p: argparse.ArgumentParser) -> None:
    names = ", ".join(EMBEDDED)
    p.add_argument("--target", default=DEFAULT_TARGET,
                   help=f"target model: an embedded name ({names}), a .gguf file or a Hugging Face "
                        f"model directory (default {DEFAULT_TARGET})")
    p.add_argument("--draft", default=DEFAULT_DRAFT, help=f"draft model, same forms (default {DEFAULT_DRAFT})")
    p.add_argument("--method", default="auto", choices=["auto", *METHODS],
                   help="auto: sd when the vocabularies match, else tokentiming. "
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
    p.add_argument("--n-ctx", type=int, default=None, help="context size in tokens (default: the model's, at most 4096 on llamacpp)")


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); > 0 samples")
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0 = off)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1 = off)")
    p.add_argument("--seed", type=int, default=None, help="same seed, same output")


def check_backends(args) -> None:
    """Answer an unknown model or a missing backend for either model in seconds, before
    minutes of loading the other."""
    from .models.registry import choose_backend

    choose_backend(args.target, args.target_backend, args.device)
    if args.method != "ar":
        choose_backend(args.draft, args.draft_backend, args.device)


def load_generator(args):
    """Load the models named by the options and put the generator together."""
    from .control import draft_stop_below
    from .engine import SpeculativeGenerator
    from .models.registry import load_model
    from .proposers import make_proposer, resolve_method

    check_backends(args)
    target = load_model(args.target, args.target_backend, args.device, args.n_ctx)
    if args.method == "ar":
        return SpeculativeGenerator(target)
    draft = load_model(args.draft, args.draft_backend, args.device, args.n_ctx, draft=True)
    method = resolve_method(args.method, target, draft)
    proposer = make_proposer(method, target, draft,
                             draft_stop_below(args.draft_stop_below, args.draft_length, method),
                             args.sampled_drafting, args.dtw_band, args.min_confidence,
                             args.draft_window, args.tree)
    return SpeculativeGenerator(target, proposer, args.draft_length)


def cmd_generate(args) -> int:
    from .sampling import SamplingParams

    sampling = SamplingParams(args.temperature, args.top_k, args.top_p, args.seed)
    from .control import make_controller
    from .proposers import check_draft_window, check_tree_budget

    make_controller(args.draft_length)  # reject bad values before minutes of model loading
    check_draft_window(args.draft_window)
    check_tree_budget(args.tree, None if args.method == "auto" else args.method)
    if args.max_new_tokens < 1:
        raise AnyspecError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    gen = load_generator(args)
    if args.json:
        result = gen.generate(args.prompt, args.max_new_tokens, sampling, args.stop)
        print(json.dumps({"text": result.text, "token_ids": result.token_ids,
                          "finish_reason": result.finish_reason, "target": gen.target.describe(),
                          "stats": result.stats.to_dict()}, indent=2))
        return 0
    result = gen.generate(args.prompt, args.max_new_tokens, sampling, args.stop,
                          on_text=lambda piece: print(piece, end="", flush=True))
    print()
    print(result.stats.summary(), file=sys.stderr)
    return 0


def cmd_models(args) -> int:
    from .models.registry import embedded_path

    for m in EMBEDDED.values():
        try:
            where = str(embedded_path(m.name))
        except AnyspecError as e:
            where = f"not installed ({e})"
        print(f"{m.name}  [{m.role} by default]  {m.tokenizer}, {m.vocab_size:,} tokens\n"
              f"    package {m.package}; file {where}")
    return 0


def configure_process(environ=os.environ) -> None:
    """The command's process-wide defaults, set before torch or llama.cpp is imported.

    OpenMP threads (torch's and llama.cpp's pools) spin 10000 iterations before they sleep
    instead of libgomp's 300000, so one model's idle pool does not starve the other model,
    or another process, on a small machine; too short a spin slows torch. A value the user
    set (GOMP_SPINCOUNT, or OMP_WAIT_POLICY) wins. benchmarks/omp_spin.py measures it.
    Library users who want the same set GOMP_SPINCOUNT=10000 themselves.
    """
    if "OMP_WAIT_POLICY" not in environ:
        environ.setdefault("GOMP_SPINCOUNT", "10000")


def main(argv: list[str] | None = None) -> int:
    configure_process()
    args = build_parser().parse_args(argv)
    if args.command != "serve":  # serve configures logging from --log-level
        # the library reports through logging: its notes (a model's one-time conversion) and
        # warnings on stderr, other libraries' warnings only
        logging.basicConfig(level=logging.WARNING, format="anyspec: %(message)s")
        logging.getLogger("anyspec").setLevel(logging.INFO)
    try:
        return {"generate": cmd_generate, "models": cmd_models, "bench": cmd_bench,
                "serve": cmd_serve}[args.command](args)
    except AnyspecError as e:
        print(f"anyspec: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
