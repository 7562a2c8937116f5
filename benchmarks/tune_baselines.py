"""Tune the classical baselines' parameters on the demo set's TRAINING split (never on test photos).

    python benchmarks/tune_baselines.py [--max-images 54]

Greedy grid search, maximising mean PSNR: (1) exposure curve and target lightness; (2) with that
exposure, each denoiser's strength (a multiple of the image's estimated noise sigma); (3) with each
denoiser's best strength, the unsharp mask's radius and amount. Prints every grid point (PSNR, SSIM) and
the winners, and appends them to ``benchmarks/results/tune_baselines.jsonl``. The winners are what
``vqcnir/baselines/pipelines.py`` hard-codes: copy them there after a re-run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import append_json  # noqa: E402
from baselines import Pair, demo_folders, load_pairs, score  # noqa: E402

from vqcnir.baselines import Baseline, Exposure, NonLocalMeans, Step, TotalVariation, Unsharp  # noqa: E402
from vqcnir.baselines import restore_baseline as run  # noqa: E402

TARGETS = tuple(round(0.30 + 0.025 * i, 3) for i in range(13))  # 0.30 to 0.60
CURVES = ("gamma", "dce")
STRENGTHS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0)
RADII = (0.7, 1.0, 1.5, 2.5)
AMOUNTS = (0.1, 0.2, 0.4, 0.7)


def evaluate(pairs: Sequence[Pair], steps: tuple[Step, ...]) -> dict:
    baseline = Baseline("tuning", steps)
    row = score([run(lq, baseline) for _, lq, _ in pairs], [gt for _, _, gt in pairs])
    print(f"  {row['psnr']:7.3f} dB  {row['ssim']:.4f}  " + " + ".join(repr(s) for s in steps), flush=True)
    return {"steps": [repr(s) for s in steps], "psnr": row["psnr"], "ssim": row["ssim"]}


def best(pairs: Sequence[Pair], candidates: Sequence[tuple[Step, ...]], log: list) -> tuple[Step, ...]:
    scored = [(evaluate(pairs, steps), steps) for steps in candidates]
    log.extend(row for row, _ in scored)
    row, steps = max(scored, key=lambda item: item[0]["psnr"])
    print(f"best: {row['psnr']:.3f} dB / {row['ssim']:.4f}  {steps}\n", flush=True)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-images", type=int, default=0, help="use every k-th image so at most this many (0: all)")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    pairs = load_pairs(*demo_folders("demo-train", ""))
    if args.max_images and len(pairs) > args.max_images:
        pairs = pairs[:: int(np.ceil(len(pairs) / args.max_images))]
    lightness = np.mean([np.asarray(gt, np.float64).mean() for _, _, gt in pairs]) / 255
    print(f"{len(pairs)} training tiles (mean target value {lightness:.3f})")
    start, log = time.perf_counter(), []
    (exposure,) = best(pairs, [(Exposure(t, c),) for c in CURVES for t in TARGETS], log)
    winners: dict[str, tuple[Step, ...]] = {"exposure": (exposure,)}
    for key, denoiser in (("tv", TotalVariation), ("nlm", NonLocalMeans)):
        (_, chosen) = best(pairs, [(exposure, denoiser(s)) for s in STRENGTHS], log)
        winners[f"exposure+{key}"] = (exposure, chosen)
        sharpened = [(exposure, chosen, Unsharp(r, a)) for r in RADII for a in AMOUNTS]
        winners[f"exposure+{key}+unsharp"] = best(pairs, sharpened, log)
    print(f"tuned in {time.perf_counter() - start:.0f} s on {len(pairs)} tiles:")
    for name, steps in winners.items():
        print(f"  {name:<22} {steps}")
    if not args.no_save:
        append_json({
            "bench": "tune_baselines", "images": len(pairs), "objective": "mean PSNR (RGB)",
            "winners": {k: [repr(s) for s in v] for k, v in winners.items()}, "grid": log,
        })  # fmt: skip


if __name__ == "__main__":
    main()
