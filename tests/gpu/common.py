"""What every GPU test shares: the skip on machines without CUDA, the GPU backends of an op, TF32.

The GPU tests (marker ``gpu``) check the compiled kernels on a real GPU, at VQCNIR's shapes: every op on
every GPU backend (``cuda``, ``triton``) in float32/float16/bfloat16, forward and backward, against the
float64 reference (the conformance suite's comparison, collected by ``test_gpu_ops.py``); the deterministic
modes run to run; float32 under TF32; grids past CUDA's per-axis limits. Run them with
``scripts/gpu_check.sh`` (which also requires every GPU backend) or ``python -m pytest -m gpu tests/gpu``;
without a GPU they are skipped with the reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch

from tests.backends import backend_params

GPU = torch.cuda.is_available()
DEVICE = "cuda"
NEEDS_GPU = [pytest.mark.gpu, pytest.mark.skipif(not GPU, reason="needs a CUDA GPU: scripts/gpu_check.sh on one")]


def gpu_backends(op: str) -> list:
    """The op's GPU backends as pytest params (skipped with the reason where unavailable)."""
    return [p for p in backend_params(op) if p.values[0] in ("cuda", "triton")]


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """torch's float32-matmul switch set inside the block, as a user would (set_float32_matmul_precision)."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if enabled else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
