"""Both recipes with two processes on CPU (torchrun, gloo): sharded samples, identical parameters, rank 0
alone writing, a resume that continues exactly, and a crashed rank that stops the run instead of hanging.

Each run is a few iterations of the tiny model on 32 px crops; ``ddp_driver.py`` records what each rank did.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import torch
from safetensors.torch import load_file

from tests.recipes.helpers import TORCHRUN, logged_values, tiny_recipe
from vqcnir.training.state import find_checkpoint, load_training_state

pytestmark = pytest.mark.skipif(not os.path.isfile(TORCHRUN), reason="torchrun is not installed beside this python")
DRIVER = os.path.join(os.path.dirname(__file__), "ddp_driver.py")
# The GAN stays on (its discriminator is DDP-wrapped too); LPIPS is left out: loading VGG16 per process is slow.
LOSSES = {"perceptual_weight": 0.0, "adversarial_weight": 0.1}


def torchrun_two(recipe: str, tmp: str, record: str, *args: str, die_at: int = 0) -> subprocess.CompletedProcess:
    """``recipes/<recipe>.py ARGS`` on two processes; per-rank records in ``tmp/record``."""
    command = [TORCHRUN, "--standalone", "--nproc_per_node=2", DRIVER, recipe, os.path.join(tmp, record)]
    command += [os.path.join(tmp, "experiments"), f"--die-at={die_at}", "--", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)


def records(tmp: str, record: str) -> list[dict]:
    return [torch.load(os.path.join(tmp, record, f"rank{r}.pt"), weights_only=False) for r in (0, 1)]


def check_two_ranks(proc: subprocess.CompletedProcess, tmp: str, record: str, name: str) -> None:
    """Different samples per rank at every step, identical parameters at the end, only rank 0 writes."""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rank0, rank1 = records(tmp, record)
    assert len(rank0["samples"]) == len(rank1["samples"]) == 4
    for batch0, batch1 in zip(rank0["samples"], rank1["samples"], strict=True):
        assert not set(batch0) & set(batch1)
    assert rank0["parameters"].keys() == rank1["parameters"].keys()
    assert any(k.startswith("d.") for k in rank0["parameters"])  # the discriminator is compared too
    for key, value in rank0["parameters"].items():
        assert torch.equal(value, rank1["parameters"][key]), key
    assert rank1["written"] == []
    written = rank0["written"]
    for expected in ("checkpoints/latest", "logs/metrics.csv", "options.yaml", "final/model.safetensors"):
        assert any(path.startswith(os.path.join(name, expected)) for path in written), expected


@pytest.fixture(scope="module")
def stage1(tmp_path_factory) -> tuple[str, subprocess.CompletedProcess]:
    """A 4-iteration two-process stage-1 run (dead-code restarts on: rank 0's codebook is broadcast)."""
    tmp = str(tmp_path_factory.mktemp("ddp_stage1"))
    config = tiny_recipe(tmp, "s1", train={"total_iter": 4, "codebook_restart": 2, "losses": LOSSES})
    return tmp, torchrun_two("train_vqgan", tmp, "straight", "--config", config)


def test_stage1_on_two_ranks(stage1):
    tmp, proc = stage1
    check_two_ranks(proc, tmp, "straight", "s1")


def crash_then_resume(recipe: str, tmp: str, name: str, straight: str, sections: dict) -> None:
    """Rank 1 dies at iteration 3 (after the checkpoint of iteration 2): the run stops, not hangs; resuming
    on two ranks logs the same losses and ends with the same weights as the straight run ``straight``."""
    config = tiny_recipe(tmp, name, train={"total_iter": 4, "losses": LOSSES, **sections.pop("train", {})}, **sections)
    start = time.monotonic()
    crashed = torchrun_two(recipe, tmp, "crashed", "--config", config, die_at=3)
    assert crashed.returncode != 0 and time.monotonic() - start < 120
    output = crashed.stdout + crashed.stderr
    assert "rank      : 1" in output and "SIGKILL" in output, output[-3000:]  # torchrun names the crashed rank
    if "lost contact" in output:  # rank 0 saw the broken collective before torchrun stopped it
        assert "error: rank 0 lost contact with another training process" in output
    experiment = os.path.join(tmp, "experiments", name)
    assert load_training_state(find_checkpoint(experiment))["iteration"] == 2
    resumed = torchrun_two(recipe, tmp, "resumed", "--config", config, "--resume")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    rank0, rank1 = records(tmp, "resumed")
    assert all(torch.equal(v, rank1["parameters"][k]) for k, v in rank0["parameters"].items())
    losses, reference = logged_values(experiment), logged_values(os.path.join(tmp, "experiments", straight))
    resumed_losses = {key: value for key, value in losses.items() if key[0] > 2}
    assert len(resumed_losses) > 4 and resumed_losses == {key: reference[key] for key in resumed_losses}
    final, expected = (
        load_file(os.path.join(tmp, "experiments", n, "final", "model.safetensors")) for n in (name, straight)
    )
    assert all(torch.equal(final[k], expected[k]) for k in expected)


def test_stage1_crash_and_exact_resume_on_two_ranks(stage1):
    tmp, _ = stage1
    crash_then_resume("train_vqgan", tmp, "s1_crash", "s1", {"train": {"codebook_restart": 2}})


@pytest.fixture(scope="module")
def stage2(stage1) -> tuple[str, subprocess.CompletedProcess]:
    tmp, _ = stage1
    path = {"pretrain_network_hq": os.path.join(tmp, "experiments", "s1", "best")}
    config = tiny_recipe(tmp, "s2", path=path, train={"total_iter": 4, "losses": LOSSES})
    return tmp, torchrun_two("train_vqcnir", tmp, "straight2", "--config", config)


def test_stage2_on_two_ranks(stage2):
    tmp, proc = stage2
    check_two_ranks(proc, tmp, "straight2", "s2")


def test_stage2_crash_and_exact_resume_on_two_ranks(stage2):
    tmp, _ = stage2
    path = {"pretrain_network_hq": os.path.join(tmp, "experiments", "s1", "best")}
    crash_then_resume("train_vqcnir", tmp, "s2_crash", "s2", {"path": path})
