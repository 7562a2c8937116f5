"""Small generated image files for the data tests."""

from __future__ import annotations

import os
import struct
import zlib

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


def read_png16(path: os.PathLike | str) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """``((width, height, depth, colour type), samples [H, W, C] uint16)`` of a 16-bit PNG, checking each
    chunk's CRC. Pillow decodes 16-bit colour to 8 bits, so the tests read these PNGs here; rows may use
    filter 0 (None) or 1 (Sub), which is what our writer uses."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: dict[bytes, bytes] = {}
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    width, height, depth, color, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert depth == 16, f"{path} is a {depth}-bit PNG"
    step = 2 * {0: 1, 4: 2, 2: 3, 6: 4}[color]
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, -1)
    assert set(np.unique(rows[:, 0])) <= {0, 1}, "only filters None and Sub are decoded here"
    raw = rows[:, 1:].copy()
    sub = rows[:, 0] == 1
    for x in range(step, raw.shape[1]):  # undo 'Sub' byte by byte, as a decoder does
        raw[sub, x] += raw[sub, x - step]
    return (width, height, depth, color), raw.view(">u2").reshape(height, width, -1).astype(np.uint16)
