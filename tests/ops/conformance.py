"""The one conformance suite of the ops: every op plugs in with a small :class:`Case`.

An op's test file defines ``class Test<Op>(Conformance): case = <Op>Case()`` and inherits, for every backend
the op declares (skipped with the reason where unavailable here):

- ``test_matches_float64``: hypothesis draws shapes, dtypes, values and layouts (``Case.draw``); the
  outputs and every gradient, with ``torch.empty`` poisoned, are compared with the float64 reference by the
  suite's rule (``Case.assert_close``: float32 near 1e-5 relative; float16/bfloat16 at most twice the
  error of the baseline run in that precision, plus a small floor);
- ``test_gradcheck`` (float64 where the backend computes in float64) and ``test_reference_gradcheck``;
- ``test_opcheck`` (``torch.library.opcheck`` of the op's forward and backward custom ops);
- ``test_compile_fullgraph`` (slow: ``torch.compile(fullgraph=True)`` against eager, outputs and gradients);
- ``test_empty_inputs``, ``test_noncontiguous_inputs``, ``test_inference_mode`` (reference and cpp);
- ``test_bad_argument`` (each of ``Case.bad_arguments``: the error type and the words naming the argument);
- ``test_backend_choice`` (forced, unknown, unimplemented, unavailable backends; float64 on float32-only
  backends; the error that lists every candidate when none can run);
- ``test_nan_and_inf_agree_with_reference`` (every backend propagates NaN/inf as the reference does).

:class:`GPUConformance` holds the GPU comparison (marker ``gpu``: the GPU backends at VQCNIR's shapes in
every dtype, against float64, the same bits run to run where the op is deterministic); it is collected by
``tests/gpu/test_gpu_ops.py`` for every case found here, so the GPU check runs it even without hypothesis.

Adding an op is one case file. Special values and identities of one op stay as that file's own tests.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import torch

try:
    from hypothesis import given
    from hypothesis import strategies as st
except ImportError:  # the GPU check imports the cases where hypothesis may be missing (tests/gpu/test_gpu_ops.py)

    class _NoStrategies:
        """Stands in for ``hypothesis.strategies``: the cases' modules import, their property tests skip.
        Every attribute, and what calling it returns, is the stand-in itself (``st.composite(f)()`` too)."""

        def __getattr__(self, name: str) -> _NoStrategies:
            return self

        def __call__(self, *args: object, **kwargs: object) -> _NoStrategies:
            return self

    def given(*args: object, **kwargs: object) -> Callable[[Callable], Callable]:  # type: ignore[no-redef]
        return pytest.mark.skip(reason="hypothesis is not installed")

    st = _NoStrategies()  # type: ignore[assignment]

import vqcnir_ops
from tests.backends import GPU, backend_params, device_for
from vqcnir_ops import BackendUnavailableError, _backend
from vqcnir_ops._testing import assert_matches_exact, make_noncontiguous, poisoned_empty

Tensors = dict[str, torch.Tensor]
LOW_PRECISION = (torch.float16, torch.bfloat16)


@dataclass
class Example:
    """One call: float64 values (rounded to the dtype each tensor takes), options, layout.

    Activations (``Case.activations``) take ``dtype``, the other tensors ``param_dtype`` (default ``dtype``);
    tensors named in ``noncontiguous`` reach the op as non-contiguous views; ``seed`` draws the output
    gradients.
    """

    tensors: Tensors
    dtype: torch.dtype = torch.float32
    options: dict[str, Any] = field(default_factory=dict)
    param_dtype: torch.dtype | None = None
    noncontiguous: frozenset[str] = frozenset()
    seed: int = 0

    def dtype_of(self, case: Case, name: str) -> torch.dtype:
        return self.dtype if name in case.activations else (self.param_dtype or self.dtype)

    def rounded(self, case: Case) -> Example:
        """The same example with every value rounded to the dtype it is passed in (what the op sees)."""
        values = {k: v.to(self.dtype_of(case, k)).double() for k, v in self.tensors.items()}
        return dataclasses.replace(self, tensors=values)


@dataclass
class BadCall:
    """A call the functional must refuse with ``error`` whose message matches ``words``."""

    id: str
    call: Callable[[], object]
    error: type[Exception]
    words: str


@dataclass
class Result:
    """Outputs and the gradients of ``sum(output_i * w_i)`` (random ``w_i``), detached on the CPU."""

    outputs: tuple[torch.Tensor, ...]
    grads: Tensors


class Case:
    """What an op supplies. Override the hooks below; defaults fit most ops."""

    op: ClassVar[str]  # the name the op's SPEC registers in vqcnir_ops._backend
    activations: ClassVar[tuple[str, ...]]  # tensors that take the call's dtype (vqcnir_ops._dtypes)
    differentiable: ClassVar[tuple[str, ...]]  # tensors that receive gradients
    gpu_repeats: ClassVar[str] = "all"  # what repeats bit for bit on a GPU: "all", or "outputs" (atomic backward)
    gradcheck_fast: ClassVar[bool] = False  # gradcheck by random directional derivatives only
    gradcheck_float32: ClassVar[bool] = False  # also gradcheck float32-only backends, in float32 (loose)

    def call(self, tensors: Tensors, options: dict, backend: str | None) -> tuple[torch.Tensor, ...]:
        """The public functional on these tensors; floating outputs are compared and differentiated."""
        raise NotImplementedError

    def reference(self, tensors: Tensors, options: dict) -> tuple[torch.Tensor, ...]:
        """The plain-PyTorch reference, differentiable by autograd, with ``call``'s outputs."""
        raise NotImplementedError

    def baseline(self, tensors: Tensors, options: dict) -> tuple[torch.Tensor, ...]:
        """What the low-precision error bound is measured on: the reference run on low-precision inputs."""
        return self.reference(tensors, options)

    def draw(self, data: st.DataObject, backend: str) -> Example:
        """A hypothesis-drawn example for ``backend`` (its dtypes: ``dtypes(backend)``)."""
        raise NotImplementedError

    def fixed_example(self) -> Example:
        """A small float32 example (noncontiguous, inference mode, compile tests)."""
        raise NotImplementedError

    def gradcheck_examples(self) -> list[Example]:
        """Small float64 examples away from kinks, for gradcheck."""
        raise NotImplementedError

    def empty_example(self) -> Example:
        """An example with an empty dimension the op accepts."""
        raise NotImplementedError

    def opcheck_calls(self, backend: str, device: str) -> list[tuple[Any, tuple]]:
        """``(torch.ops.vqcnir.<op>_fwd.default, args)`` pairs, forward and backward, for ``opcheck``."""
        raise NotImplementedError

    def bad_arguments(self) -> list[BadCall]:
        return []

    def nan_examples(self) -> dict[str, Example]:
        """float32 examples holding NaN or inf, each compared with the reference backend."""
        return {}

    def poisoned(self, values: list[tuple[str, float]], at: list[tuple[int, ...]]) -> dict[str, Example]:
        """``{"<value> in <name>": the fixed example with tensors[name][index] = value for each index in at}``,
        for :meth:`nan_examples`."""
        base = self.fixed_example()
        examples = {}
        for name, value in values:
            tensors = {k: v.clone() for k, v in base.tensors.items()}
            for index in at:
                tensors[name][index] = value
            examples[f"{value} in {name}"] = Example(tensors, options=base.options)
        return examples

    def gpu_examples(self) -> dict[str, Example]:
        """VQCNIR-size examples (float64 values) for the GPU comparison; the test casts them to each dtype."""
        return {}

    def assert_close(
        self, name: str, actual: torch.Tensor, low: torch.Tensor, exact: torch.Tensor, example: Example
    ) -> None:
        """The suite's rule for one output or gradient (``vqcnir_ops._testing.assert_matches_exact``)."""
        assert_matches_exact(actual, low, exact, self.precision(actual, example), name)

    @staticmethod
    def precision(actual: torch.Tensor, example: Example) -> torch.dtype:
        """The dtype whose tolerance applies: the coarser of the call's and the tensor's own (a float32
        parameter's gradient in a float64 call is held to float32's)."""
        return max((example.dtype, actual.dtype), key=lambda d: torch.finfo(d).eps)

    def check(self, example: Example, got: Result, low: Result, exact: Result) -> None:
        """Every output and gradient of ``got`` against ``exact`` (``low``: the same-precision baseline)."""
        for i, (a, lo, e) in enumerate(zip(got.outputs, low.outputs, exact.outputs, strict=True)):
            if a.is_floating_point():
                assert a.dtype == example.dtype, f"output {i}: {a.dtype}"
                self.assert_close(f"output {i}", a, lo, e, example)
        for name, g in got.grads.items():
            assert g.dtype == example.dtype_of(self, name), f"grad {name}: {g.dtype}"
            self.assert_close(f"grad {name}", g, low.grads[name], exact.grads[name], example)

    # --- helpers -----------------------------------------------------------------------------------

    def dtypes(self, backend: str) -> list[torch.dtype]:
        """float32 first, then the half dtypes, and float64 where the backend computes in it."""
        wide = [torch.float64] if backend in _backend.FLOAT64_BACKENDS else []
        return [torch.float32, *LOW_PRECISION, *wide]


