"""Crafted image files for the safety tests: huge images in tiny PNGs, written without holding their pixels."""

from __future__ import annotations

import struct
import zlib

ROWS_PER_CHUNK = 1024


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def blank_bilevel_png(path: str, width: int, height: int) -> None:
    """A valid, fully decodable 1-bit black PNG of ``width x height`` (144 MP is about 20 KB on disk)."""
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    data = []
    for start in range(0, height, ROWS_PER_CHUNK):
        data.append(compressor.compress(row * min(ROWS_PER_CHUNK, height - start)))
    data.append(compressor.flush())
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)))
        out.write(_chunk(b"IDAT", b"".join(data)))
        out.write(_chunk(b"IEND", b""))
