"""BidirectionalChannelAttention: official TWAM weights load by the key mapping and give TWAM's output."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.backends import backend_params, device_for
from vqcnir_ops import BidirectionalChannelAttention, bidirectional_channel_attention_ref, convert_twam_state_dict
from vqcnir_ops._testing import assert_max_rel_close
from vqcnir_ops.norm import layer_norm_2d_ref

BACKENDS = backend_params("bidirectional_channel_attention")
PREFIX = "main_decoder.attn.Level_2."


def official_twam_state_dict(channels: int, heads: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
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
    return {PREFIX + key: value for key, value in sd.items()}


def official_twam_forward(sd: dict[str, torch.Tensor], x_d: torch.Tensor, x_g: torch.Tensor, heads: int):
    """TWAM.forward written out in float64 from the official weights (LayerNorm2d eps 1e-6)."""
    w = {key[len(PREFIX) :]: value.double() for key, value in sd.items()}
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
            heads_view(q_d), heads_view(q_g), heads_view(conv("d_proj2", x_d)), heads_view(conv("g_proj2", x_g)),
            w["scale"].reshape(heads),
        )[::-1]
    )  # fmt: skip
    return x_d + f_g2d * w["beta"], x_g + f_d2g * w["gamma"]


def test_convert_twam_state_dict_names_and_shapes():
    sd = official_twam_state_dict(8, 2, torch.Generator().manual_seed(0))
    sd["main_decoder.other.weight"] = torch.ones(3)
    ours = convert_twam_state_dict(sd, prefix=PREFIX)
    assert ours["main_decoder.other.weight"] is sd["main_decoder.other.weight"]
    assert ours[PREFIX + "temperature"].shape == (2,)
    assert ours[PREFIX + "gamma_d"].shape == (8,)
    assert torch.equal(ours[PREFIX + "gamma_d"], sd[PREFIX + "beta"].flatten())
    assert torch.equal(ours[PREFIX + "proj_v_g.weight"], sd[PREFIX + "g_proj2.weight"])
    module = BidirectionalChannelAttention(8, num_heads=2)
    local = {k[len(PREFIX) :]: v for k, v in ours.items() if k.startswith(PREFIX)}
    module.load_state_dict(local, strict=True)  # every key present, every shape right
    assert set(local) == set(module.state_dict())


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_official_twam(backend):
    device = device_for(backend)
    gen = torch.Generator().manual_seed(1)
    channels, heads = 12, 3
    sd = official_twam_state_dict(channels, heads, gen)
    module = BidirectionalChannelAttention(channels, num_heads=heads, backend=backend)
    module.load_state_dict({k[len(PREFIX) :]: v for k, v in convert_twam_state_dict(sd, PREFIX).items()})
    module.to(device)
    x_d, x_g = torch.randn(2, channels, 5, 6, generator=gen), torch.randn(2, channels, 5, 6, generator=gen)
    out_d, out_g = module(x_d.to(device).requires_grad_(), x_g.to(device))
    exp_d, exp_g = official_twam_forward(sd, x_d.double(), x_g.double(), heads)
    assert_max_rel_close(out_d.cpu(), exp_d, 1e-5, "F_D'")
    assert_max_rel_close(out_g.cpu(), exp_g, 1e-5, "F_G'")
    # Every parameter receives the official model's gradient.
    (out_d.sum() + 2 * out_g.sum()).backward()
    sd64 = {k: v.double().requires_grad_() for k, v in sd.items()}
    exp_d, exp_g = official_twam_forward(sd64, x_d.double(), x_g.double(), heads)
    (exp_d.sum() + 2 * exp_g.sum()).backward()
    expected = convert_twam_state_dict({k: v.grad for k, v in sd64.items()}, PREFIX)
    for name, param in module.named_parameters():
        assert_max_rel_close(param.grad.cpu(), expected[PREFIX + name], 1e-4, f"grad {name}")


def test_starts_as_identity():
    module = BidirectionalChannelAttention(8, num_heads=2)
    f_d, f_g = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)
    out_d, out_g = module(f_d, f_g)
    assert torch.equal(out_d, f_d) and torch.equal(out_g, f_g)
    assert torch.equal(module.temperature, torch.ones(2))


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: BidirectionalChannelAttention(10, num_heads=4), r"channels \(10\) must be a positive multiple"),
        (lambda: BidirectionalChannelAttention(258, num_heads=2), "channels per head .* at most 128"),
        (
            lambda: BidirectionalChannelAttention(8, 2)(torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 5)),
            "'f_d' .* and 'f_g' .* must have one shape",
        ),  # fmt: skip
        (
            lambda: BidirectionalChannelAttention(8, 2)(torch.randn(1, 6, 4, 4), torch.randn(1, 6, 4, 4)),
            "'f_d' must have 8 channels",
        ),  # fmt: skip
    ],
)
def test_bad_configuration_or_input(make, words):
    with pytest.raises(ValueError, match=words):
        make()


@pytest.mark.slow
def test_torch_compile_fullgraph():
    torch.manual_seed(2)
    module = BidirectionalChannelAttention(8, num_heads=2)
    with torch.no_grad():
        module.gamma_d.normal_()
        module.gamma_g.normal_()
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    f_d, f_g = torch.randn(2, 8, 6, 6, requires_grad=True), torch.randn(2, 8, 6, 6)
    got = compiled(f_d, f_g)
    expected = module(f_d, f_g)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)
    (grad_compiled,) = torch.autograd.grad(got[0].sum() + got[1].sum(), f_d)
    (grad_eager,) = torch.autograd.grad(expected[0].sum() + expected[1].sum(), f_d)
    torch.testing.assert_close(grad_compiled, grad_eager, rtol=1e-5, atol=1e-6)
