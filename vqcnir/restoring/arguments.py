"""Command-line options that ``vqcnir-restore``, ``vqcnir-evaluate`` and ``vqcnir-app`` share."""

from __future__ import annotations

import argparse

from vqcnir.inference import MIN_TILE
from vqcnir.tiling import parse_memory


def memory_argument(text: str) -> int | str | None:
    """An argparse ``type`` for ``--max-memory``: ``"auto"``, None (``none``: no limit) or bytes (``4GB``)."""
    word = text.strip().lower()
    if word in ("auto", "none"):
        return "auto" if word == "auto" else None
    try:
        return parse_memory(text, "max_memory")
    except ValueError as error:  # parse_memory's message names the Python argument; argparse names the option
        raise argparse.ArgumentTypeError(
            f"expected a size such as 4GB, 512MiB, auto or none (at least 1 byte), got {text!r}"
        ) from error


def non_negative(text: str) -> int:
    """An argparse ``type``: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def check_tile_arguments(parser: argparse.ArgumentParser, tile: int | None, overlap: int, tiling: str = "auto") -> None:
    """Refuse (as a parser error) a tile under :data:`~vqcnir.inference.MIN_TILE`, an overlap of half a tile or
    more, and ``--tile 0`` (the whole image) with a tiling that tiles."""
    if tile is not None and tile != 0 and tile < MIN_TILE:
        parser.error(f"argument --tile: must be 0 or at least {MIN_TILE}, got {tile}")
    if tiling == "approximate" and tile and overlap >= tile // 2:
        parser.error(f"argument --overlap: must be smaller than half the tile ({tile}), got {overlap}")
    if tile == 0 and tiling not in ("auto", "whole"):
        parser.error(f"argument --tile: 0 (the whole image) contradicts --tiling {tiling}")
