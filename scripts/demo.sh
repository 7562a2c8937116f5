#!/usr/bin/env bash
# Installs vqcnir into .venv and runs the short demo: backends available here, the fused nearest-code
# lookup on each (checked against the reference, timed), and a VectorQuantizer training run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh
"${VQCNIR_VENV:-.venv}/bin/python" -m vqcnir_ops demo
