"""Loading a checkpoint for inference and running it on one image of any size."""

from __future__ import annotations

import os

import torch
from torch import nn

from vqcnir.inference import PADDINGS, padded, tiled

# Images with more pixels than this are restored tile by tile unless a tile size is given.
AUTO_TILE_PIXELS = 1600 * 1600
AUTO_TILE, AUTO_OVERLAP = 512, 32
OFFICIAL_SUFFIXES = (".pth", ".pt")


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


def _image_of(output: object) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.image  # VQGANOutput / VQCNIROutput


def restore_tensor(
    model: nn.Module,
    image: torch.Tensor,
    padding: str = "official",
    tile: int | None = None,
    overlap: int = AUTO_OVERLAP,
    auto_tile_pixels: int = AUTO_TILE_PIXELS,
) -> torch.Tensor:
    """Restore ``[1, 3, H, W]`` in [0, 1] with ``model`` (``model.restore`` when it has one), clamped to [0, 1].

    ``tile=None`` restores the whole image, or tiles of 512 px when ``H * W > auto_tile_pixels``;
    ``tile=0`` always restores the whole image.
    """
    if padding not in PADDINGS:
        raise ValueError(f"argument 'padding' must be one of {PADDINGS}, got {padding!r}")
    if tile is None and image.shape[-2] * image.shape[-1] > auto_tile_pixels:
        tile = AUTO_TILE
    tile = tile or None
    with torch.inference_mode():
        if hasattr(model, "restore"):
            result = model.restore(image, padding=padding, tile=tile, overlap=overlap)
        else:  # a stage-1 VQGAN: reconstruction through the codebook

            def run(x: torch.Tensor) -> torch.Tensor:
                return _image_of(model(x))

            result = padded(run, image, padding) if tile is None else tiled(run, image, tile, overlap, padding)
    return result.clamp(0, 1)
