#!/usr/bin/env bash
# Installs vqcnir with its test extras into .venv and runs every check CI runs:
#   pytest (Triton kernels in interpreter mode when there is no GPU; the C++ backend must have built),
#   the nvcc compile check of the CUDA kernels (skipped without nvcc), and ruff.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" -x
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=${SECONDS}
VQCNIR_BUILD_EXT="${VQCNIR_BUILD_EXT:-1}" bash scripts/install.sh test
venv="${VQCNIR_VENV:-.venv}"
# A GPU machine also requires its GPU backends; here the C++ kernels and Triton's interpreter.
VQCNIR_REQUIRE_BACKENDS="${VQCNIR_REQUIRE_BACKENDS:-cpp,triton}" "${venv}/bin/python" -m pytest "$@"
bash scripts/check_cuda_build.sh
"${venv}/bin/ruff" check .
echo "all checks passed in $((SECONDS - start)) s"
