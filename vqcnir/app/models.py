"""Which models the page offers, and the one loaded model every visitor shares.

Models are loaded only by :func:`vqcnir.cli.models.load_model`: a ``save_pretrained`` folder (safetensors +
JSON, no pickle) or an official ``.pth`` through :func:`vqcnir.load_official_checkpoint`, which reads it
with ``torch.load(weights_only=True)``. The demo-trained model is found where
``recipes/configs/vqcnir_demo.yaml`` says the demo recipe writes it (``experiments/vqcnir_demo/final``
or ``best``), under the working directory and the checkout vqcnir is installed from.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from vqcnir.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from vqcnir.cli.models import check_restorer, load_model

if TYPE_CHECKING:
    from vqcnir.training.config import RecipeOptions

DEMO_CONFIG = os.path.join("recipes", "configs", "vqcnir_demo.yaml")
DEMO_OUTPUTS = ("final", "best")  # the demo recipe's last and best-validation checkpoints, in that order


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


def display_path(path: str) -> str:
    """``path`` relative to the working directory when it lies inside it, else absolute."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    return absolute if relative.startswith(os.pardir) else relative


def model_choices(explicit: str | None) -> list[str]:
    """The models the page lists: ``explicit`` (``--model``) first, then the demo-trained ones."""
    choices = [explicit] if explicit else []
    for path in demo_model_folders():
        if not explicit or os.path.realpath(path) != os.path.realpath(explicit):
            choices.append(path)
    return choices


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to restore with, and a one-line description of it for the page."""

    path: str
    model: torch.nn.Module
    description: str


def describe(path: str, model: torch.nn.Module) -> str:
    """``VQCNIR, 1.23 M parameters, from PATH``."""
    count = sum(parameter.numel() for parameter in model.parameters())
    return f"{type(model).__name__}, {count / 1e6:.2f} M parameters, from {path}"


class ModelStore:
    """Loads the chosen model once and keeps it until another is chosen or its files change.

    One lock serialises loading and restoring, so that visitors of the page never run two models at once.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.lock = threading.RLock()
        self._key: tuple[str, float] | None = None
        self._loaded: LoadedModel | None = None

    def get(self, path: str) -> LoadedModel:
        """The model at ``path`` (loaded now unless already loaded); FileNotFoundError / ValueError as load_model
        and :func:`~vqcnir.cli.models.check_restorer`."""
        if not path or not path.strip():
            raise ValueError("no model chosen: give a save_pretrained folder or an official .pth file")
        path = path.strip()
        if not os.path.exists(path):
            raise FileNotFoundError(f"model not found: {path}")
        check_restorer(path)  # a stage-1 VQGAN is refused, as vqcnir-restore refuses it
        key = (os.path.realpath(path), _modified(path))
        with self.lock:
            if self._key != key or self._loaded is None:
                self._loaded = None  # let the previous model go before the next one is built
                model = load_model(path, self.device)
                self._loaded, self._key = LoadedModel(path, model, describe(path, model)), key
            return self._loaded


def _modified(path: str) -> float:
    files = [os.path.join(path, name) for name in (WEIGHTS_NAME, CONFIG_NAME)] if os.path.isdir(path) else [path]
    return max((os.path.getmtime(file) for file in files if os.path.exists(file)), default=os.path.getmtime(path))
