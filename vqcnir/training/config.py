"""The training recipes' options, one dataclass tree shared by both stages.

Section and key names follow BasicSR / FeMaSR option files (``datasets``, ``network_g``, ``network_d``,
``path``, ``train.optim_g``, ``train.scheduler``, ``val``, ``logger``), so a FeMaSR YAML maps onto
these almost line by line; the loss weights are grouped under ``train.losses``. Defaults are the paper's
settings (Adam betas (0.9, 0.99), lr 1e-4, MultiStepLR, batch 8, 256 px crops, 500k iterations, loss
weights 1 / 1 / 1 / 0.1); ``recipes/configs/*.yaml`` spell them out.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field
from typing import Any

from vqcnir.config import VQCNIRConfig
from vqcnir.device import check_device
from vqcnir.discriminator import Norm
from vqcnir.inference import PADDINGS
from vqcnir.losses import AdversarialKind
from vqcnir.perceptual.weights import NETS

from .options import apply_overrides, load_yaml, valid_keys

DATASET_TYPES = ("demo", "night", "lolblur", "paired", "synthetic")

# Options a checkpoint fixes: other values cannot continue the same run (another network, another data
# order), so --resume refuses them with the list of differences. Every other option may be changed on
# --resume and takes effect (optimizer and schedule settings too: see GANUpdate.apply_options).
RESUME_FIXED = (
    "manual_seed",
    "network_g.",
    "network_d.",
    "train.optim_g.type",
    "train.optim_d.type",
    "datasets.train.type",
    "datasets.train.split",
    "datasets.train.lq_folder",
    "datasets.train.gt_folder",
    "datasets.train.gt_size",
    "datasets.train.use_flip",
    "datasets.train.use_rot",
    "datasets.train.batch_size_per_gpu",
)


def _check(ok: bool, key: str, expected: str, value: Any) -> None:
    """ValueError ``"<key> must be <expected>, got <value>"`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{key} must be {expected}, got {value!r}")


def _finite(value: float) -> bool:
    """A finite number >= 0."""
    return isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


@dataclass
class DatasetOptions:
    """One dataset. ``type``: ``demo`` (:func:`vqcnir.data.build_demo_set`, no download), ``lolblur``
    (``dataroot`` = the LOL-Blur folder, ``split``), ``paired`` (``dataroot_lq`` / ``dataroot_gt``
    matched by relative path), ``synthetic`` (sharp photos under ``dataroot`` degraded on the fly) or ``night``
    (the default model's data, :mod:`vqcnir.data.night`: the bundled photographs degraded on the fly with
    the wide night degradation for ``split: train``, the held-out photos' fixed pairs for ``split: test``;
    ``degrade: false`` gives sharp crops only, for stage 1; ``all_photos: true`` refuses to train on fewer
    photos than :mod:`vqcnir.data.photos` lists, when a package that bundles some is missing)."""

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
    degrade: bool = True  # type night, split train: False = sharp crops as inputs too (stage 1)
    # type night, split train: refuse to start unless every package bundling training photos is installed (the
    # default model's recipes set it: a smaller photo set silently trains a different, weaker model).
    all_photos: bool = False

    def __post_init__(self) -> None:
        _check(self.type in DATASET_TYPES, "type", f"one of {DATASET_TYPES}", self.type)
        _check(self.batch_size_per_gpu >= 1, "batch_size_per_gpu", ">= 1", self.batch_size_per_gpu)
        for name in ("num_worker_per_gpu", "gt_size", "max_images"):
            _check(getattr(self, name) >= 0, name, ">= 0", getattr(self, name))


@dataclass
class DatasetsOptions:
    train: DatasetOptions = field(default_factory=DatasetOptions)
    val: DatasetOptions = field(default_factory=lambda: DatasetOptions(split="test", gt_size=0, batch_size_per_gpu=1))


def _network_g_options() -> type:
    """``network_g``: a :class:`VQCNIRConfig` preset plus any of its fields on top (None: the preset's value)."""
    hints = typing.get_type_hints(VQCNIRConfig)
    overrides = [(f.name, hints[f.name] | None, field(default=None)) for f in dataclasses.fields(VQCNIRConfig)]

    def __post_init__(self: Any) -> None:
        self.model_config()  # raises on an unknown preset, a field of the wrong type, or sizes that do not fit

    def model_config(self: Any) -> VQCNIRConfig:
        """The preset with the fields that are set replacing its values."""
        chosen = {f.name: getattr(self, f.name) for f in dataclasses.fields(VQCNIRConfig)}
        return dataclasses.replace(
            VQCNIRConfig.preset(self.preset), **{k: v for k, v in chosen.items() if v is not None}
        )

    doc = (
        "The generator: a :class:`vqcnir.VQCNIRConfig` preset (``paper`` or ``tiny``) and any of its fields on "
        "top, e.g. ``network_g: {preset: tiny, codebook_size: 128}`` or ``--network_g.codebook_size=128``."
    )
    namespace = {"__post_init__": __post_init__, "model_config": model_config, "__doc__": doc}
    return dataclasses.make_dataclass(
        "NetworkGOptions", [("preset", str, field(default="paper")), *overrides], namespace=namespace
    )


NetworkGOptions = _network_g_options()


@dataclass
class NetworkDOptions:
    """:class:`vqcnir.discriminator.PatchDiscriminator` settings."""

    width: int = 64
    num_layers: int = 3
    norm: str = "batch"
    spectral_norm: bool = False

    def __post_init__(self) -> None:
        _check(self.width >= 1, "width", ">= 1", self.width)
        _check(self.num_layers >= 1, "num_layers", ">= 1", self.num_layers)
        _check(self.norm in typing.get_args(Norm), "norm", f"one of {typing.get_args(Norm)}", self.norm)


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
        _check(self.type in ("Adam", "AdamW"), "type", "'Adam' or 'AdamW'", self.type)
        _check(_finite(self.lr), "lr", "a finite number >= 0", self.lr)
        betas_ok = len(self.betas) == 2 and all(_finite(b) and b < 1 for b in self.betas)
        _check(betas_ok, "betas", "two numbers in [0, 1), e.g. [0.9, 0.99]", list(self.betas))
        _check(_finite(self.weight_decay), "weight_decay", "a finite number >= 0", self.weight_decay)


@dataclass
class SchedulerOptions:
    """MultiStepLR. The paper names the scheduler but not its milestones: ours halve the rate at
    50% and 80% of the 500k iterations."""

    type: str = "MultiStepLR"
    milestones: list[int] = field(default_factory=lambda: [250000, 400000])
    gamma: float = 0.5

    def __post_init__(self) -> None:
        _check(self.type == "MultiStepLR", "type", "'MultiStepLR'", self.type)
        _check(all(m >= 1 for m in self.milestones), "milestones", "iterations >= 1", self.milestones)
        _check(_finite(self.gamma) and self.gamma > 0, "gamma", "a finite number > 0", self.gamma)


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

    def __post_init__(self) -> None:
        for name in ("pixel_weight", "alignment_weight", "perceptual_weight", "adversarial_weight"):
            _check(_finite(getattr(self, name)), name, "a finite number >= 0", getattr(self, name))
        kinds = typing.get_args(AdversarialKind)
        _check(self.gan_type in kinds, "gan_type", f"one of {kinds}", self.gan_type)
        _check(self.perceptual_net in NETS, "perceptual_net", f"one of {NETS}", self.perceptual_net)
        _check(self.net_d_start_iter >= 0, "net_d_start_iter", ">= 0", self.net_d_start_iter)


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
    ema_decay: float = 0.0  # validate and keep best/final as a moving average of the weights (0 = off; e.g. 0.999)

    def __post_init__(self) -> None:
        _check(self.total_iter >= 1, "total_iter", ">= 1", self.total_iter)
        _check(self.mixed_precision in ("bf16", "no"), "mixed_precision", "'bf16' or 'no'", self.mixed_precision)
        _check(_finite(self.grad_clip), "grad_clip", "a finite number >= 0", self.grad_clip)
        _check(self.codebook_restart >= 0, "codebook_restart", ">= 0", self.codebook_restart)
        _check(_finite(self.ema_decay) and 0.0 <= self.ema_decay < 1.0, "ema_decay", "in [0, 1)", self.ema_decay)


@dataclass
class ValOptions:
    """``val_freq``: validate (PSNR/SSIM, best checkpoint kept) every this many iterations (0 = only at
    the end). ``save_img``: write the restored validation images at the end of training."""

    val_freq: int = 5000
    save_img: bool = True
    padding: str = "reflect"  # for images whose size is not a multiple of 8 (vqcnir.inference.padded)

    def __post_init__(self) -> None:
        _check(self.val_freq >= 0, "val_freq", ">= 0", self.val_freq)
        _check(self.padding in PADDINGS, "padding", f"one of {PADDINGS}", self.padding)


@dataclass
class LoggerOptions:
    print_freq: int = 100  # loss values into the log every N iterations
    save_checkpoint_freq: int = 5000
    show_tf_imgs_freq: int = 1000  # PNG grid (input | output | ground truth) every N iterations (0 = off)
    use_tb_logger: bool = True  # TensorBoard when installed, else CSV
    keep_checkpoints: int = 2  # periodic checkpoints kept besides the best model
    progress_bar: bool = True  # a bar redrawn in place on a terminal; False (or no terminal): a line every print_freq

    def __post_init__(self) -> None:
        _check(self.print_freq >= 1, "print_freq", ">= 1", self.print_freq)
        for name in ("save_checkpoint_freq", "show_tf_imgs_freq"):
            _check(getattr(self, name) >= 0, name, ">= 0 (0 = off)", getattr(self, name))
        _check(self.keep_checkpoints >= 1, "keep_checkpoints", ">= 1", self.keep_checkpoints)


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

    def __post_init__(self) -> None:
        plain = self.name not in ("", ".", "..") and os.sep not in self.name and "/" not in self.name
        _check(plain, "name", "a folder name (no path separators)", self.name)

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
        help="resume from a checkpoint or experiment folder (no value: this experiment's latest checkpoint); "
        "options given with it take effect, except those the checkpoint fixes (networks, seed, training data)",
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
        check_device(options.device)
    except ValueError as error:  # an OptionsError, or a device this machine does not have
        parser.error(str(error))
    return options
