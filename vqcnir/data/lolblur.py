"""LOL-Blur (Zhou et al., LEDNet, ECCV 2022) and Real-LOL-Blur.

LOL-Blur as released: ``<root>/{train,test}/<folder>/<video>/<frame>.png`` with the folders
``low_blur``, ``low_blur_noise``, ``low_sharp``, ``high_sharp_scaled``, ``high_sharp_original``
(170 train / 30 test videos of 60 frames). The standard protocol, used by VQCNIR's published numbers,
pairs ``low_blur_noise`` (input) with ``high_sharp_scaled`` (target). Real-LOL-Blur has real night
photos without targets: every image under its root is an input.
"""

from __future__ import annotations

import os

from .augment import AugmentConfig
from .folders import ImageFolderDataset, PairedFolderDataset

LOLBLUR_FOLDERS = ("low_blur", "low_blur_noise", "low_sharp", "high_sharp_scaled", "high_sharp_original")
LOLBLUR_SPLITS = ("train", "test")


class LOLBlurDataset(PairedFolderDataset):
    """LOL-Blur pairs of one split, matched by ``<video>/<frame>`` and sorted.

    Args:
        root: the dataset folder holding ``train/`` and ``test/``.
        split: "train" or "test".
        lq_folder: input folder (default "low_blur_noise"); any of :data:`LOLBLUR_FOLDERS`.
        gt_folder: target folder (default "high_sharp_scaled").
        augment: :class:`AugmentConfig` (default None: whole frames; training uses ``AugmentConfig()``).
        seed: seed of the per-sample random draws.

    Example:
        >>> train = LOLBlurDataset("datasets/LOL-Blur", "train", augment=AugmentConfig())  # doctest: +SKIP
    """

    def __init__(
        self,
        root: str,
        split: str = "train",
        lq_folder: str = "low_blur_noise",
        gt_folder: str = "high_sharp_scaled",
        augment: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        if split not in LOLBLUR_SPLITS:
            raise ValueError(f"argument 'split' must be one of {LOLBLUR_SPLITS}, got {split!r}")
        for name, folder in (("lq_folder", lq_folder), ("gt_folder", gt_folder)):
            if folder not in LOLBLUR_FOLDERS:
                raise ValueError(f"argument '{name}' must be one of {LOLBLUR_FOLDERS}, got {folder!r}")
        base = os.path.join(os.fspath(root), split)
        for folder in (lq_folder, gt_folder):
            if not os.path.isdir(os.path.join(base, folder)):
                present = sorted(os.listdir(base)) if os.path.isdir(base) else []
                raise FileNotFoundError(
                    f"LOL-Blur folder {os.path.join(base, folder)} not found (expected "
                    f"<root>/{split}/<{'|'.join(LOLBLUR_FOLDERS)}>/<video>/<frame>.png; {base} holds {present})"
                )
        self.split = split
        super().__init__(os.path.join(base, lq_folder), os.path.join(base, gt_folder), augment, seed)


class RealLOLBlurDataset(ImageFolderDataset):
    """Real-LOL-Blur: real night photos (inputs only, for no-reference metrics), every image under ``root``."""
