"""Plain PyTorch modulated deformable convolution (DCNv2): the spec every backend is tested against.

Semantics and layouts are torchvision's ``torchvision.ops.deform_conv2d`` (a drop-in replacement):

- ``input [B, Cin, H, W]``, ``weight [Cout, Cin / groups, kh, kw]``, ``bias [Cout]``;
- ``offset [B, 2 * offset_groups * kh * kw, Ho, Wo]``: for offset group ``g`` and tap ``k = i * kw + j``,
  channel ``2 * (g * kh * kw + k)`` holds ``dy`` and the next one ``dx``;
- ``mask [B, offset_groups * kh * kw, Ho, Wo]`` (channel ``g * kh * kw + k``) multiplies each sample;
- the tap ``(i, j)`` of output pixel ``(ho, wo)`` samples ``input`` at
  ``y = ho * stride_h - pad_h + i * dilation_h + dy``, ``x = wo * stride_w - pad_w + j * dilation_w + dx``
  by bilinear interpolation over the four integer neighbours ``floor(y) + {0, 1}``, ``floor(x) + {0, 1}``,
  a neighbour outside the image reading zero (so a point is zero once it is 1 pixel or more outside,
  and fades linearly to zero within 1 pixel of the border);
- gradients: the interpolation weights are differentiated as functions of ``y - floor(y)`` (at an
  integer coordinate the derivative is the one-sided one towards ``floor + 1``), exactly torchvision's
  ``get_coordinate_weight``; the input gradient spreads each sample's gradient over the same four
  neighbours with the same weights.

Non-finite values (every backend, as torchvision): a neighbour outside the image is never read, so a
NaN or inf there has no effect; a neighbour inside is read even at bilinear weight 0, so a NaN or inf
pixel there makes the sample NaN (``0 * inf``). A +-inf offset puts the sample infinitely far outside:
it reads zero, like any far-away sample, and its offset and mask gradients are zero. A NaN offset makes
the sample's position NaN: the sample is NaN (whatever its mask), so are its offset and mask gradients
and every output and weight gradient it feeds; it has no neighbours, so it adds nothing to the input
gradient. NaN or inf in the mask, weight or bias propagate by ordinary arithmetic (the input gradient
then reaches only the neighbours inside the image).

Dtypes (the library's policy, ``vqcnir_ops._dtypes``): ``input``, ``offset`` and ``mask`` share one dtype;
``weight`` and ``bias`` may have any float dtype. Arithmetic in float32 (float64 for float64 inputs); the
output has ``input``'s dtype, each gradient its argument's.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from vqcnir_ops._dtypes import compute_dtype
from vqcnir_ops.conv_geometry import Geometry  # noqa: F401  (part of this reference's contract)


class _Corner(NamedTuple):
    """One of the four neighbours ``(floor(y) + a, floor(x) + b)`` of every sample, each ``[B, G, K * Ho * Wo]``."""

    index: torch.Tensor  # flat index into the image plane, clamped into it
    inside: torch.Tensor  # bool: the neighbour is inside the image (only then is it read or written)
    weight: torch.Tensor  # bilinear weight (NaN for a NaN position)
    d_dy: torch.Tensor  # d weight / dy
    d_dx: torch.Tensor  # d weight / dx


def _corners(offset: torch.Tensor, size: tuple[int, int], kernel: tuple[int, int], geometry: Geometry) -> list[_Corner]:
    """The four neighbours of every sample; weights are zero for neighbours outside the image."""
    height, width = size
    kh, kw = kernel
    batch, channels, out_h, out_w = offset.shape
    groups = channels // (2 * kh * kw)
    dtype, device = offset.dtype, offset.device
    (sh, sw), (ph, pw), (dh, dw) = geometry
    off = offset.reshape(batch, groups, kh * kw, 2, out_h, out_w)
    rows = torch.arange(out_h, device=device, dtype=dtype) * sh - ph
    cols = torch.arange(out_w, device=device, dtype=dtype) * sw - pw
    tap_i = torch.arange(kh, device=device, dtype=dtype).repeat_interleave(kw) * dh
    tap_j = torch.arange(kw, device=device, dtype=dtype).repeat(kh) * dw
    y = tap_i[:, None, None] + rows[None, :, None] + off[:, :, :, 0]  # [B, G, K, Ho, Wo]
    x = tap_j[:, None, None] + cols[None, None, :] + off[:, :, :, 1]
    samples = kh * kw * out_h * out_w
    y, x = y.reshape(batch, groups, samples), x.reshape(batch, groups, samples)
    # A NaN position has no neighbour (placed far outside) and NaN weights; far-away points (and +-inf) are
    # clamped to just outside the image, where every neighbour is outside (and reads 0).
    nan = torch.isnan(y) | torch.isnan(x)
    y = torch.where(nan, -2.0, y.clamp(-2, height + 1))
    x = torch.where(nan, -2.0, x.clamp(-2, width + 1))
    nan_or_one = torch.where(nan, float("nan"), 1.0).to(dtype)
    y0, x0 = torch.floor(y), torch.floor(x)
    ly, lx = y - y0, x - x0
    corners = []
    for a, wy, dwy in ((0, 1 - ly, -1.0), (1, ly, 1.0)):
        for b, wx, dwx in ((0, 1 - lx, -1.0), (1, lx, 1.0)):
            yi, xi = y0.long() + a, x0.long() + b
            inside = (yi >= 0) & (yi < height) & (xi >= 0) & (xi < width)
            index = yi.clamp(0, height - 1) * width + xi.clamp(0, width - 1)
            zero_outside = inside.to(dtype) * nan_or_one
            corners.append(
                _Corner(index, inside, wy * wx * zero_outside, dwy * wx * zero_outside, wy * dwx * zero_outside)
            )
    return corners


def _gather(flat: torch.Tensor, corner: _Corner) -> torch.Tensor:
    """``flat [B, G, Cg, H * W]`` read at the corner's neighbours -> ``[B, G, Cg, N]``, zero outside the image."""
    values = flat.gather(3, corner.index[:, :, None, :].expand(-1, -1, flat.shape[2], -1))
    return torch.where(corner.inside[:, :, None], values, 0.0)


