"""Our checkpoint format: safetensors weights + a JSON config, loaded without pickle.

A directory written by :func:`save_pretrained` holds ``model.safetensors`` and ``config.json``
(``{"model": "<class name>", "config": {...}}``), so the model is rebuilt from the files alone.
Files are written to a temporary name and renamed, so an interrupted save never leaves a torn file.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from vqcnir.config import VQCNIRConfig

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def atomic_write(path: str, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers see the old file or the new one."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    os.close(handle)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_pretrained(model: nn.Module, directory: str, metadata: dict[str, str] | None = None) -> None:
    """Write ``model`` (which has a ``config: VQCNIRConfig``) as safetensors + JSON config."""
    config = getattr(model, "config", None)
    if not isinstance(config, VQCNIRConfig):
        raise TypeError(f"argument 'model' must have a VQCNIRConfig in .config, got {type(config).__name__}")
    # safetensors refuses tensors that share memory; clone makes every entry its own storage.
    tensors = {name: value.detach().contiguous().clone() for name, value in model.state_dict().items()}
    atomic_write(os.path.join(directory, WEIGHTS_NAME), lambda p: save_file(tensors, p, metadata=metadata))
    payload = {"model": type(model).__name__, "config": config.to_dict()}
    atomic_write(os.path.join(directory, CONFIG_NAME), lambda p: _write_json(p, payload))


def _write_json(path: str, payload: dict) -> None:
    with open(path, "w") as out:
        json.dump(payload, out, indent=2)


def read_config(directory: str) -> tuple[str, VQCNIRConfig]:
    path = os.path.join(directory, CONFIG_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: not a directory written by save_pretrained")
    with open(path) as source:
        payload = json.load(source)
    return payload["model"], VQCNIRConfig.from_dict(payload["config"])


def load_weights(model: nn.Module, directory: str, strict: bool = True) -> nn.Module:
    state = load_file(os.path.join(directory, WEIGHTS_NAME), device="cpu")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if strict and (missing or unexpected):
        raise RuntimeError(f"checkpoint {directory} does not fit the model: missing {missing}, unexpected {unexpected}")
    return model


def load_pretrained(directory: str, backend: str | None = None, strict: bool = True) -> nn.Module:
    """Rebuild the model saved by :func:`save_pretrained` (a ``VQGAN`` or ``VQCNIR``) from its files."""
    from vqcnir.model import VQCNIR  # local: model imports kernels; checkpoint stays light to import
    from vqcnir.vqgan import VQGAN

    name, config = read_config(directory)
    classes: dict[str, Any] = {"VQGAN": lambda: VQGAN(config), "VQCNIR": lambda: VQCNIR(config, backend=backend)}
    if name not in classes:
        raise ValueError(
            f"{directory}: unknown model class {name!r} in {CONFIG_NAME}; expected one of {sorted(classes)}"
        )
    return load_weights(classes[name](), directory, strict=strict)
