"""Optional dependencies: a missing extra answers with the pip command that installs it, and
importing anyspec changes nothing process-wide. No model is loaded."""

import subprocess
import sys

import pytest

from anyspec.cli import main
from anyspec.errors import MissingExtraError, require
from anyspec.models.registry import choose_backend, load_model


def hide(monkeypatch, *modules):
    """Make `import module` fail as it does when the package is not installed."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def fake_gguf(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + bytes(60))
    return path


def test_require_names_the_extra():
    with pytest.raises(MissingExtraError, match=r"pip install 'anyspec\[serve\]'"):
        require("no_such_module_anyspec", extra="serve", feature="anyspec serve")


def test_a_broken_install_is_not_reported_as_missing(monkeypatch, tmp_path):
    # a module that exists but fails importing one of its own dependencies keeps its error
    (tmp_path / "half_installed.py").write_text("import no_such_dependency_anyspec\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_anyspec"):
        require("half_installed", extra="hf", feature="x")


def test_llamacpp_backend_without_llama_cpp(monkeypatch, tmp_path):
    hide(monkeypatch, "llama_cpp")
    with pytest.raises(MissingExtraError, match=r"llamacpp backend.*pip install 'anyspec\[llamacpp\]'"):
        load_model(str(fake_gguf(tmp_path)), "llamacpp")


def test_hf_backend_without_torch(monkeypatch, tmp_path):
    hide(monkeypatch, "torch")
    with pytest.raises(MissingExtraError, match=r"hf backend.*pip install 'anyspec\[hf\]'"):
        choose_backend(str(fake_gguf(tmp_path)), "hf")


def test_generate_checks_both_backends_before_loading(monkeypatch, tmp_path, capsys):
    # an hf target with a llama.cpp draft, llama-cpp-python missing: the answer comes before
    # the target loads (the fake file would fail to load)
    hide(monkeypatch, "llama_cpp")
    model = str(fake_gguf(tmp_path))
    assert main(["generate", "x", "--target", model, "--target-backend", "hf",
                 "--draft", model]) == 2
    assert "pip install 'anyspec[llamacpp]'" in capsys.readouterr().err


def test_serve_without_its_extra(monkeypatch, capsys):
    hide(monkeypatch, "fastapi")
    assert main(["serve"]) == 2
    assert "pip install 'anyspec[serve]'" in capsys.readouterr().err


def test_importing_anyspec_changes_no_environment_and_loads_no_backend():
    code = """
import os, sys
before = dict(os.environ)
import anyspec, anyspec.cli, anyspec.engine, anyspec.proposers, anyspec.models.registry
import anyspec.server.protocol, anyspec.bench.metrics
assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())
heavy = {"torch", "transformers", "llama_cpp", "fastapi", "matplotlib"} & set(sys.modules)
assert not heavy, heavy
"""
    subprocess.run([sys.executable, "-c", code], check=True)
