"""Stage 1 as library functions, called by both recipes.

- :func:`train_stage1`: train the VQGAN (encoder, codebook, decoder G) to reconstruct sharp, well-lit
  images: the body of ``recipes/train_vqgan.py``.
- :func:`stage1_model`: the stage-1 model folder stage 2 starts from (``recipes/train_vqcnir.py``),
  training it first with :func:`train_stage1` when the recipe names a stage-1 config whose run has not
  finished; :func:`load_stage1_prior` loads and checks it.

Objective (FeMaSR's HQ stage, on which VQCNIR builds): 1 * L1 + 1 * (codebook + 0.25 * commitment)
+ 1 * LPIPS-VGG + 0.1 * hinge GAN (PatchGAN).
"""

from __future__ import annotations

import functools
import os

from vqcnir.checkpoint import load_weights, read_config
from vqcnir.config import VQCNIRConfig
from vqcnir.vqgan import VQGAN

from .codebook import restart_dead_codes
from .config import RecipeOptions
from .data import build_dataset
from .evaluation import validator
from .options import OptionsError, load_yaml
from .runtime import autocast, seed_everything, setup_runtime, wrap_model
from .session import TrainingSession
from .update import GANUpdate


def train_stage1(options: RecipeOptions) -> dict:
    """Train (or resume, with ``path.resume_state``) the stage-1 VQGAN described by ``options``.

    Returns ``{"metrics", "interrupted", "iteration", "directory"}``; the model is in
    ``<directory>/best`` and ``<directory>/final``.
    """
    # ---------------------------------------------------------------------------------------- setup
    runtime = setup_runtime(options.device)
    seed_everything(options.manual_seed)
    amp = functools.partial(autocast, runtime, options.train.mixed_precision)

    # ----------------------------------------------------------------------------------------- data
    train_set = build_dataset(options.datasets.train, train=True, seed=options.manual_seed)
    val_set = build_dataset(options.datasets.val, train=False, seed=options.manual_seed)

    # --------------------------------------------------------------------------- model, optimizers
    model = VQGAN(options.network_g.model_config()).to(runtime.device)
    net_g = wrap_model(model, runtime, options.train.compile)
    update = GANUpdate(options.train, options.network_d, model.parameters(), runtime)
    validate = validator(val_set, runtime, options, source="gt")  # reconstruction of sharp images
    session = TrainingSession(options, runtime, model, update, validate)
    session.resume()

    # ----------------------------------------------------------------------------------------- loop
    for iteration, batch in session.steps(train_set):
        gt = batch["gt"].to(runtime.device, non_blocking=True)
        with amp():
            out = net_g(gt)
        values = update.step(out.image, gt, out.quant_loss, iteration, amp)
        if options.train.codebook_restart and iteration % options.train.codebook_restart == 0:
            values["codes_restarted"] = restart_dead_codes(model.quantizer, out.latent, runtime)
        session.after_step(iteration, values, (gt, out.image.detach()))

    # --------------------------------------------------------------------- final eval, checkpoint
    metrics = session.finish()
    if runtime.is_main and metrics:
        print(f"stage 1 done: reconstruction PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}")
    return session.result(metrics)


def stage1_model(options: RecipeOptions) -> str | None:
    """The stage-1 model folder stage 2 starts from: ``path.pretrain_network_hq``, else the ``best/`` model
    of the stage-1 recipe ``path.stage1_config``, trained first (or resumed) when its run has not finished.

    The stage-1 run uses stage 2's ``path.experiments_root`` and ``device``, plus ``path.stage1_overrides``.
    Returns None when that run was interrupted (Ctrl-C). Raises OptionsError when neither path is set.
    """
    if options.path.pretrain_network_hq:
        return options.path.pretrain_network_hq
    if not options.path.stage1_config:
        raise OptionsError("set path.pretrain_network_hq (a stage-1 model folder) or path.stage1_config")
    overrides = [f"path.experiments_root={options.path.experiments_root}", f"device={options.device}"]
    overrides += options.path.stage1_overrides  # "--key=value" or "key=value", as on the command line
    stage1 = load_yaml(RecipeOptions, options.path.stage1_config, [*overrides, "path.resume_state=auto"])
    if not os.path.isdir(os.path.join(stage1.experiment_dir, "final")):
        print(f"stage 1 first: {options.path.stage1_config} -> {stage1.experiment_dir}", flush=True)
        if train_stage1(stage1)["interrupted"]:
            return None
    return os.path.join(stage1.experiment_dir, "best")


def load_stage1_prior(path: str, config: VQCNIRConfig) -> VQGAN:
    """The stage-1 VQGAN saved in ``path``, checked to be a stage-1 model built with ``config``."""
    kind, saved = read_config(path)
    if kind != "VQGAN" or saved != config:
        raise ValueError(f"{path} holds a {kind} with {saved}, expected a stage-1 VQGAN with {config}")
    return load_weights(VQGAN(config), path)
