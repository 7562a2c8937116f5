"""Image files: listing (sorted relative paths), reading as 8-bit RGB, and the log of unreadable files.

Every image is returned as ``[H, W, 3]`` uint8: grayscale is repeated to three channels, the alpha
channel of RGBA / LA / transparent palette images is dropped (colour values kept as stored), 16-bit
grayscale is scaled to 8 bits.
"""

from __future__ import annotations

import ctypes
import multiprocessing.context
import os
import warnings
from multiprocessing.sharedctypes import RawArray

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class UnreadableImageError(Exception):
    """An image file that cannot be decoded (truncated, corrupt, not an image) or an inconsistent pair."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class UnreadableImageWarning(UserWarning):
    """Issued once per skipped sample; filter with ``warnings.simplefilter("ignore", UnreadableImageWarning)``."""


def list_images(root: str | os.PathLike) -> list[str]:
    """Relative POSIX paths of the image files under ``root`` (recursive, hidden entries skipped), sorted."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"image folder not found: {root}")
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/"))
    return sorted(found)


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to ``[H, W, 3]`` uint8 RGB; raises :class:`UnreadableImageError` if it cannot."""
    path = os.fspath(path)
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                values = np.asarray(image, dtype=np.float64)
                peak = 1.0 if image.mode == "F" else 65535.0
                gray = np.round(np.clip(values / peak, 0.0, 1.0) * 255.0).astype(np.uint8)
                return np.repeat(gray[..., None], 3, axis=-1)
            if image.mode == "P" and "transparency" in image.info:
                image = image.convert("RGBA")
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise UnreadableImageError(path, f"{type(error).__name__}: {error}") from error


class SkipLog:
    """Which samples were skipped, shared by the DataLoader worker processes and the main process.

    One byte per sample in shared memory (inherited by forked workers, passed to spawned ones), so
    ``dataset.num_skipped`` in the main process counts what any worker skipped. Pickling outside of
    process spawning stores a snapshot.
    """

    def __init__(self, size: int) -> None:
        self._flags = RawArray(ctypes.c_uint8, max(size, 1))
        self._size = size

    def mark(self, index: int) -> None:
        self._flags[index] = 1

    def __contains__(self, index: int) -> bool:
        return bool(self._flags[index])

    def indices(self) -> list[int]:
        flags = np.frombuffer(self._flags, dtype=np.uint8)[: self._size]
        return np.flatnonzero(flags).tolist()

    def __getstate__(self) -> dict:
        spawning = multiprocessing.context.get_spawning_popen() is not None
        return {"size": self._size, "flags": self._flags if spawning else bytes(self._flags)}

    def __setstate__(self, state: dict) -> None:
        self._size = state["size"]
        flags = state["flags"]
        if isinstance(flags, bytes):
            self._flags = RawArray(ctypes.c_uint8, max(self._size, 1))
            self._flags[:] = flags
        else:
            self._flags = flags


def warn_skipped(error: UnreadableImageError) -> None:
    warnings.warn(f"skipping unreadable sample: {error}", UnreadableImageWarning, stacklevel=3)
