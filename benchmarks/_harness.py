"""Small benchmark harness shared by every ``bench_<op>.py``.

A benchmark declares cases (shapes) and providers (callables built from what is available); the
harness times each provider on each case in one run, reports the time as a ratio to a baseline
provider measured in the same run (never absolute times across runs), the peak memory the call
allocated, and an optional throughput (GB/s for memory-bound ops, TFLOP/s for matmul-bound ones).
It prints a table and appends one JSON record per run, with the device name, to
``benchmarks/results/<bench>.jsonl``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


@dataclass
class Case:
    name: str
    make_inputs: Callable[[torch.device], tuple]
    flops: float | None = None  # per call, for TFLOP/s
    bytes: float | None = None  # minimum bytes moved per call, for GB/s


@dataclass
class Result:
    case: str
    provider: str
    ms: float
    ratio_to_baseline: float | None = None
    peak_mib: float | None = None
    tflops: float | None = None
    gbps: float | None = None
    note: str = ""


@dataclass
class Report:
    bench: str
    device: str
    torch: str
    dtype: str = "float32"
    results: list[Result] = field(default_factory=list)
    threads: int | None = None  # torch CPU threads
    repeat: int = 1  # interleaved rounds of every provider; each time is the median of the rounds
    load: list[float] | None = None  # 1-minute load average before and after the run (other work on the machine)
    clock: str = "wall"  # "wall" time, or the "process" CPU time (see --clock)


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def parse_args(
    description: str, add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    """The options every benchmark takes (and ``add_arguments``' own): --device, --dtype, --quick, --only,
    --no-compile, --no-save, --results-dir, --json-out, --threads. ``args.dtype`` is a torch dtype."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32", help="dtype of the inputs")
    parser.add_argument("--quick", action="store_true", help="one small case (smoke test)")
    parser.add_argument("--only", default="", help="comma-separated texts: only cases whose name contains one")
    parser.add_argument("--providers", default="", help="comma-separated provider names: only these (and the baseline)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile providers")
    parser.add_argument("--no-save", action="store_true", help="print only; do not append JSON")
    parser.add_argument("--results-dir", default=RESULTS_DIR, help=f"where <bench>.jsonl is appended ({RESULTS_DIR})")
    parser.add_argument("--json-out", default="", help="also append this run's report(s) to this file, one JSON a line")
    parser.add_argument(
        "--repeat", type=int, default=1,
        help="rounds of every provider per case, interleaved (provider A, B, ..., A, B, ...); the median of the "
        "rounds is reported, so load that comes and goes hits every provider alike",
    )  # fmt: skip
    parser.add_argument(
        "--clock", choices=("wall", "process"), default="wall",
        help="wall: elapsed time; process: the CPU time this process used (with --threads 1 on a CPU shared with "
        "other work, time spent descheduled does not count)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch CPU threads (default: torch's). On a loaded machine use 1: OpenMP workers that spin while "
        "a sibling is descheduled make multi-threaded timings erratic",
    )  # fmt: skip
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA device (torch {torch.__version__}, CUDA "
                     f"{torch.version.cuda})")  # fmt: skip
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    if args.clock == "process" and (args.device != "cpu" or torch.get_num_threads() != 1):
        parser.error("--clock process needs --device cpu --threads 1 (it sums the CPU time of every thread)")
    args.dtype = DTYPES[args.dtype]
    return args


def select(cases: list[Case], only: str) -> list[Case]:
    """The cases whose name contains one of the comma-separated texts of ``only`` (all when empty)."""
    wanted = [text.strip() for text in only.split(",") if text.strip()]
    chosen = [case for case in cases if not wanted or any(text in case.name for text in wanted)]
    if not chosen:
        raise SystemExit(f"--only {only!r} matches no case; cases: {[case.name for case in cases]}")
    return chosen


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model} ({torch.get_num_threads()} threads)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = {"wall": time.perf_counter, "process": time.process_time}


def time_ms(
    fn: Callable[[], object], device: torch.device, min_seconds: float = 0.3, max_reps: int = 50, clock: str = "wall"
) -> float:
    """Median time of ``fn`` in ms (``clock``: see ``--clock``) after two warm-up calls (which also trigger
    compilation)."""
    now = CLOCKS[clock]
    for _ in range(2):
        fn()
    _sync(device)
    samples: list[float] = []
    start_all = time.perf_counter()
    while len(samples) < 3 or (time.perf_counter() - start_all < min_seconds and len(samples) < max_reps):
        start = now()
        fn()
        _sync(device)
        samples.append(1e3 * (now() - start))
    return statistics.median(samples)


def _read_peak_rss_kib() -> int | None:
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        return None


