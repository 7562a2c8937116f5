"""deform_conv2d: the conformance suite's case, and the convolution's own identities (conv2d at zero offsets,
shifted windows at integer offsets, the mask as a tap scale), special values (far-away and NaN offsets), the
hand-written reference backward and the deterministic backward."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F

import vqcnir_ops
from tests.backends import backend_params, device_for
from tests.ops.conformance import BadCall, Case, Conformance, Example, Tensors, given, st
from vqcnir_ops import deform_conv2d, deform_conv2d_ref
from vqcnir_ops._testing import assert_matches_exact, deform_offsets, poisoned_empty
from vqcnir_ops.deform.reference import Geometry, deform_conv2d_grads_ref

BACKENDS = backend_params("deform_conv2d")
GRADIENTS = ("input", "offset", "mask", "weight", "bias")


class Conv(NamedTuple):
    """The shapes of one call."""

    batch: int
    channels: int
    out_channels: int
    groups: int
    offset_groups: int
    kernel: tuple[int, int]
    height: int
    width: int
    geometry: Geometry = Geometry()

    def output_size(self) -> tuple[int, int]:
        return self.geometry.output_size(self.height, self.width, self.kernel)


@st.composite
def convolutions(draw: st.DrawFn, max_channels: int = 3, max_size: int = 8) -> Conv:
    """Small convolutions with groups, offset groups, odd kernels and strides (kept small: Triton
    runs in interpreter mode on CPU)."""
    groups = draw(st.integers(1, 2), label="groups")
    offset_groups = draw(st.sampled_from([1, 2]), label="offset_groups")
    unit = groups * offset_groups // (2 if groups == offset_groups == 2 else 1)
    channels = unit * draw(st.integers(1, max_channels), label="channel multiple")
    kernel = (draw(st.integers(1, 3), label="kh"), draw(st.integers(1, 3), label="kw"))
    geometry = Geometry(
        stride=(draw(st.integers(1, 2), label="stride_h"), draw(st.integers(1, 2), label="stride_w")),
        padding=(draw(st.integers(0, 2), label="pad_h"), draw(st.integers(0, 2), label="pad_w")),
        dilation=(draw(st.integers(1, 2), label="dil_h"), draw(st.integers(1, 2), label="dil_w")),
    )
    min_h = geometry.dilation[0] * (kernel[0] - 1) + 1 - 2 * geometry.padding[0]
    min_w = geometry.dilation[1] * (kernel[1] - 1) + 1 - 2 * geometry.padding[1]
    height = draw(st.integers(max(1, min_h), max(1, min_h) + max_size), label="H")
    width = draw(st.integers(max(1, min_w), max(1, min_w) + max_size), label="W")
    out_channels = groups * draw(st.integers(1, 3), label="Cout multiple")
    batch = draw(st.integers(1, 2), label="B")
    return Conv(batch, channels, out_channels, groups, offset_groups, kernel, height, width, geometry)


def _inputs(conv: Conv, seed: int, offset_kind: str = "mixed", with_mask: bool = True) -> Tensors:
    """float64 tensors for one call."""
    gen = torch.Generator().manual_seed(seed)
    kh, kw = conv.kernel
    out_h, out_w = conv.output_size()
    taps = conv.offset_groups * kh * kw
    f64 = dict(dtype=torch.float64, generator=gen)
    tensors = {
        "input": torch.randn(conv.batch, conv.channels, conv.height, conv.width, **f64),
        "offset": deform_offsets((conv.batch, 2 * taps, out_h, out_w), offset_kind, gen),
        "weight": torch.randn(conv.out_channels, conv.channels // conv.groups, kh, kw, **f64),
        "bias": torch.randn(conv.out_channels, **f64),
    }
    if with_mask:
        tensors["mask"] = torch.rand(conv.batch, taps, out_h, out_w, **f64)
    return tensors


def _deform(tensors: Tensors, geometry: Geometry, backend: str | None) -> torch.Tensor:
    return deform_conv2d(
        tensors["input"],
        tensors["offset"],
        tensors["weight"],
        tensors.get("bias"),
        *geometry,
        tensors.get("mask"),
        backend=backend,
    )


def _call(tensors: Tensors, conv: Conv, backend: str, dtype: torch.dtype, grad: bool = False):
    device = device_for(backend)
    cast = {k: v.detach().to(device=device, dtype=dtype).requires_grad_(grad) for k, v in tensors.items()}
    return _deform(cast, conv.geometry, backend), cast


class DeformConv2dCase(Case):
    op = "deform_conv2d"
    activations = ("input", "offset", "mask")
    differentiable = GRADIENTS
    gradcheck_fast = True
    gpu_repeats = "outputs"  # the input gradient is scattered with atomics (see test_gpu_deform.py for the
    # deterministic mode)

    def call(self, tensors: Tensors, options: dict, backend: str | None) -> tuple[torch.Tensor, ...]:
        return (_deform(tensors, options["geometry"], backend),)

    def reference(self, tensors: Tensors, options: dict) -> tuple[torch.Tensor, ...]:
        t = tensors
        return (
            deform_conv2d_ref(t["input"], t["offset"], t["weight"], t.get("bias"), *options["geometry"], t.get("mask")),
        )

    def draw(self, data: st.DataObject, backend: str) -> Example:
        # Smaller problems for the Triton interpreter, whose backward walks every pixel block per program.
        conv = data.draw(convolutions(2, 4) if backend == "triton" else convolutions(), label="convolution")
        kind = data.draw(st.sampled_from(["mixed", "fractional", "integer", "near_border"]), label="offsets")
        seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
        tensors = _inputs(conv, seed, kind, data.draw(st.booleans(), label="mask"))
        return Example(
            tensors,
            dtype=data.draw(st.sampled_from(self.dtypes(backend)), label="dtype"),
            options={"geometry": conv.geometry},
            noncontiguous=frozenset(("input", "offset") if data.draw(st.booleans(), label="non-contiguous") else ()),
            seed=seed + 1,
        )

    def fixed_example(self) -> Example:
        conv = Conv(2, 4, 6, 2, 2, (3, 3), 7, 6, Geometry((1, 2), (1, 1), (1, 1)))
        return Example(_inputs(conv, 1), options={"geometry": conv.geometry})

    def gradcheck_examples(self) -> list[Example]:
        conv = Conv(1, 4, 2, 2, 2, (2, 3), 5, 6, Geometry((1, 2), (1, 1), (2, 1)))
        tensors = _inputs(conv, 11, "off_integer")  # sample points away from the bilinear kinks
        return [Example(tensors, torch.float64, options={"geometry": conv.geometry})]

    def empty_example(self) -> Example:
        conv = Conv(0, 2, 2, 1, 1, (3, 3), 4, 4, Geometry(padding=(1, 1)))
        return Example(_inputs(conv, 0), options={"geometry": conv.geometry})

    def opcheck_calls(self, backend: str, device: str) -> list:
        conv = Conv(2, 4, 4, 2, 2, (2, 2), 3, 2, Geometry(padding=(1, 1)))  # output 4 x 3
        t = {k: v.float().to(device) for k, v in _inputs(conv, 2).items()}
        args = (t["input"], t["offset"], t["mask"], t["weight"], t["bias"], conv.geometry.flat(), False, backend)
        forward = tuple(a.clone().requires_grad_() if isinstance(a, torch.Tensor) else a for a in args)
        grad_out = torch.randn(2, 4, 4, 3, device=device)
        ops = torch.ops.vqcnir
        return [(ops.deform_conv2d_fwd.default, forward), (ops.deform_conv2d_bwd.default, (grad_out, *args))]

    def bad_arguments(self) -> list[BadCall]:
        def good() -> dict:
            tensors = _inputs(Conv(1, 4, 4, 2, 2, (3, 3), 6, 6), 0)  # offset [1, 36, 4, 4], mask [1, 18, 4, 4]
            return {k: v.float() for k, v in tensors.items()}

        cases = [
            (
                "offset channels",
                {"offset": torch.randn(1, 17, 4, 4)},
                ValueError,
                "'offset' must have 2 \\* offset_groups \\* kh \\* kw",
            ),
            (
                "offset groups",
                {"offset": torch.randn(1, 54, 4, 4), "mask": None},
                ValueError,
                "3 offset groups, which do not divide",
            ),
            ("offset size", {"offset": torch.randn(1, 36, 5, 4)}, ValueError, r"'offset' must have shape \(1, 36, 4,"),
            ("mask size", {"mask": torch.rand(1, 9, 4, 4)}, ValueError, "'mask' must have shape \\(1, 18, 4, 4\\)"),
            ("groups", {"weight": torch.randn(4, 3, 3, 3)}, ValueError, "does not divide the 4 channels of 'input'"),
            (
                "Cout",
                {"weight": torch.randn(3, 2, 3, 3), "bias": None},
                ValueError,
                "3 output channels, not divisible by groups = 2",
            ),
            ("bias size", {"bias": torch.randn(3)}, ValueError, "'bias' must have shape \\(4,\\)"),
            ("3-D input", {"input": torch.randn(1, 4, 6)}, ValueError, "'input' must have 4 dimensions"),
            ("small input", {"input": torch.randn(1, 4, 2, 2)}, ValueError, "'input' of size 2 x 2 is too small"),
            ("integer weight", {"weight": torch.randint(0, 3, (4, 2, 3, 3))}, TypeError, "'weight' must be float"),
            ("list mask", {"mask": [1.0]}, TypeError, "'mask' must be a torch.Tensor"),
            ("two devices", {"offset": torch.randn(1, 36, 4, 4, device="meta")}, ValueError, "same device"),
            (
                "offset dtype",
                {"offset": torch.randn(1, 36, 4, 4).double()},
                TypeError,
                "'offset' has dtype torch.float64 but 'input' has torch.float32",
            ),
            ("stride 0", {"stride": 0}, ValueError, "'stride' must be between 1 and 2147483647, got 0"),
            ("stride 2**63", {"stride": 2**63}, ValueError, "'stride' must be between 1 and 2147483647"),
            ("padding -1", {"padding": (0, -1)}, ValueError, "'padding' must be between 0 and 2147483647"),
            ("dilation 2**40", {"dilation": (1, 2**40)}, ValueError, "'dilation' must be between 1 and 2147483647"),
            ("padding 3", {"padding": (1, 2, 3)}, TypeError, "'padding' must be an int or a pair of ints"),
            ("dilation float", {"dilation": 1.5}, TypeError, "'dilation' must be an int or a pair"),
        ]
        return [BadCall(i, lambda c=c: deform_conv2d(**(good() | c)), e, w) for i, c, e, w in cases]

    def nan_examples(self) -> dict[str, Example]:
        nan, inf = float("nan"), float("inf")
        special = [("offset", nan), ("offset", inf), ("offset", -inf), ("mask", nan), ("input", nan), ("input", inf)]
        return self.poisoned(special, at=[(0, 3, 2, 1), (1, 1, 0, 0)])  # one offset (dy of tap 1, group 0), mask, pixel

    def gpu_examples(self) -> dict[str, Example]:
        """The DBCA's warp (3 x 3, padding 1, 4 offset groups) on 64 channels, and groups, offset groups, a 3 x 2
        kernel, stride, dilation and sizes that are no multiple of anything."""
        convs = {
            "dbca 64ch og4 32x32": Conv(2, 64, 64, 1, 4, (3, 3), 32, 32, Geometry(padding=(1, 1))),
            "odd g2 og2 3x2 s2 d2 13x11": Conv(3, 8, 6, 2, 2, (3, 2), 13, 11, Geometry((2, 1), (2, 1), (2, 2))),
        }
        examples = {}
        for name, conv in convs.items():
            tensors = _inputs(conv, len(name))
            tensors["weight"] /= (conv.kernel[0] * conv.kernel[1] * conv.channels // conv.groups) ** 0.5  # fan-in
            examples[name] = Example(tensors, options={"geometry": conv.geometry})
        return examples


class TestDeformConv2d(Conformance):
    case = DeformConv2dCase()


# --- identities ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@given(conv=convolutions(), seed=st.integers(0, 2**31 - 1), data=st.data())
def test_zero_offsets_unit_mask_is_conv2d(backend, conv, seed, data):
    dtype = data.draw(st.sampled_from(DeformConv2dCase().dtypes(backend)), label="dtype")
    tensors = _inputs(conv, seed)
    tensors["offset"] = torch.zeros_like(tensors["offset"])
    tensors["mask"] = torch.ones_like(tensors["mask"])
    geometry = conv.geometry
    expected = F.conv2d(tensors["input"], tensors["weight"], tensors["bias"], *geometry, conv.groups)
    with poisoned_empty():
        out, _ = _call(tensors, conv, backend, dtype)
    low = deform_conv2d_ref(*(tensors[k].to(dtype) for k in ("input", "offset", "weight", "bias")), *geometry)
    assert out.dtype == dtype and out.shape == expected.shape
    assert_matches_exact(out.cpu(), low, expected, dtype, "output")


def _shifted_conv(tensors: Tensors, conv: Conv, shifts: list[tuple[int, int]]) -> torch.Tensor:
    """conv2d over the input zero-padded by a wide margin, read at windows shifted by each offset
    group's integer (dy, dx); offset groups add up (the convolution is linear in the input)."""
    x, weight = tensors["input"], tensors["weight"]
    (sh, sw), (ph, pw), dilation = conv.geometry
    out_h, out_w = tensors["offset"].shape[-2:]
    margin = 8 + max(max(abs(dy), abs(dx)) for dy, dx in shifts) + max(ph, pw)
    per_group = x.shape[1] // len(shifts)
    total = 0
    for og, (dy, dx) in enumerate(shifts):
        part = torch.zeros_like(x)
        part[:, og * per_group : (og + 1) * per_group] = x[:, og * per_group : (og + 1) * per_group]
        full = F.conv2d(F.pad(part, [margin] * 4), weight, None, 1, 0, dilation, conv.groups)
        window = full[:, :, margin - ph + dy :: sh, margin - pw + dx :: sw]
        total = total + window[:, :, :out_h, :out_w]
    return total + tensors["bias"][None, :, None, None]


