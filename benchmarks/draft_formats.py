"""The draft in other GGUF formats: how fast llama.cpp reads a prompt and takes a step.

    python benchmarks/draft_formats.py [--formats q4_0,q8_0,f16] [--prompts 6] [--steps 16]

Requantizes the shipped SmolLM2 (Q4_1) into a temporary folder with llama.cpp's
`llama_model_quantize` and loads every copy as anyspec loads a draft (fast kernels, not split
invariant). For each it prints the median prompt-reading speed over Spec-Bench prompts (up to
400 tokens) and the median time of one greedy decode step. Acceptance is not measured here:
run `anyspec bench --draft FILE` with a copy for that (docs/performance.md).
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import tempfile
import time
from pathlib import Path

import llama_cpp

from anyspec.bench.data import read_questions, select_questions
from anyspec.models.llamacpp import LlamaCppModel
from anyspec.models.registry import resolve


def requantize(source: Path, fmt: str, folder: Path) -> Path:
    out = folder / f"smollm2-{fmt}.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{fmt.upper()}")
    params.allow_requantize = True  # the source is quantized already
    if llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(),
                                      ctypes.byref(params)) != 0:
        raise SystemExit(f"llama.cpp could not requantize to {fmt}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--formats", default="q4_0,q8_0,f16", help="llama.cpp ftype names")
    ap.add_argument("--prompts", type=int, default=6)
    ap.add_argument("--steps", type=int, default=16, help="greedy steps after each prompt")
    args = ap.parse_args()

    _, shipped = resolve("smollm2-135m-instruct")
    questions = select_questions(read_questions(), per_category=1)[:args.prompts]
    print("| draft file | prompt reading | one decode step |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        files = {"shipped": shipped}
        files.update((f, requantize(shipped, f, Path(tmp))) for f in args.formats.split(","))
        for label, path in files.items():
            model = LlamaCppModel(path, split_invariant=False)
            reading, steps = [], []
            for q in questions:
                ids = model.tokenizer.encode(q.turns[0])[:400]
                model.reset()
                began = time.perf_counter()
                model.logits(ids, n_last=1)
                reading.append(len(ids) / (time.perf_counter() - began))
                for _ in range(args.steps):
                    began = time.perf_counter()
                    row = model.logits(ids, n_last=1)[0]
                    steps.append(time.perf_counter() - began)
                    ids.append(int(row.argmax()))
            print(f"| {label} | {statistics.median(reading):.0f} tok/s | "
                  f"{1000 * statistics.median(steps):.1f} ms |", flush=True)


if __name__ == "__main__":
    main()
