"""scripts/export_default_model.py's curves: experiments by name, sizing data kept, stage-2 runs on their axes."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "export_default_model.py")
_spec = importlib.util.spec_from_file_location("export_default_model", SCRIPT)
export = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(export)


def _run(root, name: str, rows: list[tuple[int, str, float, float]]) -> None:
    (root / name / "logs").mkdir(parents=True)
    (root / name / "options.yaml").write_text(f"name: {name}\n")
    lines = ["iteration,name,value,time"] + [f"{i},{n},{v},{t}" for i, n, v, t in rows]
    (root / name / "logs" / "metrics.csv").write_text("\n".join(lines) + "\n")


def test_training_summary_reads_the_named_experiments(tmp_path):
    _run(tmp_path, "stage_one_ema", [(100, "val/psnr", 20.0, 1000.0), (100, "val/ssim", 0.6, 1000.0)])
    # a pause of an hour between 200 and 300 (resumed later): not training time
    _run(
        tmp_path,
        "stage_two_ema",
        [
            (100, "train/l_g_pixel", 0.2, 2000.0),
            (200, "val/psnr", 21.0, 2100.0),
            (200, "val/ssim", 0.7, 2100.0),
            (300, "train/l_g_perceptual", 0.3, 5700.0),
            (300, "val/psnr", 22.0, 5800.0),
            (300, "val/ssim", 0.72, 5800.0),
        ],
    )
    summary = export.training_summary(str(tmp_path), {"stage1": "stage_one_ema", "stage2": "stage_two_ema"})
    stage2 = summary["stage2"]
    assert summary["stage1"]["experiment"] == "stage_one_ema" and stage2["experiment"] == "stage_two_ema"
    assert stage2["iterations"] == 300
    assert stage2["wall_time_s"] == pytest.approx(100.0 + 100.0)  # 2000 -> 2100 and 5700 -> 5800
    points = [(p["iteration"], p["psnr"], p["ssim"]) for p in stage2["validation"]]
    assert points == [(200, 21.0, 0.7), (300, 22.0, 0.72)]
    assert stage2["perceptual_from"] == 300
    with pytest.raises(FileNotFoundError):
        export.training_summary(str(tmp_path), {"stage1": "stage_one_ema", "stage2": "missing"})


def test_read_sizing_keeps_the_committed_entries(tmp_path):
    assert export.read_sizing(str(tmp_path / "none.json")) == {}
    path = tmp_path / "curves.json"
    sizing = {"wide": {"validation": [], "start": 1.0, "stage": 1}}
    path.write_text(json.dumps({"training": {}, "sizing": sizing}))
    assert export.read_sizing(str(path)) == sizing


def test_plot_puts_stage2_runs_beside_the_model_not_on_the_prior_axis(tmp_path):
    pytest.importorskip("matplotlib")
    point = {"iteration": 100, "psnr": 20.0, "ssim": 0.7, "time": 10.0}
    summary = {
        "stage1": {"validation": [point], "start": 0.0},
        "stage2": {
            "validation": [point],
            "perceptual_from": None,
            # drawn as the stage-2 panels' top axis (active training hours)
            "train_pixel_loss": [{"iteration": 25, "time": 0.0}, {"iteration": 50, "time": 36.0}],
        },
    }
    sizing = {
        "wide": {"validation": [point], "start": 0.0},  # stage 1 when unmarked
        # a stage-2 run has no wall-clock start: on the prior's axis (hours) it could not be drawn
        "previous": {"validation": [point | {"ssim": None}], "start": None, "stage": 2, "compare": True},
    }
    path = tmp_path / "curves.png"
    export.plot_curves(summary, sizing, {"psnr": 19.0, "ssim": 0.69, "name": "tv"}, str(path))
    assert path.stat().st_size > 0


def test_active_hours_leave_pauses_out_and_charge_the_first_entry():
    assert export.active_hours([{"iteration": 25, "time": 0.0}]) == ([], [])
    points = [
        {"iteration": 50, "time": 3636.0},  # unsorted on purpose
        {"iteration": 25, "time": 3600.0},
        {"iteration": 75, "time": 3636.0 + 7200.0},  # a two-hour pause (resumed later): not training time
        {"iteration": 100, "time": 3636.0 + 7236.0},
    ]
    iterations, hours = export.active_hours(points)
    assert iterations == [25, 50, 75, 100]
    # 36 s per 25 iterations; the first 25 iterations at that rate too
    assert hours == pytest.approx([0.01, 0.02, 0.02, 0.03])
