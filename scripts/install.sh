#!/usr/bin/env bash
# Creates the virtual environment (once) and installs vqcnir into it, editable, with the C++ extension.
#
#   scripts/install.sh [EXTRAS]       e.g. scripts/install.sh test
#
# torch comes from the requirement "torch>=2.4,<2.14": on these machines that selects the local CPU
# wheel (a bare "torch" would pull several GB of CUDA packages), and in an environment that already
# has a CUDA torch it installs nothing. --no-build-isolation builds the extension against that torch.
# Environment: VQCNIR_VENV (default .venv), PYTHON (default python3), VQCNIR_BUILD_EXT, VQCNIR_BUILD_CUDA.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="${VQCNIR_VENV:-.venv}"
if [[ ! -x "${venv}/bin/python" ]]; then
  "${PYTHON:-python3}" -m venv "${venv}"
fi
py="${venv}/bin/python"
"${py}" -m pip install --quiet "torch>=2.4,<2.14" "setuptools>=64" wheel ninja
extras="${1:-}"
target="."
[[ -n "${extras}" ]] && target=".[${extras}]"
echo "building and installing vqcnir${extras:+[${extras}]} (the C++ extension takes a minute or two)"
"${py}" -m pip install --quiet --no-build-isolation -e "${target}"
