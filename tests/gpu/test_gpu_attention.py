"""bidirectional_channel_attention on a GPU beyond the conformance suite's comparison (tests/gpu/test_gpu_ops.py):
float32 under TF32, at the 1/8 level of a 256 px crop."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.gpu.common import NEEDS_GPU, gpu_backends, tf32
from tests.ops.conformance import exact_and_baseline, run
from tests.ops.test_channel_attention import ChannelAttentionCase
from vqcnir_ops._testing import assert_max_rel_close

pytestmark = NEEDS_GPU
BACKENDS = gpu_backends("bidirectional_channel_attention")


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_under_tf32(backend):
    # torch allows TF32: the float32 dots take it (10-bit mantissa), as the official code's matmuls would.
    case = ChannelAttentionCase()
    example = next(iter(case.gpu_examples().values())).rounded(case)
    example = dataclasses.replace(example, seed=11)
    with tf32(True):
        runs = [run(case, example, backend) for _ in range(2)]
    for first, second in zip(
        [*runs[0].outputs, *runs[0].grads.values()], [*runs[1].outputs, *runs[1].grads.values()], strict=True
    ):
        assert torch.equal(first, second), "not deterministic"
    exact, _ = exact_and_baseline(case, example)
    for got, want in zip(runs[0].outputs, exact.outputs, strict=True):
        assert_max_rel_close(got, want, 5e-3, f"{backend} output")
    for name, grad in runs[0].grads.items():
        assert_max_rel_close(grad, exact.grads[name], 20 * 5e-3, f"{backend} grad {name}", atol=5e-3)
