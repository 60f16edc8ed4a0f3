"""Benchmark arithmetic: pure functions on result rows, no models.

A row is one method on one question (see runner.py); its `turns` each hold the engine's
GenerationStats as a dict. Totals are sums over turns and rows, and every rate is a ratio of
sums (total tokens / total seconds, as Spec-Bench computes speedup), never a mean of ratios.

    tokens/s        = new_tokens / total_seconds                  (prefill included)
    speedup         = tokens/s / baseline tokens/s                (same questions, both finished)
    decode speedup  = the same after prefill: new_tokens / (total - prefill) seconds
    MAT             = round_tokens / rounds                       (tokens per target pass)
    acceptance      = accepted / drafted
    accepted at i   = rounds accepting >= i tokens / rounds drafting >= i tokens
    overhead median = the median round's overhead (time outside both models' forward passes)
    bound           = (d + 1) * T_base / T_round
        d       = drafted / rounds                                (mean draft tokens per round)
        T_round = (draft + target + overhead seconds) / rounds    (this method's round cost)
        T_base  = baseline decode seconds / baseline new tokens   (ar's cost of one token)
      the decode speedup if every drafted token were accepted at the measured round cost
"""

from __future__ import annotations

ADDITIVE = ("rounds", "new_tokens", "round_tokens", "drafted", "accepted", "prefill_seconds",
            "draft_seconds", "target_seconds", "overhead_seconds", "total_seconds")
PER_POSITION = ("accepted_at", "drafted_at")
ALL = "all"  # the category name of the row over every category


def repetition_rate(ids: list[int], n: int = 4) -> float:
    """Share of repeated n-grams (seq-rep-n, Welleck et al. 2019): 0 for text that never
    repeats a 4-gram, near 1 for a loop. Inflated throughput from degenerate loops shows here."""
    grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def add_stats(total: dict, stats: dict) -> dict:
    """total + stats, field by field; per-position lists are added position by position."""
    out = {k: total.get(k, 0) + stats.get(k, 0) for k in ADDITIVE}
    for k in PER_POSITION:
        a, b = list(total.get(k, [])), stats.get(k, [])
        a.extend([0] * (len(b) - len(a)))
        for i, v in enumerate(b):
            a[i] += v
        out[k] = a
    return out


def row_totals(rows: list[dict]) -> dict:
    total: dict = {}
    for row in rows:
        for turn in row["turns"]:
            total = add_stats(total, turn["stats"])
    return total if total else add_stats({}, {})


def median_overhead_ms(rows: list[dict]) -> float | None:
    """The median over every round of these rows (rows from before per-round records: None)."""
    values = sorted(v for row in rows for turn in row["turns"]
                    for v in turn["stats"].get("overhead_ms", []))
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _div(a: float, b: float) -> float | None:
    return a / b if b else None


def decode_seconds(t: dict) -> float:
    return t["total_seconds"] - t["prefill_seconds"]


def rates(t: dict) -> dict:
    """Everything derived from one set of totals."""
    rounds = t["rounds"]
    return {
        "tokens_per_second": _div(t["new_tokens"], t["total_seconds"]),
        "decode_tokens_per_second": _div(t["new_tokens"], decode_seconds(t)),
        "mat": _div(t["round_tokens"], rounds),
        "acceptance_rate": _div(t["accepted"], t["drafted"]),
        "drafted_per_round": _div(t["drafted"], rounds),
        "draft_ms_per_round": _div(1000 * t["draft_seconds"], rounds),
        "target_ms_per_round": _div(1000 * t["target_seconds"], rounds),
        "overhead_ms_per_round": _div(1000 * t["overhead_seconds"], rounds),
        "prefill_share": _div(t["prefill_seconds"], t["total_seconds"]),
        "accepted_at": [a / d if d else None for a, d in zip(t["accepted_at"], t["drafted_at"])],
    }


def speedup(t: dict, base: dict) -> float | None:
    ours, theirs = _div(t["new_tokens"], t["total_seconds"]), _div(base["new_tokens"], base["total_seconds"])
    return _div(ours, theirs) if ours is not None and theirs is not None else None


def decode_speedup(t: dict, base: dict) -> float | None:
    ours, theirs = _div(t["new_tokens"], decode_seconds(t)), _div(base["new_tokens"], decode_seconds(base))
    return _div(ours, theirs) if ours is not None and theirs is not None else None


def bound(t: dict, base: dict) -> float | None:
    """Decode speedup if every drafted token were accepted, at this method's measured round cost."""
    rounds = t["rounds"]
    t_round = _div(decode_seconds(t), rounds)
    t_base = _div(decode_seconds(base), base["new_tokens"])
    if not t_round or t_base is None:
        return None
    return (t["drafted"] / rounds + 1) * t_base / t_round


def row_repetition(row: dict) -> float:
    reps = [turn.get("repetition_rate", repetition_rate(turn["token_ids"])) for turn in row["turns"]]
    return sum(reps) / len(reps) if reps else 0.0


def ok_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("status") == "ok"]


def summarize(rows: list[dict], baseline_of: dict[str, str]) -> dict[str, dict[str, dict]]:
    """{method: {category or "all": cell}}; a cell has the rates, speedup over the method's
    baseline (on the questions both finished), the bound, sample count and mean repetition."""
    done = ok_rows(rows)
    by_key = {(r["method"], str(r["question_id"])): r for r in done}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    categories = list(dict.fromkeys(r["category"] for r in rows))
    out: dict[str, dict[str, dict]] = {}
    for method in methods:
        base_method = baseline_of.get(method, method)
        out[method] = {}
        for category in [*categories, ALL]:
            mine = [r for r in done if r["method"] == method and category in (ALL, r["category"])]
            if not mine:
                continue
            pairs = [(r, by_key[(base_method, str(r["question_id"]))]) for r in mine
                     if (base_method, str(r["question_id"])) in by_key]
            cell = {"samples": len(mine), "baseline": base_method, "paired": len(pairs),
                    **row_totals(mine), **rates(row_totals(mine)),
                    "repetition": sum(map(row_repetition, mine)) / len(mine),
                    "overhead_ms_median": median_overhead_ms(mine),
                    "speedup": None, "decode_speedup": None, "bound": None}
            if pairs:
                t, base = row_totals([p[0] for p in pairs]), row_totals([p[1] for p in pairs])
                cell.update(speedup=speedup(t, base), decode_speedup=decode_speedup(t, base),
                            bound=bound(t, base))
            out[method][category] = cell
    return out


def find_mismatches(rows: list[dict], baseline_of: dict[str, str]) -> tuple[list[dict], int]:
    """Greedy losslessness: every finished turn compared token for token with the baseline's
    turn on the same question. Returns (mismatches, number of turns compared)."""
    done = {(r["method"], str(r["question_id"])): r for r in ok_rows(rows)}
    mismatches, compared = [], 0
    for (method, qid), row in done.items():
        base_method = baseline_of.get(method, method)
        base = done.get((base_method, qid))
        if method == base_method or base is None:
            continue
        for i, (ours, theirs) in enumerate(zip(row["turns"], base["turns"])):
            compared += 1
            a, b = ours["token_ids"], theirs["token_ids"]
            if a != b:
                at = next((j for j, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                mismatches.append({"question_id": row["question_id"], "category": row["category"],
                                   "method": method, "baseline": base_method, "turn": i + 1,
                                   "first_difference": at, "lengths": [len(a), len(b)]})
    return mismatches, compared
