"""Package-level behaviour: imports without optional parts, the backend report, clear reasons."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from vqcnir_ops import _backend, _extension
from vqcnir_ops.quantize.backends import SPEC


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )


def test_import_needs_no_triton_and_no_extension():
    code = (
        "import sys; sys.modules['triton'] = None; sys.modules['vqcnir_ops._C'] = None\n"
        "import torch, vqcnir_ops\n"
        "idx, dist = vqcnir_ops.nearest_code(torch.randn(5, 3), torch.randn(4, 3))\n"
        "report = vqcnir_ops.availability()\n"
        "assert 'triton' in report['triton'] and 'vqcnir_ops._C' in report['cpp'], report\n"
        "assert 'vqcnir_ops.quantize.triton_kernels' not in sys.modules\n"
        "print('ok', idx.shape)\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert "ok torch.Size([5])" in result.stdout


def test_backend_report_lists_every_backend():
    result = subprocess.run([sys.executable, "-m", "vqcnir_ops"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for line in ("C++ CPU kernels (cpp)", "CUDA kernels (cuda)", "Triton compiled, GPU", "Triton interpreter, CPU"):
        assert line in result.stdout
    assert "nearest_code: cpu ->" in result.stdout


def test_missing_extension_reason_says_how_to_build(monkeypatch):
    monkeypatch.setitem(sys.modules, "vqcnir_ops._C", None)
    _extension._load.cache_clear()
    try:
        reason = _extension.missing_reason()
        assert reason is not None and "VQCNIR_BUILD_EXT=1" in reason
        with pytest.raises(_backend.BackendUnavailableError, match="backend 'cpp' was requested but cannot run"):
            SPEC.choose(torch.device("cpu"), torch.float32, "cpp")
    finally:
        _extension._load.cache_clear()
