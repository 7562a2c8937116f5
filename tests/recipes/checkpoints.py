"""A small saved model for the CLI tests, and the whole-image output the CLIs must reproduce."""

from __future__ import annotations

import numpy as np
import torch

from vqcnir import VQCNIR, VQCNIRConfig, save_pretrained
from vqcnir.io import to_uint8, to_uint16


def save_tiny_model(directory: str, monkeypatch=None) -> torch.nn.Module:
    """Save a tiny VQCNIR (residual scales woken up so every branch matters) and return it in eval mode."""
    torch.manual_seed(0)
    model = VQCNIR(VQCNIRConfig.tiny())
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("beta", "gamma", "gamma_d", "gamma_g")):
                param.normal_(0, 0.3)
    model.eval()
    save_pretrained(model, directory)
    return model


def whole_image_output(
    model: torch.nn.Module, rgb: np.ndarray, padding: str = "official", bits: int = 8, **options
) -> np.ndarray:
    """The model's own output for an ``[H, W, 3]`` uint8 image, as ``[H, W, 3]`` of ``bits`` (8 or 16)
    (``options``: of ``model.restore``; default: the whole image)."""
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    out = model.restore(image, padding=padding, **({"tiling": "whole"} | options))
    return to_uint8(out[0]) if bits == 8 else to_uint16(out[0])
