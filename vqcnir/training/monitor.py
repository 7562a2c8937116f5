"""What a training run leaves behind besides checkpoints: scalar logs and image grids.

(The progress bar is :class:`vqcnir.progress.Progress`.)

- :class:`ScalarLog`: TensorBoard (``torch.utils.tensorboard``, needs the ``tensorboard`` package)
  when installed and wanted, else ``metrics.csv`` in long format (``iteration,name,value,time``: any
  set of names, appended on resume).
- :func:`save_image_grid`: one PNG with a row per sample: input | output | ground truth.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from vqcnir.io import to_uint8, write_png


class ScalarLog:
    """Scalars (and image grids, TensorBoard only) by iteration; ``backend`` says which is used."""

    def __init__(self, directory: str, use_tensorboard: bool = True, enabled: bool = True) -> None:
        self.directory, self.enabled, self._tb, self._csv = directory, enabled, None, None
        self.backend = "none"
        if not enabled:
            return
        os.makedirs(directory, exist_ok=True)
        if use_tensorboard and importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb, self.backend = SummaryWriter(directory), "tensorboard"
        else:
            path = os.path.join(directory, "metrics.csv")
            new = not os.path.isfile(path)
            self._file = open(path, "a", newline="")  # noqa: SIM115 - closed in close()
            self._csv, self.backend = csv.writer(self._file), "csv"
            if new:
                self._csv.writerow(["iteration", "name", "value", "time"])

    def scalars(self, iteration: int, values: Mapping[str, float]) -> None:
        if self._tb is not None:
            for name, value in values.items():
                self._tb.add_scalar(name, value, iteration)
        elif self._csv is not None:
            now = f"{time.time():.3f}"
            self._csv.writerows([iteration, name, repr(float(value)), now] for name, value in values.items())
            self._file.flush()

    def image(self, tag: str, iteration: int, grid: np.ndarray) -> None:
        if self._tb is not None:
            self._tb.add_image(tag, grid, iteration, dataformats="HWC")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._csv is not None:
            self._file.close()
            self._csv = None


def image_grid(columns: Sequence[torch.Tensor], max_rows: int = 4, gap: int = 2) -> np.ndarray:
    """``[H', W', 3]`` uint8 grid: one row per sample (at most ``max_rows``), one column per tensor."""
    blocks = [to_uint8(c[:max_rows]) for c in columns]
    rows, height, width = blocks[0].shape[:3]
    grid = np.full((rows * (height + gap) - gap, len(blocks) * (width + gap) - gap, 3), 255, np.uint8)
    for c, block in enumerate(blocks):
        for r in range(rows):
            grid[r * (height + gap) : r * (height + gap) + height, c * (width + gap) : c * (width + gap) + width] = (
                block[r]
            )
    return grid


def save_image_grid(path: str, columns: Sequence[torch.Tensor], max_rows: int = 4) -> np.ndarray:
    """Write :func:`image_grid` of ``columns`` (e.g. input, output, ground truth) as a PNG; returns it."""
    grid = image_grid(columns, max_rows)
    write_png(path, grid)
    return grid
