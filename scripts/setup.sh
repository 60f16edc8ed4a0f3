#!/usr/bin/env bash
# Installs anyspec with every extra (backends, server, benchmark, the two embedded models and
# the test tools) into the active Python; use a venv if you like. The machine-specific choices
# live here and in constraints.txt, not in the package's dependencies:
#   - torch's CPU build is installed first (constraints.txt pins it); otherwise pip resolves
#     torch to a multi-GB CUDA build.
#   - llama-cpp-python has no wheel here and builds from source (about 7.5 minutes on 2 cores),
#     for plain AVX2: a -march=native build crashes in ggml's AMX kernels on Xeons that report
#     AMX (seen with Gemma 3), and a native wheel in pip's cache would crash on an older CPU.
#     Set CMAKE_ARGS yourself to build it otherwise (e.g. -DGGML_CUDA=on).
# Elsewhere `pip install 'anyspec[all]'` (or any extras: llamacpp, hf, serve, bench, models)
# works with whatever builds your platform's wheels give.
set -euo pipefail
cd "$(dirname "$0")/.."
pip_install() { python -m pip install -q -c constraints.txt "$@"; }
pip_install torch
if ! python -c "import llama_cpp" 2>/dev/null; then
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF}" \
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" pip_install --no-cache-dir llama-cpp-python
fi
pip_install -e ".[dev]"
