#!/usr/bin/env bash
# Installs vqcnir with its test extras into .venv and runs every check CI runs:
#   pytest (Triton kernels in interpreter mode when there is no GPU; the C++ backend must have built),
#   the offline GPU compile gate (every Triton kernel compiled for sm_80/86/89/90, no GPU needed),
#   the nvcc compile check of the CUDA kernels (skipped without nvcc), and ruff.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" -x
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=${SECONDS}
VQCNIR_BUILD_EXT="${VQCNIR_BUILD_EXT:-1}" bash scripts/install.sh test
venv="${VQCNIR_VENV:-.venv}"
# A GPU machine also requires its GPU backends; here the C++ kernels and Triton's interpreter.
VQCNIR_REQUIRE_BACKENDS="${VQCNIR_REQUIRE_BACKENDS:-cpp,triton}" "${venv}/bin/python" -m pytest "$@"
# Its own process with TRITON_INTERPRET unset: the kernels are compiled for real GPUs, not interpreted.
env -u TRITON_INTERPRET "${venv}/bin/python" -m vqcnir_ops._aot
bash scripts/check_cuda_build.sh
"${venv}/bin/ruff" check .
echo "all checks passed in $((SECONDS - start)) s"
