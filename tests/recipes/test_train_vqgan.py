"""Stage-1 recipe on CPU: a smoke run, exact resume, Ctrl-C, options changed on resume (DDP: test_ddp.py)."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from safetensors.torch import load_file

from tests.recipes.helpers import load_recipe, logged_values, tiny_recipe
from vqcnir import io
from vqcnir.checkpoint import read_config
from vqcnir.training.runtime import run_recipe
from vqcnir.training.session import TrainingSession
from vqcnir.training.state import find_checkpoint, load_training_state

train_vqgan = load_recipe("train_vqgan")


def test_smoke_run_writes_every_output(tmp_path):
    config = tiny_recipe(str(tmp_path), "stage1")
    result = train_vqgan.main(["--config", config])
    experiment = result["directory"]
    assert result["iteration"] == 3 and not result["interrupted"]
    assert {"psnr", "ssim"} <= result["metrics"].keys()
    for name in ("options.yaml", "best/model.safetensors", "final/model.safetensors", "samples/iter_00000002.png"):
        assert os.path.isfile(os.path.join(experiment, name)), name
    assert read_config(os.path.join(experiment, "final"))[0] == "VQGAN"
    losses = logged_values(experiment)
    assert {(i, "train/l_g_total") for i in (1, 2, 3)} <= losses.keys()
    assert {"train/l_g_pixel", "train/l_g_alignment", "train/l_g_perceptual", "train/l_g_adversarial"} <= {
        name for _, name in losses
    }
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    checkpoint = find_checkpoint(experiment)
    assert checkpoint.endswith("iter_00000003")
    state = load_training_state(checkpoint)
    assert state["iteration"] == 3 and state["options"]["name"] == "stage1"
    assert os.path.isfile(os.path.join(checkpoint, "options.yaml"))


def test_resume_gives_the_same_losses_and_weights(tmp_path):
    straight = tiny_recipe(str(tmp_path), "straight", train={"total_iter": 4})
    split = tiny_recipe(str(tmp_path), "split", train={"total_iter": 2})
    a = train_vqgan.main(["--config", straight])
    b = train_vqgan.main(["--config", split])
    assert b["iteration"] == 2
    b = train_vqgan.main(["--config", split, "--train.total_iter=4", "--resume"])
    assert b["iteration"] == 4
    losses_a, losses_b = logged_values(a["directory"]), logged_values(b["directory"])
    resumed = {key: value for key, value in losses_b.items() if key[0] > 2}
    assert resumed and resumed == {key: losses_a[key] for key in resumed}
    weights_a = load_file(os.path.join(a["directory"], "final", "model.safetensors"))
    weights_b = load_file(os.path.join(b["directory"], "final", "model.safetensors"))
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(tmp_path, monkeypatch):
    config = tiny_recipe(str(tmp_path), "interrupted", train={"total_iter": 5}, logger={"save_checkpoint_freq": 0})
    original = TrainingSession.after_step

    def after_step(self, iteration, values, images):
        original(self, iteration, values, images)
        if iteration == 2:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends

    monkeypatch.setattr(TrainingSession, "after_step", after_step)
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN when started with SIGINT ignored
    result = train_vqgan.main(["--config", config])
    assert result["interrupted"] and result["iteration"] == 2
    assert load_training_state(find_checkpoint(result["directory"]))["iteration"] == 2
    assert signal.getsignal(signal.SIGINT) is before  # the handler that was there before is restored
    monkeypatch.undo()
    result = train_vqgan.main(["--config", config, "--resume"])
    assert result["iteration"] == 5 and not result["interrupted"]


def test_explicit_resume_path_must_exist(tmp_path):
    config = tiny_recipe(str(tmp_path), "missing")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_vqgan.main(["--config", config, f"--resume={tmp_path / 'nowhere'}"])


@pytest.mark.slow
def test_compile_switch(tmp_path):
    losses = {"perceptual_weight": 0.0, "adversarial_weight": 0.1}
    config = tiny_recipe(str(tmp_path), "compiled", train={"total_iter": 2, "compile": True, "losses": losses})
    result = train_vqgan.main(["--config", config])
    assert result["iteration"] == 2 and all(
        torch.isfinite(torch.tensor(v)) for v in logged_values(result["directory"]).values()
    )


def test_resume_applies_changed_options_refuses_fixed_ones_and_clears_dead_saves(tmp_path, capsys):
    config = tiny_recipe(str(tmp_path), "changed", train={"total_iter": 2})  # lr 1e-3, halved at iteration 2
    experiment = train_vqgan.main(["--config", config])["directory"]
    checkpoints = os.path.join(experiment, "checkpoints")
    dead = os.path.join(checkpoints, f"{io.STAGING_PREFIX}killed")  # a save killed by SIGKILL: lock not held
    os.makedirs(dead)
    open(os.path.join(dead, io.LOCK_NAME), "w").close()
    torn = os.path.join(experiment, "best", f"{io.TEMP_PREFIX}0000-model.safetensors")
    open(torn, "w").close()
    os.utime(torn, (0, 0))  # written long ago
    capsys.readouterr()

    train_vqgan.main(["--config", config, "--resume", "--train.total_iter=3", "--train.optim_g.lr=0.5"])
    assert logged_values(experiment)[(3, "train/lr")] == 0.5 * 0.5  # the new base rate, decayed at iteration 2
    assert "changed on resume: train.optim_g.lr: 0.001 -> 0.5" in capsys.readouterr().out
    assert not os.path.exists(dead) and not os.path.exists(torn)
    saved = load_training_state(find_checkpoint(experiment))["options"]
    assert saved["train"]["optim_g"]["lr"] == 0.5 and "lr: 0.5" in open(os.path.join(experiment, "options.yaml")).read()

    refused = [
        "--config",
        config,
        "--resume",
        "--train.total_iter=4",
        "--network_g.codebook_size=32",
        "--manual_seed=4",
    ]
    assert run_recipe(lambda: train_vqgan.main(refused)) == 2
    error = capsys.readouterr().err
    assert "error: cannot resume" in error and "manual_seed: 3 -> 4; network_g.codebook_size: 64 -> 32" in error
    assert "manual_seed: 3" in open(os.path.join(experiment, "options.yaml")).read()  # left as it was
    assert load_training_state(find_checkpoint(experiment))["iteration"] == 3
