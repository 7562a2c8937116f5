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

Arithmetic in float32 (float64 for float64 inputs); the output has ``input``'s dtype.
"""

from __future__ import annotations

import torch


def compute_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    """float64 if any given tensor is float64, else float32 (the accumulation type of every backend)."""
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) else torch.float32


def output_size(
    height: int, width: int, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int]:  # fmt: skip
    """``(Ho, Wo)`` of a convolution with these settings (as ``torch.nn.functional.conv2d``)."""
    out = []
    for size, k, s, p, d in zip((height, width), kernel, stride, padding, dilation, strict=True):
        out.append((size + 2 * p - d * (k - 1) - 1) // s + 1)
    return out[0], out[1]


def _corners(
    offset: torch.Tensor, size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
    padding: tuple[int, int], dilation: tuple[int, int],
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:  # fmt: skip
    """For each of the four neighbours ``(floor(y) + a, floor(x) + b)`` of every sample:
    ``(flat index, weight, d weight / dy, d weight / dx)``, each ``[B, G, K * Ho * Wo]``; the index is
    clamped into the image and the three others are zero where the neighbour is outside it."""
    height, width = size
    kh, kw = kernel
    batch, channels, out_h, out_w = offset.shape
    groups = channels // (2 * kh * kw)
    dtype, device = offset.dtype, offset.device
    off = offset.reshape(batch, groups, kh * kw, 2, out_h, out_w)
    rows = torch.arange(out_h, device=device, dtype=dtype) * stride[0] - padding[0]
    cols = torch.arange(out_w, device=device, dtype=dtype) * stride[1] - padding[1]
    tap_i = torch.arange(kh, device=device, dtype=dtype).repeat_interleave(kw) * dilation[0]
    tap_j = torch.arange(kw, device=device, dtype=dtype).repeat(kh) * dilation[1]
    y = tap_i[:, None, None] + rows[None, :, None] + off[:, :, :, 0]  # [B, G, K, Ho, Wo]
    x = tap_j[:, None, None] + cols[None, None, :] + off[:, :, :, 1]
    # Far-away points: clamp to just outside the image, where every neighbour is outside (and reads 0).
    samples = kh * kw * out_h * out_w
    y = y.clamp(-2, height + 1).reshape(batch, groups, samples)
    x = x.clamp(-2, width + 1).reshape(batch, groups, samples)
    y0, x0 = torch.floor(y), torch.floor(x)
    ly, lx = y - y0, x - x0
    corners = []
    for a, wy, dwy in ((0, 1 - ly, -1.0), (1, ly, 1.0)):
        for b, wx, dwx in ((0, 1 - lx, -1.0), (1, lx, 1.0)):
            yi, xi = y0.long() + a, x0.long() + b
            inside = ((yi >= 0) & (yi < height) & (xi >= 0) & (xi < width)).to(dtype)
            index = yi.clamp(0, height - 1) * width + xi.clamp(0, width - 1)
            corners.append((index, wy * wx * inside, dwy * wx * inside, wy * dwx * inside))
    return corners


def _gather(flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``flat [B, G, Cg, H * W]`` read at ``index [B, G, N]`` -> ``[B, G, Cg, N]``."""
    return flat.gather(3, index[:, :, None, :].expand(-1, -1, flat.shape[2], -1))


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
    out, _ = _forward(input, offset, weight, bias, stride, padding, dilation, mask)
    return out.to(input.dtype)


def _forward(input, offset, weight, bias, stride, padding, dilation, mask):  # noqa: ANN001, ANN202
    """Output in the compute dtype, and what the backward needs (columns, corners, values)."""
    compute = compute_dtype(input, offset, weight, bias, mask)
    out_channels, in_per_group, kh, kw = weight.shape
    batch, channels, height, width = input.shape
    groups = channels // in_per_group
    offset_groups = offset.shape[1] // (2 * kh * kw)
    out_h, out_w = offset.shape[-2:]
    corners = _corners(offset.to(compute), (height, width), (kh, kw), stride, padding, dilation)
    flat = input.to(compute).reshape(batch, offset_groups, channels // offset_groups, height * width)
    values = [_gather(flat, index) for index, *_ in corners]  # each [B, OG, Cg, K * L]
    samples = sum(v * w[:, :, None] for v, (_, w, _, _) in zip(values, corners, strict=True))
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
    return out, (columns, corners, values, samples, m, w, compute)


def deform_conv2d_grads_ref(
    grad_out: torch.Tensor,
    input: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients ``(input, offset, mask, weight, bias)`` of ``sum(grad_out * deform_conv2d_ref(...))``,
    each in its argument's dtype, written out by hand (the chain rule through the module doc's formulas):

    - ``grad_columns = W^T grad_out`` per conv group; ``grad_weight = grad_out columns^T``; ``grad_bias``
      sums ``grad_out``;
    - ``grad_mask`` = sum over the offset group's channels of ``grad_columns * sample``;
    - ``grad_offset`` = ``mask *`` that sum of ``grad_columns * d sample / d(y, x)``;
    - ``grad_input`` adds ``mask * grad_columns * neighbour weight`` at each of the four neighbours.
    """
    _, (columns, corners, values, samples, m, w, compute) = _forward(
        input, offset, weight, bias, stride, padding, dilation, mask
    )
    batch, channels, height, width = input.shape
    groups, cout_g, red = w.shape
    taps = weight.shape[2] * weight.shape[3]
    offset_groups = offset.shape[1] // (2 * taps)
    out_h, out_w = offset.shape[-2:]
    gout = grad_out.to(compute).reshape(batch, groups, cout_g, out_h * out_w)
    grad_weight = torch.einsum("bgol,bgrl->gor", gout, columns).reshape(weight.shape)
    grad_bias = gout.sum((0, 3)).reshape(-1)
    grad_cols = torch.einsum("gor,bgol->bgrl", w, gout)
    grad_cols = grad_cols.reshape(batch, offset_groups, channels // offset_groups, taps * out_h * out_w)
    grad_mask = (grad_cols * samples).sum(2)
    scaled = grad_cols * m
    grad_y = sum((scaled * v * dwy[:, :, None]).sum(2) for v, (_, _, dwy, _) in zip(values, corners, strict=True))
    grad_x = sum((scaled * v * dwx[:, :, None]).sum(2) for v, (_, _, _, dwx) in zip(values, corners, strict=True))
    grad_input = torch.zeros(batch, offset_groups, channels // offset_groups, height * width, dtype=compute,
                             device=input.device)  # fmt: skip
    for index, wgt, _, _ in corners:
        expanded = index[:, :, None, :].expand(-1, -1, channels // offset_groups, -1)
        grad_input.scatter_add_(3, expanded, scaled * wgt[:, :, None])
    grad_offset = torch.stack([grad_y, grad_x], dim=3)  # [B, OG, K * L, 2] -> (dy, dx) per tap
    grad_offset = grad_offset.reshape(batch, offset_groups, taps, out_h * out_w, 2).permute(0, 1, 2, 4, 3)
    grads = (
        grad_input.reshape(input.shape), grad_offset.reshape(offset.shape), grad_mask.reshape(mask.shape),
        grad_weight, grad_bias,
    )  # fmt: skip
    return tuple(g.to(t.dtype).contiguous() for g, t in zip(grads, (input, offset, mask, weight, bias), strict=True))  # type: ignore[return-value]
