"""curve_map: the conformance suite's case, and the curve's own special values (the clamp's convention, long
chains of channels and curves)."""

from __future__ import annotations

import pytest
import torch

import vqcnir_ops
from tests.backends import backend_params, device_for
from tests.ops.conformance import BadCall, Case, Conformance, Example, Tensors, st
from vqcnir_ops import curve_map
from vqcnir_ops._testing import TOLERANCES, assert_close, assert_low_precision_close
from vqcnir_ops.curve.reference import curve_map_bwd_ref, curve_map_ref

BACKENDS = backend_params("curve_map")
# x values where the clamp changes behaviour, and far outside [0, 1]
SPECIAL_X = [0.0, 1.0, -0.0, 1e-7, 1 - 1e-7, 1 + 1e-7, -1e-7, -3.0, 4.0, -1e6, 1e6, 0.5]


def _inputs(shape: tuple[int, ...], n: int, gen: torch.Generator, a_low: float = 0.0) -> Tensors:
    """x [B, S, Cs, H, W] around [0, 1] with a fifth of special values, a [B, S, n, H, W] in (a_low, 1)."""
    x = 0.5 + 0.6 * torch.randn(shape, generator=gen, dtype=torch.float64)
    special = torch.tensor(SPECIAL_X, dtype=torch.float64)
    pick = torch.rand(x.shape, generator=gen) < 0.2
    x = torch.where(pick, special[torch.randint(0, len(SPECIAL_X), x.shape, generator=gen)], x)
    a = a_low + (1 - a_low) * torch.rand(*shape[:2], n, *shape[3:], generator=gen, dtype=torch.float64)
    return {"x": x, "a": a}


