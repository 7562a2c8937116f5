"""curve_map: every backend against float64, forward and both gradients, on shapes drawn by hypothesis."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import vqcnir_ops
from tests.backends import backend_params, device_for
from vqcnir_ops import BackendUnavailableError, curve_map
from vqcnir_ops._testing import (
    TOLERANCES,
    assert_close,
    assert_low_precision_close,
    make_noncontiguous,
    poisoned_empty,
)
from vqcnir_ops.curve.reference import curve_map_bwd_ref, curve_map_ref

BACKENDS = backend_params("curve_map")
LOW_AND_FLOAT = [torch.float32, torch.float16, torch.bfloat16]
# x values where the clamp changes behaviour, and far outside [0, 1]
SPECIAL_X = [0.0, 1.0, -0.0, 1e-7, 1 - 1e-7, 1 + 1e-7, -1e-7, -3.0, 4.0, -1e6, 1e6, 0.5]


def _dtypes(backend: str) -> list[torch.dtype]:
    return LOW_AND_FLOAT + ([torch.float64] if backend in ("reference", "cpp") else [])


def _draw_inputs(data: st.DataObject, backend: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, a, dy) as 5-D [B, S, Cs, H, W] / [B, S, n, H, W] float64, values rounded to the drawn dtype."""
    b, s = data.draw(st.integers(1, 2), label="B"), data.draw(st.integers(1, 4), label="S")
    cs = data.draw(st.integers(1, 9), label="Cs")
    # n = 16 costs ~n^2/2 interpreted steps per program under Triton's interpreter: drawn for the compiled
    # backends only; test_many_channels_deterministic runs it on every backend.
    n = data.draw(st.sampled_from([1, 1, 2, 3, 3, 5] + ([] if backend == "triton" else [16])), label="n")
    h, w = data.draw(st.integers(1, 9), label="H"), data.draw(st.integers(1, 11), label="W")
    dtype = data.draw(st.sampled_from(_dtypes(backend)), label="dtype")
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1), label="seed"))
    x = 0.5 + 0.6 * torch.randn(b, s, cs, h, w, generator=gen, dtype=torch.float64)
    special = torch.tensor(SPECIAL_X, dtype=torch.float64)
    pick = torch.rand(x.shape, generator=gen) < 0.2
    x = torch.where(pick, special[torch.randint(0, len(SPECIAL_X), x.shape, generator=gen)], x)
    a_low = data.draw(st.sampled_from([0.0, -1.0]), label="a lower bound")  # the model's (0, 1), or any sign
    a = a_low + (1 - a_low) * torch.rand(b, s, n, h, w, generator=gen, dtype=torch.float64)
    dy = torch.randn(b, s, cs, h, w, generator=gen, dtype=torch.float64)
    return tuple(t.to(dtype).to(torch.float64) for t in (x, a, dy)), dtype  # type: ignore[return-value]


