"""Running the benchmark: every method on every question, interleaved, one JSONL row each.

Row (one per question and method, written as soon as it finishes):
    question_id, category, method, backend, baseline, status ("ok", "error", "timeout"),
    error, seconds, turns: [{prompt_tokens, output, token_ids, finish_reason, stats,
                             draft_lengths, accept_lengths, repetition_rate}]
draft_lengths / accept_lengths are per round: tokens drafted, tokens committed (accepted + the
target's own token; Spec-Bench's accept_lengths). stats is the engine's GenerationStats.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from .. import __version__
from ..config import METHODS
from ..engine import SpeculativeGenerator
from ..errors import AnyspecError, require
from ..models.registry import load_model
from ..options import generator_config
from ..sampling import SamplingParams
from .data import Question, conversation_prompt, encode_prompt
from .metrics import repetition_rate
from .peers import PEER_BASELINE, PEERS, HFPeer

logger = logging.getLogger(__name__)

ENGINE_BASELINE = "ar"
WARM_UP_PROMPT = "The history of the printing press"
# settings that must match for --resume to append to a run
RESUME_KEYS = ("target", "draft", "target_backend", "draft_backend", "device", "n_ctx",
               "max_new_tokens", "temperature", "top_k", "top_p", "seed", "draft_length",
               "peer_draft_length", "draft_stop_below", "sampled_drafting", "dtw_band",
               "min_confidence", "draft_window", "tree", "coupling", "prompts")


class SampleTimeout(Exception):
    pass


@dataclass
class Method:
    name: str
    backend: str
    baseline: str
    tokenizer: object  # the target tokenizer its prompts are encoded with
    # (prompt ids, max new tokens, sampling, seconds left or None) -> turn record
    run: Callable[[list[int], int, SamplingParams, float | None], dict]


def all_method_names() -> list[str]:
    return [*METHODS, *PEERS]


def with_baselines(names: list[str]) -> list[str]:
    """The requested methods plus the baselines their speedups need, baselines first."""
    unknown = [m for m in names if m not in METHODS and m not in PEERS]
    if unknown:
        raise AnyspecError(f"unknown methods {', '.join(unknown)}: choose from "
                           f"{', '.join(all_method_names())}")
    out = [ENGINE_BASELINE] if any(m in METHODS for m in names) else []
    out += [PEER_BASELINE] if any(m in PEERS for m in names) else []
    return list(dict.fromkeys(out + names))


def engine_method(name: str, gen: SpeculativeGenerator) -> Method:
    models = [m for m in (gen.target, gen.draft) if m is not None]

    def run(prompt_ids, max_new_tokens, sampling, timeout):
        for model in models:  # no prefix reuse from the previous method: time every prefill
            model.rollback(0)
        stream = gen.stream(prompt_ids, max_new_tokens, sampling)
        start = time.perf_counter()
        for _ in stream:
            if timeout is not None and time.perf_counter() - start > timeout:
                raise SampleTimeout(f"still running after {timeout:.0f} s")
        result = stream.result
        stats = result.stats.to_dict()
        return {"output": result.text, "token_ids": result.token_ids,
                "finish_reason": result.finish_reason, "stats": stats,
                "draft_lengths": stats.pop("draft_lengths"),
                "accept_lengths": stats.pop("accept_lengths")}

    return Method(name, gen.target.backend, ENGINE_BASELINE, gen.target.tokenizer, run)


def peer_method(name: str, peer: HFPeer) -> Method:
    def run(prompt_ids, max_new_tokens, sampling, timeout):
        record = peer.generate(name, prompt_ids, max_new_tokens, sampling, timeout)
        if record["finish_reason"] == "time":
            raise SampleTimeout(f"still running after {timeout:.0f} s")
        return record

    return Method(name, "hf", PEER_BASELINE, peer.target.tokenizer, run)


def build_methods(names: list[str], s: dict) -> tuple[dict[str, Method], dict[str, str], dict]:
    """Load the models once and make every method; (methods, not applicable: reason, models)."""
    engine = [m for m in names if m in METHODS]
    peers = [m for m in names if m in PEERS]
    methods, not_applicable, models = {}, {}, {}
    target = draft = None
    if engine:
        target = load_model(s["target"], s["target_backend"], s["device"], s["n_ctx"])
        models["target"] = target.describe()
        if any(METHODS[m][0] for m in engine):
            draft = load_model(s["draft"], s["draft_backend"], s["device"], s["n_ctx"], draft=True)
            models["draft"] = draft.describe()
    config = generator_config(SimpleNamespace(**s), method="auto")  # the settings' options
    for m in engine:
        try:
            gen = config.for_method(m).build(target, draft)
        except AnyspecError as e:  # e.g. sd with two vocabularies
            not_applicable[m] = str(e)
            continue
        methods[m] = engine_method(m, gen)
    if peers:
        hf_target = target if target is not None and target.backend == "hf" else \
            load_model(s["target"], "hf", s["device"], s["n_ctx"])
        # never the engine's draft: sampled UAG prunes the assistant's output layer in place
        hf_draft = load_model(s["draft"], "hf", s["device"], s["n_ctx"]) if "hf-uag" in peers else None
        models["hf target"] = hf_target.describe()
        if hf_draft is not None:
            models["hf draft"] = hf_draft.describe()
        peer = HFPeer(hf_target, hf_draft, peer_draft_length(s), s["draft_stop_below"])
        for m in peers:
            methods[m] = peer_method(m, peer)
    return methods, not_applicable, models


def peer_draft_length(settings: dict) -> str | int:
    """hf-uag's draft length: its own if given, else the engine methods'."""
    return settings.get("peer_draft_length") or settings["draft_length"]


def sample_seed(base: int | None, question: Question, turn: int) -> int:
    """The same seed for every method on a given question and turn."""
    return ((base or 0) * 1_000_003 + zlib.crc32(str(question.question_id).encode()) * 8 + turn) % 2**32


def run_sample(method: Method, question: Question, s: dict) -> dict:
    """All turns of one question with one method; failures are recorded, never raised."""
    row = {"question_id": question.question_id, "category": question.category,
           "method": method.name, "backend": method.backend, "baseline": method.baseline,
           "status": "ok", "error": None, "seconds": 0.0, "turns": []}
    template = method.tokenizer.chat_template
    timeout = s.get("sample_timeout")
    start = time.perf_counter()
    try:
        for i in range(len(question.turns)):
            answers = [t["output"] for t in row["turns"]]
            text = conversation_prompt(list(question.turns[:i + 1]), answers, template)
            ids = encode_prompt(method.tokenizer, text, chat=bool(template))
            sampling = SamplingParams(s["temperature"], s["top_k"], s["top_p"],
                                      sample_seed(s["seed"], question, i))
            left = None if timeout is None else max(timeout - (time.perf_counter() - start), 0.001)
            record = method.run(ids, s["max_new_tokens"], sampling, left)
            record["prompt_tokens"] = len(ids)
            record["repetition_rate"] = repetition_rate(record["token_ids"])
            row["turns"].append(record)
    except SampleTimeout:
        row.update(status="timeout", error=f"not finished within --sample-timeout {timeout:g} s")
    except Exception as e:  # one crash must not end the run
        row.update(status="error", error=f"{type(e).__name__}: {e}")
    row["seconds"] = time.perf_counter() - start
    return row


def read_rows(path: Path) -> list[dict]:
    """Rows of a run; a line cut short by an interrupted write is skipped."""
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    return rows


def machine() -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version()}
    for module in ("torch", "transformers", "llama_cpp"):
        if module in sys.modules:
            info[module] = getattr(sys.modules[module], "__version__", "?")
    return info


def open_run(out: Path, settings: dict, resume: bool) -> tuple[dict, set]:
    """The run's config (checked against the saved one on --resume) and the done samples."""
    config_path, rows_path = out / "config.json", out / "rows.jsonl"
    if resume and config_path.is_file():
        config = json.loads(config_path.read_text())
        differ = [k for k in RESUME_KEYS if config["settings"].get(k) != settings.get(k)]
        if differ:
            raise AnyspecError(f"--resume: {out} was run with other settings ("
                               + ", ".join(f"{k}: {config['settings'].get(k)!r} there, "
                                           f"{settings.get(k)!r} now" for k in differ) + ")")
        config["settings"]["sample_timeout"] = settings.get("sample_timeout")
    else:
        if rows_path.is_file() and rows_path.stat().st_size and not resume:
            raise AnyspecError(f"{out} already holds a run: add --resume to finish it, or "
                               "choose another --out")
        config = {"settings": settings, "anyspec": __version__,
                  "started": time.strftime("%Y-%m-%d %H:%M:%S"), "methods": {},
                  "not_applicable": {}, "models": {}}
    done = {(r["method"], str(r["question_id"])) for r in read_rows(rows_path)}
    return config, done


