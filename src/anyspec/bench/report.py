"""report.md, plots and the side-by-side comparison of two runs, all from a run folder."""

from __future__ import annotations

import json
from pathlib import Path

from ..control import draft_stop_below
from ..errors import require
from . import metrics
from .runner import read_rows

FORMULAS = """\
## How the numbers are computed
Every rate is a ratio of sums over the samples (Spec-Bench style), never a mean of ratios.
- **tok/s** = new tokens / wall seconds, prefill included. **speedup** = tok/s over the
  baseline's tok/s on the questions both finished; baseline = `ar` for the engine's methods,
  `hf-ar` (transformers `generate`, target alone) for transformers peers.
- **decode speedup**: the same with prefill seconds left out.
- **MAT** = tokens committed / target passes (accepted draft tokens plus the target's own).
- **acceptance** = accepted / drafted tokens; **at position i** = rounds that accepted >= i
  tokens / rounds that drafted >= i tokens.
- **bound** = (d + 1) x T_base / T_round: the decode speedup if every drafted token were
  accepted, at the measured costs. d = drafted tokens per round, T_round = this method's
  (draft + target + overhead) seconds per round, T_base = the baseline's decode seconds per
  token. When the bound is below 1, no acceptance rate can make this configuration pay.
- **time per round**: draft forward, target forward, and everything else (overhead: proposing,
  re-tokenizing, verifying), as a mean and for the median round. transformers peers: measured
  with forward hooks; their first round also processes the prompt (no separate prefill).
- **repetition** = share of repeated 4-grams in the output tokens (seq-rep-4); high values mean
  degenerate loops, which inflate MAT and speedup.
- Prompts: `User: {turn}\\nAssistant:` (the target is a base model without chat template; a
  target with one gets its template); a second turn continues the first turn's prompt and output.
"""


def _fmt(v, pattern="{:.2f}") -> str:
    return "-" if v is None else pattern.format(v)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def load_run(folder: Path) -> tuple[dict, list[dict], dict[str, str]]:
    config = json.loads((folder / "config.json").read_text())
    rows = read_rows(folder / "rows.jsonl")
    baseline_of = {m: info["baseline"] for m, info in config.get("methods", {}).items()}
    baseline_of.update({r["method"]: r["baseline"] for r in rows})
    return config, rows, baseline_of


