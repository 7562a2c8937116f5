"""Large photos: time and peak memory of whole-image, approximate-tile and exact-tile restoration.

    python benchmarks/large_image.py [--configs tiny,paper] [--sizes 1,4,12,24] [--modes whole,approximate,exact]
        [--model CHECKPOINT] [--device cpu|cuda] [--tile-memory 256MB,1GB] [--max-memory 4GB] [--threads N] [--quick]

Each case (model x megapixels x mode) runs in its own process, so that its peak is its own: the peak
resident set (VmHWM after a reset, minus what the process held before restoring: the model and the input)
on the CPU, and ``torch.cuda.max_memory_allocated`` above the model on a GPU. The input is a real photo
(scikit-image's ``coffee``, 3:2) resized to the size and darkened (gamma 2.2, x0.3). PSNR(exact, whole)
is computed on the float outputs clamped to [0, 1] wherever whole-image inference ran.

Budgets: exact tiling on the CPU gets what its full-resolution activations between passes need plus
``--tile-memory`` for the tiles (one exact case per value given), so the peak shows what bounded memory
costs; on a GPU it gets
``--max-memory`` of device memory at every size (one budget). Whole-image inference is skipped where
its estimate exceeds the memory free now, approximate tiles use 512 px tiles with a 32 px overlap.
Appends one JSON record per run to ``benchmarks/results/large_image.jsonl``, with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import append_json, device_name  # noqa: E402

from vqcnir.metrics import psnr_float  # noqa: E402

SIZES = {1: (816, 1224), 4: (1632, 2448), 12: (2832, 4256), 24: (4000, 6000)}  # megapixels -> (H, W), 3:2


def photo(height: int, width: int) -> torch.Tensor:
    """``[1, 3, H, W]`` float32: scikit-image's ``coffee`` resized, darkened like a night shot."""
    from skimage import data, transform

    image = transform.resize(data.coffee(), (height, width), order=1, anti_aliasing=False).astype(np.float32)
    night = 0.3 * image**2.2
    return torch.from_numpy(night).permute(2, 0, 1)[None].contiguous()


def load(config: str, checkpoint: str | None, device: torch.device) -> torch.nn.Module:
    from vqcnir import VQCNIR, VQCNIRConfig
    from vqcnir.restoring.models import load_model

    if checkpoint:
        return load_model(checkpoint, device)
    torch.manual_seed(0)
    model = VQCNIR(VQCNIRConfig.preset(config))
    with torch.no_grad():  # random weights with every branch active (trained models have them active)
        for name, param in model.named_parameters():
            if name.endswith(("beta", "gamma", "gamma_d", "gamma_g")):
                param.normal_(0, 0.3)
            elif "conv_offset" in name:
                param.normal_(0, 0.01)
    return model.to(device).eval()


def _status(key: str) -> int:
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(key))


def child(case: dict) -> dict:
    """One restoration in this process; returns its measurements (and saves the output for PSNR)."""
    from vqcnir.tiling import parse_memory, plan_exact
    from vqcnir.tiling.memory import RUNTIME, host_bytes

    if case["threads"]:
        torch.set_num_threads(case["threads"])
    device = torch.device(case["device"])
    model = load(case["config"], case["model"], device)
    image = photo(*SIZES[case["mp"]])
    options: dict = {"tiling": case["mode"]}
    note = ""
    if case["mode"] == "approximate":
        options |= {"tile": 512, "overlap": 32}
    elif case["mode"] == "exact":
        from vqcnir.inference import pad_reflect

        shape = tuple(pad_reflect(image).shape)
        if device.type == "cuda":
            budget = parse_memory(case["max_memory"])
        else:  # what the activations kept between passes need, plus the tiles' share
            plan = plan_exact(lambda x: model(x).image, shape, torch.float32, device, model, tile=16)
            budget = max(host_bytes(plan.schedule)) + RUNTIME + parse_memory(case["tile_memory"])
        options["max_memory"] = budget
        note = f"budget {budget / 2**30:.2f} GiB"
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before_device = torch.cuda.memory_allocated()
    with open("/proc/self/clear_refs", "w") as reset:
        reset.write("5")
    before = _status("VmRSS")
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.restore(image.to(device), "reflect", **options)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    result = {"seconds": round(seconds, 2), "peak_rss_mib": round((_status("VmHWM") - before) / 2**20, 1),
              "note": note}  # fmt: skip
    if device.type == "cuda":
        result["peak_cuda_mib"] = round((torch.cuda.max_memory_allocated() - before_device) / 2**20, 1)
    if case["save"]:
        np.save(case["save"], out.float().clamp(0, 1).cpu().numpy())
    return result


