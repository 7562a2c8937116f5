"""The default model's data: every photograph the project may use (:mod:`vqcnir.data.photos`), degraded into
night photos with the wide :data:`~vqcnir.data.degrade.NIGHT_PARAMS`.

- Training (:class:`NightPhotoDataset`): the training photos are decoded once and kept in memory; sample
  ``i`` of epoch ``e`` takes photo ``i mod P`` at a random scale (downscaling by up to 2x sharpens and
  varies the content), a random crop, flips and rotations, and a fresh degradation, all drawn from
  ``sample_rng(seed, e, i)``: the same (seed, epoch, index) gives the same bytes, with or without workers.
- Held out (:func:`build_night_set`): the held-out photos (whole, never cropped for training), each degraded
  with several draws, written once as a paired folder in the cache (named after a digest of its manifest,
  built in a staging folder and renamed into place, never modified afterwards), so every evaluation and
  every checkpoint's validation scores the same pairs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from vqcnir.io import StagingFolder, remove_stale, write_json

from .augment import AugmentConfig, augment_images
from .degrade import NIGHT_PARAMS, NightBlurParams, degrade
from .demo import NOTICE_PATH, default_cache_dir
from .folders import to_tensor
from .io import read_rgb
from .photos import Photo, find_photos, missing_packages
from .seeding import sample_rng
from .synthetic import synthesize_pairs

FORMAT_VERSION = 1


class NightPhotoDataset(Dataset):
    """Night/sharp training pairs made on the fly from in-memory photos.

    Args:
        photos: the photos to learn from (default: the training split of :func:`find_photos`).
        crop_size: side of the square crops (default 128).
        params: the degradation (default :data:`NIGHT_PARAMS`).
        repeats: samples per photo and epoch (default 64).
        scale_range: photos are resized by a factor drawn from this range before cropping (default (0.5, 1.0)).
        degrade_inputs: False gives clean crops as ``lq`` too (stage 1 learns from sharp photos only, and
            skips the degradation's cost).
        seed: seed of the per-sample draws.

    Example:
        >>> train = NightPhotoDataset(crop_size=96)  # doctest: +SKIP
        >>> train.set_epoch(3); train[5]["lq"].shape  # doctest: +SKIP
        torch.Size([3, 96, 96])
    """

    def __init__(
        self,
        photos: Sequence[Photo] | None = None,
        *,
        crop_size: int = 128,
        params: NightBlurParams = NIGHT_PARAMS,
        repeats: int = 64,
        scale_range: tuple[float, float] = (0.5, 1.0),
        degrade_inputs: bool = True,
        seed: int = 0,
    ) -> None:
        if isinstance(crop_size, bool) or not isinstance(crop_size, int) or crop_size < 8:
            raise ValueError(f"argument 'crop_size' must be an integer >= 8, got {crop_size!r}")
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise ValueError(f"argument 'repeats' must be an integer >= 1, got {repeats!r}")
        if not 0 < scale_range[0] <= scale_range[1] <= 1:
            raise ValueError(f"argument 'scale_range' must satisfy 0 < low <= high <= 1, got {scale_range}")
        chosen = [p for p in find_photos() if p.split == "train"] if photos is None else list(photos)
        if not chosen:
            raise ValueError("argument 'photos': no photos to learn from")
        self.photos = chosen
        self.images = [read_rgb(photo.path) for photo in chosen]
        small = [p.name for p, im in zip(chosen, self.images, strict=True) if min(im.shape[:2]) < crop_size]
        if small:
            raise ValueError(f"photos {small} are smaller than crop_size {crop_size}")
        self.crop_size, self.params, self.repeats = crop_size, params, repeats
        self.scale_range, self.degrade_inputs, self.seed = scale_range, degrade_inputs, seed
        self.epoch = 0
        self._augment = AugmentConfig(crop_size=None)  # flips and rotations; the crop is taken here

    def __len__(self) -> int:
        return len(self.images) * self.repeats

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def crop(self, index: int, rng: np.random.Generator) -> np.ndarray:
        """The sharp ``[crop, crop, 3]`` uint8 crop of sample ``index`` (scale, place, flips, rotation)."""
        image = self.images[index % len(self.images)]
        height, width = image.shape[:2]
        scale, top_draw, left_draw = rng.uniform(size=3)
        scale = self.scale_range[0] + scale * (self.scale_range[1] - self.scale_range[0])
        side = min(height, width, max(self.crop_size, round(self.crop_size / scale)))
        top, left = int(top_draw * (height - side + 1)), int(left_draw * (width - side + 1))
        patch = image[top : top + side, left : left + side]
        if side != self.crop_size:  # area-averaging downscale: no aliasing, sharper than the original
            patch = np.asarray(Image.fromarray(patch).resize((self.crop_size,) * 2, Image.Resampling.BOX))
        (patch,) = augment_images([patch], rng, self._augment)
        return patch

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        rng = sample_rng(self.seed, self.epoch, index)
        sharp = self.crop(index, rng)
        low = degrade(sharp, rng, self.params) if self.degrade_inputs else sharp
        name = self.photos[index % len(self.photos)].name
        return {"lq": to_tensor(low), "gt": to_tensor(sharp), "lq_path": name, "gt_path": name}


@dataclass(frozen=True)
class NightSet:
    """Where the held-out night pairs are (``test/lq``, ``test/gt``) and what made them."""

    root: str
    test: str
    num_test: int
    photos: tuple[str, ...]


def build_night_set(
    cache_dir: str | None = None,
    *,
    draws: int = 6,
    max_side: int = 512,
    seed: int = 0,
    params: NightBlurParams = NIGHT_PARAMS,
) -> NightSet:
    """Write (or reuse) the held-out night pairs: each held-out photo (resized so its long side is at most
    ``max_side``) degraded ``draws`` times, as ``<root>/test/{lq,gt}/<photo>_<k>.png``.

    Example:
        >>> held_out = build_night_set()  # doctest: +SKIP
        >>> PairedFolderDataset(f"{held_out.test}/lq", f"{held_out.test}/gt")  # doctest: +SKIP
    """
    for name, value, low in (("draws", draws, 1), ("max_side", max_side, 16), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"argument '{name}' must be an integer >= {low}, got {value!r}")
    photos = [p for p in find_photos() if p.split == "test"]
    manifest = {
        "format_version": FORMAT_VERSION,
        "draws": draws,
        "max_side": max_side,
        "seed": seed,
        "params": params.to_dict(),
        "photos": [p.name for p in photos],
    }
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:12]
    parent = cache_dir or default_cache_dir()
    root = os.path.join(parent, f"night-heldout-s{seed}-{digest}")
    if not os.path.isdir(root):
        remove_stale(parent)
        with StagingFolder(parent) as staging:
            images = []
            for photo in photos:
                sharp = fit_side(read_rgb(photo.path), max_side)
                images.extend((f"{photo.name}_{k}", sharp) for k in range(draws))
            synthesize_pairs(images, os.path.join(staging.path, "test"), params, seed, stream=1)
            shutil.copyfile(NOTICE_PATH, os.path.join(staging.path, "NOTICE"))
            write_json(os.path.join(staging.path, "manifest.json"), {**manifest, "num_test": len(images)})
            staging.publish(root)
    names = tuple(p.name for p in photos)
    return NightSet(root=root, test=os.path.join(root, "test"), num_test=len(photos) * draws, photos=names)


def fit_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` downscaled (Lanczos) so that its long side is at most ``max_side``, sides multiples of 8."""
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    size = (max(8, int(width * scale) // 8 * 8), max(8, int(height * scale) // 8 * 8))
    if size == (width, height):
        return image
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def describe_sources() -> str:
    """One line: the photos used for training and held out, and optional packages that would add more."""
    photos = find_photos()
    train = [p.name for p in photos if p.split == "train"]
    test = [p.name for p in photos if p.split == "test"]
    line = f"{len(train)} training photos ({', '.join(train)}); held out: {', '.join(test)}"
    missing = missing_packages()
    return line + (f"; not installed: {', '.join(missing)}" if missing else "")

