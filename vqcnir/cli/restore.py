"""``vqcnir-restore``: restore a night photo, or a folder of them, with a VQCNIR checkpoint.

    vqcnir-restore --model VQCNIR_LOLBlur_G.pth night.jpg -o restored/
    vqcnir-restore --model runs/vqcnir/best photos/ -o photos_restored/ --max-memory 4GB --bit-depth 16

Outputs are PNGs (8 or 16 bits per channel) named after the inputs (``a/b.jpg`` -> ``OUT/a/b.png``),
with the input folder's structure and each input's size, upright (EXIF orientation applied). It refuses
to write into the input folder (or a folder inside it), never writes onto an input file, and checks that
the output folder can be written and that the model is a stage-2 restorer before loading it. Inputs
are read as :func:`vqcnir.data.read_rgb` does (grayscale repeated to RGB, 16-bit scaled to 8 bits: the
model works on 8-bit images); an alpha channel passes through unchanged to the output PNG.

Memory: ``--max-memory`` (default ``auto``: 80% of the memory free now) makes large photos go through
exact tiling (the same result as the whole image, in bounded memory; a progress bar over its tiles);
``--tiling approximate --tile N --overlap M`` asks for the old overlapping tiles.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from vqcnir.cli.models import AUTO_OVERLAP, check_restorer, load_model, memory_argument, restore_tensor
from vqcnir.data import IMAGE_EXTENSIONS, UnreadableImageError, list_images, read_rgb
from vqcnir.data.folders import to_tensor
from vqcnir.device import device_argument
from vqcnir.inference import PADDINGS, TILINGS
from vqcnir.io import to_uint8, to_uint16, write_png
from vqcnir.progress import Progress
from vqcnir.tiling import MemoryBudgetError

BIT_DEPTHS = (8, 16)
# EXIF orientation -> the PIL transposition that makes the pixels upright (as PIL.ImageOps.exif_transpose).
ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


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


def check_writable(jobs: Sequence[Job]) -> None:
    """Raise PermissionError / NotADirectoryError naming the folder when an output cannot be written.

    For each output folder, its nearest existing ancestor must be a writable folder (tested by creating
    and removing a temporary file there, which also catches read-only file systems).
    """
    checked: set[str] = set()
    for job in jobs:
        folder = os.path.dirname(os.path.abspath(job.target))
        existing = folder
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if existing in checked:
            continue
        if not os.path.isdir(existing):
            raise NotADirectoryError(f"output folder {folder!r} cannot be created: {existing!r} is a file")
        try:
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as error:
            raise PermissionError(f"output folder {folder!r} is not writable ({existing!r}: {error})") from error
        checked.add(existing)


def orientation(path: str) -> int:
    """The EXIF orientation tag of an image file (1 = upright, also when absent or unreadable)."""
    try:
        with Image.open(path) as image:
            return int(image.getexif().get(0x0112, 1))
    except (OSError, ValueError, TypeError):
        return 1


def upright(array: np.ndarray, tag: int) -> np.ndarray:
    """``array`` ``[H, W(, C)]`` uint8 turned as EXIF orientation ``tag`` says."""
    if tag not in ORIENTATIONS:
        return array
    return np.asarray(Image.fromarray(array).transpose(ORIENTATIONS[tag])).copy()


def read_alpha(path: str) -> np.ndarray | None:
    """The ``[H, W]`` uint8 alpha channel of an image file, or None when it has none."""
    with Image.open(path) as image:
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        if image.mode in ("RGBA", "LA", "PA"):
            return np.asarray(image.getchannel("A"), dtype=np.uint8).copy()
    return None


@dataclass(frozen=True)
class Options:
    """How each image is restored (see ``vqcnir-restore --help``)."""

    padding: str = "official"
    tile: int | None = None
    overlap: int = AUTO_OVERLAP
    max_memory: int | str | None = "auto"
    tiling: str = "auto"
    offload: str | None = None
    bit_depth: int = 8


def tile_progress(name: str, enabled: bool) -> Callable[[int, int, str], None]:
    """A progress callback drawing a bar over one image's tiles (nothing for whole-image inference)."""
    bars: list[Progress] = []

    def update(done: int, total: int, description: str) -> None:
        if total <= 1:
            return
        if not bars:
            bars.append(Progress(total, f"  {name}", enabled=enabled, unit="tile"))
        bars[0].update(description.split(": ")[-1])
        if done == total:
            bars[0].close()

    return update


def restore_file(
    model: torch.nn.Module, job: Job, device: torch.device, options: Options = Options(), progress: bool = False
) -> None:
    """Restore one file: EXIF orientation applied, the input's size kept, alpha passed through."""
    tag = orientation(job.source)
    rgb = upright(read_rgb(job.source), tag)
    alpha = read_alpha(job.source)
    image = to_tensor(rgb).unsqueeze(0)
    restored = restore_tensor(
        model, image.to(device), options.padding, options.tile, options.overlap, max_memory=options.max_memory,
        tiling=options.tiling, progress=tile_progress(os.path.basename(job.source), progress), offload=options.offload,
    )  # fmt: skip
    rgb = to_uint8(restored[0]) if options.bit_depth == 8 else to_uint16(restored[0])
    if alpha is not None:  # 8-bit alpha scaled to the colour's depth (x 257 maps 255 to 65535)
        alpha = upright(alpha, tag).astype(rgb.dtype) * (1 if options.bit_depth == 8 else 257)
    write_png(job.target, rgb, alpha)


