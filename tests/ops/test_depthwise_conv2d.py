"""depthwise_conv2d: the conformance suite's case, the layer's state-dict compatibility with nn.Conv2d, and the
backend fallback of the layer inside networks whose fused ops run on another backend."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import vqcnir_ops
from tests.backends import backend_params
from tests.ops.conformance import BadCall, Case, Conformance, Example, Tensors, st
from vqcnir_ops import DepthwiseConv2d, depthwise_conv2d
from vqcnir_ops.depthwise.reference import depthwise_conv2d_ref

BACKENDS = backend_params("depthwise_conv2d")


def _inputs(shape: tuple[int, ...], kernel: tuple[int, int], bias: bool, gen: torch.Generator) -> Tensors:
    tensors = {
        "input": torch.randn(shape, generator=gen, dtype=torch.float64),
        "weight": 0.3 * torch.randn(shape[1], 1, *kernel, generator=gen, dtype=torch.float64),
    }
    if bias:
        tensors["bias"] = torch.randn(shape[1], generator=gen, dtype=torch.float64)
    return tensors


class DepthwiseConv2dCase(Case):
    op = "depthwise_conv2d"
    activations = ("input",)
    differentiable = ("input", "weight", "bias")

    def call(self, tensors: Tensors, options: dict, backend: str | None) -> tuple[torch.Tensor, ...]:
        return (
            depthwise_conv2d(
                tensors["input"], tensors["weight"], tensors.get("bias"), options["padding"], options["dilation"],
                backend=backend,
            ),
        )  # fmt: skip

    def reference(self, tensors: Tensors, options: dict) -> tuple[torch.Tensor, ...]:
        return (
            depthwise_conv2d_ref(
                tensors["input"], tensors["weight"], tensors.get("bias"), options["padding"], options["dilation"]
            ),
        )

    def draw(self, data: st.DataObject, backend: str) -> Example:
        kernel = tuple(data.draw(st.sampled_from([1, 2, 3, 5, 7]), label=f"k{axis}") for axis in "hw")
        dilation = tuple(data.draw(st.integers(1, 3), label=f"d{axis}") for axis in "hw")
        padding = tuple(data.draw(st.integers(0, 4), label=f"p{axis}") for axis in "hw")
        # Sizes at least the dilated kernel after padding; widths across the 8 / 16 / 32 column blocks.
        size = [
            max(1, (d * (k - 1) + 1) - 2 * p) + data.draw(st.integers(0, extra), label=f"extra {axis}")
            for k, d, p, axis, extra in zip(kernel, dilation, padding, "hw", (9, 40), strict=True)
        ]
        shape = (data.draw(st.integers(1, 3), label="B"), data.draw(st.integers(1, 6), label="C"), *size)
        gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1), label="seed"))
        return Example(
            _inputs(shape, kernel, data.draw(st.booleans(), label="bias"), gen),  # type: ignore[arg-type]
            dtype=data.draw(st.sampled_from(self.dtypes(backend)), label="dtype"),
            options={"padding": list(padding), "dilation": list(dilation)},
            noncontiguous=frozenset(("input",) if data.draw(st.booleans(), label="non-contiguous") else ()),
            seed=sum(shape),
        )

    def fixed_example(self) -> Example:
        gen = torch.Generator().manual_seed(0)
        return Example(_inputs((2, 3, 9, 11), (5, 5), True, gen), options={"padding": [2, 2], "dilation": [1, 1]})

    def gradcheck_examples(self) -> list[Example]:
        gen = torch.Generator().manual_seed(3)
        return [
            Example(_inputs((1, 2, 5, 6), (3, 3), True, gen), torch.float64, {"padding": [1, 2], "dilation": [1, 1]}),
            Example(_inputs((2, 1, 7, 5), (3, 2), False, gen), torch.float64, {"padding": [3, 0], "dilation": [2, 1]}),
        ]

    def empty_example(self) -> Example:
        gen = torch.Generator().manual_seed(0)
        return Example(_inputs((0, 3, 6, 6), (3, 3), True, gen), options={"padding": [1, 1], "dilation": [1, 1]})

    def opcheck_calls(self, backend: str, device: str) -> list:
        x = torch.randn(2, 3, 6, 7, device=device, requires_grad=True)
        w = torch.randn(3, 1, 3, 3, device=device, requires_grad=True)
        b = torch.randn(3, device=device, requires_grad=True)
        dy = torch.randn(2, 3, 6, 7, device=device)
        return [
            (torch.ops.vqcnir.depthwise_conv2d_fwd.default, (x, w, b, [1, 1], [1, 1], backend)),
            (torch.ops.vqcnir.depthwise_conv2d_fwd.default, (x, w, None, [2, 0], [2, 1], backend)),
            (
                torch.ops.vqcnir.depthwise_conv2d_bwd.default,
                (dy, x.detach(), w.detach(), b.detach(), [1, 1], [1, 1], backend),
            ),
        ]

    def bad_arguments(self) -> list[BadCall]:
        x, w = torch.randn(1, 4, 6, 6), torch.randn(4, 1, 3, 3)
        cases = [
            ("weight channels", x, torch.randn(3, 1, 3, 3), None, 1, 1, ValueError, r"'weight' must have shape \[4, 1"),
            ("grouped weight", x, torch.randn(4, 2, 3, 3), None, 1, 1, ValueError, r"'weight' must have shape \[4, 1"),
            ("bias size", x, w, torch.randn(5), 1, 1, ValueError, r"'bias' must have shape \[4\]"),
            ("negative padding", x, w, None, -1, 1, ValueError, "'padding' must be between 0 and"),
            ("zero dilation", x, w, None, 1, 0, ValueError, "'dilation' must be between 1 and"),
            ("three paddings", x, w, None, (1, 1, 1), 1, TypeError, "'padding' must be an int or a pair of ints"),
            ("bool dilation", x, w, None, 1, True, TypeError, "'dilation' must be an int or a pair of ints"),
            ("too small", torch.randn(1, 4, 2, 2), w, None, 0, 1, ValueError, "'input' of 2 x 2 pixels is smaller"),
            ("3-D input", torch.randn(4, 6, 6), w, None, 1, 1, ValueError, "'input' must have 4 dimensions"),
            ("integer input", torch.ones(1, 4, 6, 6, dtype=torch.int64), w, None, 1, 1, TypeError, "'input' must be"),
            ("two devices", x, torch.randn(4, 1, 3, 3, device="meta"), None, 1, 1, ValueError, "same device"),
            ("string weight", x, "w", None, 1, 1, TypeError, "'weight' must be a torch.Tensor"),
        ]
        return [
            BadCall(i, lambda x=x, w=w, b=b, p=p, d=d: depthwise_conv2d(x, w, b, p, d), e, words)
            for i, x, w, b, p, d, e, words in cases
        ]

    def nan_examples(self) -> dict[str, Example]:
        nan, inf = float("nan"), float("inf")
        return self.poisoned([("input", nan), ("weight", nan), ("input", inf), ("bias", -inf)], at=[(0,), (1,)])

    # No gpu_examples: the op has no GPU backend of its own (cuDNN runs it on CUDA).


class TestDepthwiseConv2d(Conformance):
    case = DepthwiseConv2dCase()


# --- the layer -------------------------------------------------------------------------------------------------


def test_layer_is_a_grouped_conv2d_with_the_same_parameters_and_values():
    torch.manual_seed(0)
    plain = nn.Conv2d(6, 6, 7, padding=9, dilation=3, groups=6)
    torch.manual_seed(0)
    layer = DepthwiseConv2d(6, 7, padding=9, dilation=3)
    assert isinstance(layer, nn.Conv2d) and layer.state_dict().keys() == plain.state_dict().keys()
    torch.testing.assert_close(layer.weight, plain.weight)  # the same initialisation
    layer.load_state_dict(plain.state_dict())
    x = torch.randn(2, 6, 20, 17, requires_grad=True)
    torch.testing.assert_close(layer(x), plain(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("forced", ["triton", "cuda"])
def test_layer_falls_back_where_the_network_forces_a_backend_it_lacks(monkeypatch, forced):
    # Inside VQCNIR (texture warping, large-kernel attention) the layer meets backends chosen for the fused ops.
    layer = DepthwiseConv2d(3, 3, padding=1)
    x = torch.randn(1, 3, 8, 8)
    monkeypatch.setenv("VQCNIR_OPS_BACKEND", forced)
    torch.testing.assert_close(layer(x), depthwise_conv2d(x, layer.weight, layer.bias, 1, backend="reference"))
    with pytest.raises(Exception, match=forced):  # the functional itself stays strict
        depthwise_conv2d(x, layer.weight, layer.bias, 1)
    with pytest.raises(ValueError, match="must be one of"):
        DepthwiseConv2d(3, 3, padding=1, backend="fastest")(x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_results_do_not_depend_on_the_thread_count(backend):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 5, 19, 37, generator=gen, requires_grad=True)
    w = torch.randn(5, 1, 7, 7, generator=gen, requires_grad=True)
    dy = torch.randn(3, 5, 19, 37, generator=gen)
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            y = depthwise_conv2d(x, w, None, 3, backend=backend)
            results.append((y, *torch.autograd.grad(y, (x, w), dy)))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("isa", ["default", "generic"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_kernel_in_both_instruction_sets(isa, dtype, monkeypatch):
    """The C++ kernel's loops in both compiled variants (AVX2 + FMA where the CPU has them, and the baseline forced
    by VQCNIR_CPU_ISA=generic) against the float64 reference, at each column-block width (8, 16, 32) and with
    padding wider than the dilated kernel."""
    if vqcnir_ops._backend.backend_unavailable_reason("cpp", "cpu") is not None:
        pytest.skip("the C++ extension is not built")
    if isa == "generic":
        monkeypatch.setenv("VQCNIR_CPU_ISA", "generic")  # read by the kernel at every call
    else:
        monkeypatch.delenv("VQCNIR_CPU_ISA", raising=False)
    gen = torch.Generator().manual_seed(7)
    tol = {torch.float32: 2e-5, torch.float64: 1e-12}[dtype]
    for shape, kernel, padding, dilation in (
        ((2, 3, 8, 7), (5, 5), (2, 2), (1, 1)),
        ((1, 2, 13, 16), (7, 7), (9, 9), (3, 3)),
        ((2, 2, 5, 45), (3, 7), (4, 5), (1, 1)),
    ):
        t = _inputs(shape, kernel, True, gen)
        leaves = [t[k].to(dtype).requires_grad_() for k in ("input", "weight", "bias")]
        out = depthwise_conv2d(*leaves, padding, dilation, backend="cpp")
        grad_out = torch.randn(out.shape, generator=gen, dtype=torch.float64)
        grads = torch.autograd.grad(out, leaves, grad_out.to(dtype))
        exact_leaves = [t[k].to(dtype).double().requires_grad_() for k in ("input", "weight", "bias")]
        exact = depthwise_conv2d_ref(*exact_leaves, padding, dilation)
        expected = torch.autograd.grad(exact, exact_leaves, grad_out.to(dtype).double())
        scale = max(1.0, exact.abs().max().item())
        torch.testing.assert_close(out.double(), exact.detach(), rtol=tol, atol=tol * scale)
        for name, got, want in zip(("input", "weight", "bias"), grads, expected, strict=True):
            torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol * max(1.0, want.abs().max().item()),
                                       msg=lambda m, n=name: f"grad {n}: {m}")  # fmt: skip
