"""bidirectional_channel_attention on a GPU: the Triton phases at VQCNIR's decoder levels, every dtype,
outputs and every gradient against float64; float32 under TF32; the same bits run to run."""

from __future__ import annotations

import pytest
import torch

from tests.gpu.common import DEVICE, DTYPES, NEEDS_GPU, gpu_backends, seeded, tf32
from vqcnir_ops import bidirectional_channel_attention, bidirectional_channel_attention_ref
from vqcnir_ops._testing import (
    TOLERANCES,
    assert_low_precision_close,
    assert_max_rel_close,
    channel_attention_in_dtype,
)

pytestmark = NEEDS_GPU
BACKENDS = gpu_backends("bidirectional_channel_attention")
STREAMS = ("q_d", "q_g", "v_d", "v_g", "f_d", "f_g")
# [B, heads, C, N]: the 1/8 and 1/4 levels of 256 px crops (256 channels, 4 heads), the full-resolution level
# of a 64 px crop (64 channels, 1 head), and an odd one without normalisation.
SHAPES = [((2, 4, 64, 1024), True), ((1, 1, 64, 4096), True), ((2, 3, 20, 333), False)]


def _inputs(shape: tuple[int, ...], seed: int) -> dict[str, torch.Tensor]:
    gen = seeded(seed)
    heads, channels = shape[1], shape[2]
    tensors = {name: torch.randn(shape, generator=gen, dtype=torch.float64) for name in STREAMS}
    tensors["temperature"] = 0.5 + torch.rand(heads, generator=gen, dtype=torch.float64)
    for name in ("gamma_d", "gamma_g"):
        tensors[name] = torch.randn(heads * channels, generator=gen, dtype=torch.float64)
    return tensors


def _run(fn, tensors: dict[str, torch.Tensor], weights: list[torch.Tensor]):
    """Outputs and the gradient of ``sum(outputs * weights)`` for every input."""
    leaves = {name: t.detach().requires_grad_() for name, t in tensors.items()}
    out = fn(**leaves)
    loss = sum((o.double() * w.to(o.device)).sum() for o, w in zip(out, weights, strict=True))
    return [o.detach() for o in out], dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True))


def _cast(tensors: dict[str, torch.Tensor], dtype: torch.dtype, device: str) -> dict[str, torch.Tensor]:
    """Activations in ``dtype``, parameters in float32 (a module's), on ``device``."""
    return {k: v.to(device, dtype if k in STREAMS else torch.float32) for k, v in tensors.items()}


def _official_in(normalize: bool, heads: int, channels: int):
    """The official formula in the low dtype itself: the baseline a half-precision kernel is held to."""

    def fn(q_d, q_g, v_d, v_g, temperature, f_d, f_g, gamma_d, gamma_g):
        scale = 1.0 if normalize else channels**-0.5
        a_d, a_g = channel_attention_in_dtype(q_d, q_g, v_d, v_g, temperature, normalize, scale)
        view = (1, heads, channels, 1)
        return f_d + gamma_d.to(a_g.dtype).view(view) * a_g, f_g + gamma_g.to(a_d.dtype).view(view) * a_d

    return fn


def _check(backend: str, shape: tuple[int, ...], normalize: bool, dtype: torch.dtype, rel: float, seed: int) -> None:
    tensors = _inputs(shape, seed)
    cast = _cast(tensors, dtype, DEVICE)
    exact = {k: v.double().cpu() for k, v in cast.items()}  # the float64 truth of the rounded inputs
    weights = [torch.randn(shape, generator=seeded(seed + 1), dtype=torch.float64).to(dtype).double() for _ in (0, 1)]
    runs = [_run(lambda **t: bidirectional_channel_attention(**t, normalize=normalize, backend=backend), cast, weights)
            for _ in range(2)]  # fmt: skip
    for first, second in zip([*runs[0][0], *runs[0][1].values()], [*runs[1][0], *runs[1][1].values()], strict=True):
        assert torch.equal(first, second), "not deterministic"
    (out, grads), (out64, grads64) = (
        runs[0],
        _run(lambda **t: bidirectional_channel_attention_ref(**t, normalize=normalize), exact, weights),
    )
    if dtype == torch.float32:
        for o, e in zip(out, out64, strict=True):
            assert_max_rel_close(o.cpu(), e, rel, f"{backend} output")
        for name, g in grads.items():
            assert_max_rel_close(g.cpu(), grads64[name], 20 * rel, f"{backend} grad {name}", atol=rel)
        return
    base_out, base_grads = _run(_official_in(normalize, shape[1], shape[2]), _cast(tensors, dtype, DEVICE), weights)
    for o, b, e in zip(out, base_out, out64, strict=True):
        assert o.dtype == dtype
        assert_low_precision_close(o.cpu(), b.cpu(), e, f"{backend} {dtype} output", floor=TOLERANCES[dtype]["atol"])
    for name, g in grads.items():
        assert_low_precision_close(g.cpu(), base_grads[name].cpu(), grads64[name], f"{backend} {dtype} grad {name}",
                                   floor=max(3e-3, TOLERANCES[dtype]["atol"]))  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "normalize"), SHAPES)
def test_matches_float64_and_repeats_bitwise(backend, dtype, shape, normalize):
    _check(backend, shape, normalize, dtype, 1e-5, seed=sum(shape))


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_under_tf32(backend):
    # torch allows TF32: the float32 dots take it (10-bit mantissa), as the official code's matmuls would.
    with tf32(True):
        _check(backend, SHAPES[0][0], True, torch.float32, 5e-3, seed=11)