def warm_up(methods: dict[str, Method], s: dict) -> None:
    """One short generation per method: first calls allocate buffers, build tables, fill caches."""
    for m in methods.values():
        try:
            ids = m.tokenizer.encode(WARM_UP_PROMPT)
            m.run(ids, 8, SamplingParams(s["temperature"], s["top_k"], s["top_p"], 0), None)
        except Exception as e:
            logger.warning("warm-up of %s failed (%s: %s); its samples will show the error",
                           m.name, type(e).__name__, e)


def run_bench(names: list[str], questions: list[Question], s: dict, out: Path,
              resume: bool = False) -> bool:
    """Run what is not done yet; rows are appended as they finish. False when interrupted."""
    require("tqdm", "jinja2", extra="bench", feature="anyspec bench")
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    config, done = open_run(out, s, resume)
    names = with_baselines(names)
    skip = done | {(m, str(q.question_id)) for m in config["not_applicable"] for q in questions}
    if all((m, str(q.question_id)) in skip for m in names for q in questions):
        return True  # a finished run resumed: no need to load the models
    methods, not_applicable, models = build_methods(names, s)
    if not methods:
        raise AnyspecError("no method can run with these settings: " + "; ".join(
            f"{m}: {why}" for m, why in not_applicable.items()))
    config["methods"].update({m.name: {"backend": m.backend, "baseline": m.baseline}
                              for m in methods.values()})
    config["not_applicable"].update(not_applicable)
    config["models"].update(models)
    config["machine"] = machine()
    config["questions"] = len(questions)
    (out / "config.json").write_text(json.dumps(config, indent=2))

    order = list(methods)
    todo = []
    for i, q in enumerate(questions):  # interleaved, and rotated so no method is always first
        for name in order[i % len(order):] + order[:i % len(order)]:
            if (name, str(q.question_id)) not in done:
                todo.append((q, methods[name]))
    if not todo:
        return True
    warm_up(methods, s)
    with open(out / "rows.jsonl", "a", encoding="utf-8") as f, \
            tqdm(total=len(todo), unit="sample", dynamic_ncols=True, file=sys.stderr) as bar:
        try:
            for q, method in todo:
                bar.set_postfix_str(f"{q.category} #{q.question_id} {method.name}")
                row = run_sample(method, q, s)
                f.write(json.dumps(row) + "\n")
                f.flush()
                if row["status"] != "ok":
                    bar.write(f"{method.name} on question {q.question_id}: {row['status']}: "
                              f"{row['error']}")
                bar.update()
        except KeyboardInterrupt:
            bar.write("interrupted: the finished samples are kept; --resume continues")
            return False
    return True
