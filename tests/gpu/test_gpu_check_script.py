"""scripts/gpu_check.sh on a machine without a GPU, and the parts of its driver that need none.

Not marked ``gpu``: these run in CI. The steps themselves (build, GPU tests, benchmarks, training) need a
GPU and run there (README, "GPU check").
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def _load(relative: str):
    name = f"_gpu_check_{Path(relative).stem}"
    spec = importlib.util.spec_from_file_location(name, REPO / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the check would run")
def test_without_a_gpu_it_says_so_and_stops(tmp_path):
    results = tmp_path / "results"
    command = ["bash", "scripts/gpu_check.sh", "--results-dir", str(results)]
    env = {**os.environ, "PYTHON": sys.executable}
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "GPU check: " in run.stderr and ("no CUDA GPU" in run.stderr or "built without CUDA" in run.stderr)
    assert "Nothing was built or run" in run.stderr
    assert not results.exists()  # nothing built, nothing written


def test_parallel_pytest_reports_each_file(tmp_path):
    check = _load("scripts/gpu_check.py")
    (tmp_path / "test_good.py").write_text(
        "import pytest\n\ndef test_a():\n    pass\n\ndef test_b():\n    pass\n\n"
        "@pytest.mark.skip(reason='x')\ndef test_c():\n    pass\n"
    )
    (tmp_path / "test_bad.py").write_text("def test_fails():\n    assert 1 == 2\n")
    files = [str(tmp_path / "test_good.py"), str(tmp_path / "test_bad.py")]
    results = check.pytest_in_parallel(files, str(tmp_path), 120, check.base_env(), ["--rootdir", str(tmp_path)])
    good, bad = results[files[0]], results[files[1]]
    assert (good["status"], good["passed"], good["skipped"]) == ("passed", 2, 1)
    assert (bad["status"], bad["failed"]) == ("failed", 1) and bad["failures"][0].endswith("test_bad.py::test_fails")


def test_report_tables_from_a_real_benchmark_record(tmp_path):
    check = _load("scripts/gpu_check.py")
    out = tmp_path / "bench.jsonl"
    command = [sys.executable, "benchmarks/bench_curve.py", "--quick", "--device", "cpu", "--no-compile", "--no-save",
               "--threads", "1", "--json-out", str(out)]  # fmt: skip
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, timeout=300)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    steps = [check.Step("build", "passed", 42.0, "CUDA kernels built for sm_90"), check.Step("train", "timeout", 120.0)]
    train = {"it_per_s": 7.5, "peak_gpu_mib": 12345.6, "loss_went_down": True}
    check.write_report(str(tmp_path), {"gpu": "test", "sm": "sm_90"}, steps, records, train)
    markdown = (tmp_path / "gpu_check.md").read_text()
    assert "| build | passed | 42 | CUDA kernels built for sm_90 |" in markdown
    assert "#### bench_curve (float32" in markdown and "| quick b2 C64 16x16 fwd+bwd | reference |" in markdown
    assert "vs reference" in markdown and "| it_per_s | 7.5 |" in markdown
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert saved["benchmarks"] == records and saved["steps"][1]["status"] == "timeout"


def test_training_summary_needs_the_loss_to_go_down():
    train = _load("benchmarks/train_vqcnir_gpu.py")
    rows = {
        i: {"l_g_pixel": 0.5 - 0.01 * i, "l_g_total": 2.0 - 0.01 * i, "time": 100.0 + 0.5 * i} for i in range(1, 21)
    }
    summary = train.summarize(rows, warmup=5, started=90.0)
    assert summary["loss_went_down"] and summary["iterations"] == 20
    assert summary["it_per_s"] == pytest.approx(2.0) and summary["first_iterations_s"] == pytest.approx(13.0)
    flat = {i: dict(row, l_g_pixel=0.3) for i, row in rows.items()}
    assert not train.summarize(flat, warmup=5, started=90.0)["loss_went_down"]
    with pytest.raises(SystemExit, match="only 20 iterations"):
        train.summarize(rows, warmup=19, started=90.0)
