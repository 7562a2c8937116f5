"""Whole-image and tiled inference on any image size.

The networks need H and W divisible by 8. Two ways to get there, then crop back:

- ``"official"``: the authors' test-time padding. It always pads 1 to 64 rows and columns (to the next
  multiple of 64 strictly above the size) with a flipped copy of the image, so official weights give
  the authors' outputs exactly.
- ``"reflect"``: the least reflect padding to a multiple of 8.

Large images go through :func:`tiled` inference: overlapping tiles, each restored alone and blended
with weights that ramp down linearly across the overlap, so seams do not show. GroupNorm and the
channel attention use statistics of whatever they see, so tiles differ slightly from whole-image
inference (the README reports the PSNR between the two).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Restorer = Callable[[torch.Tensor], torch.Tensor]
PADDINGS = ("official", "reflect")


def pad_official(image: torch.Tensor, multiple: int = 64) -> torch.Tensor:
    """Pad bottom/right to the next multiple of ``multiple`` strictly above H and W, with flipped copies.

    Images at least as large as the padding get exactly the authors' result (one flipped copy); smaller
    ones, which the authors' code cannot pad, get flipped copies repeated until they are large enough.
    """
    height, width = image.shape[-2:]
    target_h = (height // multiple + 1) * multiple
    target_w = (width // multiple + 1) * multiple
    while image.shape[-2] < target_h:
        image = torch.cat([image, torch.flip(image, [2])], 2)
    while image.shape[-1] < target_w:
        image = torch.cat([image, torch.flip(image, [3])], 3)
    return image[:, :, :target_h, :target_w]


def pad_reflect(image: torch.Tensor, multiple: int = 8) -> torch.Tensor:
    """Reflect-pad bottom/right to the next multiple of ``multiple`` (nothing when already there)."""
    height, width = image.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return image
    if pad_h >= height or pad_w >= width:  # reflect needs the pad smaller than the size
        return F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")
    return F.pad(image, (0, pad_w, 0, pad_h), mode="reflect")


def padded(restore: Restorer, image: torch.Tensor, padding: str = "official") -> torch.Tensor:
    """Run ``restore`` on the padded image and crop the result back to the input size."""
    if padding not in PADDINGS:
        raise ValueError(f"argument 'padding' must be one of {PADDINGS}, got {padding!r}")
    height, width = image.shape[-2:]
    pad = pad_official if padding == "official" else pad_reflect
    return restore(pad(image))[..., :height, :width]


def _starts(size: int, tile: int, step: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, step))
    return starts + [size - tile]


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool, device: torch.device) -> torch.Tensor:
    weight = torch.ones(length, device=device)
    ramp = torch.linspace(0, 1, overlap + 2, device=device)[1:-1] if overlap > 0 else weight[:0]
    if not at_start and overlap > 0:
        weight[:overlap] = ramp
    if not at_end and overlap > 0:
        weight[-overlap:] = ramp.flip(0)
    return weight


def tiled(
    restore: Restorer, image: torch.Tensor, tile: int = 512, overlap: int = 32, padding: str = "official"
) -> torch.Tensor:
    """Restore ``image`` ``[B, C, H, W]`` tile by tile (each tile padded as ``padding`` says) and blend.

    Args:
        tile: tile side in pixels (>= 16). overlap: pixels shared by neighbouring tiles (< tile / 2).
    """
    if tile < 16:
        raise ValueError(f"argument 'tile' must be at least 16, got {tile}")
    if not 0 <= overlap < tile // 2:
        raise ValueError(f"argument 'overlap' must be in [0, tile / 2), got {overlap} for tile {tile}")
    batch, channels, height, width = image.shape
    output = None
    weights = torch.zeros(1, 1, height, width, device=image.device)
    ys, xs = _starts(height, tile, tile - overlap), _starts(width, tile, tile - overlap)
    for y in ys:
        for x in xs:
            crop = image[:, :, y : y + tile, x : x + tile]
            result = padded(restore, crop, padding)
            if output is None:
                output = torch.zeros(batch, result.shape[1], height, width, dtype=result.dtype, device=image.device)
            h, w = crop.shape[-2:]
            wy = _ramp(h, overlap, y == ys[0], y == ys[-1], image.device)
            wx = _ramp(w, overlap, x == xs[0], x == xs[-1], image.device)
            weight = (wy[:, None] * wx[None, :])[None, None]
            output[:, :, y : y + h, x : x + w] += result * weight.to(result.dtype)
            weights[:, :, y : y + h, x : x + w] += weight
    assert output is not None
    return output / weights.to(output.dtype)
