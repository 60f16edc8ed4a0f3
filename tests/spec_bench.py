"""Spec-Bench prompts for the real-model tests, from the copy bundled with anyspec."""

from importlib.resources import as_file, files

from anyspec.bench.data import Question, read_questions


def spec_bench_questions() -> list[Question]:
    """The 480 Spec-Bench questions in file order, read as package data."""
    with as_file(files("anyspec") / "data" / "question.jsonl") as path:
        return read_questions(path)


def spec_bench_prompts(n: int) -> list[tuple[str, str]]:
    """n first-turn prompts taken round-robin over the categories, so every category appears."""
    by_category: dict[str, list[str]] = {}
    for question in spec_bench_questions():
        by_category.setdefault(question.category, []).append(question.turns[0])
    out, i = [], 0
    while len(out) < n:
        for category, prompts in by_category.items():
            if i < len(prompts) and len(out) < n:
                out.append((category, prompts[i]))
        i += 1
    return out
