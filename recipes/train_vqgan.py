"""Stage 1 of VQCNIR: train the VQGAN (encoder, codebook, decoder G) to reconstruct sharp, well-lit images.

Its codebook and decoder G become stage 2's frozen high-quality prior (recipes/train_vqcnir.py).

    python recipes/train_vqgan.py                                      # demo: tiny model, bundled photos, CPU
    python recipes/train_vqgan.py --config recipes/configs/vqgan_lolblur.yaml --datasets.train.dataroot=...
    torchrun --nproc_per_node=4 recipes/train_vqgan.py --config ...     # DDP
    python recipes/train_vqgan.py --config ... --resume                 # continue the latest checkpoint

Objective (FeMaSR's HQ stage, on which VQCNIR builds): 1 * L1 + 1 * (codebook + 0.25 * commitment)
+ 1 * LPIPS-VGG + 0.1 * hinge GAN (PatchGAN). The loop is vqcnir/training/stage1.py (train_stage1), which
stage 2 also runs when it trains stage 1 first. Options: vqcnir/training/config.py; outputs in
``<path.experiments_root>/<name>/`` (vqcnir/training/session.py).
"""

from __future__ import annotations

import os
import sys

from vqcnir.training.config import parse_recipe_args
from vqcnir.training.runtime import run_recipe
from vqcnir.training.stage1 import train_stage1

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "vqgan_demo.yaml")


def main(argv: list[str] | None = None) -> dict:
    options = parse_recipe_args(argv, DEFAULT_CONFIG, "Stage 1 of VQCNIR: the VQGAN on sharp images.")
    return train_stage1(options)


if __name__ == "__main__":
    sys.exit(run_recipe(main))