def whole_fits(config: str, checkpoint: str | None, mp: int, device: torch.device) -> tuple[bool, str]:
    """Whether whole-image inference is estimated to fit the memory free now."""
    from vqcnir.inference import pad_reflect
    from vqcnir.tiling import available_memory, format_bytes, plan_exact

    model = load(config, checkpoint, torch.device("cpu"))
    shape = tuple(pad_reflect(torch.empty(1, 3, *SIZES[mp], device="meta")).shape)
    plan = plan_exact(lambda x: model(x).image, shape, torch.float32, device, model, tile=64)
    free = available_memory(device)
    return plan.whole_bytes < 0.9 * free, f"whole image needs about {format_bytes(plan.whole_bytes)}, " + (
        f"{format_bytes(free)} free"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="tiny,paper")
    parser.add_argument("--sizes", default="1,4,12,24", help="megapixels, of " + ",".join(map(str, SIZES)))
    parser.add_argument("--modes", default="whole,approximate,exact")
    parser.add_argument("--model", default=None, help="a checkpoint instead of random weights (one config)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--tile-memory", default="256MB,1GB", help="CPU: memory for the tiles of exact tiling (one case each)"
    )
    parser.add_argument("--max-memory", default="4GB", help="GPU: device-memory budget of exact tiling")
    parser.add_argument("--paper-max-mp", type=int, default=4, help="largest size run with the paper config")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--timeout", type=int, default=4 * 3600, help="seconds per case")
    parser.add_argument("--quick", action="store_true", help="tiny config, 1 MP")
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(json.loads(args.child))))
        return
    device = torch.device(args.device)
    configs = ["tiny"] if args.quick else args.configs.split(",")
    sizes = [1] if args.quick else [int(s) for s in args.sizes.split(",")]
    modes = args.modes.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="large-image-") as scratch:
        for config in configs:
            for mp in sizes:
                if config == "paper" and mp > args.paper_max_mp:
                    continue
                outputs = {}
                variants = [(mode, None) for mode in modes if mode != "exact"]
                if "exact" in modes:
                    shares = args.tile_memory.split(",") if device.type == "cpu" else [args.tile_memory]
                    variants += [("exact", share) for share in shares]
                for mode, share in variants:
                    label = mode if share is None or device.type != "cpu" else f"exact {share}"
                    row = {"config": args.model or config, "mp": mp, "size": SIZES[mp], "mode": label}
                    if mode == "whole":
                        fits, why = whole_fits(config, args.model, mp, device)
                        if not fits:
                            rows.append(row | {"skipped": why})
                            print(f"{config} {mp} MP whole: skipped ({why})", flush=True)
                            continue
                    save = os.path.join(scratch, f"{config}-{mp}-{label.replace(' ', '-')}.npy")
                    case = {"config": config, "model": args.model, "mp": mp, "mode": mode, "device": args.device,
                            "threads": args.threads, "tile_memory": share, "max_memory": args.max_memory,
                            "save": save}  # fmt: skip
                    command = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(case)]
                    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
                    if done.returncode != 0:
                        rows.append(row | {"error": done.stderr.strip().splitlines()[-1][:300]})
                        print(f"{config} {mp} MP {mode}: error {rows[-1]['error']}", flush=True)
                        continue
                    row |= json.loads(done.stdout.strip().splitlines()[-1])
                    outputs[label] = (save, row)
                    rows.append(row)
                    print(f"{config} {mp} MP {label}: {row}", flush=True)
                if "whole" in outputs:
                    whole = torch.from_numpy(np.load(outputs["whole"][0]))
                    for label, (save, row) in outputs.items():
                        if label != "whole":
                            exact = torch.from_numpy(np.load(save))
                            row["psnr_vs_whole_db"] = round(psnr_float(exact, whole).item(), 2)
                for save, _ in outputs.values():
                    os.remove(save)
    print_table(rows, device)
    if not args.no_save:
        append_json({"bench": "large_image", "device": device_name(device), "torch": torch.__version__,
                     "load_average": os.getloadavg(), "rows": rows})  # fmt: skip


def print_table(rows: list[dict], device: torch.device) -> None:
    peak = "peak_cuda_mib" if device.type == "cuda" else "peak_rss_mib"
    print(f"\n{'model':<34} {'MP':>3} {'mode':<14} {'seconds':>9} {'peak MiB':>9} {'PSNR vs whole':>14}  note")
    for r in rows:
        if "skipped" in r or "error" in r:
            print(f"{r['config']:<34} {r['mp']:>3} {r['mode']:<14} {'-':>9} {'-':>9} {'-':>14}  "
                  f"{r.get('skipped') or r.get('error')}")  # fmt: skip
            continue
        value = r.get("psnr_vs_whole_db")
        print(f"{r['config']:<34} {r['mp']:>3} {r['mode']:<14} {r['seconds']:>9.1f} {r[peak]:>9.0f} "
              f"{'-' if value is None else f'{value:.1f} dB':>14}  {r['note']}")  # fmt: skip


if __name__ == "__main__":
    main()
