"""Restoring any image: what restore accepts, padding, approximate tiles, and the choice of tiling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vqcnir.inference import PADDINGS, dihedral, pad_official, pad_reflect, padded, restore, tiled


@pytest.mark.parametrize(("h", "w"), [(1, 1), (63, 64), (64, 65), (100, 37), (128, 128)])
def test_official_padding_matches_the_authors_rule(h, w):
    image = torch.rand(1, 3, h, w)
    out = pad_official(image)
    assert out.shape[-2] == (h // 64 + 1) * 64 and out.shape[-1] == (w // 64 + 1) * 64
    assert torch.equal(out[..., :h, :w], image)
    if h > 1:  # the padding is the image flipped
        assert torch.equal(out[..., h, :w], image[..., h - 1, :])


@pytest.mark.parametrize(("h", "w"), [(1, 5), (8, 8), (13, 29), (7, 3)])
def test_reflect_padding_is_minimal(h, w):
    out = pad_reflect(torch.rand(2, 3, h, w))
    assert out.shape[-2] % 8 == 0 and out.shape[-1] % 8 == 0
    assert out.shape[-2] - h < 8 and out.shape[-1] - w < 8


def test_padded_crops_back_and_rejects_unknown_padding():
    image = torch.rand(1, 3, 45, 71)
    out = padded(lambda x: x * 2, image, padding="reflect")
    assert torch.equal(out, image * 2)
    with pytest.raises(ValueError, match="'padding' must be one of"):
        padded(lambda x: x, image, padding="zeros")


@pytest.mark.parametrize(("h", "w", "tile", "overlap"), [(100, 150, 48, 8), (64, 64, 64, 0), (33, 90, 32, 12)])
def test_tiles_blend_to_the_whole_image_for_a_pointwise_restorer(h, w, tile, overlap):
    image = torch.rand(2, 3, h, w)
    restore = lambda x: torch.sigmoid(3 * x - 1)  # noqa: E731  (pixel-wise: tiling must be exact)
    torch.testing.assert_close(tiled(restore, image, tile=tile, overlap=overlap), restore(image))


def test_tile_arguments_are_checked():
    with pytest.raises(ValueError, match="'tile' must be at least 16"):
        tiled(lambda x: x, torch.rand(1, 3, 20, 20), tile=8)
    with pytest.raises(ValueError, match="'overlap' must be in"):
        tiled(lambda x: x, torch.rand(1, 3, 20, 20), tile=16, overlap=8)


# --- what restore accepts ------------------------------------------------------------------------------


@pytest.mark.parametrize("padding", PADDINGS)
def test_a_3d_image_comes_back_3d(tiny, padding):
    image = torch.rand(3, 40, 56)
    out = tiny.restore(image, padding)  # used to loop forever with padding="official"
    assert out.shape == (3, 40, 56)
    torch.testing.assert_close(out, tiny.restore(image[None], padding)[0])


@pytest.mark.parametrize(
    ("image", "error", "message"),
    [
        (torch.rand(1, 3, 0, 8), ValueError, "batch, height and width of at least 1"),
        (torch.rand(3, 8, 0), ValueError, "batch, height and width of at least 1"),
        (torch.rand(0, 3, 8, 8), ValueError, "batch, height and width of at least 1"),
        (torch.rand(1, 4, 8, 8), ValueError, r"must be \[B, 3, H, W\] or \[3, H, W\]"),
        (torch.rand(8, 8), ValueError, r"must be \[B, 3, H, W\]"),
        (torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8), TypeError, "image.float\\(\\) / 255"),
        (torch.rand(1, 3, 8, 8) * 255, ValueError, r"values in \[0, 1\].*divide by 255"),
        (torch.full((1, 3, 8, 8), float("nan")), ValueError, "NaN or infinite"),
        (np.zeros((8, 8, 3), dtype=np.float32), TypeError, "must be a torch.Tensor"),
    ],
    ids=["zero-height", "zero-width-3d", "empty-batch", "four-channels", "2d", "uint8", "0-255", "nan", "numpy"],
)
def test_bad_images_fail_at_once_with_a_clear_error(tiny, image, error, message):
    with pytest.raises(error, match=message):
        tiny.restore(image)


def test_float16_and_float64_images_are_computed_in_the_model_dtype(tiny):
    image = torch.rand(1, 3, 24, 32)
    reference = tiny.restore(image)
    for dtype in (torch.float16, torch.float64):
        out = tiny.restore(image.to(dtype))
        assert out.dtype == dtype
        torch.testing.assert_close(out, tiny.restore(image.to(dtype).float()).to(dtype), rtol=0, atol=0)
    assert (tiny.restore(image.half()).float() - reference).abs().max() < 0.05


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tiling": "tiles"}, "'tiling' must be one of"),
        ({"overlap": 8}, "'overlap' applies to tiling='approximate' only"),
        ({"tile": 0, "tiling": "exact"}, "'tile' must be an int of at least 16"),
        ({"max_memory": "lots"}, "'max_memory' must look like"),
        ({"tiling": "approximate", "max_memory": "1GB"}, "does not apply to tiling='approximate'"),
        ({"padding": "zeros"}, "'padding' must be one of"),
    ],
)
def test_bad_options_are_named(tiny, options, message):
    with pytest.raises(ValueError, match=message):
        tiny.restore(torch.rand(1, 3, 16, 16), **options)


def test_auto_tiling_follows_the_budget_and_reports_progress(tiny):
    image = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    whole = tiny.restore(image, "reflect")
    calls = []
    roomy = tiny.restore(image, "reflect", max_memory="4GB", progress=lambda *a: calls.append(a))
    assert calls == [(1, 1, "whole image")]
    torch.testing.assert_close(roomy, whole, rtol=0, atol=0)
    calls.clear()
    tight = tiny.restore(image, "reflect", max_memory="200MB", progress=lambda *a: calls.append(a))  # auto: tiles
    assert len(calls) > 1 and calls[-1][0] == calls[-1][1] == len(calls)
    assert [c[0] for c in calls] == list(range(1, len(calls) + 1)) and "tile" in calls[0][2]
    assert (tight - whole).abs().max() < 1e-3


def test_approximate_tiles_only_by_name(tiny):
    image = torch.rand(1, 3, 96, 96)
    whole = tiny.restore(image, "reflect")
    approximate = tiny.restore(image, "reflect", tile=64, tiling="approximate", overlap=16)
    exact = tiny.restore(image, "reflect", tile=64)  # a tile alone means exact tiles
    assert (exact - whole).abs().max() < 1e-3
    assert (approximate - whole).abs().max() > 1e-2  # tile statistics differ from the whole image's


def test_dihedral_copies_are_the_eight_symmetries_and_invert():
    image = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    copies = [dihedral(image, i) for i in range(8)]
    assert len({tuple(c.flatten().tolist()) for c in copies}) == 8  # all different
    assert torch.equal(copies[0], image) and torch.equal(copies[1], image.flip(-1))
    assert torch.equal(copies[3], image.rot90(2, (-2, -1))) and copies[4].shape == (2, 3, 5, 4)
    for i, copy in enumerate(copies):
        assert torch.equal(dihedral(copy, i, inverse=True), image)
    with pytest.raises(ValueError, match="'index' must be in 0..7"):
        dihedral(image, 8)


@pytest.mark.parametrize("copies", [2, 4, 8])
def test_self_ensemble_averages_the_turned_back_restorations(copies):
    image = torch.rand(1, 3, 21, 34, generator=torch.Generator().manual_seed(3))

    def forward(x):  # not equivariant: a ramp along the width, so every copy restores differently
        return x * 0.5 + torch.linspace(0, 1, x.shape[-1]).view(1, 1, 1, -1)

    out = restore(forward, image, "reflect", self_ensemble=copies)
    expected = (
        sum(dihedral(restore(forward, dihedral(image, i), "reflect"), i, inverse=True) for i in range(copies)) / copies
    )
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    assert not torch.allclose(out, restore(forward, image, "reflect"))
    same = restore(lambda x: x, image, "reflect", self_ensemble=copies)  # an identity forward: the image back
    torch.testing.assert_close(same, image, rtol=0, atol=1e-6)


def test_self_ensemble_with_the_model_tiles_progress_and_bad_values(tiny):
    image = torch.rand(3, 40, 24, generator=torch.Generator().manual_seed(4))
    whole = tiny.restore(image, "reflect", self_ensemble=2)
    assert whole.shape == image.shape
    calls = []
    tight = tiny.restore(
        image, "reflect", self_ensemble=2, tiling="exact", tile=24, progress=lambda *a: calls.append(a)
    )
    assert (tight - whole).abs().max() < 1e-3  # exact tiles of every copy
    assert calls[-1][0] == calls[-1][1] and "copy 2/2" in calls[-1][2]
    for bad in (3, 0, True, "8"):
        with pytest.raises(ValueError, match="'self_ensemble' must be one of"):
            tiny.restore(image, self_ensemble=bad)
