"""Official VQCNIR parts written out for the tests from the authors' models/main_decode.py: state dicts with
the official key names and shapes (random values) and the official forward passes, for TWAM and the
TextureWarpingModule (the AIEM is tests/modules/official_aiem.py, the whole network official_structure.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vqcnir_ops import bidirectional_channel_attention_ref, deform_conv2d_ref
from vqcnir_ops.norm import layer_norm_2d_ref


def official_twam_state_dict(
    channels: int, heads: int, gen: torch.Generator, prefix: str = ""
) -> dict[str, torch.Tensor]:
    """Random weights under the official TWAM's names and shapes (models/main_decode.py)."""
    sd = {"scale": 0.5 + torch.rand(heads, 1, 1, generator=gen)}
    for name in ("beta", "gamma"):
        sd[name] = torch.randn(1, channels, 1, 1, generator=gen)
    for name in ("norm_d", "norm_g"):
        sd[f"{name}.weight"] = 1 + 0.1 * torch.randn(channels, generator=gen)
        sd[f"{name}.bias"] = 0.1 * torch.randn(channels, generator=gen)
    for name in ("d_proj1", "g_proj1", "d_proj2", "g_proj2"):
        sd[f"{name}.weight"] = torch.randn(channels, channels, 1, 1, generator=gen) / channels**0.5
        sd[f"{name}.bias"] = 0.1 * torch.randn(channels, generator=gen)
    return {prefix + key: value for key, value in sd.items()}


def official_twam_forward(
    sd: dict[str, torch.Tensor], x_d: torch.Tensor, x_g: torch.Tensor, heads: int, prefix: str = ""
):
    """TWAM.forward written out in float64 from the official weights under ``prefix`` (LayerNorm2d eps 1e-6)."""
    w = {key[len(prefix) :]: value.double() for key, value in sd.items() if key.startswith(prefix)}
    b, c, h, wd = x_d.shape

    def conv(name, x):
        return F.conv2d(x, w[f"{name}.weight"], w[f"{name}.bias"])

    def heads_view(x):
        return x.reshape(b, heads, c // heads, h * wd)

    q_d = conv("d_proj1", layer_norm_2d_ref(x_d, w["norm_d.weight"], w["norm_d.bias"]))
    q_g = conv("g_proj1", layer_norm_2d_ref(x_g, w["norm_g.weight"], w["norm_g.bias"]))
    f_g2d, f_d2g = (
        y.reshape(b, c, h, wd)
        for y in bidirectional_channel_attention_ref(
            heads_view(q_d),
            heads_view(q_g),
            heads_view(conv("d_proj2", x_d)),
            heads_view(conv("g_proj2", x_g)),
            w["scale"].reshape(heads),
        )[::-1]
    )
    return x_d + f_g2d * w["beta"], x_g + f_d2g * w["gamma"]


def official_texture_warp_state_dict(
    channels: int, previous: int, prefix: str, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """A state dict with the official TextureWarpingModule's key names and shapes (written out by hand
    from VQCNIR's models/main_decode.py), filled with random values."""
    c = channels
    shapes = {
        "offset_conv1.0.weight": (c, 2 * c, 1, 1),
        "offset_conv1.0.bias": (c,),
        "offset_conv1.1.weight": (c,),
        "offset_conv1.1.bias": (c,),
        "offset_conv1.3.weight": (c, 1, 7, 7),
        "offset_conv1.3.bias": (c,),
        "offset_conv1.4.weight": (c,),
        "offset_conv1.4.bias": (c,),
        "offset_conv1.6.weight": (c, c, 1, 1),
        "offset_conv1.6.bias": (c,),
        "offset_conv2.0.weight": (c, c + previous, 3, 3),
        "offset_conv2.0.bias": (c,),
        "offset_conv2.1.weight": (c,),
        "offset_conv2.1.bias": (c,),
        "dcn.weight": (c, c, 3, 3),
        "dcn.bias": (c,),
        "dcn.conv_offset.weight": (4 * 3 * 9, c, 3, 3),
        "dcn.conv_offset.bias": (4 * 3 * 9,),
    }
    return {prefix + k: 0.2 * torch.randn(s, generator=gen, dtype=torch.float64).float() for k, s in shapes.items()}


def official_texture_warp_forward(sd: dict[str, torch.Tensor], x_main, x_cond, previous):  # noqa: ANN001, ANN202
    """The official block's forward, written with functional ops on its state dict."""

    def gn(t, name):  # noqa: ANN001, ANN202
        return F.silu(F.group_norm(t, 32, sd[name + ".weight"], sd[name + ".bias"], eps=1e-6))

    c = x_main.shape[1]
    h = F.conv2d(torch.cat([x_cond, x_main], 1), sd["offset_conv1.0.weight"], sd["offset_conv1.0.bias"])
    h = gn(h, "offset_conv1.1")
    h = gn(F.conv2d(h, sd["offset_conv1.3.weight"], sd["offset_conv1.3.bias"], padding=3, groups=c), "offset_conv1.4")
    h = F.conv2d(h, sd["offset_conv1.6.weight"], sd["offset_conv1.6.bias"])
    h = torch.cat([h, previous], 1) if previous is not None else h
    feat = gn(F.conv2d(h, sd["offset_conv2.0.weight"], sd["offset_conv2.0.bias"], padding=1), "offset_conv2.1")
    out = F.conv2d(feat, sd["dcn.conv_offset.weight"], sd["dcn.conv_offset.bias"], padding=1)
    o1, o2, mask = torch.chunk(out, 3, dim=1)
    warped = deform_conv2d_ref(
        x_main, torch.cat([o1, o2], 1), sd["dcn.weight"], sd["dcn.bias"], (1, 1), (1, 1), (1, 1), torch.sigmoid(mask)
    )
    return warped, feat
