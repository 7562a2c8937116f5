"""An independent re-implementation of the official VQCNIR network, with the official parameter names.

Written for the tests from the authors' published architecture (AlexZou14/VQCNIR, models/vqlol_arch.py
and models/main_decode.py) in plain PyTorch: the module tree reproduces the official state-dict keys
and shapes, and the forward pass follows the official code path (per-split IMAC loops, two softmaxes in
TWAM, chunked DCN offsets, ...), sharing nothing with ``vqcnir``'s model code. A randomly initialised
instance gives a state dict in the official format; loading it with ``vqcnir.load_official_checkpoint``
must give a model computing the same function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tests.modules.official_aiem import OfficialAIEM as AIEM
from vqcnir_ops.deform.reference import deform_conv2d_ref


def _gn(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6, affine=True)


class LayerNorm2d(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        return self.weight.view(1, -1, 1, 1) * (x - mu) / (var + 1e-6).sqrt() + self.bias.view(1, -1, 1, 1)


class NormLayer(nn.Module):  # FeMaSR's wrapper: keys "<i>.norm.weight"
    def __init__(self, c: int, groups: int) -> None:
        super().__init__()
        self.norm = _gn(c, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class ResBlock(nn.Module):  # keys conv.{0.norm,2,3.norm,5}
    def __init__(self, c: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(NormLayer(c, groups), nn.SiLU(), nn.Conv2d(c, c, 3, 1, 1),
                                  NormLayer(c, groups), nn.SiLU(), nn.Conv2d(c, c, 3, 1, 1))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + x


class TWAM(nn.Module):
    def __init__(self, c: int, heads: int) -> None:
        super().__init__()
        self.scale, self.num_heads = nn.Parameter(torch.ones(heads, 1, 1)), heads
        self.norm_d, self.norm_g = LayerNorm2d(c), LayerNorm2d(c)
        self.d_proj1, self.g_proj1 = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.d_proj2, self.g_proj2 = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1)

    def forward(self, x_d: torch.Tensor, x_g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = x_d.shape
        heads = lambda t: t.reshape(b, self.num_heads, c // self.num_heads, h * w)  # noqa: E731
        q_d = F.normalize(heads(self.d_proj1(self.norm_d(x_d))), dim=-1)
        q_g = F.normalize(heads(self.g_proj1(self.norm_g(x_g))), dim=-1)
        v_d, v_g = heads(self.d_proj2(x_d)), heads(self.g_proj2(x_g))
        attention = (q_d @ q_g.transpose(-2, -1)) * self.scale
        f_g2d = (torch.softmax(attention, dim=-1) @ v_g).reshape(b, c, h, w)
        f_d2g = (torch.softmax(attention, dim=-1) @ v_d).reshape(b, c, h, w)
        return x_d + f_g2d * self.beta, x_g + f_d2g * self.gamma


class DCNv2Pack(nn.Module):
    def __init__(self, c: int, groups: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c, c, 3, 3) * 0.05)
        self.bias = nn.Parameter(torch.randn(c) * 0.05)
        self.conv_offset = nn.Conv2d(c, groups * 3 * 9, 3, 1, 1)

    def forward(self, x: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        o1, o2, mask = torch.chunk(self.conv_offset(feat), 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)
        return deform_conv2d_ref(x, offset, self.weight, self.bias, stride=(1, 1), padding=(1, 1), dilation=(1, 1),
                                 mask=torch.sigmoid(mask))  # fmt: skip


class TextureWarpingModule(nn.Module):
    def __init__(self, c: int, groups: int, offset_groups: int, prev: int) -> None:
        super().__init__()
        self.offset_conv1 = nn.Sequential(nn.Conv2d(2 * c, c, 1), _gn(c, groups), nn.SiLU(),
                                          nn.Conv2d(c, c, 7, padding=3, groups=c), _gn(c, groups), nn.SiLU(),
                                          nn.Conv2d(c, c, 1))  # fmt: skip
        self.offset_conv2 = nn.Sequential(nn.Conv2d(c + prev, c, 3, 1, 1), _gn(c, groups), nn.SiLU())
        self.dcn = DCNv2Pack(c, offset_groups)

    def forward(self, x_main: torch.Tensor, inpfeat: torch.Tensor, previous_offset: torch.Tensor | None = None):
        offset = self.offset_conv1(torch.cat([inpfeat, x_main], dim=1))
        if previous_offset is not None:
            offset = torch.cat([offset, previous_offset], dim=1)
        offset = self.offset_conv2(offset)
        return self.dcn(x_main, offset), offset


class ResnetBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, groups: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _gn(c_in, groups), nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.norm2, self.conv2 = _gn(c_out, groups), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.residual_func = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        return h + self.residual_func(x)


class MainDecoder(nn.Module):
    def __init__(self, channels: tuple[int, ...], heads: tuple[int, ...], groups: int, offset_groups: int) -> None:
        super().__init__()  # channels/heads per level 8, 4, 2, 1
        self.levels = [8, 4, 2, 1]
        self.decoder_dict, self.pre_upsample_dict = nn.ModuleDict(), nn.ModuleDict()
        self.align_func_dict, self.attn = nn.ModuleDict(), nn.ModuleDict()
        for i, level in enumerate(self.levels):
            c, prev = channels[i], (channels[i - 1] if i else 0)
            name = f"Level_{level}"
            if i:
                self.pre_upsample_dict[name] = nn.Sequential(nn.UpsamplingNearest2d(scale_factor=2),
                                                             nn.Conv2d(prev, c, 3, padding=1))  # fmt: skip
                self.decoder_dict[name] = ResnetBlock(2 * c, c, groups)
            self.attn[name] = TWAM(c, heads[i])
            self.align_func_dict[name] = TextureWarpingModule(c, groups, offset_groups, prev)

    def forward(self, dec: dict[str, torch.Tensor], x_d: torch.Tensor) -> torch.Tensor:
        x_d, x_g = self.attn["Level_8"](x_d, dec["z_quant"])
        x_d, offset = self.align_func_dict["Level_8"](x_d, x_g)
        for level in self.levels[1:]:
            name = f"Level_{level}"
            x_d = self.pre_upsample_dict[name](x_d)
            up = F.interpolate(offset, scale_factor=2, align_corners=False, mode="bilinear") * 2
            x_d, x_g = self.attn[name](x_d, dec[name])
            warp, offset = self.align_func_dict[name](x_d, x_g, previous_offset=up)
            x_d = self.decoder_dict[name](torch.cat([x_d, warp], dim=1))
        return dec["Level_1"] + x_d


class OfficialVQCNIR(nn.Module):
    """The official VQLOL in its stage-2 (LQ) configuration, with the official parameter names."""

    def __init__(self, config) -> None:  # noqa: ANN001  (a vqcnir.VQCNIRConfig)
        super().__init__()
        enc, dec, g = config.encoder_channels, config.decoder_channels, config.norm_groups
        encoder = nn.Module()
        encoder.in_conv = nn.Conv2d(config.in_channels, enc[0], 4, padding=1)
        encoder.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(enc[i], enc[i + 1], 3, stride=2, padding=1), ResBlock(enc[i + 1], g),
                          ResBlock(enc[i + 1], g)) for i in range(3))  # fmt: skip
        enhance = nn.Module()
        enhance.blks = nn.ModuleList(
            AIEM(enc[-1], config.aiem_split, config.aiem_curves) for _ in range(config.num_aiem)
        )
        encoder.blocks.append(enhance)
        self.multiscale_encoder = encoder
        self.main_decode = MainDecoder(dec, config.attention_heads, g, config.offset_groups)
        self.decoder_group = nn.ModuleList()
        for i in range(3):
            block = nn.Module()
            block.block = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(dec[i], dec[i + 1], 3, 1, 1),
                                        ResBlock(dec[i + 1], g), ResBlock(dec[i + 1], g))  # fmt: skip
            self.decoder_group.append(block)
        self.out_conv = nn.Conv2d(dec[-1], 3, 3, 1, 1)
        quantize = nn.Module()
        quantize.embedding = nn.Embedding(config.codebook_size, config.code_dim)
        self.quantize_group = nn.ModuleList([quantize])
        self.before_quant_group = nn.ModuleList([nn.Conv2d(enc[-1], config.code_dim, 1)])
        after = nn.Module()
        after.conv = nn.Conv2d(config.code_dim, dec[0], 3, 1, 1)
        self.after_quant_group = nn.ModuleList([after])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        enc = self.multiscale_encoder
        x = enc.in_conv(image)
        feats = []
        for block in enc.blocks[:3]:
            x = block(x)
            feats.append(x)
        for blk in enc.blocks[3].blks:
            x = blk(x)
        z = self.before_quant_group[0](x).permute(0, 2, 3, 1)
        book = self.quantize_group[0].embedding.weight
        flat = z.reshape(-1, book.shape[1])
        d = (flat**2).sum(1, keepdim=True) + (book**2).sum(1) - 2 * flat @ book.t()
        z_q = book[d.argmin(1)].view(z.shape)
        # The official quantizer's straight-through estimator (vqlol_arch.py, "preserve gradients"): in a stage-2
        # training step the loss's gradient reaches the encoder through the frozen decoder.
        z_q = (z + (z_q - z).detach()).permute(0, 3, 1, 2)
        h = self.after_quant_group[0].conv(z_q)
        dec = {"z_quant": h}
        for i, block in enumerate(self.decoder_group):
            h = block.block(h)
            dec[f"Level_{2 ** (2 - i)}"] = h
        return self.out_conv(self.main_decode(dec, x))
