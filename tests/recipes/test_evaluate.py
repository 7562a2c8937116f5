"""vqcnir-evaluate: known PSNR values, CSV and summary contents, LPIPS / NIQE columns, model mode, errors."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from tests.data.images import write
from tests.model.photos import photo_uint8
from tests.recipes.checkpoints import save_tiny_model, whole_image_output
from vqcnir.baselines import BASELINES, restore_baseline
from vqcnir.cli.evaluate import main
from vqcnir.data import read_rgb
from vqcnir.metrics import ssim
from vqcnir.niqe import niqe
from vqcnir.perceptual import LPIPS, lpips_available


def _t(a):
    return torch.from_numpy(a).permute(2, 0, 1)[None]


def _pairs(root, rng, size=24):
    """Two pairs whose restored images differ from the targets by exactly 1 and 4 levels: known PSNR."""
    gts = {"video/0001": rng.integers(10, 240, (size, size + 8, 3)), "b": rng.integers(10, 240, (size, size, 3))}
    offsets = {"video/0001": 1, "b": 4}
    for name, gt in gts.items():
        gt = gt.astype(np.uint8)
        sign = np.where(rng.random(gt.shape) < 0.5, -1, 1)
        write(root / "gt" / f"{name}.png", gt)
        write(root / "restored" / f"{name}.bmp", (gt.astype(int) + sign * offsets[name]).astype(np.uint8))
    return {name: 20 * math.log10(255 / offset) for name, offset in offsets.items()}


def _read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def _score_folders(root, *extra):
    """Run the CLI on ROOT/restored vs ROOT/gt into ROOT/eval; returns the output folder."""
    out = root / "eval"
    main(["--restored", str(root / "restored"), "--gt", str(root / "gt"), "--out", str(out), "--quiet", *extra])
    return out


def test_paired_metrics_csv_and_summary(tmp_path, capsys):
    expected = _pairs(tmp_path, np.random.default_rng(0))
    out = _score_folders(tmp_path, "--lpips", "none")
    rows = _read_csv(out / "metrics.csv")
    assert [r["image"] for r in rows] == ["b.png", "video/0001.png"]  # sorted by relative path
    assert list(rows[0]) == ["image", "psnr", "ssim"]
    for row in rows:
        name = row["image"][: -len(".png")]
        assert float(row["psnr"]) == pytest.approx(expected[name], abs=1e-5)
        restored, gt = read_rgb(tmp_path / "restored" / f"{name}.bmp"), read_rgb(tmp_path / "gt" / f"{name}.png")
        assert float(row["ssim"]) == pytest.approx(ssim(_t(restored), _t(gt)).item(), abs=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["summary"]["count"] == 2
    assert summary["summary"]["psnr"] == pytest.approx(sum(expected.values()) / 2, abs=1e-9)
    assert summary["settings"]["ssim_channel"] == "y"
    printed = capsys.readouterr().out
    assert "psnr" in printed and (out / "summary.txt").read_text().strip() in printed


def test_rgb_ssim_crop_border_and_niqe_columns(tmp_path):
    _pairs(tmp_path, np.random.default_rng(1))
    out = _score_folders(tmp_path, "--lpips", "none", "--ssim-channel", "rgb", "--crop-border", "2")
    row = _read_csv(out / "metrics.csv")[0]
    restored, gt = read_rgb(tmp_path / "restored" / "b.bmp"), read_rgb(tmp_path / "gt" / "b.png")
    assert float(row["ssim"]) == pytest.approx(ssim(_t(restored), _t(gt), "rgb", crop_border=2).item(), abs=1e-6)


@pytest.mark.skipif(not lpips_available(), reason="LPIPS weights (lpips extra) not installed")
def test_lpips_columns_match_the_lpips_module(tmp_path):
    _pairs(tmp_path, np.random.default_rng(2), size=64)  # AlexNet needs at least ~ 64 px
    out = _score_folders(tmp_path)
    row = _read_csv(out / "metrics.csv")[0]
    assert list(row) == ["image", "psnr", "ssim", "lpips_alexnet", "lpips_vgg16"]
    restored, gt = (_t(read_rgb(p)).float() / 255 for p in (tmp_path / "restored" / "b.bmp", tmp_path / "gt" / "b.png"))
    for net in ("alexnet", "vgg16"):
        assert float(row[f"lpips_{net}"]) == pytest.approx(LPIPS(net)(restored, gt, normalize=True).item(), abs=1e-6)


def test_unpaired_folder_gets_niqe(tmp_path):
    photo = photo_uint8("chelsea")
    write(tmp_path / "real" / "a.png", photo)
    write(tmp_path / "real" / "sub" / "b.png", photo[:, ::-1].copy())
    main(["--restored", str(tmp_path / "real"), "--out", str(tmp_path / "eval"), "--quiet"])
    rows = _read_csv(tmp_path / "eval" / "metrics.csv")
    assert [r["image"] for r in rows] == ["a.png", "sub/b.png"] and list(rows[0]) == ["image", "niqe"]
    assert float(rows[0]["niqe"]) == pytest.approx(niqe(photo), abs=1e-5)


def test_model_mode_restores_then_evaluates(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    model = save_tiny_model(ckpt)
    rng = np.random.default_rng(3)
    low = rng.integers(0, 256, (21, 35, 3), dtype=np.uint8)
    write(tmp_path / "low" / "v" / "f.png", low)
    write(tmp_path / "gt" / "v" / "f.png", rng.integers(0, 256, (21, 35, 3), dtype=np.uint8))
    out = tmp_path / "eval"
    main(
        [
            "--model",
            ckpt,
            "--input",
            str(tmp_path / "low"),
            "--gt",
            str(tmp_path / "gt"),
            "--out",
            str(out),
            "--lpips",
            "none",
            "--quiet",
        ]
    )
    restored = read_rgb(out / "restored" / "v" / "f.png")
    np.testing.assert_array_equal(restored, whole_image_output(model, low))
    assert _read_csv(out / "metrics.csv")[0]["image"] == "v/f.png"


def _night_pairs(root):
    rng = np.random.default_rng(5)
    for name in ("a", "sub/b"):
        gt = rng.integers(40, 220, (20, 28, 3), dtype=np.uint8)
        write(root / "gt" / f"{name}.png", gt)
        write(root / "low" / f"{name}.png", (gt // 6).astype(np.uint8))


def test_baseline_mode_restores_with_the_classical_pipeline_then_evaluates(tmp_path):
    _night_pairs(tmp_path)
    out = tmp_path / "eval"
    args = ["--input", str(tmp_path / "low"), "--gt", str(tmp_path / "gt"), "--lpips", "none", "--quiet"]
    main(["--baseline", "exposure+tv+unsharp", "--out", str(out), *args])
    restored = read_rgb(out / "restored" / "sub" / "b.png")
    np.testing.assert_array_equal(
        restored, restore_baseline(read_rgb(tmp_path / "low" / "sub" / "b.png"), "exposure+tv+unsharp")
    )
    assert [r["image"] for r in _read_csv(out / "metrics.csv")] == ["a.png", "sub/b.png"]


def test_baseline_all_scores_every_variant_in_one_table(tmp_path, capsys):
    _night_pairs(tmp_path)
    out = tmp_path / "eval"
    main(["--baseline", "all", "--input", str(tmp_path / "low"), "--gt", str(tmp_path / "gt"), "--out", str(out),
          "--lpips", "none", "--quiet"])  # fmt: skip
    table = json.loads((out / "baselines.json").read_text())
    assert list(table["summaries"]) == list(BASELINES) and list(table["baselines"]) == list(BASELINES)
    for name in BASELINES:
        summary = json.loads((out / name / "summary.json").read_text())["summary"]
        assert table["summaries"][name] == summary and summary["count"] == 2
        assert (out / name / "restored" / "sub" / "b.png").is_file()
    printed = capsys.readouterr().out
    assert (out / "baselines.txt").read_text().strip() in printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --restored"),
        (["--model", "m"], "--model and --input go together"),
        (["--baseline", "exposure"], "--baseline and --input go together"),
        (["--baseline", "exposure", "--model", "m", "--input", "i"], "--model and --baseline: give one"),
        (["--baseline", "all", "--input", "i", "--restored", "r"], "not with --baseline all"),
        (["--baseline", "magic", "--input", "i"], "invalid choice"),
        (["--restored", "r", "--input", "i"], "--input: goes with --model or --baseline"),
        (["--restored", "r", "--lpips", "squeeze"], "--lpips: expected some of"),
        (["--restored", "r", "--crop-border", "-1"], "--crop-border: must be >= 0"),
        (["--restored", "r", "--ssim-channel", "lab"], "invalid choice"),
        (["--restored", "does-not-exist"], "folder not found"),
    ],
)
def test_argument_errors(tmp_path, monkeypatch, args, message, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--quiet"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_unmatched_files_and_size_mismatch_are_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default --out is ./evaluation
    rng = np.random.default_rng(4)
    write(tmp_path / "gt" / "a.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    write(tmp_path / "restored" / "b.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    with pytest.raises(SystemExit):
        main(["--restored", str(tmp_path / "restored"), "--gt", str(tmp_path / "gt"), "--lpips", "none", "--quiet"])
    assert "without a match" in capsys.readouterr().err
    write(tmp_path / "restored" / "a.png", rng.integers(0, 256, (16, 20, 3), dtype=np.uint8))
    (tmp_path / "restored" / "b.png").unlink()
    with pytest.raises(SystemExit):
        main(["--restored", str(tmp_path / "restored"), "--gt", str(tmp_path / "gt"), "--lpips", "none", "--quiet"])
    assert "differs from its target" in capsys.readouterr().err


def test_out_must_be_a_folder_not_a_file(tmp_path, capsys):
    _pairs(tmp_path, np.random.default_rng(5))
    (tmp_path / "eval").write_text("my notes")
    with pytest.raises(SystemExit):
        _score_folders(tmp_path, "--lpips", "none")
    assert "argument --out: " in (error := capsys.readouterr().err) and "is a file; give a folder" in error
    assert (tmp_path / "eval").read_text() == "my notes"
