"""bidirectional_channel_attention: the conformance suite's case, and the attention's own special cases (N = 1,
C = 1, zero query rows, large logits, the image layout, split reductions, many channels per head)."""

from __future__ import annotations

import math

import pytest
import torch

import vqcnir_ops
from tests.backends import backend_params, device_for
from tests.ops.conformance import BadCall, Case, Conformance, Example, Tensors, exact_and_baseline, run, st
from vqcnir_ops import BackendUnavailableError, bidirectional_channel_attention, bidirectional_channel_attention_ref
from vqcnir_ops._testing import TOLERANCES, assert_low_precision_close, assert_max_rel_close, channel_attention_in_dtype

BACKENDS = backend_params("bidirectional_channel_attention")
STREAMS = ("q_d", "q_g", "v_d", "v_g")
EPILOGUE = ("f_d", "f_g", "gamma_d", "gamma_g")


def _inputs(shape: tuple[int, ...], gen: torch.Generator, epilogue: bool = True, magnitude: float = 1.0) -> Tensors:
    """Streams ``[B, heads, C, N]``, temperature ``[heads]`` and, with the epilogue, ``f`` and the gammas."""
    tensors = {name: magnitude * torch.randn(shape, generator=gen, dtype=torch.float64) for name in STREAMS}
    tensors["temperature"] = 0.5 + torch.rand(shape[1], generator=gen, dtype=torch.float64)
    if epilogue:
        tensors |= {name: torch.randn(shape, generator=gen, dtype=torch.float64) for name in ("f_d", "f_g")}
        tensors |= {
            name: torch.randn(shape[1] * shape[2], generator=gen, dtype=torch.float64)
            for name in ("gamma_d", "gamma_g")
        }
    return tensors


def _split(tensors: Tensors) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    return [tensors[n] for n in (*STREAMS, "temperature")], {n: tensors[n] for n in EPILOGUE if n in tensors}


