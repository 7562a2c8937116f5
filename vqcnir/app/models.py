"""Which models the page offers, and the one loaded model every visitor shares.

Models are loaded only by :func:`vqcnir.restoring.models.load_model` (safetensors + JSON folders, or an
official ``.pth`` read with ``torch.load(weights_only=True)``); the default one is
:func:`vqcnir.restoring.models.resolve_model`'s, as for ``vqcnir-restore``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import torch

from vqcnir.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from vqcnir.pretrained import names_shipped_model, pretrained_folder
from vqcnir.restoring.models import ModelError, demo_model_folders, load_model, resolve_model


def model_choices(explicit: str | None) -> list[str]:
    """The models the page lists: ``explicit`` (``--model``, else the default model) first, then the demo-trained
    ones."""
    explicit = resolve_model(explicit)
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
        """The model at ``path`` (loaded now unless already loaded); :class:`~vqcnir.restoring.models.ModelError`
        (one line) when there is none or it cannot restore."""
        if not path or not path.strip():
            raise ModelError("no model chosen: give a save_pretrained folder or an official .pth file")
        path = path.strip()
        location = pretrained_folder(path) if names_shipped_model(path) else path  # "default": vqcnir/weights/default
        if not os.path.exists(location):
            raise ModelError(f"model not found: {path}")
        key = (os.path.realpath(location), _modified(location))
        with self.lock:
            if self._key != key or self._loaded is None:
                self._loaded = None  # let the previous model go before the next one is built
                model = load_model(path, self.device)
                self._loaded, self._key = LoadedModel(path, model, describe(path, model)), key
            return self._loaded


def _modified(path: str) -> float:
    files = [os.path.join(path, name) for name in (WEIGHTS_NAME, CONFIG_NAME)] if os.path.isdir(path) else [path]
    return max((os.path.getmtime(file) for file in files if os.path.exists(file)), default=os.path.getmtime(path))
