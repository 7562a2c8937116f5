"""Stage 2 of VQCNIR: learn to restore night images (dark, blurred) on the frozen stage-1 prior.

    python recipes/train_vqcnir.py            # the demo: no dataset, no GPU; trains stage 1 then stage 2 of the
                                              # tiny model on bundled photos in a few minutes, reports PSNR/SSIM
    python recipes/train_vqcnir.py --config recipes/configs/vqcnir_lolblur.yaml --datasets.train.dataroot=...
    torchrun --nproc_per_node=4 recipes/train_vqcnir.py --config ...     # DDP
    python recipes/train_vqcnir.py --config ... --resume                 # continue the latest checkpoint

The stage-1 VQGAN (``path.pretrain_network_hq``, or trained first from ``path.stage1_config`` by
vqcnir.training.stage1.stage1_model) gives the encoder, codebook and decoder G; the codebook, post-quant
conv, decoder G and RGB head are frozen. The frozen stage-1 model also turns each ground truth into code
indices, the targets of code alignment.
Objective: 1 * L1 + 1 * code alignment + 1 * LPIPS-VGG + 0.1 * hinge GAN (PatchGAN).
"""

from __future__ import annotations

import functools
import os
import sys

from vqcnir.model import VQCNIR
from vqcnir.training.config import parse_recipe_args
from vqcnir.training.data import build_dataset
from vqcnir.training.evaluation import validator
from vqcnir.training.runtime import (
    autocast,
    run_recipe,
    seed_everything,
    set_requires_grad,
    setup_runtime,
    wrap_model,
)
from vqcnir.training.session import TrainingSession
from vqcnir.training.stage1 import load_stage1_prior, stage1_model
from vqcnir.training.update import GANUpdate

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "vqcnir_demo.yaml")


def main(argv: list[str] | None = None) -> dict:
    # ---------------------------------------------------------------------------------- config, setup
    options = parse_recipe_args(argv, DEFAULT_CONFIG, "Stage 2 of VQCNIR: night image restoration.")
    hq_path = stage1_model(options)  # path.pretrain_network_hq, or stage 1 trained first (path.stage1_config)
    if hq_path is None:
        return {"metrics": {}, "interrupted": True, "iteration": 0, "directory": options.experiment_dir}
    runtime = setup_runtime(options.device)
    seed_everything(options.manual_seed)
    amp = functools.partial(autocast, runtime, options.train.mixed_precision)

    # ------------------------------------------------------------------------------------------- data
    train_set = build_dataset(options.datasets.train, train=True, seed=options.manual_seed)
    val_set = build_dataset(options.datasets.val, train=False, seed=options.manual_seed)

    # ----------------------------------------------------------------------------------------- models
    model_config = options.network_g.model_config()
    prior = load_stage1_prior(hq_path, model_config).to(runtime.device).eval()  # gives the gt code indices
    set_requires_grad(prior, False)
    model = VQCNIR(model_config)
    model.load_stage1(prior)
    frozen = model.freeze_prior()
    model.to(runtime.device)
    net_g = wrap_model(model, runtime, options.train.compile)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if runtime.is_main:
        count = sum(p.numel() for p in trainable)
        print(f"stage 1 from {hq_path}; frozen: {len(frozen)} tensors; training {count:,} parameters")

    # ------------------------------------------------------------------------------------- optimizers
    update = GANUpdate(options.train, options.network_d, trainable, runtime)
    validate = validator(val_set, runtime, options, source="lq")  # restoration of the night inputs
    session = TrainingSession(options, runtime, model, update, validate)
    session.resume()

    # ------------------------------------------------------------------------------------------- loop
    for iteration, batch in session.steps(train_set):
        lq = batch["lq"].to(runtime.device, non_blocking=True)
        gt = batch["gt"].to(runtime.device, non_blocking=True)
        with amp():
            gt_indices = prior.encode_indices(gt)
            out = net_g(lq, gt_indices)  # quant_loss: code alignment towards the gt codes
        values = update.step(out.image, gt, out.quant_loss, iteration, amp)
        session.after_step(iteration, values, (lq, out.image.detach(), gt))

    # --------------------------------------------------------------- final eval, checkpoint, outputs
    metrics = session.finish()
    if runtime.is_main and metrics:
        print(f"\nheld-out pairs ({int(metrics['count'])}):   PSNR (dB)   SSIM")
        print(f"  input (night, blurred)   {metrics['input_psnr']:8.2f}   {metrics['input_ssim']:.4f}")
        print(f"  restored                 {metrics['psnr']:8.2f}   {metrics['ssim']:.4f}")
        if options.val.save_img:
            print(f"restored images: {session.directory}/results")
    return session.result(metrics)


if __name__ == "__main__":
    sys.exit(run_recipe(main))
