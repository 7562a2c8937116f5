"""How every Triton kernel of vqcnir_ops is launched: the target, grids within CUDA's limits, the TF32 switch.

Three things every launcher needs and none should decide alone:

- **The target** (:class:`Target`): the GPU generation and its per-block limits, from which the launchers
  derive the settings that depend on the device (tile sizes, ``num_stages``: shared memory per block is
  163 KB on sm_80, 99 KB on sm_86/sm_89, 227 KB on sm_90). ``launch_target(device)`` reads it from the
  CUDA device, or gives :data:`INTERPRETER` for CPU tensors under ``TRITON_INTERPRET=1``;
  :func:`use_target` overrides it, so the offline compile gate (``vqcnir_ops._aot``) derives each
  target's settings from the launchers themselves, and tests run the settings of every target.
- **The launch** (:func:`launch`): CUDA allows 2**31 - 1 programs on grid axis 0 but only 65,535 on axes
  1 and 2. The launchers put the axis that grows with the image (pixels) on axis 0; :func:`launch` splits
  whatever still exceeds the target's limits on axes 1 and 2 (batch x heads, ...) into several launches
  and passes each one's first program ids as ``pid1_base`` / ``pid2_base``, which the kernel adds through
  :func:`program_ids`. A grid that needs more than 2**31 - 1 programs on axis 0 is refused with a clear
  error (it would be more than ~10**11 elements). Observers (the compile gate) see every launch.
- **float32 ``tl.dot``** (:func:`fp32_dot_precision`): IEEE by default, TF32 when torch allows TF32 for
  float32 matmuls (``torch.backends.cuda.matmul.allow_tf32 = True`` or
  ``torch.set_float32_matmul_precision("high")``), exactly as cuBLAS decides for ``torch.matmul``. Each op
  documents where it follows the switch (nearest_code never does: its distance contract needs IEEE).
  Triton's interpreter computes every dot in float32 whatever the precision says.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

# CUDA's grid limits (every compute capability >= 3.0): x, y, z.
CUDA_MAX_GRID: tuple[int, int, int] = (2**31 - 1, 65535, 65535)
KIB = 1024


@dataclass(frozen=True)
class Target:
    """What launch settings may depend on.

    Attributes:
        name: e.g. ``"sm_90"`` or ``"interpreter"``.
        arch: compute capability x 10 (80, 86, 89, 90).
        shared_memory: bytes of shared memory one block may use (``cudaDevAttrMaxSharedMemoryPerBlockOptin``).
        max_grid: programs per grid axis (CUDA's limits unless a test lowers them).
        interpreter: kernels run in Triton's CPU interpreter (tests), with the settings of ``arch``.
    """

    name: str
    arch: int
    shared_memory: int
    max_grid: tuple[int, int, int] = CUDA_MAX_GRID
    interpreter: bool = False

    def __post_init__(self) -> None:
        if self.shared_memory <= 0 or any(limit < 1 for limit in self.max_grid) or len(self.max_grid) != 3:
            raise ValueError(f"invalid target {self}: shared_memory and the three grid limits must be positive")


# Per-block shared memory of the targets the project supports (CUDA C++ Programming Guide, "Compute
# Capabilities": 163 KB on 8.0, 99 KB on 8.6 and 8.9, 227 KB on 9.0; 1 KB of each SM is reserved).
GPU_TARGETS: dict[int, Target] = {
    80: Target("sm_80", 80, 163 * KIB),
    86: Target("sm_86", 86, 99 * KIB),
    89: Target("sm_89", 89, 99 * KIB),
    90: Target("sm_90", 90, 227 * KIB),
}
# The interpreter runs the settings of the smallest target, so CPU tests exercise what consumer GPUs run;
# tests run the other targets' settings through use_target.
INTERPRETER = dataclasses.replace(GPU_TARGETS[86], name="interpreter", interpreter=True)

_OVERRIDE: ContextVar[Target | None] = ContextVar("vqcnir_launch_target", default=None)


@contextlib.contextmanager
def use_target(target: Target) -> Iterator[Target]:
    """Launchers use ``target`` inside the block, whatever the tensors' device (compile gate, tests)."""
    if not isinstance(target, Target):
        raise TypeError(f"argument 'target' must be a vqcnir_ops._launch.Target, got {type(target).__name__}")
    token = _OVERRIDE.set(target)
    try:
        yield target
    finally:
        _OVERRIDE.reset(token)


@functools.cache
def _cuda_target(index: int) -> Target:
    props = torch.cuda.get_device_properties(index)
    arch = props.major * 10 + props.minor
    known = GPU_TARGETS.get(arch)
    shared = getattr(props, "shared_memory_per_block_optin", 0) or (known.shared_memory if known else 48 * KIB)
    return Target(f"sm_{arch}", arch, int(shared))


def launch_target(device: torch.device) -> Target:
    """The target launches on ``device`` are configured for (see :func:`use_target`)."""
    override = _OVERRIDE.get()
    if override is not None:
        return override
    if device.type == "cuda":
        return _cuda_target(device.index if device.index is not None else torch.cuda.current_device())
    return INTERPRETER


def stages_that_fit(target: Target, bytes_per_stage: int, fixed_bytes: int = 0, deepest: int = 3) -> int:
    """The deepest software pipeline (``num_stages``, at most ``deepest``) whose shared memory fits ``target``.

    Triton keeps ``num_stages - 1`` copies of the tiles a loop loads in flight, so a kernel needs about
    ``(num_stages - 1) * bytes_per_stage + fixed_bytes``. Launchers pass an upper estimate of their
    per-stage footprint; the offline compile gate checks what the compiled kernels really use.
    """
    for stages in range(deepest, 1, -1):
        if (stages - 1) * bytes_per_stage + fixed_bytes <= target.shared_memory:
            return stages
    return 1


# --- grids ----------------------------------------------------------------------------------------


class GridTooLargeError(ValueError):
    """A launch would need more programs on grid axis 0 than CUDA allows."""


@dataclass(frozen=True)
class GridChunk:
    """One launch of a split grid: its grid and the first program ids of axes 1 and 2."""

    grid: tuple[int, int, int]
    pid1_base: int = 0
    pid2_base: int = 0


def split_grid(grid: Sequence[int], max_grid: Sequence[int] = CUDA_MAX_GRID) -> list[GridChunk]:
    """The launches that cover ``grid`` (1 to 3 axes) within ``max_grid``: axes 1 and 2 are cut into
    chunks of at most their limit; axis 0 must fit (it carries the axis that grows with the image).
    An empty grid gives no launch."""
    if not 1 <= len(grid) <= 3 or any(not isinstance(g, int) or g < 0 for g in grid):
        raise ValueError(f"a grid is 1 to 3 non-negative ints, got {tuple(grid)}")
    g0, g1, g2 = (*grid, 1, 1)[:3]
    if g0 * g1 * g2 == 0:
        return []
    if g0 > max_grid[0]:
        raise GridTooLargeError(
            f"the launch needs {g0} programs on grid axis 0, more than the {max_grid[0]} CUDA allows: "
            "split the input (e.g. the batch) into smaller calls"
        )
    return [
        GridChunk((g0, min(max_grid[1], g1 - base1), min(max_grid[2], g2 - base2)), base1, base2)
        for base2 in range(0, g2, max_grid[2])
        for base1 in range(0, g1, max_grid[1])
    ]


@triton.jit
def program_ids(pid1_base, pid2_base):  # noqa: ANN001, ANN201, ANN202  (Triton types it when compiling)
    """The program's ids on the three axes of the grid the launcher asked for (see :func:`launch`)."""
    return tl.program_id(0), tl.program_id(1) + pid1_base, tl.program_id(2) + pid2_base


# --- launching ------------------------------------------------------------------------------------

GRID_BASE_ARGS = ("pid1_base", "pid2_base")


@dataclass(frozen=True)
class LaunchRecord:
    """One launch as :func:`launch` makes it: the kernel, the chunk's grid and first program ids, the target
    and the keyword arguments (constexprs, ``num_warps``, ``num_stages``)."""

    kernel: triton.runtime.JITFunction
    chunk: GridChunk
    target: Target
    kwargs: dict[str, object]


Observer = Callable[[LaunchRecord], None]
_OBSERVERS: ContextVar[tuple[Observer, ...]] = ContextVar("vqcnir_launch_observers", default=())


@contextlib.contextmanager
def observe_launches(observer: Observer) -> Iterator[None]:
    """Call ``observer(record)`` before every launch inside the block (the compile gate records grids this
    way; tests check settings)."""
    token = _OBSERVERS.set((*_OBSERVERS.get(), observer))
    try:
        yield
    finally:
        _OBSERVERS.reset(token)


def launch(target: Target, kernel: triton.runtime.JITFunction, grid: Sequence[int], *args: object,
           **kwargs: object) -> None:  # fmt: skip
    """Launch ``kernel`` over ``grid`` (the grid the launcher wants, 1 to 3 axes) on ``target``.

    A kernel launched over more than one axis must take ``pid1_base`` and ``pid2_base`` and read its
    program ids with :func:`program_ids`: where axes 1 or 2 exceed the target's limits the grid is
    launched in chunks. Every launch goes through here, so none escapes the limits or the compile gate.
    """
    chunks = split_grid(grid, target.max_grid)
    multi_axis = len(grid) > 1
    if multi_axis and not set(GRID_BASE_ARGS) <= set(kernel.arg_names):
        raise TypeError(
            f"{kernel.fn.__name__} is launched over {len(grid)} grid axes, so it must take the arguments "
            f"{GRID_BASE_ARGS} and read its program ids with vqcnir_ops._launch.program_ids"
        )
    # Multiply-adds contract to FMA, as nvcc compiles our CUDA kernels; explicit, because Triton 3.10
    # changes its default (and 3.9 warns about it at every first compile).
    kwargs.setdefault("enable_fp_fusion", True)
    for chunk in chunks:
        for observer in _OBSERVERS.get():
            observer(LaunchRecord(kernel, chunk, target, kwargs))
        bases = {"pid1_base": chunk.pid1_base, "pid2_base": chunk.pid2_base} if multi_axis else {}
        kernel[chunk.grid](*args, **bases, **kwargs)


# --- torch's float32 matmul switch ----------------------------------------------------------------


def tf32_allowed() -> bool:
    """Whether torch lets float32 matmuls use TF32 on CUDA (what cuBLAS follows).

    ``torch.backends.cuda.matmul.allow_tf32`` reflects both ``set_float32_matmul_precision`` and the flag
    itself. torch >= 2.9 raises when its legacy and new (``fp32_precision``) APIs were set inconsistently;
    then the new API, which torch documents as the one that wins, decides.
    """
    matmul = torch.backends.cuda.matmul
    try:
        return bool(matmul.allow_tf32)
    except RuntimeError:
        precision = getattr(matmul, "fp32_precision", "none")
        if precision == "none":
            precision = getattr(torch.backends, "fp32_precision", "none")
        return precision == "tf32"


def fp32_dot_precision() -> str:
    """``input_precision`` of a float32 ``tl.dot`` that follows torch's switch: ``"tf32"`` or ``"ieee"``."""
    return "tf32" if tf32_allowed() else "ieee"
