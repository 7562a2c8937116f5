"""What a training run shows and leaves behind: a progress bar, scalar logs and image grids.

- :class:`Progress`: tqdm when installed (losses and it/s in the bar), else a plain line every
  ``print_freq`` iterations with the same numbers.
- :class:`ScalarLog`: TensorBoard (``torch.utils.tensorboard``, needs the ``tensorboard`` package)
  when installed and wanted, else ``metrics.csv`` in long format (``iteration,name,value,time``: any
  set of names, appended on resume).
- :func:`save_image_grid`: one PNG with a row per sample: input | output | ground truth.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import sys
import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image


def format_values(values: Mapping[str, float]) -> str:
    return " ".join(f"{name}={value:.4g}" for name, value in values.items())


class Progress:
    """Iteration progress with the latest loss values and iterations per second.

    Args:
        total: last iteration; initial: iteration to start from (resume); enabled: False on ranks > 0;
        use_tqdm: None picks tqdm when installed; print_freq: lines of the plain fallback.
    """

    def __init__(
        self,
        total: int,
        initial: int = 0,
        enabled: bool = True,
        use_tqdm: bool | None = None,
        print_freq: int = 100,
    ) -> None:
        self.total, self.iteration, self.enabled, self.print_freq = total, initial, enabled, max(1, print_freq)
        self._start_time, self._start_iter = time.perf_counter(), initial
        self._bar = None
        if use_tqdm is None:
            use_tqdm = importlib.util.find_spec("tqdm") is not None and sys.stderr.isatty()
        if enabled and use_tqdm:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, dynamic_ncols=True, unit="it")

    @property
    def rate(self) -> float:
        """Iterations per second since this object was made."""
        elapsed = time.perf_counter() - self._start_time
        return (self.iteration - self._start_iter) / elapsed if elapsed > 0 else 0.0

    def update(self, values: Mapping[str, float]) -> None:
        """One more iteration done, with its loss values."""
        self.iteration += 1
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(format_values(values), refresh=False)
            self._bar.update(1)
        elif self.iteration % self.print_freq == 0 or self.iteration == self.total:
            self.write(f"iter {self.iteration}/{self.total} {format_values(values)} ({self.rate:.2f} it/s)")

    def write(self, message: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(message)
        else:
            print(message, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


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


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``[B, 3, H, W]`` float in [0, 1] -> ``[B, H, W, 3]`` uint8 (rounded, clipped)."""
    return images.detach().float().clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


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
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(grid).save(path)
    return grid


def save_png(path: str, image: torch.Tensor) -> None:
    """One ``[3, H, W]`` float image in [0, 1] as an 8-bit PNG."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(to_uint8(image[None])[0]).save(path)