class CurveMapCase(Case):
    op = "curve_map"
    activations = ("x", "a")
    differentiable = ("x", "a")
    gradcheck_float32 = True  # Triton too, in float32 with a loose step (few interpreted launches)

    def call(self, tensors: Tensors, options: dict, backend: str | None) -> tuple[torch.Tensor, ...]:
        x, a = tensors["x"], tensors["a"]
        if options.get("flat"):  # [B, S * C, H, W] with splits = S
            y = curve_map(x.flatten(1, 2), a.flatten(1, 2), x.shape[1], backend=backend)
            return (y.unflatten(1, (x.shape[1], x.shape[2])),)
        return (curve_map(x, a, backend=backend),)

    def reference(self, tensors: Tensors, options: dict) -> tuple[torch.Tensor, ...]:
        return (curve_map_ref(tensors["x"], tensors["a"]),)

    def draw(self, data: st.DataObject, backend: str) -> Example:
        shape = tuple(
            data.draw(st.integers(lo, hi), label=name)
            for name, lo, hi in (("B", 1, 2), ("S", 1, 4), ("Cs", 1, 9), ("H", 1, 9), ("W", 1, 11))
        )
        # n = 16 costs ~n^2/2 interpreted steps per program under Triton's interpreter: drawn for the compiled
        # backends only; test_many_channels_deterministic runs it on every backend.
        n = data.draw(st.sampled_from([1, 1, 2, 3, 3, 5] + ([] if backend == "triton" else [16])), label="n")
        a_low = data.draw(st.sampled_from([0.0, -1.0]), label="a lower bound")  # the model's (0, 1), or any sign
        gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1), label="seed"))
        return Example(
            _inputs(shape, n, gen, a_low),  # type: ignore[arg-type]
            dtype=data.draw(st.sampled_from(self.dtypes(backend)), label="dtype"),
            options={"flat": data.draw(st.booleans(), label="flat layout")},
            noncontiguous=frozenset(("x", "a") if data.draw(st.booleans(), label="non-contiguous") else ()),
            seed=sum(shape) + n,
        )

    def assert_close(
        self, name: str, actual: torch.Tensor, low: torch.Tensor, exact: torch.Tensor, example: Example
    ) -> None:
        dtype = self.precision(actual, example)
        if dtype in (torch.float16, torch.bfloat16):
            assert_low_precision_close(actual, low, exact, name=name)
            return
        # rounding compounds along the chain of n curve steps: scale the tolerance by n / 4
        chain = max(1.0, example.tensors["a"].shape[2] / 4)
        tol = {k: v * chain for k, v in TOLERANCES[dtype].items()}
        torch.testing.assert_close(actual.double(), exact.double(), **tol, msg=lambda m: f"{name}: {m}")

    def fixed_example(self) -> Example:
        return Example(_inputs((2, 3, 5, 4, 6), 2, torch.Generator().manual_seed(0)), options={"flat": True})

    def gradcheck_examples(self) -> list[Example]:
        gen = torch.Generator().manual_seed(5)
        x = 0.5 + 0.8 * torch.randn(1, 2, 3, 3, 4, generator=gen, dtype=torch.float64)
        x = torch.where((x.abs() < 0.02) | ((x - 1).abs() < 0.02), x + 0.1, x)  # finite differences off the kinks
        return [
            Example({"x": x, "a": torch.rand(1, 2, 2, 3, 4, generator=gen, dtype=torch.float64)}, dtype=torch.float64)
        ]

    def empty_example(self) -> Example:
        return Example(_inputs((0, 2, 3, 4, 4), 3, torch.Generator().manual_seed(0)))

    def opcheck_calls(self, backend: str, device: str) -> list:
        x = (0.5 + torch.randn(2, 3, 5, 4, 6, device=device)).requires_grad_()
        a = torch.rand(2, 3, 2, 4, 6, device=device).requires_grad_()
        dy = torch.randn(2, 3, 5, 4, 6, device=device)
        return [
            (torch.ops.vqcnir.curve_map_fwd.default, (x, a, backend)),
            (torch.ops.vqcnir.curve_map_bwd.default, (dy, x.detach(), a.detach(), backend)),
        ]

    def bad_arguments(self) -> list[BadCall]:
        x5, a5, x4, a4 = (
            torch.randn(1, 4, 2, 5, 5),
            torch.rand(1, 4, 2, 5, 5),
            torch.randn(1, 8, 5, 5),
            torch.rand(1, 12, 5, 5),
        )
        cases = [
            (
                "splits differ",
                x5,
                torch.rand(1, 3, 2, 5, 5),
                None,
                ValueError,
                "'a' has S = 3 splits but 'x' has S = 4",
            ),
            ("height differs", x5, torch.rand(1, 4, 2, 6, 5), None, ValueError, r"'a' has spatial size \(H, W\)"),
            ("width differs", x5, torch.rand(1, 4, 2, 5, 4), None, ValueError, r"'a' has spatial size \(H, W\)"),
            ("batch differs", torch.randn(2, 4, 2, 5, 5), a5, None, ValueError, "'a' has batch 1"),
            ("no curve", x5, torch.rand(1, 4, 0, 5, 5), None, ValueError, "1 to 16 curve maps"),
            ("17 curves", x5, torch.rand(1, 4, 17, 5, 5), None, ValueError, "1 to 16 curve maps"),
            ("wrong splits", x5, a5, 3, ValueError, "'splits' is 3 but 'x'"),
            ("flat without splits", x4, a4, None, ValueError, "'splits' is required"),
            ("x not divisible", torch.randn(1, 9, 5, 5), a4, 4, ValueError, "'x' has 9 channels, not a multiple"),
            ("a not divisible", x4, torch.rand(1, 10, 5, 5), 4, ValueError, "'a' has 10 channels, not a multiple"),
            ("zero splits", x4, a4, 0, ValueError, "'splits' must be a positive int"),
            ("layouts differ", x4, torch.rand(1, 4, 3, 5, 5), 4, ValueError, "both be 5-D"),
            ("3-D", torch.randn(8, 5, 5), torch.rand(12, 5, 5), 4, ValueError, "'x' must have 4 or 5 dimensions"),
            ("dtypes differ", x4, a4.double(), 4, TypeError, "'a' has dtype torch.float64 but 'x' has torch.float32"),
            ("integer x", torch.randint(0, 2, (1, 8, 5, 5)), a4, 4, TypeError, "'x' must be float"),
            ("two devices", x4, torch.rand(1, 12, 5, 5, device="meta"), 4, ValueError, "same device"),
            ("string x", "x", a4, 4, TypeError, "'x' must be a torch.Tensor"),
        ]
        return [BadCall(i, lambda x=x, a=a, s=s: curve_map(x, a, s), e, w) for i, x, a, s, e, w in cases]

    def nan_examples(self) -> dict[str, Example]:
        nan, inf = float("nan"), float("inf")
        special = [("x", nan), ("a", nan), ("x", inf), ("x", -inf), ("a", inf)]
        return self.poisoned(special, at=[(0, 1, 0, 2, 3), (1, 2, 1, 0, 0)])

    def gpu_examples(self) -> dict[str, Example]:
        """VQCNIR's AIEM (4 splits of 64 channels, 3 curves, 32 x 32), 16 curves, 300 channels per split."""
        examples = {}
        for shape, n in (((8, 4, 64, 32, 32), 3), ((2, 3, 5, 7, 9), 16), ((1, 2, 300, 3, 5), 1)):
            gen = torch.Generator().manual_seed(n)
            x = 0.5 + 0.6 * torch.randn(shape, generator=gen, dtype=torch.float64)
            a = torch.rand(*shape[:2], n, *shape[3:], generator=gen, dtype=torch.float64)
            examples[f"{shape} n={n}"] = Example({"x": x, "a": a})
        return examples


class TestCurveMap(Conformance):
    case = CurveMapCase()


# --- the curve's own special values ------------------------------------------------------------------------


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
    y = torch.ops.vqcnir.curve_map_fwd(x, a, backend).cpu()
    assert_close(y, curve_map_ref(x.double(), a.double()).cpu(), torch.float32, "y")


def test_reference_backward_formula_is_its_autograd():
    # curve_map_bwd_ref (the reference backend's backward) is the explicit chain rule of curve_map_ref.
    gen = torch.Generator().manual_seed(4)
    x = (0.5 + 0.8 * torch.randn(2, 2, 3, 4, 5, generator=gen, dtype=torch.float64)).requires_grad_()
    a = torch.rand(2, 2, 3, 4, 5, generator=gen, dtype=torch.float64).requires_grad_()
    dy = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    expected = torch.autograd.grad(curve_map_ref(x, a), (x, a), dy)
    for got, want in zip(curve_map_bwd_ref(dy, x.detach(), a.detach()), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


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


def test_public_api_exports():
    assert vqcnir_ops.curve_map is curve_map
