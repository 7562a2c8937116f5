"""Stage 2: VQCNIR, the night-image restorer built on the stage-1 prior (paper Fig. 2).

Encoder E (+ AIEM stack at 1/8) -> 1x1 conv -> nearest code in the frozen codebook -> 3x3 conv ->
frozen decoder G (features at levels 8, 4, 2, 1); decoder D decodes the night latent with DBCA blocks
fusing G's features; output = RGB conv of (G's level-1 feature + D).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from vqcnir.config import VQCNIRConfig
from vqcnir.decoder_d import MainDecoder
from vqcnir.vqgan import VQGAN
from vqcnir_ops import AIEM

# What stage 2 keeps frozen from stage 1: the high-quality prior (by module, never by name substring).
PRIOR_MODULES = ("quantizer", "post_quant_conv", "decoder_g", "to_rgb")


class VQCNIROutput(NamedTuple):
    image: torch.Tensor  # [B, 3, H, W] restored (not clamped)
    quant_loss: torch.Tensor  # code alignment with gt_indices, else codebook + beta * commitment
    indices: torch.Tensor  # [B, H/8, W/8]
    latent: torch.Tensor  # [B, code_dim, H/8, W/8] the night latent z


class VQCNIR(VQGAN):
    """The stage-2 model. Same attribute names as :class:`VQGAN`, plus ``encoder.enhance`` (AIEM blocks)
    and ``decoder_d``. ``backend`` forces the ``vqcnir_ops`` backend of every op (default: automatic).

    Example:
        >>> model = VQCNIR(VQCNIRConfig.tiny()).eval()
        >>> model.restore(torch.rand(1, 3, 50, 70)).shape
        torch.Size([1, 3, 50, 70])
    """

    def __init__(self, config: VQCNIRConfig, backend: str | None = None) -> None:
        channels = config.encoder_channels[-1]
        enhance = nn.Sequential(
            *(AIEM(channels, config.aiem_split, config.aiem_curves, backend=backend) for _ in range(config.num_aiem))
        )
        super().__init__(config, enhance=enhance, backend=backend)
        self.decoder_d = MainDecoder(config, backend=backend)

    def forward(self, lq: torch.Tensor, gt_indices: torch.Tensor | None = None) -> VQCNIROutput:  # type: ignore[override]
        features, latent = self.encode(lq)
        quant = self.quantizer(latent, gt_indices)
        g_features = self.decoder_g(self.post_quant_conv(quant.quantized))
        d = self.decoder_d(features[-1], g_features)
        return VQCNIROutput(self.to_rgb(g_features[1] + d), quant.loss, quant.indices, latent)

    def load_stage1(self, vqgan: VQGAN) -> None:
        """Copy a trained stage-1 model's encoder (all but ``enhance``), quantizer and decoder G."""
        if not isinstance(vqgan, VQGAN) or isinstance(vqgan, VQCNIR):
            raise TypeError(f"argument 'vqgan' must be a stage-1 VQGAN, got {type(vqgan).__name__}")
        if vqgan.config != self.config:
            raise ValueError("argument 'vqgan' was built with another config than this model")
        missing, unexpected = self.load_state_dict(vqgan.state_dict(), strict=False)
        stage2_only = ("encoder.enhance.", "decoder_d.")
        bad = [k for k in missing if not k.startswith(stage2_only)]
        if bad or unexpected:
            raise RuntimeError(f"stage-1 weights do not fit: missing {bad}, unexpected {unexpected}")

    def freeze_prior(self) -> list[str]:
        """Freeze the codebook, the post-quantization conv, decoder G and the RGB conv; returns their
        parameter names. Build the optimizer after this call."""
        frozen = []
        for module_name in PRIOR_MODULES:
            for name, param in getattr(self, module_name).named_parameters():
                param.requires_grad_(False)
                frozen.append(f"{module_name}.{name}")
        self.quantizer.frozen = True
        return frozen