class ChannelAttentionCase(Case):
    op = "bidirectional_channel_attention"
    activations = (*STREAMS, "f_d", "f_g")
    differentiable = (*STREAMS, "temperature", *EPILOGUE)

    def call(self, tensors: Tensors, options: dict, backend: str | None) -> tuple[torch.Tensor, ...]:
        args, epilogue = _split(tensors)
        return bidirectional_channel_attention(*args, **epilogue, normalize=options["normalize"], backend=backend)

    def reference(self, tensors: Tensors, options: dict) -> tuple[torch.Tensor, ...]:
        args, epilogue = _split(tensors)
        return bidirectional_channel_attention_ref(*args, **epilogue, normalize=options["normalize"])

    def baseline(self, tensors: Tensors, options: dict) -> tuple[torch.Tensor, ...]:
        """The official formula computed in the low dtype itself, epilogue included."""
        (q_d, q_g, v_d, v_g, temperature), epilogue = _split(tensors)
        heads, channels = q_d.shape[1], q_d.shape[2]
        scale = 1.0 if options["normalize"] else 1.0 / math.sqrt(channels)
        a_d, a_g = channel_attention_in_dtype(q_d, q_g, v_d, v_g, temperature, options["normalize"], scale)
        if not epilogue:
            return a_d, a_g
        view = (1, heads, channels, 1)
        return (
            epilogue["f_d"] + epilogue["gamma_d"].to(a_g.dtype).view(view) * a_g,
            epilogue["f_g"] + epilogue["gamma_g"].to(a_d.dtype).view(view) * a_d,
        )

    def draw(self, data: st.DataObject, backend: str) -> Example:
        shape = tuple(
            data.draw(st.integers(lo, hi), label=name)
            for name, lo, hi in (("B", 1, 2), ("heads", 1, 2), ("C", 1, 20), ("N", 2, 90))
        )
        # N >= 2: at N = 1 the normalised queries are constant, so their gradient is an exact zero reached by
        # cancelling two large terms, which no relative bound fits; test_edge_cases covers N = 1.
        epilogue = data.draw(st.booleans(), label="epilogue")
        streams = STREAMS + (("f_d",) if epilogue else ())
        gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1), label="seed"))
        return Example(
            _inputs(shape, gen, epilogue),  # type: ignore[arg-type]
            dtype=data.draw(st.sampled_from(self.dtypes(backend)), label="dtype"),
            options={"normalize": data.draw(st.booleans(), label="normalize")},
            noncontiguous=frozenset(data.draw(st.sets(st.sampled_from(streams)), label="non-contiguous")),
            seed=sum(shape),
        )

    def assert_close(
        self, name: str, actual: torch.Tensor, low: torch.Tensor, exact: torch.Tensor, example: Example
    ) -> None:
        grad, dtype = name.startswith("grad"), self.precision(actual, example)
        if dtype in (torch.float32, torch.float64):
            rel = 1e-5 if dtype == torch.float32 else 1e-10
            # atol: exact zeros reached by cancellation (e.g. the normalisation's gradient at N = 1)
            assert_max_rel_close(actual, exact, 20 * rel if grad else rel, name, atol=rel if grad else 0.0)
            return
        # The floor: about one rounding of the dtype, so that a lucky baseline on a tiny shape passes nothing.
        atol = TOLERANCES[dtype]["atol"]
        assert_low_precision_close(actual, low, exact, name, floor=max(3e-3, atol) if grad else atol)

    def fixed_example(self) -> Example:
        return Example(_inputs((2, 2, 5, 23), torch.Generator().manual_seed(0)), options={"normalize": True})

    def gradcheck_examples(self) -> list[Example]:
        tensors = _inputs((2, 2, 3, 5), torch.Generator().manual_seed(6))
        return [Example(tensors, torch.float64, options={"normalize": normalize}) for normalize in (True, False)]

    def empty_example(self) -> Example:
        return Example(_inputs((0, 2, 3, 5), torch.Generator().manual_seed(0)), options={"normalize": True})

    def opcheck_calls(self, backend: str, device: str) -> list:
        gen = torch.Generator().manual_seed(8)
        shape = (2, 2, 5, 23)

        def t(*size: int) -> torch.Tensor:
            return torch.randn(*size, generator=gen).to(device)

        q_d, q_g, v_d, v_g, res_d, res_g = (t(*shape) for _ in range(6))
        temperature, gain_d, gain_g = t(2), t(10), t(10)
        calls = []
        for res in ((None, None), (res_d, res_g)):
            args = (q_d, q_g, v_d, v_g, temperature, gain_d, gain_g, *res, True, 1.0, 1e-12, backend)
            leaves = tuple(a.clone().requires_grad_() if isinstance(a, torch.Tensor) else a for a in args)
            calls.append((torch.ops.vqcnir.bidirectional_channel_attention_fwd.default, leaves))
        _, _, attn, scores, norm_d, norm_g = torch.ops.vqcnir.bidirectional_channel_attention_fwd(
            q_d, q_g, v_d, v_g, temperature, gain_d, gain_g, None, None, False, 0.5, 1e-12, backend
        )
        bwd_args = (
            t(*shape),
            t(*shape),
            q_d,
            q_g,
            v_d,
            v_g,
            temperature,
            gain_d,
            gain_g,
            attn,
            scores,
            norm_d,
            norm_g,
            False,
            0.5,
            1e-12,
            backend,
        )
        return [*calls, (torch.ops.vqcnir.bidirectional_channel_attention_bwd.default, bwd_args)]

    def bad_arguments(self) -> list[BadCall]:
        def good() -> list[torch.Tensor]:
            return [torch.randn(2, 2, 3, 5) for _ in range(4)] + [torch.ones(2)]

        def bad(index: int, value: object) -> list:
            args: list = good()
            args[index] = value
            return args

        full = {
            "f_d": torch.randn(2, 2, 3, 5),
            "f_g": torch.randn(2, 2, 3, 5),
            "gamma_d": torch.ones(6),
            "gamma_g": torch.ones(6),
        }
        cases = [
            ("q_g shape", bad(1, torch.randn(2, 2, 3, 6)), {}, ValueError, "'q_g' has shape .* but 'q_d' has"),
            ("v_g shape", bad(3, torch.randn(2, 2, 4, 5)), {}, ValueError, "'v_g' has shape"),
            ("v_d dtype", bad(2, torch.randn(2, 2, 3, 5).double()), {}, TypeError, "'v_d' has dtype torch.float64"),
            ("f_g dtype", good(), full | {"f_g": full["f_g"].half()}, TypeError, "'f_g' has dtype torch.float16"),
            ("3-D q_d", bad(0, torch.randn(2, 3, 5)), {}, ValueError, "'q_d' must have 4 dimensions"),
            ("integer q_d", bad(0, torch.randint(0, 3, (2, 2, 3, 5))), {}, TypeError, "'q_d' must be float"),
            ("temperature size", bad(4, torch.ones(3)), {}, ValueError, r"'temperature' must have shape \[2\]"),
            ("3-D temperature", bad(4, torch.ones(2, 1, 1)), {}, ValueError, "'temperature' must have 1 dimensions"),
            ("heads divide", good(), {"heads": 4}, ValueError, "'q_d' has 2 channels, not divisible by heads=4"),
            ("zero heads", good(), {"heads": 0}, ValueError, "'heads' must be a positive int"),
            ("part epilogue", good(), {"f_d": full["f_d"]}, ValueError, r"missing \['f_g', 'gamma_d', 'gamma_g'\]"),
            ("f_g shape", good(), full | {"f_g": torch.randn(2, 2, 3, 4)}, ValueError, "'f_g' must have the shape"),
            ("gamma size", good(), full | {"gamma_d": torch.ones(5)}, ValueError, r"'gamma_d' must have shape \[6\]"),
            ("N = 0", [torch.randn(1, 1, 3, 0)] * 4 + [torch.ones(1)], {}, ValueError, "heads, C and N must be >= 1"),
            ("two devices", bad(4, torch.ones(2, device="meta")), {}, ValueError, "same device"),
        ]
        return [BadCall(i, lambda a=a, k=k: bidirectional_channel_attention(*a, **k), e, w) for i, a, k, e, w in cases]

    def nan_examples(self) -> dict[str, Example]:
        nan, inf = float("nan"), float("inf")
        return self.poisoned([("q_d", nan), ("v_g", inf), ("f_g", nan)], at=[(1, 0, 3, 7)])

    def gpu_examples(self) -> dict[str, Example]:
        """The 1/8 and 1/4 levels of 256 px crops (256 channels, 4 heads), the full-resolution level of a 64 px
        crop (64 channels, 1 head), and an odd one without normalisation; parameters in float32 (a module's)."""
        examples = {}
        for shape, normalize in (((2, 4, 64, 1024), True), ((1, 1, 64, 4096), True), ((2, 3, 20, 333), False)):
            tensors = _inputs(shape, torch.Generator().manual_seed(sum(shape)))
            examples[f"{shape} normalize={normalize}"] = Example(
                tensors, options={"normalize": normalize}, param_dtype=torch.float32, seed=sum(shape) + 1
            )
        return examples


