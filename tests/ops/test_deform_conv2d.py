"""deform_conv2d: every backend against the float64 reference, conv2d identities, gradients, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import vqcnir_ops
from tests.backends import backend_params, device_for
from vqcnir_ops import deform_conv2d, deform_conv2d_ref
from vqcnir_ops._testing import assert_matches_exact, deform_offsets, make_noncontiguous, poisoned_empty
from vqcnir_ops.deform.reference import deform_conv2d_grads_ref, output_size

BACKENDS = backend_params("deform_conv2d")
LOW = [torch.float16, torch.bfloat16]


def _dtypes(backend: str) -> list[torch.dtype]:
    return [torch.float32, *LOW] + ([torch.float64] if backend in ("reference", "cpp") else [])


@st.composite
def geometries(draw: st.DrawFn, max_channels: int = 3, max_size: int = 8) -> dict:
    """Small convolutions with groups, offset groups, odd kernels and strides (kept small: Triton
    runs in interpreter mode on CPU)."""
    groups = draw(st.integers(1, 2), label="groups")
    offset_groups = draw(st.sampled_from([1, 2]), label="offset_groups")
    unit = groups * offset_groups // (2 if groups == offset_groups == 2 else 1)
    channels = unit * draw(st.integers(1, max_channels), label="channel multiple")
    kernel = (draw(st.integers(1, 3), label="kh"), draw(st.integers(1, 3), label="kw"))
    stride = (draw(st.integers(1, 2), label="stride_h"), draw(st.integers(1, 2), label="stride_w"))
    padding = (draw(st.integers(0, 2), label="pad_h"), draw(st.integers(0, 2), label="pad_w"))
    dilation = (draw(st.integers(1, 2), label="dil_h"), draw(st.integers(1, 2), label="dil_w"))
    min_h = dilation[0] * (kernel[0] - 1) + 1 - 2 * padding[0]
    min_w = dilation[1] * (kernel[1] - 1) + 1 - 2 * padding[1]
    height = draw(st.integers(max(1, min_h), max(1, min_h) + max_size), label="H")
    width = draw(st.integers(max(1, min_w), max(1, min_w) + max_size), label="W")
    return dict(
        batch=draw(st.integers(1, 2), label="B"), channels=channels, out_channels=groups * draw(st.integers(1, 3)),
        groups=groups, offset_groups=offset_groups, kernel=kernel, stride=stride, padding=padding,
        dilation=dilation, height=height, width=width,
    )  # fmt: skip


def _inputs(geo: dict, seed: int, offset_kind: str = "mixed", with_mask: bool = True) -> dict[str, torch.Tensor]:
    """float64 tensors for one call."""
    gen = torch.Generator().manual_seed(seed)
    kh, kw = geo["kernel"]
    out_h, out_w = output_size(
        geo["height"], geo["width"], geo["kernel"], geo["stride"], geo["padding"], geo["dilation"]
    )
    taps = geo["offset_groups"] * kh * kw
    f64 = dict(dtype=torch.float64, generator=gen)
    tensors = {
        "input": torch.randn(geo["batch"], geo["channels"], geo["height"], geo["width"], **f64),
        "offset": deform_offsets((geo["batch"], 2 * taps, out_h, out_w), offset_kind, gen),
        "weight": torch.randn(geo["out_channels"], geo["channels"] // geo["groups"], kh, kw, **f64),
        "bias": torch.randn(geo["out_channels"], **f64),
    }
    if with_mask:
        tensors["mask"] = torch.rand(geo["batch"], taps, out_h, out_w, **f64)
    return tensors


def _call(tensors: dict[str, torch.Tensor], geo: dict, backend: str, dtype: torch.dtype, grad: bool = False):
    device = device_for(backend)
    cast = {k: v.detach().to(device=device, dtype=dtype).requires_grad_(grad) for k, v in tensors.items()}
    out = deform_conv2d(
        cast["input"], cast["offset"], cast["weight"], cast.get("bias"), geo["stride"], geo["padding"],
        geo["dilation"], cast.get("mask"), backend=backend,
    )  # fmt: skip
    return out, cast


# --- identities -------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@given(geo=geometries(), seed=st.integers(0, 2**31 - 1), data=st.data())
def test_zero_offsets_unit_mask_is_conv2d(backend, geo, seed, data):
    dtype = data.draw(st.sampled_from(_dtypes(backend)), label="dtype")
    tensors = _inputs(geo, seed)
    tensors["offset"] = torch.zeros_like(tensors["offset"])
    tensors["mask"] = torch.ones_like(tensors["mask"])
    conv = F.conv2d(tensors["input"], tensors["weight"], tensors["bias"], geo["stride"], geo["padding"],
                    geo["dilation"], geo["groups"])  # fmt: skip
    with poisoned_empty():
        out, _ = _call(tensors, geo, backend, dtype)
    low = deform_conv2d_ref(*(tensors[k].to(dtype) for k in ("input", "offset", "weight", "bias")),
                            geo["stride"], geo["padding"], geo["dilation"])  # fmt: skip
    assert out.dtype == dtype and out.shape == conv.shape
    assert_matches_exact(out.cpu(), low, conv, dtype, "output")


def _shifted_conv(tensors: dict, geo: dict, shifts: list[tuple[int, int]]) -> torch.Tensor:
    """conv2d over the input zero-padded by a wide margin, read at windows shifted by each offset
    group's integer (dy, dx); offset groups add up (the convolution is linear in the input)."""
    x, weight = tensors["input"], tensors["weight"]
    out_h, out_w = tensors["offset"].shape[-2:]
    margin = 8 + max(max(abs(dy), abs(dx)) for dy, dx in shifts) + max(geo["padding"])
    per_group = x.shape[1] // len(shifts)
    total = 0
    for og, (dy, dx) in enumerate(shifts):
        part = torch.zeros_like(x)
        part[:, og * per_group : (og + 1) * per_group] = x[:, og * per_group : (og + 1) * per_group]
        full = F.conv2d(F.pad(part, [margin] * 4), weight, None, 1, 0, geo["dilation"], geo["groups"])
        top, left = margin - geo["padding"][0] + dy, margin - geo["padding"][1] + dx
        window = full[:, :, top :: geo["stride"][0], left :: geo["stride"][1]]
        total = total + window[:, :, :out_h, :out_w]
    return total + tensors["bias"][None, :, None, None]


