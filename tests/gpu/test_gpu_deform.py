"""deform_conv2d on a GPU: Triton and CUDA backends at the DBCA's shape and an odd geometry, every dtype, the
output and all five gradients against float64; the deterministic backward bit for bit; float32 under TF32."""

from __future__ import annotations

import pytest
import torch

from tests.gpu.common import DEVICE, DTYPES, NEEDS_GPU, gpu_backends, seeded, tf32
from vqcnir_ops import deform_conv2d
from vqcnir_ops._testing import assert_matches_exact, assert_max_rel_close, deform_offsets, poisoned_empty
from vqcnir_ops.deform.reference import output_size

pytestmark = NEEDS_GPU
BACKENDS = gpu_backends("deform_conv2d")
NAMES = ("input", "offset", "weight", "bias", "mask")
# The DBCA's warp (3 x 3, padding 1, 4 offset groups) on 64 channels, and groups, offset groups, a 3 x 2
# kernel, stride, dilation and sizes that are no multiple of anything.
GEOMETRIES = {
    "dbca 64ch og4 32x32": dict(batch=2, channels=64, out=64, groups=1, offset_groups=4, kernel=(3, 3), stride=(1, 1),
                                padding=(1, 1), dilation=(1, 1), size=(32, 32)),
    "odd g2 og2 3x2 s2 d2 13x11": dict(batch=3, channels=8, out=6, groups=2, offset_groups=2, kernel=(3, 2),
                                       stride=(2, 1), padding=(2, 1), dilation=(2, 2), size=(13, 11)),
}  # fmt: skip


def _inputs(geo: dict, seed: int) -> dict[str, torch.Tensor]:
    gen = seeded(seed)
    (kh, kw), (height, width) = geo["kernel"], geo["size"]
    out_h, out_w = output_size(height, width, geo["kernel"], geo["stride"], geo["padding"], geo["dilation"])
    taps = geo["offset_groups"] * kh * kw
    f64 = dict(dtype=torch.float64, generator=gen)
    fan_in = kh * kw * geo["channels"] // geo["groups"]
    return {
        "input": torch.randn(geo["batch"], geo["channels"], height, width, **f64),
        "offset": deform_offsets((geo["batch"], 2 * taps, out_h, out_w), "mixed", gen),
        "weight": torch.randn(geo["out"], geo["channels"] // geo["groups"], kh, kw, **f64) / fan_in**0.5,
        "bias": torch.randn(geo["out"], **f64),
        "mask": torch.rand(geo["batch"], taps, out_h, out_w, **f64),
    }


def _run(tensors: dict, geo: dict, backend: str, dtype: torch.dtype, grad_out: torch.Tensor):
    """The output and the five gradients, in ``dtype`` on the GPU."""
    leaves = {k: v.to(DEVICE, dtype).requires_grad_() for k, v in tensors.items()}
    with poisoned_empty():
        out = deform_conv2d(*(leaves[k] for k in NAMES[:4]), geo["stride"], geo["padding"], geo["dilation"],
                            leaves["mask"], backend=backend)  # fmt: skip
        grads = torch.autograd.grad(out, [leaves[k] for k in NAMES], grad_out.to(DEVICE, dtype))
    return [out.detach(), *grads]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_matches_float64(backend, dtype, name):
    geo = GEOMETRIES[name]
    tensors = {k: v.to(dtype).double() for k, v in _inputs(geo, len(name)).items()}  # what the kernel sees
    out_shape = (geo["batch"], geo["out"], *tensors["offset"].shape[2:])
    grad_out = torch.randn(out_shape, generator=seeded(1), dtype=torch.float64).to(dtype).double()
    got = _run(tensors, geo, backend, dtype, grad_out)
    exact = _run(tensors, geo, "reference", torch.float64, grad_out)
    low = _run(tensors, geo, "reference", dtype, grad_out)
    for label, g, same_precision, e in zip(("output", *NAMES), got, low, exact, strict=True):
        assert g.dtype == dtype, label
        assert_matches_exact(g.cpu(), same_precision.cpu(), e.cpu(), dtype, f"{backend} {label}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("switch", ["VQCNIR_DETERMINISTIC", "use_deterministic_algorithms"])
def test_deterministic_backward_repeats_bitwise(backend, dtype, switch, monkeypatch):
    geo = GEOMETRIES["dbca 64ch og4 32x32"]
    tensors = _inputs(geo, 5)
    grad_out = torch.randn(geo["batch"], geo["out"], 32, 32, generator=seeded(6), dtype=torch.float64)
    free = _run(tensors, geo, backend, dtype, grad_out)  # atomics: the last bits may vary
    if switch == "VQCNIR_DETERMINISTIC":
        monkeypatch.setenv("VQCNIR_DETERMINISTIC", "1")
        runs = [_run(tensors, geo, backend, dtype, grad_out) for _ in range(2)]
    else:
        previous = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            runs = [_run(tensors, geo, backend, dtype, grad_out) for _ in range(2)]
        finally:
            torch.use_deterministic_algorithms(previous)
    for label, first, second, loose in zip(("output", *NAMES), runs[0], runs[1], free, strict=True):
        assert torch.equal(first, second), f"{label} differs between two deterministic runs"
        rel = 1e-5 if dtype == torch.float32 else 2e-2
        assert_max_rel_close(first.double().cpu(), loose.double().cpu(), rel, label)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_under_tf32(backend):
    # With TF32 allowed, Triton's float32 dots and the CUDA backend's cuBLAS GEMMs take it: ~1e-3 relative.
    geo = GEOMETRIES["dbca 64ch og4 32x32"]
    tensors = _inputs(geo, 7)
    grad_out = torch.randn(geo["batch"], geo["out"], 32, 32, generator=seeded(8), dtype=torch.float64)
    with tf32(True):
        got = _run(tensors, geo, backend, torch.float32, grad_out)
    exact = _run(tensors, geo, "reference", torch.float64, grad_out)
    for label, g, e in zip(("output", *NAMES), got, exact, strict=True):
        assert_max_rel_close(g.double().cpu(), e.cpu(), 5e-3, f"{backend} {label} under TF32")
