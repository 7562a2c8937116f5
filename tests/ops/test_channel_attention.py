"""bidirectional_channel_attention: every backend against the float64 reference, forward and every gradient."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import vqcnir_ops
from tests.backends import backend_params, device_for
from vqcnir_ops import BackendUnavailableError, bidirectional_channel_attention, bidirectional_channel_attention_ref
from vqcnir_ops._testing import (
    TOLERANCES,
    assert_low_precision_close,
    assert_max_rel_close,
    channel_attention_in_dtype,
    make_noncontiguous,
    poisoned_empty,
)

BACKENDS = backend_params("bidirectional_channel_attention")
LOW = [torch.float16, torch.bfloat16]
STREAMS = ("q_d", "q_g", "v_d", "v_g")


def _dtypes(backend: str) -> list[torch.dtype]:
    return [torch.float32, *LOW] + ([torch.float64] if backend in ("reference", "cpp") else [])


def _make(shape, dtype, device, gen, *, epilogue, heads, magnitude=1.0):
    """Inputs in ``dtype`` on ``device``, and their exact float64 copies."""
    exact = {name: magnitude * torch.randn(shape, generator=gen, dtype=torch.float64) for name in STREAMS}
    exact["temperature"] = 0.5 + torch.rand(heads, generator=gen, dtype=torch.float64)
    if epilogue:
        exact |= {name: torch.randn(shape, generator=gen, dtype=torch.float64) for name in ("f_d", "f_g")}
        exact |= {name: torch.randn(heads * shape[2], generator=gen, dtype=torch.float64)
                  for name in ("gamma_d", "gamma_g")}  # fmt: skip
    cast = {}
    for name, t in exact.items():
        # Parameters stay float32 like a module's; activations take the tested dtype.
        param_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        target = dtype if name in STREAMS + ("f_d", "f_g") else param_dtype
        cast[name] = t.to(device=device, dtype=target)
    # The float64 truth of the rounded inputs: what a kernel given them should compute.
    return {name: t.double().cpu() for name, t in cast.items()}, cast


def _run(fn, inputs, weights, **kwargs):
    """Outputs and the gradients of ``sum(outputs * weights)`` for every input."""
    leaves = {name: t.detach().requires_grad_() for name, t in inputs.items()}
    tensors = dict(leaves)
    for name in STREAMS + ("f_d", "f_g"):
        if name in tensors and kwargs.pop(f"noncontig_{name}", False):
            tensors[name] = make_noncontiguous(tensors[name])
    out = fn(**tensors, **kwargs)
    loss = sum((o.double() * w.to(o.device)).sum() for o, w in zip(out, weights, strict=True))
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return out, dict(zip(leaves, grads, strict=True))


def _call(backend):
    return lambda **t: bidirectional_channel_attention(**t, backend=backend)


def _ref(**kwargs):
    return lambda **t: bidirectional_channel_attention_ref(**t, **kwargs)


def _low_baseline(normalize, scale, epilogue, heads, channels):
    """The official formula in the low dtype itself, with the epilogue applied in that dtype too."""

    def fn(q_d, q_g, v_d, v_g, temperature, f_d=None, f_g=None, gamma_d=None, gamma_g=None):
        a_d, a_g = channel_attention_in_dtype(q_d, q_g, v_d, v_g, temperature, normalize, scale)
        if not epilogue:
            return a_d, a_g
        view = (1, heads, channels, 1)
        return f_d + gamma_d.to(a_g.dtype).view(view) * a_g, f_g + gamma_g.to(a_d.dtype).view(view) * a_d

    return fn


def _check(backend, shape, dtype, gen, *, epilogue, normalize, noncontig=(), magnitude=1.0, zero_rows=False):
    device = device_for(backend)
    heads, channels = shape[1], shape[2]
    scale = 1.0 if normalize else 1.0 / math.sqrt(channels)
    exact, cast = _make(shape, dtype, device, gen, epilogue=epilogue, heads=heads, magnitude=magnitude)
    if zero_rows:  # q rows of all zeros: the normalisation's eps decides
        for inputs in (exact, cast):
            inputs["q_d"][:, :, 0] = 0.0
            inputs["q_g"][:, :, -1] = 0.0
    # Output gradients reach a kernel rounded to the output dtype: round them for the float64 truth too.
    weights = [torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype).double() for _ in range(2)]
    flags = {f"noncontig_{name}": True for name in noncontig}
    with poisoned_empty():
        out, grads = _run(_call(backend), cast, weights, normalize=normalize, **flags)
    out64, grads64 = _run(_ref(), exact, weights, normalize=normalize)
    if dtype in (torch.float32, torch.float64):
        rel = 1e-5 if dtype == torch.float32 else 1e-10
        for o, e, name in zip(out, out64, ("first", "second"), strict=True):
            assert o.dtype == dtype and o.shape == shape
            assert_max_rel_close(o.cpu(), e, rel, f"{backend} output {name}")
        for name, g in grads.items():
            # atol: exact zeros reached by cancellation (e.g. the normalisation's gradient at N = 1)
            assert_max_rel_close(g.cpu(), grads64[name], 20 * rel, f"{backend} grad {name}", atol=rel)
        return
    base_out, base_grads = _run(_low_baseline(normalize, scale, epilogue, heads, channels),
                                {k: v.cpu() for k, v in cast.items()}, weights)  # fmt: skip
    for o, b, e in zip(out, base_out, out64, strict=True):
        assert o.dtype == dtype
        assert_low_precision_close(o.cpu(), b, e, f"{backend} {dtype} output", floor=TOLERANCES[dtype]["atol"])
    for name, g in grads.items():
        # The floor: about one rounding of the dtype, so that a lucky baseline on a tiny shape passes nothing.
        assert_low_precision_close(g.cpu(), base_grads[name], grads64[name], f"{backend} {dtype} grad {name}",
                                   floor=max(3e-3, TOLERANCES[dtype]["atol"]))  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_matches_float64_reference(backend, data):
    batch = data.draw(st.integers(1, 2), label="B")
    heads = data.draw(st.integers(1, 2), label="heads")
    channels = data.draw(st.integers(1, 20), label="C")
    # N >= 2: at N = 1 the normalised queries are constant, so their gradient is an exact zero reached by
    # cancelling two large terms, which no relative bound fits; test_edge_cases covers N = 1.
    pixels = data.draw(st.integers(2, 90), label="N")
    dtype = data.draw(st.sampled_from(_dtypes(backend)), label="dtype")
    epilogue = data.draw(st.booleans(), label="epilogue")
    normalize = data.draw(st.booleans(), label="normalize")
    noncontig = data.draw(st.sets(st.sampled_from(STREAMS + ("f_d",))), label="non-contiguous")
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1), label="seed"))
    _check(backend, (batch, heads, channels, pixels), dtype, gen, epilogue=epilogue, normalize=normalize,
           noncontig=noncontig if epilogue else noncontig - {"f_d"})  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("shape", "case"),
    [
        ((1, 1, 7, 1), "N=1"),
        ((2, 3, 1, 19), "C=1"),
        ((1, 1, 16, 33), "heads=1"),
        ((2, 2, 9, 40), "zero rows in q"),
        ((1, 2, 12, 50), "large magnitude"),
    ],
)
def test_edge_cases(backend, shape, case):
    gen = torch.Generator().manual_seed(7)
    for normalize in (True, False):
        _check(backend, shape, torch.float32, gen, epilogue=True, normalize=normalize,
               zero_rows=case == "zero rows in q", magnitude=300.0 if case == "large magnitude" else 1.0)  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_logits_are_stable(backend):
    # Without normalisation, logits reach ~1e5: a softmax without max-subtraction overflows to NaN.
    device = device_for(backend)
    gen = torch.Generator().manual_seed(3)
    q = 100 * torch.randn(1, 2, 8, 64, generator=gen)
    v = torch.randn(1, 2, 8, 64, generator=gen)
    a_d, a_g = bidirectional_channel_attention(*(t.to(device) for t in (q, q, v, v)), torch.full((2,), 5.0).to(device),
                                               normalize=False, backend=backend)  # fmt: skip
    q64, v64 = q.double(), v.double()
    expected = bidirectional_channel_attention_ref(q64, q64, v64, v64, torch.full((2,), 5.0).double(), normalize=False)
    assert torch.isfinite(a_d).all() and torch.isfinite(a_g).all()
    assert_max_rel_close(a_d.cpu(), expected[0], 1e-5, "a_d")


@pytest.mark.parametrize("backend", BACKENDS)
def test_image_layout_with_heads(backend):
    # [B, heads * C, H, W] in, same layout out; channels_last inputs too.
    device = device_for(backend)
    gen = torch.Generator().manual_seed(4)
    x = [torch.randn(2, 12, 5, 7, generator=gen).to(device) for _ in range(4)]
    temperature = torch.tensor([0.7, 1.3, 2.0]).to(device)
    a_d, a_g = bidirectional_channel_attention(*x, temperature, heads=3, backend=backend)
    flat = [t.reshape(2, 3, 4, 35) for t in x]
    e_d, e_g = bidirectional_channel_attention(*flat, temperature, backend=backend)
    assert a_d.shape == (2, 12, 5, 7)
    torch.testing.assert_close(a_d, e_d.view(2, 12, 5, 7))
    torch.testing.assert_close(a_g, e_g.view(2, 12, 5, 7))
    last = [t.to(memory_format=torch.channels_last) for t in x]
    c_d, _ = bidirectional_channel_attention(*last, temperature, heads=3, backend=backend)
    torch.testing.assert_close(c_d, a_d, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", [p for p in BACKENDS if p.id in ("cpp", "triton")])
def test_deterministic_across_splits(backend):
    # Long enough for several split-N partial sums (cpp: 16384 columns each; triton: up to 16 splits).
    device = device_for(backend)
    pixels = 40000 if backend == "cpp" else 3000
    gen = torch.Generator().manual_seed(5)
    x = [torch.randn(1, 1, 16, pixels, generator=gen).to(device).requires_grad_() for _ in range(4)]
    temperature = torch.tensor([2.0], device=device, requires_grad=True)
    runs = []
    for _ in range(2):
        out = bidirectional_channel_attention(*x, temperature, backend=backend)
        grads = torch.autograd.grad(out[0].sum() + 2 * out[1].sum(), [*x, temperature])
        runs.append([*out, *grads])
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))
    expected = bidirectional_channel_attention_ref(*(t.detach().double().cpu() for t in (*x, temperature)))
    assert_max_rel_close(runs[0][0].cpu(), expected[0], 1e-5, "a_d")


@pytest.mark.parametrize("backend", [p for p in BACKENDS if p.id in ("reference", "cpp")])
@pytest.mark.parametrize("normalize", [True, False])
def test_gradcheck_float64(backend, normalize):
    gen = torch.Generator().manual_seed(6)

    def leaf(*shape):
        return torch.randn(*shape, dtype=torch.float64, generator=gen).requires_grad_()

    shape = (2, 2, 3, 5)
    inputs = (leaf(*shape), leaf(*shape), leaf(*shape), leaf(*shape), leaf(2), leaf(*shape), leaf(*shape), leaf(6),
              leaf(6))  # fmt: skip

    def fn(q_d, q_g, v_d, v_g, t, f_d, f_g, gamma_d, gamma_g):
        return bidirectional_channel_attention(q_d, q_g, v_d, v_g, t, f_d=f_d, f_g=f_g, gamma_d=gamma_d,
                                               gamma_g=gamma_g, normalize=normalize, backend=backend)  # fmt: skip

    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_opcheck(backend):
    device = device_for(backend)
    gen = torch.Generator().manual_seed(8)
    shape = (2, 2, 5, 23)

    def t(*s):
        return torch.randn(*s, generator=gen).to(device)

    q_d, q_g, v_d, v_g, res_d, res_g = (t(*shape) for _ in range(6))
    temperature, gain_d, gain_g = t(2), t(10), t(10)
    for res in ((None, None), (res_d, res_g)):
        args = (q_d, q_g, v_d, v_g, temperature, gain_d, gain_g, *res, True, 1.0, 1e-12, backend)
        grad_args = [a.requires_grad_() if isinstance(a, torch.Tensor) else a for a in args]
        torch.library.opcheck(torch.ops.vqcnir.bidirectional_channel_attention_fwd.default, tuple(grad_args))
    _, _, attn, scores, norm_d, norm_g = torch.ops.vqcnir.bidirectional_channel_attention_fwd(
        q_d.detach(), q_g.detach(), v_d.detach(), v_g.detach(), temperature.detach(), gain_d.detach(),
        gain_g.detach(), None, None, False, 0.5, 1e-12, backend,
    )  # fmt: skip
    bwd_args = (t(*shape), t(*shape), *(x.detach() for x in (q_d, q_g, v_d, v_g, temperature, gain_d, gain_g)),
                attn, scores, norm_d, norm_g, False, 0.5, 1e-12, backend)  # fmt: skip
    torch.library.opcheck(torch.ops.vqcnir.bidirectional_channel_attention_bwd.default, bwd_args)


# --- bad input and backend choice -------------------------------------------------------------------


def _good():
    return [torch.randn(2, 2, 3, 5) for _ in range(4)] + [torch.ones(2)]


def _with(index, value):
    args = _good()
    args[index] = value
    return args


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "words"),
    [
        (_with(1, torch.randn(2, 2, 3, 6)), {}, ValueError, "'q_g' has shape .* but 'q_d' has"),
        (_with(3, torch.randn(2, 2, 4, 5)), {}, ValueError, "'v_g' has shape"),
        (_with(2, torch.randn(2, 2, 3, 5).double()), {}, TypeError, "'v_d' has dtype torch.float64"),
        (_with(0, torch.randn(2, 3, 5)), {}, ValueError, "'q_d' must have 4 dimensions"),
        (_with(0, torch.randint(0, 3, (2, 2, 3, 5))), {}, TypeError, "'q_d' must be float"),
        (_with(4, torch.ones(3)), {}, ValueError, r"'temperature' must have shape \[2\]"),
        (_with(4, torch.ones(2, 1, 1)), {}, ValueError, "'temperature' must have 1 dimensions"),
        (_good(), {"heads": 4}, ValueError, "'q_d' has 2 channels, not divisible by heads=4"),
        (_good(), {"heads": 0}, ValueError, "'heads' must be a positive int"),
        (_good(), {"f_d": torch.randn(2, 2, 3, 5)}, ValueError, r"missing \['f_g', 'gamma_d', 'gamma_g'\]"),
        (
            _good(),
            {
                "f_d": torch.randn(2, 2, 3, 5),
                "f_g": torch.randn(2, 2, 3, 4),
                "gamma_d": torch.ones(6),
                "gamma_g": torch.ones(6),
            },
            ValueError,
            "'f_g' must have the shape and dtype",
        ),  # fmt: skip
        (
            _good(),
            {
                "f_d": torch.randn(2, 2, 3, 5),
                "f_g": torch.randn(2, 2, 3, 5),
                "gamma_d": torch.ones(5),
                "gamma_g": torch.ones(6),
            },
            ValueError,
            r"'gamma_d' must have shape \[6\]",
        ),  # fmt: skip
        ([torch.randn(1, 1, 129, 4)] * 4 + [torch.ones(1)], {}, ValueError, "129 channels per head; at most 128"),
        ([torch.randn(1, 1, 3, 0)] * 4 + [torch.ones(1)], {}, ValueError, "no empty dimension"),
        (_with(4, torch.ones(2, device="meta")), {}, ValueError, "same device"),
    ],
)
def test_bad_input_names_the_argument(args, kwargs, error, words):
    with pytest.raises(error, match=words):
        bidirectional_channel_attention(*args, **kwargs)


def test_forced_backend_unavailable_raises():
    with pytest.raises(BackendUnavailableError, match="not implemented for this op"):
        bidirectional_channel_attention(*_good(), backend="cuda")
    args = [a.double() for a in _good()]
    with pytest.raises(BackendUnavailableError, match="does not support dtype torch.float64"):
        bidirectional_channel_attention(*args, backend="triton")


def test_public_api_exports():
    assert vqcnir_ops.bidirectional_channel_attention is bidirectional_channel_attention
