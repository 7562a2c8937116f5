"""DeformConv2d, DeformConv2dPack and TextureWarp: behaviour and torch.compile (official weights:
tests/model/test_official.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vqcnir_ops import DeformConv2d, DeformConv2dPack, TextureWarp, deform_conv2d_ref


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
