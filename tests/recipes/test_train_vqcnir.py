"""Stage-2 recipe on CPU: stage 1 trained first from its config, freezing, exact resume, demo wiring."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import load_file

from tests.recipes.helpers import load_recipe, logged_values, tiny_recipe
from vqcnir.checkpoint import read_config
from vqcnir.training.state import find_checkpoint, load_training_state

train_vqcnir = load_recipe("train_vqcnir")
FROZEN_PREFIXES = ("quantizer.", "post_quant_conv.", "decoder_g.", "to_rgb.")


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    """A 2-iteration stage-1 model (folder with model.safetensors) shared by the stage-2 tests."""
    tmp = str(tmp_path_factory.mktemp("stage1"))
    result = load_recipe("train_vqgan").main(["--config", tiny_recipe(tmp, "s1", train={"total_iter": 2})])
    return os.path.join(result["directory"], "best")


def test_smoke_run_trains_stage1_first_and_keeps_the_prior_frozen(tmp_path):
    tiny_recipe(str(tmp_path), "first", train={"total_iter": 2})
    config = tiny_recipe(str(tmp_path), "second", path={"stage1_config": "first.yaml"})
    result = train_vqcnir.main(["--config", config])
    assert result["iteration"] == 3 and not result["interrupted"]
    experiment = result["directory"]
    stage1_dir = os.path.join(tmp_path, "experiments", "first")
    assert os.path.isfile(os.path.join(stage1_dir, "final", "model.safetensors"))
    metrics = result["metrics"]
    assert {"psnr", "ssim", "input_psnr", "input_ssim"} <= metrics.keys() and metrics["count"] == 2
    assert len(os.listdir(os.path.join(experiment, "results"))) == 2
    assert os.path.isfile(os.path.join(experiment, "samples", "iter_00000002.png"))
    assert read_config(os.path.join(experiment, "final"))[0] == "VQCNIR"
    prior = load_file(os.path.join(stage1_dir, "best", "model.safetensors"))
    trained = load_file(os.path.join(experiment, "final", "model.safetensors"))
    frozen = [k for k in prior if k.startswith(FROZEN_PREFIXES)]
    assert frozen and all(torch.equal(prior[k], trained[k]) for k in frozen)
    moved = [k for k in prior if k.startswith("encoder.") and not torch.equal(prior[k], trained[k])]
    assert moved  # the encoder is fine-tuned
    names = {name for _, name in logged_values(experiment)}
    assert {"train/l_g_alignment", "train/l_g_adversarial", "train/l_d_total"} <= names


def test_resume_gives_the_same_losses(tmp_path, stage1):
    path = {"pretrain_network_hq": stage1}
    a = train_vqcnir.main(["--config", tiny_recipe(str(tmp_path), "straight", path=path, train={"total_iter": 4})])
    split = tiny_recipe(str(tmp_path), "split", path=path, train={"total_iter": 2})
    train_vqcnir.main(["--config", split])
    b = train_vqcnir.main(["--config", split, "--train.total_iter=4", "--resume"])
    losses_a, losses_b = logged_values(a["directory"]), logged_values(b["directory"])
    resumed = {key: value for key, value in losses_b.items() if key[0] > 2}
    assert resumed and resumed == {key: losses_a[key] for key in resumed}
    assert load_training_state(find_checkpoint(b["directory"]))["iteration"] == 4


def test_a_stage2_folder_is_not_a_stage1_model(tmp_path, stage1):
    first = tiny_recipe(str(tmp_path), "ok", path={"pretrain_network_hq": stage1}, train={"total_iter": 1})
    result = train_vqcnir.main(["--config", first])
    config = tiny_recipe(str(tmp_path), "bad", path={"pretrain_network_hq": os.path.join(result["directory"], "final")})
    with pytest.raises(ValueError, match="expected a stage-1 VQGAN"):
        train_vqcnir.main(["--config", config])


def test_needs_a_stage1_model(tmp_path):
    config = tiny_recipe(str(tmp_path), "none")
    with pytest.raises(ValueError, match="pretrain_network_hq"):
        train_vqcnir.main(["--config", config])


@pytest.mark.slow
def test_demo_default_runs_end_to_end(tmp_path, monkeypatch):
    """The no-argument demo (bundled photos; built once into the cache) for a couple of iterations."""
    pytest.importorskip("skimage")
    monkeypatch.chdir(tmp_path)
    short = "[train.total_iter=2, logger.save_checkpoint_freq=0]"
    result = train_vqcnir.main(["--train.total_iter=2", f"--path.stage1_overrides={short}"])
    assert result["iteration"] == 2 and result["metrics"]["count"] >= 12
    assert os.path.isdir(tmp_path / "experiments" / "vqgan_demo" / "final")
    assert len(os.listdir(tmp_path / "experiments" / "vqcnir_demo" / "results")) == result["metrics"]["count"]