def peak_mib(fn: Callable[[], object], device: torch.device) -> float | None:
    """Memory the call allocated at its peak, above what was allocated before it.

    CUDA: the caching allocator's peak. CPU: the process's peak resident set (VmHWM), reset just
    before the call through /proc/self/clear_refs (Linux); None where that is not possible.
    """
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return None
    before = _read_peak_rss_kib()
    fn()
    after = _read_peak_rss_kib()
    if before is None or after is None:
        return None
    return max(0, after - before) / 1024


def run(
    bench: str,
    cases: list[Case],
    providers: dict[str, Callable[[tuple], Callable[[], object]]],
    device: torch.device,
    baseline: str,
    args: argparse.Namespace,
) -> Report:
    """Time every provider on every case selected by ``args.only``. A provider maps inputs to a
    zero-argument callable; one that raises is reported with its error instead of a time. Prints the
    table, appends the JSON record (unless ``args.no_save``) and a copy to ``args.json_out``."""
    repeat = getattr(args, "repeat", 1)
    wanted = {name.strip() for name in getattr(args, "providers", "").split(",") if name.strip()}
    if wanted:
        unknown = wanted - set(providers)
        if unknown:
            raise SystemExit(f"--providers {sorted(unknown)}: no such provider here; available: {list(providers)}")
        providers = {name: make for name, make in providers.items() if name in wanted or name == baseline}
    report = Report(bench=bench, device=device_name(device), torch=torch.__version__,
                    dtype=str(args.dtype).removeprefix("torch."), threads=torch.get_num_threads(), repeat=repeat,
                    load=[os.getloadavg()[0]], clock=getattr(args, "clock", "wall"))  # fmt: skip
    for case in select(cases, args.only):
        inputs = case.make_inputs(device)
        calls: dict[str, Callable[[], object]] = {}
        samples: dict[str, list[float]] = {}
        errors: dict[str, str] = {}
        for _ in range(repeat):  # interleaved rounds: every provider once per round
            for name, make in providers.items():
                if name in errors:
                    continue
                try:
                    if name not in calls:
                        calls[name] = make(inputs)
                    samples.setdefault(name, []).append(time_ms(calls[name], device, clock=report.clock))
                except Exception as error:  # a provider that cannot run this case is reported, not fatal
                    errors[name] = f"{type(error).__name__}: {error}"
        base_ms = statistics.median(samples[baseline]) if baseline in samples else None
        for name in providers:
            if name in errors:
                report.results.append(Result(case.name, name, float("nan"), note=errors[name]))
                continue
            ms = statistics.median(samples[name])
            result = Result(case.name, name, ms, peak_mib=peak_mib(calls[name], device))
            result.ratio_to_baseline = base_ms / ms if base_ms else None
            result.tflops = case.flops / ms / 1e9 if case.flops else None
            result.gbps = case.bytes / ms / 1e6 if case.bytes else None
            report.results.append(result)
    report.load.append(os.getloadavg()[0])
    print_table(report, baseline)
    if not args.no_save:
        append_json(report, args.results_dir)
    if args.json_out:
        with open(args.json_out, "a") as out:
            out.write(json.dumps(asdict(report), allow_nan=True) + "\n")
    return report


def print_table(report: Report, baseline: str) -> None:
    print(f"\n{report.bench} on {report.device}, torch {report.torch}, {report.dtype} inputs; "
          f"speed-up = {baseline} time / provider time; {report.clock} clock, median of {report.repeat} interleaved "
          f"round(s); load average {report.load}")  # fmt: skip
    header = f"{'case':<34} {'provider':<22} {'ms':>10} {'speed-up':>9} {'peak MiB':>9} {'TFLOP/s':>8} {'GB/s':>8}"
    print(header)
    print("-" * len(header))
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    for r in report.results:
        if r.note:
            print(f"{r.case:<34} {r.provider:<22} {'n/a':>10}  {r.note[:80]}")
            continue
        print(
            f"{r.case:<34} {r.provider:<22} {r.ms:>10.3f} {fmt(r.ratio_to_baseline, '>8.2f') + 'x':>9} "
            f"{fmt(r.peak_mib, '>9.1f'):>9} {fmt(r.tflops, '>8.3f'):>8} {fmt(r.gbps, '>8.1f'):>8}"
        )


def append_json(report: Report | dict, results_dir: str = RESULTS_DIR) -> str:
    """Append ``report`` (a :class:`Report`, or a record with a ``"bench"`` key) and the date to
    ``<results_dir>/<bench>.jsonl``; returns the path."""
    os.makedirs(results_dir, exist_ok=True)
    record = (asdict(report) if isinstance(report, Report) else dict(report)) | {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    }
    path = os.path.join(results_dir, f"{record['bench']}.jsonl")
    with open(path, "a") as out:
        out.write(json.dumps(record, allow_nan=True) + "\n")
    print(f"appended to {os.path.relpath(path)}")
    return path
