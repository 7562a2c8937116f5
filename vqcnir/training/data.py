"""Datasets from recipe options, and a batch stream that can stop and resume at any batch.

The order of epoch ``e`` is a permutation drawn from ``(seed, e)`` alone, each rank takes every
``world_size``-th index of it, and the samples' own random draws (crops, flips, degradations) come from
``sample_rng(seed, epoch, index)`` via ``dataset.set_epoch``. So the batches after a given
``(epoch, batch)`` position are the same whether a run went straight through or was resumed there,
with or without DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vqcnir.data import (
    AugmentConfig,
    LOLBlurDataset,
    PairedFolderDataset,
    SyntheticNightBlurDataset,
    build_demo_set,
)
from vqcnir.data.night import NightPhotoDataset, build_night_set, describe_sources
from vqcnir.data.photos import missing_packages

from .config import DatasetOptions
from .options import OptionsError


def build_dataset(options: DatasetOptions, train: bool, seed: int) -> Dataset:
    """The dataset named by ``options`` (augmented with random crops/flips/rotations when ``train``)."""
    augment = None
    if train:
        augment = AugmentConfig(
            crop_size=options.gt_size or None,
            hflip=options.use_flip,
            vflip=options.use_flip,
            rotate=options.use_rot,
        )
    if options.type == "demo":
        demo = build_demo_set()
        folder = demo.train if options.split == "train" else demo.test
        return PairedFolderDataset(f"{folder}/lq", f"{folder}/gt", augment, seed)
    if options.type == "night":
        if options.split == "train":
            if not train or not options.gt_size:
                raise ValueError("dataset type 'night' with split 'train' makes random crops: set gt_size >= 8")
            missing = missing_packages()
            if options.all_photos and missing:
                raise OptionsError(
                    f"datasets.train.all_photos is set but packages with training photos are missing "
                    f"({describe_sources()}): install them with `bash scripts/install.sh photos` (or pip install "
                    f"{' '.join(missing)}), or set all_photos to false to train on fewer photos"
                )
            return NightPhotoDataset(crop_size=options.gt_size, degrade_inputs=options.degrade, seed=seed)
        held_out = build_night_set()
        return PairedFolderDataset(f"{held_out.test}/lq", f"{held_out.test}/gt", augment, seed)
    if options.type == "lolblur":
        _require(options, "dataroot")
        return LOLBlurDataset(options.dataroot, options.split, options.lq_folder, options.gt_folder, augment, seed)
    if options.type == "paired":
        _require(options, "dataroot_lq", "dataroot_gt")
        return PairedFolderDataset(options.dataroot_lq, options.dataroot_gt, augment, seed)
    _require(options, "dataroot")
    return SyntheticNightBlurDataset(options.dataroot, augment=augment, seed=seed)


def _require(options: DatasetOptions, *names: str) -> None:
    missing = [name for name in names if not getattr(options, name)]
    if missing:
        raise ValueError(
            f"dataset type {options.type!r} needs {', '.join(missing)} (e.g. --datasets.train.{missing[0]}=...)"
        )


class EpochSampler(Sampler[int]):
    """Shuffled (or ordered) indices of one epoch for one rank, starting after ``skip`` of them.

    The permutation depends only on ``(seed, epoch)``; rank ``r`` of ``world_size`` takes positions
    ``r, r + world_size, ...`` of it (padded by wrapping so every rank gets the same count).
    """

    def __init__(self, size: int, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1) -> None:
        if size < 1:
            raise ValueError("the dataset is empty")
        self.size, self.seed, self.shuffle, self.rank, self.world_size = size, seed, shuffle, rank, world_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def indices(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        per_rank = -(-self.size // self.world_size)
        order = (order * (per_rank * self.world_size // self.size + 1))[: per_rank * self.world_size]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.skip :])

    def __len__(self) -> int:
        return max(0, -(-self.size // self.world_size) - self.skip)


@dataclass
class DataPosition:
    """Where the batch stream is: ``batch`` batches of ``epoch`` consumed so far."""

    epoch: int = 0
    batch: int = 0


def batch_stream(
    dataset: Dataset,
    batch_size: int,
    num_workers: int,
    seed: int,
    position: DataPosition,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> Iterator[dict]:
    """Endless training batches (full batches only) from ``position`` on; updates ``position`` as it yields.

    A fresh DataLoader is made per epoch (workers see ``set_epoch``); its base seed comes from its own
    generator, so creating it never consumes the global torch RNG.
    """
    sampler = EpochSampler(len(dataset), seed, shuffle=True, rank=rank, world_size=world_size)
    per_epoch = len(sampler) // batch_size
    if per_epoch < 1:
        raise ValueError(
            f"{len(dataset)} training samples on {world_size} process(es) do not fill one batch of {batch_size}: "
            "lower datasets.train.batch_size_per_gpu"
        )
    while True:
        if position.batch >= per_epoch:
            position.epoch, position.batch = position.epoch + 1, 0
        sampler.set_epoch(position.epoch, skip=position.batch * batch_size)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(position.epoch)
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=num_workers,
            drop_last=True,
            pin_memory=pin_memory,
            generator=torch.Generator().manual_seed(seed + position.epoch),
        )
        for batch in loader:
            position.batch += 1
            yield batch
