"""PatchGAN discriminator (pix2pix / taming-transformers ``NLayerDiscriminator`` layout)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from vqcnir_ops.validation import check_tensor

Norm = Literal["batch", "instance", "none"]


class PatchDiscriminator(nn.Module):
    """Classifies overlapping patches as real or fake: one logit per patch.

    Layout: a 4x4 stride-2 conv (``in_channels -> width``) + LeakyReLU(0.2); ``num_layers - 1`` more
    4x4 stride-2 convs that double the width (capped at ``8 * width``) + norm + LeakyReLU; one 4x4
    stride-1 conv + norm + LeakyReLU; a 4x4 stride-1 conv to one channel. All convs pad 1. With the
    defaults (3 layers, width 64) each logit sees a 70 x 70 patch and a 256 px input gives 30 x 30 logits.

    Args:
        in_channels: channels of the images (3).
        width: channels of the first conv (64).
        num_layers: stride-2 convs (3); output size ~ H / 2**num_layers - 2.
        norm: ``"batch"`` (pix2pix), ``"instance"`` or ``"none"``; convs followed by a norm have no bias.
        spectral_norm: wrap every conv in spectral normalisation (usually with ``norm="none"``).

    Input ``[B, in_channels, H, W]`` with H, W >= 3 * 2**num_layers (so the logit map is
    non-empty); output ``[B, 1, H', W']`` raw logits (use with :class:`vqcnir.losses.AdversarialLoss`).

    Example:
        >>> d = PatchDiscriminator(width=16, num_layers=3)
        >>> d(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 1, 6, 6])
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 64,
        num_layers: int = 3,
        norm: Norm = "batch",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        if in_channels < 1 or width < 1 or num_layers < 1:
            raise ValueError(
                f"in_channels, width and num_layers must be >= 1, got {in_channels}, {width}, {num_layers}"
            )
        if norm not in ("batch", "instance", "none"):
            raise ValueError(f"argument 'norm' must be 'batch', 'instance' or 'none', got {norm!r}")
        self.in_channels, self.num_layers = in_channels, num_layers
        self.norm, self.spectral_norm = norm, spectral_norm

        def conv(c_in: int, c_out: int, stride: int, bias: bool) -> nn.Module:
            return nn.Conv2d(c_in, c_out, kernel_size=4, stride=stride, padding=1, bias=bias)

        def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            layers = [conv(c_in, c_out, stride, bias=norm == "none")]
            if norm == "batch":
                layers.append(nn.BatchNorm2d(c_out))
            elif norm == "instance":
                layers.append(nn.InstanceNorm2d(c_out, affine=True))
            return layers + [nn.LeakyReLU(0.2)]

        layers: list[nn.Module] = [conv(in_channels, width, 2, bias=True), nn.LeakyReLU(0.2)]
        channels = width
        for n in range(1, num_layers):
            out = width * min(2**n, 8)
            layers += block(channels, out, stride=2)
            channels = out
        out = width * min(2**num_layers, 8)
        layers += block(channels, out, stride=1)
        layers.append(conv(out, 1, 1, bias=True))
        self.main = nn.Sequential(*layers)
        self._init_weights()
        if spectral_norm:  # wrapped after initialisation, so its power iteration starts from the final weights
            for module in self.main:
                if isinstance(module, nn.Conv2d):
                    _spectral_norm(module)

    def _init_weights(self) -> None:
        """pix2pix initialisation: conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d | nn.InstanceNorm2d) and module.affine:
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, ndim=4)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"argument 'x' must have {self.in_channels} channels, got shape {tuple(x.shape)}")
        min_size = 3 * 2**self.num_layers
        if min(x.shape[-2:]) < min_size:
            raise ValueError(
                f"argument 'x' must be at least {min_size} x {min_size} for {self.num_layers} layers, "
                f"got shape {tuple(x.shape)}"
            )
        return self.main(x)

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}, norm={self.norm!r}, spectral_norm={self.spectral_norm}"
