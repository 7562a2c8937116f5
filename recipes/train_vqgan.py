"""Stage 1 of VQCNIR: train the VQGAN (encoder, codebook, decoder G) to reconstruct sharp, well-lit images.

Its codebook and decoder G become stage 2's frozen high-quality prior (recipes/train_vqcnir.py).

    python recipes/train_vqgan.py                                      # demo: tiny model, bundled photos, CPU
    python recipes/train_vqgan.py --config recipes/configs/vqgan_lolblur.yaml --datasets.train.dataroot=...
    torchrun --nproc_per_node=4 recipes/train_vqgan.py --config ...     # DDP
    python recipes/train_vqgan.py --config ... --resume                 # continue the latest checkpoint

Objective (FeMaSR's HQ stage, on which VQCNIR builds): 1 * L1 + 1 * (codebook + 0.25 * commitment)
+ 1 * LPIPS-VGG + 0.1 * hinge GAN (PatchGAN). Options: vqcnir/training/config.py; outputs in
``<path.experiments_root>/<name>/`` (vqcnir/training/session.py).
"""

from __future__ import annotations

import functools
import os
import sys

from vqcnir.training.codebook import restart_dead_codes
from vqcnir.training.config import parse_recipe_args
from vqcnir.training.data import build_dataset
from vqcnir.training.evaluation import validator
from vqcnir.training.runtime import autocast, exit_code, seed_everything, setup_runtime, wrap_model
from vqcnir.training.session import TrainingSession
from vqcnir.training.update import GANUpdate
from vqcnir.vqgan import VQGAN

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "vqgan_demo.yaml")


def main(argv: list[str] | None = None) -> dict:
    # ---------------------------------------------------------------------------------- config, setup
    options = parse_recipe_args(argv, DEFAULT_CONFIG, "Stage 1 of VQCNIR: the VQGAN on sharp images.")
    runtime = setup_runtime(options.device)
    seed_everything(options.manual_seed)
    amp = functools.partial(autocast, runtime, options.train.mixed_precision)

    # ------------------------------------------------------------------------------------------- data
    train_set = build_dataset(options.datasets.train, train=True, seed=options.manual_seed)
    val_set = build_dataset(options.datasets.val, train=False, seed=options.manual_seed)

    # ----------------------------------------------------------------------------- model, optimizers
    model = VQGAN(options.network_g.model_config()).to(runtime.device)
    net_g = wrap_model(model, runtime, options.train.compile)
    update = GANUpdate(options.train, options.network_d, model.parameters(), runtime)
    validate = validator(model, val_set, runtime, options, source="gt")  # reconstruction of sharp images
    session = TrainingSession(options, runtime, model, update, validate)
    session.resume()

    # ------------------------------------------------------------------------------------------- loop
    for iteration, batch in session.steps(train_set):
        gt = batch["gt"].to(runtime.device, non_blocking=True)
        with amp():
            out = net_g(gt)
        values = update.step(out.image, gt, out.quant_loss, iteration, amp)
        if options.train.codebook_restart and iteration % options.train.codebook_restart == 0:
            values["codes_restarted"] = restart_dead_codes(model.quantizer, out.latent, runtime)
        session.after_step(iteration, values, (gt, out.image.detach()))

    # ----------------------------------------------------------------------- final eval, checkpoint
    metrics = session.finish()
    if runtime.is_main and metrics:
        print(f"stage 1 done: reconstruction PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}")
    return session.result(metrics)


if __name__ == "__main__":
    sys.exit(exit_code(main()))
