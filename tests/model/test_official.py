"""vqcnir.official: every converter of the authors' checkpoint keys, one part at a time, against official
re-implementations (same outputs and gradients after the mapping); exact prefix matching; errors named by
official keys. The whole network: tests/model/test_model.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.backends import backend_params, device_for
from tests.model.official_structure import TWAM as OfficialTWAM
from tests.model.official_structure import TextureWarpingModule as OfficialTextureWarp
from tests.modules.official_aiem import OfficialAIEM, OfficialIMAConv, randomise_
from vqcnir import official
from vqcnir_ops import AIEM, DBCA, BidirectionalChannelAttention, IMACConv, TextureWarp
from vqcnir_ops._testing import assert_max_rel_close

ATTENTION_BACKENDS = backend_params("bidirectional_channel_attention")
CURVE_BACKENDS = backend_params("curve_map")
TWAM = "main_decode.attn.Level_2."
WARP = "main_decode.align_func_dict.Level_2."


def _prefixed(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """``module``'s state dict under the official prefix, as float32 tensors (as in the checkpoint)."""
    return {prefix + key: value.detach().float() for key, value in module.state_dict().items()}


def _official_twam(channels: int, heads: int, seed: int) -> nn.Module:
    """The official TWAM (tests/model/official_structure.py) in float64 with every parameter random."""
    return randomise_(OfficialTWAM(channels, heads).double(), seed)


def _official_warp(channels: int, previous: int, seed: int) -> nn.Module:
    """The official TextureWarpingModule (32 norm groups, 4 offset groups) with every parameter random."""
    module = randomise_(OfficialTextureWarp(channels, 32, 4, previous), seed)
    with torch.no_grad():  # offsets of a few pixels, not dozens
        module.dcn.conv_offset.weight.mul_(0.2)
    return module


def _aiem_dtype(backend: str) -> torch.dtype:
    return torch.float64 if backend in ("reference", "cpp") else torch.float32


# --- AIEM ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", CURVE_BACKENDS)
def test_aiem_matches_official_structure_after_key_mapping(backend):
    device, dtype = device_for(backend), _aiem_dtype(backend)
    block = randomise_(OfficialAIEM(16, split=4, n_curve=3), 1).to(device, dtype)
    ours = AIEM(16, split=4, n_curve=3, backend=backend).to(device, dtype)
    ours.load_state_dict(official.aiem_state_dict_from_official(block.state_dict()), strict=True)
    x = (0.5 + torch.randn(2, 16, 9, 11, dtype=torch.float64)).to(device, dtype).requires_grad_()
    got, expected = ours(x), block(x)
    tol = {"rtol": 1e-9, "atol": 1e-9} if dtype == torch.float64 else {"rtol": 2e-5, "atol": 2e-5}
    torch.testing.assert_close(got, expected, **tol)
    weights = torch.randn_like(got)
    (grad,) = torch.autograd.grad((got * weights).sum(), x)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), x)
    torch.testing.assert_close(grad, expected_grad, **tol)


