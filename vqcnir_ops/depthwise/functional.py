"""Public functional ``depthwise_conv2d``: validates arguments, picks the backend, calls the op."""

from __future__ import annotations

import torch

from vqcnir_ops._dtypes import call_dtype
from vqcnir_ops.conv_geometry import Geometry, IntPair, check_int_pair
from vqcnir_ops.depthwise import op as _op
from vqcnir_ops.depthwise.backends import SPEC
from vqcnir_ops.to_onnx import exporting, onnx_form
from vqcnir_ops.validation import check_same_device, check_tensor


def depthwise_conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """Depth-wise 2-D convolution, stride 1: ``F.conv2d(input, weight, bias, 1, padding, dilation, groups=C)``.

    Each channel is convolved with its own filter. On CPU the C++ kernel runs the forward and, above all, the
    backward several times faster than oneDNN at VQCNIR's shapes (texture warping's 7 x 7, the large-kernel
    attention's 5 x 5 and dilated 7 x 7); results do not depend on the thread count. On CUDA it runs cuDNN
    (the reference backend). Contract: ``vqcnir_ops.depthwise.reference``.

    Args:
        input: ``[B, C, H, W]``, float16/bfloat16/float32/float64 (float64 on the reference and cpp backends),
            any strides; B may be 0.
        weight: ``[C, 1, kh, kw]``, any float dtype (computed in the input's compute dtype).
        bias: ``[C]`` or None.
        padding: zero padding, an int or ``(ph, pw)``, >= 0.
        dilation: an int or ``(dh, dw)``, >= 1.
        backend: ``'auto'`` (default: ``$VQCNIR_OPS_BACKEND`` or automatic), ``'reference'`` or ``'cpp'``.

    Returns:
        ``[B, C, Ho, Wo]`` in the input's dtype, ``Ho = H + 2 ph - dh (kh - 1)`` (likewise ``Wo``).
        Differentiable in input, weight and bias.

    Example:
        >>> x, w = torch.randn(4, 16, 64, 64), torch.randn(16, 1, 7, 7)
        >>> depthwise_conv2d(x, w, padding=3).shape
        torch.Size([4, 16, 64, 64])
    """
    check_tensor("input", input, ndim=4)
    check_tensor("weight", weight, ndim=4)
    if bias is not None:
        check_tensor("bias", bias, ndim=1)
    check_same_device(input=input, weight=weight, **({} if bias is None else {"bias": bias}))
    dtype = call_dtype(input=input)
    channels = input.shape[1]
    if weight.shape[0] != channels or weight.shape[1] != 1 or min(weight.shape[2:]) < 1:
        raise ValueError(
            f"argument 'weight' must have shape [{channels}, 1, kh, kw] (one filter per channel of 'input'), "
            f"got {tuple(weight.shape)}"
        )
    if bias is not None and bias.shape[0] != channels:
        raise ValueError(f"argument 'bias' must have shape [{channels}], got {tuple(bias.shape)}")
    pad, dil = check_int_pair("padding", padding, 0), check_int_pair("dilation", dilation, 1)
    height, width = Geometry(padding=pad, dilation=dil).output_size(input.shape[2], input.shape[3], weight.shape[2:])
    if height < 1 or width < 1:
        raise ValueError(
            f"argument 'input' of {input.shape[2]} x {input.shape[3]} pixels is smaller than the dilated "
            f"{weight.shape[2]} x {weight.shape[3]} kernel (dilation {tuple(dil)}) after padding {tuple(pad)}"
        )
    pad, dil = list(pad), list(dil)  # the op's schema: int[]
    if exporting():
        return onnx_form("depthwise_conv2d")(input, weight, bias, pad, dil)
    return _op.forward(
        input, weight, bias, pad, dil, SPEC.choose(input.device, dtype, backend)
    )
