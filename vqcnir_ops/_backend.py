"""The one place that decides which implementation of an op runs.

Backends:

- ``reference``: plain PyTorch (each op's ``reference.py``); always available, any device.
- ``cpp``: the C++ CPU kernels of the compiled extension ``vqcnir_ops._C``; CPU tensors.
- ``cuda``: the CUDA kernels of the same extension, when it was built with CUDA; CUDA tensors.
- ``triton``: the Triton kernels; CUDA tensors on a GPU, or CPU tensors when Triton runs in interpreter
  mode (``TRITON_INTERPRET=1`` set before ``vqcnir_ops`` launched its first Triton kernel).

``auto`` (the default) picks, per call, the fastest available backend that the op implements for the
tensor's device and dtype: the op's benchmark-chosen order for the device (``gpu_order`` on CUDA,
``cpu_order`` on CPU, ``("cpp",)`` unless the op's benchmark says otherwise), then ``reference``.
The interpreter is never chosen automatically: it is for tests, not speed.

A user forces a backend with the environment variable ``VQCNIR_OPS_BACKEND`` or the ``backend=``
argument of every functional (the argument wins). Forcing a backend that cannot run the call raises
:class:`BackendUnavailableError` saying why; it never falls back silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from vqcnir_ops import _extension

BACKENDS: tuple[str, ...] = ("reference", "cpp", "cuda", "triton")
# The dtype sets ops declare: every kernel takes half and single precision; references and C++ also float64.
HALF_AND_FLOAT = frozenset({torch.float16, torch.bfloat16, torch.float32})
ALL_FLOAT = HALF_AND_FLOAT | {torch.float64}
ENV_VAR = "VQCNIR_OPS_BACKEND"


class BackendUnavailableError(RuntimeError):
    """A backend was asked for, by argument or environment, that cannot run this call."""


@dataclass(frozen=True)
class OpBackends:
    """What one op implements: backend name -> supported dtypes, and its preference orders on GPU and CPU
    (``reference`` is always the last resort; a CPU order without ``cpp`` makes ``auto`` pick it)."""

    name: str
    dtypes: dict[str, frozenset[torch.dtype]]
    gpu_order: tuple[str, ...] = ("triton", "cuda")
    cpu_order: tuple[str, ...] = ("cpp",)
    notes: dict[str, str] = field(default_factory=dict)


_OPS: dict[str, OpBackends] = {}


def register_op(spec: OpBackends) -> OpBackends:
    """Declare an op's backends; called once by each op's ``op.py``."""
    unknown = set(spec.dtypes) - set(BACKENDS)
    if unknown:
        raise ValueError(f"op {spec.name!r} declares unknown backends {sorted(unknown)}")
    _OPS[spec.name] = spec
    return spec


def registered_ops() -> dict[str, OpBackends]:
    return dict(_OPS)


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
    choice = choice.strip().lower()
    if choice not in BACKENDS + ("auto",):
        source = "argument 'backend'" if backend is not None else f"environment variable {ENV_VAR}"
        raise ValueError(f"{source} must be one of {('auto',) + BACKENDS}, got {choice!r}")
    return choice


@torch.compiler.assume_constant_result
def _resolve(op: str, device_type: str, dtype: torch.dtype, requested: str) -> str:
    spec = _OPS[op]
    if requested != "auto":
        if requested not in spec.dtypes:
            raise BackendUnavailableError(
                f"{op}: backend {requested!r} is not implemented for this op (it has {sorted(spec.dtypes)})"
            )
        reason = backend_unavailable_reason(requested, device_type)
        if reason is None and dtype not in spec.dtypes[requested]:
            reason = f"it does not support dtype {dtype} (supported: {sorted(str(d) for d in spec.dtypes[requested])})"
        if reason is not None:
            raise BackendUnavailableError(f"{op}: backend {requested!r} was requested but cannot run: {reason}")
        return requested
    order = spec.gpu_order if device_type == "cuda" else spec.cpu_order
    for candidate in order + ("reference",):
        if candidate not in spec.dtypes or dtype not in spec.dtypes[candidate]:
            continue
        if backend_unavailable_reason(candidate, device_type) is None:
            return candidate
    raise BackendUnavailableError(f"{op}: no backend supports {dtype} on {device_type}")


def resolve_backend(op: str, device: torch.device, dtype: torch.dtype, backend: str | None = None) -> str:
    """The concrete backend that runs ``op`` on ``device`` for ``dtype``, honouring overrides."""
    return _resolve(op, device.type, dtype, requested_backend(backend))


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
