"""deform_conv2d on a GPU beyond the conformance suite's comparison (tests/gpu/test_gpu_ops.py): the deterministic
backward bit for bit, and float32 under TF32, at the DBCA's shape (3 x 3, padding 1, 4 offset groups, 64 channels)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.gpu.common import NEEDS_GPU, gpu_backends, tf32
from tests.ops.conformance import Example, Result, exact_and_baseline, run
from tests.ops.test_deform_conv2d import DeformConv2dCase
from vqcnir_ops._testing import assert_max_rel_close

pytestmark = NEEDS_GPU
BACKENDS = gpu_backends("deform_conv2d")
CASE = DeformConv2dCase()


def _dbca(dtype: torch.dtype, seed: int) -> Example:
    example = dataclasses.replace(CASE.gpu_examples()["dbca 64ch og4 32x32"], dtype=dtype, seed=seed)
    return example.rounded(CASE)


def _values(result: Result) -> list[tuple[str, torch.Tensor]]:
    return [("output", result.outputs[0]), *((f"grad {k}", g) for k, g in result.grads.items())]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("switch", ["VQCNIR_DETERMINISTIC", "use_deterministic_algorithms"])
def test_deterministic_backward_repeats_bitwise(backend, dtype, switch, monkeypatch):
    example = _dbca(dtype, 6)
    free = run(CASE, example, backend)  # atomics: the last bits may vary
    if switch == "VQCNIR_DETERMINISTIC":
        monkeypatch.setenv("VQCNIR_DETERMINISTIC", "1")
        runs = [run(CASE, example, backend) for _ in range(2)]
    else:
        previous = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            runs = [run(CASE, example, backend) for _ in range(2)]
        finally:
            torch.use_deterministic_algorithms(previous)
    for (label, first), (_, second), (_, loose) in zip(*map(_values, (*runs, free)), strict=True):
        assert torch.equal(first, second), f"{label} differs between two deterministic runs"
        rel = 1e-5 if dtype == torch.float32 else 2e-2
        assert_max_rel_close(first.double(), loose.double(), rel, label)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_under_tf32(backend):
    # With TF32 allowed, Triton's float32 dots and the CUDA backend's cuBLAS GEMMs take it: ~1e-3 relative.
    example = _dbca(torch.float32, 8)
    with tf32(True):
        got = run(CASE, example, backend)
    exact, _ = exact_and_baseline(CASE, example)
    for (label, g), (_, e) in zip(_values(got), _values(exact), strict=True):
        assert_max_rel_close(g.double(), e, 5e-3, f"{backend} {label} under TF32")