def deform_conv2d_ref(
    input: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Modulated deformable convolution by a bilinear gather per tap and one einsum (see module doc).

    Args:
        input: ``[B, Cin, H, W]``. offset: ``[B, 2 * offset_groups * kh * kw, Ho, Wo]``.
        weight: ``[Cout, Cin / groups, kh, kw]``. bias: ``[Cout]`` or None.
        stride, padding, dilation: ``(h, w)`` pairs. mask: ``[B, offset_groups * kh * kw, Ho, Wo]`` or None.

    Returns:
        ``[B, Cout, Ho, Wo]`` in ``input``'s dtype, computed in float32 (float64 for float64 inputs).

    Example:
        >>> x, w = torch.randn(1, 4, 8, 8), torch.randn(6, 4, 3, 3)
        >>> off = torch.zeros(1, 18, 6, 6)
        >>> deform_conv2d_ref(x, off, w).shape
        torch.Size([1, 6, 6, 6])
    """
    geometry = Geometry(tuple(stride), tuple(padding), tuple(dilation))  # type: ignore[arg-type]
    return _forward(input, offset, mask, weight, bias, geometry).out.to(input.dtype)


class _Forward(NamedTuple):
    """The output in the compute dtype, and what the hand-written backward reuses."""

    out: torch.Tensor
    columns: torch.Tensor  # [B, G, Cin/G * K, Ho * Wo]: masked samples
    corners: list[_Corner]
    values: list[torch.Tensor]  # per corner [B, OG, Cg, K * Ho * Wo]
    samples: torch.Tensor  # [B, OG, Cg, K * Ho * Wo], before the mask
    mask: torch.Tensor  # [B, OG, 1, K * Ho * Wo] (or a scalar one)
    weight: torch.Tensor  # [G, Cout/G, Cin/G * K]


def _forward(
    input: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor | None,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    geometry: Geometry,
) -> _Forward:
    compute = compute_dtype(input.dtype)
    out_channels, in_per_group, kh, kw = weight.shape
    batch, channels, height, width = input.shape
    groups = channels // in_per_group
    offset_groups = offset.shape[1] // (2 * kh * kw)
    out_h, out_w = offset.shape[-2:]
    corners = _corners(offset.to(compute), (height, width), (kh, kw), geometry)
    flat = input.to(compute).reshape(batch, offset_groups, channels // offset_groups, height * width)
    values = [_gather(flat, corner) for corner in corners]
    samples = sum(v * corner.weight[:, :, None] for v, corner in zip(values, corners, strict=True))
    m = (
        torch.ones((), dtype=compute, device=input.device)
        if mask is None
        else mask.to(compute).reshape(batch, offset_groups, 1, kh * kw * out_h * out_w)
    )
    columns = (samples * m).reshape(batch, groups, in_per_group * kh * kw, out_h * out_w)
    w = weight.to(compute).reshape(groups, out_channels // groups, in_per_group * kh * kw)
    out = torch.einsum("gor,bgrl->bgol", w, columns).reshape(batch, out_channels, out_h, out_w)
    if bias is not None:
        out = out + bias.to(compute)[None, :, None, None]
    return _Forward(out, columns, corners, values, samples, m, w)


def deform_conv2d_grads_ref(
    grad_out: torch.Tensor,
    input: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    geometry: Geometry,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients ``(input, offset, mask, weight, bias)`` of ``sum(grad_out * deform_conv2d_ref(...))``,
    each in its argument's dtype, written out by hand (the chain rule through the module doc's formulas):

    - ``grad_columns = W^T grad_out`` per conv group; ``grad_weight = grad_out columns^T``; ``grad_bias``
      sums ``grad_out``;
    - ``grad_mask`` = sum over the offset group's channels of ``grad_columns * sample``;
    - ``grad_offset`` = ``mask *`` that sum of ``grad_columns * d sample / d(y, x)``;
    - ``grad_input`` adds ``mask * grad_columns * neighbour weight`` at each of the four neighbours inside
      the image.
    """
    fwd = _forward(input, offset, mask, weight, bias, geometry)
    compute = fwd.out.dtype
    batch, channels, height, width = input.shape
    groups, cout_g, _ = fwd.weight.shape
    taps = weight.shape[2] * weight.shape[3]
    offset_groups = offset.shape[1] // (2 * taps)
    out_h, out_w = offset.shape[-2:]
    gout = grad_out.to(compute).reshape(batch, groups, cout_g, out_h * out_w)
    grad_weight = torch.einsum("bgol,bgrl->gor", gout, fwd.columns).reshape(weight.shape)
    grad_bias = gout.sum((0, 3)).reshape(-1)
    grad_cols = torch.einsum("gor,bgol->bgrl", fwd.weight, gout)
    grad_cols = grad_cols.reshape(batch, offset_groups, channels // offset_groups, taps * out_h * out_w)
    grad_mask = (grad_cols * fwd.samples).sum(2)
    scaled = grad_cols * fwd.mask
    pairs = list(zip(fwd.values, fwd.corners, strict=True))
    grad_y = sum((scaled * v * corner.d_dy[:, :, None]).sum(2) for v, corner in pairs)
    grad_x = sum((scaled * v * corner.d_dx[:, :, None]).sum(2) for v, corner in pairs)
    grad_input = torch.zeros(
        batch, offset_groups, channels // offset_groups, height * width, dtype=compute, device=input.device
    )
    for corner in fwd.corners:
        expanded = corner.index[:, :, None, :].expand(-1, -1, channels // offset_groups, -1)
        spread = torch.where(corner.inside[:, :, None], scaled * corner.weight[:, :, None], 0.0)
        grad_input.scatter_add_(3, expanded, spread)
    grad_offset = torch.stack([grad_y, grad_x], dim=3)  # [B, OG, K * L, 2] -> (dy, dx) per tap
    grad_offset = grad_offset.reshape(batch, offset_groups, taps, out_h * out_w, 2).permute(0, 1, 2, 4, 3)
    grads = (
        grad_input.reshape(input.shape),
        grad_offset.reshape(offset.shape),
        grad_mask.reshape(mask.shape),
        grad_weight,
        grad_bias,
    )
    return tuple(g.to(t.dtype).contiguous() for g, t in zip(grads, (input, offset, mask, weight, bias), strict=True))  # type: ignore[return-value]
