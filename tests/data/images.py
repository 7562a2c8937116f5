"""Small generated image files for the data tests."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image


def random_rgb(rng: np.random.Generator, height: int = 24, width: int = 32) -> np.ndarray:
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def write(path: os.PathLike | str, array: np.ndarray, mode: str | None = None) -> str:
    """Write ``array`` as an image file (format from the extension); returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array, mode=mode).save(path) if mode is None else Image.fromarray(array).convert(mode).save(path)
    return path


def write_corrupt(path: os.PathLike | str) -> str:
    """A file with an image extension whose content is a truncated PNG."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + b"garbage")
    return path


def coordinate_image(height: int, width: int) -> np.ndarray:
    """uint16-free position code: channel 0 = row, channel 1 = column, channel 2 = 7 (sizes < 256)."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([rows, cols, np.full_like(rows, 7)], axis=-1).astype(np.uint8)
