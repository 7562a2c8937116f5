"""Deformable convolution on tiles: a receptive field that the data decides.

A tap of ``vqcnir_ops.deform_conv2d`` samples its input at the regular position plus a learned offset,
anywhere in the image. So the sampled input is materialised (host memory) before the pass that runs
the convolution, and each output tile reads exactly what it needs:

1. the tile's offsets give every sample position ``y = row * stride - pad + i * dilation + dy`` (and x);
2. the bounding box of their bilinear neighbours that lie inside the image is fetched (positions 1 pixel
   or more outside the image read zeros, wherever they are, so they do not widen the box);
3. the op runs on that box with the tile's offsets shifted by the box origin. Its output grid is fitted
   to the tile by the op's own ``stride`` (padding 0, dilation 1 on the box), and the shift absorbs the
   difference to the true positions, so every sample reads the same four pixels with the same weights
   as in whole-image inference.

A tile whose box would exceed the fetch limit (offsets spreading far) is split in two until it fits or
is a single pixel. The same backend as the network's call computes every piece.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vqcnir.tiling.graph import Context, LocalOp, Node, fill
from vqcnir.tiling.regions import Region, take
from vqcnir.tiling.trace import Call, LazyTensor, Tracer, rule
from vqcnir_ops.deform.reference import Geometry

# The arguments of torch.ops.vqcnir.deform_conv2d_fwd (geometry: Geometry.flat(), six ints).
NAMES = ("input", "offset", "mask", "weight", "bias", "geometry", "deterministic", "backend")


class DeformTiles(LocalOp):
    random_access = (0,)

    def __init__(self, args: tuple, kwargs: dict) -> None:
        self.args, self.kwargs = args, kwargs

    def describe(self) -> str:
        return "deform_conv2d"

    def compute(self, node: Node, inputs: list[Any], region: Region, ctx: Context) -> tuple:
        grid = node.grid
        values = [take(v, region, grid) if i in (1, 2) else v for i, v in enumerate(inputs)]
        given = dict(zip(NAMES, fill(self.args, values), strict=False)) | fill(self.kwargs, values)
        return (self._tile(node, given, given["offset"], given["mask"], region, ctx),)

    def _tile(self, node: Node, given: dict, offset: torch.Tensor, mask: torch.Tensor, region: Region,
              ctx: Context) -> torch.Tensor:  # fmt: skip
        source = node.inputs[0].node.grid
        weight = given["weight"]
        kh, kw = weight.shape[-2:]
        (sh, sw), (ph, pw), (dh, dw) = Geometry.from_flat(given["geometry"])
        batch, channels, h, w = offset.shape
        groups = channels // (2 * kh * kw)
        off = offset.reshape(batch, groups, kh * kw, 2, h, w)
        dtype, device = off.dtype, off.device
        tap_y = (torch.arange(kh, device=device).repeat_interleave(kw) * dh).view(-1, 1, 1)
        tap_x = (torch.arange(kw, device=device).repeat(kh) * dw).view(-1, 1, 1)
        base_y = ((region.y0 + torch.arange(h, device=device)) * sh - ph).view(1, -1, 1)
        base_x = ((region.x0 + torch.arange(w, device=device)) * sw - pw).view(1, 1, -1)
        y = off[:, :, :, 0] + (base_y + tap_y).to(dtype)
        x = off[:, :, :, 1] + (base_x + tap_x).to(dtype)
        box = Region(*_span(y, source.height, base_y, tap_y, off[:, :, :, 0]),
                     *_span(x, source.width, base_x, tap_x, off[:, :, :, 1]))  # fmt: skip
        cin = node.inputs[0].meta.shape[1]
        too_big = box.area * batch * cin * node.inputs[0].meta.element_size() > ctx.fetch_limit
        if too_big and h * w > 1:  # split the tile along its longer side
            if h >= w:
                cut = h // 2
                parts = [(slice(0, cut), Region(region.y0, region.y0 + cut, region.x0, region.x1)),
                         (slice(cut, h), Region(region.y0 + cut, region.y1, region.x0, region.x1))]  # fmt: skip
                return torch.cat([self._tile(node, given, offset[:, :, s], mask[:, :, s], r, ctx) for s, r in parts], 2)
            cut = w // 2
            parts = [(slice(0, cut), Region(region.y0, region.y1, region.x0, region.x0 + cut)),
                     (slice(cut, w), Region(region.y0, region.y1, region.x0 + cut, region.x1))]  # fmt: skip
            return torch.cat([self._tile(node, given, offset[..., s], mask[..., s], r, ctx) for s, r in parts], 3)
        crop = ctx.fetch(node.inputs[0], box).tensor
        stride_y, rows = _fit(box.height, kh, h)
        stride_x, cols = _fit(box.width, kw, w)
        crop = torch.nn.functional.pad(crop, (0, cols - box.width, 0, rows - box.height))
        # True position - box origin - the op's own position (row * stride_y + tap row, dilation 1, padding 0).
        local_y = torch.arange(h, device=device).view(1, -1, 1) * stride_y + tap_y // dh
        local_x = torch.arange(w, device=device).view(1, 1, -1) * stride_x + tap_x // dw
        shift_y = (base_y + tap_y - box.y0 - local_y).to(dtype)
        shift_x = (base_x + tap_x - box.x0 - local_x).to(dtype)
        shifted = torch.stack([off[:, :, :, 0] + shift_y, off[:, :, :, 1] + shift_x], dim=3).reshape(offset.shape)
        return torch.ops.vqcnir.deform_conv2d_fwd(
            crop, shifted, mask, weight, given["bias"], Geometry((stride_y, stride_x)).flat(),
            given["deterministic"], given["backend"],
        )  # fmt: skip

    def workspace(self, node: Node, region: Region) -> int:
        kh, kw = 3, 3  # a margin of a few pixels around the tile for the fetched box (estimate)
        box = (region.height + 2 * kh + 8) * (region.width + 2 * kw + 8)
        return box * node.inputs[0].node.pixel_bytes(node.inputs[0].index) * 2


def _span(
    positions: torch.Tensor, size: int, base: torch.Tensor, taps: torch.Tensor, offsets: torch.Tensor
) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of the image holding the bilinear neighbours of ``positions`` that can be non-zero.

    First from the extreme offsets (two reductions; a box that contains every sample); when they are not
    finite or scatter the box wider than the whole image, from the positions that fall inside the image.
    """
    low, high = (v.item() for v in torch.aminmax(offsets))
    if math.isfinite(low) and math.isfinite(high):
        lo = math.floor(base.min().item() + taps.min().item() + low)
        hi = math.floor(base.max().item() + taps.max().item() + high) + 2
        if hi - lo <= size:
            lo, hi = max(lo, 0), min(hi, size)
            return (lo, hi) if lo < hi else (0, 0)
    useful = (positions > -1) & (positions < size)  # False for NaN and infinities too
    low = torch.where(useful, positions, math.inf).amin().item()
    high = torch.where(useful, positions, -math.inf).amax().item()
    if low == math.inf:
        return 0, 0
    lo = max(int(math.floor(low)), 0)
    return lo, max(min(int(math.floor(high)) + 2, size), lo)