def test_imac_matches_official_imaconv():
    imac = randomise_(OfficialIMAConv(12, split=3, n_curve=2), 2).double()
    ours = IMACConv(12, 12, split=3, n_curve=2).double()
    state = {f"block.IMAC.{k}": v for k, v in imac.state_dict().items()}
    converted = official.aiem_state_dict_from_official(state, "block.")
    ours.load_state_dict({k.removeprefix("imae.imac."): v for k, v in converted.items()}, strict=True)
    x = 0.5 + torch.randn(1, 12, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(ours(x), imac(x), rtol=1e-10, atol=1e-10)


def test_aiem_blocks_load_by_mapping():
    # Two blocks under the official prefix plus an unrelated key, as in a full checkpoint.
    blocks = [randomise_(OfficialAIEM(8, split=4, n_curve=3).double(), seed) for seed in (3, 4)]
    prefix = official.OFFICIAL_AIEM_PREFIX
    checkpoint = {f"{prefix}{k}.{key}": v for k, b in enumerate(blocks) for key, v in b.state_dict().items()}
    checkpoint["multiscale_encoder.in_conv.weight"] = torch.zeros(3)
    ours = nn.Sequential(AIEM(8), AIEM(8)).double()
    ours.load_state_dict(official.aiem_blocks_state_dict_from_official(checkpoint), strict=True)
    assert ours[1].imae.imac.proj.weight.shape == (8, 2, 3, 3)
    assert ours[0].hie.sca.conv.weight.shape == blocks[0].sca2[1].weight.shape == (8, 16, 1, 1)
    x = torch.randn(1, 8, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(ours(x), blocks[1](blocks[0](x)), rtol=1e-10, atol=1e-10)


def test_aiem_keys_and_shapes():
    converted = official.aiem_state_dict_from_official(OfficialAIEM(32).state_dict())
    ours = {k: tuple(v.shape) for k, v in converted.items()}
    assert ours == {k: tuple(v.shape) for k, v in AIEM(32).state_dict().items()}
    assert len(OfficialAIEM(32).state_dict()) == len(ours) + 2 * 4 - 2  # conv{i}.weight/bias (8) became proj (2)


def test_unknown_keys_and_bad_numbering_name_the_official_key():
    with pytest.raises(KeyError, match=r"no rule matches: \['sca3.weight'\]"):
        official.aiem_state_dict_from_official({"sca3.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match=r"'IMAC.conv<split>.weight' must be numbered 0..n-1, got \[1\]"):
        official.aiem_state_dict_from_official({"IMAC.conv1.weight": torch.zeros(1)})


# --- TWAM -> BidirectionalChannelAttention ----------------------------------------------------------------------


def test_channel_attention_names_and_shapes():
    sd = _prefixed(_official_twam(8, 2, seed=0), TWAM)
    sd["main_decode.other.weight"] = torch.ones(3)  # outside the prefix: ignored
    ours = official.channel_attention_state_dict_from_official(sd, TWAM)
    assert ours["temperature"].shape == (2,) and ours["gamma_d"].shape == (8,)
    assert torch.equal(ours["gamma_d"], sd[TWAM + "beta"].flatten())
    assert torch.equal(ours["proj_v_g.weight"], sd[TWAM + "g_proj2.weight"])
    module = BidirectionalChannelAttention(8, num_heads=2)
    module.load_state_dict(ours, strict=True)  # every key present, every shape right
    assert set(ours) == set(module.state_dict())


@pytest.mark.parametrize("backend", ATTENTION_BACKENDS)
def test_channel_attention_matches_official_twam(backend):
    device = device_for(backend)
    gen = torch.Generator().manual_seed(1)
    channels, heads = 12, 3
    reference = _official_twam(channels, heads, seed=1)
    with torch.no_grad():  # the scale (temperature) of a trained model is positive
        reference.scale.copy_(0.5 + torch.rand(heads, 1, 1, generator=gen, dtype=torch.float64))
    sd = _prefixed(reference, TWAM)
    reference.load_state_dict({k[len(TWAM) :]: v.double() for k, v in sd.items()})  # the float32 values
    module = BidirectionalChannelAttention(channels, num_heads=heads, backend=backend)
    module.load_state_dict(official.channel_attention_state_dict_from_official(sd, TWAM))
    module.to(device)
    x_d, x_g = torch.randn(2, channels, 5, 6, generator=gen), torch.randn(2, channels, 5, 6, generator=gen)
    out_d, out_g = module(x_d.to(device).requires_grad_(), x_g.to(device))
    exp_d, exp_g = reference(x_d.double(), x_g.double())
    assert_max_rel_close(out_d.cpu(), exp_d.detach(), 1e-5, "F_D'")
    assert_max_rel_close(out_g.cpu(), exp_g.detach(), 1e-5, "F_G'")
    # Every parameter receives the official model's gradient.
    (out_d.sum() + 2 * out_g.sum()).backward()
    (exp_d.sum() + 2 * exp_g.sum()).backward()
    grads = {TWAM + name: p.grad for name, p in reference.named_parameters()}
    expected = official.channel_attention_state_dict_from_official(grads, TWAM)
    for name, param in module.named_parameters():
        assert_max_rel_close(param.grad.cpu(), expected[name], 1e-4, f"grad {name}")


# --- TextureWarp, DBCA --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("previous", [0, 128])
def test_texture_warp_loads_official_weights(previous):
    gen = torch.Generator().manual_seed(3)
    reference = _official_warp(64, previous, seed=3)
    sd = _prefixed(reference, WARP)
    sd |= _prefixed(_official_warp(64, 0, seed=4), "main_decode.align_func_dict.Level_8.")  # another level
    sd["main_decode.attn.Level_2.scale"] = torch.ones(1, 1, 1)  # not part of the block: ignored
    warp = TextureWarp(64, previous_offset_channels=previous)
    warp.load_state_dict(official.texture_warp_state_dict_from_official(sd, WARP), strict=True)
    x_main, x_cond = torch.randn(2, 64, 10, 9, generator=gen), torch.randn(2, 64, 10, 9, generator=gen)
    prev = torch.randn(2, previous, 10, 9, generator=gen) if previous else None
    warped, feat = warp(x_main, x_cond, prev)
    with torch.no_grad():
        exp_warped, exp_feat = reference(x_main, x_cond, prev)
    torch.testing.assert_close(feat, exp_feat, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(warped, exp_warped, rtol=1e-4, atol=1e-4)


def test_prefixes_match_exactly_never_as_substrings():
    sd = _prefixed(_official_warp(32, 0, seed=5), "backup." + WARP)
    with pytest.raises(KeyError, match=f"no key starts with '{WARP}'"):
        official.texture_warp_state_dict_from_official(sd, WARP)  # the old substring rule took these keys
    with pytest.raises(KeyError, match="no key starts with"):
        official.texture_warp_state_dict_from_official({"encoder.conv.weight": torch.zeros(1)}, WARP)
    with pytest.raises(KeyError, match=r"no rule matches: \['main_decode.align_func_dict.Level_2.dcn.extra.weight'\]"):
        official.texture_warp_state_dict_from_official({WARP + "dcn.extra.weight": torch.zeros(1)}, WARP)


def test_dbca_joins_attention_and_warp():
    sd = _prefixed(_official_twam(32, 2, seed=6), "main_decode.attn.Level_4.")
    sd |= _prefixed(_official_warp(32, 0, seed=7), "main_decode.align_func_dict.Level_4.")
    block = DBCA(32, num_heads=2)
    converted = official.dbca_state_dict_from_official(sd, 4)
    block.load_state_dict(converted, strict=True)
    assert torch.equal(converted["attn.temperature"], sd["main_decode.attn.Level_4.scale"].flatten())
    with pytest.raises(KeyError, match="no key starts with 'main_decode.attn.Level_8.'"):
        official.dbca_state_dict_from_official(sd, 8)


# --- the rule table's inverse -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("to_rgb.weight", "out_conv.weight"),
        ("encoder.blocks.1.2.norm2.bias", "multiscale_encoder.blocks.1.2.conv.3.norm.bias"),
        ("encoder.enhance.7.imae.imac.proj.weight", "multiscale_encoder.blocks.3.blks.7.IMAC.conv<split>.weight"),
        ("decoder_d.dbca.4.attn.temperature", "main_decode.attn.Level_4.scale"),
        ("decoder_d.dbca.2.warp.dcn.conv_offset.bias", "main_decode.align_func_dict.Level_2.dcn.conv_offset.bias"),
        ("decoder_d.fuse.1.conv1.weight", "main_decode.decoder_dict.Level_1.conv1.weight"),
    ],
)
def test_official_name_of_our_key(ours, theirs):
    assert official.official_name(ours, official.VQCNIR_RULES) == theirs
    if "<" not in theirs:  # and back: the table is one-to-one
        converted = official.convert({theirs: torch.zeros(1)}, official.VQCNIR_RULES)
        assert list(converted.state_dict) == [ours] and converted.origin[ours] == theirs
