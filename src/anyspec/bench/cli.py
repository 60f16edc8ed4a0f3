"""`anyspec bench`: options, and the command that runs, reports or compares."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..config import COUPLING
from ..errors import AnyspecError
from ..options import add_sampling_options, generator_config, sampling_params

DEFAULT_ROOT = Path("bench-runs")


def _list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_bench_parser(sub) -> argparse.ArgumentParser:
    from ..models.registry import BACKENDS, DEFAULT_DRAFT, DEFAULT_TARGET
    from .runner import all_method_names

    p = sub.add_parser(
        "bench", help="Spec-Bench report: every method against target-only decoding",
        description="Run methods on Spec-Bench questions (bundled) with the same models and "
                    "sampling settings, interleaved per question, and write a run folder: "
                    "rows.jsonl (one row per sample, written as it finishes), config.json, "
                    "report.md (speedup, MAT, acceptance, time split, bound, losslessness) and "
                    "PNG plots. At temperature 0 every output is compared token for token with "
                    "its baseline's, and sampled (every sample is seeded) so is every engine "
                    "method's with ar's unless --coupling off; a mismatch makes the command "
                    "exit with status 1.",
    )
    p.add_argument("--methods", type=_list, default=None, metavar="LIST",
                   help=f"comma-separated, from {', '.join(all_method_names())} (default: the "
                        "engine's methods). ar (and hf-ar for transformers peers) are added as "
                        "baselines; a method the pair cannot run (sd with two vocabularies) is "
                        "reported as not applicable")
    p.add_argument("--per-category", type=int, default=1, metavar="N",
                   help="first N questions of each category (default 1; 0: all 480); "
                        "ignored with --question-ids, which all run")
    p.add_argument("--categories", type=_list, default=None, metavar="LIST",
                   help="only these categories (e.g. writing,translation)")
    p.add_argument("--question-ids", type=_list, default=None, metavar="LIST", help="only these question ids")
    p.add_argument("--prompts", default=None, metavar="FILE",
                   help="a JSONL file of the same shape as Spec-Bench's question.jsonl "
                        "(question_id, category, turns) instead of the bundled one")
    p.add_argument("--max-new-tokens", type=int, default=128, help="per turn (default 128; Spec-Bench uses 1024)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help=f"run folder (default {DEFAULT_ROOT}/<date-time>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out (default: the newest under "
                        f"{DEFAULT_ROOT}/), skipping the samples it already holds")
    p.add_argument("--sample-timeout", type=float, default=None, metavar="S",
                   help="give up a sample (all its turns) after S seconds and record a timeout")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("RUN_A", "RUN_B"),
                   help="print two run folders side by side and exit (runs nothing)")
    p.add_argument("--report", type=Path, default=None, metavar="DIR",
                   help="rewrite report.md and plots of a run folder from its rows and exit")

    m = p.add_argument_group("models")
    m.add_argument("--target", default=DEFAULT_TARGET, help=f"target model (default {DEFAULT_TARGET})")
    m.add_argument("--draft", default=DEFAULT_DRAFT, help=f"draft model (default {DEFAULT_DRAFT})")
    m.add_argument("--target-backend", default="auto", choices=BACKENDS,
                   help="backend of the engine's methods (transformers peers always run on hf)")
    m.add_argument("--draft-backend", default="auto", choices=BACKENDS)
    m.add_argument("--device", default="cpu", help="cpu or cuda (hf backend)")
    m.add_argument("--n-ctx", type=int, default=None, help="context size in tokens")
    m.add_argument("--draft-length", default="auto", metavar="K",
                   help="draft tokens per round, as in anyspec generate: auto (default), "
                        "adaptive or an integer. hf-uag: auto keeps transformers' defaults (up "
                        "to 20, stop below confidence 0.4), adaptive is its +2/-1 heuristic, K drafts K")
    m.add_argument("--peer-draft-length", default=None, metavar="K",
                   help="hf-uag's draft length, if not --draft-length's: each tool at its best "
                        "setting in one run (transformers' is short, e.g. 2, on a slow CPU draft)")
    m.add_argument("--draft-stop-below", type=float, default=None, metavar="P",
                   help="stop drafting before a step whose most likely draft token is below P "
                        "(default 0.4 with auto or adaptive, except for tokentiming, which "
                        "stops by --min-confidence)")
    m.add_argument("--sampled-drafting", action="store_true", help="as in anyspec generate")
    m.add_argument("--dtw-band", type=int, default=8, metavar="W", help="tokentiming's DTW band")
    m.add_argument("--min-confidence", type=float, default=0.05, metavar="C", help="tokentiming's threshold")
    m.add_argument("--draft-window", type=int, default=None, metavar="N",
                   help="as in anyspec generate: the draft reads the last N draft tokens of a prompt")
    m.add_argument("--tree", default=None, metavar="N|auto",
                   help="as in anyspec generate: sd, tli, slem and tokentiming draft trees of N "
                        "tokens, or sized by cost (the other methods chains); needs "
                        "--target-backend hf")
    m.add_argument("--coupling", default="auto", choices=list(COUPLING),
                   help="as in anyspec generate: on, sd, tli and slrs drafts share the target's "
                        "noise, so seeded output equals ar's; off, the rejection rule min(1, q/p). "
                        "Every sample is seeded, so auto (the default) is on")
    add_sampling_options(p)
    return p


def settings_from(args) -> dict:
    """Everything that defines what a run measures; saved in config.json, checked on --resume."""
    keys = ("target", "draft", "target_backend", "draft_backend", "device", "n_ctx",
            "max_new_tokens", "temperature", "top_k", "top_p", "seed", "draft_length",
            "peer_draft_length", "draft_stop_below", "sampled_drafting", "dtw_band",
            "min_confidence", "draft_window", "tree", "coupling", "prompts", "sample_timeout")
    s = {k: getattr(args, k) for k in keys}
    s["prompts"] = str(Path(args.prompts).resolve()) if args.prompts else None
    return s


def run_folder(args) -> Path:
    if args.out is not None:
        return args.out
    if args.resume:
        runs = sorted(p for p in DEFAULT_ROOT.glob("*") if (p / "config.json").is_file())
        if not runs:
            raise AnyspecError(f"--resume: no run under {DEFAULT_ROOT}/; give --out DIR")
        return runs[-1]
    return DEFAULT_ROOT / time.strftime("%Y%m%d-%H%M%S")


def cmd_bench(args) -> int:
    from ..config import METHODS
    from ..control import make_controller
    from .data import read_questions, select_questions
    from .report import compare, write_report
    from .runner import run_bench

    if args.compare:
        print(compare(*args.compare))
        return 0
    if args.report:
        _, mismatches = write_report(args.report, plots=not args.no_plots)
        print(f"wrote {args.report / 'report.md'}")
        return 1 if mismatches else 0
    # check cheap things before minutes of model loading
    sampling_params(args)
    generator_config(args, method="auto")  # each method gets the options it takes
    if args.peer_draft_length is not None:
        make_controller(args.peer_draft_length)
    if args.max_new_tokens < 1:
        raise AnyspecError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    questions = select_questions(read_questions(args.prompts), args.categories,
                                 args.per_category, args.question_ids)
    out = run_folder(args)
    names = args.methods or list(METHODS)
    try:
        finished = run_bench(names, questions, settings_from(args), out, args.resume)
    except KeyboardInterrupt:  # during loading or warm-up
        finished = False
    if not (out / "config.json").is_file():
        return 130
    text, mismatches = write_report(out, plots=not args.no_plots)
    print(text.split("## Acceptance per draft position")[0].rstrip())
    print(f"\nrun folder: {out} (report.md, rows.jsonl, config.json"
          f"{'' if args.no_plots else ', plots'})", file=sys.stderr)
    if mismatches:
        print(f"anyspec bench: {len(mismatches)} outputs differ from their baseline's "
              "(see report.md, Losslessness)", file=sys.stderr)
        return 1
    return 0 if finished else 130
