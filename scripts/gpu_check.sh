#!/usr/bin/env bash
# The GPU check in one command (README, "GPU check"): build the CUDA kernels for this GPU, run the GPU tests and
# the op test suite with every GPU backend required, every benchmark on the GPU, and a short stage-2 training
# run; results as benchmarks/results/gpu_check.{json,md}. For a machine with a CUDA GPU and a python3 that
# already has a CUDA torch, Triton, torchvision and nvcc; it installs nothing from the network.
#
#   bash scripts/gpu_check.sh [--results-dir DIR] [--scale X] [--full] [--skip STEP ...]
#
# Without a GPU it says so and exits with status 2. Environment: PYTHON (default python3).
# The training run reads the demo pairs from gpu_check_data/demo: `python scripts/export_demo_set.py` writes
# them on a machine with scikit-image (the folder is git-ignored: copy it along with the checkout).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec "${PYTHON:-python3}" scripts/gpu_check.py "$@"
