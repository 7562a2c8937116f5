"""Offline GPU compile gate cases of the deformable-convolution kernels (``python -m vqcnir_ops._aot``).

The DBCA's deformable conv (3 x 3, padding 1, 4 offset groups, Cout = Cin), forward and backward: 256
channels (the 1/8 and 1/4 levels) in every dtype, 64 (the full-resolution level: 16 channels per offset
group, another channel block); torch's TF32 switch on; the deterministic backward (no scatter); the edges:
2 conv groups, 1 offset group and few output channels (16- and 32-wide blocks), a 1 x 1 kernel with
stride 2, odd sizes (no divisibility by 16).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vqcnir_ops._aot import GateCase, allow_tf32, for_each_dtype
from vqcnir_ops.deform.reference import Geometry
from vqcnir_ops.deform.triton_backward import deform_conv2d_backward_triton
from vqcnir_ops.deform.triton_kernels import deform_conv2d_triton


def _deform(batch: int, cin: int, cout: int, size: int, dtype: torch.dtype, *, offset_groups: int = 4,
            groups: int = 1, k: int = 3, stride: int = 1, deterministic: bool = False,
            tf32: bool = False) -> Callable[[], object]:  # fmt: skip
    def run() -> object:
        pad = k // 2
        out_size = (size + 2 * pad - k) // stride + 1
        x = torch.randn(batch, cin, size, size, dtype=dtype)
        offset = torch.randn(batch, 2 * offset_groups * k * k, out_size, out_size, dtype=dtype)
        mask = torch.rand(batch, offset_groups * k * k, out_size, out_size, dtype=dtype)
        weight = torch.randn(cout, cin // groups, k, k, dtype=dtype)
        bias = torch.randn(cout, dtype=dtype)
        geo = Geometry((stride, stride), (pad, pad))
        with allow_tf32(tf32):
            out = deform_conv2d_triton(x, offset, mask, weight, bias, geo)
            return deform_conv2d_backward_triton(
                torch.randn_like(out), x, offset, mask, weight, bias, geo, deterministic
            )

    return run


# Batch 2 throughout: the weight-gradient kernel would specialise B == 1 into yet another variant, and
# training (the only user of the backward) runs batches.
CASES = [
    *for_each_dtype("deform 256->256 og=4 32x32", lambda dt: _deform(2, 256, 256, 32, dt)),
    GateCase("deform 256->256 og=4 16x16 fp32 TF32", _deform(2, 256, 256, 16, torch.float32, tf32=True)),
    GateCase("deform 64->64 og=4 64x64 bf16", _deform(2, 64, 64, 64, torch.bfloat16)),
    GateCase("deform deterministic 256->256 16x16 bf16", _deform(2, 256, 256, 16, torch.bfloat16, deterministic=True)),
    GateCase("deform edge groups=2 og=1 17x17 fp16", _deform(2, 32, 16, 17, torch.float16, offset_groups=1, groups=2)),
    GateCase("deform edge 1x1 kernel stride 2 15x15 fp32", _deform(2, 16, 24, 15, torch.float32, k=1, stride=2)),
]
