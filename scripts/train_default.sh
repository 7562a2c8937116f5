#!/usr/bin/env bash
# Trains the default model (recipes/configs/vqgan_default.yaml, then vqcnir_default.yaml: the `tiny` preset on
# the bundled photographs degraded into night photos) and exports it into the package with its model card.
#
#   bash scripts/install.sh photos                     # once: every package that bundles a training photo
#   bash scripts/train_default.sh [--key=value ...]     # extra options go to recipes/train_vqcnir.py
#
# Both recipes set datasets.train.all_photos: without SPORCO, scikit-learn or matplotlib they stop with the
# install command instead of training, silently, on the 4 photos scikit-image alone bundles.
#
# Stage 2 runs in two legs, as the shipped model was trained (the recipe file holds the second leg):
#   leg 1, iterations 1-3000: L1 + code alignment, lr 1e-3 decayed x0.3 at 2400 and 2800;
#   leg 2, iterations 3001-8000: + LPIPS (AlexNet, weight 1), lr 5e-4 decayed x0.3 at 7000 and 7600.
# Leg 1 is the first run (it brings colour and structure back); leg 2 is how it was resumed: at iteration 4250
# LPIPS had traded 0.5 dB PSNR and 0.04 SSIM for 0.16 less LPIPS and sharper texture (README, "The default model").
#
# The run's state lives outside the work tree, in $VQCNIR_TRAIN_DIR (default ~/.cache/vqcnir-train): run the
# same command again after any interruption (Ctrl-C, a killed process, a new machine with that folder) and
# the stage or leg in progress resumes from its latest checkpoint. Intermediate checkpoints are never written
# into the tree. The export (scripts/export_default_model.py) copies the best stage-2 checkpoint (by validation
# PSNR on the held-out photos: README, "The default model", says what that selection means) to
# vqcnir/weights/default/ and scores it beside the input and the classical baselines on the held-out photos.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py="${VQCNIR_VENV:-.venv}/bin/python"
root="${VQCNIR_TRAIN_DIR:-${HOME}/.cache/vqcnir-train}"
mkdir -p "${root}"
leg1_end=3000
leg1=(--train.total_iter=${leg1_end} --train.optim_g.lr=1e-3 "--train.scheduler.milestones=[2400,2800]"
  --train.losses.perceptual_weight=0)
schedule="stage 2 in two legs: iterations 1-${leg1_end} with ${leg1[*]}; then to the end with the recipe file"

latest="${root}/vqcnir_default/checkpoints/latest"
done_iterations=0
if [[ -f "${latest}" ]]; then
  done_iterations=$((10#$(sed 's/^iter_//' "${latest}")))  # "iter_00004763" -> 4763
fi
if (( done_iterations < leg1_end )); then  # also trains stage 1 first when it has not run (path.stage1_config)
  "${py}" recipes/train_vqcnir.py --config recipes/configs/vqcnir_default.yaml --resume \
    "--path.experiments_root=${root}" "${leg1[@]}" "$@"
fi
"${py}" recipes/train_vqcnir.py --config recipes/configs/vqcnir_default.yaml --resume \
  "--path.experiments_root=${root}" "$@"
"${py}" scripts/export_default_model.py --runs "${root}" --checkpoint best --schedule "${schedule}"
