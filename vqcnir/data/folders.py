"""Datasets over folders of images: paired (input / ground truth matched by relative path) and unpaired.

Samples are dicts in the BasicSR convention: ``lq`` (input) and ``gt`` (target) as float32 tensors
``[3, H, W]`` in [0, 1], with ``lq_path`` / ``gt_path``. Files are read when a sample is requested,
never all at once. An unreadable file is reported once (:class:`UnreadableImageWarning`, naming it),
counted in ``num_skipped`` / ``skipped_paths`` (also for files read by DataLoader workers) and
replaced by the next readable sample, so an epoch never stops on one bad file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .augment import AugmentConfig, augment_images
from .io import SkipLog, UnreadableImageError, list_images, read_rgb, warn_skipped
from .seeding import sample_rng

_SHOW = 5  # unmatched names listed in a pairing error


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """``[H, W, 3]`` uint8 -> ``[3, H, W]`` float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)


def pair_by_relative_path(lq_root: str, gt_root: str) -> list[tuple[str, str]]:
    """Match the images under two folders by relative path without extension, sorted by that path.

    Raises ValueError naming the first unmatched files on each side (never pairs by listing order).
    """
    sides = {}
    for name, root in (("lq_root", lq_root), ("gt_root", gt_root)):
        files = list_images(root)
        if not files:
            raise ValueError(f"argument '{name}': no images under {root}")
        keyed: dict[str, str] = {}
        for rel in files:
            key = os.path.splitext(rel)[0]
            if key in keyed:
                raise ValueError(f"argument '{name}': {keyed[key]} and {rel} differ only in extension")
            keyed[key] = rel
        sides[name] = keyed
    lq, gt = sides["lq_root"], sides["gt_root"]
    only_lq, only_gt = sorted(lq.keys() - gt.keys()), sorted(gt.keys() - lq.keys())
    if only_lq or only_gt:
        lines = [f"cannot pair {lq_root} with {gt_root} by relative path:"]
        for side, root, missing, names in (("input", lq_root, only_lq, lq), ("target", gt_root, only_gt, gt)):
            if missing:
                shown = ", ".join(names[k] for k in missing[:_SHOW])
                more = f" (+{len(missing) - _SHOW} more)" if len(missing) > _SHOW else ""
                lines.append(f"  {len(missing)} {side} file(s) in {root} without a match: {shown}{more}")
        raise ValueError("\n".join(lines))
    return [(os.path.join(lq_root, lq[k]), os.path.join(gt_root, gt[k])) for k in sorted(lq)]


class ImageSampleDataset(Dataset):
    """Base of the folder datasets: per-sample seeded augmentation and skipping of unreadable files.

    Subclasses set ``self.samples`` (a list of path tuples) and implement ``_load(paths, rng)``.
    The random draws of sample ``i`` come from ``sample_rng(seed, epoch, i)``: call ``set_epoch`` at
    the start of each epoch for fresh crops that are still reproducible (also across workers, resume).
    """

    samples: Sequence[tuple[str, ...]]

    def __init__(self, augment: AugmentConfig | None, seed: int) -> None:
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self._skips = SkipLog(len(self.samples))

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def num_skipped(self) -> int:
        """Number of samples skipped so far because a file was unreadable (all workers)."""
        return len(self._skips.indices())

    @property
    def skipped_paths(self) -> list[str]:
        """Files of the skipped samples."""
        return [path for i in self._skips.indices() for path in self.samples[i]]

    def _load(self, paths: tuple[str, ...], rng: np.random.Generator) -> dict:
        raise NotImplementedError

    def _augment(self, images: list[np.ndarray], rng: np.random.Generator, paths: Sequence[str]) -> list[np.ndarray]:
        if self.augment is None:
            return images
        return augment_images(images, rng, self.augment, paths)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        for step in range(len(self)):
            current = (index + step) % len(self)
            if current in self._skips:
                continue
            try:
                return self._load(self.samples[current], sample_rng(self.seed, self.epoch, index))
            except UnreadableImageError as error:
                self._skips.mark(current)
                warn_skipped(error)
        raise RuntimeError(f"{type(self).__name__}: no readable sample left ({self.num_skipped} skipped)")


def read_pair(lq_path: str, gt_path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read an input/target pair; a size mismatch is reported like an unreadable file."""
    lq, gt = read_rgb(lq_path), read_rgb(gt_path)
    if lq.shape != gt.shape:
        raise UnreadableImageError(lq_path, f"size {lq.shape[:2]} differs from its target {gt_path} {gt.shape[:2]}")
    return lq, gt


class PairedFolderDataset(ImageSampleDataset):
    """Input/target pairs from two folders, matched by relative path (extension ignored), sorted.

    Args:
        lq_root: folder of inputs (low-light, blurred), searched recursively.
        gt_root: folder of targets with the same relative paths.
        augment: :class:`AugmentConfig` for training; None (default) returns whole images.
        seed: seed of the per-sample random draws (default 0).

    Example:
        >>> ds = PairedFolderDataset("pairs/low", "pairs/high", AugmentConfig(crop_size=128))  # doctest: +SKIP
        >>> ds[0]["lq"].shape  # doctest: +SKIP
        torch.Size([3, 128, 128])
    """

    def __init__(self, lq_root: str, gt_root: str, augment: AugmentConfig | None = None, seed: int = 0) -> None:
        self.lq_root, self.gt_root = os.fspath(lq_root), os.fspath(gt_root)
        self.samples = pair_by_relative_path(self.lq_root, self.gt_root)
        super().__init__(augment, seed)

    def _load(self, paths: tuple[str, ...], rng: np.random.Generator) -> dict:
        lq_path, gt_path = paths
        lq, gt = self._augment(list(read_pair(lq_path, gt_path)), rng, paths)
        return {"lq": to_tensor(lq), "gt": to_tensor(gt), "lq_path": lq_path, "gt_path": gt_path}


class ImageFolderDataset(ImageSampleDataset):
    """Unpaired images under one folder (recursive, sorted): your own photos, or a test set without targets.

    Samples are ``{"lq": [3, H, W] float32, "lq_path": str}``.

    Example:
        >>> ds = ImageFolderDataset("my_night_photos")  # doctest: +SKIP
    """

    def __init__(self, root: str, augment: AugmentConfig | None = None, seed: int = 0) -> None:
        self.root = os.fspath(root)
        files = list_images(self.root)
        if not files:
            raise ValueError(f"argument 'root': no images under {self.root}")
        self.samples = [(os.path.join(self.root, rel),) for rel in files]
        super().__init__(augment, seed)

    def _load(self, paths: tuple[str, ...], rng: np.random.Generator) -> dict:
        (image,) = self._augment([read_rgb(paths[0])], rng, paths)
        return {"lq": to_tensor(image), "lq_path": paths[0]}
