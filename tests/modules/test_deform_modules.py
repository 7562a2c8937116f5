"""DeformConv2d, DeformConv2dPack and TextureWarp: behaviour, official key mapping, torch.compile."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vqcnir_ops import (
    DeformConv2d,
    DeformConv2dPack,
    TextureWarp,
    deform_conv2d_ref,
    texture_warp_state_dict_from_official,
)


def test_deform_conv2d_module_matches_functional_reference():
    torch.manual_seed(0)
    conv = DeformConv2d(4, 6, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
    x = torch.randn(2, 4, 9, 8)
    offset, mask = torch.randn(2, 2 * 6, 5, 8), torch.rand(2, 6, 5, 8)
    expected = deform_conv2d_ref(x, offset, conv.weight, conv.bias, (2, 1), (1, 1), (1, 2), mask)
    torch.testing.assert_close(conv(x, offset, mask), expected, rtol=1e-5, atol=1e-5)
    assert conv.weight.shape == (6, 2, 3, 2) and conv.bias.shape == (6,)


def test_pack_starts_as_a_plain_convolution_and_learns_offsets():
    torch.manual_seed(1)
    dcn = DeformConv2dPack(8, 4, 3, padding=1, offset_groups=4)
    x = torch.randn(2, 8, 7, 6)
    plain = F.conv2d(x, 0.5 * dcn.weight, dcn.bias, padding=1)  # mask = sigmoid(0) on every tap
    torch.testing.assert_close(dcn(x), plain, rtol=1e-5, atol=1e-5)
    assert dcn.conv_offset.out_channels == 3 * 4 * 9
    dcn(x).square().sum().backward()
    assert dcn.conv_offset.weight.grad.abs().sum() > 0  # offsets and mask receive gradient


def test_pack_uses_conditioning_feature():
    torch.manual_seed(2)
    dcn = DeformConv2dPack(4, 4, 3, padding=1, offset_groups=2, cond_channels=5)
    torch.nn.init.normal_(dcn.conv_offset.weight, std=0.3)
    x, cond = torch.randn(1, 4, 6, 6), torch.randn(1, 5, 6, 6)
    predicted = dcn.conv_offset(cond)
    offset, mask = predicted[:, :36], torch.sigmoid(predicted[:, 36:])
    expected = deform_conv2d_ref(x, offset, dcn.weight, dcn.bias, (1, 1), (1, 1), (1, 1), mask)
    torch.testing.assert_close(dcn(x, cond), expected, rtol=1e-5, atol=1e-5)


def _official_block(channels: int, previous: int, prefix: str, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A state dict with the official TextureWarpingModule's key names and shapes (written out by hand
    from VQCNIR's models/main_decode.py), filled with random values."""
    c = channels
    shapes = {
        "offset_conv1.0.weight": (c, 2 * c, 1, 1), "offset_conv1.0.bias": (c,),
        "offset_conv1.1.weight": (c,), "offset_conv1.1.bias": (c,),
        "offset_conv1.3.weight": (c, 1, 7, 7), "offset_conv1.3.bias": (c,),
        "offset_conv1.4.weight": (c,), "offset_conv1.4.bias": (c,),
        "offset_conv1.6.weight": (c, c, 1, 1), "offset_conv1.6.bias": (c,),
        "offset_conv2.0.weight": (c, c + previous, 3, 3), "offset_conv2.0.bias": (c,),
        "offset_conv2.1.weight": (c,), "offset_conv2.1.bias": (c,),
        "dcn.weight": (c, c, 3, 3), "dcn.bias": (c,),
        "dcn.conv_offset.weight": (4 * 3 * 9, c, 3, 3), "dcn.conv_offset.bias": (4 * 3 * 9,),
    }  # fmt: skip
    return {prefix + k: 0.2 * torch.randn(s, generator=gen, dtype=torch.float64).float() for k, s in shapes.items()}


def _official_forward(sd: dict[str, torch.Tensor], x_main, x_cond, previous):  # noqa: ANN001, ANN202
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
    warped = deform_conv2d_ref(x_main, torch.cat([o1, o2], 1), sd["dcn.weight"], sd["dcn.bias"], (1, 1), (1, 1),
                               (1, 1), torch.sigmoid(mask))  # fmt: skip
    return warped, feat


@pytest.mark.parametrize("previous", [0, 128])
def test_texture_warp_loads_official_weights(previous):
    gen = torch.Generator().manual_seed(3)
    prefix = "main_decoder.align_func_dict.Level_2."
    official = _official_block(64, previous, prefix, gen)
    official |= _official_block(64, 0, "main_decoder.align_func_dict.Level_8.", gen)  # another level: ignored
    official["main_decoder.attn.Level_2.scale"] = torch.ones(1, 1, 1)  # not part of the block: ignored
    warp = TextureWarp(64, previous_offset_channels=previous)
    mapped = texture_warp_state_dict_from_official(official, 2)
    warp.load_state_dict(mapped, strict=True)
    assert texture_warp_state_dict_from_official(official, "Level_2").keys() == mapped.keys()

    x_main, x_cond = torch.randn(2, 64, 10, 9, generator=gen), torch.randn(2, 64, 10, 9, generator=gen)
    prev = torch.randn(2, previous, 10, 9, generator=gen) if previous else None
    warped, feat = warp(x_main, x_cond, prev)
    block = {k[len(prefix) :]: v for k, v in official.items() if k.startswith(prefix)}
    exp_warped, exp_feat = _official_forward(block, x_main, x_cond, prev)
    torch.testing.assert_close(feat, exp_feat, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(warped, exp_warped, rtol=1e-4, atol=1e-4)


def test_official_mapping_rejects_foreign_state_dict():
    with pytest.raises(KeyError, match="align_func_dict.Level_4."):
        texture_warp_state_dict_from_official({"encoder.conv.weight": torch.zeros(1)}, 4)


def test_texture_warp_checks_previous_offset():
    warp = TextureWarp(32, previous_offset_channels=32)
    x = torch.randn(1, 32, 6, 6)
    with pytest.raises(ValueError, match="'previous_offset' must be given"):
        warp(x, x)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"groups": 3}, "divisible by groups"),
    ({"offset_groups": 3}, "divisible by offset_groups"),
])  # fmt: skip
def test_pack_bad_arguments(kwargs, words):
    with pytest.raises(ValueError, match=words):
        DeformConv2dPack(4, 4, 3, **kwargs)


@pytest.mark.slow
def test_texture_warp_torch_compile_fullgraph():
    torch.manual_seed(4)
    warp = TextureWarp(32, previous_offset_channels=32)
    torch.nn.init.normal_(warp.dcn.conv_offset.weight, std=0.05)
    compiled = torch.compile(warp, fullgraph=True, backend="aot_eager")
    x_main, x_cond, prev = torch.randn(1, 32, 8, 8), torch.randn(1, 32, 8, 8), torch.randn(1, 32, 8, 8)
    got, expected = compiled(x_main, x_cond, prev), warp(x_main, x_cond, prev)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)
