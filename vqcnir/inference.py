"""Restoring images of any size: what ``restore`` accepts, padding, and whole-image or tiled inference.

**Input**: a float tensor ``[B, C, H, W]`` or ``[C, H, W]`` (returned with the same shape), ``B, H, W >= 1``,
values in [0, 1] (8-bit images divided by 255), any float dtype (float16, bfloat16, float32, float64) on
any device. It is computed in the model's dtype on the model's device; the result comes back in the
input's dtype, on its device, not clamped.

**Padding**: the networks need H and W divisible by 8. Two ways to get there, then crop back:

- ``"official"``: the authors' test-time padding. It always pads 1 to 64 rows and columns (to the next
  multiple of 64 strictly above the size) with a flipped copy of the image, so official weights give
  the authors' outputs exactly.
- ``"reflect"``: the least reflect padding to a multiple of 8.

**Tiling** (``tiling=``):

- ``"whole"``: the padded image in one forward pass.
- ``"exact"``: :mod:`vqcnir.tiling`: the same result up to float rounding, tile by tile, in memory set
  by the tile size; ``max_memory`` picks the largest tiles that fit, ``tile`` sets their side.
- ``"auto"`` (default): whole-image inference when no ``max_memory`` is given or when its estimate fits
  it, else exact tiling.
- ``"approximate"``: the old overlapping tiles (``tile``, ``overlap``), each restored alone and blended with
  linear ramps. GroupNorm and the channel attention then see tile statistics: the result differs from
  the whole image (by 16-28 dB PSNR for the demo model, ``benchmarks/tiling_psnr.py``). Only on request.

**Self-ensemble** (``self_ensemble=``, 1 by default): the average of the restorations of 2, 4 or 8 copies of
the image under the flips and transpositions of the square (each restored as above, then turned back), for
1, 2, 4 or 8 times the time. On the default model's held-out night photos 8 copies gave +0.31 dB PSNR and
+0.023 SSIM, and LPIPS 0.352 against 0.336 (averaging softens texture a little); 4 copies +0.29 dB, +0.019.

``max_memory`` is a number of bytes, a string like ``"4GB"`` / ``"512MiB"``, or ``"auto"`` (80% of the
memory the device has free now). On the CPU it bounds what the call allocates (activations, the
full-resolution activations kept between passes, tiles); on a GPU the device memory (activations kept
between passes then live in host memory, or in files under ``offload``). The model's weights and the
caller's image are not counted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vqcnir.tiling import MemoryBudgetError, Progress, available_memory, parse_memory, plan_exact, run_exact

Restorer = Callable[[torch.Tensor], torch.Tensor]
PADDINGS = ("official", "reflect")
TILINGS = ("auto", "whole", "exact", "approximate")
AUTO_FRACTION = 0.8  # of the free memory, for max_memory="auto"
RANGE_SLACK = 1e-3  # values this far outside [0, 1] (resampling overshoot) are accepted
SELF_ENSEMBLE = (1, 2, 4, 8)  # copies averaged: the first n of the square's 8 symmetries (see dihedral)
MIN_TILE = 16  # smallest tile side: smaller tiles only multiply the work (a 3-pixel tile took minutes on 64 x 80)


def _check_spatial(image: torch.Tensor, name: str = "image") -> None:
    if image.dim() < 2 or image.shape[-2] < 1 or image.shape[-1] < 1:
        raise ValueError(f"argument '{name}' must have H >= 1 and W >= 1, got shape {tuple(image.shape)}")


def padded_size(height: int, width: int, padding: str = "official") -> tuple[int, int]:
    """``(H', W')`` of an ``H x W`` image after ``padding`` (``"official"`` or ``"reflect"``), without any data."""
    if padding not in PADDINGS:
        raise ValueError(f"argument 'padding' must be one of {PADDINGS}, got {padding!r}")
    if padding == "official":
        return (height // 64 + 1) * 64, (width // 64 + 1) * 64
    return height + (-height) % 8, width + (-width) % 8


def _flip_pad(image: torch.Tensor, target: int, dim: int) -> torch.Tensor:
    """``image`` grown along ``dim`` to ``target`` with flipped copies (the authors' padding).

    When one flipped copy is enough, only the strip that is kept is flipped (never a whole copy);
    smaller images repeat the whole-copy doubling, whose prefix the result is.
    """
    size = image.shape[dim]
    if size >= target:
        return image
    if 2 * size >= target:
        strip = image.narrow(dim, 2 * size - target, target - size)
        return torch.cat([image, torch.flip(strip, [dim])], dim)
    while image.shape[dim] < target:
        image = torch.cat([image, torch.flip(image, [dim])], dim)
    return image.narrow(dim, 0, target)


def pad_official(image: torch.Tensor, multiple: int = 64) -> torch.Tensor:
    """Pad bottom/right to the next multiple of ``multiple`` strictly above H and W, with flipped copies.

    Images at least as large as the padding get exactly the authors' result (one flipped copy); smaller
    ones, which the authors' code cannot pad, get flipped copies repeated until they are large enough.
    Only the strips that are kept are flipped: the padded image is the one large allocation.
    """
    _check_spatial(image)
    height, width = image.shape[-2:]
    target_h = (height // multiple + 1) * multiple
    target_w = (width // multiple + 1) * multiple
    return _flip_pad(_flip_pad(image, target_h, image.dim() - 2), target_w, image.dim() - 1)


def pad_reflect(image: torch.Tensor, multiple: int = 8) -> torch.Tensor:
    """Reflect-pad bottom/right to the next multiple of ``multiple`` (nothing when already there)."""
    _check_spatial(image)
    height, width = image.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return image
    if pad_h >= height or pad_w >= width:  # reflect needs the pad smaller than the size
        return F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")
    return F.pad(image, (0, pad_w, 0, pad_h), mode="reflect")


def _pad(padding: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if padding not in PADDINGS:
        raise ValueError(f"argument 'padding' must be one of {PADDINGS}, got {padding!r}")
    return pad_official if padding == "official" else pad_reflect


def padded(restore: Restorer, image: torch.Tensor, padding: str = "official") -> torch.Tensor:
    """Run ``restore`` on the padded image and crop the result back to the input size."""
    pad = _pad(padding)
    height, width = image.shape[-2:]
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
    """Approximate tiling: restore ``image`` ``[B, C, H, W]`` tile by tile (each tile padded as ``padding``
    says) and blend. Not equal to whole-image inference for networks with global statistics.

    Args:
        tile: tile side in pixels (>= 16). overlap: pixels shared by neighbouring tiles (< tile / 2).
    """
    if tile < MIN_TILE:
        raise ValueError(f"argument 'tile' must be at least {MIN_TILE}, got {tile}")
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
            output[:, :, y : y + h, x : x + w] += result.to(output.device) * weight.to(result.dtype)
            weights[:, :, y : y + h, x : x + w] += weight
    assert output is not None
    return output / weights.to(output.dtype)


def check_restore_input(image: object, channels: int) -> torch.Tensor:
    """``image`` as ``[B, C, H, W]`` after checking what ``restore`` accepts (see the module docstring)."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"argument 'image' must be a torch.Tensor, got {type(image).__name__}")
    shape = tuple(image.shape)
    if image.dim() not in (3, 4) or image.shape[-3] != channels:
        raise ValueError(f"argument 'image' must be [B, {channels}, H, W] or [{channels}, H, W], got shape {shape}")
    if image.is_meta:
        raise ValueError(f"argument 'image' is a meta tensor (a shape without data), got shape {shape}: give pixels")
    if not image.is_floating_point():
        raise TypeError(
            f"argument 'image' must be a float tensor with values in [0, 1], got {image.dtype} "
            "(8-bit images: image.float() / 255)"
        )
    batched = image if image.dim() == 4 else image.unsqueeze(0)
    if batched.shape[0] == 0 or batched.shape[2] == 0 or batched.shape[3] == 0:
        raise ValueError(f"argument 'image' must have a batch, height and width of at least 1, got shape {shape}")
    low, high = torch.aminmax(batched.detach().reshape(-1)) if batched.numel() else (0, 0)
    low, high = float(low), float(high)
    if low != low or high != high or abs(low) == float("inf") or abs(high) == float("inf"):
        raise ValueError("argument 'image' contains NaN or infinite values")
    if low < -RANGE_SLACK or high > 1 + RANGE_SLACK:
        hint = " (8-bit values? divide by 255)" if high > 2 else ""
        raise ValueError(f"argument 'image' must have values in [0, 1], got min {low:.4g} and max {high:.4g}{hint}")
    return batched


def resolve_budget(max_memory: int | float | str | None, device: torch.device) -> int | None:
    """Bytes for ``max_memory`` (``"auto"``: a fraction of what ``device`` has free now)."""
    if isinstance(max_memory, str) and max_memory.strip().lower() == "auto":
        return int(available_memory(device) * AUTO_FRACTION)
    return parse_memory(max_memory)


def _compute_device_and_dtype(module: nn.Module | None, image: torch.Tensor) -> tuple[torch.device, torch.dtype]:
    param = next(iter(module.parameters()), None) if module is not None else None
    if param is None:
        return image.device, image.dtype
    return param.device, param.dtype


def check_self_ensemble(self_ensemble: object) -> None:
    """ValueError naming the argument unless ``self_ensemble`` is one of :data:`SELF_ENSEMBLE` (callers that
    restore many files check it before the first one)."""
    if isinstance(self_ensemble, bool) or self_ensemble not in SELF_ENSEMBLE:
        raise ValueError(f"argument 'self_ensemble' must be one of {SELF_ENSEMBLE}, got {self_ensemble!r}")


def dihedral(image: torch.Tensor, index: int, inverse: bool = False) -> torch.Tensor:
    """Symmetry ``index`` (0-7) of the square applied to the last two dims of ``image``: bit 0 flips the
    width, bit 1 the height, bit 2 swaps them (transposition, after the flips); ``inverse=True`` undoes it.
    0: identity; 1: mirror; 2, 3: upside down, rotated 180 degrees; 4-7: the transposed four."""
    if not 0 <= index < 8:
        raise ValueError(f"argument 'index' must be in 0..7, got {index}")
    flips = [dim for bit, dim in ((1, -1), (2, -2)) if index & bit]
    if inverse and index & 4:
        image = image.transpose(-2, -1)
    if flips:
        image = image.flip(flips)
    if not inverse and index & 4:
        image = image.transpose(-2, -1)
    return image


def restore(
    forward: Restorer,
    image: torch.Tensor,
    padding: str = "official",
    *,
    module: nn.Module | None = None,
    channels: int = 3,
    max_memory: int | float | str | None = None,
    tiling: str = "auto",
    tile: int | None = None,
    overlap: int | None = None,
    progress: Progress | None = None,
    offload: str | None = None,
    self_ensemble: int = 1,
) -> torch.Tensor:
    """Restore ``image`` with ``forward`` (padded image ``[B, C, H', W']`` -> output of that size).

    Args:
        forward: e.g. ``lambda x: model(x).image``; ``module``: the network it runs (its parameters give
            the compute device and dtype; exact tiling traces its layers).
        image: ``[B, channels, H, W]`` or ``[channels, H, W]``, float, values in [0, 1].
        padding: ``"official"`` or ``"reflect"``. tiling: ``"auto"``, ``"whole"``, ``"exact"``, ``"approximate"``.
        max_memory: bytes, ``"4GB"``-like string or ``"auto"``; None: no limit.
        tile: tile side for exact tiling (pixels of each pass's grid; grown to its halo) or approximate
            tiling (pixels of the image, default 512).
        overlap: approximate tiling only (default 32).
        progress: ``progress(done, total, description)`` after each tile (or once for the whole image).
        offload: a folder: exact tiling keeps its full-resolution activations in memory-mapped files there.
        self_ensemble: 1, 2, 4 or 8: the mean of that many restorations of the image's flipped and transposed
            copies (:func:`dihedral`), each turned back; ``progress`` then counts the passes' steps together.

    Returns:
        the restored image, same shape, dtype and device as ``image`` (not clamped).

    Raises:
        ValueError / TypeError: bad arguments (the message names the argument). MemoryBudgetError: not even
        the smallest tiles fit ``max_memory``. vqcnir.tiling.TilingError: exact tiling cannot run the network.
    """
    if tiling not in TILINGS:
        raise ValueError(f"argument 'tiling' must be one of {TILINGS}, got {tiling!r}")
    pad = _pad(padding)
    if overlap is not None and tiling != "approximate":
        raise ValueError("argument 'overlap' applies to tiling='approximate' only")
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < MIN_TILE):
        raise ValueError(f"argument 'tile' must be an int of at least {MIN_TILE} pixels, got {tile!r}")
    check_self_ensemble(self_ensemble)
    batched = check_restore_input(image, channels)
    device, dtype = _compute_device_and_dtype(module, batched)
    budget = resolve_budget(max_memory, device)
    x = batched.to(dtype)
    total = None
    for index in range(self_ensemble):
        counted = progress
        if progress is not None and self_ensemble > 1:  # one count over every pass (passes have the same steps)
            counted = functools.partial(_pass_progress, progress, index, self_ensemble)
        copy = dihedral(x, index)
        out = dihedral(_restore_once(forward, copy, pad, padding, device, dtype, module, budget, tiling, tile,
                                     overlap, counted, offload), index, inverse=True)  # fmt: skip
        if self_ensemble == 1:
            total = out
        elif total is None:  # a copy to sum into, at least float32 (a pass's output may even be the image itself)
            total = out.to(torch.promote_types(out.dtype, torch.float32), copy=True)
        else:
            total.add_(out)
    out = total if self_ensemble == 1 else total.div_(self_ensemble)
    out = out.to(device=image.device, dtype=image.dtype)
    return out if image.dim() == 4 else out[0]


