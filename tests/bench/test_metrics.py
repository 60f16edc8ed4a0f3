"""Benchmark arithmetic on constructed rows: every number checked against a hand computation."""

import pytest

from anyspec.bench import metrics
from anyspec.bench.peers import rounds_from_calls, stats_from_rounds


def stats(**kw):
    base = {k: 0 for k in metrics.ADDITIVE}
    base.update(accepted_at=[], drafted_at=[])
    base.update(kw)
    return base


def row(method, qid, category, turns, status="ok", baseline="ar"):
    return {"question_id": qid, "category": category, "method": method, "baseline": baseline,
            "status": status, "error": None, "turns": turns}


def turn(ids, **kw):
    return {"token_ids": ids, "output": "", "stats": stats(**kw)}


# ar: 10 tokens in 2 s (0.5 s prefill), one token per round
AR = dict(rounds=10, new_tokens=10, round_tokens=10, prefill_seconds=0.5, target_seconds=1.4,
          overhead_seconds=0.1, total_seconds=2.0)
# spec: 10 tokens in 1 s (0.5 s prefill); 4 rounds drafting 3 each, accepting 6 of 12
SPEC = dict(rounds=4, new_tokens=10, round_tokens=10, drafted=12, accepted=6,
            accepted_at=[4, 1, 1], drafted_at=[4, 4, 4], prefill_seconds=0.5,
            draft_seconds=0.2, target_seconds=0.25, overhead_seconds=0.05, total_seconds=1.0)


def test_rates_speedup_and_bound_by_hand():
    rows = [row("ar", 1, "qa", [turn(list(range(10)), **AR)]),
            row("spec", 1, "qa", [turn(list(range(10)), **SPEC)])]
    cell = metrics.summarize(rows, {"ar": "ar", "spec": "ar"})["spec"]["all"]
    assert cell["tokens_per_second"] == pytest.approx(10.0)
    assert cell["decode_tokens_per_second"] == pytest.approx(20.0)
    assert cell["speedup"] == pytest.approx(10.0 / 5.0)
    assert cell["decode_speedup"] == pytest.approx(20.0 / (10 / 1.5))
    assert cell["mat"] == pytest.approx(2.5)
    assert cell["acceptance_rate"] == pytest.approx(0.5)
    assert cell["drafted_per_round"] == pytest.approx(3.0)
    assert cell["accepted_at"] == pytest.approx([1.0, 0.25, 0.25])
    assert cell["draft_ms_per_round"] == pytest.approx(50.0)
    assert cell["target_ms_per_round"] == pytest.approx(62.5)
    # bound = (d + 1) * T_base / T_round = 4 * (1.5 s / 10 tokens) / (0.5 s / 4 rounds)
    assert cell["bound"] == pytest.approx(4 * 0.15 / 0.125)
    assert metrics.summarize(rows, {"ar": "ar", "spec": "ar"})["ar"]["all"]["speedup"] == pytest.approx(1.0)


def test_sums_over_turns_and_categories_are_ratios_of_sums():
    slow = dict(AR, total_seconds=8.0, prefill_seconds=0.0)
    rows = [row("ar", 1, "qa", [turn([1], **AR)]), row("ar", 2, "math", [turn([1], **AR), turn([1], **slow)])]
    summary = metrics.summarize(rows, {"ar": "ar"})
    assert summary["ar"]["qa"]["tokens_per_second"] == pytest.approx(5.0)
    assert summary["ar"]["math"]["tokens_per_second"] == pytest.approx(20 / 10.0)
    assert summary["ar"]["all"]["tokens_per_second"] == pytest.approx(30 / 12.0)  # not the mean of 5 and 2
    assert summary["ar"]["all"]["samples"] == 2


def test_speedup_pairs_only_questions_both_finished():
    fast = dict(AR, total_seconds=1.0, prefill_seconds=0.0)
    rows = [row("ar", 1, "qa", [turn([1], **AR)]), row("ar", 2, "qa", [], status="error"),
            row("spec", 1, "qa", [turn([1], **fast)]), row("spec", 2, "qa", [turn([1], **fast)])]
    cell = metrics.summarize(rows, {"ar": "ar", "spec": "ar"})["spec"]["qa"]
    assert cell["samples"] == 2 and cell["paired"] == 1
    assert cell["speedup"] == pytest.approx(2.0)


