"""The training recipes' options, one dataclass tree shared by both stages.

Section and key names follow BasicSR / FeMaSR option files (``datasets``, ``network_g``, ``network_d``,
``path``, ``train.optim_g``, ``train.scheduler``, ``val``, ``logger``), so a FeMaSR YAML maps onto
these almost line by line; the loss weights are grouped under ``train.losses``. Defaults are the paper's
settings (Adam betas (0.9, 0.99), lr 1e-4, MultiStepLR, batch 8, 256 px crops, 500k iterations, loss
weights 1 / 1 / 1 / 0.1); ``recipes/configs/*.yaml`` spell them out.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from vqcnir.config import VQCNIRConfig

from .options import OptionsError, apply_overrides, load_yaml, valid_keys

DATASET_TYPES = ("demo", "lolblur", "paired", "synthetic")


@dataclass
class DatasetOptions:
    """One dataset. ``type``: ``demo`` (:func:`vqcnir.data.build_demo_set`, no download), ``lolblur``
    (``dataroot`` = the LOL-Blur folder, ``split``), ``paired`` (``dataroot_lq`` / ``dataroot_gt``
    matched by relative path) or ``synthetic`` (sharp photos under ``dataroot`` degraded on the fly)."""

    type: str = "lolblur"
    dataroot: str = ""
    dataroot_lq: str = ""
    dataroot_gt: str = ""
    split: str = "train"
    lq_folder: str = "low_blur_noise"
    gt_folder: str = "high_sharp_scaled"
    gt_size: int = 256  # random crop side (BasicSR's name); 0 = whole images
    use_flip: bool = True
    use_rot: bool = True
    batch_size_per_gpu: int = 8
    num_worker_per_gpu: int = 4
    max_images: int = 0  # validation: evaluate at most this many images (0 = all)

    def __post_init__(self) -> None:
        if self.type not in DATASET_TYPES:
            raise ValueError(f"datasets.*.type must be one of {DATASET_TYPES}, got {self.type!r}")
        if self.batch_size_per_gpu < 1 or self.num_worker_per_gpu < 0 or self.gt_size < 0 or self.max_images < 0:
            raise ValueError("batch_size_per_gpu must be >= 1; num_worker_per_gpu, gt_size, max_images >= 0")


@dataclass
class DatasetsOptions:
    train: DatasetOptions = field(default_factory=DatasetOptions)
    val: DatasetOptions = field(default_factory=lambda: DatasetOptions(split="test", gt_size=0, batch_size_per_gpu=1))


@dataclass
class NetworkGOptions:
    """The generator: a :class:`vqcnir.VQCNIRConfig` preset (``paper`` or ``tiny``)."""

    preset: str = "paper"

    def __post_init__(self) -> None:
        VQCNIRConfig.preset(self.preset)  # raises on an unknown name

    def model_config(self) -> VQCNIRConfig:
        return VQCNIRConfig.preset(self.preset)


@dataclass
class NetworkDOptions:
    """:class:`vqcnir.discriminator.PatchDiscriminator` settings."""

    width: int = 64
    num_layers: int = 3
    norm: str = "batch"
    spectral_norm: bool = False


@dataclass
class PathOptions:
    """``pretrain_network_hq``: the stage-1 checkpoint (a ``save_pretrained`` folder) stage 2 starts from.
    ``stage1_config``: a stage-1 recipe (relative to this recipe's folder); when ``pretrain_network_hq`` is
    empty, its ``best/`` model is used, trained first (under the same ``experiments_root``) if not done.
    ``resume_state``: a checkpoint folder or an experiment folder (its latest checkpoint) to resume;
    ``auto`` resumes this experiment's latest checkpoint if there is one (``--resume`` sets it)."""

    experiments_root: str = "experiments"
    pretrain_network_hq: str = ""
    stage1_config: str = ""
    stage1_overrides: list[str] = field(default_factory=list)  # --key=value items for that stage-1 run
    resume_state: str = ""


@dataclass
class OptimOptions:
    type: str = "Adam"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.type not in ("Adam", "AdamW"):
            raise ValueError(f"train.optim_*.type must be 'Adam' or 'AdamW', got {self.type!r}")


@dataclass
class SchedulerOptions:
    """MultiStepLR. The paper names the scheduler but not its milestones: ours halve the rate at
    50% and 80% of the 500k iterations."""

    type: str = "MultiStepLR"
    milestones: list[int] = field(default_factory=lambda: [250000, 400000])
    gamma: float = 0.5

    def __post_init__(self) -> None:
        if self.type != "MultiStepLR":
            raise ValueError(f"train.scheduler.type must be 'MultiStepLR', got {self.type!r}")


@dataclass
class LossOptions:
    """Weights of :class:`vqcnir.losses.VQCNIRLoss`: L1, code alignment (the codebook + commitment loss
    in stage 1), perceptual (LPIPS-VGG, or its documented fallback without the weights), adversarial
    (``gan_type`` on a PatchGAN, from ``net_d_start_iter`` on; 0 turns the discriminator off)."""

    pixel_weight: float = 1.0
    alignment_weight: float = 1.0
    perceptual_weight: float = 1.0
    adversarial_weight: float = 0.1
    gan_type: str = "hinge"
    perceptual_net: str = "vgg16"
    net_d_start_iter: int = 0


@dataclass
class TrainOptions:
    total_iter: int = 500000
    optim_g: OptimOptions = field(default_factory=OptimOptions)
    optim_d: OptimOptions = field(default_factory=OptimOptions)
    scheduler: SchedulerOptions = field(default_factory=SchedulerOptions)
    losses: LossOptions = field(default_factory=LossOptions)
    grad_clip: float = 0.0  # max gradient norm of the generator (0 = off)
    mixed_precision: str = "bf16"  # "bf16" autocast on CUDA ("no" = float32); CPU always runs float32
    compile: bool = False  # torch.compile the generator and the discriminator
    codebook_restart: int = 0  # stage 1: every N iterations move unused codes onto current latents (0 = off)

    def __post_init__(self) -> None:
        if self.total_iter < 1:
            raise ValueError(f"train.total_iter must be >= 1, got {self.total_iter}")
        if self.mixed_precision not in ("bf16", "no"):
            raise ValueError(f"train.mixed_precision must be 'bf16' or 'no', got {self.mixed_precision!r}")


@dataclass
class ValOptions:
    """``val_freq``: validate (PSNR/SSIM, best checkpoint kept) every this many iterations (0 = only at
    the end). ``save_img``: write the restored validation images at the end of training."""

    val_freq: int = 5000
    save_img: bool = True
    padding: str = "reflect"  # for images whose size is not a multiple of 8 (vqcnir.inference.padded)


@dataclass
class LoggerOptions:
    print_freq: int = 100  # loss values into the log every N iterations
    save_checkpoint_freq: int = 5000
    show_tf_imgs_freq: int = 1000  # PNG grid (input | output | ground truth) every N iterations (0 = off)
    use_tb_logger: bool = True  # TensorBoard when installed, else CSV
    keep_checkpoints: int = 2  # periodic checkpoints kept besides the best model
    progress_bar: bool = True  # tqdm bar when installed and on a terminal; False: a plain line every print_freq


@dataclass
class RecipeOptions:
    """Everything one training run needs; ``name`` names the experiment folder."""

    name: str = "vqcnir_lolblur"
    manual_seed: int = 0
    device: str = "auto"  # "auto": CUDA (this process's LOCAL_RANK) when available, else CPU
    datasets: DatasetsOptions = field(default_factory=DatasetsOptions)
    network_g: NetworkGOptions = field(default_factory=NetworkGOptions)
    network_d: NetworkDOptions = field(default_factory=NetworkDOptions)
    path: PathOptions = field(default_factory=PathOptions)
    train: TrainOptions = field(default_factory=TrainOptions)
    val: ValOptions = field(default_factory=ValOptions)
    logger: LoggerOptions = field(default_factory=LoggerOptions)

    @property
    def experiment_dir(self) -> str:
        return os.path.join(self.path.experiments_root, self.name)


def parse_recipe_args(argv: list[str] | None, default_config: str, description: str) -> RecipeOptions:
    """``[--config FILE] [--resume[=PATH]] [--key=value ...]`` -> resolved options.

    Every ``--key=value`` is a dotted option (``--train.optim_g.lr=2e-4``); unknown keys exit with the
    list of valid ones.
    """
    parser = argparse.ArgumentParser(
        description=description,
        epilog="Any option can be overridden as --section.key=value, e.g. --train.total_iter=1000. Valid keys: "
        + ", ".join(valid_keys(RecipeOptions)),
    )
    parser.add_argument("--config", default=default_config, help=f"recipe YAML (default {default_config})")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        help="resume from a checkpoint or experiment folder (no value: this experiment's latest checkpoint)",
    )
    args, rest = parser.parse_known_args(argv)
    bad = [item for item in rest if not item.startswith("--") or "=" not in item]
    if bad:
        parser.error(f"unrecognised argument(s) {bad}: options are given as --key=value")
    try:
        options = load_yaml(RecipeOptions, args.config, rest)
        if args.resume is not None:
            options = apply_overrides(options, [f"path.resume_state={args.resume}"])
        stage1 = options.path.stage1_config
        if stage1 and not os.path.isabs(stage1):  # relative to the recipe file that names it
            resolved = os.path.join(os.path.dirname(os.path.abspath(args.config)), stage1)
            options = apply_overrides(options, [f"path.stage1_config={resolved}"])
    except OptionsError as error:
        parser.error(str(error))
    return options