def run(
    case: Case,
    example: Example,
    backend: str | None,
    *,
    device: str | None = None,
    fn: Callable | None = None,
    dtype: torch.dtype | None = None,
    grads: bool = True,
    poison: bool = True,
) -> Result:
    """Call ``fn`` (default: the op on ``backend``) on ``example`` and differentiate ``sum(out * w)``.

    ``dtype`` casts every tensor (parameters too) to one dtype: the reference in float64 or the baseline.
    """
    device = device or (device_for(backend) if backend else "cpu")
    leaves = {}
    for name, value in example.tensors.items():
        target = dtype or example.dtype_of(case, name)
        leaves[name] = (
            value.detach().to(device=device, dtype=target).requires_grad_(grads and name in case.differentiable)
        )
    args = {name: make_noncontiguous(t) if name in example.noncontiguous else t for name, t in leaves.items()}
    call = fn or (lambda t, o: case.call(t, o, backend))
    with poisoned_empty() if poison else contextlib.nullcontext():
        outputs = call(args, example.options)
        wanted = [t for t in leaves.values() if t.requires_grad]
        floating = [o for o in outputs if o.is_floating_point() and o.requires_grad]
        if not (grads and wanted and floating):
            return Result(tuple(o.detach().cpu() for o in outputs), {})
        weights = [_output_weights(o, example.seed + i) for i, o in enumerate(floating)]
        loss = sum((o.double() * w.to(o.device)).sum() for o, w in zip(floating, weights, strict=True))
        found = torch.autograd.grad(loss, wanted, allow_unused=True)
    names = [name for name, t in leaves.items() if t.requires_grad]
    computed = {
        name: (g if g is not None else torch.zeros_like(leaves[name])).detach().cpu()
        for name, g in zip(names, found, strict=True)
    }
    return Result(tuple(o.detach().cpu() for o in outputs), computed)


