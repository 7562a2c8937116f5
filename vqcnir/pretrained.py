"""Models shipped inside the package, by name: ``vqcnir.load_pretrained("default")``.

Each is a :func:`~vqcnir.checkpoint.save_pretrained` folder under ``vqcnir/weights/<name>/`` plus its model
card: ``card.json`` (what made it and what it scores: data, degradation, iterations, hardware, wall time,
metrics beside the classical baseline, and the sha256 of ``model.safetensors``) and ``MODEL_CARD.md`` (the
same for people). The digest is checked before the weights are read, so a damaged or swapped file is an
error naming it, never a silently different model.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from vqcnir.checkpoint import WEIGHTS_NAME, CheckpointError

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
CARD_NAME = "card.json"
DEFAULT_MODEL = "default"


def pretrained_names() -> list[str]:
    """Names of the models shipped with this installation (folders of ``vqcnir/weights`` with a card)."""
    if not os.path.isdir(WEIGHTS_DIR):
        return []
    return sorted(n for n in os.listdir(WEIGHTS_DIR) if os.path.isfile(os.path.join(WEIGHTS_DIR, n, CARD_NAME)))


def is_pretrained_name(value: object) -> bool:
    """True when ``value`` names a shipped model (a plain name, not a path)."""
    return isinstance(value, str) and os.sep not in value and "/" not in value and value in pretrained_names()


def names_shipped_model(value: object) -> bool:
    """True when ``value``, as a model argument, means a shipped model: it is a shipped name and no file or
    folder of that name exists (an existing path always wins). The one rule for every entry point."""
    return is_pretrained_name(value) and not os.path.exists(value)  # type: ignore[arg-type]


def model_card(name: str = DEFAULT_MODEL) -> dict[str, Any]:
    """The card (``card.json``) of the shipped model ``name``; ValueError listing the names for an unknown one."""
    folder = pretrained_folder(name)
    path = os.path.join(folder, CARD_NAME)
    try:
        with open(path, encoding="utf-8") as handle:
            card = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: cannot read the model card ({error})") from error
    if not isinstance(card, dict) or not isinstance(card.get("sha256"), str):
        raise CheckpointError(f"{path}: a model card must be a JSON object with the weights' 'sha256'")
    return card


def pretrained_dir(name: str = DEFAULT_MODEL) -> str:
    """The folder of the shipped model ``name``, after checking its weights against the card's sha256."""
    card = model_card(name)
    folder = pretrained_folder(name)
    weights = os.path.join(folder, WEIGHTS_NAME)
    digest = file_sha256(weights)
    if digest != card["sha256"]:
        raise CheckpointError(
            f"{weights}: sha256 {digest} differs from its model card's {card['sha256']}: the shipped weights are "
            "damaged or were replaced; reinstall vqcnir"
        )
    return folder


def file_sha256(path: str) -> str:
    """Hex sha256 of a file (read in 1 MiB blocks); CheckpointError naming it when it cannot be read."""
    hasher = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read the weights ({error})") from error
    return hasher.hexdigest()


def pretrained_folder(name: str) -> str:
    """The folder of the shipped model ``name`` (its digest not checked: :func:`pretrained_dir` does)."""
    if not is_pretrained_name(name):
        shipped = pretrained_names()
        raise ValueError(
            f"argument 'name': no shipped model called {name!r}; shipped: {shipped or 'none'} "
            "(for your own model pass its save_pretrained folder)"
        )
    return os.path.join(WEIGHTS_DIR, name)
