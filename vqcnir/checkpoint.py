"""Our checkpoint format: safetensors weights + a JSON config, loaded without pickle.

A directory written by :func:`save_pretrained` holds ``model.safetensors`` and ``config.json``::

    {"format_version": 1, "library_version": "0.1.0", "model": "VQCNIR", "config": {...VQCNIRConfig...}}

so the model is rebuilt from the files alone. ``format_version`` changes when the layout changes in a way
older readers would get wrong; a folder without it (written before it existed) is format 1. Loading a
format newer than this library reads raises :class:`CheckpointError` asking for an upgrade.
Each file is written under a temporary name and renamed (:func:`vqcnir.io.atomic_write`), so an
interrupted save never leaves a torn file; temporaries of a killed save are removed by the next save.
"""

from __future__ import annotations

import json
import os
import pickle
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from vqcnir._version import __version__
from vqcnir.config import VQCNIRConfig
from vqcnir.io import atomic_write, remove_stale, write_json

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
FORMAT_VERSION = 1  # the newest config.json layout this library reads and writes


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used as it is; the message names the file and what is wrong."""


def load_torch_file(
    path: str | os.PathLike, what: str, hint: str = "", map_location: str | torch.device = "cpu"
) -> Any:
    """``torch.load(path, weights_only=True)`` (no code is unpickled). A file that cannot be read raises
    :class:`CheckpointError` naming it, ``what`` it should hold, why (``the file is empty`` for 0 bytes),
    then ``hint``."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (EOFError, pickle.UnpicklingError, RuntimeError, ValueError, OSError) as error:
        empty = os.path.isfile(path) and os.path.getsize(path) == 0
        reason = "the file is empty" if empty else f"{type(error).__name__}: {error}"
        raise CheckpointError(f"cannot read {os.fspath(path)!r} as {what} ({reason}){hint}") from error


def save_pretrained(model: nn.Module, directory: str, metadata: dict[str, str] | None = None) -> None:
    """Write ``model`` (which has a ``config: VQCNIRConfig``) as safetensors + JSON config into ``directory``."""
    config = getattr(model, "config", None)
    if not isinstance(config, VQCNIRConfig):
        raise TypeError(f"argument 'model' must have a VQCNIRConfig in .config, got {type(config).__name__}")
    # safetensors refuses tensors that share memory; clone makes every entry its own storage.
    tensors = {name: value.detach().contiguous().clone() for name, value in model.state_dict().items()}
    remove_stale(directory)  # temporaries of a save that was killed
    atomic_write(os.path.join(directory, WEIGHTS_NAME), lambda p: save_file(tensors, p, metadata=metadata))
    payload = {
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "model": type(model).__name__,
        "config": config.to_dict(),
    }
    write_json(os.path.join(directory, CONFIG_NAME), payload)


def read_config(directory: str) -> tuple[str, VQCNIRConfig]:
    """The model class name and config of a :func:`save_pretrained` folder.

    Raises FileNotFoundError when there is no ``config.json``, :class:`CheckpointError` naming the file when
    it is not valid JSON, holds a wrong field, or has a format newer than this library reads.
    """
    path = os.path.join(directory, CONFIG_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: not a directory written by save_pretrained")
    try:
        with open(path, encoding="utf-8") as source:
            payload = json.load(source)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error}); the file is damaged") from error
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(payload).__name__}")
    version = payload.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: 'format_version' must be an integer >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        writer = payload.get("library_version", "a newer version")
        raise CheckpointError(
            f"{path}: checkpoint format {version} (written by vqcnir {writer}) is newer than this vqcnir "
            f"{__version__} reads (format {FORMAT_VERSION}): upgrade vqcnir to load it"
        )
    name, values = payload.get("model"), payload.get("config")
    if not isinstance(name, str) or not isinstance(values, dict):
        raise CheckpointError(f"{path}: needs 'model' (a class name) and 'config' (an object)")
    try:
        return name, VQCNIRConfig.from_dict(values)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: invalid model config: {error}") from error


def load_weights(model: nn.Module, directory: str, strict: bool = True) -> nn.Module:
    """Load ``directory``'s ``model.safetensors`` into ``model``; strict: every key present on both sides."""
    path = os.path.join(directory, WEIGHTS_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: not a directory written by save_pretrained")
    try:
        state = load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot read the weights ({error}); the file is truncated or damaged") from error
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # a tensor of another shape
        raise CheckpointError(f"{path} does not fit the model: {error}") from error
    if strict and (missing or unexpected):
        raise CheckpointError(f"{path} does not fit the model: missing {missing}, unexpected {unexpected}")
    return model


def load_pretrained(directory: str, backend: str | None = None, strict: bool = True) -> nn.Module:
    """Rebuild the model saved by :func:`save_pretrained` (a ``VQGAN`` or ``VQCNIR``) from its files.

    ``backend`` forces the ``vqcnir_ops`` backend of every op in the model (default: automatic).
    """
    from vqcnir.model import VQCNIR  # local: model imports kernels; checkpoint stays light to import
    from vqcnir.vqgan import VQGAN

    name, config = read_config(directory)
    classes: dict[str, Any] = {"VQGAN": VQGAN, "VQCNIR": VQCNIR}
    if name not in classes:
        raise CheckpointError(
            f"{os.path.join(directory, CONFIG_NAME)}: unknown model class {name!r}; expected one of {sorted(classes)}"
        )
    return load_weights(classes[name](config, backend=backend), directory, strict=strict)
