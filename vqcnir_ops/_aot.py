"""Offline GPU compile gate: every Triton kernel of vqcnir_ops compiled for real NVIDIA GPUs, without a GPU.

    python -m vqcnir_ops._aot [--arch 80,86,89,90] [--jobs N] [--only TEXT] [--json PATH] [--verbose]

Run it with ``TRITON_INTERPRET`` unset (``scripts/test.sh`` does, in its own process). Steps:

1. **Cases.** Every op folder has a ``gate_cases.py`` whose ``CASES`` call the op's own launchers on CPU
   tensors of VQCNIR's shapes, and of the edge shapes and dtypes the launchers branch on.
2. **Launches, derived from the launchers.** For each target (sm_80, sm_86, sm_89, sm_90) every case runs
   with the launch target set to it (``_launch.use_target``), so the launchers choose that target's
   settings; every launch goes through ``_launch.launch``, which reports its grid. Triton's own JIT binds
   each launch as it would on that GPU (argument dtypes, ``== 1`` and divisibility-by-16
   specialisations), through an offline stand-in for its CUDA driver, and hands the specialisation to a
   ``jit_cache_hook`` that skips compiling and launching.
3. **Compiles.** Each distinct (kernel, specialisation, target) is compiled to cubin by
   ``triton.compile`` with Triton's bundled ptxas, in parallel processes; registers and spills come from
   ptxas' report, shared memory from the compiled kernel.
4. **Verdict.** Exit status 1 on any compile error, on shared memory above the target's per-block limit,
   on a case that fails (a grid beyond CUDA's limits is one: the launch raises ``GridTooLargeError``),
   on a kernel launched other than through ``_launch.launch``, and on a ``@triton.jit`` kernel of
   vqcnir_ops that no case compiled (a new kernel is never skipped silently).

``--modules`` gates other modules instead of vqcnir_ops' (files or dotted names, each with its own
``@triton.jit`` kernels and ``CASES``): the gate's own tests use it to show that it fails.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.util
import io
import json
import multiprocessing
import os
import pkgutil
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    sys.exit("vqcnir_ops._aot compiles for real GPUs: run it with TRITON_INTERPRET unset")

import torch  # noqa: E402
from triton import knobs  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.runtime.driver import driver  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

import vqcnir_ops  # noqa: E402
from vqcnir_ops._launch import (  # noqa: E402
    GPU_TARGETS,
    LaunchRecord,
    Target,
    observe_launches,
    tf32_allowed,
    use_target,
)

DEFAULT_ARCHS = tuple(GPU_TARGETS)


@dataclass(frozen=True)
class GateCase:
    """One call of an op's launchers: ``run()`` calls them on CPU tensors (nothing is launched)."""

    name: str
    run: Callable[[], object]


DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def for_each_dtype(name: str, make: Callable[[torch.dtype], Callable[[], object]]) -> list[GateCase]:
    """One case per input dtype (float32, float16, bfloat16): ``name`` plus the dtype's short name."""
    return [GateCase(f"{name} {short}", make(dtype)) for short, dtype in DTYPES.items()]


@contextlib.contextmanager
def allow_tf32(enabled: bool) -> Iterator[None]:
    """Set torch's float32-matmul TF32 switch inside the block (cases compile both settings)."""
    matmul = torch.backends.cuda.matmul
    previous = tf32_allowed()
    matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        matmul.allow_tf32 = previous


# --- what to gate ---------------------------------------------------------------------------------


def _kernel_key(fn: JITFunction) -> str:
    return f"{fn.fn.__module__}:{fn.fn.__qualname__}"


def _import_path_or_name(spec: str) -> ModuleType:
    if not spec.endswith(".py"):
        return importlib.import_module(spec)
    name = "vqcnir_gate_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(spec))[0])
    module_spec = importlib.util.spec_from_file_location(name, spec)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot import {spec!r}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # Triton reads the kernels' source through the module
    module_spec.loader.exec_module(module)
    return module


def package_modules() -> list[ModuleType]:
    """Every Python module of vqcnir_ops (not the compiled extension, not the CLI)."""
    modules = [vqcnir_ops]
    for info in pkgutil.walk_packages(vqcnir_ops.__path__, "vqcnir_ops."):
        if info.name.endswith(("._C", ".__main__", "._aot")):
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def entry_kernels(modules: Iterable[ModuleType]) -> dict[str, JITFunction]:
    """The ``@triton.jit`` functions defined in ``modules`` that no other one calls: the kernels launchers
    launch (helpers such as ``_launch.program_ids`` are compiled as part of them)."""
    jitted = {}
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, JITFunction) and value.fn.__module__ == module.__name__:
                jitted[_kernel_key(value)] = value
    called = set()
    for fn in jitted.values():
        names = fn.fn.__code__.co_names
        referenced = [fn.fn.__globals__.get(name) for name in names]
        referenced += [getattr(m, n, None) for m in referenced if isinstance(m, ModuleType) for n in names]
        called |= {_kernel_key(r) for r in referenced if isinstance(r, JITFunction) and r is not fn}
    return {key: fn for key, fn in jitted.items() if key not in called}


