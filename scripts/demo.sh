#!/usr/bin/env bash
# The project's main job on a fresh machine, no GPU, no dataset and no training needed:
#   1. installs vqcnir into .venv with the demo photos and the web page (scripts/install.sh demo,app);
#   2. restores the held-out demo photos with the shipped default model (vqcnir.load_pretrained("default")),
#      prints PSNR/SSIM of the night inputs, of the best classical pipeline and of the restorations, says
#      where the before/after images are and how to open the page (vqcnir-app) on them.
# Training the demo model is a command of its own: bash scripts/train_demo.sh (then --model, below).
# The kernel demo (backends, fused nearest-code lookup) is `.venv/bin/python -m vqcnir_ops demo`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh demo,app
py="${VQCNIR_VENV:-.venv}/bin/python"
"${py}" -m vqcnir.app.demo "$@"
