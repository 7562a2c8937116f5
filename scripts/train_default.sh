#!/usr/bin/env bash
# Trains the default model (recipes/configs/vqgan_default.yaml, then vqcnir_default.yaml: the `small` preset on
# the bundled photographs degraded into night photos) and exports it into the package with its model card.
#
#   bash scripts/train_default.sh [--key=value ...]     # extra options go to recipes/train_vqcnir.py
#
# The run's state lives outside the work tree, in $VQCNIR_TRAIN_DIR (default ~/.cache/vqcnir-train): run the
# same command again after any interruption (Ctrl-C, a killed process, a new machine with that folder) and
# both stages resume from their latest checkpoints. Intermediate checkpoints are never written into the tree.
# The export (scripts/export_default_model.py) copies the best stage-2 model to vqcnir/weights/default/ and
# scores it beside the input and the classical baselines on the held-out photos.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py="${VQCNIR_VENV:-.venv}/bin/python"
root="${VQCNIR_TRAIN_DIR:-${HOME}/.cache/vqcnir-train}"
mkdir -p "${root}"
"${py}" recipes/train_vqcnir.py --config recipes/configs/vqcnir_default.yaml --resume \
  "--path.experiments_root=${root}" "$@"
"${py}" scripts/export_default_model.py --runs "${root}"
