#!/usr/bin/env bash
# Installs vqcnir with the demo photos into .venv and trains the tiny VQCNIR on synthetic night-blur
# pairs made from them (stage 1, then stage 2), printing PSNR/SSIM of input vs restored held-out images.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh demo
"${VQCNIR_VENV:-.venv}/bin/python" recipes/train_vqcnir.py "$@"