def build_report(config: dict, rows: list[dict], baseline_of: dict[str, str]) -> tuple[str, list[dict]]:
    s = config["settings"]
    summary = metrics.summarize(rows, baseline_of)
    methods = list(summary)
    categories = list(dict.fromkeys(r["category"] for r in metrics.ok_rows(rows)))
    stop = draft_stop_below(s["draft_stop_below"], s["draft_length"])
    if "tokentiming" in methods and draft_stop_below(s["draft_stop_below"], s["draft_length"],
                                                     "tokentiming") != stop:
        stop = f"{stop} (tokentiming: none, it stops by min confidence {s['min_confidence']})"
    out = ["# anyspec bench", ""]
    out += ["- models: " + "; ".join(f"{k}: {v}" for k, v in config.get("models", {}).items()),
            f"- sampling: temperature {s['temperature']}, top-k {s['top_k']}, top-p {s['top_p']}, "
            f"seed {s['seed']}; max new tokens {s['max_new_tokens']}; draft length "
            f"{s['draft_length']}, stop below {stop}"
            + (f"; hf-uag draft length {s['peer_draft_length']}"
               if s.get("peer_draft_length") else ""),
            f"- prompts: {s['prompts'] or 'Spec-Bench (bundled)'}, {config.get('questions', '?')} "
            f"questions; {len(rows)} samples recorded, {len(metrics.ok_rows(rows))} finished",
            f"- machine: {json.dumps(config.get('machine', {}))}", f"- started {config.get('started')}", ""]

    out += ["## All categories", ""]
    header = ["method", "backend", "baseline", "samples", "tok/s", "speedup", "decode speedup",
              "bound", "MAT", "acceptance", "drafted/round", "repetition"]
    table = []
    for m in methods:
        c = summary[m].get(metrics.ALL)
        if c:
            backend = config.get("methods", {}).get(m, {}).get("backend", "?")
            table.append([m, backend, c["baseline"], str(c["samples"]), _fmt(c["tokens_per_second"], "{:.1f}"),
                          _fmt(c["speedup"], "{:.2f}x"), _fmt(c["decode_speedup"], "{:.2f}x"),
                          _fmt(c["bound"], "{:.2f}x"), _fmt(c["mat"]), _fmt(c["acceptance_rate"], "{:.0%}"),
                          _fmt(c["drafted_per_round"]), _fmt(c["repetition"])])
    out += [_table(header, table), ""]

    for title, key, pattern in (("Speedup per category", "speedup", "{:.2f}x"),
                                ("MAT per category", "mat", "{:.2f}"),
                                ("Tokens/s per category", "tokens_per_second", "{:.1f}")):
        out += [f"## {title}", ""]
        table = [[cat] + [_fmt(summary[m].get(cat, {}).get(key), pattern) for m in methods]
                 for cat in [*categories, metrics.ALL]]
        out += [_table(["category", *methods], table), ""]

    out += ["## Acceptance per draft position", "",
            "Share of rounds drafting at least i tokens that accepted at least i.", ""]
    width = max((len(summary[m][metrics.ALL]["accepted_at"]) for m in methods
                 if metrics.ALL in summary[m]), default=0)
    width = min(width, 10)
    table = [[m] + [_fmt(a, "{:.0%}") for a in summary[m][metrics.ALL]["accepted_at"][:width]]
             + ["-"] * (width - len(summary[m][metrics.ALL]["accepted_at"][:width]))
             for m in methods if metrics.ALL in summary[m] and summary[m][metrics.ALL]["drafted"]]
    out += [_table(["method", *[str(i + 1) for i in range(width)]], table) if table else "(nothing drafted)", ""]

    out += ["## Time per round", ""]
    table = [[m, str(c["rounds"]), _fmt(c["draft_ms_per_round"], "{:.1f}"), _fmt(c["target_ms_per_round"], "{:.1f}"),
              _fmt(c["overhead_ms_per_round"], "{:.1f}"), _fmt(c.get("overhead_ms_median"), "{:.2f}"),
              _fmt(c["prefill_share"], "{:.0%}")]
             for m in methods if (c := summary[m].get(metrics.ALL))]
    out += [_table(["method", "rounds", "draft ms", "target ms", "overhead ms", "overhead ms, median round",
                    "prefill share of time"], table), ""]

    mismatches: list[dict] = []
    out += ["## Losslessness", ""]
    # sampled with seeds and coupled drafts, the engine's methods write ar's text (noise.py);
    # a run saved before coupling was a setting sampled otherwise
    coupled = s["temperature"] > 0 and s.get("coupling") in ("auto", "on")
    if s["temperature"] == 0 or coupled:
        compare = baseline_of if not coupled else {m: b for m, b in baseline_of.items()
                                                   if b == "ar"}
        mismatches, compared = metrics.find_mismatches(rows, compare)
        if mismatches:
            out += [f"**{len(mismatches)} of {compared} turns differ from the baseline's output:**", ""]
            out += [_table(["question", "category", "method", "baseline", "turn", "first different token", "lengths"],
                           [[str(x["question_id"]), x["category"], x["method"], x["baseline"], str(x["turn"]),
                             str(x["first_difference"]), f"{x['lengths'][0]} vs {x['lengths'][1]}"]
                            for x in mismatches]), ""]
        else:
            out += [f"All {compared} compared turns equal their baseline's output token for token.", ""]
    else:
        out += ["Not checked: sampled under the rejection rule (`--coupling off`), outputs are "
                "equal in distribution, not token for token.", ""]

    na = config.get("not_applicable", {})
    failed = [r for r in rows if r.get("status") != "ok"]
    if na or failed:
        out += ["## Not run", ""]
        out += [f"- {m}: not applicable: {why}" for m, why in na.items()]
        out += [f"- {r['method']} on question {r['question_id']} ({r['category']}): {r['status']}: "
                f"{r['error']}" for r in failed]
        out += [""]

    repeating = [(metrics.row_repetition(r), r) for r in metrics.ok_rows(rows)]
    repeating = sorted([x for x in repeating if x[0] > 0.5], key=lambda x: -x[0])
    if repeating:
        out += ["## Samples with heavy repetition (seq-rep-4 > 0.5)", ""]
        out += [_table(["method", "question", "category", "repetition"],
                       [[r["method"], str(r["question_id"]), r["category"], f"{rep:.2f}"]
                        for rep, r in repeating[:40]]), ""]
    out += [FORMULAS]
    return "\n".join(out), mismatches


