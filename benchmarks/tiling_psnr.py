"""How far tiled inference is from whole-image inference (PSNR of tiled vs whole output, in dB).

    python benchmarks/tiling_psnr.py --model CHECKPOINT [--size 512] [--tiles 128,256] [--overlaps 16,32]

GroupNorm and the channel attention use statistics of the whole input, so a tile sees other statistics
than the whole image and the outputs differ; this measures by how much, on real photos (scikit-image's
samples, darkened and blurred by vqcnir.data.degrade), for a trained checkpoint (our folder or the
official .pth). Appends JSON to benchmarks/results/tiling_psnr.jsonl.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os

import numpy as np
import torch

from vqcnir.cli.models import load_model
from vqcnir.data import NightBlurParams, degrade
from vqcnir.metrics import psnr

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "tiling_psnr.jsonl")


def photos(size: int) -> list[tuple[str, np.ndarray]]:
    from skimage import data, transform

    out = []
    for name in ("astronaut", "chelsea", "coffee"):
        image = getattr(data, name)()
        image = transform.resize(image, (size, size), anti_aliasing=True, preserve_range=True).astype(np.uint8)
        out.append((name, image))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="checkpoint folder (save_pretrained) or official .pth")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--tiles", default="128,256")
    parser.add_argument("--overlaps", default="16,32")
    args = parser.parse_args()
    model = load_model(args.model)
    rows = []
    for name, sharp in photos(args.size):
        night = degrade(sharp, np.random.default_rng(0), NightBlurParams())
        image = torch.from_numpy(night).permute(2, 0, 1)[None].float() / 255
        with torch.inference_mode():
            whole = model.restore(image, padding="reflect").clamp(0, 1)
            for tile in map(int, args.tiles.split(",")):
                for overlap in map(int, args.overlaps.split(",")):
                    tiled = model.restore(image, padding="reflect", tile=tile, overlap=overlap).clamp(0, 1)
                    value = float(psnr(tiled, whole)[0])
                    rows.append({"image": name, "tile": tile, "overlap": overlap, "psnr_db": round(value, 2)})
                    print(f"{name:<10} tile {tile:4d} overlap {overlap:3d}: PSNR(tiled, whole) = {value:6.2f} dB")
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "a") as out:
        record = {"model": args.model, "size": args.size, "rows": rows,
                  "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
        out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
