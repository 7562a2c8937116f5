#!/usr/bin/env bash
# The project's main job on a fresh machine, no GPU and no dataset needed:
#   1. installs vqcnir into .venv with the demo photos and the web page (scripts/install.sh demo,app);
#   2. trains the tiny demo model unless one is already there (recipes/train_vqcnir.py: stage 1 then
#      stage 2 on night-blur pairs made from photos bundled with scikit-image/SPORCO, a few minutes);
#   3. restores the held-out demo photos, prints PSNR/SSIM of the night inputs and of the restorations,
#      says where the before/after images are and how to open the page (vqcnir-app) on them.
# The kernel demo (backends, fused nearest-code lookup) is `.venv/bin/python -m vqcnir_ops demo`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install.sh demo,app
py="${VQCNIR_VENV:-.venv}/bin/python"
if ! "${py}" -m vqcnir.app.demo --check; then
  "${py}" recipes/train_vqcnir.py
fi
"${py}" -m vqcnir.app.demo
