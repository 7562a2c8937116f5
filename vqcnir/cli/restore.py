"""``vqcnir-restore``: restore a night photo, or a folder of them, with a VQCNIR checkpoint.

    vqcnir-restore --model VQCNIR_LOLBlur_G.pth night.jpg -o restored/
    vqcnir-restore --model runs/vqcnir/best photos/ -o photos_restored/ --tile 512

Outputs are 8-bit PNGs named after the inputs (``a/b.jpg`` -> ``OUT/a/b.png``), with the input
folder's structure. It refuses to write into the input folder (or a folder inside it) and never
writes onto an input file. Inputs are read as :func:`vqcnir.data.read_rgb` does (grayscale repeated
to RGB, 16-bit scaled to 8 bits: the model works on 8-bit images); an alpha channel passes through
unchanged to the output PNG. Large images are restored tile by tile (``--tile``, automatic above
1600 x 1600 pixels).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from vqcnir.cli.models import AUTO_OVERLAP, AUTO_TILE_PIXELS, load_model, restore_tensor
from vqcnir.cli.progress import Progress
from vqcnir.data import IMAGE_EXTENSIONS, UnreadableImageError, list_images, read_rgb
from vqcnir.data.folders import to_tensor
from vqcnir.inference import PADDINGS


class OverwriteError(ValueError):
    """Restoring would write into the input folder or onto an input file."""


@dataclass(frozen=True)
class Job:
    source: str
    target: str


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def plan_jobs(source: str, output: str) -> list[Job]:
    """Input -> output paths; raises OverwriteError before anything is written if an input could be hit.

    ``source`` is an image file or a folder (searched recursively). For a folder, ``output`` is a folder
    that must not be the input folder or inside it. For a file, ``output`` is a ``.png`` path or a folder.
    """
    if os.path.isdir(source):
        if _inside(output, source):
            raise OverwriteError(
                f"output folder {output!r} is the input folder {source!r} or inside it: choose a folder outside "
                "the input so that inputs are never overwritten"
            )
        files = list_images(source)
        if not files:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {source!r}")
        jobs = [
            Job(os.path.join(source, rel), os.path.join(output, os.path.splitext(rel)[0] + ".png")) for rel in files
        ]
    elif os.path.isfile(source):
        if not source.lower().endswith(IMAGE_EXTENSIONS):
            raise ValueError(f"input {source!r} is not an image file ({', '.join(IMAGE_EXTENSIONS)})")
        if output.lower().endswith(IMAGE_EXTENSIONS):
            if not output.lower().endswith(".png"):
                raise ValueError(f"output {output!r} must be a .png file (restored images are written as PNG)")
            target = output
        else:
            target = os.path.join(output, os.path.splitext(os.path.basename(source))[0] + ".png")
        jobs = [Job(source, target)]
    else:
        raise FileNotFoundError(f"input not found: {source}")
    inputs = {os.path.realpath(job.source) for job in jobs}
    seen: dict[str, str] = {}
    for job in jobs:
        real = os.path.realpath(job.target)
        if real in inputs or (os.path.exists(real) and os.path.samefile(real, job.source)):
            raise OverwriteError(f"output {job.target!r} is an input file: refusing to overwrite it")
        if real in seen:
            raise ValueError(f"inputs {seen[real]!r} and {job.source!r} would both be written to {job.target!r}")
        seen[real] = job.source
    return jobs


def read_alpha(path: str) -> np.ndarray | None:
    """The ``[H, W]`` uint8 alpha channel of an image file, or None when it has none."""
    with Image.open(path) as image:
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        if image.mode in ("RGBA", "LA", "PA"):
            return np.asarray(image.getchannel("A"), dtype=np.uint8).copy()
    return None


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``[1, 3, H, W]`` float in [0, 1] -> ``[H, W, 3]`` uint8 (rounded, as the metrics assume)."""
    return (image[0].detach().float().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def write_png(path: str, rgb: np.ndarray, alpha: np.ndarray | None = None) -> None:
    """Write ``rgb`` (plus ``alpha`` when given) as a PNG, creating folders; temp file + rename."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    array = rgb if alpha is None else np.concatenate([rgb, alpha[..., None]], axis=-1)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".tmp-{os.getpid()}-{os.path.basename(path)}")
    Image.fromarray(array).save(tmp, format="PNG")
    os.replace(tmp, path)


def restore_file(
    model: torch.nn.Module,
    job: Job,
    device: torch.device,
    padding: str = "official",
    tile: int | None = None,
    overlap: int = AUTO_OVERLAP,
    auto_tile_pixels: int = AUTO_TILE_PIXELS,
) -> None:
    rgb = read_rgb(job.source)
    image = to_tensor(rgb).unsqueeze(0).to(device)
    restored = restore_tensor(model, image, padding, tile, overlap, auto_tile_pixels)
    write_png(job.target, to_uint8(restored), read_alpha(job.source))


def restore_all(
    model: torch.nn.Module,
    jobs: Sequence[Job],
    device: torch.device,
    padding: str = "official",
    tile: int | None = None,
    overlap: int = AUTO_OVERLAP,
    progress: bool = True,
) -> list[str]:
    """Restore every job; unreadable inputs are reported on stderr and skipped. Returns the skipped inputs."""
    skipped = []
    with Progress(len(jobs), "restoring", enabled=progress) as bar:
        for job in jobs:
            try:
                restore_file(model, job, device, padding, tile, overlap)
            except UnreadableImageError as error:
                print(f"skipped unreadable input: {error}", file=sys.stderr)
                skipped.append(job.source)
            bar.update(os.path.basename(job.source))
    return skipped


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vqcnir-restore",
        description="Restore night photos (low light + blur) with VQCNIR. Inputs are never overwritten.",
    )
    parser.add_argument("input", help="an image file or a folder of images (searched recursively)")
    parser.add_argument("-o", "--output", required=True, help="output folder (or a .png path for one input file)")
    parser.add_argument(
        "-m", "--model", required=True, help="our checkpoint folder (save_pretrained) or the official .pth"
    )
    parser.add_argument(
        "--tile",
        type=_non_negative,
        default=None,
        help=f"tile size in pixels (>= 16); 0 = whole image; default: tiles of 512 above {AUTO_TILE_PIXELS} pixels",
    )
    parser.add_argument("--overlap", type=_non_negative, default=AUTO_OVERLAP, help="overlap of tiles (default 32)")
    parser.add_argument(
        "--padding",
        choices=PADDINGS,
        default="official",
        help="official: the authors' flip padding to a multiple of 64 (their outputs exactly); reflect: minimal",
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def check_tile_arguments(parser: argparse.ArgumentParser, tile: int | None, overlap: int) -> None:
    if tile is not None and tile != 0 and tile < 16:
        parser.error(f"argument --tile: must be 0 or at least 16, got {tile}")
    if tile and overlap >= tile // 2:
        parser.error(f"argument --overlap: must be smaller than half the tile ({tile}), got {overlap}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_tile_arguments(parser, args.tile, args.overlap)
    try:
        jobs = plan_jobs(args.input, args.output)
    except (OverwriteError, ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load_model(args.model, device)
    skipped = restore_all(model, jobs, device, args.padding, args.tile, args.overlap, progress=not args.quiet)
    written = len(jobs) - len(skipped)
    print(f"wrote {written} restored image(s) to {args.output}" + (f"; skipped {len(skipped)}" if skipped else ""))
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
