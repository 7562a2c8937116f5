"""Our checkpoint format: safetensors weights + a JSON config, loaded without pickle.

A directory written by :func:`save_pretrained` holds ``model.safetensors`` and ``config.json``::

    {"format_version": 1, "library_version": "0.1.0", "model": "VQCNIR", "config": {...VQCNIRConfig...}}

so the model is rebuilt from the files alone. ``format_version`` changes when the layout changes in a way
older readers would get wrong; a folder without it (written before it existed) is format 1. Loading a
format newer than this library reads raises :class:`CheckpointError` asking for an upgrade.
Each file is written under a temporary name and renamed (:func:`vqcnir.io.atomic_write`), so an
interrupted save never leaves a torn file; temporaries of a killed save are removed by the next save.

The folder is published as a whole: ``config.json`` holds ``weights_sha256``, the SHA-256 of the
``model.safetensors`` it was saved with, and is written after the weights. A reader hashes the weights
bytes it loads and compares, so while another process saves into the folder a load gets the old model,
the new one, or (after a few tries) :class:`CheckpointError`, never one save's config with another's
weights. Folders written before the digest existed load unchecked.

A config is read with bounds before anything is allocated: at most :data:`MAX_CONFIG_BYTES` of JSON,
nesting that fits the parser, and sizes within :data:`MAX_FIELD` / :data:`MAX_CODEBOOK_ENTRIES`.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file
from torch import nn

from vqcnir._version import __version__
from vqcnir.config import VQCNIRConfig
from vqcnir.io import atomic_write, remove_stale, write_json

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
FORMAT_VERSION = 1  # the newest config.json layout this library reads and writes
MODEL_CLASSES = ("VQGAN", "VQCNIR")  # the model types a config may name
DIGEST_KEY = "weights_sha256"
MAX_CONFIG_BYTES = 2**20  # a config.json is a few hundred bytes; larger is not ours
MAX_FIELD = 2**16  # largest integer (channels, codebook entries, blocks) a config may ask for
MAX_CODEBOOK_ENTRIES = 2**26  # codebook_size x code_dim: 256 MiB of float32
LOAD_ATTEMPTS = 5  # tries of a load that met a save in progress (config and weights of different saves)


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
    digest: list[str] = []

    def write_weights(path: str) -> None:
        save_file(tensors, path, metadata=metadata)
        with open(path, "rb") as written:
            digest.append(hashlib.file_digest(written, "sha256").hexdigest())

    # weights first, then the config that names their digest: the config published is the last step
    atomic_write(os.path.join(directory, WEIGHTS_NAME), write_weights)
    payload = {
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "model": type(model).__name__,
        "config": config.to_dict(),
        DIGEST_KEY: digest[0],
    }
    write_json(os.path.join(directory, CONFIG_NAME), payload)


def read_config(directory: str) -> tuple[str, VQCNIRConfig]:
    """The model class name and config of a :func:`save_pretrained` folder.

    Raises FileNotFoundError when there is no ``config.json``, :class:`CheckpointError` naming the file when
    it is not valid JSON, too large or too deeply nested, holds a wrong field or an unknown model type,
    asks for sizes over the bounds, or has a format newer than this library reads.
    """
    name, config, _ = _read_saved_config(directory)
    return name, config


def _read_saved_config(directory: str) -> tuple[str, VQCNIRConfig, str | None]:
    """``(model class name, config, weights digest or None)`` of ``directory``'s ``config.json``."""
    path = os.path.join(directory, CONFIG_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: not a directory written by save_pretrained")
    size = os.path.getsize(path)
    if size > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{path}: {size} bytes, over the {MAX_CONFIG_BYTES} a model config may have")
    try:
        with open(path, encoding="utf-8") as source:
            payload = json.load(source)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error}); the file is damaged") from error
    except RecursionError as error:
        raise CheckpointError(f"{path}: nested too deeply to be a model config") from error
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
    name, values, digest = payload.get("model"), payload.get("config"), payload.get(DIGEST_KEY)
    if not isinstance(name, str) or not isinstance(values, dict):
        raise CheckpointError(f"{path}: needs 'model' (a class name) and 'config' (an object)")
    if name not in MODEL_CLASSES:
        raise CheckpointError(f"{path}: unknown model type {name[:80]!r}; expected one of {list(MODEL_CLASSES)}")
    if digest is not None and not (isinstance(digest, str) and len(digest) == 64):
        raise CheckpointError(f"{path}: '{DIGEST_KEY}' must be a SHA-256 hex digest, got {str(digest)[:80]!r}")
    try:
        config = VQCNIRConfig.from_dict(values)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: invalid model config: {error}") from error
    _check_sizes(path, config)
    return name, config, digest