def module_cases(modules: Iterable[ModuleType]) -> list[GateCase]:
    cases = []
    for module in modules:
        for case in getattr(module, "CASES", ()):
            if not isinstance(case, GateCase):
                raise TypeError(f"{module.__name__}.CASES must hold vqcnir_ops._aot.GateCase, got {case!r}")
            cases.append(case)
    return cases


# --- recording what each launcher launches ---------------------------------------------------------


class _OfflineDriver:
    """Stands in for Triton's CUDA driver while the launchers run: it names the target, and nothing is
    launched (the hook below stops every launch before compiling). Device number = arch, so each target
    gets its own JIT cache."""

    def __init__(self, arch: int) -> None:
        self.target = GPUTarget("cuda", arch, 32)

    def get_current_device(self) -> int:
        return self.target.arch

    def get_current_stream(self, device: int | None = None) -> int:
        return 0

    def get_current_target(self) -> GPUTarget:
        return self.target


@contextlib.contextmanager
def _offline(arch: int) -> Iterator[None]:
    previous = driver._active  # the real driver cannot be created without a GPU, so put back what was there
    driver.set_active(_OfflineDriver(arch))
    try:
        yield
    finally:
        driver._active = previous


@dataclass
class Request:
    """A distinct compile: one kernel, specialisation and target, and the cases and grids that need it."""

    kernel: str
    arch: int
    spec: str  # Triton's serialized specialisation (JITFunction.preload's input)
    constants: str
    cases: list[str] = field(default_factory=list)
    grids: list[tuple[int, int, int]] = field(default_factory=list)


@dataclass
class Recording:
    requests: dict[tuple[int, str, str], Request] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    launches: int = 0


def _describe_constants(spec: dict) -> str:
    names = list(spec["signature"])
    constants = zip(spec["constant_keys"], spec["constant_vals"], strict=True)
    pairs = [f"{names[path[0]]}={value}" for path, value in constants]
    options = spec["options"]
    return ", ".join(pairs + [f"num_warps={options['num_warps']}", f"num_stages={options['num_stages']}"])


def record(cases: Sequence[GateCase], targets: Sequence[Target], verbose: bool = False) -> Recording:
    """Run every case on every target; collect the distinct compiles Triton's JIT asks for."""
    recording = Recording()
    pending: list[tuple[JITFunction, tuple[int, int, int]]] = []
    current: dict = {"case": "", "arch": 0}

    def on_launch(launched: LaunchRecord) -> None:
        # Each chunk is within CUDA's grid limits by construction (_launch.split_grid); a launch whose axis 0
        # cannot be split raises GridTooLargeError, which fails its case.
        pending.append((launched.kernel, launched.chunk.grid))
        recording.launches += 1

    def on_compile(*, key: object, repr: str, fn: object, compile: dict, is_manual_warmup: bool,
                   already_compiled: bool) -> bool:  # fmt: skip
        kernel = fn.jit_function
        _KERNELS.setdefault(_kernel_key(kernel), kernel)  # the worker processes compile it by this key
        launched = pending.pop() if pending else None
        if launched is None or launched[0] is not kernel:
            recording.problems.append(
                f"DIRECT LAUNCH {kernel.fn.__name__} ({current['case']}): launch Triton kernels through "
                "vqcnir_ops._launch.launch, which keeps grids within CUDA's limits"
            )
        spec = json.loads(compile["specialization_data"])
        arch = current["arch"]  # (Triton 3.9 also writes it into the specialisation, 3.6 does not)
        dedupe = {k: spec[k] for k in ("signature", "constant_keys", "constant_vals", "attrs_keys", "attrs_vals")}
        dedupe["options"] = spec["options"]
        request_key = (arch, _kernel_key(kernel), json.dumps(dedupe, sort_keys=True, default=str))
        request = recording.requests.get(request_key)
        if request is None:
            request = Request(_kernel_key(kernel), arch, compile["specialization_data"], _describe_constants(spec))
            recording.requests[request_key] = request
        if current["case"] not in request.cases:
            request.cases.append(current["case"])
        if launched is not None:
            request.grids.append(launched[1])
        return True  # compiled later, for every target in parallel; nothing is launched

    previous_hook = knobs.runtime.jit_cache_hook
    knobs.runtime.jit_cache_hook = on_compile
    try:
        for target in targets:
            current["arch"] = target.arch
            with _offline(target.arch), use_target(target), observe_launches(on_launch):
                for case in cases:
                    current["case"] = f"{case.name} [{target.name}]"
                    pending.clear()
                    try:
                        case.run()
                    except Exception as error:  # a case that cannot even launch fails the gate
                        recording.problems.append(f"CASE {current['case']} raised {type(error).__name__}: {error}")
                    if verbose:
                        print(f"recorded {current['case']}", flush=True)
    finally:
        knobs.runtime.jit_cache_hook = previous_hook
    return recording


