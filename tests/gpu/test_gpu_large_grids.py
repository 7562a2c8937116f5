"""Grids past CUDA's per-axis limits, run for real on a GPU: an image above 16.7 MP per plane, and batch x
splits / batch x heads / batch beyond 65,535, against the reference (the CPU tests can only record these)."""

from __future__ import annotations

import pytest
import torch

from tests.gpu.common import DEVICE, NEEDS_GPU, gpu_backends, seeded
from vqcnir_ops import bidirectional_channel_attention, bidirectional_channel_attention_ref, curve_map, deform_conv2d
from vqcnir_ops._testing import assert_max_rel_close
from vqcnir_ops.curve.reference import curve_map_ref
from vqcnir_ops.deform.reference import deform_conv2d_ref

pytestmark = NEEDS_GPU


@pytest.mark.parametrize("backend", gpu_backends("curve_map"))
@pytest.mark.parametrize("shape", [(1, 1, 2, 4097, 4096), (40000, 2, 1, 1, 3)], ids=["16.8MP", "80000 splits"])
def test_curve_map(backend, shape):
    gen = seeded(1)
    x = (0.5 + 0.5 * torch.randn(shape, generator=gen)).to(DEVICE).requires_grad_()
    a = torch.rand(*shape[:2], 2, *shape[3:], generator=gen).to(DEVICE).requires_grad_()
    y = curve_map(x, a, backend=backend)
    dx, da = torch.autograd.grad(y.sum(), (x, a))
    x64, a64 = x.detach().double().requires_grad_(), a.detach().double().requires_grad_()
    y64 = curve_map_ref(x64, a64)
    dx64, da64 = torch.autograd.grad(y64.sum(), (x64, a64))
    for label, got, want in (("y", y, y64), ("dx", dx, dx64), ("da", da, da64)):
        assert_max_rel_close(got.detach().double(), want.detach(), 1e-5, label)


@pytest.mark.parametrize("backend", gpu_backends("bidirectional_channel_attention"))
def test_attention_past_65535_batch_heads(backend):
    gen = seeded(2)
    tensors = [torch.randn(16400, 4, 16, 8, generator=gen).to(DEVICE) for _ in range(4)]  # 65,600 (batch, head)
    temperature = torch.ones(4, device=DEVICE)
    out = bidirectional_channel_attention(*tensors, temperature, backend=backend)
    ref = bidirectional_channel_attention_ref(*(t.double() for t in tensors), temperature.double())
    for got, want in zip(out, ref, strict=True):
        assert_max_rel_close(got.double(), want, 1e-5, "attention")


@pytest.mark.parametrize("backend", gpu_backends("deform_conv2d"))
def test_deform_past_65535_batch(backend):
    gen = seeded(3)
    x = torch.randn(65537, 2, 3, 3, generator=gen).to(DEVICE).requires_grad_()
    offset = torch.randn(65537, 2, 3, 3, generator=gen).to(DEVICE).requires_grad_()
    weight = torch.randn(4, 1, 1, 1, generator=gen).to(DEVICE).requires_grad_()  # 2 groups
    out = deform_conv2d(x, offset, weight, backend=backend)
    grads = torch.autograd.grad(out.square().sum(), (x, offset, weight))
    leaves = [t.detach().double().requires_grad_() for t in (x, offset, weight)]
    ref = deform_conv2d_ref(leaves[0], leaves[1], leaves[2], None, (1, 1), (0, 0), (1, 1), None)
    ref_grads = torch.autograd.grad(ref.square().sum(), leaves)
    assert_max_rel_close(out.detach().double(), ref.detach(), 1e-5, "output")
    for label, got, want in zip(("input", "offset", "weight"), grads, ref_grads, strict=True):
        assert_max_rel_close(got.double(), want, 1e-4, f"grad {label}")
