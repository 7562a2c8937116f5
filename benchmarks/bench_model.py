"""Whole-model speed: VQCNIR with the fused ops vs what a user would otherwise run, side by side in one run.

    python benchmarks/bench_model.py [--device cpu|cuda] [--preset NAME] [--size PX] [--batch B] [--threads T]
                                     [--quick] [--no-compile] [--no-save] [--json-out FILE]

Forward (inference mode) and one training step (forward + backward of an L1 loss, prior frozen) per case.
Providers, each on the same input:

- ``official`` (the baseline): the official op composition, i.e. the official network's forward
  (``tests/model/official_structure.py``: eager TWAM with its two softmaxes, naive matmul + argmin
  lookup with the official straight-through estimator, eager IMAC curve loops) with torchvision's
  ``deform_conv2d`` when torchvision is installed, else our plain-PyTorch reference deformable convolution;
- ``official+compile``: that network under ``torch.compile`` (inductor): the reference model compiled;
- ``reference``: our model with every op on its reference backend;
- ``fused (auto)``: our model with the automatic backends (the C++ kernels on CPU);
- ``fused+compile``: the fused model under ``torch.compile(fullgraph=True)`` (the fused ops are custom
  ops, so a graph break is an error here, not a silent fallback).

``--preset`` takes any ``VQCNIRConfig.preset`` name (one case: ``--size`` px, ``--batch`` crops). Without
it: on a GPU the ``paper`` preset on 256 px crops, batch 8; on CPU the ``tiny`` preset on 64 px, batch 4,
and ``paper`` on one 128 px crop. Training step: ``loss = |out - image|.mean()`` (+ our quantizer's loss
for ours, which the official network has no term for), ``zero_grad`` and ``backward``; the official
network freezes the same prior (codebook, post-quantization conv, decoder G, RGB conv) as ours.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _harness import Case, parse_args, run  # noqa: E402

from tests.model import official_structure  # noqa: E402
from vqcnir import VQCNIR, VQCNIRConfig  # noqa: E402

# The official network's prior, frozen in stage 2 like vqcnir.model.PRIOR_MODULES.
OFFICIAL_PRIOR = ("quantize_group", "after_quant_group", "decoder_group", "out_conv")


def _use_torchvision_deform() -> bool:
    """Run the official network's DCN through torchvision's kernel when it is installed (never required)."""
    if importlib.util.find_spec("torchvision") is None:
        return False
    from torchvision.ops import deform_conv2d  # same signature as deform_conv2d_ref

    official_structure.deform_conv2d_ref = deform_conv2d
    return True


def cases(device: torch.device, quick: bool, preset: str | None, size: int, batch: int) -> list[Case]:
    if preset is not None:
        shapes = [(preset, batch, size)]
    elif device.type == "cuda":
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


def _ours(preset: str, backend: str | None, device: torch.device) -> VQCNIR:
    torch.manual_seed(0)
    model = VQCNIR(VQCNIRConfig.preset(preset), backend=backend).to(device)
    model.freeze_prior()
    return model


def _official(preset: str, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    model = official_structure.OfficialVQCNIR(VQCNIRConfig.preset(preset)).to(device)
    for name in OFFICIAL_PRIOR:
        getattr(model, name).requires_grad_(False)
    return model


def main() -> None:
    def add_arguments(parser) -> None:  # noqa: ANN001
        parser.add_argument("--preset", default=None, help="a VQCNIRConfig.preset name: one case of that model")
        parser.add_argument("--size", type=int, default=64, help="crop size with --preset (default 64)")
        parser.add_argument("--batch", type=int, default=4, help="crops per batch with --preset (default 4)")

    args = parse_args(__doc__.splitlines()[0], add_arguments)
    if args.dtype != torch.float32:  # the model runs in its parameters' dtype; the report would mislabel it
        raise SystemExit(f"bench_model measures float32 models only, got --dtype {args.dtype}")
    if args.preset is not None:
        try:
            VQCNIRConfig.preset(args.preset)
        except ValueError as error:
            raise SystemExit(f"--preset: {error}") from None
    if args.size % 8 or args.size < 8 or args.batch < 1:
        raise SystemExit(f"--size must be a positive multiple of 8 and --batch >= 1, got {args.size}, {args.batch}")
    device = torch.device(args.device)
    torchvision_dcn = _use_torchvision_deform()
    print(f"official composition: deformable convolution by {'torchvision' if torchvision_dcn else 'our reference'}")
    torch._dynamo.config.recompile_limit = 64  # one graph per case and mode; never a silent eager fallback
    models: dict[tuple[str, str], torch.nn.Module] = {}

    def get(preset: str, provider: str) -> torch.nn.Module:
        if (preset, provider) not in models:
            if provider.startswith("official"):
                model = _official(preset, device)
            else:
                model = _ours(preset, "reference" if provider == "reference" else None, device)
            models[(preset, provider)] = model
        return models[(preset, provider)]

    def runner(provider: str, train: bool):
        official = provider.startswith("official")
        compiled = provider.endswith("+compile")

        def make(inputs: tuple):
            preset, image, gt_indices = inputs
            model = get(preset, provider).train(train)
            if official:
                call = model
            else:
                call = lambda x: model(x, gt_indices=gt_indices if train else None)  # noqa: E731
            if compiled:
                call = torch.compile(call, fullgraph=not official, dynamic=False)

            def forward() -> None:
                with torch.inference_mode():
                    call(image)

            def step() -> None:
                out = call(image)
                loss = (out - image).abs().mean() if official else (out.image - image).abs().mean() + out.quant_loss
                model.zero_grad(set_to_none=True)
                loss.backward()

            return step if train else forward

        return make

    names = ["official", "official+compile", "reference", "fused (auto)", "fused+compile"]
    if args.no_compile:
        names = [name for name in names if not name.endswith("+compile")]
    for mode, train in (("forward", False), ("train step", True)):
        providers = {name: runner(name, train) for name in names}
        chosen = cases(device, args.quick, args.preset, args.size, args.batch)
        run(f"bench_model_{mode.replace(' ', '_')}", chosen, providers, device, "official", args)


if __name__ == "__main__":
    main()
