"""The glue of every op, written once: its backends, the choice among them, and how they are called.

Backends:

- ``reference``: plain PyTorch (each op's ``reference.py``); always available, any device.
- ``cpp``: the C++ CPU kernels of the compiled extension ``vqcnir_ops._C``; CPU tensors.
- ``cuda``: the CUDA kernels of the same extension, when it was built with CUDA; CUDA tensors.
- ``triton``: the Triton kernels; CUDA tensors on a GPU, or CPU tensors when Triton runs in interpreter
  mode (``TRITON_INTERPRET=1`` set before ``vqcnir_ops`` launched its first Triton kernel).

Each op declares its backends once, in its ``backends.py``: an :class:`OpSpec` mapping backend names to a
:class:`Backend` (forward and backward implementations, imported on first use, and an optional support
check that returns why the backend cannot run a given call). Whether a backend can run a call is decided
here, in one place, from four reasons: the op implements it, it computes in the call's dtype (``triton`` and
``cuda`` compute in float32 only, see ``vqcnir_ops._dtypes``), it runs on the tensors' device on this machine
(:func:`backend_unavailable_reason`), and the op's own support check.

Choice (:meth:`OpSpec.choose`): ``auto`` (the default) takes, per call, the first backend that can run it
in the op's order for the device (``gpu_order`` on CUDA, ``cpu_order`` on CPU), then ``reference``. The
interpreter is never chosen automatically: it is for tests, not speed. A user forces a backend with the
environment variable ``VQCNIR_OPS_BACKEND`` or the ``backend=`` argument of every functional (the argument
wins); a forced backend that cannot run the call raises :class:`BackendUnavailableError` with its reason,
never a silent fallback. When no backend can run a call, the error lists every candidate with its reason.

Calls (:meth:`OpSpec.forward`, :meth:`OpSpec.backward`): the glue makes the CUDA device of the tensors the
current one (Triton and the CUDA kernels launch on the current device), loads the compiled extension for
``cpp``/``cuda``, and returns contiguous outputs; each launcher makes the inputs it indexes densely
contiguous itself (the compile gate calls launchers directly). The dtype policy (which dtypes mix,
output and compute dtypes) is ``vqcnir_ops._dtypes``.

Each op's forward is a registered custom op (``torch.ops.vqcnir.<op>_fwd``): that is what autograd,
``torch.compile``, ``torch.export`` and fake tensors need. An eager call that none of them sees (no input
that autograd will differentiate, plain tensors, no tracer or dispatch mode) runs the same implementation
directly instead (:func:`call_forward`): the custom op's Python dispatch costs tens of microseconds a call,
about 5% of the channel attention at the decoder's deepest level.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode as _current_dispatch_mode

from vqcnir_ops import _extension

BACKENDS: tuple[str, ...] = ("reference", "cpp", "cuda", "triton")
ENV_VAR = "VQCNIR_OPS_BACKEND"
# Backends that compute in float64 for float64 activations; the others compute in float32 only.
FLOAT64_BACKENDS = frozenset({"reference", "cpp"})
# An implementation: a function, or "package.module:function" imported on first use (Triton kernels are never
# imported before a call needs them), or "vqcnir_C:kernel" for a kernel of the compiled extension.
Impl = Callable[..., Any] | str
# What a support check sees of a call: sizes and flags the functional passes to OpSpec.choose.
Facts = Mapping[str, int | bool]


class BackendUnavailableError(RuntimeError):
    """A backend was asked for, by argument or environment, that cannot run this call; or none can run it."""


@dataclass(frozen=True)
class Backend:
    """One backend of one op.

    Attributes:
        forward: implementation of the op's forward custom op (same arguments, minus ``backend``).
        backward: implementation of the backward custom op, if the op has one per backend.
        supports: ``facts -> None`` if this backend can run a call with these facts, else the reason.
    """

    forward: Impl
    backward: Impl | None = None
    supports: Callable[[Facts], str | None] | None = None


@dataclass(frozen=True)
class OpSpec:
    """An op's backends and its preference orders (``reference`` is always the last resort).

    ``notes`` give the reason for a backend the op deliberately does not implement.
    """

    name: str
    backends: Mapping[str, Backend]
    gpu_order: tuple[str, ...] = ("triton", "cuda")
    cpu_order: tuple[str, ...] = ("cpp",)
    notes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.backends) - set(BACKENDS)
        if unknown or "reference" not in self.backends:
            raise ValueError(f"op {self.name!r}: backends must include 'reference' and be among {BACKENDS}")
        _OPS[self.name] = self

    def reasons(self, device_type: str, dtype: torch.dtype, facts: Facts) -> dict[str, str | None]:
        """Every backend name -> None if it can run this call, else why not."""
        return {name: self._reason(name, device_type, dtype, facts) for name in BACKENDS}

    def _reason(self, name: str, device_type: str, dtype: torch.dtype, facts: Facts) -> str | None:
        backend = self.backends.get(name)
        if backend is None:
            return self.notes.get(name, f"not implemented for this op (it has {', '.join(self.backends)})")
        if dtype == torch.float64 and name not in FLOAT64_BACKENDS:
            return f"it computes in float32 only and does not support dtype {dtype} (reference and cpp do)"
        reason = backend_unavailable_reason(name, device_type)
        if reason is None and backend.supports is not None:
            reason = backend.supports(facts)
        return reason

    def choose(self, device: torch.device, dtype: torch.dtype, backend: str | None = None, **facts: int | bool) -> str:
        """The backend that runs a call on ``device`` whose activations have ``dtype`` (see module doc)."""
        return _choose(self.name, device.type, dtype, requested_backend(backend), tuple(sorted(facts.items())))

    def forward(self, backend: str, *args: Any) -> Any:
        """Run ``backend``'s forward implementation under the glue's rules (module doc)."""
        return self._run(backend, "forward", args)

    def backward(self, backend: str, *args: Any) -> Any:
        """Run ``backend``'s backward implementation under the glue's rules (module doc)."""
        return self._run(backend, "backward", args)

    def _run(self, backend: str, stage: str, args: tuple) -> Any:
        declared = self.backends[backend]
        impl = _load(backend, getattr(declared, stage))
        with device_guard(*args):
            result = impl(*args)
        if isinstance(result, torch.Tensor):
            return result.contiguous()
        return tuple(r.contiguous() if isinstance(r, torch.Tensor) else r for r in result)


def needs_custom_op(args: tuple) -> bool:
    """Whether a forward with these arguments must go through its registered custom op (module doc): under
    a tracer (torch.compile, torch.jit.trace) or a dispatch mode, with tensor subclasses (fake, functorch
    wrappers) or meta tensors, or when autograd will differentiate it."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or _current_dispatch_mode() is not None:
        return True
    grad = torch.is_grad_enabled()
    for arg in args:
        if isinstance(arg, torch.Tensor) and (
            type(arg) is not torch.Tensor
            or arg.is_meta
            or (grad and arg.requires_grad)
            or torch._C._functorch.is_functorch_wrapped_tensor(arg)
        ):
            return True
    return False


