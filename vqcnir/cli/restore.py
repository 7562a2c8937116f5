"""``vqcnir-restore``: restore a night photo, or a folder of them, with a VQCNIR checkpoint.

    vqcnir-restore --model VQCNIR_LOLBlur_G.pth night.jpg -o restored/
    vqcnir-restore --model runs/vqcnir/best photos/ -o photos_restored/ --max-memory 4GB --bit-depth 16

What is restored, how files are named and what may be replaced: :mod:`vqcnir.restoring.files` (never an
input, never a file that is not an earlier output of the same input unless ``--overwrite``). Which model:
:func:`vqcnir.restoring.models.resolve_model`. Every expected error is one line on stderr, no traceback:
bad arguments and models (exit 2), images that could not be restored (each named; the others are
restored; exit 1), Ctrl-C (``interrupted``, exit 130).

Memory: ``--max-memory`` (default ``auto``: 80% of the memory free now) covers each image from decoding
on: its size is read from the header and checked first, large photos go through exact tiling (the same
result as the whole image, in bounded memory; a progress bar over its tiles);
``--tiling approximate --tile N --overlap M`` asks for the old overlapping tiles.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from vqcnir.device import device_argument
from vqcnir.inference import MIN_TILE, PADDINGS, SELF_ENSEMBLE, TILINGS
from vqcnir.restoring.arguments import check_tile_arguments, memory_argument, non_negative
from vqcnir.restoring.files import BIT_DEPTHS, OverwriteError, check_targets, check_writable, plan_jobs, restore_all
from vqcnir.restoring.models import AUTO_OVERLAP, ModelError, load_model, resolve_model

PROG = "vqcnir-restore"
INTERRUPTED = 130  # the shell's code for a command ended by SIGINT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vqcnir-restore",
        description="Restore night photos (low light + blur) with VQCNIR. Inputs are never overwritten.",
    )
    parser.add_argument("input", help="an image file or a folder of images (searched recursively)")
    parser.add_argument("-o", "--output", required=True, help="output folder (or a .png path for one input file)")
    parser.add_argument(
        "-m", "--model", help="our stage-2 checkpoint folder (save_pretrained) or the official .pth "
        "(default: the demo-trained model, when there is one)"
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
        type=non_negative,
        default=None,
        help=f"tile side in pixels (>= {MIN_TILE}): exact tiles (of each pass's grid) or approximate ones (of the "
        "image); 0 = whole image; default: chosen from --max-memory",
    )
    parser.add_argument(
        "--overlap", type=non_negative, default=AUTO_OVERLAP, help="overlap of approximate tiles (default 32)"
    )
    parser.add_argument("--offload", default=None, help="exact tiling: keep full-resolution activations in files here")
    parser.add_argument("--bit-depth", type=int, choices=BIT_DEPTHS, default=8, help="bits per channel of the PNGs")
    parser.add_argument(
        "--self-ensemble",
        type=int,
        choices=SELF_ENSEMBLE,
        default=1,
        help="average the restorations of 2, 4 or 8 flipped / transposed copies (that many times the time); "
        "default model, held-out night photos: 8 copies +0.3 dB PSNR, +0.02 SSIM, LPIPS 0.35 against 0.34",
    )
    parser.add_argument(
        "--padding",
        choices=PADDINGS,
        default="official",
        help="official: the authors' flip padding to a multiple of 64 (their outputs exactly); reflect: minimal",
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs that are not earlier restorations of the same inputs (inputs never)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return INTERRUPTED


def _run(argv: Sequence[str] | None) -> int:
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
    model_path = resolve_model(args.model)
    if model_path is None:
        parser.error("argument --model: none given and no demo-trained model found (bash scripts/demo.sh trains one)")
    try:
        jobs = plan_jobs(args.input, args.output)
        check_targets(jobs, args.overwrite)
        check_writable(jobs)
    except (OverwriteError, ValueError, FileNotFoundError, PermissionError, NotADirectoryError) as error:
        parser.error(str(error))
    device = device_argument(parser, args.device)
    try:
        model = load_model(model_path, device)
    except ModelError as error:
        parser.error(f"argument --model: {error}")
    failures = restore_all(
        model, jobs, device, args.padding, args.tile, args.overlap, progress=not args.quiet,
        max_memory=max_memory, tiling=args.tiling, offload=args.offload, bit_depth=args.bit_depth,
        overwrite=args.overwrite, self_ensemble=args.self_ensemble,
    )  # fmt: skip
    written = len(jobs) - len(failures)
    failed = f"; {len(failures)} not restored (listed above)" if failures else ""
    print(f"wrote {written} restored image(s) to {args.output}{failed}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
