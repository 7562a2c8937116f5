"""Paired augmentation as in the VQCNIR/LEDNet training: one random crop taken at the same place in
every image of a sample, horizontal/vertical flips and 90/180/270-degree rotations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings.

    Attributes:
        crop_size: side of the square random crop in pixels (default 256, the paper's); None keeps the whole image.
        hflip: random horizontal flip, p = 0.5 (default True).
        vflip: random vertical flip, p = 0.5 (default True).
        rotate: random rotation by 0/90/180/270 degrees, uniform (default True).
        pad_if_smaller: an image smaller than ``crop_size`` is padded by mirroring its border (True) or
            raises ValueError naming the file (False, default): padding silently teaches mirrored content.
    """

    crop_size: int | None = 256
    hflip: bool = True
    vflip: bool = True
    rotate: bool = True
    pad_if_smaller: bool = False

    def __post_init__(self) -> None:
        if self.crop_size is not None and (not isinstance(self.crop_size, int) or self.crop_size < 1):
            raise ValueError(f"AugmentConfig.crop_size must be a positive int or None, got {self.crop_size!r}")


def augment_images(
    images: Sequence[np.ndarray],
    rng: np.random.Generator,
    config: AugmentConfig,
    paths: Sequence[str] = (),
) -> list[np.ndarray]:
    """Apply one random crop/flip/rotation to every ``[H, W, C]`` image of a sample (all the same size).

    Draws a fixed number of values from ``rng`` whatever the settings, so turning one option off does
    not change the others' draws.

    Example:
        >>> a = np.arange(300 * 300 * 3, dtype=np.uint8).reshape(300, 300, 3)
        >>> x, y = augment_images([a, a.copy()], np.random.default_rng(0), AugmentConfig(crop_size=64))
        >>> x.shape, bool((x == y).all())
        ((64, 64, 3), True)
    """
    shapes = {im.shape[:2] for im in images}
    if len(shapes) != 1:
        raise ValueError(f"images of one sample must have the same size, got {[im.shape for im in images]}")
    height, width = shapes.pop()
    crop = config.crop_size
    y_draw, x_draw, h_draw, v_draw = rng.uniform(size=4)
    turns = int(rng.integers(4))
    out = list(images)
    if crop is not None:
        if height < crop or width < crop:
            if not config.pad_if_smaller:
                where = f" ({', '.join(paths)})" if paths else ""
                raise ValueError(
                    f"image{where} is {height}x{width}, smaller than crop_size {crop}: use a smaller crop_size "
                    "or AugmentConfig(pad_if_smaller=True)"
                )
            pad = ((0, max(0, crop - height)), (0, max(0, crop - width)), (0, 0))
            out = [np.pad(im, pad, mode="symmetric") for im in out]
            height, width = out[0].shape[:2]
        top = int(y_draw * (height - crop + 1))
        left = int(x_draw * (width - crop + 1))
        out = [im[top : top + crop, left : left + crop] for im in out]
    if config.hflip and h_draw < 0.5:
        out = [im[:, ::-1] for im in out]
    if config.vflip and v_draw < 0.5:
        out = [im[::-1] for im in out]
    if config.rotate and turns:
        out = [np.rot90(im, turns, axes=(0, 1)) for im in out]
    return [np.ascontiguousarray(im) for im in out]
