"""Public functional ``deform_conv2d``: validates arguments, picks the backend, calls the op."""

from __future__ import annotations

import os

import torch

from vqcnir_ops._dtypes import call_dtype
from vqcnir_ops.conv_geometry import Geometry, IntPair, check_int_pair
from vqcnir_ops.deform import op as _op
from vqcnir_ops.deform.backends import SPEC
from vqcnir_ops.to_onnx import exporting, onnx_form
from vqcnir_ops.validation import check_same_device, check_tensor

DETERMINISTIC_ENV = "VQCNIR_DETERMINISTIC"


def geometry(stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1) -> Geometry:
    """The checked :class:`Geometry` of ``stride`` (>= 1), ``padding`` (>= 0) and ``dilation`` (>= 1)."""
    return Geometry(
        check_int_pair("stride", stride, 1),
        check_int_pair("padding", padding, 0),
        check_int_pair("dilation", dilation, 1),
    )


def deterministic_requested() -> bool:
    """True when ``torch.use_deterministic_algorithms(True)`` is on or ``VQCNIR_DETERMINISTIC=1``."""
    return torch.are_deterministic_algorithms_enabled() or os.environ.get(DETERMINISTIC_ENV, "0") == "1"


def _check_shapes(input, offset, weight, bias, mask, geo: Geometry) -> None:  # noqa: ANN001
    batch, channels, height, width = input.shape
    out_channels, in_per_group, kh, kw = weight.shape
    if in_per_group < 1 or channels % in_per_group != 0:
        raise ValueError(
            f"argument 'weight' has {in_per_group} input channels per group, which does not divide the "
            f"{channels} channels of 'input' (Cin must be divisible by groups = Cin / weight.shape[1])"
        )
    groups = channels // in_per_group
    if out_channels % groups != 0:
        raise ValueError(f"argument 'weight' has {out_channels} output channels, not divisible by groups = {groups}")
    out_h, out_w = geo.output_size(height, width, (kh, kw))
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"argument 'input' of size {height} x {width} is too small for kernel {kh} x {kw} with padding "
            f"{geo.padding} and dilation {geo.dilation}: the output would be {out_h} x {out_w}"
        )
    taps = kh * kw
    if offset.shape[1] == 0 or offset.shape[1] % (2 * taps) != 0:
        raise ValueError(
            f"argument 'offset' must have 2 * offset_groups * kh * kw = a multiple of {2 * taps} channels "
            f"(kernel {kh} x {kw}), got {offset.shape[1]}"
        )
    offset_groups = offset.shape[1] // (2 * taps)
    if channels % offset_groups != 0:
        raise ValueError(
            f"argument 'offset' has {offset_groups} offset groups, which do not divide the {channels} input channels"
        )
    expected = (batch, offset.shape[1], out_h, out_w)
    if tuple(offset.shape) != expected:
        raise ValueError(f"argument 'offset' must have shape {expected}, got {tuple(offset.shape)}")
    if mask is not None and tuple(mask.shape) != (batch, offset_groups * taps, out_h, out_w):
        raise ValueError(
            f"argument 'mask' must have shape {(batch, offset_groups * taps, out_h, out_w)} "
            f"(offset_groups * kh * kw channels), got {tuple(mask.shape)}"
        )
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ValueError(f"argument 'bias' must have shape ({out_channels},), got {tuple(bias.shape)}")


def deform_conv2d(
    input: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    mask: torch.Tensor | None = None,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """Modulated deformable convolution (DCNv2), a drop-in for ``torchvision.ops.deform_conv2d``.

    Each output pixel's tap ``(i, j)`` reads ``input`` by bilinear interpolation at its regular position
    plus the tap's learned ``(dy, dx)``, scaled by the tap's ``mask`` value (zero outside the image);
    exact rules in ``vqcnir_ops.deform.reference``. Differentiable in all five tensors.

    Args:
        input: ``[B, Cin, H, W]`` float16/bfloat16/float32/float64.
        offset: ``[B, 2 * offset_groups * kh * kw, Ho, Wo]``, ``(dy, dx)`` pairs per offset group and tap,
            ``input``'s dtype; input channel ``c`` follows offset group ``c // (Cin / offset_groups)``.
        weight: ``[Cout, Cin / groups, kh, kw]``, any float dtype; ``groups`` is ``Cin / weight.shape[1]``.
        bias: ``[Cout]`` or None (default).
        stride, padding, dilation: int or ``(h, w)``, at most 2**31 - 1; defaults 1, 0, 1.
        mask: ``[B, offset_groups * kh * kw, Ho, Wo]`` in ``input``'s dtype, or None (default: all ones, DCNv1).
        backend: ``'auto'`` (default: ``$VQCNIR_OPS_BACKEND`` or automatic), ``'reference'``, ``'cpp'``,
            ``'cuda'`` or ``'triton'``.

    Returns:
        ``[B, Cout, Ho, Wo]`` in ``input``'s dtype, accumulated in float32 (float64 for float64 input).
        NaN and inf follow torchvision (rules in ``vqcnir_ops.deform.reference``): a NaN offset makes its
        sample NaN, an infinite one puts it outside the image (zero).
        The backward is deterministic on CPU; on CUDA ``torch.use_deterministic_algorithms(True)`` or
        ``VQCNIR_DETERMINISTIC=1`` selects the bitwise-reproducible input gradient.

    Example:
        >>> x, w = torch.randn(2, 8, 16, 16), torch.randn(8, 8, 3, 3)
        >>> offset, mask = torch.randn(2, 2 * 9, 16, 16), torch.rand(2, 9, 16, 16)
        >>> deform_conv2d(x, offset, w, padding=1, mask=mask).shape
        torch.Size([2, 8, 16, 16])
    """
    check_tensor("input", input, ndim=4)
    check_tensor("offset", offset, ndim=4)
    check_tensor("weight", weight, ndim=4)
    if bias is not None:
        check_tensor("bias", bias, ndim=1)
    if mask is not None:
        check_tensor("mask", mask, ndim=4)
    geo = geometry(stride, padding, dilation)
    tensors = {"input": input, "offset": offset, "weight": weight}
    tensors |= {"bias": bias} if bias is not None else {}
    tensors |= {"mask": mask} if mask is not None else {}
    check_same_device(**tensors)
    dtype = call_dtype(input=input, offset=offset, mask=mask)
    _check_shapes(input, offset, weight, bias, mask, geo)

    if exporting():
        return onnx_form("deform_conv2d")(input, offset, weight, bias, mask, geo)
    chosen = SPEC.choose(input.device, dtype, backend)
    if mask is None:
        mask = offset.new_ones(offset.shape[0], offset.shape[1] // 2, offset.shape[2], offset.shape[3])
    if bias is None:
        bias = weight.new_zeros(weight.shape[0])
    return _op.forward(
        input, offset, mask, weight, bias, geo.flat(), deterministic_requested(), chosen
    )
