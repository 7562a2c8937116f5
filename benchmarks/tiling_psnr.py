"""How far tiled inference is from whole-image inference: PSNR(tiled, whole) in dB, on real photos.

    python benchmarks/tiling_psnr.py --model CHECKPOINT [--size 512] [--tiles 64,128] [--overlaps 8,16]
    python benchmarks/tiling_psnr.py --config paper       # random weights with every branch active

Exact tiles (``tiling="exact"``) equal the whole image up to float rounding; approximate tiles
(``tiling="approximate"``: overlapping tiles restored alone and blended) do not, because GroupNorm and the
channel attention see the statistics of a tile instead of the whole image's. The photos are
scikit-image's samples resized to ``--size`` and darkened and blurred by ``vqcnir.data.degrade``; the
PSNR is computed on the float outputs clamped to [0, 1] (no 8-bit rounding, which would hide the
exact tiles' rounding-level differences). Appends JSON to benchmarks/results/tiling_psnr.jsonl.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import append_json  # noqa: E402
from large_image import load  # noqa: E402

from vqcnir.data import NightBlurParams, degrade  # noqa: E402
from vqcnir.metrics import psnr_float  # noqa: E402


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
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="checkpoint folder (save_pretrained) or official .pth")
    source.add_argument("--config", help="a preset (tiny, paper) with random weights, every branch active")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--tiles", default="64,128", help="tile sides (exact: of each pass's grid; approximate: px)")
    parser.add_argument("--overlaps", default="8,16", help="overlaps of the approximate tiles")
    parser.add_argument("--modes", default="exact,approximate")
    args = parser.parse_args()
    model = load(args.config, args.model, torch.device("cpu"))
    modes = args.modes.split(",")
    rows = []
    for name, sharp in photos(args.size):
        night = degrade(sharp, np.random.default_rng(0), NightBlurParams())
        image = torch.from_numpy(night).permute(2, 0, 1)[None].float() / 255
        with torch.inference_mode():
            whole = model.restore(image, padding="reflect", tiling="whole").clamp(0, 1)
            for tile in map(int, args.tiles.split(",")):
                variants = [("exact", None)] if "exact" in modes else []
                if "approximate" in modes:
                    variants += [("approximate", int(o)) for o in args.overlaps.split(",")]
                for mode, overlap in variants:
                    options = {"tile": tile, "tiling": mode} | ({"overlap": overlap} if overlap is not None else {})
                    tiled = model.restore(image, padding="reflect", **options).clamp(0, 1)
                    value, worst = psnr_float(tiled, whole).item(), (tiled - whole).abs().max().item()
                    row = {"image": name, "mode": mode, "tile": tile, "overlap": overlap}
                    rows.append(row | {"psnr_db": round(value, 2), "max_abs": worst})
                    print(f"{name:<10} {mode:<12} tile {tile:4d} overlap {overlap or 0:3d}: "
                          f"PSNR(tiled, whole) = {value:6.2f} dB, max |diff| {worst:.2e}")  # fmt: skip
    model = args.model or f"{args.config} (random weights)"
    append_json({"bench": "tiling_psnr", "model": model, "size": args.size, "metric": "float", "rows": rows})


if __name__ == "__main__":
    main()