# --- compiling --------------------------------------------------------------------------------------

_KERNELS: dict[str, JITFunction] = {}  # filled before the worker processes fork


@dataclass
class Outcome:
    kernel: str
    arch: int
    constants: str
    cases: list[str]
    max_grid: tuple[int, int, int] | None
    ok: bool = False
    error: str = ""
    seconds: float = 0.0
    registers: int | None = None
    spill_stores: int | None = None
    spill_loads: int | None = None
    shared: int | None = None
    dot: str = ""


def _parse_ptxas(log: str, outcome: Outcome) -> None:
    if match := re.search(r"Used (\d+) registers", log):
        outcome.registers = int(match.group(1))
    if match := re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log):
        outcome.spill_stores, outcome.spill_loads = int(match.group(1)), int(match.group(2))


def _dot_kind(ptx: str) -> str:
    if "wgmma.mma_async" in ptx:
        return "wgmma"
    if "mma.sync" in ptx:
        return "mma"
    return "fma" if ".f32" in ptx else "-"


def compile_request(request: Request) -> Outcome:
    """Compile one request to cubin for its target (runs in a worker process)."""
    grids = request.grids
    max_grid = tuple(max(g[i] for g in grids) for i in range(3)) if grids else None
    outcome = Outcome(request.kernel, request.arch, request.constants, request.cases, max_grid)
    fn = _KERNELS[request.kernel]
    log = io.StringIO()
    start = time.perf_counter()
    knobs.runtime.jit_cache_hook = None
    knobs.nvidia.dump_ptxas_log = True  # Triton prints ptxas' -v report (registers, spills)
    try:
        with _offline(request.arch), contextlib.redirect_stdout(log):
            compiled = fn.preload(request.spec)  # Triton's own path from a specialisation to a kernel
        outcome.ok = True
        outcome.shared = int(compiled.metadata.shared)
        outcome.dot = _dot_kind(compiled.asm.get("ptx", ""))
        _parse_ptxas(log.getvalue(), outcome)
    except Exception as error:  # report every failure and go on with the next compile
        lines = [line for line in f"{type(error).__name__}: {error}".splitlines() if line.strip()]
        outcome.error = "\n".join(lines[:30])
    finally:
        outcome.seconds = time.perf_counter() - start
    return outcome


def compile_all(requests: Sequence[Request], jobs: int) -> list[Outcome]:
    # Longest first (the deformable-conv kernels), so the pool does not end waiting on one of them.
    order = sorted(requests, key=lambda r: ("deform" not in r.kernel, r.kernel, r.arch))
    if jobs <= 1:
        return [compile_request(r) for r in order]
    context = multiprocessing.get_context("fork")  # workers inherit the imported kernels
    with context.Pool(jobs) as pool:
        return list(pool.imap_unordered(compile_request, order, chunksize=1))


# --- verdict and report -----------------------------------------------------------------------------


def check(outcomes: Sequence[Outcome], kernels: dict[str, JITFunction], targets: Sequence[Target]) -> list[str]:
    limits = {t.arch: t for t in targets}
    problems = []
    for o in outcomes:
        target = limits[o.arch]
        if not o.ok:
            problems.append(f"COMPILE {o.kernel} on {target.name} [{o.constants}] ({o.cases[0]}):\n{o.error}")
        elif o.shared is not None and o.shared > target.shared_memory:
            problems.append(
                f"SHARED MEMORY {o.kernel} on {target.name} [{o.constants}] needs {o.shared} B per block, above the "
                f"{target.shared_memory} B the target allows ({o.cases[0]})"
            )
    for arch, target in limits.items():
        compiled = {o.kernel for o in outcomes if o.arch == arch}
        for key in sorted(set(kernels) - compiled):
            problems.append(f"NOT COMPILED {key} on {target.name}: no gate case launches it (add one to gate_cases.py)")
    return problems


def _short(kernel: str) -> str:
    return kernel.split(":")[-1]


