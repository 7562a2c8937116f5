"""Validation during training: PSNR / SSIM (:mod:`vqcnir.metrics`, 8-bit, RGB PSNR, Y SSIM) of a
restoration function over a paired dataset, with the input's own scores as the baseline."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from vqcnir.inference import padded
from vqcnir.io import to_uint8, write_png
from vqcnir.metrics import psnr, ssim

from .config import RecipeOptions
from .runtime import Runtime, autocast, evaluating


def evaluate_restorer(
    restore: Callable[[torch.Tensor], torch.Tensor],
    dataset: Dataset,
    device: torch.device,
    source: str = "lq",
    max_images: int = 0,
    padding: str = "reflect",
    save_dir: str | None = None,
) -> dict[str, float]:
    """Mean PSNR/SSIM of a restoration function over a paired dataset: ``restore(sample[source])`` against
    ``sample["gt"]``, one image at a time (the training recipes' validation; ``vqcnir-evaluate`` scores files
    with :func:`vqcnir.cli.evaluate.score_pairs`).

    Returns ``{"psnr", "ssim", "count"}`` plus ``"input_psnr"``, ``"input_ssim"`` (the input against the
    target) when ``source`` is ``"lq"``. Images whose size is not a multiple of 8 are padded
    (``padding``, see :func:`vqcnir.inference.padded`). With ``save_dir``, outputs are written there as PNGs
    named after the inputs.
    """
    count = len(dataset) if max_images <= 0 else min(max_images, len(dataset))
    totals = {"psnr": 0.0, "ssim": 0.0, "input_psnr": 0.0, "input_ssim": 0.0}
    for index in range(count):
        sample = dataset[index]
        image = sample[source][None].to(device)
        target = sample["gt"][None].to(device)
        output = padded(restore, image, padding=padding).float().clamp(0, 1)
        totals["psnr"] += float(psnr(output, target)[0])
        totals["ssim"] += float(ssim(output, target)[0])
        if source == "lq":
            totals["input_psnr"] += float(psnr(image, target)[0])
            totals["input_ssim"] += float(ssim(image, target)[0])
        if save_dir is not None:
            name = os.path.splitext(os.path.basename(sample[f"{source}_path"]))[0]
            write_png(os.path.join(save_dir, f"{index:04d}_{name}.png"), to_uint8(output[0]))
    means = {name: value / max(count, 1) for name, value in totals.items()}
    if source != "lq":
        del means["input_psnr"], means["input_ssim"]
    return {**means, "count": float(count)}


def validator(
    dataset: Dataset, runtime: Runtime, options: RecipeOptions, source: str
) -> Callable[..., dict[str, float]]:
    """``validate(model, save_dir=None)`` for :class:`~vqcnir.training.session.TrainingSession`: ``model``
    (eval mode, no gradients, the run's autocast) restores ``sample[source]`` of each validation pair. The
    session passes the generator, or its weight average when ``train.ema_decay`` is on."""

    def validate(model: nn.Module, save_dir: str | None = None) -> dict[str, float]:
        with evaluating(model), autocast(runtime, options.train.mixed_precision):
            return evaluate_restorer(
                lambda image: model(image).image,
                dataset,
                runtime.device,
                source=source,
                max_images=options.datasets.val.max_images,
                padding=options.val.padding,
                save_dir=save_dir,
            )

    return validate
