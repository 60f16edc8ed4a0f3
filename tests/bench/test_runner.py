"""The run loop without models: fake methods stand in for the engine, so crashes, timeouts,
Ctrl-C and --resume can be planted exactly where wanted."""

import json

import pytest

from anyspec.bench import runner
from anyspec.bench.data import (
    Question,
    conversation_prompt,
    read_questions,
    render_chat,
    select_questions,
)
from anyspec.bench.report import compare, write_report
from anyspec.errors import AnyspecError

SETTINGS = {"target": "t", "draft": "d", "target_backend": "auto", "draft_backend": "auto",
            "device": "cpu", "n_ctx": None, "max_new_tokens": 4, "temperature": 0.0, "top_k": 0,
            "top_p": 1.0, "seed": None, "draft_length": "auto", "draft_stop_below": None,
            "sampled_drafting": False, "dtw_band": 8, "min_confidence": 0.05, "prompts": None,
            "sample_timeout": None}
# prompts of different lengths: the fake methods pick a question by its prompt length
QUESTIONS = [Question(1, "qa", ("one?",)), Question(2, "qa", ("the second?",)),
             Question(3, "writing", ("three?", "and then?"))]


class FakeTokenizer:
    chat_template = None

    def encode(self, text, add_special=True, parse_special=False):
        return [ord(c) % 50 for c in text]


def fake_method(name, calls, fail_on=None):
    """Echoes the last prompt ids; raises `fail_on[question prompt length]` when told."""

    def run(ids, max_new_tokens, sampling, timeout):
        calls.append((name, len(ids)))
        if fail_on and len(ids) in fail_on:
            raise fail_on[len(ids)]
        out = ids[-max_new_tokens:]
        st = {"rounds": len(out), "new_tokens": len(out), "round_tokens": len(out), "drafted": 0,
              "accepted": 0, "accepted_at": [], "drafted_at": [], "prefill_seconds": 0.0,
              "draft_seconds": 0.0, "target_seconds": 0.01, "overhead_seconds": 0.0,
              "total_seconds": 0.01}
        return {"output": "x" * len(out), "token_ids": out, "finish_reason": "length",
                "stats": st, "draft_lengths": [0] * len(out), "accept_lengths": [1] * len(out)}

    return runner.Method(name, "fake", "ar", FakeTokenizer(), run)


def patch_methods(monkeypatch, methods):
    monkeypatch.setattr(runner, "build_methods", lambda names, s: (
        {n: m for n, m in methods.items() if n in names}, {"sd": "needs one vocabulary"}, {"target": "fake"}))


def rows_of(out):
    return [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]


def prompt_len(question, turn=0, answers=()):
    return len(FakeTokenizer().encode(conversation_prompt(list(question.turns[:turn + 1]), list(answers), None)))


def test_crash_and_timeout_are_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    calls = []
    n2 = prompt_len(QUESTIONS[1])
    methods = {"ar": fake_method("ar", calls),
               "slem": fake_method("slem", calls, {n2: RuntimeError("boom")}),
               "tli": fake_method("tli", calls, {n2: runner.SampleTimeout("still running after 1 s")})}
    patch_methods(monkeypatch, methods)
    assert runner.run_bench(["slem", "tli"], QUESTIONS, dict(SETTINGS, sample_timeout=7), tmp_path)
    rows = rows_of(tmp_path)
    assert len(rows) == 9
    status = {(r["method"], r["question_id"]): (r["status"], r["error"]) for r in rows}
    assert status[("slem", 2)] == ("error", "RuntimeError: boom")
    assert status[("tli", 2)] == ("timeout", "not finished within --sample-timeout 7 s")
    assert all(s == "ok" for (m, q), (s, _) in status.items() if q != 2 or m == "ar")
    text, mismatches = write_report(tmp_path)
    assert mismatches == []
    assert "slem on question 2 (qa): error: RuntimeError: boom" in text
    assert "sd: not applicable" in text
    assert (tmp_path / "speedup.png").stat().st_size > 0
    assert (tmp_path / "acceptance_per_position.png").is_file()


def test_second_turn_continues_the_first_turns_output(tmp_path, monkeypatch):
    calls = []
    patch_methods(monkeypatch, {"ar": fake_method("ar", calls)})
    runner.run_bench(["ar"], QUESTIONS[2:], SETTINGS, tmp_path)
    (row,) = rows_of(tmp_path)
    first = row["turns"][0]["output"]
    assert row["turns"][1]["prompt_tokens"] == prompt_len(QUESTIONS[2], 1, [first])
    assert conversation_prompt(["a?", "b?"], [" A."], None) == "User: a?\nAssistant: A.\nUser: b?\nAssistant:"


