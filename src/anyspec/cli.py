"""The `anyspec` command. Thin: parses options and calls the library."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from . import __version__
from .bench.cli import add_bench_parser, cmd_bench
from .errors import AnyspecError
from .models.registry import EMBEDDED
from .options import (
    add_model_options,
    add_sampling_options,
    generator_config,
    load_models,
    sampling_params,
)
from .server.cli import add_serve_parser, cmd_serve


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
    hf_dir = sub.add_parser(
        "hf-dir", help="print a Hugging Face directory of a model, for vLLM and other engines",
        description="Print the path of a Hugging Face model directory for MODEL (an embedded "
                    "name or a .gguf file; a directory is printed as is). A GGUF is dequantised "
                    "once (about a minute) and cached; its tokenizer adds BOS when the GGUF says "
                    "so. Serve it with vLLM: vllm serve \"$(anyspec hf-dir gemma-3-270m)\" "
                    "(docs/vllm.md).")
    hf_dir.add_argument("model", help="an embedded name (anyspec models), a .gguf file or a "
                                      "directory")
    add_bench_parser(sub)
    add_serve_parser(sub)
    return parser


def cmd_generate(args) -> int:
    # everything that needs no model is checked before minutes of loading
    sampling = sampling_params(args)
    config = generator_config(args)
    if args.max_new_tokens < 1:
        raise AnyspecError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    target, draft = load_models(args)
    gen = config.build(target, draft)
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


def cmd_hf_dir(args) -> int:
    from .models.hf import hf_directory

    print(hf_directory(args.model))
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
                "serve": cmd_serve, "hf-dir": cmd_hf_dir}[args.command](args)
    except AnyspecError as e:
        print(f"anyspec: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