def test_per_position_totals_add_position_by_position():
    total = metrics.add_stats(metrics.add_stats({}, stats(accepted_at=[2, 1], drafted_at=[3, 3])),
                              stats(accepted_at=[1, 1, 1], drafted_at=[1, 1, 1]))
    assert total["accepted_at"] == [3, 2, 1] and total["drafted_at"] == [4, 4, 1]


def test_median_overhead_is_over_rounds_of_every_turn():
    rows = [row("spec", 1, "qa", [turn([1], rounds=3, overhead_ms=[0.5, 9.0, 0.7]),
                                  turn([1], rounds=2, overhead_ms=[0.6, 0.8])]),
            row("spec", 2, "qa", [turn([1], rounds=1, overhead_ms=[30.0])]),
            row("old", 1, "qa", [turn([1], rounds=1)])]  # a row from before per-round records
    summary = metrics.summarize(rows, {})
    assert summary["spec"]["all"]["overhead_ms_median"] == pytest.approx(0.75)  # of 6 rounds
    assert summary["old"]["all"]["overhead_ms_median"] is None


def test_repetition_rate():
    assert metrics.repetition_rate(list(range(20))) == 0.0
    assert metrics.repetition_rate([]) == 0.0
    loop = [1, 2, 3, 4] * 5  # 17 four-grams, 4 distinct
    assert metrics.repetition_rate(loop) == pytest.approx(1 - 4 / 17)
    assert metrics.repetition_rate([7] * 10) == pytest.approx(1 - 1 / 7)


def test_equality_check_catches_a_planted_mismatch():
    same, other = [5, 6, 7, 8], [5, 6, 9, 8]
    rows = [row("ar", 1, "qa", [turn(same), turn(same)]),
            row("slem", 1, "qa", [turn(same), turn(other)]),
            row("tli", 1, "qa", [turn(same), turn(same)]),
            row("tokentiming", 1, "qa", [turn(other)], status="timeout")]  # unfinished: not compared
    baselines = {"ar": "ar", "slem": "ar", "tli": "ar", "tokentiming": "ar"}
    mismatches, compared = metrics.find_mismatches(rows, baselines)
    assert compared == 4
    assert mismatches == [{"question_id": 1, "category": "qa", "method": "slem", "baseline": "ar",
                           "turn": 2, "first_difference": 2, "lengths": [4, 4]}]
    rows[1]["turns"][1] = turn(same)
    assert metrics.find_mismatches(rows, baselines)[0] == []
    rows[1]["turns"][1] = turn(same[:3])  # a shorter output is a mismatch too
    assert metrics.find_mismatches(rows, baselines)[0][0]["first_difference"] == 3


def test_rounds_from_transformers_forward_calls():
    """Calls seen on a real greedy UAG run (prompt 14 tokens, 16 new): (new tokens, cache before)."""
    calls = [(15, 0, 0.1), (8, 14, 0.1), (1, 22, 0.1), (3, 23, 0.1), (1, 26, 0.1), (1, 27, 0.1), (2, 28, 0.1)]
    drafted, committed = rounds_from_calls(calls, 14, 30)
    assert drafted == [1, 7, 0, 2, 0, 0, 1]
    assert committed == [1, 8, 1, 3, 1, 1, 1]
    s = stats_from_rounds("hf-uag", drafted, committed, 16, 0.3, 0.7, 1.5)
    assert (s.rounds, s.round_tokens, s.drafted, s.accepted) == (7, 16, 11, 9)
    assert s.drafted_at[:2] == [4, 2] and s.accepted_at[:2] == [2, 2]
    assert s.overhead_seconds == pytest.approx(0.5)
    # target alone: the prompt, then one token per call
    drafted, committed = rounds_from_calls([(14, 0, 0.1)] + [(1, 14 + i, 0.1) for i in range(3)], 14, 18)
    assert drafted == [0, 0, 0, 0] and committed == [1, 1, 1, 1]
