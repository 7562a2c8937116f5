"""Paired augmentation: crops at the same place, rigid flips/rotations, reproducible, small images."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.data.images import coordinate_image
from vqcnir.data import AugmentConfig, augment_images, sample_rng


@given(
    height=st.integers(8, 60),
    width=st.integers(8, 60),
    crop=st.integers(1, 8),
    seed=st.integers(0, 2**31),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans()),
)
def test_pair_stays_aligned_and_rigid(height, width, crop, seed, flags):
    hflip, vflip, rotate = flags
    config = AugmentConfig(crop_size=crop, hflip=hflip, vflip=vflip, rotate=rotate)
    gt = coordinate_image(height, width)
    lq = 255 - gt
    out_gt, out_lq = augment_images([gt, lq], np.random.default_rng(seed), config)
    assert out_gt.shape == (crop, crop, 3) and out_gt.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out_lq, 255 - out_gt)  # same crop, same transform
    rows, cols = out_gt[..., 0].astype(int), out_gt[..., 1].astype(int)
    # a crop of the position code under a rigid transform: a crop x crop block of distinct positions
    assert rows.max() - rows.min() == crop - 1 and cols.max() - cols.min() == crop - 1
    assert len({(r, c) for r, c in zip(rows.ravel(), cols.ravel(), strict=True)}) == crop * crop
    if crop > 1:  # neighbours stay neighbours
        assert (np.abs(np.diff(rows, axis=1)) + np.abs(np.diff(cols, axis=1)) == 1).all()


def test_every_transform_is_reached_and_reproducible():
    image = coordinate_image(5, 5)
    seen = set()
    for seed in range(200):
        (out,) = augment_images([image], sample_rng(0, seed), AugmentConfig(crop_size=None))
        (again,) = augment_images([image], sample_rng(0, seed), AugmentConfig(crop_size=None))
        np.testing.assert_array_equal(out, again)
        seen.add(out.tobytes())
    assert len(seen) == 8  # the 8 symmetries of the square (flips x rotations)


def test_disabled_options_keep_image_and_crop_positions():
    image = coordinate_image(40, 50)
    plain = AugmentConfig(crop_size=16, hflip=False, vflip=False, rotate=False)
    corners = set()
    for seed in range(100):
        (out,) = augment_images([image], np.random.default_rng(seed), plain)
        assert (np.diff(out[..., 1].astype(int), axis=1) == 1).all() and (
            np.diff(out[..., 0].astype(int), axis=0) == 1
        ).all()
        corners.add((int(out[0, 0, 0]), int(out[0, 0, 1])))
    rows, cols = zip(*corners, strict=True)
    assert min(rows) == 0 and max(rows) <= 24 and min(cols) == 0 and max(cols) <= 34 and len(corners) > 50
    (whole,) = augment_images(
        [image], np.random.default_rng(0), AugmentConfig(crop_size=None, hflip=False, vflip=False, rotate=False)
    )
    np.testing.assert_array_equal(whole, image)


def test_small_image_raises_or_pads():
    image = coordinate_image(10, 30)
    with pytest.raises(ValueError, match=r"photo.png\) is 10x30, smaller than crop_size 16"):
        augment_images([image], np.random.default_rng(0), AugmentConfig(crop_size=16), paths=["photo.png"])
    padded = AugmentConfig(crop_size=16, pad_if_smaller=True, hflip=False, vflip=False, rotate=False)
    (out,) = augment_images([image], np.random.default_rng(0), padded)
    assert out.shape == (16, 16, 3)
    np.testing.assert_array_equal(out[10:12, :, 0], out[9:7:-1, :, 0])  # mirrored border rows


def test_bad_config_and_mismatched_sizes():
    with pytest.raises(ValueError, match="crop_size"):
        AugmentConfig(crop_size=0)
    with pytest.raises(ValueError, match="same size"):
        augment_images([coordinate_image(8, 8), coordinate_image(8, 9)], np.random.default_rng(0), AugmentConfig(4))