def _prepare(t: torch.Tensor, dtype: torch.dtype, device: str, flat: bool, noncontiguous: bool) -> torch.Tensor:
    t = t.to(device=device, dtype=dtype)
    if flat:
        t = t.flatten(1, 2)
    return make_noncontiguous(t) if noncontiguous else t


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_forward_and_gradients_match_float64(backend, data):
    (x64, a64, dy64), dtype = _draw_inputs(data, backend)
    flat = data.draw(st.booleans(), label="flat layout")
    noncontiguous = data.draw(st.booleans(), label="non-contiguous")
    device = device_for(backend)
    x = _prepare(x64, dtype, device, flat, noncontiguous).requires_grad_()
    a = _prepare(a64, dtype, device, flat, noncontiguous).requires_grad_()
    splits = x64.shape[1] if flat else None
    with poisoned_empty():
        y = curve_map(x, a, splits, backend=backend)
        y.backward(_prepare(dy64, dtype, device, flat, False))
    assert y.shape == x.shape and y.dtype == dtype and x.grad.dtype == dtype and a.grad.dtype == dtype
    exact_y = curve_map_ref(x64, a64)
    exact_dx, exact_da = curve_map_bwd_ref(dy64, x64, a64)
    got = [t.detach().cpu().reshape(e.shape) for t, e in ((y, exact_y), (x.grad, exact_dx), (a.grad, exact_da))]
    if dtype in (torch.float32, torch.float64):
        # rounding compounds along the chain of n curve steps: scale the float32 tolerance by n / 4
        chain = max(1.0, a64.shape[2] / 4)
        tol = {k: v * chain for k, v in TOLERANCES[dtype].items()}
        for name, actual, expected in zip(("y", "dx", "da"), got, (exact_y, exact_dx, exact_da), strict=True):
            torch.testing.assert_close(actual.double(), expected, **tol, msg=lambda m, name=name: f"{name}: {m}")
        return
    # float16/bfloat16: compare with the reference backend run on the same low-precision inputs
    low = [t.to(dtype) for t in (x64, a64, dy64)]
    same_precision = (curve_map_ref(low[0], low[1]), *curve_map_bwd_ref(low[2], low[0], low[1]))
    for name, actual, ref, expected in zip(
        ("y", "dx", "da"), got, same_precision, (exact_y, exact_dx, exact_da), strict=True
    ):
        assert_low_precision_close(actual, ref, expected, name=name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_clamp_convention_at_0_and_1(backend):
    # The official clamp relu(x) - relu(x - 1) has gradient 0 at x = 0 and 1 at x = 1 under autograd.
    device = device_for(backend)
    x = torch.tensor([-1e6, -2.0, -1e-7, -0.0, 0.0, 1e-7, 0.5, 1 - 1e-7, 1.0, 1 + 1e-7, 2.0, 1e6], dtype=torch.float64)
    x5 = x.view(1, 1, 1, 1, -1)
    a5 = torch.full_like(x5, 0.25)
    dtype = torch.float64 if backend in ("reference", "cpp") else torch.float32
    xk = x5.to(device=device, dtype=dtype).requires_grad_()
    ak = a5.to(device=device, dtype=dtype).requires_grad_()
    y = curve_map(xk, ak, backend=backend)
    y.backward(torch.ones_like(y))

    official_x = x5.detach().clone().requires_grad_()
    official_a = a5.detach().clone().requires_grad_()
    clamped = torch.relu(official_x) - torch.relu(official_x - 1)
    expected_y = clamped + official_a * clamped * (1 - clamped)
    expected_y.backward(torch.ones_like(expected_y))
    expected_dx = official_x.grad.flatten()
    assert expected_dx[[3, 4]].tolist() == [0.0, 0.0] and expected_dx[8].item() != 0.0  # the convention itself
    torch.testing.assert_close(y.detach().cpu().double().flatten(), expected_y.detach().flatten(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(xk.grad.cpu().double().flatten(), expected_dx, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(ak.grad.cpu().double().flatten(), official_a.grad.flatten(), rtol=1e-6, atol=1e-7)
    assert torch.all(y.detach().cpu()[..., [0, 1, 2, 3, 4]] == 0)  # exactly 0 below the range


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [1, 16])
def test_many_channels_deterministic(backend, n):
    # Cs = 21 over 300 pixels: several channel chunks per program in the Triton backward; two runs agree bitwise.
    device = device_for(backend)
    gen = torch.Generator().manual_seed(n)
    x = (0.5 + 0.5 * torch.randn(1, 2, 21, 15, 20, generator=gen)).to(device)
    a = torch.rand(1, 2, n, 15, 20, generator=gen).to(device)
    dy = torch.randn(x.shape, generator=gen).to(device)
    dx1, da1 = torch.ops.vqcnir.curve_map_bwd(dy, x, a, backend)
    dx2, da2 = torch.ops.vqcnir.curve_map_bwd(dy, x, a, backend)
    assert torch.equal(dx1, dx2) and torch.equal(da1, da2)
    exact_dx, exact_da = curve_map_bwd_ref(dy.double().cpu(), x.double().cpu(), a.double().cpu())
    assert_close(dx1.cpu(), exact_dx, torch.float32, "dx")
    assert_close(da1.cpu(), exact_da, torch.float32, "da")
    assert_close(torch.ops.vqcnir.curve_map_fwd(x, a, backend).cpu(), curve_map_ref(x.double(), a.double()).cpu(),
                 torch.float32, "y")  # fmt: skip


def test_gradcheck_reference_function():
    gen = torch.Generator().manual_seed(4)
    x = (0.5 + 0.8 * torch.randn(2, 2, 3, 4, 5, generator=gen, dtype=torch.float64)).requires_grad_()
    a = torch.rand(2, 2, 3, 4, 5, generator=gen, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(curve_map_ref, (x, a))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck(backend):
    # float64 where the backend allows it; Triton in float32 with matching step and tolerance.
    device = device_for(backend)
    dtype = torch.float64 if backend in ("reference", "cpp") else torch.float32
    gen = torch.Generator().manual_seed(5)
    x = 0.5 + 0.8 * torch.randn(1, 2, 3, 3, 4, generator=gen, dtype=torch.float64)
    x = torch.where((x.abs() < 0.02) | ((x - 1).abs() < 0.02), x + 0.1, x)  # keep finite differences off the kinks
    x = x.to(device=device, dtype=dtype).requires_grad_()
    a = torch.rand(1, 2, 2, 3, 4, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    a.requires_grad_()
    # Triton: one random directional derivative (fast_mode) keeps the interpreted launches few
    loose = {} if dtype == torch.float64 else {"eps": 1e-3, "atol": 5e-3, "rtol": 5e-3, "fast_mode": True}
    assert torch.autograd.gradcheck(lambda u, v: curve_map(u, v, backend=backend), (x, a), **loose)


@pytest.mark.parametrize("backend", BACKENDS)
def test_opcheck(backend):
    device = device_for(backend)
    x = (0.5 + torch.randn(2, 3, 5, 4, 6, device=device)).requires_grad_()
    a = torch.rand(2, 3, 2, 4, 6, device=device).requires_grad_()
    torch.library.opcheck(torch.ops.vqcnir.curve_map_fwd.default, (x, a, backend))
    dy = torch.randn(2, 3, 5, 4, 6, device=device)
    torch.library.opcheck(torch.ops.vqcnir.curve_map_bwd.default, (dy, x.detach(), a.detach(), backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_inputs(backend):
    device = device_for(backend)
    x = torch.randn(0, 2, 3, 4, 4, device=device, requires_grad=True)
    a = torch.rand(0, 2, 3, 4, 4, device=device, requires_grad=True)
    y = curve_map(x, a, backend=backend)
    y.sum().backward()
    assert y.shape == x.shape and a.grad.shape == a.shape


@pytest.mark.slow
def test_torch_compile_fullgraph():
    compiled = torch.compile(lambda x, a: curve_map(x, a, splits=2), fullgraph=True, backend="aot_eager")
    x = (0.5 + torch.randn(2, 8, 5, 6)).requires_grad_()
    a = torch.rand(2, 6, 5, 6, requires_grad=True)
    y = compiled(x, a)
    y.sum().backward()
    torch.testing.assert_close(y, curve_map(x, a, splits=2))
    expected = torch.autograd.grad(curve_map(x, a, splits=2).sum(), (x, a))
    torch.testing.assert_close(x.grad, expected[0])
    torch.testing.assert_close(a.grad, expected[1])


# --- bad input and backend choice -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "a", "splits", "error", "words"),
    [
        (
            torch.randn(1, 4, 2, 5, 5),
            torch.rand(1, 3, 2, 5, 5),
            None,
            ValueError,
            "'a' has S = 3 splits but 'x' has S = 4",
        ),
        (torch.randn(1, 4, 2, 5, 5), torch.rand(1, 4, 2, 6, 5), None, ValueError, r"'a' has spatial size \(H, W\)"),
        (torch.randn(1, 4, 2, 5, 5), torch.rand(1, 4, 2, 5, 4), None, ValueError, r"'a' has spatial size \(H, W\)"),
        (torch.randn(2, 4, 2, 5, 5), torch.rand(1, 4, 2, 5, 5), None, ValueError, "'a' has batch 1"),
        (torch.randn(1, 4, 2, 5, 5), torch.rand(1, 4, 0, 5, 5), None, ValueError, "1 to 16 curve maps"),
        (torch.randn(1, 4, 2, 5, 5), torch.rand(1, 4, 17, 5, 5), None, ValueError, "1 to 16 curve maps"),
        (torch.randn(1, 4, 2, 5, 5), torch.rand(1, 4, 2, 5, 5), 3, ValueError, "'splits' is 3 but 'x'"),
        (torch.randn(1, 8, 5, 5), torch.rand(1, 12, 5, 5), None, ValueError, "'splits' is required"),
        (torch.randn(1, 9, 5, 5), torch.rand(1, 12, 5, 5), 4, ValueError, "'x' has 9 channels, not a multiple"),
        (torch.randn(1, 8, 5, 5), torch.rand(1, 10, 5, 5), 4, ValueError, "'a' has 10 channels, not a multiple"),
        (torch.randn(1, 8, 5, 5), torch.rand(1, 12, 5, 5), 0, ValueError, "'splits' must be a positive int"),
        (torch.randn(1, 8, 5, 5), torch.rand(1, 4, 3, 5, 5), 4, ValueError, "both be 5-D"),
        (torch.randn(8, 5, 5), torch.rand(12, 5, 5), 4, ValueError, "'x' must have 4 or 5 dimensions"),
        (torch.randn(1, 8, 5, 5), torch.rand(1, 12, 5, 5).double(), 4, TypeError, "'a' must have the dtype of 'x'"),
        (torch.randint(0, 2, (1, 8, 5, 5)), torch.rand(1, 12, 5, 5), 4, TypeError, "'x' must be float"),
        (torch.randn(1, 8, 5, 5), torch.rand(1, 12, 5, 5, device="meta"), 4, ValueError, "same device"),
        ("x", torch.rand(1, 12, 5, 5), 4, TypeError, "'x' must be a torch.Tensor"),
    ],
)
def test_bad_input_names_the_argument(x, a, splits, error, words):
    with pytest.raises(error, match=words):
        curve_map(x, a, splits)


def test_raw_cpp_kernel_checks_shapes():
    if vqcnir_ops._backend.backend_unavailable_reason("cpp", "cpu") is not None:
        pytest.skip("cpp backend unavailable")
    with pytest.raises(ValueError, match="'a' must have shape"):
        torch.ops.vqcnir_C.curve_map_fwd(torch.randn(1, 2, 3, 4, 4), torch.rand(1, 3, 2, 4, 4))
    with pytest.raises(ValueError, match="'a' must hold 1 to 16"):
        torch.ops.vqcnir_C.curve_map_fwd(torch.randn(1, 2, 3, 4, 4), torch.rand(1, 2, 17, 4, 4))
    with pytest.raises(ValueError, match="'dy' must have the shape"):
        torch.ops.vqcnir_C.curve_map_bwd(
            torch.randn(1, 2, 3, 4, 5), torch.randn(1, 2, 3, 4, 4), torch.rand(1, 2, 1, 4, 4)
        )


def test_no_cuda_backend_and_auto_choice(monkeypatch):
    x, a = torch.randn(1, 2, 3, 4, 4), torch.rand(1, 2, 1, 4, 4)
    with pytest.raises(BackendUnavailableError, match="not implemented for this op"):
        curve_map(x, a, backend="cuda")
    chosen = vqcnir_ops._backend.resolve_backend("curve_map", x.device, x.dtype)
    expected = "cpp" if vqcnir_ops._backend.backend_unavailable_reason("cpp", "cpu") is None else "reference"
    assert chosen == expected
    monkeypatch.setenv("VQCNIR_OPS_BACKEND", "reference")
    assert vqcnir_ops._backend.resolve_backend("curve_map", x.device, x.dtype) == "reference"


def test_public_api_exports():
    assert vqcnir_ops.curve_map is curve_map
