"""Whole-model speed: VQCNIR with the fused ops (automatic backends) vs with every op on the reference.

    python benchmarks/bench_model.py [--device cpu|cuda] [--quick] [--no-save]

Forward (inference, no grad) and one training step (forward + backward of L1 + quantization loss,
prior frozen) per case. On a GPU: the ``paper`` config on 256 px crops, batch 8. On CPU: the ``tiny``
config on 64 px, batch 4, and the ``paper`` config on one 128 px crop (the 256 px batch-8 step does
not fit a 2-core budget). The baseline is ``reference`` in the same run.
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import Case, parse_args, run  # noqa: E402

from vqcnir import VQCNIR, VQCNIRConfig  # noqa: E402


def cases(device: torch.device, quick: bool) -> list[Case]:
    if device.type == "cuda":
        shapes = [("paper", 8, 256)]
    else:
        shapes = [("tiny", 4, 64)] if quick else [("tiny", 4, 64), ("paper", 1, 128)]

    def make(preset: str, batch: int, size: int):
        def inputs(device: torch.device) -> tuple:
            gen = torch.Generator().manual_seed(0)
            image = torch.rand(batch, 3, size, size, generator=gen).to(device)
            gt_indices = torch.randint(0, VQCNIRConfig.preset(preset).codebook_size, (batch, size // 8, size // 8))
            return preset, image, gt_indices.to(device)

        return inputs

    return [Case(f"{preset} {size}px batch {batch}", make(preset, batch, size)) for preset, batch, size in shapes]


def _model(preset: str, backend: str | None, device: torch.device) -> VQCNIR:
    torch.manual_seed(0)
    model = VQCNIR(VQCNIRConfig.preset(preset), backend=backend).to(device)
    model.freeze_prior()
    return model


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    if args.dtype != torch.float32:  # the model runs in its parameters' dtype; the report would mislabel it
        raise SystemExit(f"bench_model measures float32 models only, got --dtype {args.dtype}")
    device = torch.device(args.device)
    models: dict[tuple[str, str | None], VQCNIR] = {}

    def get(preset: str, backend: str | None) -> VQCNIR:
        if (preset, backend) not in models:
            models[(preset, backend)] = _model(preset, backend, device)
        return models[(preset, backend)]

    def forward(backend: str | None):
        def make(inputs: tuple):
            preset, image, _ = inputs
            model = get(preset, backend).eval()
            return lambda: model.restore(image, padding="reflect")

        return make

    def train_step(backend: str | None):
        def make(inputs: tuple):
            preset, image, gt_indices = inputs
            model = get(preset, backend).train()

            def step() -> None:
                out = model(image, gt_indices=gt_indices)
                loss = (out.image - image).abs().mean() + out.quant_loss
                model.zero_grad(set_to_none=True)
                loss.backward()

            return step

        return make

    for mode, provider in (("forward", forward), ("train step", train_step)):
        providers = {"reference": provider("reference"), "fused (auto)": provider(None)}
        run(f"bench_model_{mode.replace(' ', '_')}", cases(device, args.quick), providers, device, "reference", args)


if __name__ == "__main__":
    main()
