#!/usr/bin/env bash
# Installs anyspec and everything it needs into the active Python (use a venv if you like).
# Order matters: torch 2.13.0 (CPU build) first, or pip pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.13.0
# llama-cpp-python has no wheel here and builds from source (~7.5 min on 2 cores).
# Build it for plain AVX2: a -march=native build crashes in ggml's AMX kernels on
# Xeons that report AMX (seen here with Gemma 3), and a native wheel in pip's cache
# would crash on an older CPU.
if ! python -c "import llama_cpp" 2>/dev/null; then
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" python -m pip install -q --no-cache-dir llama-cpp-python==0.3.36
fi
python -m pip install -q -e ".[models,dev]"
