"""The op benchmarks still run (the GPU check runs them with --device cuda): one quick CPU case each.

Speed itself is never asserted here (benchmarks compare ratios within one run); this only keeps the
scripts from rotting as the ops change.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    ("script", "baseline"),
    [("bench_quantize", "reference"), ("bench_channel_attention", "reference"), ("bench_deform_conv", "reference"),
     ("bench_depthwise", "F.conv2d")],
)  # fmt: skip
def test_quick_cpu_run_measures_every_provider(script, baseline, tmp_path):
    out = tmp_path / "bench.jsonl"
    command = [sys.executable, f"benchmarks/{script}.py", "--quick", "--device", "cpu", "--no-compile", "--no-save",
               "--threads", "1", "--json-out", str(out)]  # fmt: skip
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    rows = [row for line in out.read_text().splitlines() for row in json.loads(line)["results"]]
    assert rows, run.stdout
    for row in rows:  # on the CPU every listed provider runs: a note is an error (reported as NaN ms)
        assert not row["note"] and math.isfinite(row["ms"]) and row["ms"] > 0, row
    assert {baseline, "cpp"} <= {row["provider"] for row in rows}, rows