def summary_table(outcomes: Sequence[Outcome], targets: Sequence[Target]) -> str:
    """Per kernel and target, over its variants: max registers, max spill stores+loads, max shared memory."""
    kernels = sorted({o.kernel for o in outcomes})
    head = f"{'kernel':<34} {'variants':>8}  " + "  ".join(f"{t.name + ' regs/spill B/shared KB':<30}" for t in targets)
    lines = [head, "-" * len(head)]
    for kernel in kernels:
        cells = []
        variants = 0
        for t in targets:
            mine = [o for o in outcomes if o.kernel == kernel and o.arch == t.arch]
            variants = max(variants, len(mine))
            ok = [o for o in mine if o.ok]
            if len(ok) < len(mine):
                cells.append(f"{len(mine) - len(ok)} FAILED".ljust(30))
                continue
            regs = max((o.registers or 0) for o in ok)
            spill = max((o.spill_stores or 0) + (o.spill_loads or 0) for o in ok)
            shared = max((o.shared or 0) for o in ok)
            cells.append(f"{regs:>3} / {spill:>5} / {shared / 1024:6.1f} of {t.shared_memory // 1024}".ljust(30))
        lines.append(f"{_short(kernel):<34} {variants:>8}  " + "  ".join(cells))
    return "\n".join(lines)


def variant_table(outcomes: Sequence[Outcome]) -> str:
    lines = [f"{'target':<6} {'kernel':<34} {'ok':<3} {'regs':>4} {'spill st/ld':>11} {'shared':>7} {'dot':<5} "
             f"{'s':>5}  constants (first case)"]  # fmt: skip
    for o in sorted(outcomes, key=lambda o: (o.kernel, o.arch, o.constants)):
        spill = f"{o.spill_stores}/{o.spill_loads}" if o.spill_stores is not None else "?"
        lines.append(
            f"sm_{o.arch:<3} {_short(o.kernel):<34} {'yes' if o.ok else 'NO':<3} {o.registers or '-':>4} {spill:>11} "
            f"{o.shared if o.shared is not None else '-':>7} {o.dot:<5} {o.seconds:5.1f}  [{o.constants}] "
            f"({o.cases[0]})"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vqcnir_ops._aot", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--arch", default=",".join(map(str, DEFAULT_ARCHS)),
        help=f"compute capabilities to compile for, of {sorted(GPU_TARGETS)} (default: all)",
    )  # fmt: skip
    parser.add_argument("--jobs", type=int, default=min(os.cpu_count() or 1, 8), help="compile processes")
    parser.add_argument("--only", default="", help="only cases whose name contains this text")
    parser.add_argument("--modules", nargs="+", default=None, help="gate these modules (files or names) instead")
    parser.add_argument("--json", default="", help="write every compile's result to this file")
    parser.add_argument("--verbose", action="store_true", help="print every variant, not only the summary")
    args = parser.parse_args(argv)
    try:
        archs = [int(a) for a in args.arch.split(",")]
        targets = [GPU_TARGETS[a] for a in archs]
    except (ValueError, KeyError):
        parser.error(f"--arch must be a comma-separated subset of {sorted(GPU_TARGETS)}, got {args.arch!r}")
    start = time.perf_counter()
    os.environ.setdefault("TRITON_CACHE_DIR", tempfile.mkdtemp(prefix="vqcnir-gate-"))  # every stage really runs

    modules = [_import_path_or_name(m) for m in args.modules] if args.modules else package_modules()
    kernels = entry_kernels(modules)
    _KERNELS.update({_kernel_key(fn): fn for fn in kernels.values()})
    cases = [c for c in module_cases(modules) if args.only in c.name]
    if not cases:
        print("gate: no cases to run", file=sys.stderr)
        return 1
    recording = record(cases, targets, verbose=args.verbose)
    recorded_s = time.perf_counter() - start
    outcomes = compile_all(list(recording.requests.values()), args.jobs)
    if args.only:  # a partial run cannot say which kernels no case covers
        kernels = {}
    problems = recording.problems + check(outcomes, kernels, targets)

    print(
        f"\nTriton {__import__('triton').__version__}, torch {torch.__version__}: {len(cases)} cases x "
        f"{len(targets)} targets -> {recording.launches} launches, {len(outcomes)} distinct compiles of "
        f"{len({o.kernel for o in outcomes})} kernels ({recorded_s:.0f} s recording, "
        f"{time.perf_counter() - start:.0f} s in all, {args.jobs} processes)\n"
    )
    if args.verbose:
        print(variant_table(outcomes) + "\n")
    print(summary_table(outcomes, targets))
    if args.json:
        with open(args.json, "w") as out:
            json.dump([dataclasses.asdict(o) for o in outcomes], out, indent=1)
    if problems:
        print(f"\nGPU compile gate FAILED ({len(problems)} problems):", file=sys.stderr)
        for problem in problems:
            print(f"- {problem}", file=sys.stderr)
        return 1
    print(f"\nGPU compile gate passed: every kernel compiles for {', '.join(t.name for t in targets)} within "
          "shared memory and grid limits")  # fmt: skip
    return 0


if __name__ == "__main__":
    # Run the importable module's main, not this __main__ copy: the case files import vqcnir_ops._aot.
    from vqcnir_ops._aot import main as _main

    sys.exit(_main())