def call_forward(op: Callable[..., Any], direct: Callable[..., Any], *args: Any) -> Any:
    """``op(*args)`` (a registered custom op) where :func:`needs_custom_op`, else ``direct(*args)``: the
    function that ``op`` wraps, so both give the same result."""
    return op(*args) if needs_custom_op(args) else direct(*args)


_OPS: dict[str, OpSpec] = {}


def registered_ops() -> dict[str, OpSpec]:
    """Every declared op by name (those whose ``backends.py`` has been imported: importing vqcnir_ops does it)."""
    return dict(_OPS)


def device_guard(*args: Any) -> contextlib.AbstractContextManager:
    """The first CUDA tensor's device made current (Triton and the CUDA kernels launch on the current one)."""
    for arg in args:
        if isinstance(arg, torch.Tensor) and arg.is_cuda:
            return torch.cuda.device(arg.device)
    return contextlib.nullcontext()


def _load(backend: str, impl: Impl | None) -> Callable[..., Any]:
    if backend in ("cpp", "cuda"):
        _extension.require()
    if impl is None:
        raise RuntimeError(f"backend {backend!r} declares no implementation for this stage")
    if callable(impl):
        return impl
    module, _, name = impl.partition(":")
    if module == "vqcnir_C":
        return getattr(torch.ops.vqcnir_C, name)
    return getattr(importlib.import_module(module), name)