def plot(summary: dict, folder: Path) -> list[Path]:
    """speedup.png and mat.png (per category per method), acceptance_per_position.png."""
    require("matplotlib", extra="bench", feature="the benchmark's plots (or --no-plots)")
    # Figure without pyplot: no global backend or figure registry is touched
    from matplotlib.figure import Figure

    methods = list(summary)
    categories = list(dict.fromkeys(c for m in methods for c in summary[m]))
    written = []
    for key, name, label in (("speedup", "speedup.png", "speedup over baseline"),
                             ("mat", "mat.png", "mean tokens per target pass (MAT)")):
        fig = Figure(figsize=(max(6, 0.9 * len(categories) * max(1, len(methods)) / 3), 4))
        ax = fig.subplots()
        width = 0.8 / max(1, len(methods))
        for j, m in enumerate(methods):
            values = [summary[m].get(c, {}).get(key) or 0 for c in categories]
            ax.bar([i + j * width for i in range(len(categories))], values, width, label=m)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(categories))], categories,
                      rotation=30, ha="right")
        if key == "speedup":
            ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_ylabel(label)
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(folder / name, dpi=120)
        written.append(folder / name)
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    drafting = [m for m in methods if summary[m].get(metrics.ALL, {}).get("accepted_at")]
    for m in drafting:
        at = summary[m][metrics.ALL]["accepted_at"]
        ax.plot(range(1, len(at) + 1), [a or 0 for a in at], marker="o", label=m)
    ax.set_xlabel("draft position")
    ax.set_ylabel("rounds accepting it / rounds drafting it")
    ax.set_ylim(0, 1.05)
    if drafting:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(folder / "acceptance_per_position.png", dpi=120)
    written.append(folder / "acceptance_per_position.png")
    return written


def write_report(folder: Path, plots: bool = True) -> tuple[str, list[dict]]:
    config, rows, baseline_of = load_run(folder)
    text, mismatches = build_report(config, rows, baseline_of)
    (folder / "report.md").write_text(text + "\n", encoding="utf-8")
    if plots and metrics.ok_rows(rows):
        plot(metrics.summarize(rows, baseline_of), folder)
    return text, mismatches


def compare(folder_a: Path, folder_b: Path) -> str:
    """Two runs side by side: overall numbers per method, then speedup per category."""
    runs = [load_run(Path(f)) for f in (folder_a, folder_b)]
    sums = [metrics.summarize(rows, base) for _, rows, base in runs]
    a_name, b_name = Path(folder_a).name, Path(folder_b).name
    out = [f"# {a_name} (A) vs {b_name} (B)", ""]
    sa, sb = runs[0][0]["settings"], runs[1][0]["settings"]
    differ = [k for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k)]
    out += ["Settings that differ: " + (", ".join(f"{k} {sa.get(k)!r} / {sb.get(k)!r}" for k in differ)
                                         if differ else "none"), ""]
    methods = list(dict.fromkeys([*sums[0], *sums[1]]))
    fields = (("tok/s", "tokens_per_second", "{:.1f}"), ("speedup", "speedup", "{:.2f}x"),
              ("bound", "bound", "{:.2f}x"), ("MAT", "mat", "{:.2f}"),
              ("acceptance", "acceptance_rate", "{:.0%}"), ("samples", "samples", "{}"))
    header = ["method"] + [f"{label} {side}" for label, _, _ in fields for side in ("A", "B")]
    table = []
    for m in methods:
        cells = [s.get(m, {}).get(metrics.ALL, {}) for s in sums]
        table.append([m] + [_fmt(c.get(key), pattern) for _, key, pattern in fields for c in cells])
    out += ["## All categories", "", _table(header, table), ""]
    categories = list(dict.fromkeys(c for s in sums for m in s for c in s[m]))
    table = [[c] + [f"{_fmt(sums[0].get(m, {}).get(c, {}).get('speedup'), '{:.2f}x')} / "
                    f"{_fmt(sums[1].get(m, {}).get(c, {}).get('speedup'), '{:.2f}x')}" for m in methods]
             for c in categories]
    out += ["## Speedup per category (A / B)", "", _table(["category", *methods], table), ""]
    return "\n".join(out)
