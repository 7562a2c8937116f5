"""The GPU check: build, test and benchmark vqcnir on a machine with a CUDA GPU, offline, in one command.

    bash scripts/gpu_check.sh [--results-dir DIR] [--scale X] [--full] [--skip STEP ...]

Made for a GPU machine where python3 already has a CUDA torch, Triton, torchvision and nvcc, and no
package index can be reached: no virtual environment, nothing downloaded. Steps, each in its own process
with a time limit (seconds, multiplied by ``--scale``), so that one slow or failing step reports and the
next one still runs; the defaults keep the whole check under 8 minutes on one H100:

  preflight   (here)  GPU, torch, CUDA, Triton, nvcc and the optional modules; stops (exit 2) without a GPU
  build        100    pip install --no-build-isolation --no-deps -e . with the CUDA kernels for this GPU only
  gpu-tests     70    tests/gpu: every op on every GPU backend vs float64, fp32/fp16/bf16, forward and backward,
                      deterministic modes, TF32, grids past CUDA's limits (one process per file, in parallel)
  suite         70    the op, module and kernel tests (tests/ops, tests/modules, tests/kernels) with the GPU
                      backends required: cuda and compiled Triton, not the interpreter (--full: all of tests/)
  benchmarks   100    every benchmark with --device cuda at the issue's goal shapes, baselines included
                      (torchvision.ops.deform_conv2d, the official eager code, torch.compile of references)
  train        120    benchmarks/train_vqcnir_gpu.py: stage 2 of the paper config on the demo set, bf16
                      autocast + torch.compile: it/s, peak GPU memory, the loss going down

Results: ``gpu_check.json`` and ``gpu_check.md`` (a Markdown table per step) in ``--results-dir``
(default benchmarks/results), the logs of every step in ``gpu_check_logs/`` beside them. Exit status 0
when every step that ran passed, 1 otherwise, 2 when there is no GPU (nothing else is attempted).
A module the machine lacks (pytest, hypothesis, ...) skips what needs it, with a note; it never crashes.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEP_LIMITS = {"build": 100, "gpu-tests": 70, "suite": 70, "benchmarks": 100, "train": 120}
OPTIONAL_MODULES = ("pytest", "hypothesis", "triton", "torchvision", "numpy", "PIL", "yaml", "safetensors", "ninja")
# What each benchmark runs in the check: the goal shapes (the full lists take longer than the budget).
BENCHMARKS = [
    ("bench_deform_conv.py", ["--only", "fwd+bwd 64ch@256x256", "--no-compile"], "float32"),
    ("bench_deform_conv.py", ["--only", "fwd+bwd 64ch@256x256", "--no-compile"], "bfloat16"),
    ("bench_deform_conv.py", ["--only", "fwd 256ch@32x32"], "float32"),
    ("bench_channel_attention.py", ["--only", "fwd+bwd", "--no-compile"], "float32"),
    ("bench_channel_attention.py", ["--only", "L4 256ch@64x64 h4 B8 fwd+bwd"], "bfloat16"),
    ("bench_curve.py", ["--only", "fwd+bwd"], "float32"),
    ("bench_curve.py", ["--only", "AIEM 256px crops b8 32x32 fwd+bwd", "--no-compile"], "bfloat16"),
    ("bench_quantize.py", [], "float32"),
    ("bench_model.py", [], "float32"),
]
# Baselines the Markdown report divides by, per benchmark (the harness's own baseline comes first).
BASELINES = {
    "bench_deform_conv": ("reference", "torchvision", "reference+compile"),
    "bench_channel_attention": ("official", "official+compile"),
    "bench_curve": ("reference", "reference+compile"),
    "bench_quantize": ("naive", "cdist", "naive+compile"),
    "bench_model_forward": ("reference",),
    "bench_model_train_step": ("reference",),
}


@dataclass
class Step:
    name: str
    status: str = "not run"  # passed | failed | timeout | skipped | not run
    seconds: float = 0.0
    note: str = ""
    details: dict = field(default_factory=dict)


def say(message: str) -> None:
    print(f"[gpu-check] {message}", flush=True)


# --- preflight --------------------------------------------------------------------------------------


def preflight() -> tuple[dict, str | None]:
    """What this machine has; the reason the check cannot run at all, or None."""
    info: dict = {"python": sys.version.split()[0], "platform": platform.platform()}
    try:
        import torch
    except ImportError as error:
        return info, f"torch is not importable ({error}): the GPU check needs a CUDA build of torch"
    info |= {"torch": torch.__version__, "torch_cuda": torch.version.cuda}
    if torch.version.cuda is None:
        return info, f"torch {torch.__version__} was built without CUDA: no GPU can be used"
    if not torch.cuda.is_available():
        return info, (f"no CUDA GPU: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no device "
                      "(torch.cuda.is_available() is False)")  # fmt: skip
    props = torch.cuda.get_device_properties(0)
    info |= {
        "gpu": props.name, "capability": f"{props.major}.{props.minor}", "sm": f"sm_{props.major}{props.minor}",
        "gpu_memory_gib": round(props.total_memory / 2**30, 1), "gpus": torch.cuda.device_count(),
        "cpus": os.cpu_count(),
    }  # fmt: skip
    info["modules"] = {name: importlib.util.find_spec(name) is not None for name in OPTIONAL_MODULES}
    if info["modules"]["triton"]:
        import triton

        info["triton"] = triton.__version__
    nvcc = shutil.which("nvcc") or (
        os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc") if "CUDA_HOME" in os.environ else None
    )
    info["nvcc"] = nvcc if nvcc and os.path.exists(nvcc) else None
    return info, None


# --- running steps ---------------------------------------------------------------------------------


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)  # compiled Triton on the GPU, never the interpreter
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    return env


def run_logged(command: list[str], log: str, limit: float, env: dict[str, str]) -> tuple[str, float]:
    """Run ``command`` with its output in ``log``: ("passed" | "failed" | "timeout", seconds)."""
    start = time.perf_counter()
    with open(log, "w") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        try:
            code = subprocess.run(
                command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=limit
            ).returncode
        except subprocess.TimeoutExpired:
            return "timeout", time.perf_counter() - start
    return ("passed" if code == 0 else "failed"), time.perf_counter() - start


def pytest_in_parallel(files: list[str], logs: str, limit: float, env: dict[str, str], extra: list[str]) -> dict:
    """One pytest process per test file, all at once (Triton compiles dominate and use one core each).
    Returns per-file outcome counts; files still running at ``limit`` are stopped and marked timeout."""
    procs = {}
    start = time.perf_counter()
    for path in files:
        log = os.path.join(logs, "pytest_" + re.sub(r"\W", "_", path) + ".log")
        handle = open(log, "w")  # noqa: SIM115 - closed below
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", *extra, path]
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        procs[path] = (
            subprocess.Popen(command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT),
            handle,
            log,
        )
    results = {}
    for path, (proc, handle, log) in procs.items():
        try:
            proc.wait(timeout=max(1.0, limit - (time.perf_counter() - start)))
            status = None
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            status = "timeout"
        handle.close()
        with open(log) as text:
            tail = text.read()[-4000:]
        counts = {key: int(n) for n, key in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", tail)}
        if "errors" in counts:
            counts["error"] = counts.pop("errors")
        if status is None:
            status = "passed" if proc.returncode in (0, 5) else "failed"  # 5: nothing collected
        failures = re.findall(r"^(?:FAILED|ERROR) (\S+)", tail, re.MULTILINE)[:20]
        results[path] = {"status": status, "returncode": proc.returncode, **counts, "failures": failures}
    return results


# Tests of this script itself: CI runs them; they need no GPU.
NOT_ON_GPU = ("tests/gpu/test_gpu_check_script.py",)


def test_files(folders: list[str]) -> list[str]:
    files = []
    for folder in folders:
        root = os.path.join(REPO, folder)
        for name in sorted(os.listdir(root)):
            if name.startswith("test_") and name.endswith(".py") and f"{folder}/{name}" not in NOT_ON_GPU:
                files.append(f"{folder}/{name}")
    return files


def pytest_step(step: Step, folders: list[str], logs: str, limit: float, info: dict, require: str,
                confcut: str | None) -> None:  # fmt: skip
    modules = info["modules"]
    if not modules["pytest"]:
        step.status, step.note = "skipped", "pytest is not installed"
        return
    extra = []
    if confcut is not None:
        extra += ["--confcutdir", confcut, "-p", "no:hypothesispytest"]
    env = base_env() | {"VQCNIR_REQUIRE_BACKENDS": require}
    start = time.perf_counter()
    results = pytest_in_parallel(test_files(folders), logs, limit, env, extra)
    step.seconds = time.perf_counter() - start
    step.details = results
    totals = {k: sum(r.get(k, 0) for r in results.values()) for k in ("passed", "failed", "error", "skipped")}
    timeouts = [path for path, r in results.items() if r["status"] == "timeout"]
    failed = [path for path, r in results.items() if r["status"] == "failed"]
    step.note = ", ".join(f"{v} {k}" for k, v in totals.items() if v) + (f"; timed out: {timeouts}" if timeouts else "")
    step.status = "timeout" if timeouts and not failed else "failed" if failed else "passed"


# --- report ------------------------------------------------------------------------------------------


def benchmark_rows(records: list[dict]) -> list[str]:
    lines = []
    for record in records:
        baselines = [
            b for b in BASELINES.get(record["bench"], ()) if any(r["provider"] == b for r in record["results"])
        ]
        lines += ["", f"#### {record['bench']} ({record['dtype']}, {record['device']}, torch {record['torch']})", "",
                  "| case | provider | ms | " + " | ".join(f"vs {b}" for b in baselines) + " | peak MiB |",
                  "|---|---|---|" + "---|" * len(baselines) + "---|"]  # fmt: skip
        base_ms = {(r["case"], r["provider"]): r["ms"] for r in record["results"]}
        for r in record["results"]:
            if r.get("note"):
                lines.append(f"| {r['case']} | {r['provider']} | n/a: {r['note'][:80]} |" + " |" * (len(baselines) + 1))
                continue
            ratios = []
            for b in baselines:
                ms = base_ms.get((r["case"], b))
                ratios.append(f"{ms / r['ms']:.2f}x" if ms and ms == ms else "-")
            peak = "-" if r.get("peak_mib") is None else f"{r['peak_mib']:.0f}"
            lines.append(f"| {r['case']} | {r['provider']} | {r['ms']:.3f} | " + " | ".join(ratios) + f" | {peak} |")
    return lines


def write_report(results_dir: str, info: dict, steps: list[Step], benchmarks: list[dict], train: dict | None) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    payload = {
        "date": stamp,
        "machine": info,
        "steps": [asdict(s) for s in steps],
        "benchmarks": benchmarks,
        "train": train,
    }
    with open(os.path.join(results_dir, "gpu_check.json"), "w") as out:
        json.dump(payload, out, indent=1, allow_nan=True)
    machine = (f"{info.get('gpu', 'no GPU')} ({info.get('sm', '?')}), torch {info.get('torch')} (CUDA "
               f"{info.get('torch_cuda')}), Triton {info.get('triton', '-')}, Python {info.get('python')}")  # fmt: skip
    lines = [f"# GPU check ({stamp})", "", machine, "", "| step | status | seconds | note |", "|---|---|---|---|"]
    lines += [f"| {s.name} | {s.status} | {s.seconds:.0f} | {s.note} |" for s in steps]
    suites = [s for s in steps if s.name in ("gpu-tests", "suite") and s.details]
    for s in suites:
        lines += [
            "",
            f"### {s.name}",
            "",
            "| test file | status | passed | failed | skipped | failures |",
            "|---|---|---|---|---|---|",
        ]
        for path, r in s.details.items():
            failed = r.get("failed", 0) + r.get("error", 0)
            lines.append(f"| {path} | {r['status']} | {r.get('passed', 0)} | {failed} | {r.get('skipped', 0)} | "
                         f"{' '.join(r['failures'][:3])} |")  # fmt: skip
    if benchmarks:
        lines += ["", "### benchmarks (times are medians; ratios within one run)"]
        lines += benchmark_rows(benchmarks)
    if train:
        lines += ["", "### stage-2 training run (paper config, demo set)", "", "| measure | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in train.items()]
    with open(os.path.join(results_dir, "gpu_check.md"), "w") as out:
        out.write("\n".join(lines) + "\n")


# --- the steps -----------------------------------------------------------------------------------------


def build_step(s: Step, info: dict, logs: str, limit: float) -> None:
    """pip install -e . (no build isolation, no deps, no index) with the CUDA kernels for this GPU only."""
    if info["nvcc"] is None:
        s.status, s.note = "failed", "nvcc not found (PATH or CUDA_HOME): the CUDA kernels cannot be built"
        return
    env = base_env() | {"VQCNIR_BUILD_EXT": "1", "VQCNIR_BUILD_CUDA": "1", "MAX_JOBS": str(os.cpu_count() or 4),
                        "TORCH_CUDA_ARCH_LIST": info["capability"]}  # fmt: skip
    pip = [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index", "-e", "."]
    s.status, s.seconds = run_logged(pip, os.path.join(logs, "build.log"), limit, env)
    if s.status == "failed":  # no pip, or a setuptools too old for editable installs: build in place instead
        inplace = [sys.executable, "setup.py", "build_ext", "--inplace"]
        s.status, seconds = run_logged(inplace, os.path.join(logs, "build_inplace.log"), limit, env)
        s.seconds += seconds
        s.note = "pip install -e failed (build.log); built in place with setup.py build_ext --inplace. "
    if s.status != "passed":
        return
    probe = "import vqcnir_ops._extension as e; assert e.has_cuda_kernels(), e.missing_reason() or 'no CUDA kernels'"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=base_env(), capture_output=True, text=True)
    if loaded.returncode != 0:
        s.status, s.note = "failed", f"built, but the CUDA kernels do not load: {loaded.stderr.strip()[-300:]}"
    else:
        s.note += f"CUDA kernels built for {info['sm']}"


def suite_folders(full: bool) -> list[str]:
    if not full:
        return ["tests/ops", "tests/modules", "tests/kernels"]
    tests = os.path.join(REPO, "tests")
    return sorted(f"tests/{d}" for d in os.listdir(tests) if os.path.isdir(os.path.join(tests, d)) and d != "gpu"
                  and not d.startswith("__"))  # fmt: skip


def benchmark_step(s: Step, logs: str, limit: float, results_dir: str) -> list[dict]:
    """Every benchmark on the GPU at the goal shapes, one process each, until the step's time is spent."""
    out = os.path.join(logs, "benchmarks.jsonl")
    start, statuses = time.perf_counter(), []
    for i, (script, options, dtype) in enumerate(BENCHMARKS):
        left = limit - (time.perf_counter() - start)
        if left < 5:
            statuses.append(f"{script} {dtype}: no time left")
            continue
        command = [sys.executable, os.path.join("benchmarks", script), "--device", "cuda", "--dtype", dtype,
                   "--results-dir", results_dir, "--json-out", out, *options]  # fmt: skip
        status, _ = run_logged(command, os.path.join(logs, f"{script[:-3]}_{dtype}_{i}.log"), left, base_env())
        statuses.append(f"{script} {dtype}: {status}")
    s.seconds = time.perf_counter() - start
    bad = [x for x in statuses if not x.endswith("passed")]
    s.status = "passed" if not bad else ("timeout" if all(x.endswith(("timeout", "left")) for x in bad) else "failed")
    s.note = "; ".join(bad) if bad else f"{len(statuses)} runs"
    if not os.path.isfile(out):
        return []
    with open(out) as lines:
        return [json.loads(line) for line in lines if line.strip()]


