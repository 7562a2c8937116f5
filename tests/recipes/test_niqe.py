"""NIQE: reference values of BasicSR's implementation on public-domain photos, its parts, and invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from tests.model.photos import add_noise, box_blur, photo_uint8, to_tensor
from vqcnir.niqe import BLOCK, fit_aggd, gaussian_window_2d, imresize, niqe, niqe_luma, pristine_model

# BasicSR 1.4.2 `calculate_niqe(img_bgr, 0, input_order="HWC", convert_to="y")` on scikit-image's photos, run
# once off-line (basicsr is not a dependency). BasicSR states that it gives MATLAB's value to 1e-7 on its
# baboon.png (5.7296), which is not available here; no published NIQE value of an image shipped with our
# dependencies was found. The small differences come from BasicSR's float32 luma and resize.
BASICSR_NIQE = {"chelsea": 2.625524312789557, "coffee": 4.115328700527569, "coins": 3.635941367114541}


def _rgb(name: str, size: int | None = None) -> np.ndarray:
    img = photo_uint8(name, size)
    return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img


@pytest.mark.parametrize("name", sorted(BASICSR_NIQE))
def test_niqe_matches_basicsr_on_real_photos(name):
    assert niqe(_rgb(name)) == pytest.approx(BASICSR_NIQE[name], abs=2e-4)


def test_pristine_model_and_window_are_the_official_ones():
    mu, cov = pristine_model()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    np.testing.assert_allclose(cov, cov.T, atol=1e-10)
    assert np.linalg.eigvalsh(cov).min() > 0  # a covariance
    from importlib import resources

    with resources.files("vqcnir").joinpath("data_files", "niqe_pris_params.npz").open("rb") as handle:
        window = np.load(handle)["gaussian_window"]
    np.testing.assert_allclose(gaussian_window_2d(), window, rtol=1e-6)


def test_imresize_matches_bicubic_antialiased_downscaling_away_from_the_borders():
    # PIL's BICUBIC is Keys' kernel (a = -0.5) widened when reducing, like MATLAB; borders differ (PIL truncates).
    x = np.random.default_rng(0).uniform(0, 1, (64, 80)).astype(np.float32)
    pil = np.asarray(Image.fromarray(x, mode="F").resize((40, 32), Image.BICUBIC), dtype=np.float64)
    ours = imresize(x.astype(np.float64), 0.5)
    assert ours.shape == (32, 40)
    np.testing.assert_allclose(ours[4:-4, 4:-4], pil[4:-4, 4:-4], atol=1e-6)
    np.testing.assert_allclose(imresize(np.full((17, 9), 3.5), 0.5), 3.5)  # weights sum to one, edges mirrored


@pytest.mark.parametrize("shape", [0.8, 2.0, 3.0])
def test_aggd_fit_recovers_a_symmetric_generalized_gaussian(shape):
    # |x|^shape ~ Gamma(1/shape, scale^shape): a generalized Gaussian with shape `shape` and scale `scale`.
    rng, scale = np.random.default_rng(1), 0.7
    magnitude = rng.gamma(1 / shape, 1.0, size=200_000) ** (1 / shape) * scale
    samples = magnitude * rng.choice([-1.0, 1.0], size=magnitude.size)
    fitted, left, right = fit_aggd(samples[None])
    assert fitted[0] == pytest.approx(shape, rel=0.03)
    assert left[0] == pytest.approx(scale, rel=0.03) and right[0] == pytest.approx(scale, rel=0.03)


def test_blur_and_noise_raise_niqe():
    sharp = _rgb("astronaut", 384)
    blurred = (box_blur(to_tensor(sharp), 2) * 255).round().byte()[0].permute(1, 2, 0).numpy()
    noisy = add_noise(sharp, 20.0)
    base = niqe(sharp)
    assert niqe(blurred) > base + 1.0
    assert niqe(noisy) > base + 1.0


def test_tensor_and_array_inputs_agree_and_bad_inputs_are_named():
    img = _rgb("chelsea")
    value = niqe(img)
    assert niqe(torch.from_numpy(img).permute(2, 0, 1)) == value
    assert niqe(to_tensor(img)) == pytest.approx(value, abs=1e-12)  # float in [0, 1], rounded to 8 bits
    assert math.isfinite(niqe(img, crop_border=4))
    with pytest.raises(ValueError, match="at least two whole 96"):
        niqe_luma(np.zeros((BLOCK, BLOCK + 50)))
    with pytest.raises(ValueError, match="'image' must be"):
        niqe(np.zeros((200, 200, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="'crop_border'"):
        niqe(img, crop_border=-1)
