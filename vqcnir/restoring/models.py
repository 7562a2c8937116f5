"""Which model restores, loading it (one clear error per bad model), and running it on one image of any size.

:func:`resolve_model` is the one place that decides which model is used when none is given (today: the
demo-trained model, when there is one); ``vqcnir-restore`` and the page both go through it. Models are
loaded only by :func:`load_model`: a ``save_pretrained`` folder (safetensors + JSON, no pickle) or an
official ``.pth`` read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from vqcnir import inference
from vqcnir.checkpoint import CONFIG_NAME, MODEL_CLASSES, WEIGHTS_NAME, CheckpointError, read_config
from vqcnir.pretrained import DEFAULT_MODEL, pretrained_names

if TYPE_CHECKING:
    from vqcnir.training.config import RecipeOptions

AUTO_OVERLAP = 32  # overlap of approximate tiles when none is given
OFFICIAL_SUFFIXES = (".pth", ".pt")
DEMO_CONFIG = os.path.join("recipes", "configs", "vqcnir_demo.yaml")
DEMO_OUTPUTS = ("final", "best")  # the demo recipe's last and best-validation checkpoints, in that order


class ModelError(ValueError):
    """A model that cannot restore: missing, damaged, of an unknown type, or a stage-1 VQGAN. One line."""


def repository_root() -> str | None:
    """The checkout vqcnir runs from (an editable install), or None when it has no demo recipe config."""
    root = Path(__file__).resolve().parents[2]
    return str(root) if (root / DEMO_CONFIG).is_file() else None


def is_model_folder(path: str) -> bool:
    """True for a folder written by :func:`vqcnir.save_pretrained` (weights and config present)."""
    return os.path.isfile(os.path.join(path, WEIGHTS_NAME)) and os.path.isfile(os.path.join(path, CONFIG_NAME))


def demo_options() -> RecipeOptions | None:
    """The demo recipe's options (``recipes/configs/vqcnir_demo.yaml``), or None outside a checkout."""
    root = repository_root()
    if root is None:
        return None
    from vqcnir.training.config import RecipeOptions
    from vqcnir.training.options import load_yaml

    return load_yaml(RecipeOptions, os.path.join(root, DEMO_CONFIG))


def demo_experiment_dir() -> str | None:
    """``experiments/vqcnir_demo`` (relative, as the demo config names it), or None outside a checkout."""
    options = demo_options()
    return None if options is None else options.experiment_dir


