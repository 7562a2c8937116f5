"""A small saved model for the CLI tests, and the whole-image output the CLIs must reproduce."""

from __future__ import annotations

import numpy as np
import torch

import vqcnir
from vqcnir.checkpoint import load_weights, read_config, save_pretrained
from vqcnir.config import VQCNIRConfig
from vqcnir.inference import padded, tiled
from vqcnir.vqgan import VQGAN


def load_vqgan_dir(directory: str) -> VQGAN:
    """Stand-in for ``vqcnir.load_pretrained`` until the model issue lands it on main (VQGAN only)."""
    name, config = read_config(directory)
    assert name == "VQGAN", name
    return load_weights(VQGAN(config), directory)


def save_tiny_model(directory: str, monkeypatch) -> torch.nn.Module:
    """Save a tiny stage-1 model (the smallest trainable restorer on main) and return it in eval mode."""
    if not hasattr(vqcnir, "load_pretrained"):
        monkeypatch.setattr(vqcnir, "load_pretrained", load_vqgan_dir, raising=False)
    torch.manual_seed(0)
    model = VQGAN(VQCNIRConfig.tiny()).eval()
    save_pretrained(model, directory)
    return model


def whole_image_output(
    model: torch.nn.Module, rgb: np.ndarray, padding: str = "official", tile: int | None = None, overlap: int = 32
) -> np.ndarray:
    """The model's own output for an ``[H, W, 3]`` uint8 image, as 8-bit ``[H, W, 3]``."""
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        if hasattr(model, "restore"):
            out = model.restore(image, padding=padding, tile=tile, overlap=overlap)
        else:

            def run(x):
                return model(x).image

            out = padded(run, image, padding) if tile is None else tiled(run, image, tile, overlap, padding)
    return (out[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
