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
from vqcnir.training.data import batch_stream, build_dataset
from vqcnir.training.evaluation import evaluate_pairs
from vqcnir.training.runtime import (
    StopOnInterrupt,
    autocast,
    evaluating,
    seed_everything,
    setup_runtime,
    teardown_runtime,
    wrap_model,
)
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
    train_opts = options.datasets.train
    train_set = build_dataset(train_opts, train=True, seed=options.manual_seed)
    val_set = build_dataset(options.datasets.val, train=False, seed=options.manual_seed)

    # ----------------------------------------------------------------------------- model, optimizers
    model = VQGAN(options.network_g.model_config()).to(runtime.device)
    net_g = wrap_model(model, runtime, options.train.compile)
    update = GANUpdate(options.train, options.network_d, model.parameters(), runtime)

    def validate(save_dir: str | None = None) -> dict[str, float]:  # reconstruction of the validation targets
        with evaluating(model), amp():
            return evaluate_pairs(
                lambda image: model(image).image,
                val_set,
                runtime.device,
                source="gt",
                max_images=options.datasets.val.max_images,
                padding=options.val.padding,
                save_dir=save_dir,
            )

    session = TrainingSession(options, runtime, model, update, validate)
    iteration = session.resume()
    batches = batch_stream(
        train_set,
        train_opts.batch_size_per_gpu,
        train_opts.num_worker_per_gpu,
        options.manual_seed,
        session.position,
        runtime.rank,
        runtime.world_size,
        pin_memory=runtime.device.type == "cuda",
    )

    # ------------------------------------------------------------------------------------------- loop
    with StopOnInterrupt() as stop:
        while iteration < options.train.total_iter and not stop.requested:
            try:
                batch = next(batches)
            except Exception:
                if stop.requested:  # Ctrl-C also reached the DataLoader workers
                    break
                raise
            gt = batch["gt"].to(runtime.device, non_blocking=True)
            with amp():
                out = net_g(gt)
            values = update.step(out.image, gt, out.quant_loss, iteration + 1, amp)
            iteration += 1
            if options.train.codebook_restart and iteration % options.train.codebook_restart == 0:
                values["codes_restarted"] = restart_dead_codes(model.quantizer, out.latent, runtime)
            session.after_step(iteration, values, (gt, out.image.detach()))

        # ------------------------------------------------------------------- final eval and checkpoint
        metrics = session.finish(iteration, interrupted=stop.requested)
    if runtime.is_main and metrics:
        print(f"stage 1 done: reconstruction PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}")
        print(f"models: {session.directory}/best (best validation PSNR), {session.directory}/final")
    return {"metrics": metrics, "interrupted": stop.requested, "iteration": iteration, "directory": session.directory}


if __name__ == "__main__":
    result = main()
    teardown_runtime()
    sys.exit(130 if result["interrupted"] else 0)