def test_interrupt_keeps_finished_rows_and_resume_skips_them(tmp_path, monkeypatch):
    calls = []
    n3 = prompt_len(QUESTIONS[2])
    methods = {"ar": fake_method("ar", calls), "slem": fake_method("slem", calls, {n3: KeyboardInterrupt()})}
    patch_methods(monkeypatch, methods)
    assert runner.run_bench(["slem"], QUESTIONS, SETTINGS, tmp_path) is False  # Ctrl-C on question 3
    done = {(r["method"], r["question_id"]) for r in rows_of(tmp_path)}
    assert {("ar", 1), ("slem", 1), ("ar", 2), ("slem", 2)} <= done and ("slem", 3) not in done

    with pytest.raises(AnyspecError, match="--resume"):  # a run folder is never overwritten
        runner.run_bench(["slem"], QUESTIONS, SETTINGS, tmp_path)
    with pytest.raises(AnyspecError, match="temperature"):  # nor resumed with other settings
        runner.run_bench(["slem"], QUESTIONS, dict(SETTINGS, temperature=0.5), tmp_path, resume=True)

    calls.clear()
    methods["slem"] = fake_method("slem", calls)
    patch_methods(monkeypatch, methods)
    assert runner.run_bench(["slem"], QUESTIONS, SETTINGS, tmp_path, resume=True)
    rows = rows_of(tmp_path)
    keys = [(r["method"], r["question_id"]) for r in rows]
    assert len(keys) == len(set(keys)) == 6  # nothing done twice
    timed = [c for c in calls if c[1] != len(FakeTokenizer().encode(runner.WARM_UP_PROMPT))]
    assert {c[0] for c in timed} == {m for m, q in set(keys) - done}  # only what was missing ran
    assert runner.run_bench(["slem"], QUESTIONS, SETTINGS, tmp_path, resume=True)  # all done: no-op
    assert len(rows_of(tmp_path)) == 6


def test_compare_two_runs(tmp_path, monkeypatch):
    patch_methods(monkeypatch, {"ar": fake_method("ar", []), "slem": fake_method("slem", [])})
    for name in ("a", "b"):
        runner.run_bench(["slem"], QUESTIONS[:2], SETTINGS, tmp_path / name)
    text = compare(tmp_path / "a", tmp_path / "b")
    assert "| slem |" in text and "Settings that differ: none" in text


def test_with_baselines():
    assert runner.with_baselines(["slem"]) == ["ar", "slem"]
    assert runner.with_baselines(["hf-uag"]) == ["hf-ar", "hf-uag"]
    assert runner.with_baselines(["tli", "hf-uag", "ar"]) == ["ar", "hf-ar", "tli", "hf-uag"]
    with pytest.raises(AnyspecError, match="unknown methods nope"):
        runner.with_baselines(["nope"])


def test_peer_draft_length_is_its_own_or_the_engine_methods():
    assert runner.peer_draft_length({"draft_length": "auto", "peer_draft_length": "2"}) == "2"
    assert runner.peer_draft_length({"draft_length": "auto", "peer_draft_length": None}) == "auto"
    assert runner.peer_draft_length({"draft_length": 4}) == 4  # a run saved before the option


def test_bundled_questions_and_selection(tmp_path):
    questions = read_questions()
    assert len(questions) == 480 and len({q.category for q in questions}) == 13
    picked = select_questions(questions, per_category=2)
    assert len(picked) == 26
    picked = select_questions(questions, categories=["writing", "math"], per_category=1)
    assert [(q.category, len(q.turns)) for q in picked] == [("writing", 2), ("math", 2)]
    assert [q.question_id for q in select_questions(questions, question_ids=["161", "81"])] == [81, 161]
    with pytest.raises(AnyspecError, match="unknown categories"):
        select_questions(questions, categories=["poetry"])
    own = tmp_path / "mine.jsonl"
    own.write_text(json.dumps({"question_id": "x", "category": "c", "turns": ["hi"]}) + "\n")
    assert read_questions(own) == [Question("x", "c", ("hi",))]


def test_explicit_question_ids_all_run_whatever_per_category(tmp_path):
    """The CLI's default --per-category 1 applies to categories, not to ids named one by one
    (a file of one category used to run only the first id asked for)."""
    own = tmp_path / "one_category.jsonl"
    own.write_text("".join(json.dumps({"question_id": i, "category": "c", "turns": [f"q{i}"]}) + "\n"
                           for i in range(1, 6)))
    picked = select_questions(read_questions(own), per_category=1, question_ids=["2", "4", "5"])
    assert [q.question_id for q in picked] == [2, 4, 5]
    assert [q.question_id for q in select_questions(read_questions(own), per_category=1)] == [1]


def test_chat_template_is_rendered_without_bos():
    template = ("{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>"
                "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")
    assert render_chat(template, ["a", "b"], [" A "]) == "<user>a</s><assistant>A</s><user>b</s><assistant>"


def test_engine_method_records_rounds_and_times_out():
    """On the enumerable toy models: per-round lists agree with the engine's totals, sd's
    greedy output equals ar's, and a sample past its time limit raises SampleTimeout."""
    from synthetic import ToyModel, ToyTokenizer

    from anyspec.config import GeneratorConfig
    from anyspec.sampling import SamplingParams

    tok = ToyTokenizer(list("abcdefgh "))
    target, draft = ToyModel(tok, seed=1, sharpness=3.0), ToyModel(tok, seed=1, sharpness=2.5)
    ar = runner.engine_method("ar", GeneratorConfig(method="ar", draft_length=3).build(target))
    sd = runner.engine_method("sd", GeneratorConfig(method="sd", draft_length=3).build(target, draft))
    ids = tok.encode("abc ")
    want = ar.run(ids, 24, SamplingParams(), None)
    got = sd.run(ids, 24, SamplingParams(), None)
    assert got["token_ids"] == want["token_ids"]
    st = got["stats"]
    assert st["drafted"] > 0 and st["accepted"] > 0
    assert len(got["draft_lengths"]) == len(got["accept_lengths"]) == st["rounds"]
    assert sum(got["draft_lengths"]) == st["drafted"]
    assert sum(got["accept_lengths"]) == st["round_tokens"]
    assert sum(got["accept_lengths"]) - st["rounds"] == st["accepted"]
    with pytest.raises(runner.SampleTimeout):
        sd.run(ids, 24, SamplingParams(), 1e-9)
