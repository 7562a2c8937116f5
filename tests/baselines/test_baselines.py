"""vqcnir.baselines: the exposure curve hits its target, denoisers remove noise, every variant restores
tiny photos deterministically and better than the input, and bad arguments are named."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from tests.data.independent_degradation import degrade_independent
from tests.model.photos import photo_uint8
from vqcnir.baselines import (
    BASELINES,
    CURVES,
    Baseline,
    Exposure,
    NonLocalMeans,
    TotalVariation,
    Unsharp,
    correct_exposure,
    noise_sigma,
    restore_baseline,
    restore_baseline_tensor,
    unsharp,
)
from vqcnir.data.color import linear_to_lab, srgb_to_linear
from vqcnir.metrics import psnr


def _lab(image):
    return linear_to_lab(srgb_to_linear(image))


def _t(image):
    return torch.from_numpy(image).permute(2, 0, 1)[None]


@pytest.mark.parametrize("curve", CURVES)
@pytest.mark.parametrize("target", [0.3, 0.5])
def test_exposure_reaches_the_target_mean_lightness_and_keeps_saturation(curve, target):
    rng = np.random.default_rng(0)
    # Dark, mildly coloured pixels (as in photos): lifted, they stay in the sRGB gamut, so nothing is clipped.
    dark = rng.uniform(0.0, 0.25, (20, 24, 1)) * rng.uniform(0.8, 1.2, (20, 24, 3))
    lifted = correct_exposure(dark, target, curve)
    before, after = _lab(dark), _lab(lifted)
    assert after[..., 0].mean() / 100 == pytest.approx(target, abs=0.01)
    assert np.all(after[..., 0] >= before[..., 0] - 1e-6)  # only brightens
    lit = before[..., 0] > 5  # chroma / lightness (saturation in LCh) is kept
    chroma = lambda lab: np.hypot(lab[..., 1], lab[..., 2]) / lab[..., 0]  # noqa: E731
    inside = lit & (lifted.max(axis=-1) < 0.999) & (lifted.min(axis=-1) > 0.001)  # in gamut: not clipped
    assert inside.mean() > 0.5
    np.testing.assert_allclose(chroma(after)[inside], chroma(before)[inside], rtol=1e-6)


def test_exposure_leaves_bright_images_and_keeps_white():
    bright = np.random.default_rng(1).uniform(0.5, 1.0, (8, 8, 3))
    np.testing.assert_allclose(correct_exposure(bright, 0.4), bright, atol=1e-9)
    dark = np.full((4, 4, 3), 0.02)
    dark[0, 0] = 1.0
    assert correct_exposure(dark, 0.4)[0, 0] == pytest.approx(np.ones(3))


def test_noise_sigma_estimates_gaussian_noise():
    flat = np.full((64, 64, 3), 0.5)
    noisy = flat + np.random.default_rng(2).normal(0.0, 0.05, flat.shape)
    assert noise_sigma(noisy) == pytest.approx(0.05, rel=0.1)
    assert noise_sigma(flat) == 0.0


@pytest.mark.parametrize("denoiser", [TotalVariation(2.0), NonLocalMeans(1.0)], ids=["tv", "nlm"])
def test_denoisers_remove_most_of_the_noise(denoiser):
    ramp = np.broadcast_to(np.linspace(0.2, 0.8, 48)[None, :, None], (48, 48, 3))
    noisy = np.clip(ramp + np.random.default_rng(3).normal(0.0, 0.05, ramp.shape), 0, 1)
    error_before = np.sqrt(np.mean((noisy - ramp) ** 2))
    error_after = np.sqrt(np.mean((denoiser(noisy) - ramp) ** 2))
    assert error_after < 0.5 * error_before


def test_unsharp_raises_edge_contrast():
    edge = np.zeros((16, 16, 3))
    edge[:, 8:] = 0.6
    edge[:, :8] = 0.3
    sharpened = unsharp(edge, radius=1.0, amount=1.0)
    assert sharpened[0, 7, 0] < 0.3 and sharpened[0, 8, 0] > 0.6  # overshoot on both sides
    np.testing.assert_allclose(sharpened[:, [0, 15]], edge[:, [0, 15]], atol=1e-6)  # flat areas unchanged


@pytest.fixture(scope="module")
def night_pair():
    sharp = photo_uint8("chelsea", 64)
    return degrade_independent(sharp, seed=5), sharp


@pytest.mark.parametrize("name", list(BASELINES))
def test_every_variant_restores_deterministically_and_beats_the_input(name, night_pair):
    night, sharp = night_pair
    restored = restore_baseline(night, name)
    assert restored.dtype == np.uint8 and restored.shape == night.shape
    np.testing.assert_array_equal(restored, restore_baseline(night.copy(), name))
    assert psnr(_t(restored), _t(sharp)).item() > psnr(_t(night), _t(sharp)).item() + 3.0


def test_denoising_variants_beat_exposure_alone(night_pair):
    night, sharp = night_pair
    scores = {name: psnr(_t(restore_baseline(night, name)), _t(sharp)).item() for name in BASELINES}
    assert scores["exposure+tv"] > scores["exposure"] and scores["exposure+nlm"] > scores["exposure"]


def test_tensor_wrapper_matches_the_numpy_path(night_pair):
    night, _ = night_pair
    batch = torch.from_numpy(np.stack([night, night[::-1].copy()])).permute(0, 3, 1, 2).float() / 255
    out = restore_baseline_tensor(batch, "exposure+tv")
    assert out.shape == batch.shape and out.dtype == torch.float32
    expected = restore_baseline(night, "exposure+tv")
    np.testing.assert_array_equal((out[0] * 255).round().byte().permute(1, 2, 0).numpy(), expected)


def test_custom_baseline_and_to_dict():
    baseline = Baseline("mine", (Exposure(0.4, "dce"), Unsharp(1.0, 0.3)))
    assert baseline.to_dict()["steps"] == [
        {"step": "Exposure", "target": 0.4, "curve": "dce"},
        {"step": "Unsharp", "radius": 1.0, "amount": 0.3},
    ]
    image = np.full((8, 8, 3), 30, np.uint8)
    assert restore_baseline(image, baseline).mean() > 30


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: restore_baseline(np.zeros((4, 4, 3)), "exposure"), ValueError, "argument 'image' must be uint8"),
        (lambda: restore_baseline(np.zeros((4, 4), np.uint8), "exposure"), ValueError, "argument 'image'"),
        (lambda: restore_baseline([[0]], "exposure"), TypeError, "argument 'image' must be a numpy array"),
        (lambda: restore_baseline(np.zeros((4, 4, 3), np.uint8), "magic"), ValueError, "unknown baseline 'magic'"),
        (lambda: restore_baseline_tensor(torch.zeros(3, 4, 4), "exposure"), ValueError, "argument 'images'"),
        (lambda: Exposure(1.5), ValueError, "Exposure.target must be in (0, 1)"),
        (lambda: Exposure(0.4, "s-curve"), ValueError, "Exposure.curve must be one of"),
        (lambda: TotalVariation(-1.0), ValueError, "TotalVariation.strength must be >= 0"),
        (lambda: NonLocalMeans(float("nan")), ValueError, "NonLocalMeans.strength must be >= 0"),
        (lambda: Unsharp(0.0, 1.0), ValueError, "Unsharp.radius must be > 0"),
        (lambda: correct_exposure(np.zeros((2, 2, 3)), 0.4, "linear"), ValueError, "argument 'curve'"),
    ],
)
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_missing_scikit_image_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage.restoration", None)  # import_module then raises ImportError
    image = np.full((8, 8, 3), 30, np.uint8)
    with pytest.raises(ImportError, match=r"vqcnir\[baselines\]"):
        restore_baseline(image, "exposure+tv")
    assert restore_baseline(image, "exposure").mean() > 30  # the exposure curve needs no scikit-image
