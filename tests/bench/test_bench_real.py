"""`anyspec bench` end to end on the real embedded models (small: a few prompts, few tokens)."""

import json

import pytest

from anyspec.cli import main

pytestmark = pytest.mark.slow


def rows_of(folder):
    return [json.loads(line) for line in (folder / "rows.jsonl").read_text().splitlines()]


def test_small_run_end_to_end_then_resume_and_compare(tmp_path, capsys):
    """2 questions (a two-turn writing one and a translation one), 16 tokens, ar + slem on
    llama.cpp, greedy: every output equals ar's, the report and plots are written."""
    out = tmp_path / "run"
    args = ["bench", "--methods", "slem", "--question-ids", "81,161", "--max-new-tokens", "16",
            "--draft-length", "4", "--target-backend", "llamacpp", "--draft-backend", "llamacpp",
            "--out", str(out)]
    assert main(args) == 0
    rows = rows_of(out)
    assert sorted((r["method"], r["question_id"]) for r in rows) == \
        [("ar", 81), ("ar", 161), ("slem", 81), ("slem", 161)]
    assert all(r["status"] == "ok" for r in rows)
    by = {(r["method"], r["question_id"]): r for r in rows}
    first, second = by[("slem", 81)]["turns"]
    assert second["prompt_tokens"] >= first["prompt_tokens"] + len(first["token_ids"])  # turn 2 continues turn 1
    for key in (("slem", 81), ("slem", 161)):
        for t, t_ar in zip(by[key]["turns"], by[("ar", key[1])]["turns"]):
            assert t["token_ids"] == t_ar["token_ids"] and len(t["token_ids"]) == 16
            assert sum(t["accept_lengths"]) == t["stats"]["round_tokens"]
            assert len(t["draft_lengths"]) == t["stats"]["rounds"]
    assert sum(t["stats"]["drafted"] for key in (("slem", 81), ("slem", 161)) for t in by[key]["turns"]) > 0
    report = (out / "report.md").read_text()
    assert "All 3 compared turns equal their baseline's output token for token." in report
    assert "| slem | llamacpp | ar | 2 |" in report
    for png in ("speedup.png", "mat.png", "acceptance_per_position.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"

    # resume: nothing left to do, nothing run twice
    assert main(args + ["--resume"]) == 0
    assert len(rows_of(out)) == 4
    # a planted mismatch in the rows makes the report command fail
    planted = rows_of(out)
    planted[1]["turns"][0]["token_ids"][3] += 1
    (out / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in planted))
    assert main(["bench", "--report", str(out), "--no-plots"]) == 1
    assert "differ from the baseline" in (out / "report.md").read_text()

    capsys.readouterr()
    assert main(["bench", "--compare", str(out), str(out)]) == 0
    assert "| slem |" in capsys.readouterr().out


def test_a_sampled_run_checks_every_method_against_ar(tmp_path):
    """Every sample is seeded, and coupled drafts write ar's text: at temperature 1 the bench
    compares outputs token for token too; under the rejection rule it does not."""
    out = tmp_path / "run"
    args = ["bench", "--methods", "tli,tokentiming", "--question-ids", "161",
            "--max-new-tokens", "16", "--draft-length", "3", "--temperature", "1",
            "--target-backend", "llamacpp", "--draft-backend", "llamacpp", "--no-plots"]
    assert main(args + ["--out", str(out)]) == 0
    assert "All 2 compared turns equal their baseline's output" in (out / "report.md").read_text()
    assert main(args + ["--out", str(tmp_path / "off"), "--coupling", "off"]) == 0
    assert "Not checked" in (tmp_path / "off" / "report.md").read_text()


def test_hf_uag_peer_greedy(tmp_path):
    """transformers' universal assisted generation on the same pair: one prompt, 8 tokens,
    greedy output equal to transformers' target-alone generate, with drafting measured."""
    out = tmp_path / "run"
    assert main(["bench", "--methods", "hf-uag", "--question-ids", "161", "--max-new-tokens", "8",
                 "--out", str(out), "--no-plots"]) == 0
    rows = {r["method"]: r for r in rows_of(out)}
    assert set(rows) == {"hf-ar", "hf-uag"} and all(r["status"] == "ok" for r in rows.values())
    uag, ar = rows["hf-uag"]["turns"][0], rows["hf-ar"]["turns"][0]
    assert uag["token_ids"] == ar["token_ids"] and len(ar["token_ids"]) == 8
    assert uag["stats"]["drafted"] > 0 and uag["stats"]["draft_seconds"] > 0
    assert sum(uag["accept_lengths"]) == uag["stats"]["round_tokens"] == 8
    # each round read from the hooks: a wrong cache length would still telescope to 8
    assert all(n >= 1 for n in uag["accept_lengths"]) and min(uag["draft_lengths"]) >= 0
    assert ar["stats"]["rounds"] == 8 and ar["stats"]["drafted"] == 0
    assert ar["accept_lengths"] == [1] * 8
