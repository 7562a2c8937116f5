"""Paired training data from sharp, well-lit photos through the night-blur degradation.

Either on the fly (:class:`SyntheticNightBlurDataset`: crop first, then degrade the crop; a new
degradation every epoch, reproducible from (seed, epoch, index)) or written once to disk
(:func:`synthesize_pairs`, :func:`synthesize_folder`: ``<out>/lq/<name>.png`` and ``<out>/gt/<name>.png``,
readable with :class:`~vqcnir.data.folders.PairedFolderDataset`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from vqcnir.io import write_png

from .augment import AugmentConfig
from .degrade import NightBlurParams, degrade
from .folders import ImageFolderDataset, to_tensor
from .io import UnreadableImageError, list_images, read_rgb, warn_skipped
from .seeding import sample_rng


class SyntheticNightBlurDataset(ImageFolderDataset):
    """Sharp photos under ``root`` as targets, their night-blurred versions as inputs, made on the fly.

    Args:
        root: folder of sharp photos (recursive).
        params: :class:`NightBlurParams` (default: the documented LOL-Blur-like ranges).
        augment: applied to the sharp photo before degrading (default ``AugmentConfig()``: 256 crops).
        seed: seed of the per-sample draws (crop, flips and degradation).

    Example:
        >>> ds = SyntheticNightBlurDataset("my_sharp_photos", augment=AugmentConfig(crop_size=128))  # doctest: +SKIP
    """

    def __init__(
        self,
        root: str,
        params: NightBlurParams | None = None,
        augment: AugmentConfig | None = AugmentConfig(),  # noqa: B008 (frozen dataclass)
        seed: int = 0,
    ) -> None:
        self.params = params or NightBlurParams()
        super().__init__(root, augment, seed)

    def _load(self, paths: tuple[str, ...], rng: np.random.Generator) -> dict:
        (sharp,) = self._augment([read_rgb(paths[0])], rng, paths)
        low = degrade(sharp, rng, self.params)
        return {"lq": to_tensor(low), "gt": to_tensor(sharp), "lq_path": paths[0], "gt_path": paths[0]}


def synthesize_pairs(
    images: Iterable[tuple[str, np.ndarray]],
    out_root: str,
    params: NightBlurParams | None = None,
    seed: int = 0,
    *,
    stream: int = 0,
) -> list[str]:
    """Degrade ``(name, [H, W, 3] uint8)`` images and write ``<out_root>/{lq,gt}/<name>.png``.

    Image ``i`` uses ``sample_rng(seed, stream, i)``: the same inputs, order, params, seed and stream
    give identical files (use one ``stream`` per split for independent draws).
    Returns the names written.
    """
    params = params or NightBlurParams()
    names = []
    for index, (name, sharp) in enumerate(images):
        low = degrade(sharp, sample_rng(seed, stream, index), params)
        write_png(os.path.join(out_root, "gt", f"{name}.png"), sharp)
        write_png(os.path.join(out_root, "lq", f"{name}.png"), low)
        names.append(name)
    return names


def synthesize_folder(
    src_root: str, out_root: str, params: NightBlurParams | None = None, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Turn every sharp photo under ``src_root`` into a pair under ``out_root`` (same relative paths, PNG).

    Unreadable files are reported and skipped. Returns (names written, unreadable paths).
    """

    def readable() -> Iterable[tuple[str, np.ndarray]]:
        for rel in list_images(src_root):
            path = os.path.join(src_root, rel)
            try:
                yield os.path.splitext(rel)[0], read_rgb(path)
            except UnreadableImageError as error:
                skipped.append(path)
                warn_skipped(error)

    skipped: list[str] = []
    return synthesize_pairs(readable(), out_root, params, seed), skipped
