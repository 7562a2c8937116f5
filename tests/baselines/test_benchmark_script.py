"""benchmarks/baselines.py still runs: every baseline scored on a tiny paired folder (no LPIPS, nothing saved)."""

from __future__ import annotations

import os
import runpy
import sys

import numpy as np

from tests.data.images import write
from vqcnir.baselines import BASELINES

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "benchmarks",
                      "baselines.py")  # fmt: skip


def test_every_baseline_gets_a_row(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        gt = rng.integers(30, 230, (24, 24, 3), dtype=np.uint8)
        write(tmp_path / "gt" / f"{name}.png", gt)
        write(tmp_path / "lq" / f"{name}.png", (gt // 5).astype(np.uint8))
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts benchmarks/ on the path: undone afterwards
    monkeypatch.setattr(sys, "argv", [SCRIPT, "--lq", str(tmp_path / "lq"), "--gt", str(tmp_path / "gt"),
                                      "--no-lpips", "--no-save"])  # fmt: skip
    runpy.run_path(SCRIPT, run_name="__main__")  # in this process: no second torch import
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines() if line.strip()}
    for name in ("input", *BASELINES):
        psnr, ssim, saturation, seconds = map(float, rows[name])
        assert 0 < psnr < 100 and 0 < ssim <= 1 and 0 <= saturation <= 1 and seconds >= 0
    assert float(rows["exposure"][0]) > float(rows["input"][0])  # brightening the dark copies helps
