"""Data for training and evaluating VQCNIR: LOL-Blur and folder datasets, paired augmentation, the
synthetic night-blur degradation, and a small real-photo demo set.

Samples are dicts ``{"lq": [3, H, W] float32 in [0, 1], "gt": ..., "lq_path": str, "gt_path": str}``
(no ``gt`` for unpaired sets). Datasets read files lazily, work with DataLoader workers, skip and count
unreadable files, and draw every random value from ``sample_rng(seed, epoch, index)``.
"""

from .augment import AugmentConfig, augment_images
from .degrade import DegradationDraw, NightBlurParams, degrade, draw_degradation
from .demo import DemoSet, build_demo_set, default_cache_dir
from .folders import ImageFolderDataset, PairedFolderDataset, pair_by_relative_path
from .io import IMAGE_EXTENSIONS, UnreadableImageError, UnreadableImageWarning, list_images, read_rgb
from .kernels import sample_shake_kernel
from .lolblur import LOLBLUR_FOLDERS, LOLBlurDataset, RealLOLBlurDataset
from .seeding import sample_rng
from .synthetic import SyntheticNightBlurDataset, synthesize_folder, synthesize_pairs

__all__ = [
    "IMAGE_EXTENSIONS",
    "LOLBLUR_FOLDERS",
    "AugmentConfig",
    "DegradationDraw",
    "DemoSet",
    "ImageFolderDataset",
    "LOLBlurDataset",
    "NightBlurParams",
    "PairedFolderDataset",
    "RealLOLBlurDataset",
    "SyntheticNightBlurDataset",
    "UnreadableImageError",
    "UnreadableImageWarning",
    "augment_images",
    "build_demo_set",
    "default_cache_dir",
    "degrade",
    "draw_degradation",
    "list_images",
    "pair_by_relative_path",
    "read_rgb",
    "sample_rng",
    "sample_shake_kernel",
    "synthesize_folder",
    "synthesize_pairs",
]