# --- availability ---------------------------------------------------------------------------------


def triton_interpreting() -> bool:
    """True when Triton kernels run in interpreter mode (CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _triton_missing_reason() -> str | None:
    try:
        import triton  # noqa: F401  (cheap: torch has usually imported it already)
    except ImportError as error:
        return f"the 'triton' package is not importable ({error}); pip install triton"
    return None


def backend_unavailable_reason(backend: str, device_type: str) -> str | None:
    """Why ``backend`` cannot run on ``device_type`` ('cpu', 'cuda'), or None if it can."""
    if backend == "reference":
        return None
    if backend == "cpp":
        if device_type != "cpu":
            return f"the cpp backend runs CPU tensors only, got a {device_type} tensor"
        return _extension.missing_reason()
    if backend == "cuda":
        if device_type != "cuda":
            return f"the cuda backend runs CUDA tensors only, got a {device_type} tensor"
        missing = _extension.missing_reason()
        if missing is not None:
            return missing
        if not _extension.has_cuda_kernels():
            return "vqcnir_ops._C was built without CUDA kernels (torch had no CUDA, or VQCNIR_BUILD_CUDA=0)"
        return None
    if backend == "triton":
        missing = _triton_missing_reason()
        if missing is not None:
            return missing
        if device_type == "cuda":
            return None
        if device_type == "cpu":
            if triton_interpreting():
                return None
            return (
                "Triton runs CPU tensors only in interpreter mode: set TRITON_INTERPRET=1 before importing vqcnir_ops"
            )
        return f"Triton cannot run {device_type} tensors"
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")


# --- choice ---------------------------------------------------------------------------------------


def requested_backend(backend: str | None) -> str:
    """The backend asked for: the argument if given, else the environment, else 'auto'."""
    choice = backend if backend is not None else os.environ.get(ENV_VAR, "auto")
    choice = choice.strip().lower() if isinstance(choice, str) else choice
    if choice not in BACKENDS + ("auto",):
        source = "argument 'backend'" if backend is not None else f"environment variable {ENV_VAR}"
        raise ValueError(f"{source} must be one of {('auto',) + BACKENDS}, got {choice!r}")
    return choice


def _listing(reasons: Mapping[str, str | None]) -> str:
    return "".join(f"\n  {name}: {'can run it' if why is None else why}" for name, why in reasons.items())


@torch.compiler.assume_constant_result
def _choose(op: str, device_type: str, dtype: torch.dtype, requested: str, facts: tuple) -> str:
    spec = _OPS[op]
    facts_map = dict(facts)
    # Ask only the candidates needed, in order; every backend's reason is gathered only to explain an error.
    order = spec.gpu_order if device_type == "cuda" else spec.cpu_order
    for candidate in (*order, "reference") if requested == "auto" else (requested,):
        if spec._reason(candidate, device_type, dtype, facts_map) is None:
            return candidate
    reasons = spec.reasons(device_type, dtype, facts_map)
    call = f"{dtype} on {device_type}" + "".join(f", {name}={value}" for name, value in facts)
    if requested != "auto":
        raise BackendUnavailableError(
            f"{op}: backend {requested!r} was requested but cannot run this call ({call}): {reasons[requested]}"
            f"\nbackends for this call:{_listing(reasons)}"
        )
    raise BackendUnavailableError(f"{op}: no backend can run this call ({call}):{_listing(reasons)}")


def availability() -> dict[str, str | None]:
    """Backend-level availability on this machine: name -> None if usable, else the reason."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report: dict[str, str | None] = {
        "reference": None,
        "cpp": backend_unavailable_reason("cpp", "cpu"),
        "cuda": backend_unavailable_reason("cuda", "cuda")
        if torch.cuda.is_available()
        else "no CUDA device visible to torch (torch.cuda.is_available() is False)",
        "triton": backend_unavailable_reason("triton", device),
    }
    return report
