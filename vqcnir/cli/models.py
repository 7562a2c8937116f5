"""Loading a checkpoint for inference and running it on one image of any size."""

from __future__ import annotations

import argparse
import os

import torch
from torch import nn

from vqcnir import inference
from vqcnir.checkpoint import CONFIG_NAME, read_config
from vqcnir.tiling import parse_memory

AUTO_OVERLAP = 32  # overlap of approximate tiles when none is given
OFFICIAL_SUFFIXES = (".pth", ".pt")


def memory_argument(text: str) -> int | str | None:
    """An argparse ``type`` for ``--max-memory``: ``"auto"``, None (``none``: no limit) or bytes (``4GB``)."""
    word = text.strip().lower()
    if word in ("auto", "none"):
        return "auto" if word == "auto" else None
    try:
        return parse_memory(text, "max_memory")
    except ValueError as error:  # parse_memory's message names the Python argument; argparse names the option
        raise argparse.ArgumentTypeError(f"expected a size such as 4GB, 512MiB, auto or none, got {text!r}") from error


def load_model(path: str, device: str | torch.device = "cpu") -> nn.Module:
    """A model in eval mode from our checkpoint folder (``save_pretrained``) or the official ``.pth``.

    Raises FileNotFoundError / ValueError naming ``path`` when it is neither.
    """
    import vqcnir

    if os.path.isdir(path):
        model = vqcnir.load_pretrained(path)
    elif os.path.isfile(path) and path.lower().endswith(OFFICIAL_SUFFIXES):
        model = vqcnir.load_official_checkpoint(path)
    elif os.path.exists(path):
        raise ValueError(
            f"checkpoint {path!r} is neither a folder written by save_pretrained nor an official "
            f"{'/'.join(OFFICIAL_SUFFIXES)} file (e.g. VQCNIR_LOLBlur_G.pth)"
        )
    else:
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return model.to(device).eval()


def check_restorer(path: str) -> None:
    """Refuse a stage-1 VQGAN folder before loading it: it reconstructs through the codebook, it does not
    restore night photos."""
    if not os.path.isfile(os.path.join(path, CONFIG_NAME)):
        return  # an official .pth, or not a checkpoint folder (load_model says which)
    try:
        name, _ = read_config(path)
    except Exception:  # noqa: BLE001  (a damaged config: load_model reports it)
        return
    if name != "VQCNIR":
        raise ValueError(
            f"model {path!r} is a stage-1 {name} (it reconstructs images through its codebook, it does not "
            "restore night photos): give a stage-2 VQCNIR checkpoint, e.g. experiments/vqcnir_demo/best"
        )


def _image_of(output: object) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.image  # VQGANOutput / VQCNIROutput


def restore_tensor(
    model: nn.Module,
    image: torch.Tensor,
    padding: str = "official",
    tile: int | None = None,
    overlap: int = AUTO_OVERLAP,
    *,
    max_memory: int | str | None = None,
    tiling: str = "auto",
    progress: inference.Progress | None = None,
    offload: str | None = None,
) -> torch.Tensor:
    """Restore ``image`` (``[B, 3, H, W]`` or ``[3, H, W]`` in [0, 1]) with ``model``, clamped to [0, 1].

    ``model.restore`` when the model has one (VQCNIR, and a stage-1 VQGAN: its codebook reconstruction),
    else the model's output (a tensor or a tuple with ``.image``) through :func:`vqcnir.inference.restore`.
    ``tile=0`` means whole-image inference; another ``tile`` sets the side of exact tiles (or of
    approximate ones with ``tiling="approximate"``, which alone uses ``overlap``). ``max_memory``,
    ``tiling``, ``progress`` and ``offload`` as in :func:`vqcnir.inference.restore`.
    """
    if tile == 0:
        if tiling not in ("auto", "whole"):
            raise ValueError(f"argument 'tile' of 0 means the whole image, which contradicts tiling={tiling!r}")
        tiling, tile = "whole", None
    options = {"max_memory": max_memory, "tiling": tiling, "tile": tile, "progress": progress, "offload": offload}
    if tiling == "approximate":
        options["overlap"] = overlap
    with torch.inference_mode():
        if hasattr(model, "restore"):
            result = model.restore(image, padding, **options)
        else:

            def run(x: torch.Tensor) -> torch.Tensor:
                return _image_of(model(x))

            result = inference.restore(run, image, padding, module=model, **options)
    return result.clamp(0, 1)
