"""Offline GPU compile gate cases of the channel-attention phase kernels (``python -m vqcnir_ops._aot``).

Each case runs the whole two-phase forward and backward of ``staged.py`` with the Triton phases, so every
launch the op makes is covered: the gram kernel, and the mix kernel with and without residual, gain and
the split (hi + lo) dot. VQCNIR's decoder levels all have 64 channels per head (256/4, 128/2, 64/1);
heads = 1 (the full-resolution level) is a specialisation of its own. Edges: 128 channels per head (the
maximum; BLOCK_N shrinks), 12 (the smallest, 16-wide blocks), normalize off, no residual, N shorter than a
block, float32 with torch's TF32 switch on.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vqcnir_ops._aot import GateCase, allow_tf32, for_each_dtype
from vqcnir_ops.attention.staged import AttentionMap, staged_backward, staged_forward
from vqcnir_ops.attention.triton_kernels import TRITON_PHASES as PHASES


def _attention(batch: int, heads: int, c: int, n: int, dtype: torch.dtype, normalize: bool = True,
               residual: bool = True, tf32: bool = False) -> Callable[[], object]:  # fmt: skip
    def run() -> object:
        q_d, q_g, v_d, v_g, res, grad = (torch.randn(batch, heads, c, n).to(dtype) for _ in range(6))
        temperature, gain = torch.ones(heads), torch.ones(heads * c)
        with allow_tf32(tf32):
            res_or_none = res if residual else None
            _, _, amap = staged_forward(PHASES, q_d, q_g, v_d, v_g, temperature, gain, gain, res_or_none, res_or_none,
                                        normalize, 1.0, 1e-6)  # fmt: skip
            amap = AttentionMap(*(torch.rand_like(t) for t in amap))  # finite values for the C x C stage
            return staged_backward(PHASES, grad, grad, q_d, q_g, v_d, v_g, temperature, gain, gain, amap,
                                   normalize, 1.0, 1e-6)  # fmt: skip

    return run


CASES = [
    *for_each_dtype("attention C=256 heads=4 N=32*32", lambda dt: _attention(2, 4, 64, 1024, dt)),
    GateCase("attention C=256 heads=4 N=32*32 fp32 TF32", _attention(2, 4, 64, 1024, torch.float32, tf32=True)),
    GateCase("attention C=64 heads=1 N=64*64 bf16", _attention(2, 1, 64, 4096, torch.bfloat16)),
    GateCase("attention edge C=128 heads=1 fp16", _attention(1, 1, 128, 1024, torch.float16)),
    GateCase(
        "attention edge C=12 N=10, no normalize, no residual fp32",
        _attention(1, 2, 12, 10, torch.float32, normalize=False, residual=False),
    ),  # fmt: skip
]
