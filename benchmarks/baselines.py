"""Scores of every classical baseline (vqcnir.baselines) on a paired set: PSNR, SSIM, LPIPS, saturation.

    python benchmarks/baselines.py --set demo-test          # the demo set's held-out test split
    python benchmarks/baselines.py --set demo-independent   # its targets, degraded by the independent law
    python benchmarks/baselines.py --lq LQ_DIR --gt GT_DIR --name mine

``demo-independent`` degrades the demo test split's targets with ``tests/data/independent_degradation.py``
(other blur, noise and exposure laws than the set was built with; seed 0) into a temporary folder. Metrics:
PSNR (RGB) and SSIM (BT.601 Y) of ``vqcnir.metrics``, LPIPS (AlexNet) when its weights are installed, and
the mean HSV saturation of the outputs beside the targets' (colour that a restoration lost or invented).
The row ``input`` scores the degraded inputs themselves. Prints a table and appends one JSON record to
``benchmarks/results/baselines.jsonl``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, REPO)  # tests.data.independent_degradation
from _harness import append_json  # noqa: E402

from vqcnir.baselines import BASELINES, restore_baseline  # noqa: E402
from vqcnir.data import build_demo_set, pair_by_relative_path, read_rgb  # noqa: E402
from vqcnir.perceptual import LPIPS, lpips_available  # noqa: E402
from vqcnir.scoring import mean_saturation, score_outputs  # noqa: E402

SETS = ("demo-test", "demo-independent", "demo-train")
Pair = tuple[str, np.ndarray, np.ndarray]  # (name, degraded uint8 [H, W, 3], target uint8 [H, W, 3])


def load_pairs(lq_dir: str, gt_dir: str) -> list[Pair]:
    """Every (name, degraded, target) of two folders matched by relative path."""
    return [
        (os.path.relpath(gt, gt_dir), read_rgb(lq), read_rgb(gt)) for lq, gt in pair_by_relative_path(lq_dir, gt_dir)
    ]


def demo_folders(which: str, scratch: str) -> tuple[str, str]:
    """``(lq_dir, gt_dir)`` of a named set; ``demo-independent`` is written under ``scratch``."""
    demo = build_demo_set()
    split = demo.train if which == "demo-train" else demo.test
    gt_dir = os.path.join(split, "gt")
    if which != "demo-independent":
        return os.path.join(split, "lq"), gt_dir
    from tests.data.independent_degradation import degrade_folder

    lq_dir = os.path.join(scratch, "independent_lq")
    degrade_folder(gt_dir, lq_dir, seed=0)
    return lq_dir, gt_dir


def score_baselines(pairs: Sequence[Pair], names: Sequence[str], lpips: LPIPS | None = None) -> list[dict]:
    """One row per baseline name (and ``input``: the degraded images unchanged), with seconds per image."""
    targets = [gt for _, _, gt in pairs]
    rows = [{"baseline": "input", "seconds_per_image": 0.0} | score_outputs([lq for _, lq, _ in pairs], targets, lpips)]
    for name in names:
        start = time.perf_counter()
        outputs = [restore_baseline(lq, name) for _, lq, _ in pairs]
        seconds = (time.perf_counter() - start) / len(pairs)
        rows.append({"baseline": name, "seconds_per_image": seconds} | score_outputs(outputs, targets, lpips))
    return rows


def print_table(rows: Sequence[dict], target_saturation: float, title: str) -> None:
    print(f"\n{title}  (target saturation {target_saturation:.3f})")
    keys = [k for k in ("psnr", "ssim", "lpips", "saturation", "seconds_per_image") if k in rows[0]]
    print(f"{'baseline':<24}" + "".join(f"{k:>18}" for k in keys))
    for row in rows:
        print(f"{row['baseline']:<24}" + "".join(f"{row[k]:>18.4f}" for k in keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=SETS, help="a demo set (built or reused by build_demo_set)")
    parser.add_argument("--lq", help="folder of degraded inputs (with --gt, instead of --set)")
    parser.add_argument("--gt", help="folder of targets, same relative paths as --lq")
    parser.add_argument("--name", default="", help="label of --lq/--gt in the results")
    parser.add_argument("--only", default="", help="comma-separated baseline names (default: all)")
    parser.add_argument("--no-lpips", action="store_true", help="leave LPIPS out")
    parser.add_argument("--no-save", action="store_true", help="print only; do not append JSON")
    args = parser.parse_args()
    if (args.set is None) == (args.lq is None) or (args.lq is None) != (args.gt is None):
        parser.error("give --set, or --lq and --gt")
    names = [n for n in args.only.split(",") if n] or list(BASELINES)
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        parser.error(f"argument --only: unknown baselines {unknown}; expected some of {', '.join(BASELINES)}")
    lpips = LPIPS("alexnet").eval() if lpips_available() and not args.no_lpips else None
    with tempfile.TemporaryDirectory() as scratch:
        lq_dir, gt_dir = demo_folders(args.set, scratch) if args.set else (args.lq, args.gt)
        pairs = load_pairs(lq_dir, gt_dir)
    title = args.set or args.name or args.lq
    target_saturation = mean_saturation([gt for _, _, gt in pairs])
    rows = score_baselines(pairs, names, lpips)
    print_table(rows, target_saturation, f"{title}: {len(pairs)} image(s)")
    if not args.no_save:
        append_json({
            "bench": "baselines", "set": title, "images": len(pairs), "target_saturation": target_saturation,
            "lpips_net": "alexnet" if lpips is not None else None, "rows": rows,
            "baselines": {n: BASELINES[n].to_dict() for n in names},
        })  # fmt: skip


if __name__ == "__main__":
    main()
