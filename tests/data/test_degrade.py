"""Night-blur degradation: reproducible bytes, and measured darkness, blur, protected highlights, noise."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vqcnir.data import NightBlurParams, degrade, draw_degradation, sample_rng, sample_shake_kernel
from vqcnir.data.color import lab_to_linear, lightness, linear_to_lab, linear_to_srgb, srgb_to_linear
from vqcnir.data.degrade import darken_lightness
from vqcnir.data.kernels import convolve

QUIET = NightBlurParams(blur_prob=0.0, noise="none", saturation_gain=(1.0, 1.0))


def _scene(seed: int = 0, size: int = 64) -> np.ndarray:
    """A well-lit textured photo stand-in: smooth shading plus edges plus a few bright lamps."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    base = 0.35 + 0.3 * np.sin(6 * xx)[..., None] * np.array([1.0, 0.8, 0.6]) + 0.2 * (yy > 0.5)[..., None]
    base = base + 0.08 * rng.standard_normal((size, size, 1))
    image = np.clip(base, 0, 1) * 255
    image[10:14, 40:44] = 255  # lamps: saturated, L = 100
    image[50:53, 8:11] = [255, 250, 245]
    return np.round(image).astype(np.uint8)


def _gradient_energy(image: np.ndarray) -> float:
    x = image.astype(np.float64)
    return float((np.diff(x, axis=0) ** 2).mean() + (np.diff(x, axis=1) ** 2).mean())


def test_same_seed_same_bytes_different_seed_differs():
    image = _scene()
    first = degrade(image, sample_rng(3, 7))
    assert first.dtype == np.uint8 and first.shape == image.shape
    assert degrade(image, sample_rng(3, 7)).tobytes() == first.tobytes()
    assert degrade(image, sample_rng(3, 8)).tobytes() != first.tobytes()
    assert degrade(image, sample_rng(4, 7)).tobytes() != first.tobytes()


@pytest.mark.parametrize("seed", range(4))
def test_mean_lightness_reaches_exposure_and_drops_with_it(seed):
    image = _scene(seed)
    means = []
    for exposure in (0.05, 0.1, 0.2, 0.3):
        low = degrade(image, sample_rng(seed), dataclasses.replace(QUIET, exposure=(exposure, exposure)))
        means.append(lightness(low / 255.0).mean())
        assert abs(means[-1] - 100 * exposure) < 1.5  # 8-bit quantisation only
    assert np.all(np.diff(means) > 3) and means[-1] < lightness(image / 255.0).mean() - 10


def test_default_ranges_darken_every_image():
    image = _scene()
    for index in range(6):
        low = degrade(image, sample_rng(0, index))
        assert 3 < lightness(low / 255.0).mean() < 35 < lightness(image / 255.0).mean()


def test_blur_lowers_gradient_energy_and_grows_with_length():
    image = _scene()
    energies = []
    for length in (0.0, 4.0, 12.0, 24.0):
        params = dataclasses.replace(QUIET, blur_prob=1.0, blur_length=(length, length), exposure=(0.2, 0.2))
        energies.append(np.mean([_gradient_energy(degrade(image, sample_rng(1, i), params)) for i in range(4)]))
    assert energies[1] < 0.8 * energies[0] and energies[2] < energies[1] and energies[3] < energies[2]


def test_bright_pixels_untouched_before_noise():
    image = _scene()
    protected = lightness(image / 255.0) > 97
    assert protected.sum() >= 16
    low = degrade(image, sample_rng(0), dataclasses.replace(QUIET, exposure=(0.05, 0.05)))
    np.testing.assert_array_equal(low[protected], image[protected])
    assert (low[~protected].astype(int) <= image[~protected]).all()
    linear = srgb_to_linear(image / 255.0)
    darker = darken_lightness(linear, 0.1, protect_lightness=90.0)
    kept = linear_to_lab(linear)[..., 0] > 90.0
    np.testing.assert_array_equal(darker[kept], linear[kept])  # bit-exact, no colour round trip