def _output_weights(output: torch.Tensor, seed: int) -> torch.Tensor:
    # Output gradients reach a kernel rounded to the output dtype: round them for the float64 truth too.
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(output.shape, generator=gen, dtype=torch.float64).to(output.dtype).double()


def exact_and_baseline(case: Case, example: Example) -> tuple[Result, Result]:
    """The float64 reference on the rounded values, and the baseline run in the call's own dtypes (activations
    in the example's dtype, parameters in theirs: a float32 weight's gradient is measured against a float32
    baseline, not one rounded to the activations' half dtype, whose error can be luckily small)."""
    rounded = example.rounded(case)
    exact = run(case, rounded, None, fn=case.reference, dtype=torch.float64, poison=False)
    if example.dtype not in LOW_PRECISION:
        return exact, exact
    return exact, run(case, rounded, None, fn=case.baseline, poison=False)


def draw_param_dtype(data: st.DataObject, example: Example) -> Example:
    """Parameters in the call's dtype or in float32 (a module's float32 weights with half activations)."""
    choice = data.draw(st.sampled_from([example.dtype, torch.float32]), label="parameter dtype")
    return dataclasses.replace(example, param_dtype=choice)


def assert_same_values(actual: torch.Tensor, expected: torch.Tensor, name: str, rtol: float = 1e-5) -> None:
    """Same NaN and inf positions, finite values close: how two backends must agree on special values."""
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    if not actual.is_floating_point():
        assert torch.equal(actual, expected), f"{name}: {actual} != {expected}"
        return
    a, e = actual.double(), expected.double()
    assert torch.equal(torch.isnan(a), torch.isnan(e)), (
        f"{name}: NaN at {torch.isnan(a).sum()} vs {torch.isnan(e).sum()}"
    )
    assert torch.equal(a.isinf() & (a > 0), e.isinf() & (e > 0)), f"{name}: +inf positions differ"
    assert torch.equal(a.isinf() & (a < 0), e.isinf() & (e < 0)), f"{name}: -inf positions differ"
    finite = torch.isfinite(e)
    scale = e[finite].abs().max().item() if finite.any() else 0.0
    torch.testing.assert_close(a[finite], e[finite], rtol=rtol, atol=rtol * max(1.0, scale), msg=name)