def _fit(extent: int, kernel: int, out: int) -> tuple[int, int]:
    """``(stride, size)``: a padding-0 convolution over ``size >= max(extent, kernel)`` pixels gives ``out``."""
    need = max(extent, kernel)
    if out == 1:
        return need - kernel + 1, need
    stride = max(1, -(-(need - kernel) // (out - 1)))
    return stride, kernel + (out - 1) * stride


@rule("vqcnir::deform_conv2d_fwd")
def deform_conv2d(tracer: Tracer, call: Call) -> Any:
    given = dict(zip(NAMES, call.args, strict=False)) | call.kwargs
    source, offset, mask = given["input"], given["offset"], given["mask"]
    for name, t in (("input", source), ("offset", offset), ("mask", mask)):
        if not isinstance(t, LazyTensor) or not t._ref.node.spatial or t._ref.layout != "hw":
            raise call.error(f"argument {name!r} must be a full-resolution [B, C, H, W] activation")
    if offset._ref.node.grid != mask._ref.node.grid:
        raise call.error("'offset' and 'mask' must be on one pixel grid")
    if call.args[0] is not source:
        raise call.error("pass 'input' positionally")
    for name in ("weight", "bias"):
        if isinstance(given[name], LazyTensor) and given[name]._ref.node.spatial:
            raise call.error(f"argument {name!r} computed from full-resolution activations is not supported")
    out = tracer.meta_call(call)
    args, kwargs, refs = tracer.template(call)
    return tracer.emit(DeformTiles(args, kwargs), call, refs, out, offset._ref.node.grid)