class TestChannelAttention(Conformance):
    case = ChannelAttentionCase()


# --- the attention's own special cases ---------------------------------------------------------------------


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
    attention = ChannelAttentionCase()
    for normalize in (True, False):
        tensors = _inputs(shape, torch.Generator().manual_seed(7), magnitude=300.0 if case == "large magnitude" else 1)
        if case == "zero rows in q":  # q rows of all zeros: the normalisation's eps decides
            tensors["q_d"][:, :, 0] = 0.0
            tensors["q_g"][:, :, -1] = 0.0
        example = Example(tensors, options={"normalize": normalize})
        got = run(attention, example, backend)
        attention.check(example, got, *reversed(exact_and_baseline(attention, example)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_logits_are_stable(backend):
    # Without normalisation, logits reach ~1e5: a softmax without max-subtraction overflows to NaN.
    device = device_for(backend)
    gen = torch.Generator().manual_seed(3)
    q = 100 * torch.randn(1, 2, 8, 64, generator=gen)
    v = torch.randn(1, 2, 8, 64, generator=gen)
    a_d, a_g = bidirectional_channel_attention(
        *(t.to(device) for t in (q, q, v, v)), torch.full((2,), 5.0).to(device), normalize=False, backend=backend
    )
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


@pytest.mark.parametrize("backend", BACKENDS)
def test_expanded_inputs_and_gradients(backend):
    # Expanded tensors: rows that share memory (row stride 0 with unit column stride) and gradients such as
    # out.sum()'s (every stride 0). The cpp kernels once handed such rows to the BLAS with a made-up leading
    # dimension: NaN or garbage, silently.
    device = device_for(backend)
    gen = torch.Generator().manual_seed(11)
    shape = (1, 2, 8, 300)
    q_d = torch.randn(1, 2, 1, 300, generator=gen).expand(shape).to(device).requires_grad_()
    v_g = torch.randn(1, 1, 8, 300, generator=gen).expand(shape).to(device).requires_grad_()
    q_g, v_d = (torch.randn(shape, generator=gen).to(device).requires_grad_() for _ in range(2))
    temperature = torch.tensor([0.8, 1.5], device=device, requires_grad=True)
    inputs = [q_d, q_g, v_d, v_g, temperature]
    out = bidirectional_channel_attention(*inputs, backend=backend)
    grads = torch.autograd.grad(out[0].sum() + out[1].sum(), inputs)
    exact = [t.detach().double().cpu().requires_grad_() for t in inputs]
    expected = bidirectional_channel_attention_ref(*exact)
    expected_grads = torch.autograd.grad(expected[0].sum() + expected[1].sum(), exact)
    for name, got, want in zip(("a_d", "a_g"), out, expected, strict=True):
        assert_max_rel_close(got.detach().cpu(), want, 1e-5, name)
    for name, got, want in zip(("q_d", "q_g", "v_d", "v_g", "temperature"), grads, expected_grads, strict=True):
        assert_max_rel_close(got.cpu(), want, 1e-4, f"grad {name}")


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
def test_more_than_128_channels_per_head(backend):
    # The 128-channel limit is the Triton kernels' own: the other backends take any C, and on a GPU the
    # automatic choice passes such calls to the next backend instead of failing.
    device = device_for(backend)
    gen = torch.Generator().manual_seed(9)
    x = [torch.randn(1, 1, 130, 20, generator=gen).to(device) for _ in range(4)]
    a_d, _ = bidirectional_channel_attention(*x, torch.ones(1, device=device), backend=backend)
    expected = bidirectional_channel_attention_ref(*(t.double().cpu() for t in x), torch.ones(1, dtype=torch.float64))
    assert_max_rel_close(a_d.cpu(), expected[0], 1e-5, "a_d")
    spec = vqcnir_ops._backend.registered_ops()["bidirectional_channel_attention"]
    assert "at most 128 channels per head" in spec.reasons("cuda", torch.float32, {"channels_per_head": 130})["triton"]
    assert spec.choose(torch.device("cuda"), torch.float32, channels_per_head=130) != "triton"
    with pytest.raises(BackendUnavailableError, match="at most 128 channels per head, the call has 130"):
        bidirectional_channel_attention(*x, torch.ones(1, device=device), backend="triton")


def test_public_api_exports():
    assert vqcnir_ops.bidirectional_channel_attention is bidirectional_channel_attention


def test_raw_cpp_whole_op_checks_its_arguments():
    # torch.ops.vqcnir_C.channel_attention_forward is reachable without the functional's checks.
    if vqcnir_ops._backend.backend_unavailable_reason("cpp", "cpu") is not None:
        pytest.skip("cpp backend unavailable")
    q, t, gain = torch.randn(1, 2, 3, 5), torch.ones(2), torch.ones(6)

    def call(v_d=q, temperature=t, gain_g=gain):
        return torch.ops.vqcnir_C.channel_attention_forward(
            q, q, v_d, q, temperature, gain, gain_g, None, None, True, 1.0, 1e-12
        )

    with pytest.raises(ValueError, match=r"'v_d' must have the shape of 'q_d'"):
        call(v_d=torch.randn(1, 2, 3, 4))
    with pytest.raises(ValueError, match=r"'temperature' must have shape \[heads\]"):
        call(temperature=torch.ones(3))
    with pytest.raises(ValueError, match=r"'gain_g' must have shape \[heads \* C\]"):
        call(gain_g=torch.ones(5))
    assert call()[0].shape == q.shape