@pytest.mark.parametrize("backend", BACKENDS)
@given(geo=geometries(), seed=st.integers(0, 2**31 - 1), data=st.data())
def test_integer_offsets_are_shifted_windows_of_padded_conv(backend, geo, seed, data):
    shifts = [(data.draw(st.integers(-4, 4)), data.draw(st.integers(-4, 4))) for _ in range(geo["offset_groups"])]
    tensors = _inputs(geo, seed, with_mask=False)
    taps = geo["kernel"][0] * geo["kernel"][1]
    offset = torch.tensor([[dy, dx] * taps for dy, dx in shifts], dtype=torch.float64).flatten()
    tensors["offset"] = offset[None, :, None, None].expand_as(tensors["offset"]).contiguous()
    out, _ = _call(tensors, geo, backend, torch.float32)
    assert_matches_exact(out.cpu(), None, _shifted_conv(tensors, geo, shifts), torch.float32, "output")


@pytest.mark.parametrize("backend", BACKENDS)
@given(geo=geometries(), seed=st.integers(0, 2**31 - 1))
def test_mask_scales_each_tap_linearly(backend, geo, seed):
    # A mask constant over pixels (per offset group and tap) is the same as scaling the weight's taps.
    geo = geo | {"offset_groups": 1}
    tensors = _inputs(geo, seed)
    kh, kw = geo["kernel"]
    scale = torch.rand(kh * kw, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 2 - 0.5
    tensors["mask"] = scale[None, :, None, None].expand_as(tensors["mask"]).contiguous()
    out, _ = _call(tensors, geo, backend, torch.float32)
    scaled = dict(tensors, weight=tensors["weight"] * scale.view(1, 1, kh, kw))
    del scaled["mask"]
    expected, _ = _call(scaled, geo, "reference", torch.float64)
    assert_matches_exact(out.cpu(), None, expected, torch.float32, "output")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("far", [1e3, -1e3, 30.0])
def test_offsets_fully_outside_give_bias_only(backend, far):
    geo = dict(batch=2, channels=4, out_channels=3, groups=1, offset_groups=2, kernel=(3, 3), stride=(1, 1),
               padding=(1, 1), dilation=(1, 1), height=5, width=6)  # fmt: skip
    tensors = _inputs(geo, 0)
    tensors["offset"] = torch.full_like(tensors["offset"], far)
    out, cast = _call(tensors, geo, backend, torch.float32, grad=True)
    bias = tensors["bias"].float()[None, :, None, None].expand_as(out)
    assert torch.equal(out.cpu(), bias)
    out.sum().backward()
    for name in ("input", "offset", "mask"):
        assert torch.count_nonzero(cast[name].grad) == 0, name


# --- random offsets: forward and the five gradients ------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@given(seed=st.integers(0, 2**31 - 1), data=st.data())
def test_forward_and_gradients_match_float64(backend, seed, data):
    # Smaller problems for the Triton interpreter, whose backward walks every pixel block per program.
    geo = data.draw(geometries(2, 4) if backend == "triton" else geometries(), label="geometry")
    dtype = data.draw(st.sampled_from(_dtypes(backend)), label="dtype")
    kind = data.draw(st.sampled_from(["mixed", "fractional", "integer", "near_border"]), label="offsets")
    with_mask = data.draw(st.booleans(), label="mask")
    tensors = _inputs(geo, seed, kind, with_mask)
    if data.draw(st.booleans(), label="non-contiguous"):
        tensors["input"] = make_noncontiguous(tensors["input"])
        tensors["offset"] = make_noncontiguous(tensors["offset"])
    out, cast = _call(tensors, geo, backend, dtype, grad=True)
    grad_out = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    out.backward(grad_out.to(device=out.device, dtype=dtype))

    exact, exact_in = _call(tensors, geo, "reference", torch.float64, grad=True)
    exact.backward(grad_out)
    low, low_in = _call(tensors, geo, "reference", dtype, grad=True)
    low.backward(grad_out.to(dtype))
    assert out.dtype == dtype
    assert_matches_exact(out.cpu(), low, exact, dtype, "output")
    for name in cast:
        assert cast[name].grad.dtype == dtype, name
        assert_matches_exact(cast[name].grad.cpu(), low_in[name].grad, exact_in[name].grad, dtype, f"grad {name}")


def test_reference_autograd_matches_its_handwritten_backward():
    geo = dict(batch=2, channels=4, out_channels=6, groups=2, offset_groups=2, kernel=(3, 2), stride=(2, 1),
               padding=(1, 0), dilation=(1, 2), height=7, width=6)  # fmt: skip
    tensors = {k: v.requires_grad_() for k, v in _inputs(geo, 5, "mixed").items()}
    out = deform_conv2d_ref(tensors["input"], tensors["offset"], tensors["weight"], tensors["bias"], geo["stride"],
                            geo["padding"], geo["dilation"], tensors["mask"])  # fmt: skip
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    by_hand = deform_conv2d_grads_ref(grad_out, *(tensors[k].detach() for k in ("input", "offset", "mask", "weight",
                                      "bias")), geo["stride"], geo["padding"], geo["dilation"])  # fmt: skip
    for name, grad in zip(("input", "offset", "mask", "weight", "bias"), by_hand, strict=True):
        torch.testing.assert_close(grad, tensors[name].grad, rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize("backend", [p for p in BACKENDS if p.id in ("reference", "cpp")])
def test_gradcheck_float64(backend):
    geo = dict(batch=1, channels=4, out_channels=2, groups=2, offset_groups=2, kernel=(2, 3), stride=(1, 2),
               padding=(1, 1), dilation=(2, 1), height=5, width=6)  # fmt: skip
    tensors = _inputs(geo, 11, "off_integer")  # sample points away from the bilinear kinks
    names = ("input", "offset", "weight", "bias", "mask")
    leaves = [tensors[k].requires_grad_() for k in names]

    def fn(x, offset, weight, bias, mask):  # noqa: ANN001, ANN202
        return deform_conv2d(x, offset, weight, bias, geo["stride"], geo["padding"], geo["dilation"], mask,
                             backend=backend)  # fmt: skip

    assert torch.autograd.gradcheck(fn, leaves, fast_mode=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_is_deterministic(backend, monkeypatch):
    monkeypatch.setenv("VQCNIR_DETERMINISTIC", "1")
    geo = dict(batch=2, channels=6, out_channels=4, groups=1, offset_groups=3, kernel=(3, 3), stride=(1, 1),
               padding=(1, 1), dilation=(1, 1), height=9, width=7)  # fmt: skip
    tensors = _inputs(geo, 3, "fractional")
    results = []
    for _ in range(2):
        out, cast = _call(tensors, geo, backend, torch.float32, grad=True)
        out.backward(torch.ones_like(out))
        results.append([cast[k].grad.clone() for k in cast])
    for first, second in zip(*results, strict=True):
        assert torch.equal(first, second)


@pytest.mark.parametrize("backend", BACKENDS)
def test_opcheck(backend):
    device = device_for(backend)
    geo = dict(batch=2, channels=4, out_channels=4, groups=2, offset_groups=2, kernel=(2, 2), stride=(1, 1),
               padding=(1, 1), dilation=(1, 1), height=3, width=2)  # fmt: skip
    t = {k: v.float().to(device) for k, v in _inputs(geo, 2).items()}
    settings = ([1, 1], [1, 1], [1, 1], False, backend)  # kernel 2x2, padding 1: output 4 x 3
    args = (t["input"], t["offset"], t["mask"], t["weight"], t["bias"], *settings)
    torch.library.opcheck(torch.ops.vqcnir.deform_conv2d_fwd.default, [a.requires_grad_() if isinstance(
        a, torch.Tensor) else a for a in args])  # fmt: skip
    grad_out = torch.randn(2, 4, 4, 3, device=device)
    torch.library.opcheck(torch.ops.vqcnir.deform_conv2d_bwd.default, (grad_out, *(a.detach() if isinstance(
        a, torch.Tensor) else a for a in args)))  # fmt: skip


@pytest.mark.slow
def test_torch_compile_fullgraph():
    module = vqcnir_ops.DeformConv2d(4, 6, 3, padding=1)
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    x, offset, mask = torch.randn(2, 4, 7, 7), torch.randn(2, 18, 7, 7), torch.rand(2, 9, 7, 7)
    torch.testing.assert_close(compiled(x, offset, mask), module(x, offset, mask))


# --- bad input ----------------------------------------------------------------------------------------


def _good() -> dict:
    return dict(input=torch.randn(1, 4, 6, 6), offset=torch.randn(1, 2 * 2 * 9, 4, 4), weight=torch.randn(4, 2, 3, 3),
                bias=torch.randn(4), mask=torch.rand(1, 2 * 9, 4, 4))  # fmt: skip


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ({"offset": torch.randn(1, 17, 4, 4)}, ValueError, "'offset' must have 2 \\* offset_groups \\* kh \\* kw"),
        ({"offset": torch.randn(1, 54, 4, 4), "mask": None}, ValueError, "3 offset groups, which do not divide"),
        ({"offset": torch.randn(1, 36, 5, 4)}, ValueError, "'offset' must have shape \\(1, 36, 4, 4\\)"),
        ({"mask": torch.rand(1, 9, 4, 4)}, ValueError, "'mask' must have shape \\(1, 18, 4, 4\\)"),
        ({"weight": torch.randn(4, 3, 3, 3)}, ValueError, "does not divide the 4 channels of 'input'"),
        (
            {"weight": torch.randn(3, 2, 3, 3), "bias": None},
            ValueError,
            "3 output channels, not divisible by groups = 2",
        ),
        ({"bias": torch.randn(3)}, ValueError, "'bias' must have shape \\(4,\\)"),
        ({"input": torch.randn(1, 4, 6)}, ValueError, "'input' must have 4 dimensions"),
        ({"input": torch.randn(1, 4, 2, 2)}, ValueError, "'input' of size 2 x 2 is too small"),
        ({"weight": torch.randint(0, 3, (4, 2, 3, 3))}, TypeError, "'weight' must be float"),
        ({"mask": [1.0]}, TypeError, "'mask' must be a torch.Tensor"),
        ({"offset": torch.randn(1, 36, 4, 4, device="meta")}, ValueError, "same device"),
        ({"stride": 0}, ValueError, "'stride' must be >= 1"),
        ({"padding": (1, 2, 3)}, TypeError, "'padding' must be an int or a pair of ints"),
        ({"dilation": 1.5}, TypeError, "'dilation' must be an int or a pair"),
    ],
)
def test_bad_input_names_the_argument(change, error, words):
    args = _good() | change
    with pytest.raises(error, match=words):
        deform_conv2d(**args)


def test_public_api_exports():
    assert vqcnir_ops.deform_conv2d is deform_conv2d
    assert vqcnir_ops.deform_conv2d_ref is deform_conv2d_ref


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch(backend):
    geo = dict(batch=0, channels=2, out_channels=2, groups=1, offset_groups=1, kernel=(3, 3), stride=(1, 1),
               padding=(1, 1), dilation=(1, 1), height=4, width=4)  # fmt: skip
    out, cast = _call(_inputs(geo, 0), geo, backend, torch.float32, grad=True)
    assert out.shape == (0, 2, 4, 4)
    out.sum().backward()
    assert torch.count_nonzero(cast["weight"].grad) == 0 and cast["offset"].grad.shape == (0, 18, 4, 4)