def _check_sizes(path: str, config: VQCNIRConfig) -> None:
    for key, value in config.to_dict().items():
        for number in value if isinstance(value, list) else [value]:
            if isinstance(number, int) and number > MAX_FIELD:
                raise CheckpointError(f"{path}: model config field '{key}' is {number}, over the bound {MAX_FIELD}")
    entries = config.codebook_size * config.code_dim
    if entries > MAX_CODEBOOK_ENTRIES:
        raise CheckpointError(
            f"{path}: a codebook of {config.codebook_size} x {config.code_dim} = {entries} entries is over the "
            f"bound of {MAX_CODEBOOK_ENTRIES}"
        )


class TornCheckpointError(CheckpointError):
    """``config.json`` and ``model.safetensors`` come from different saves (a save is in progress)."""


def _read_state(directory: str, digest: str | None) -> dict[str, torch.Tensor]:
    """The tensors of ``directory``'s weights, checked against ``digest`` (the config's) when there is one."""
    path = os.path.join(directory, WEIGHTS_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: not a directory written by save_pretrained")
    with open(path, "rb") as source:  # one read: the bytes hashed are the bytes loaded
        data = source.read()
    try:
        state = load_safetensors(data)  # a file that does not parse is damaged, whatever its digest
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot read the weights ({error}); the file is truncated or damaged") from error
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        raise TornCheckpointError(
            f"{path} is not the file {CONFIG_NAME} was saved with (SHA-256 differs): the folder is being "
            "rewritten by another save (load it again once the save is done), or its files were mixed or altered"
        )
    return state


def _load_state_dict(model: nn.Module, path: str, state: dict[str, torch.Tensor], strict: bool) -> nn.Module:
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # a tensor of another shape
        raise CheckpointError(f"{path} does not fit the model: {error}") from error
    if strict and (missing or unexpected):
        raise CheckpointError(f"{path} does not fit the model: missing {missing}, unexpected {unexpected}")
    return model


def _read_consistent(directory: str) -> tuple[str, VQCNIRConfig, dict[str, torch.Tensor]]:
    """Config and weights of the same save, retrying while another process is saving into ``directory``."""
    for attempt in range(LOAD_ATTEMPTS):
        name, config, digest = _read_saved_config(directory)
        try:
            return name, config, _read_state(directory, digest)
        except TornCheckpointError:
            if attempt == LOAD_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


def load_weights(model: nn.Module, directory: str, strict: bool = True) -> nn.Module:
    """Load ``directory``'s ``model.safetensors`` into ``model``; strict: every key present on both sides.

    The weights are checked against the digest in ``config.json`` (retried while a save is in progress).
    """
    if not os.path.isfile(os.path.join(directory, CONFIG_NAME)):
        return _load_state_dict(model, os.path.join(directory, WEIGHTS_NAME), _read_state(directory, None), strict)
    _, _, state = _read_consistent(directory)
    return _load_state_dict(model, os.path.join(directory, WEIGHTS_NAME), state, strict)


def load_pretrained(directory: str, backend: str | None = None, strict: bool = True) -> nn.Module:
    """Rebuild the model saved by :func:`save_pretrained` (a ``VQGAN`` or ``VQCNIR``) from its files, or a
    model shipped with vqcnir by name (``load_pretrained("default")``: :mod:`vqcnir.pretrained`, its weights
    checked against the model card's sha256 first; an existing path of that name wins).

    ``backend`` forces the ``vqcnir_ops`` backend of every op in the model (default: automatic). The model
    is built from the same save as the weights it gets (see the module docstring).
    """
    from vqcnir.model import VQCNIR  # local: model imports kernels; checkpoint stays light to import
    from vqcnir.pretrained import names_shipped_model, pretrained_dir  # local: pretrained imports this module
    from vqcnir.vqgan import VQGAN

    if names_shipped_model(directory):
        directory = pretrained_dir(directory)
    name, config, state = _read_consistent(directory)
    classes: dict[str, Any] = {"VQGAN": VQGAN, "VQCNIR": VQCNIR}
    model = classes[name](config, backend=backend)
    return _load_state_dict(model, os.path.join(directory, WEIGHTS_NAME), state, strict)
