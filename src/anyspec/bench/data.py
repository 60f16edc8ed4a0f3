"""Spec-Bench questions, and the prompt text each turn of a conversation is generated from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import AnyspecError
from ..server.templates import render_chat as render_messages  # jinja2 only, no server

QUESTIONS = Path(__file__).resolve().parents[1] / "data" / "question.jsonl"


@dataclass(frozen=True)
class Question:
    question_id: int | str
    category: str
    turns: tuple[str, ...]  # user messages; MT-bench rows have two


def read_questions(path: str | Path | None = None) -> list[Question]:
    path = Path(path) if path else QUESTIONS
    if not path.is_file():
        raise AnyspecError(f"prompts file {path} does not exist")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            turns = row["turns"]
            if isinstance(turns, str):
                turns = [turns]
            out.append(Question(row.get("question_id", n), row.get("category", "default"),
                                tuple(str(t) for t in turns)))
        except (ValueError, KeyError, TypeError) as e:
            raise AnyspecError(f"{path}, line {n}: expected a JSON object with 'turns' (a list "
                               f"of strings), 'category' and 'question_id': {e}") from e
        if not out[-1].turns:
            raise AnyspecError(f"{path}, line {n}: 'turns' is empty")
    return out


def select_questions(questions: list[Question], categories: list[str] | None = None,
                     per_category: int = 0, question_ids: list[str] | None = None) -> list[Question]:
    """Filter in file order: by category, by id, then the first `per_category` of each (0: all).
    Ids named explicitly all run: `per_category` applies only when no ids are given."""
    known = {q.category for q in questions}
    if categories:
        unknown = sorted(set(categories) - known)
        if unknown:
            raise AnyspecError(f"unknown categories {', '.join(unknown)}: the prompts have "
                               f"{', '.join(sorted(known))}")
        questions = [q for q in questions if q.category in categories]
    if question_ids:
        wanted = {str(i) for i in question_ids}
        missing = wanted - {str(q.question_id) for q in questions}
        if missing:
            raise AnyspecError(f"question ids not found (after the category filter): "
                               f"{', '.join(sorted(missing))}")
        questions = [q for q in questions if str(q.question_id) in wanted]
    if per_category > 0 and not question_ids:
        seen: dict[str, int] = {}
        kept = []
        for q in questions:
            seen[q.category] = seen.get(q.category, 0) + 1
            if seen[q.category] <= per_category:
                kept.append(q)
        questions = kept
    if not questions:
        raise AnyspecError("no questions left after filtering")
    return questions


def conversation_prompt(turns: list[str], answers: list[str], chat_template: str | None) -> str:
    """The text that turn len(answers)+1 continues: earlier turns with the model's own answers.

    Without a chat template (Gemma 3 270M is a base model) the plain format is
        "User: {turn 1}\\nAssistant:{answer 1}\\nUser: {turn 2}\\nAssistant:"
    i.e. the second prompt is the first prompt, the first output verbatim, then the new turn.
    """
    if chat_template:
        return render_chat(chat_template, turns, answers)
    text = ""
    for i, turn in enumerate(turns):
        text += f"User: {turn}\nAssistant:"
        if i < len(answers):
            text += f"{answers[i]}\n"
    return text


def render_chat(template: str, turns: list[str], answers: list[str]) -> str:
    """The conversation as the tokenizer's Jinja chat template writes it, rendered as the
    server renders chat requests (BOS left out: the tokenizer adds it when encoding)."""
    messages = []
    for i, turn in enumerate(turns):
        messages.append({"role": "user", "content": turn})
        if i < len(answers):
            messages.append({"role": "assistant", "content": answers[i].strip()})
    return render_messages(messages, template)


def encode_prompt(tokenizer, text: str, chat: bool) -> list[int]:
    """Target ids for a prompt; a chat template's control-token text becomes control tokens."""
    return tokenizer.encode(text, parse_special=chat)
