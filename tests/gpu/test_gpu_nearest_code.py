"""nearest_code on a GPU beyond the conformance suite's comparison (tests/gpu/test_gpu_ops.py): column-major
rows with a large offset, and IEEE float32 even where torch allows TF32."""

from __future__ import annotations

import pytest
import torch

from tests.gpu.common import DEVICE, NEEDS_GPU, gpu_backends, seeded, tf32
from vqcnir_ops import nearest_code
from vqcnir_ops._testing import check_nearest_code

pytestmark = NEEDS_GPU
BACKENDS = gpu_backends("nearest_code")


def _inputs(n: int, k: int, d: int, dtype: torch.dtype, seed: int, offset: float = 0.0):
    """Rows near codes (the regime of a trained quantizer), on the GPU in ``dtype``."""
    gen = seeded(seed)
    codebook = offset + torch.randn(k, d, generator=gen, dtype=torch.float64)
    z = codebook[torch.randint(0, k, (n,), generator=gen)] + 0.3 * torch.randn(n, d, generator=gen, dtype=torch.float64)
    return z.to(DEVICE, dtype), codebook.to(DEVICE, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_transposed_rows_and_large_offset(backend):
    z, codebook = _inputs(777, 300, 64, torch.float32, seed=3, offset=1000.0)
    z_t = z.t().contiguous().t()  # column-major rows
    indices, dist = nearest_code(z_t, codebook, backend=backend)
    check_nearest_code(z.cpu(), codebook.cpu(), indices, dist, torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ieee_even_where_torch_allows_tf32(backend):
    # The distance contract (vqcnir_ops.quantize.reference) needs IEEE float32: TF32 never applies here.
    z, codebook = _inputs(1024, 512, 256, torch.float32, seed=4, offset=3.0)
    with tf32(True):
        indices, dist = nearest_code(z, codebook, backend=backend)
    check_nearest_code(z.cpu(), codebook.cpu(), indices, dist, torch.float32)
