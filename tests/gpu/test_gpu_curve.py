"""curve_map on a GPU: the compiled Triton kernels at VQCNIR's AIEM shape, every dtype, forward and backward."""

from __future__ import annotations

import pytest
import torch

from tests.gpu.common import DEVICE, DTYPES, NEEDS_GPU, gpu_backends, seeded
from vqcnir_ops import curve_map
from vqcnir_ops._testing import assert_matches_exact, poisoned_empty
from vqcnir_ops.curve.reference import curve_map_bwd_ref, curve_map_ref

pytestmark = NEEDS_GPU
BACKENDS = gpu_backends("curve_map")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "n"), [((8, 4, 64, 32, 32), 3), ((2, 3, 5, 7, 9), 16), ((1, 2, 300, 3, 5), 1)])
def test_matches_float64_and_repeats_bitwise(backend, dtype, shape, n):
    gen = seeded(n)
    x64 = 0.5 + 0.6 * torch.randn(shape, generator=gen, dtype=torch.float64)
    a64 = torch.rand(*shape[:2], n, *shape[3:], generator=gen, dtype=torch.float64)
    dy64 = torch.randn(shape, generator=gen, dtype=torch.float64)
    x64, a64, dy64 = (t.to(dtype).double() for t in (x64, a64, dy64))  # the exact values the kernel sees
    runs = []
    for _ in range(2):
        x, a = (t.to(DEVICE, dtype).requires_grad_() for t in (x64, a64))
        with poisoned_empty():
            y = curve_map(x, a, backend=backend)
            dx, da = torch.autograd.grad(y, (x, a), dy64.to(DEVICE, dtype))
        runs.append([y.detach(), dx, da])
    assert all(torch.equal(first, second) for first, second in zip(*runs, strict=True)), "not deterministic"
    exact = (curve_map_ref(x64, a64), *curve_map_bwd_ref(dy64, x64, a64))
    low_in = [t.to(dtype) for t in (x64, a64, dy64)]
    low = (curve_map_ref(low_in[0], low_in[1]), *curve_map_bwd_ref(low_in[2], low_in[0], low_in[1]))
    for name, got, same_precision, want in zip(("y", "dx", "da"), runs[0], low, exact, strict=True):
        assert got.dtype == dtype, name
        assert_matches_exact(got.cpu(), same_precision, want, dtype, name)