def _pass_progress(progress: Progress, index: int, passes: int, done: int, total: int, description: str) -> None:
    progress(index * total + done, passes * total, f"copy {index + 1}/{passes}, {description}")


def _restore_once(
    forward: Restorer, x: torch.Tensor, pad: Callable[[torch.Tensor], torch.Tensor], padding: str,
    device: torch.device, dtype: torch.dtype, module: nn.Module | None, budget: int | None, tiling: str,
    tile: int | None, overlap: int | None, progress: Progress | None, offload: str | None,
) -> torch.Tensor:  # fmt: skip
    """One restoration of the batched, dtype-converted ``x``: padded, whole or tiled, cropped back (on
    ``device``)."""
    height, width = x.shape[-2:]

    def run(chunk: torch.Tensor) -> torch.Tensor:
        return forward(chunk.to(device))

    if tiling == "approximate":
        if budget is not None:
            raise ValueError("argument 'max_memory' does not apply to tiling='approximate': give 'tile' instead")
        out = tiled(run, x, tile=tile or 512, overlap=32 if overlap is None else overlap, padding=padding)
    else:
        full = pad(x)
        use_whole = tiling == "whole" or (tiling == "auto" and budget is None and tile is None)
        if not use_whole:
            plan = plan_exact(forward, tuple(full.shape), dtype, device, module, budget, tile, offload,
                              whole_if_fits=tiling == "auto" and tile is None)  # fmt: skip
            use_whole = plan.whole
        if use_whole:
            out = run(full)
            if progress is not None:
                progress(1, 1, "whole image")
        else:
            out = run_exact(plan, full, progress)
        out = out[..., :height, :width]
    return out


__all__ = [
    "PADDINGS",
    "SELF_ENSEMBLE",
    "TILINGS",
    "MIN_TILE",
    "MemoryBudgetError",
    "check_restore_input",
    "check_self_ensemble",
    "dihedral",
    "pad_official",
    "pad_reflect",
    "padded",
    "padded_size",
    "resolve_budget",
    "restore",
    "tiled",
]
