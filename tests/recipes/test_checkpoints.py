"""Training checkpoints: atomic writes, the latest pointer, pruning, RNG state, weights-only loading."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from vqcnir.checkpoint import CheckpointError
from vqcnir.config import VQCNIRConfig
from vqcnir.training import state as ckpt
from vqcnir.vqgan import VQGAN


def _model(seed: int) -> VQGAN:
    torch.manual_seed(seed)
    return VQGAN(VQCNIRConfig.tiny())


def _state(iteration: int) -> dict:
    optim = torch.optim.Adam(nn.Linear(2, 2).parameters())
    return {"format_version": ckpt.FORMAT_VERSION, "iteration": iteration, "optim": optim.state_dict()}


def test_interrupted_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    root = str(tmp_path / "checkpoints")
    first = ckpt.save_checkpoint(root, 10, _model(0), _state(10), "name: a\n")

    def crash(obj, path):
        with open(path, "wb") as out:
            out.write(b"half a checkpoint")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(ckpt, "_torch_save", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(root, 20, _model(1), _state(20), "name: a\n")
    assert ckpt.find_checkpoint(root) == first
    assert ckpt.load_training_state(first)["iteration"] == 10
    assert sorted(os.listdir(root)) == ["iter_00000010", "latest"]  # no staging or temp files left
    reloaded = _model(5)
    from vqcnir.checkpoint import load_weights

    load_weights(reloaded, first)
    assert all(
        torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), _model(0).state_dict().values(), strict=True)
    )


def test_latest_pointer_pruning_and_resave(tmp_path):
    root = str(tmp_path / "exp" / "checkpoints")
    for iteration in (1, 2, 3, 3):
        path = ckpt.save_checkpoint(root, iteration, _model(iteration), _state(iteration), "x: 1\n", keep=2)
    assert path.endswith("iter_00000003")
    assert [os.path.basename(p) for p in ckpt.list_checkpoints(root)] == ["iter_00000002", "iter_00000003"]
    assert ckpt.find_checkpoint(str(tmp_path / "exp")) == path  # experiment folder -> latest
    assert ckpt.find_checkpoint(path) == path
    assert ckpt.find_checkpoint(str(tmp_path)) is None


def test_training_state_loads_weights_only(tmp_path):
    root = str(tmp_path)
    state = {"format_version": ckpt.FORMAT_VERSION, "rng": ckpt.capture_rng_state(), **_state(1)}
    path = ckpt.save_checkpoint(root, 1, _model(0), state, "")
    loaded = ckpt.load_training_state(path)
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])
    torch.save({"format_version": 0}, os.path.join(path, ckpt.STATE_NAME))
    with pytest.raises(ValueError, match="format 0"):
        ckpt.load_training_state(path)
    for content, reason in ((b"", "the file is empty"), (b"PK\x03\x04 cut", "")):  # empty, truncated zip
        with open(os.path.join(path, ckpt.STATE_NAME), "wb") as damaged:
            damaged.write(content)
        with pytest.raises(CheckpointError, match=rf"cannot read '.*training_state.pt' as a training state \({reason}"):
            ckpt.load_training_state(path)


def test_rng_state_round_trip():
    saved = ckpt.capture_rng_state()
    expected = (random.random(), np.random.rand(), np.random.randn(), torch.rand(3))
    random.random(), np.random.rand(), torch.rand(5)
    ckpt.restore_rng_state(saved)
    again = (random.random(), np.random.rand(), np.random.randn(), torch.rand(3))
    assert expected[:3] == again[:3] and torch.equal(expected[3], again[3])


def test_dead_codes_move_onto_latents_and_usage_is_checkpointed():
    from vqcnir.training.codebook import restart_dead_codes
    from vqcnir.training.runtime import Runtime

    torch.manual_seed(0)
    model = _model(0)
    quantizer = model.quantizer
    latent = torch.randn(2, quantizer.code_dim, 4, 4) + 10  # far from every code: all pick one
    quantizer.train()
    assert quantizer(latent).indices.unique().numel() < 4
    before = quantizer.codebook.clone()
    replaced = restart_dead_codes(quantizer, latent, Runtime(torch.device("cpu")))
    assert replaced >= quantizer.num_codes - 3
    moved = (quantizer.codebook != before).any(1)
    rows = latent.permute(0, 2, 3, 1).reshape(-1, quantizer.code_dim)
    assert all((rows == code).all(1).any() for code in quantizer.codebook[moved])
    assert quantizer.usage_counts.sum() == 0
    assert quantizer(latent).indices.unique().numel() > 4
    assert "quantizer.usage_counts" not in model.state_dict()  # so the session saves it with the state


def test_checkpoints_and_model_folders_follow_the_umask(tmp_path):
    """A shared experiment folder must be readable by others under the usual umask 022 (not 0600 / 0700)."""
    previous = os.umask(0o022)
    try:
        path = ckpt.save_checkpoint(str(tmp_path / "checkpoints"), 1, _model(0), _state(1), "x: 1\n")
    finally:
        os.umask(previous)
    modes = {
        os.path.relpath(os.path.join(folder, name), tmp_path): os.stat(os.path.join(folder, name)).st_mode & 0o777
        for folder, dirs, files in os.walk(tmp_path)
        for name in dirs + files
    }
    expected = {"checkpoints", os.path.relpath(path, tmp_path)}
    assert {name for name, mode in modes.items() if mode == 0o755} == expected
    assert all(mode == 0o644 for name, mode in modes.items() if name not in expected), modes
    assert sorted(os.listdir(path)) == ["config.json", "model.safetensors", "options.yaml", "training_state.pt"]
