"""Shared fixtures: the embedded real models, loaded once per test session."""

import json
from pathlib import Path

import pytest

from anyspec.models.registry import load_model

SPEC_BENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "spec_bench" / "question.jsonl"


def spec_bench_prompts(n: int) -> list[tuple[str, str]]:
    """n first-turn prompts taken round-robin over the categories, so every category appears."""
    rows = [json.loads(line) for line in SPEC_BENCH.read_text().splitlines() if line.strip()]
    by_category: dict[str, list[str]] = {}
    for row in rows:
        by_category.setdefault(row["category"], []).append(row["turns"][0])
    out, i = [], 0
    while len(out) < n:
        for category, prompts in by_category.items():
            if i < len(prompts) and len(out) < n:
                out.append((category, prompts[i]))
        i += 1
    return out


@pytest.fixture(scope="session")
def gemma_llamacpp():
    return load_model("gemma-3-270m", "llamacpp")


@pytest.fixture(scope="session")
def smollm_llamacpp():  # used as a draft only, loaded as anyspec loads drafts
    return load_model("smollm2-135m-instruct", "llamacpp", draft=True)


@pytest.fixture(scope="session")
def gemma_hf():
    return load_model("gemma-3-270m", "hf")


@pytest.fixture(scope="session")
def smollm_hf():
    return load_model("smollm2-135m-instruct", "hf")