# --- which backends each test runs on -----------------------------------------------------------------


def backends(kind: str) -> Callable[[Callable], Callable]:
    """Mark a test method to run on ``kind`` backends: 'all', 'float64' (reference, cpp), 'gpu' (cuda, triton),
    'gradcheck' (float64 ones, all with ``Case.gradcheck_float32``)."""

    def mark(fn: Callable) -> Callable:
        fn.backend_kind = kind  # type: ignore[attr-defined]
        return fn

    return mark


def _backend_params(case: Case, kind: str) -> list:
    op = case.op
    params = backend_params(op)
    if kind == "gradcheck" and case.gradcheck_float32:
        return params
    if kind in ("float64", "gradcheck"):
        return [p for p in params if p.values[0] in _backend.FLOAT64_BACKENDS]
    if kind == "gpu":
        gpu = pytest.mark.skipif(not GPU, reason="needs a CUDA GPU: scripts/gpu_check.sh on one")
        return [
            pytest.param(*p.values, id=p.id, marks=[*p.marks, pytest.mark.gpu, gpu])
            for p in params
            if p.values[0] in ("cuda", "triton")
        ]
    return params


class Conformance:
    """Inherit with ``case = <Op>Case()``; every ``test_*`` below runs for that op."""

    case: ClassVar[Case]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "backend" in metafunc.fixturenames:
            kind = getattr(metafunc.function, "backend_kind", "all")
            metafunc.parametrize("backend", _backend_params(self.case, kind))
        if "bad" in metafunc.fixturenames:
            bad = self.case.bad_arguments()
            metafunc.parametrize("bad", bad, ids=[b.id for b in bad])

    @given(data=st.data())
    def test_matches_float64(self, backend: str, data: st.DataObject) -> None:
        example = draw_param_dtype(data, self.case.draw(data, backend))
        got = run(self.case, example, backend)
        self.case.check(example, got, *reversed(exact_and_baseline(self.case, example)))

    @backends("gradcheck")
    def test_gradcheck(self, backend: str) -> None:
        wide = backend in _backend.FLOAT64_BACKENDS
        dtype = torch.float64 if wide else torch.float32
        loose = {} if wide else {"eps": 1e-3, "atol": 5e-3, "rtol": 5e-3, "fast_mode": True}
        for example in self.case.gradcheck_examples():
            fn, inputs = self._differentiable(example, lambda t, o: self.case.call(t, o, backend), dtype, backend)
            assert torch.autograd.gradcheck(fn, inputs, **({"fast_mode": self.case.gradcheck_fast} | loose))

    def _differentiable(
        self, example: Example, call: Callable, dtype: torch.dtype, backend: str | None
    ) -> tuple[Callable, list[torch.Tensor]]:
        """``(fn, inputs)`` for gradcheck: ``fn(*inputs)`` gives the floating outputs of ``call`` on ``example``."""
        device = device_for(backend) if backend else "cpu"
        names = [n for n in example.tensors if n in self.case.differentiable]
        leaves = {n: t.to(device, dtype).requires_grad_(n in names) for n, t in example.tensors.items()}

        def fn(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
            outputs = call(leaves | dict(zip(names, inputs, strict=True)), example.options)
            return tuple(o for o in outputs if o.is_floating_point())

        return fn, [leaves[n] for n in names]

    def test_reference_gradcheck(self) -> None:
        for example in self.case.gradcheck_examples():
            fn, inputs = self._differentiable(example, self.case.reference, torch.float64, None)
            assert torch.autograd.gradcheck(fn, inputs, fast_mode=True)

    def test_opcheck(self, backend: str) -> None:
        for op, args in self.case.opcheck_calls(backend, device_for(backend)):
            torch.library.opcheck(op, args)

    @pytest.mark.slow
    def test_compile_fullgraph(self) -> None:
        example = self.case.fixed_example()

        def eager(tensors: Tensors, options: dict) -> tuple[torch.Tensor, ...]:
            return self.case.call(tensors, options, None)

        compiled = torch.compile(eager, fullgraph=True, backend="aot_eager")
        got = run(self.case, example, None, fn=compiled, poison=False)
        expected = run(self.case, example, None, fn=eager, poison=False)
        _assert_results_equal(got, expected, "compiled")

    def test_empty_inputs(self, backend: str) -> None:
        example = self.case.empty_example()
        got = run(self.case, example, backend)
        expected = run(self.case, example, None, fn=self.case.reference, poison=False)
        for i, (a, e) in enumerate(zip(got.outputs, expected.outputs, strict=True)):
            assert a.shape == e.shape and a.dtype == e.dtype, f"output {i}: {a.shape} {a.dtype} vs {e.shape} {e.dtype}"
        for name, g in got.grads.items():
            assert g.shape == example.tensors[name].shape and torch.count_nonzero(g) == 0, name

    def test_noncontiguous_inputs(self, backend: str) -> None:
        example = self.case.fixed_example()
        strided = dataclasses.replace(example, noncontiguous=frozenset(example.tensors))
        _assert_results_equal(run(self.case, strided, backend), run(self.case, example, backend), "non-contiguous")

    @backends("float64")
    def test_inference_mode(self, backend: str) -> None:
        # Kernels that call ATen ops on worker threads must carry the caller's thread-local state.
        example = self.case.fixed_example()
        expected = run(self.case, example, backend, grads=False)
        for mode in (torch.inference_mode, torch.no_grad):
            with mode():
                got = run(self.case, example, backend, grads=False)
            _assert_results_equal(got, expected, mode.__name__)

    def test_bad_argument(self, bad: BadCall) -> None:
        with pytest.raises(bad.error, match=bad.words):
            bad.call()

    def test_backend_choice(self, monkeypatch: pytest.MonkeyPatch) -> None:
        spec = _backend.registered_ops()[self.case.op]
        example = self.case.fixed_example()
        tensors = {k: v.float() for k, v in example.tensors.items()}

        def call(backend: str | None, values: Tensors = tensors) -> object:
            return self.case.call(values, example.options, backend)

        with pytest.raises(ValueError, match="argument 'backend' must be one of"):
            call("gpu")
        for name in set(vqcnir_ops.BACKENDS) - set(spec.backends):
            with pytest.raises(BackendUnavailableError, match=rf"backend '{name}' was requested but cannot run"):
                call(name)
        if "cuda" in spec.backends:
            with pytest.raises(BackendUnavailableError, match="cuda backend runs CUDA tensors only"):
                call("cuda")
        monkeypatch.setenv("VQCNIR_OPS_BACKEND", "cuda")
        with pytest.raises(BackendUnavailableError, match="'cuda' was requested"):
            call(None)
        call("reference")  # the argument wins over the environment
        monkeypatch.setenv("VQCNIR_OPS_BACKEND", "fastest")
        with pytest.raises(ValueError, match="environment variable VQCNIR_OPS_BACKEND must be one of"):
            call(None)
        monkeypatch.delenv("VQCNIR_OPS_BACKEND")
        wide = {k: v.double() if k in self.case.activations else v for k, v in tensors.items()}
        if "triton" in spec.backends:  # an op without a Triton kernel already refused "triton" above
            with pytest.raises(BackendUnavailableError, match="does not support dtype torch.float64"):
                call("triton", wide)
        auto = spec.choose(torch.device("cpu"), torch.float32)
        assert auto == ("cpp" if _backend.backend_unavailable_reason("cpp", "cpu") is None else "reference")
        monkeypatch.setattr(_backend, "backend_unavailable_reason", lambda name, device: f"{name} is off for this test")
        with pytest.raises(BackendUnavailableError, match="no backend can run this call") as raised:
            call(None)
        for name in vqcnir_ops.BACKENDS:  # every candidate, with its reason
            assert f"\n  {name}: " in str(raised.value), str(raised.value)

    def test_nan_and_inf_agree_with_reference(self, backend: str) -> None:
        for label, example in self.case.nan_examples().items():
            got = run(self.case, example, backend, poison=False)
            expected = run(self.case, example, "reference", device=device_for(backend), poison=False)
            for i, (a, e) in enumerate(zip(got.outputs, expected.outputs, strict=True)):
                assert_same_values(a, e, f"{label}: output {i}")
            for name, g in got.grads.items():
                assert_same_values(g, expected.grads[name], f"{label}: grad {name}")


class GPUConformance:
    """The GPU comparison of one case (collected by ``tests/gpu/test_gpu_ops.py``)."""

    case: ClassVar[Case]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        metafunc.parametrize("backend", _backend_params(self.case, "gpu"))
        examples = self.case.gpu_examples()
        metafunc.parametrize("gpu_example", list(examples.values()), ids=list(examples))
        dtypes = [pytest.param(d, id=str(d).removeprefix("torch.")) for d in (torch.float32, *LOW_PRECISION)]
        metafunc.parametrize("gpu_dtype", dtypes)

    def test_gpu_matches_float64(self, backend: str, gpu_example: Example, gpu_dtype: torch.dtype) -> None:
        example = dataclasses.replace(gpu_example, dtype=gpu_dtype).rounded(self.case)
        first = run(self.case, example, backend)
        self.case.check(example, first, *reversed(exact_and_baseline(self.case, example)))
        again = run(self.case, example, backend)
        if self.case.gpu_repeats != "all":  # the backward may use atomics: only the forward repeats
            first, again = Result(first.outputs, {}), Result(again.outputs, {})
        _assert_results_equal(again, first, "second run", exact=True)


def _assert_results_equal(got: Result, expected: Result, label: str, exact: bool = False) -> None:
    pairs: Iterator[tuple[str, torch.Tensor, torch.Tensor]] = (
        *((f"output {i}", a, e) for i, (a, e) in enumerate(zip(got.outputs, expected.outputs, strict=True))),
        *((f"grad {k}", g, expected.grads[k]) for k, g in got.grads.items()),
    )  # type: ignore[assignment]
    assert set(got.grads) == set(expected.grads), label
    for name, a, e in pairs:
        if exact:
            assert torch.equal(a, e), f"{label}: {name} differs"
        else:
            torch.testing.assert_close(a, e, equal_nan=True, msg=lambda m, n=name: f"{label}: {n}: {m}")