def test_light_sources_streak_when_boosted():
    image = np.full((64, 64, 3), 60, np.uint8)
    image[30:33, 30:33] = 255
    draw = draw_degradation(sample_rng(5), dataclasses.replace(QUIET, blur_prob=1.0, blur_length=(16.0, 16.0)))
    plain = degrade(image, sample_rng(0), QUIET, draw=dataclasses.replace(draw, gain=1.0, exposure=0.1))
    boosted = degrade(image, sample_rng(0), QUIET, draw=dataclasses.replace(draw, gain=6.0, exposure=0.1))
    streak = lightness(boosted / 255.0) > 97
    assert streak.sum() > 2 * (lightness(plain / 255.0) > 97).sum() and streak.sum() > 9


@pytest.mark.parametrize("sigma", [2.0 / 255.0, 8.0 / 255.0])
def test_gaussian_noise_has_the_drawn_sigma(sigma):
    image = np.full((128, 128, 3), 200, np.uint8)
    params = dataclasses.replace(QUIET, noise="gaussian", gaussian_sigma=(sigma, sigma), exposure=(0.3, 0.3))
    clean = degrade(image, sample_rng(0), dataclasses.replace(params, noise="none")).astype(np.float64)
    noisy = degrade(image, sample_rng(0), params).astype(np.float64)
    assert abs((noisy - clean).std() / 255.0 - sigma) < 0.12 * sigma + 0.3 / 255.0


def test_poisson_noise_shrinks_with_more_photons():
    image = np.full((128, 128, 3), 200, np.uint8)
    stds = []
    for peak in (100.0, 3000.0):
        params = dataclasses.replace(QUIET, noise="poisson", poisson_peak=(peak, peak), exposure=(0.2, 0.2))
        stds.append(degrade(image, sample_rng(0), params).astype(np.float64).std())
    assert stds[0] > 3 * stds[1] > 0


def test_kernels_are_normalised_and_as_long_as_drawn():
    for i in range(20):
        kernel = sample_shake_kernel(sample_rng(0, i), (10.0, 10.0))
        assert kernel.min() >= 0 and abs(kernel.sum() - 1) < 1e-12 and kernel.shape[0] % 2 == 1
        assert 3 <= kernel.shape[0] <= 10 + 5
    assert sample_shake_kernel(sample_rng(0), (0.0, 0.0)).shape == (3, 3)
    image = np.random.default_rng(0).uniform(size=(9, 11, 3))
    np.testing.assert_allclose(convolve(image, sample_shake_kernel(sample_rng(0), (0.0, 0.0))), image, atol=1e-12)
    np.testing.assert_allclose(convolve(np.full((9, 11, 3), 0.4), kernel), 0.4, atol=1e-12)


def test_colour_round_trips():
    rgb = np.random.default_rng(0).uniform(size=(500, 3))
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(rgb)), rgb, atol=1e-12)
    np.testing.assert_allclose(lab_to_linear(linear_to_lab(rgb)), rgb, atol=1e-10)
    np.testing.assert_allclose(linear_to_lab(np.ones(3)), [100.0, 0.0, 0.0], atol=1e-6)


def test_params_are_validated_by_name():
    with pytest.raises(ValueError, match="NightBlurParams.exposure"):
        NightBlurParams(exposure=(0.3, 0.05))
    with pytest.raises(ValueError, match="NightBlurParams.noise"):
        NightBlurParams(noise="speckle")
    with pytest.raises(ValueError, match="NightBlurParams.blur_prob"):
        NightBlurParams(blur_prob=1.5)
    with pytest.raises(ValueError, match="argument 'image'"):
        degrade(np.zeros((8, 8), np.uint8), sample_rng(0))
    assert NightBlurParams().to_dict()["exposure"] == [0.05, 0.3]
