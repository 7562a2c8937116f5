"""Padding and tiled inference: sizes round-trip, blending reproduces pointwise restorers exactly."""

from __future__ import annotations

import pytest
import torch

from vqcnir.inference import pad_official, pad_reflect, padded, tiled


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
