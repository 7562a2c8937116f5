"""The ONNX form of ``deform_conv2d``: one standard ``DeformConv`` node (opset >= 19).

ONNX's ``DeformConv`` has torchvision's layouts, which are ours (``vqcnir_ops.deform.reference``): offset
``[B, 2 * offset_groups * kh * kw, Ho, Wo]`` holding ``(dy, dx)`` per offset group and tap, mask
``[B, offset_groups * kh * kw, Ho, Wo]``, group and offset group taken from the shapes. Its bilinear
sampling reads zero at neighbours outside the image, as ours (checked against ONNX Runtime's CPU kernel
by ``tests/export/test_onnx_ops.py``). The node needs one dtype for all its inputs, so the weight, bias
and mask (parameters may have another float dtype) are cast to the input's.
"""

from __future__ import annotations

import torch

from vqcnir_ops.deform.reference import Geometry

DEFORM_CONV_OPSET = 19  # where ONNX introduced DeformConv (vqcnir_ops.to_onnx.MIN_OPSET)


def deform_conv2d_onnx(
    input: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mask: torch.Tensor | None,
    geometry: Geometry,
) -> torch.Tensor:
    """``DeformConv`` for ``torch.onnx.export(..., dynamo=True)``: ``[B, Cout, Ho, Wo]`` in ``input``'s dtype.

    Only meaningful while exporting (``torch.onnx.is_in_onnx_export()``): in eager mode the symbolic node
    returns a placeholder of the right shape. Arguments as :func:`vqcnir_ops.deform_conv2d`, checked by it.
    """
    if not hasattr(torch.onnx, "ops"):
        raise RuntimeError(
            f"deform_conv2d exports to ONNX's DeformConv through torch.onnx.ops.symbolic, which torch "
            f"{torch.__version__} lacks: export with torch 2.8 or later"
        )
    out_channels, in_per_group, kh, kw = weight.shape
    taps = int(kh) * int(kw)
    dtype = input.dtype
    inputs = [
        input,
        weight.to(dtype),
        offset,
        None if bias is None else bias.to(dtype),
        None if mask is None else mask.to(dtype),
    ]
    attrs = {
        "strides": list(geometry.stride),
        "pads": [*geometry.padding, *geometry.padding],
        "dilations": list(geometry.dilation),
        "kernel_shape": [int(kh), int(kw)],
        "group": int(input.shape[1]) // int(in_per_group),
        "offset_group": int(offset.shape[1]) // (2 * taps),
    }
    shape = [input.shape[0], out_channels, offset.shape[2], offset.shape[3]]
    return torch.onnx.ops.symbolic("DeformConv", inputs, attrs, dtype=dtype, shape=shape, version=DEFORM_CONV_OPSET)
