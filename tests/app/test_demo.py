"""The README's first command after training: restore the held-out demo pairs, score them, say where they are."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image

import vqcnir.app.demo as demo
from tests.data.images import write
from tests.recipes.checkpoints import save_tiny_model, whole_image_output
from vqcnir.data import DemoSet, read_rgb
from vqcnir.metrics import psnr, ssim


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255


def test_demo_restores_scores_and_prints_how_to_open_the_page(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    test = tmp_path / "demo" / "test"
    pairs = []
    for name in ("chelsea_0", "coffee_1"):
        gt = rng.integers(60, 255, (32, 32, 3), dtype=np.uint8)
        lq = (gt * 0.2).astype(np.uint8)
        write(test / "lq" / f"{name}.png", lq)
        write(test / "gt" / f"{name}.png", gt)
        pairs.append((lq, gt))
    monkeypatch.setattr(
        demo, "build_demo_set", lambda: DemoSet(str(tmp_path / "demo"), "", str(test), 0, 2, ("skimage",))
    )
    model = save_tiny_model(str(tmp_path / "model"))
    output = str(tmp_path / "experiment" / "demo_restored")
    scores = demo.run(str(tmp_path / "model"), output, torch.device("cpu"), padding="reflect")

    restored = [whole_image_output(model, lq, "reflect") for lq, _ in pairs]
    for name, expected in zip(("chelsea_0", "coffee_1"), restored, strict=True):
        np.testing.assert_array_equal(read_rgb(os.path.join(output, f"{name}.png")), expected)
    expected_psnr = np.mean([psnr(_tensor(r), _tensor(gt)).item() for r, (_, gt) in zip(restored, pairs, strict=True)])
    expected_input_ssim = np.mean([ssim(_tensor(lq), _tensor(gt)).item() for lq, gt in pairs])
    assert abs(scores["psnr"] - expected_psnr) < 1e-9
    assert abs(scores["input_ssim"] - expected_input_ssim) < 1e-9
    classical = [read_rgb(os.path.join(output + "_classical", f"{name}.png")) for name in ("chelsea_0", "coffee_1")]
    targets = [gt for _, gt in pairs]
    expected_baseline = np.mean([psnr(_tensor(c), _tensor(g)).item() for c, g in zip(classical, targets, strict=True)])
    assert abs(scores["baseline_psnr"] - expected_baseline) < 1e-9
    with Image.open(output + "_comparison.png") as grid:  # input | restored | target, one row per pair
        assert grid.size == (3 * 32 + 2 * 2, 2 * 32 + 2)
    printed = capsys.readouterr().out
    assert f"restored                {scores['psnr']:9.2f}" in printed
    assert f"--inputs {test / 'lq'} --restored {output}" in printed


def test_check_says_whether_a_model_is_there(tmp_path, monkeypatch, capsys):
    assert demo.main(["--check", "--model", str(tmp_path)]) == 0
    assert f"model: {tmp_path}" in capsys.readouterr().out
    assert demo.main(["--check"]) == 0  # the shipped default model: nothing to train
    assert "model: default" in capsys.readouterr().out
    monkeypatch.setattr(demo, "resolve_model", lambda given: None)
    assert demo.main(["--check"]) == 1
    assert "no model yet" in capsys.readouterr().out
