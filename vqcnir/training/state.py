"""Training checkpoints that resume exactly, written so that a crash never leaves a torn one.

Layout under ``<experiment>/checkpoints/``::

    iter_00001000/  model.safetensors + config.json (vqcnir.checkpoint.save_pretrained: the generator),
                    training_state.pt (optimizers, schedulers, discriminator, RNG states, data position,
                    best metric, the resolved recipe options), options.yaml
    latest          text file naming the newest complete checkpoint folder

A checkpoint is assembled in a hidden staging folder (:class:`vqcnir.io.StagingFolder`), renamed into
place when complete, and only then named in ``latest`` (each file through :func:`vqcnir.io.atomic_write`):
an interruption at any point leaves the previous checkpoint and the ``latest`` pointer intact. What a
killed save leaves behind (a staging folder holds a full copy of the weights) is removed by the next save
or resume, never while its writer is alive (:func:`vqcnir.io.remove_stale`). ``training_state.pt`` holds
only tensors and plain containers and is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from typing import Any

import numpy as np
import torch
from torch import nn

from vqcnir.checkpoint import CheckpointError, load_torch_file, save_pretrained
from vqcnir.io import StagingFolder, atomic_write, remove_stale, write_text

STATE_NAME = "training_state.pt"
LATEST_NAME = "latest"
FORMAT_VERSION = 1
_ITER_DIR = re.compile(r"^iter_(\d+)$")


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and every CUDA device) RNG states as tensors and plain values."""
    numpy_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    saved = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": saved["bit_generator"],
            "state": {"key": saved["key"].numpy().astype(np.uint32), "pos": saved["pos"]},
            "has_gauss": saved["has_gauss"],
            "gauss": saved["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


def checkpoint_name(iteration: int) -> str:
    return f"iter_{iteration:08d}"


def list_checkpoints(root: str) -> list[str]:
    """Complete checkpoint folders under ``root``, oldest first."""
    if not os.path.isdir(root):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(root) if (m := _ITER_DIR.match(name))]
    return [os.path.join(root, name) for _, name in sorted(found)]


def save_checkpoint(
    root: str,
    iteration: int,
    model: nn.Module,
    state: dict[str, Any],
    options_yaml: str,
    keep: int = 2,
) -> str:
    """Write checkpoint ``iter_<iteration>`` under ``root``, point ``latest`` at it, prune to ``keep``.

    ``model`` is written with ``save_pretrained`` (safetensors); ``state`` (tensors and plain
    containers only) with ``torch.save``. Returns the checkpoint folder.
    """
    os.makedirs(root, exist_ok=True)
    remove_stale(root)  # what saves killed mid-way left behind
    final = os.path.join(root, checkpoint_name(iteration))
    with StagingFolder(root) as staging:
        save_pretrained(model, staging.path, metadata={"iteration": str(iteration)})
        atomic_write(os.path.join(staging.path, STATE_NAME), lambda path: _torch_save(state, path))
        write_text(os.path.join(staging.path, "options.yaml"), options_yaml)
        if os.path.isdir(final):  # the same iteration saved again (e.g. Ctrl-C right after a periodic save)
            with StagingFolder(root) as replaced:  # the old copy goes in here and is removed with it
                os.replace(final, os.path.join(replaced.path, "checkpoint"))
                staging.publish(final)
        else:
            staging.publish(final)
    write_text(os.path.join(root, LATEST_NAME), checkpoint_name(iteration) + "\n")
    for old in list_checkpoints(root)[: -max(keep, 1)]:
        if os.path.abspath(old) != os.path.abspath(final):
            shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(path: str) -> str | None:
    """The checkpoint folder meant by ``path``: itself, or the ``latest`` one of an experiment or
    ``checkpoints`` folder. None when there is none."""
    if os.path.isfile(os.path.join(path, STATE_NAME)):
        return path
    for root in (os.path.join(path, "checkpoints"), path):
        pointer = os.path.join(root, LATEST_NAME)
        if os.path.isfile(pointer):
            with open(pointer) as source:
                name = source.read().strip()
            candidate = os.path.join(root, name)
            if os.path.isfile(os.path.join(candidate, STATE_NAME)):
                return candidate
        complete = [c for c in list_checkpoints(root) if os.path.isfile(os.path.join(c, STATE_NAME))]
        if complete:
            return complete[-1]
    return None


def load_training_state(checkpoint: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read ``training_state.pt`` of a checkpoint folder (weights_only: no code is unpickled).

    Raises :class:`~vqcnir.checkpoint.CheckpointError` naming the file when it cannot be read or has
    another format.
    """
    path = os.path.join(checkpoint, STATE_NAME)
    state = load_torch_file(path, "a training state", map_location=map_location)
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        version = state.get("format_version") if isinstance(state, dict) else None
        raise CheckpointError(f"{path}: training state format {version}, expected {FORMAT_VERSION}")
    return state


def _torch_save(obj: Any, path: str) -> None:
    with open(path, "wb") as out:  # through a handle: torch.save rejects file names starting with "."
        torch.save(obj, out)
