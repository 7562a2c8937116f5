"""Rectangles on a pixel grid, crops of activations over them, and the tiles of a grid."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F


class TilingError(ValueError):
    """A network (or one of its operations) that cannot be run tile by tile exactly; the message names it."""


@dataclass(frozen=True)
class Grid:
    """The pixel grid of a full-resolution activation: ``height x width``."""

    height: int
    width: int

    def whole(self) -> Region:
        return Region(0, self.height, 0, self.width)

    def __str__(self) -> str:
        return f"{self.height}x{self.width}"


@dataclass(frozen=True)
class Region:
    """Rows ``[y0, y1)`` and columns ``[x0, x1)``; may reach outside a grid (zero padding) until clipped."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def height(self) -> int:
        return max(self.y1 - self.y0, 0)

    @property
    def width(self) -> int:
        return max(self.x1 - self.x0, 0)

    @property
    def area(self) -> int:
        return self.height * self.width

    def union(self, other: Region | None) -> Region:
        if other is None:
            return self
        return Region(min(self.y0, other.y0), max(self.y1, other.y1), min(self.x0, other.x0), max(self.x1, other.x1))

    def clip(self, grid: Grid) -> Region:
        return Region(max(self.y0, 0), min(self.y1, grid.height), max(self.x0, 0), min(self.x1, grid.width))

    def contains(self, other: Region) -> bool:
        return self.y0 <= other.y0 and other.y1 <= self.y1 and self.x0 <= other.x0 and other.x1 <= self.x1


@dataclass
class Crop:
    """The values of an activation over ``region`` of its grid (``layout`` 'hw': the last two dims are the rows
    and columns; 'n': the last dim holds the region's pixels row by row)."""

    tensor: torch.Tensor
    region: Region
    layout: str = "hw"

    def as_hw(self) -> torch.Tensor:
        if self.layout == "hw":
            return self.tensor
        return self.tensor.unflatten(-1, (self.region.height, self.region.width))


def from_hw(tensor: torch.Tensor, layout: str) -> torch.Tensor:
    """A ``[..., h, w]`` tensor in ``layout``."""
    return tensor if layout == "hw" else tensor.flatten(-2)


def take(crop: Crop, want: Region, grid: Grid, pad_value: float = 0.0) -> torch.Tensor:
    """``crop``'s values over ``want`` (in ``crop.layout``), padded with ``pad_value`` where ``want`` leaves the grid.

    ``crop.region`` must cover the part of ``want`` inside the grid.
    """
    inside = want.clip(grid)
    have = crop.region
    if not have.contains(inside):
        raise AssertionError(f"crop {have} does not cover {inside}")  # an engine bug, never user input
    if have == want:
        return crop.tensor
    hw = crop.as_hw()[..., inside.y0 - have.y0 : inside.y1 - have.y0, inside.x0 - have.x0 : inside.x1 - have.x0]
    pads = (inside.x0 - want.x0, want.x1 - inside.x1, inside.y0 - want.y0, want.y1 - inside.y1)
    if any(pads):
        if crop.layout != "hw":
            raise AssertionError("only 'hw' activations are padded")
        hw = F.pad(hw, pads, value=pad_value)
    return from_hw(hw, crop.layout)


def tiles(grid: Grid, tile: int) -> Iterator[Region]:
    """Row-major square tiles of side ``tile`` covering ``grid`` (the last row/column of tiles may be smaller)."""
    for y in range(0, grid.height, tile):
        for x in range(0, grid.width, tile):
            yield Region(y, min(y + tile, grid.height), x, min(x + tile, grid.width))


def count_tiles(grid: Grid, tile: int) -> int:
    return -(-grid.height // tile) * -(-grid.width // tile)
