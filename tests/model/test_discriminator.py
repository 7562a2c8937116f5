"""PatchDiscriminator: logit-map shapes, gradient flow, options and argument checks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from vqcnir.discriminator import PatchDiscriminator


def expected_size(size: int, num_layers: int) -> int:
    for _ in range(num_layers):
        size = (size + 2 - 4) // 2 + 1  # 4x4, stride 2, pad 1
    return size - 2  # two 4x4 stride-1 convs with pad 1 remove one pixel each


@given(
    num_layers=st.integers(1, 4), width=st.integers(1, 12), batch=st.integers(1, 3), extra_h=st.integers(0, 21),
    extra_w=st.integers(0, 21), norm=st.sampled_from(["batch", "instance", "none"]), sn=st.booleans(),
)  # fmt: skip
def test_logit_map_shape(num_layers, width, batch, extra_h, extra_w, norm, sn):
    d = PatchDiscriminator(width=width, num_layers=num_layers, norm=norm, spectral_norm=sn).eval()
    h, w = 3 * 2**num_layers + extra_h, 3 * 2**num_layers + extra_w
    out = d(torch.randn(batch, 3, h, w))
    assert out.shape == (batch, 1, expected_size(h, num_layers), expected_size(w, num_layers))
    assert torch.isfinite(out).all()


def test_default_is_the_70px_patchgan():
    d = PatchDiscriminator()
    assert d(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    # convs 3->64 (+bias), 64->128, 128->256, 256->512 (no bias, BatchNorm), 512->1 (+bias), all 4x4:
    expected = (3 * 64 * 16 + 64) + (64 * 128 + 128 * 256 + 256 * 512) * 16 + 2 * (128 + 256 + 512) + (512 * 16 + 1)
    assert sum(p.numel() for p in d.parameters()) == expected == 2_765_633
    widths = [m.out_channels for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [64, 128, 256, 512, 1]


@pytest.mark.parametrize(("norm", "sn"), [("batch", False), ("instance", False), ("none", True)])
def test_gradients_reach_every_parameter_and_the_input(norm, sn):
    torch.manual_seed(0)
    d = PatchDiscriminator(width=8, num_layers=3, norm=norm, spectral_norm=sn)
    x = torch.randn(2, 3, 48, 40, requires_grad=True)
    d(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, param in d.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_spectral_norm_bounds_each_conv():
    torch.manual_seed(0)
    d = PatchDiscriminator(width=8, num_layers=2, norm="none", spectral_norm=True)
    d.eval()  # uses the power iteration run when the convs were wrapped
    for conv in (m for m in d.modules() if isinstance(m, torch.nn.Conv2d)):
        sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, rel=0.05)


def test_gradcheck_float64():
    d = PatchDiscriminator(width=2, num_layers=1, norm="none").double()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(d, (x,))


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="'norm'"):
        PatchDiscriminator(norm="layer")
    with pytest.raises(ValueError, match="num_layers"):
        PatchDiscriminator(num_layers=0)
    d = PatchDiscriminator(width=4, num_layers=3)
    with pytest.raises(ValueError, match="'x'.*3 channels"):
        d(torch.randn(1, 4, 32, 32))
    with pytest.raises(ValueError, match="'x' must be at least 24 x 24"):
        d(torch.randn(1, 3, 23, 64))
    with pytest.raises(ValueError, match="'x' must have 4"):
        d(torch.randn(3, 32, 32))


@pytest.mark.slow
def test_torch_compile_fullgraph():
    d = PatchDiscriminator(width=4, num_layers=2, norm="none", spectral_norm=True).eval()
    x = torch.randn(2, 3, 32, 32)
    compiled = torch.compile(d, fullgraph=True)
    torch.testing.assert_close(compiled(x), d(x), rtol=1e-4, atol=1e-5)
