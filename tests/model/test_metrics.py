"""PSNR / SSIM against scikit-image's implementations on real photos (the LOL-Blur evaluation protocol)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.model.photos import add_noise, photo_uint8
from vqcnir.metrics import gaussian_window, psnr, psnr_float, rgb_to_y, ssim

skmetrics = pytest.importorskip("skimage.metrics")
skcolor = pytest.importorskip("skimage.color")


def chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)


@pytest.fixture(scope="module")
def pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """(clean, distorted) uint8 pairs: noise of two strengths and a colour shift, odd sizes included."""
    astronaut, chelsea = photo_uint8("astronaut", 200), photo_uint8("chelsea")  # 200 x 200, 300 x 451
    shifted = np.clip(chelsea.astype(np.int16) + np.array([12, -7, 3]), 0, 255).astype(np.uint8)
    return [(astronaut, add_noise(astronaut, 5)), (chelsea, add_noise(chelsea, 25, seed=1)), (chelsea, shifted)]


def test_psnr_rgb_matches_skimage(pairs):
    for clean, noisy in pairs:
        expected = skmetrics.peak_signal_noise_ratio(clean, noisy, data_range=255)
        assert psnr(chw(noisy), chw(clean)).item() == pytest.approx(expected, rel=1e-12)


def test_ssim_y_matches_skimage(pairs):
    for clean, noisy in pairs:
        y_clean, y_noisy = skcolor.rgb2ycbcr(clean)[..., 0], skcolor.rgb2ycbcr(noisy)[..., 0]
        expected = skmetrics.structural_similarity(
            y_noisy, y_clean, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
        assert ssim(chw(noisy), chw(clean)).item() == pytest.approx(expected, abs=1e-10)


def test_ssim_rgb_matches_skimage(pairs):
    for clean, noisy in pairs:
        expected = skmetrics.structural_similarity(
            noisy, clean, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
            channel_axis=-1,
        )  # fmt: skip
        assert ssim(chw(noisy), chw(clean), channel="rgb").item() == pytest.approx(expected, abs=1e-10)


def test_y_channel_is_bt601_like_skimage():
    img = photo_uint8("coffee")
    got = rgb_to_y(chw(img).unsqueeze(0).double())[0, 0].numpy()
    np.testing.assert_allclose(got, skcolor.rgb2ycbcr(img)[..., 0], rtol=0, atol=1e-9)
    assert 16 <= got.min() and got.max() <= 235


def test_batches_floats_and_crop_border(pairs):
    clean, noisy = pairs[1]
    clean_t, noisy_t = chw(clean).unsqueeze(0), chw(noisy).unsqueeze(0)
    batch_pred, batch_target = torch.cat([noisy_t, clean_t]), torch.cat([clean_t, clean_t])
    got = ssim(batch_pred, batch_target)
    assert got.shape == (2,) and got[1] == 1.0 and got[0] < 1
    # float images in [0, 1] are rounded to 8-bit levels first, so they give the uint8 result exactly
    assert psnr(noisy_t.float() / 255, clean_t.float() / 255).item() == pytest.approx(psnr(noisy_t, clean_t).item())
    assert psnr(torch.cat([clean_t, clean_t]), batch_target).isinf().all()
    cropped = psnr(noisy_t, clean_t, crop_border=4).item()
    expected = skmetrics.peak_signal_noise_ratio(clean[4:-4, 4:-4], noisy[4:-4, 4:-4], data_range=255)
    assert cropped == pytest.approx(expected, rel=1e-12)
    floats = noisy_t.float() / 255 + 0.001
    assert psnr_float(floats, clean_t.float() / 255).item() != psnr(floats, clean_t.float() / 255).item()


def test_gaussian_window():
    window = gaussian_window(11, 1.5)
    assert window.sum().item() == pytest.approx(1.0) and window.argmax() == 5
    assert torch.equal(window, window.flip(0))


def test_bad_inputs_name_the_argument():
    img = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="'channel'"):
        ssim(img, img, channel="lab")
    with pytest.raises(ValueError, match="'pred'"):
        psnr(torch.rand(1, 1, 16, 16), img)
    with pytest.raises(ValueError, match="'pred' and 'target'"):
        psnr(torch.rand(1, 3, 16, 17), img)
    with pytest.raises(TypeError, match="'target'"):
        psnr(img, img.numpy())
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="'crop_border'"):
        psnr(img, img, crop_border=-1)
