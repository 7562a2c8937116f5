"""Channel LayerNorm on NCHW tensors, in plain PyTorch (the specification).

Each pixel's C channels are normalised to zero mean and unit variance (biased variance, ``eps`` inside
the square root), then scaled and shifted per channel: the ``LayerNorm2d`` of NAFNet, used throughout
the official VQCNIR model. Computed in float32 (float64 for float64 input), returned in the input dtype.
"""

from __future__ import annotations

import torch

from vqcnir_ops._dtypes import compute_dtype


def layer_norm_2d_ref(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, C, H, W]``; ``weight``/``bias`` ``[C]``.

    Example:
        >>> y = layer_norm_2d_ref(torch.randn(2, 8, 5, 5), torch.ones(8), torch.zeros(8))
    """
    compute = compute_dtype(x.dtype)
    xf = x.to(compute)
    mean = xf.mean(dim=1, keepdim=True)
    var = (xf - mean).pow(2).mean(dim=1, keepdim=True)
    y = (xf - mean) / torch.sqrt(var + eps)
    y = weight.to(compute).view(1, -1, 1, 1) * y + bias.to(compute).view(1, -1, 1, 1)
    return y.to(x.dtype)
