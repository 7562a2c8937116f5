"""Tiny models for the tests: random weights with every branch awake, a saved one for the CLI tests, and the
whole-image output the CLIs must reproduce."""

from __future__ import annotations

import numpy as np
import torch

from vqcnir import VQCNIR, VQCNIRConfig, save_pretrained
from vqcnir.io import to_uint8, to_uint16


def awake(model: torch.nn.Module, offset_std: float = 0.05, seed: int = 0) -> torch.nn.Module:
    """``model`` in eval mode with every branch active: the zero-initialised residual scales (AIEM's
    beta/gamma, DBCA's gammas) drawn from N(0, 0.3), deformable offsets of a fraction of a pixel."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("beta", "gamma", "gamma_d", "gamma_g")):
                param.normal_(0, 0.3)
            elif "conv_offset" in name:
                param.normal_(0, offset_std)
    return model.eval()


def save_tiny_model(directory: str) -> torch.nn.Module:
    """Save a tiny VQCNIR (every branch awake) and return it in eval mode."""
    torch.manual_seed(0)
    model = awake(VQCNIR(VQCNIRConfig.tiny()))
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