def display_path(path: str) -> str:
    """``path`` relative to the working directory when it lies inside it, else absolute."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    return absolute if relative.startswith(os.pardir) else relative


def demo_model_folders(roots: Sequence[str] | None = None) -> list[str]:
    """The demo-trained model folders that exist (``final`` before ``best``) under ``roots``.

    ``roots`` defaults to the working directory and the checkout. Paths inside the working directory are
    returned relative to it.
    """
    experiment = demo_experiment_dir()
    if experiment is None:
        return []
    if roots is None:
        roots = [os.getcwd()] + [root for root in [repository_root()] if root]
    found: list[str] = []
    seen: set[str] = set()
    for root in roots:
        for which in DEMO_OUTPUTS:
            path = os.path.join(root, experiment, which)
            real = os.path.realpath(path)
            if real not in seen and is_model_folder(path):
                seen.add(real)
                found.append(display_path(path))
    return found


def resolve_model(given: str | None) -> str | None:
    """The model to restore with: ``given`` (``--model``), else the shipped ``"default"`` model
    (:mod:`vqcnir.pretrained`), else the demo-trained one, else None (nothing found).

    The one place that picks the default model, for ``vqcnir-restore`` and the page alike. What it returns
    goes to :func:`load_model`, which hands anything but an official ``.pth`` file to
    :func:`vqcnir.load_pretrained`: a shipped model's name returned here needs no other change.
    """
    if given:
        return given
    if DEFAULT_MODEL in pretrained_names():
        return DEFAULT_MODEL
    return next(iter(demo_model_folders()), None)


def load_model(path: str, device: str | torch.device = "cpu") -> nn.Module:
    """A model in eval mode from our checkpoint folder (``save_pretrained``) or the official ``.pth``.

    Raises :class:`ModelError` (one line naming ``path`` and what is wrong) for a missing path, a folder
    that is not a model, a damaged file, a config of an unknown model type, or a stage-1 VQGAN.
    """
    import vqcnir

    check_restorer(path)
    if os.path.exists(path) and not os.path.isdir(path) and not path.lower().endswith(OFFICIAL_SUFFIXES):
        raise ModelError(
            f"model {path!r} is neither a folder written by save_pretrained nor an official "
            f"{'/'.join(OFFICIAL_SUFFIXES)} file (e.g. VQCNIR_LOLBlur_G.pth)"
        )
    try:
        if os.path.isfile(path):
            model = vqcnir.load_official_checkpoint(path)
        else:  # a folder, or a name load_pretrained knows (see resolve_model)
            model = vqcnir.load_pretrained(path)
    except FileNotFoundError as error:
        if not os.path.exists(path):
            raise ModelError(f"model not found: {path}") from error
        raise ModelError(f"cannot load model {path!r}: {_one_line(error)}") from error
    except (CheckpointError, KeyError, TypeError) as error:  # each names the file
        raise ModelError(f"cannot load model {path!r}: {_one_line(error)}") from error
    return model.to(device).eval()


def check_restorer(path: str) -> None:
    """Refuse, before loading, a folder whose config names a stage-1 VQGAN (it reconstructs through the
    codebook, it does not restore night photos) or a model type this library does not know."""
    if not os.path.isfile(os.path.join(path, CONFIG_NAME)):
        return  # an official .pth, or not a checkpoint folder (load_model says which)
    try:
        name, _ = read_config(path)
    except (CheckpointError, FileNotFoundError) as error:
        raise ModelError(f"cannot load model {path!r}: {_one_line(error)}") from error
    if name not in MODEL_CLASSES:
        raise ModelError(f"model {path!r} has an unknown model type {name!r}: expected 'VQCNIR'")
    if name != "VQCNIR":
        raise ModelError(
            f"model {path!r} is a stage-1 {name} (it reconstructs images through its codebook, it does not "
            "restore night photos): give a stage-2 VQCNIR checkpoint, e.g. experiments/vqcnir_demo/best"
        )


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _image_of(output: object) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.image  # VQGANOutput / VQCNIROutput


def forward_of(model: nn.Module) -> inference.Restorer:
    """The padded image -> output image function of ``model`` (what :func:`restore_tensor` runs)."""
    return lambda x: _image_of(model(x))


def restore_tensor(
    model: nn.Module,
    image: torch.Tensor,
    padding: str = "official",
    tile: int | None = None,
    overlap: int = AUTO_OVERLAP,
    *,
    max_memory: int | str | None = None,
    tiling: str = "auto",
    progress: inference.Progress | None = None,
    offload: str | None = None,
    self_ensemble: int = 1,
) -> torch.Tensor:
    """Restore ``image`` (``[B, 3, H, W]`` or ``[3, H, W]`` in [0, 1]) with ``model``, clamped to [0, 1].

    ``model.restore`` when the model has one (VQCNIR, and a stage-1 VQGAN: its codebook reconstruction),
    else the model's output (a tensor or a tuple with ``.image``) through :func:`vqcnir.inference.restore`.
    ``tile=0`` means whole-image inference; another ``tile`` sets the side of exact tiles (or of
    approximate ones with ``tiling="approximate"``, which alone uses ``overlap``). ``max_memory``,
    ``tiling``, ``progress``, ``offload`` and ``self_ensemble`` as in :func:`vqcnir.inference.restore`.
    """
    tiling, tile = whole_image_tile(tile, tiling)
    options = {"max_memory": max_memory, "tiling": tiling, "tile": tile, "progress": progress, "offload": offload,
               "self_ensemble": self_ensemble}  # fmt: skip
    if tiling == "approximate":
        options["overlap"] = overlap
    with torch.inference_mode():
        if hasattr(model, "restore"):
            result = model.restore(image, padding, **options)
        else:
            result = inference.restore(forward_of(model), image, padding, module=model, **options)
    return result.clamp(0, 1)


def whole_image_tile(tile: int | None, tiling: str) -> tuple[str, int | None]:
    """``(tiling, tile)`` with the commands' ``tile=0`` (the whole image) turned into ``tiling="whole"``."""
    if tile == 0:
        if tiling not in ("auto", "whole"):
            raise ValueError(f"argument 'tile' of 0 means the whole image, which contradicts tiling={tiling!r}")
        return "whole", None
    return tiling, tile