@pytest.mark.parametrize("backend", BACKENDS)
@given(conv=convolutions(), seed=st.integers(0, 2**31 - 1), data=st.data())
def test_integer_offsets_are_shifted_windows_of_padded_conv(backend, conv, seed, data):
    shifts = [(data.draw(st.integers(-4, 4)), data.draw(st.integers(-4, 4))) for _ in range(conv.offset_groups)]
    tensors = _inputs(conv, seed, with_mask=False)
    taps = conv.kernel[0] * conv.kernel[1]
    offset = torch.tensor([[dy, dx] * taps for dy, dx in shifts], dtype=torch.float64).flatten()
    tensors["offset"] = offset[None, :, None, None].expand_as(tensors["offset"]).contiguous()
    out, _ = _call(tensors, conv, backend, torch.float32)
    assert_matches_exact(out.cpu(), None, _shifted_conv(tensors, conv, shifts), torch.float32, "output")


@pytest.mark.parametrize("backend", BACKENDS)
@given(conv=convolutions(), seed=st.integers(0, 2**31 - 1))
def test_mask_scales_each_tap_linearly(backend, conv, seed):
    # A mask constant over pixels (per offset group and tap) is the same as scaling the weight's taps.
    conv = conv._replace(offset_groups=1)
    tensors = _inputs(conv, seed)
    kh, kw = conv.kernel
    scale = torch.rand(kh * kw, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 2 - 0.5
    tensors["mask"] = scale[None, :, None, None].expand_as(tensors["mask"]).contiguous()
    out, _ = _call(tensors, conv, backend, torch.float32)
    scaled = dict(tensors, weight=tensors["weight"] * scale.view(1, 1, kh, kw))
    del scaled["mask"]
    expected, _ = _call(scaled, conv, "reference", torch.float64)
    assert_matches_exact(out.cpu(), None, expected, torch.float32, "output")


# --- special values ------------------------------------------------------------------------------------------

SMALL = Conv(2, 4, 3, 1, 2, (3, 3), 5, 6, Geometry(padding=(1, 1)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("far", [1e3, -1e3, 30.0, float("inf"), -float("inf")])
def test_offsets_fully_outside_give_bias_only(backend, far):
    tensors = _inputs(SMALL, 0)
    tensors["offset"] = torch.full_like(tensors["offset"], far)
    out, cast = _call(tensors, SMALL, backend, torch.float32, grad=True)
    bias = tensors["bias"].float()[None, :, None, None].expand_as(out)
    assert torch.equal(out.cpu(), bias)
    out.sum().backward()
    for name in ("input", "offset", "mask"):
        assert torch.count_nonzero(cast[name].grad) == 0, name


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_offset_rule(backend):
    # A NaN offset makes its sample NaN (whatever its mask): NaN in every output of its pixel that reads its
    # offset group, in its offset and mask gradients and in the weight gradient; no input gradient from it.
    tensors = _inputs(SMALL._replace(batch=1), 0)
    tensors["offset"][0, 2 * 4, 2, 3] = float("nan")  # dy of tap 4 (the centre) of offset group 0, pixel (2, 3)
    tensors["mask"][0, 4, 2, 3] = 0.0
    out, cast = _call(tensors, SMALL, backend, torch.float32, grad=True)
    nan = torch.isnan(out.detach().cpu())
    assert nan[0, :, 2, 3].all() and nan.sum() == SMALL.out_channels
    out.backward(torch.ones_like(out))
    grads = {name: cast[name].grad.cpu() for name in GRADIENTS}
    assert torch.isnan(grads["offset"][0, 8:10, 2, 3]).all() and torch.isnan(grads["offset"]).sum() == 2
    assert torch.isnan(grads["mask"][0, 4, 2, 3]) and torch.isnan(grads["mask"]).sum() == 1
    assert torch.isnan(grads["weight"][:, 0:2, 1, 1]).all() and torch.isfinite(grads["input"]).all()
    assert torch.isfinite(grads["bias"]).all()


# --- the reference backward and the deterministic backward ----------------------------------------------------


def test_reference_autograd_matches_its_handwritten_backward():
    conv = Conv(2, 4, 6, 2, 2, (3, 2), 7, 6, Geometry((2, 1), (1, 0), (1, 2)))
    tensors = {k: v.requires_grad_() for k, v in _inputs(conv, 5, "mixed").items()}
    out = deform_conv2d_ref(
        tensors["input"], tensors["offset"], tensors["weight"], tensors["bias"], *conv.geometry, tensors["mask"]
    )
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    by_hand = deform_conv2d_grads_ref(grad_out, *(tensors[k].detach() for k in GRADIENTS), conv.geometry)
    for name, grad in zip(GRADIENTS, by_hand, strict=True):
        torch.testing.assert_close(grad, tensors[name].grad, rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_is_deterministic(backend, monkeypatch):
    monkeypatch.setenv("VQCNIR_DETERMINISTIC", "1")
    conv = Conv(2, 6, 4, 1, 3, (3, 3), 9, 7, Geometry(padding=(1, 1)))
    tensors = _inputs(conv, 3, "fractional")
    results = []
    for _ in range(2):
        out, cast = _call(tensors, conv, backend, torch.float32, grad=True)
        out.backward(torch.ones_like(out))
        results.append([cast[k].grad.clone() for k in cast])
    for first, second in zip(*results, strict=True):
        assert torch.equal(first, second)


CPP = [p for p in BACKENDS if p.values[0] == "cpp"]


@st.composite
def cpu_channel_layouts(draw: st.DrawFn) -> Conv:
    """Convolutions whose offset groups have 4, 8, 16 (the CPU kernel's unrolled run lengths) or other channel
    counts, more than one 16-channel scatter block (24, 40), and offset groups that straddle conv groups."""
    per_offset_group = draw(st.sampled_from([4, 8, 16, 24, 40, 6]), label="channels per offset group")
    offset_groups = draw(st.integers(1, 3), label="offset_groups")
    channels = per_offset_group * offset_groups
    groups = draw(st.sampled_from([g for g in (1, 2, 3, 4) if channels % g == 0]), label="groups")
    kernel = (draw(st.integers(1, 3), label="kh"), draw(st.integers(1, 3), label="kw"))
    size = (draw(st.integers(3, 7), label="H"), draw(st.integers(3, 7), label="W"))
    out_channels = groups * draw(st.integers(1, 2), label="Cout multiple")
    return Conv(1, channels, out_channels, groups, offset_groups, kernel, *size, Geometry(padding=(1, 1)))


@pytest.mark.parametrize("isa", ["native", "generic"])
@pytest.mark.parametrize("backend", CPP)
@given(conv=cpu_channel_layouts(), seed=st.integers(0, 2**31 - 1))
def test_cpu_kernel_channel_runs_and_instruction_sets(backend, isa, conv, seed):
    """The C++ CPU kernel's channel loops (unrolled lengths, runs split at conv-group borders, scatter blocks)
    in both compiled variants (AVX2 + FMA where the CPU has them, and the baseline forced by
    VQCNIR_CPU_ISA=generic) against the float64 reference: outputs and all five gradients."""
    tensors = _inputs(conv, seed, "mixed")
    with pytest.MonkeyPatch.context() as patch:  # read by the kernel at every call
        if isa == "generic":
            patch.setenv("VQCNIR_CPU_ISA", "generic")
        else:
            patch.delenv("VQCNIR_CPU_ISA", raising=False)
        out, cast = _call(tensors, conv, backend, torch.float64, grad=True)
        grad_out = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
        out.backward(grad_out)
    t = tensors
    expected = deform_conv2d_ref(t["input"], t["offset"], t["weight"], t["bias"], *conv.geometry, t["mask"])
    torch.testing.assert_close(out.detach(), expected, rtol=1e-10, atol=1e-10)
    by_hand = deform_conv2d_grads_ref(grad_out, *(t[k] for k in GRADIENTS), conv.geometry)
    for name, grad in zip(GRADIENTS, by_hand, strict=True):
        torch.testing.assert_close(cast[name].grad, grad, rtol=1e-10, atol=1e-10, msg=name)


def test_public_api_exports():
    assert vqcnir_ops.deform_conv2d is deform_conv2d
    assert vqcnir_ops.deform_conv2d_ref is deform_conv2d_ref
