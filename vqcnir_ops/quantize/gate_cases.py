"""Offline GPU compile gate cases of the nearest-code kernel (``python -m vqcnir_ops._aot``).

VQCNIR's lookup (8192 latents of a 256 px batch of 8, 1024 codes of dim 512) in every input dtype, the
benchmark's small-code case, and the edges ``block_sizes`` branches on: N and K at most 16, at most 32,
above; D of 8 (one 16-wide slice), 30 (not a multiple of 16) and 512; a transposed (column-major) z.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vqcnir_ops._aot import GateCase, for_each_dtype
from vqcnir_ops.quantize.reference import center_codebook
from vqcnir_ops.quantize.triton_kernels import nearest_code_triton


def _lookup(n: int, k: int, d: int, dtype: torch.dtype, transposed: bool = False) -> Callable[[], object]:
    def run() -> object:
        z = torch.empty(d, n, dtype=dtype).t() if transposed else torch.empty(n, d, dtype=dtype)
        return nearest_code_triton(z, *center_codebook(torch.randn(k, d), torch.float32))

    return run


CASES = [
    *for_each_dtype("nearest_code N=8192 K=1024 D=512", lambda dt: _lookup(8192, 1024, 512, dt)),
    GateCase("nearest_code small codes N=8192 K=16384 D=8 fp32", _lookup(8192, 16384, 8, torch.float32)),
    GateCase("nearest_code edge N=10 K=10 D=8 fp32", _lookup(10, 10, 8, torch.float32)),
    GateCase("nearest_code edge N=30 K=30 D=30 fp16", _lookup(30, 30, 30, torch.float16)),
    GateCase("nearest_code transposed z bf16", _lookup(8192, 1024, 512, torch.bfloat16, transposed=True)),
]
