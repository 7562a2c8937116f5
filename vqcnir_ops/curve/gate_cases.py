"""Offline GPU compile gate cases of the curve kernels (``python -m vqcnir_ops._aot``).

The AIEM's IMACConv at VQCNIR's 1/8 level (256 channels in 4 splits of 64, n = 3 curves, 32 x 32 for
256 px crops) in every dtype, and the edges: every curve count
is its own kernel (``N`` is a constexpr), so n = 1 and n = 16 (the maximum); fewer pixels than a block
(``block_sizes`` shrinks BLOCK_P); the flat layout's strides; a non-contiguous input (no stride of 1).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vqcnir_ops._aot import GateCase, for_each_dtype
from vqcnir_ops.curve.triton_kernels import curve_map_bwd_triton, curve_map_fwd_triton


def _curve(batch: int, splits: int, cs: int, n: int, h: int, w: int, dtype: torch.dtype,
           strided: bool = False) -> Callable[[], object]:  # fmt: skip
    def run() -> object:
        step = 2 if strided else 1
        x = torch.rand(batch, splits * cs, h, w * step, dtype=dtype)[..., ::step].unflatten(1, (splits, cs))
        a = torch.rand(batch, splits * n, h, w, dtype=dtype).unflatten(1, (splits, n))
        curve_map_fwd_triton(x, a)
        return curve_map_bwd_triton(torch.rand(x.shape, dtype=dtype), x, a)

    return run


CASES = [
    *for_each_dtype("curve AIEM x[8, 4, 64, 32, 32] n=3", lambda dt: _curve(8, 4, 64, 3, 32, 32, dt)),
    GateCase("curve edge n=1 fp16", _curve(2, 2, 16, 1, 16, 16, torch.float16)),
    GateCase("curve edge n=16 bf16", _curve(2, 2, 16, 16, 16, 16, torch.bfloat16)),
    GateCase("curve edge 3 x 5 pixels, 3 channels fp32", _curve(1, 3, 3, 2, 3, 5, torch.float32)),
    GateCase("curve edge non-contiguous fp32", _curve(2, 4, 64, 3, 32, 32, torch.float32, strided=True)),
]
