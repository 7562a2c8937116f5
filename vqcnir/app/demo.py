"""The README's first command (``bash scripts/demo.sh``): restore the held-out demo photos, no training needed.

    python -m vqcnir.app.demo --check     # exit 0 when a model to restore with exists (shipped or demo-trained)
    python -m vqcnir.app.demo             # restore, print PSNR/SSIM, say where the images are
    python -m vqcnir.app.demo --model experiments/vqcnir_demo/final     # the model `train_demo.sh` trains

Restores the demo set's held-out test pairs (tiles of scikit-image photos never seen in training,
:func:`vqcnir.data.build_demo_set`) with the shipped default model (``vqcnir.load_pretrained("default")``,
else the demo-trained one) as ``vqcnir-restore`` does, scores the
night inputs and the restorations against the sharp, well-lit targets as ``vqcnir-evaluate`` does (PSNR on
RGB, SSIM on Y), writes an input | restored | target grid, and prints the command that opens the page on
the restored folder beside its inputs.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence

import torch

from vqcnir.baselines import restore_baseline
from vqcnir.data import build_demo_set, pair_by_relative_path, read_rgb
from vqcnir.data.demo import TEST_PHOTOS
from vqcnir.data.folders import read_pair, to_tensor
from vqcnir.device import device_argument
from vqcnir.io import write_png
from vqcnir.metrics import psnr, ssim
from vqcnir.restoring.files import plan_jobs, restore_all
from vqcnir.restoring.models import demo_options, display_path, load_model, repository_root, resolve_model
from vqcnir.training.monitor import save_image_grid

RESTORED_FOLDER = "demo_restored"  # inside experiments/default_model_demo/
BASELINE = "exposure+tv"  # the best classical baseline on the held-out night photos (README, "The default model")


def _score(pairs: Sequence[tuple[str, str]]) -> dict[str, float]:
    """Mean PSNR (RGB) and SSIM (Y) of ``(image, target)`` files on 8-bit images, as ``vqcnir-evaluate`` scores."""
    psnrs, ssims = [], []
    for image_path, target_path in pairs:
        image, target = (to_tensor(array).unsqueeze(0) for array in read_pair(image_path, target_path))
        psnrs.append(psnr(image, target).item())
        ssims.append(ssim(image, target).item())
    return {"psnr": math.fsum(psnrs) / len(psnrs), "ssim": math.fsum(ssims) / len(ssims)}


def _stack(paths: Sequence[str]) -> torch.Tensor:
    return torch.stack([to_tensor(read_rgb(path)) for path in paths])


def run(model_dir: str, output: str, device: torch.device, padding: str = "official") -> dict[str, float]:
    """Restore the demo test inputs into ``output`` and print the scores; returns input and restored means.

    ``padding`` as the demo recipe's validation pads (``val.padding``), so the scores are the recipe's.
    """
    demo = build_demo_set()
    inputs, targets = os.path.join(demo.test, "lq"), os.path.join(demo.test, "gt")
    model = load_model(model_dir, device)
    jobs = plan_jobs(inputs, output)
    skipped = restore_all(model, jobs, device, padding, progress=False)
    if skipped:
        raise RuntimeError(f"could not read {len(skipped)} demo input(s), e.g. {skipped[0]}: rebuild the demo set")
    night = pair_by_relative_path(inputs, targets)
    restored = pair_by_relative_path(output, targets)
    classical_dir = output.rstrip(os.sep) + "_classical"
    for lq, gt in night:
        write_png(os.path.join(classical_dir, os.path.basename(gt)), restore_baseline(read_rgb(lq), BASELINE))
    classical = pair_by_relative_path(classical_dir, targets)
    before, after, baseline = _score(night), _score(restored), _score(classical)
    grid = output.rstrip(os.sep) + "_comparison.png"
    sources = [lq for lq, _ in night]
    save_image_grid(grid, [_stack(sources), _stack([r for r, _ in restored]), _stack([gt for _, gt in night])], 64)

    model_text, inputs_text, output_text = display_path(model_dir), display_path(inputs), display_path(output)
    photos = ", ".join(os.path.splitext(name)[0] for name in TEST_PHOTOS)
    print(f"\nheld-out demo photos: {len(jobs)} tiles of {photos} (never seen in training)")
    print(f"restored with {model_text}")
    print("                          PSNR (dB)   SSIM (Y)")
    print(f"  input (night, blurred)  {before['psnr']:9.2f}   {before['ssim']:.4f}")
    print(f"  classical ({BASELINE})  {baseline['psnr']:9.2f}   {baseline['ssim']:.4f}")
    print(f"  restored                {after['psnr']:9.2f}   {after['ssim']:.4f}")
    print(f"\nbefore (night inputs):    {inputs_text}")
    print(f"after (restored PNGs):    {output_text}")
    print(f"side by side (input | restored | target): {display_path(grid)}")
    venv_bin = os.path.dirname(sys.executable)
    app = os.path.join(display_path(venv_bin), "vqcnir-app")
    print("\nopen the page on them (then http://127.0.0.1:7860, tab 'Folder'; your own photos in 'Restore photos'):")
    print(f"  {app} --model {model_text} --inputs {inputs_text} --restored {output_text}")
    return {
        "input_psnr": before["psnr"],
        "input_ssim": before["ssim"],
        "baseline_psnr": baseline["psnr"],
        "baseline_ssim": baseline["ssim"],
        "psnr": after["psnr"],
        "ssim": after["ssim"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vqcnir.app.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether a model to restore with exists")
    parser.add_argument("--model", help="model folder or shipped name (default: 'default', else the demo's)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    args = parser.parse_args(argv)
    root, options = repository_root(), demo_options()
    if root is None or options is None:
        parser.error("the demo needs the vqcnir checkout (recipes/configs/vqcnir_demo.yaml); install it with -e")
    model = resolve_model(args.model)
    if args.check:
        print(f"model: {model}" if model else "no model yet: training the demo model")
        return 0 if model else 1
    if model is None:
        parser.error("no model: run python recipes/train_vqcnir.py first (bash scripts/train_demo.sh does)")
    device = device_argument(parser, args.device)
    output = os.path.join(root, os.path.dirname(options.experiment_dir), "default_model_demo", RESTORED_FOLDER)
    run(model, output, device, options.val.padding)
    return 0


if __name__ == "__main__":
    sys.exit(main())
