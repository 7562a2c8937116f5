"""Decoder D (the official ``MainDecoder``): decodes the night latent while DBCA fuses decoder G's features.

Levels 8, 4, 2, 1. At level 8, D starts from the deepest (illumination-enhanced) encoder feature: DBCA
attends to G's level-8 feature (``z_quant`` after the post-quantization conv) and warps D, and the warped
feature becomes D. At every finer level: nearest x2 upsampling + 3x3 conv of D, DBCA against G's feature
of that level, with the coarser level's offset feature upsampled x2 (bilinear) and doubled, then a
residual block over ``concat(D, warped)``. The caller adds G's level-1 feature to the result.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vqcnir.blocks import ResBlock
from vqcnir.config import VQCNIRConfig
from vqcnir_ops import DBCA

LEVELS = (8, 4, 2, 1)


class MainDecoder(nn.Module):
    """``forward(x_d, g_features) -> [B, C_1, H, W]``: ``g_features`` maps level -> decoder G feature."""

    def __init__(self, config: VQCNIRConfig, backend: str | None = None) -> None:
        super().__init__()
        channels, heads = config.decoder_channels, config.attention_heads
        self.dbca = nn.ModuleDict()
        self.upsample = nn.ModuleDict()
        self.fuse = nn.ModuleDict()
        for i, level in enumerate(LEVELS):
            previous = channels[i - 1] if i else 0
            self.dbca[str(level)] = DBCA(
                channels[i],
                heads[i],
                offset_groups=config.offset_groups,
                previous_offset_channels=previous,
                norm_groups=config.norm_groups,
                backend=backend,
            )
            if i:
                self.upsample[str(level)] = nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(previous, channels[i], 3, padding=1)
                )
                self.fuse[str(level)] = ResBlock(2 * channels[i], channels[i], config.norm_groups)

    def forward(self, x_d: torch.Tensor, g_features: dict[int, torch.Tensor]) -> torch.Tensor:
        _, x_d, offset = self.dbca["8"](x_d, g_features[8])
        for level in LEVELS[1:]:
            x_d = self.upsample[str(level)](x_d)
            previous = F.interpolate(offset, scale_factor=2, mode="bilinear", align_corners=False) * 2
            x_d, warped, offset = self.dbca[str(level)](x_d, g_features[level], previous)
            x_d = self.fuse[str(level)](torch.cat([x_d, warped], dim=1))
        return x_d