def restore_all(
    model: torch.nn.Module,
    jobs: Sequence[Job],
    device: torch.device,
    padding: str = "official",
    tile: int | None = None,
    overlap: int = AUTO_OVERLAP,
    progress: bool = True,
    *,
    max_memory: int | str | None = "auto",
    tiling: str = "auto",
    offload: str | None = None,
    bit_depth: int = 8,
) -> list[str]:
    """Restore every job; unreadable inputs are reported on stderr and skipped. Returns the skipped inputs.

    ``tile=0``: whole images; ``tile=N``: exact tiles of N pixels (approximate with ``tiling="approximate"``,
    which alone uses ``overlap``). ``max_memory`` (default ``"auto"``): exact tiling for images that would
    not fit. ``bit_depth``: 8 or 16 bits per channel.
    """
    options = Options(padding, tile, overlap, max_memory, tiling, offload, bit_depth)
    skipped = []
    with Progress(len(jobs), "restoring", enabled=progress) as bar:
        for job in jobs:
            try:
                restore_file(model, job, device, options, progress)
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
        "-m", "--model", required=True, help="our stage-2 checkpoint folder (save_pretrained) or the official .pth"
    )
    parser.add_argument(
        "--max-memory",
        type=memory_argument,
        default="auto",
        help="memory the restoration may use, e.g. 4GB, 512MiB (CPU: RAM; GPU: device memory); images that would "
        "need more go through exact tiling (the same result, tile by tile); 'auto' (default): 80%% of the memory "
        "free now; 'none': no limit (whole images)",
    )
    parser.add_argument(
        "--tiling",
        choices=TILINGS,
        default="auto",
        help="auto (default): whole image unless --max-memory needs exact tiles; whole; exact; approximate: the old "
        "overlapping tiles (--tile, --overlap), which change the result",
    )
    parser.add_argument(
        "--tile",
        type=_non_negative,
        default=None,
        help="tile side in pixels (>= 16): exact tiles (of each pass's grid) or approximate ones (of the image); "
        "0 = whole image; default: chosen from --max-memory",
    )
    parser.add_argument(
        "--overlap", type=_non_negative, default=AUTO_OVERLAP, help="overlap of approximate tiles (default 32)"
    )
    parser.add_argument("--offload", default=None, help="exact tiling: keep full-resolution activations in files here")
    parser.add_argument("--bit-depth", type=int, choices=BIT_DEPTHS, default=8, help="bits per channel of the PNGs")
    parser.add_argument(
        "--padding",
        choices=PADDINGS,
        default="official",
        help="official: the authors' flip padding to a multiple of 64 (their outputs exactly); reflect: minimal",
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def check_tile_arguments(parser: argparse.ArgumentParser, tile: int | None, overlap: int, tiling: str = "auto") -> None:
    if tile is not None and tile != 0 and tile < 16:
        parser.error(f"argument --tile: must be 0 or at least 16, got {tile}")
    if tiling == "approximate" and tile and overlap >= tile // 2:
        parser.error(f"argument --overlap: must be smaller than half the tile ({tile}), got {overlap}")
    if tile == 0 and tiling not in ("auto", "whole"):
        parser.error(f"argument --tile: 0 (the whole image) contradicts --tiling {tiling}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_tile_arguments(parser, args.tile, args.overlap, args.tiling)
    max_memory = args.max_memory
    if args.tiling == "approximate" and max_memory not in (None, "auto"):
        parser.error("argument --max-memory: does not apply to --tiling approximate (give --tile)")
    if args.tiling == "approximate":
        max_memory = None
    if args.offload is not None and not os.path.isdir(args.offload):
        parser.error(f"argument --offload: folder not found: {args.offload}")
    try:
        jobs = plan_jobs(args.input, args.output)
        check_writable(jobs)
        check_restorer(args.model)
    except (OverwriteError, ValueError, FileNotFoundError, PermissionError, NotADirectoryError) as error:
        parser.error(str(error))
    device = device_argument(parser, args.device)
    model = load_model(args.model, device)
    try:
        skipped = restore_all(
            model, jobs, device, args.padding, args.tile, args.overlap, progress=not args.quiet,
            max_memory=max_memory, tiling=args.tiling, offload=args.offload, bit_depth=args.bit_depth,
        )  # fmt: skip
    except MemoryBudgetError as error:
        print(f"vqcnir-restore: {error}", file=sys.stderr)
        return 3
    written = len(jobs) - len(skipped)
    print(f"wrote {written} restored image(s) to {args.output}" + (f"; skipped {len(skipped)}" if skipped else ""))
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