def train_step(s: Step, logs: str, limit: float) -> dict | None:
    out = os.path.join(logs, "train.json")
    command = [sys.executable, "benchmarks/train_vqcnir_gpu.py", "--json-out", out]
    s.status, s.seconds = run_logged(command, os.path.join(logs, "train.log"), limit, base_env())
    if not os.path.isfile(out):
        return None
    with open(out) as handle:
        train = json.load(handle)
    s.note = (f"{train['it_per_s']:.2f} it/s, peak {train['peak_gpu_mib']:.0f} MiB, pixel loss "
              f"{train['pixel_loss_first5']:.4f} -> {train['pixel_loss_last5']:.4f}")  # fmt: skip
    return train


# --- main ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default=os.path.join(REPO, "benchmarks", "results"))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every step's time limit")
    parser.add_argument("--full", action="store_true", help="the whole test suite, and 3x the time limits")
    parser.add_argument("--skip", nargs="*", default=[], choices=list(STEP_LIMITS), help="steps to leave out")
    args = parser.parse_args(argv)
    limits = {name: limit * args.scale * (3 if args.full else 1) for name, limit in STEP_LIMITS.items()}
    started = time.perf_counter()

    info, no_gpu = preflight()
    if no_gpu is not None:
        print(f"GPU check: {no_gpu}.\nNothing was built or run: this check needs a machine with a CUDA GPU "
              "(see README, 'GPU check').", file=sys.stderr)  # fmt: skip
        return 2
    say(f"{info['gpu']} ({info['sm']}), torch {info['torch']}, Triton {info.get('triton')}, nvcc {info['nvcc']}")
    missing = [name for name, present in info["modules"].items() if not present]
    if missing:
        say(f"missing python modules: {', '.join(missing)} (steps that need them are skipped with a note)")
    os.makedirs(args.results_dir, exist_ok=True)
    logs = os.path.join(args.results_dir, "gpu_check_logs")
    shutil.rmtree(logs, ignore_errors=True)
    os.makedirs(logs)
    steps = {name: Step(name, status="skipped" if name in args.skip else "not run") for name in STEP_LIMITS}
    benchmarks: list[dict] = []
    train = None
    if "build" not in args.skip:
        build_step(steps["build"], info, logs, limits["build"])
    # Without the CUDA kernels only Triton can be required; the failed build is reported either way.
    require = "cpp,cuda,triton" if steps["build"].status in ("passed", "skipped") else "triton"
    if "gpu-tests" not in args.skip:
        # Without hypothesis the suite's conftest cannot load: the GPU tests then run without it.
        confcut = None if info["modules"]["hypothesis"] else "tests/gpu"
        pytest_step(steps["gpu-tests"], ["tests/gpu"], logs, limits["gpu-tests"], info, require, confcut)
        if confcut:
            steps["gpu-tests"].note += " (hypothesis missing: run without tests/conftest.py)"
    if "suite" not in args.skip:
        if info["modules"]["hypothesis"]:
            pytest_step(steps["suite"], suite_folders(args.full), logs, limits["suite"], info, require, None)
        else:
            steps["suite"].status = "skipped"
            steps["suite"].note = "hypothesis is not installed: the property-based suite cannot run"
    if "benchmarks" not in args.skip:
        benchmarks = benchmark_step(steps["benchmarks"], logs, limits["benchmarks"], args.results_dir)
    if "train" not in args.skip:
        train = train_step(steps["train"], logs, limits["train"])
    for s in steps.values():
        say(f"{s.name}: {s.status} ({s.seconds:.0f} s) {s.note}")

    write_report(args.results_dir, info, list(steps.values()), benchmarks, train)
    ran = [s for s in steps.values() if s.status not in ("skipped", "not run")]
    report = os.path.join(args.results_dir, "gpu_check.md")
    say(f"done in {time.perf_counter() - started:.0f} s; results in {report} (and .json), logs in {logs}")
    return 0 if ran and all(s.status == "passed" for s in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
