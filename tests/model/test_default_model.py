"""The shipped default model: found by name, guarded by its sha256, used when no model is given, and better
than the best classical pipeline on held-out night photos, also under an independently written degradation
(a small sample: seconds, not minutes)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

import vqcnir
import vqcnir.pretrained as pretrained
from tests.data.independent_degradation import degrade_independent
from vqcnir import VQCNIR, VQCNIRConfig
from vqcnir.baselines import BASELINES, restore_baseline
from vqcnir.checkpoint import WEIGHTS_NAME, CheckpointError
from vqcnir.data import pair_by_relative_path, read_rgb
from vqcnir.io import to_uint8
from vqcnir.perceptual import LPIPS, lpips_available
from vqcnir.restoring.models import resolve_model
from vqcnir.scoring import mean_saturation, score_outputs

# The margins the shipped model holds on the held-out sample below (README, "The default model"). Measured on
# these 6 pairs: 22.53 dB / SSIM 0.721 / LPIPS 0.330 against 20.02 / 0.714 / 0.445 for exposure+tv; under the
# independent degradation 22.39 / 0.708 / 0.384 against 21.35 / 0.714 / 0.429. A model that falls back to the
# classical pipelines' level fails.
HELD_OUT_PSNR_MARGIN = 1.5  # dB over the best classical baseline (measured +2.51)
HELD_OUT_SSIM_SLACK = 0.02  # SSIM may trail the classical pipeline's by this much, no more (measured +0.007)
HELD_OUT_LPIPS_MARGIN = 0.04  # LPIPS (AlexNet) below the classical pipeline's by at least this (measured 0.115)


@pytest.fixture(scope="module")
def model() -> VQCNIR:
    torch.manual_seed(0)
    return vqcnir.load_pretrained("default").eval()


def _restore(model: VQCNIR, image: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return to_uint8(model.restore(torch.from_numpy(image).permute(2, 0, 1).float().div(255), padding="reflect"))


def _best_classical(pairs: list[tuple[np.ndarray, np.ndarray]], lpips: LPIPS | None = None) -> dict[str, float]:
    targets = [gt for _, gt in pairs]
    rows = [score_outputs([restore_baseline(lq, name) for lq, _ in pairs], targets, lpips) for name in BASELINES]
    return max(rows, key=lambda row: row["psnr"])


@pytest.fixture(scope="module")
def lpips() -> LPIPS:
    if not lpips_available():
        pytest.skip("LPIPS weights not installed (the 'lpips' extra)")
    return LPIPS("alexnet").eval()


def test_shipped_by_name_with_its_card(model):
    card = pretrained.model_card("default")
    assert "default" in pretrained.pretrained_names()
    assert isinstance(model, VQCNIR) and model.config == VQCNIRConfig.from_dict(card["config"])
    weights = os.path.join(pretrained.WEIGHTS_DIR, "default", WEIGHTS_NAME)
    assert card["sha256"] == pretrained.file_sha256(weights)
    assert os.path.getsize(weights) <= 25 * 2**20
    assert resolve_model(None) == "default"  # vqcnir-restore and the page use it when no --model is given
    assert resolve_model("mine") == "mine"


def test_an_existing_path_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert pretrained.names_shipped_model("default")
    assert not pretrained.names_shipped_model("./default") and not pretrained.names_shipped_model("nope")
    (tmp_path / "default").mkdir()  # a user's own folder called "default" is that folder, not the shipped model
    assert not pretrained.names_shipped_model("default")
    with pytest.raises(FileNotFoundError, match="not a directory written by save_pretrained"):
        vqcnir.load_pretrained("default")


def test_damaged_or_unknown_models_are_refused(tmp_path, monkeypatch):
    shutil.copytree(os.path.join(pretrained.WEIGHTS_DIR, "default"), tmp_path / "default")
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", str(tmp_path))
    with open(tmp_path / "default" / WEIGHTS_NAME, "r+b") as handle:
        handle.seek(-8, os.SEEK_END)
        handle.write(b"\x00" * 8)
    with pytest.raises(CheckpointError, match="sha256"):
        vqcnir.load_pretrained("default")
    with pytest.raises(ValueError, match="no shipped model called 'nope'"):
        pretrained.pretrained_dir("nope")


def _held_out_sample(count: int = 6) -> list[tuple[np.ndarray, np.ndarray]]:
    from vqcnir.data.night import build_night_set

    held_out = build_night_set()
    pairs = pair_by_relative_path(f"{held_out.test}/lq", f"{held_out.test}/gt")
    chosen = pairs[:: len(pairs) // count][:count]  # both photos, several degradations
    return [(read_rgb(lq), read_rgb(gt)) for lq, gt in chosen]


def test_beats_the_best_classical_baseline_on_held_out_photos(model, lpips):
    pytest.importorskip("skimage")
    pairs = _held_out_sample()
    ours = score_outputs([_restore(model, lq) for lq, _ in pairs], [gt for _, gt in pairs], lpips)
    classical = _best_classical(pairs, lpips)
    assert ours["psnr"] >= classical["psnr"] + HELD_OUT_PSNR_MARGIN, (ours, classical)
    assert ours["ssim"] >= classical["ssim"] - HELD_OUT_SSIM_SLACK, (ours, classical)
    assert ours["lpips"] <= classical["lpips"] - HELD_OUT_LPIPS_MARGIN, (ours, classical)
    target = mean_saturation([gt for _, gt in pairs])
    assert abs(ours["saturation"] - target) <= 0.25 * target  # colour kept, not greyed out


def test_beats_the_classical_baseline_under_an_independent_degradation(model, lpips):
    # tests/data/independent_degradation.py shares no code with the training degradation: other blur, noise
    # and exposure laws. The model must still beat the best classical pipeline there, in PSNR and LPIPS.
    pytest.importorskip("skimage")
    sharp = [gt for _, gt in _held_out_sample()]
    pairs = [(degrade_independent(gt, seed), gt) for seed, gt in enumerate(sharp)]
    ours = score_outputs([_restore(model, lq) for lq, _ in pairs], [gt for _, gt in pairs], lpips)
    classical = _best_classical(pairs, lpips)
    assert ours["psnr"] >= classical["psnr"], (ours, classical)
    assert ours["lpips"] <= classical["lpips"], (ours, classical)
