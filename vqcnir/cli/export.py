"""``vqcnir-export``: a checkpoint as one ONNX file that restores images of any size in ONNX Runtime.

    vqcnir-export experiments/vqcnir_demo/best --onnx vqcnir.onnx
    vqcnir-export VQCNIR_LOLBlur_G.pth --onnx vqcnir.onnx --opset 20
    vqcnir-export experiments/vqgan_demo/best --onnx vqgan.onnx --padding none   # the caller pads to x8

MODEL is a folder written by ``save_pretrained`` (VQCNIR or a stage-1 VQGAN) or the official ``.pth``. The
graph takes ``image`` ``[batch, 3, height, width]`` float32 in [0, 1] (every size dynamic) and returns
``restored`` (same shape, not clamped); details in :mod:`vqcnir.export`. Needs the ``export`` extra.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import torch

import vqcnir
from vqcnir.export import DEFAULT_OPSET, PADDINGS, export_onnx
from vqcnir.pretrained import names_shipped_model
from vqcnir_ops.to_onnx import MIN_OPSET


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vqcnir-export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", metavar="MODEL", help="save_pretrained folder, official .pth or shipped name")
    parser.add_argument("--onnx", required=True, metavar="OUT", help="the ONNX file to write")
    parser.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset, >= {MIN_OPSET} (default {DEFAULT_OPSET})"
    )
    parser.add_argument(
        "--padding", choices=PADDINGS, default="official",
        help="official: the authors' test-time padding and the crop back inside the graph (default); "
        "none: the bare network, for H and W multiples of 8 (the caller pads and crops)",
    )  # fmt: skip
    return parser


def _load(path: str) -> torch.nn.Module:
    """A stage-1 VQGAN or a VQCNIR (both export): an official ``.pth`` file, a ``save_pretrained`` folder or
    a shipped model's name (``default``). The restore layer's loader is not used: it refuses stage-1 models."""
    if os.path.isfile(path):
        return vqcnir.load_official_checkpoint(path).eval()
    if not os.path.exists(path) and not names_shipped_model(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return vqcnir.load_pretrained(path).eval()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.opset < MIN_OPSET:
        parser.error(f"argument --opset: must be >= {MIN_OPSET} (ONNX's DeformConv), got {args.opset}")
    folder = os.path.dirname(os.path.abspath(args.onnx))
    if not os.path.isdir(folder):
        parser.error(f"argument --onnx: folder not found: {folder}")
    try:
        model = _load(args.model)
    except (FileNotFoundError, ValueError, KeyError, TypeError) as error:  # CheckpointError is a ValueError
        parser.error(f"argument MODEL: cannot load {args.model!r}: {str(error).splitlines()[0]}")
    print(f"exporting {type(model).__name__} from {args.model} with ONNX opset {args.opset}", flush=True)
    try:
        written = export_onnx(model, args.onnx, opset=args.opset, padding=args.padding)
    except (TypeError, ValueError, ImportError) as error:
        print(f"vqcnir-export: cannot export {args.model}: {error}", file=sys.stderr)
        return 1
    size = os.path.getsize(written.path) / 2**20
    print(
        f"wrote {written.path} ({size:.1f} MiB): {written.model}, opset {written.opset}, padding {written.padding}; "
        "input 'image' [batch, 3, height, width] float32 in [0, 1], output 'restored'"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

