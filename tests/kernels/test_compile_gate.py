"""The offline GPU compile gate (python -m vqcnir_ops._aot) fails where a real GPU would, and passes otherwise.

The gate compiles for real GPUs, so it runs in its own process with TRITON_INTERPRET unset (this process
interprets). ``broken_kernels.py`` holds a kernel that only the interpreter accepts, one that needs more
shared memory than sm_86 allows, one no case launches, one case that launches around ``_launch.launch``,
and a fine kernel. CI runs the gate on vqcnir_ops itself (scripts/test.sh).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BROKEN = Path(__file__).with_name("broken_kernels.py")
REPO = Path(__file__).resolve().parents[2]


def _gate(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    command = [sys.executable, "-m", "vqcnir_ops._aot", "--arch", "86", "--jobs", "1", "--modules", str(BROKEN), *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def broken_run() -> subprocess.CompletedProcess:
    return _gate()


def test_gate_fails_on_a_kernel_only_the_interpreter_accepts(broken_run):
    assert broken_run.returncode == 1, broken_run.stdout + broken_run.stderr
    assert "GPU compile gate FAILED (4 problems)" in broken_run.stderr
    assert "COMPILE vqcnir_gate_broken_kernels:_runtime_static_range_kernel on sm_86" in broken_run.stderr
    assert "is not a constexpr" in broken_run.stderr


def test_gate_fails_on_shared_memory_above_the_target_limit(broken_run):
    assert "SHARED MEMORY vqcnir_gate_broken_kernels:_oversized_shared_memory_kernel on sm_86" in broken_run.stderr
    assert "above the 101376 B the target allows" in broken_run.stderr


def test_gate_fails_on_a_kernel_no_case_compiles(broken_run):
    assert "NOT COMPILED vqcnir_gate_broken_kernels:_never_launched_kernel on sm_86" in broken_run.stderr


def test_gate_fails_on_a_launch_around_the_launch_helper(broken_run):
    assert "DIRECT LAUNCH _fine_kernel (launched directly [sm_86])" in broken_run.stderr
    assert "_fine_kernel" not in broken_run.stderr.split("DIRECT LAUNCH _fine_kernel")[0]  # it compiles fine
    assert re.search(r"^_fine_kernel +2 +\d+ / +0 / +0\.0 of 99", broken_run.stdout, re.MULTILINE), broken_run.stdout


def test_gate_passes_on_kernels_that_compile():
    run = _gate("--only", "fine")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "GPU compile gate passed" in run.stdout


def test_gate_refuses_the_interpreter():
    run = subprocess.run([sys.executable, "-m", "vqcnir_ops._aot"], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "TRITON_INTERPRET": "1"}, timeout=120)  # fmt: skip
    assert run.returncode != 0 and "run it with TRITON_INTERPRET unset" in run.stderr
