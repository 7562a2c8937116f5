"""IMACConv and the AIEM layers: equal to a plain re-implementation with the reference curve, for every
curve_map backend (equal to the official structure after the key mapping: tests/model/test_official.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.backends import backend_params, device_for
from tests.modules.official_aiem import randomise_
from vqcnir_ops import AIEM, HIE, IMAE, IMACConv, LargeKernelAttention, SimpleGate, SimplifiedChannelAttention
from vqcnir_ops.curve.reference import curve_map_ref

BACKENDS = backend_params("curve_map")


def _dtype(backend: str) -> torch.dtype:
    return torch.float64 if backend in ("reference", "cpp") else torch.float32


def _imac_plain(imac: IMACConv, x: torch.Tensor) -> torch.Tensor:
    """IMACConv written out by hand, with the reference curve and one conv per split."""
    parts = x.chunk(imac.split, dim=1)
    group_out = imac.out_channels // imac.split
    outs = []
    for i, net in enumerate(imac.curve_nets):
        a = net(torch.cat(parts[:i] + parts[i + 1 :], dim=1))
        y = curve_map_ref(parts[i].unsqueeze(1), a.unsqueeze(1)).squeeze(1)
        weight = imac.proj.weight[i * group_out : (i + 1) * group_out]
        outs.append(F.conv2d(y, weight, imac.proj.bias[i * group_out : (i + 1) * group_out], padding=1))
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("channels", "out_channels", "split", "n_curve"), [(8, 8, 2, 1), (12, 6, 3, 3), (16, 16, 4, 5)]
)
def test_imac_matches_plain_reimplementation(backend, channels, out_channels, split, n_curve):
    device, dtype = device_for(backend), _dtype(backend)
    imac = randomise_(IMACConv(channels, out_channels, split, n_curve, backend=backend), 0).to(device, dtype)
    x = (0.5 + torch.randn(2, channels, 7, 9, dtype=torch.float64)).to(device, dtype).requires_grad_()
    got = imac(x)
    expected = _imac_plain(imac, x)
    tol = {"rtol": 1e-10, "atol": 1e-10} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(got, expected, **tol)
    weights = torch.randn_like(got)
    grads = torch.autograd.grad((got * weights).sum(), (x, *imac.parameters()))
    expected_grads = torch.autograd.grad((expected * weights).sum(), (x, *imac.parameters()))
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, **tol)


def test_fresh_aiem_is_identity_and_parameter_shapes():
    block = AIEM(32)
    x = torch.randn(2, 32, 5, 5)
    torch.testing.assert_close(block(x), x)
    assert block.beta.shape == block.gamma.shape == (1, 32, 1, 1)


def test_layers_shapes_and_values():
    x = torch.randn(2, 6, 9, 10)
    torch.testing.assert_close(SimpleGate()(x), x[:, :3] * x[:, 3:])
    sca = SimplifiedChannelAttention(6, 4)
    torch.testing.assert_close(sca(x), sca.conv(x.mean(dim=(2, 3), keepdim=True)))
    lka = LargeKernelAttention(6, 2)
    assert lka(x).shape == (2, 2, 9, 10)
    assert lka.conv_spatial.weight.shape == (6, 1, 7, 7) and lka.conv_spatial.dilation == (3, 3)


@pytest.mark.parametrize(
    ("build", "error", "words"),
    [
        (lambda: IMACConv(10, 10, split=4), ValueError, "'in_channels' must be a positive multiple of split=4"),
        (lambda: IMACConv(8, 6, split=4), ValueError, "'out_channels' must be a positive multiple"),
        (lambda: IMACConv(8, 8, split=1), ValueError, "'split' must be at least 2"),
        (lambda: IMACConv(8, 8, split=4, n_curve=17), ValueError, "'n_curve' must be in 1..16"),
        (lambda: IMACConv(8, 8, split=4, n_curve=0), ValueError, "'n_curve' must be in 1..16"),
        (lambda: AIEM(6), ValueError, "'in_channels' must be a positive multiple of split=4"),
    ],
)
def test_bad_construction(build, error, words):
    with pytest.raises(error, match=words):
        build()


@pytest.mark.parametrize(
    ("module", "x", "words"),
    [
        (IMACConv(8, 8), torch.randn(1, 12, 4, 4), "'x' must have 8 channels"),
        (AIEM(8), torch.randn(1, 8, 4), "'x' must have 4 dimensions"),
        (HIE(8), torch.randn(1, 4, 4, 4), "'x' must have 8 channels"),
        (IMAE(8), torch.randn(1, 4, 4, 4), "'x' must have 8 channels"),
        (SimpleGate(), torch.randn(1, 5, 4, 4), "even number of channels"),
        (LargeKernelAttention(4), torch.randn(1, 5, 4, 4), "'x' must have 4 channels"),
        (SimplifiedChannelAttention(4), torch.randn(1, 5, 4, 4), "'x' must have 4 channels"),
    ],
)
def test_bad_input_shapes(module, x, words):
    with pytest.raises(ValueError, match=words):
        module(x)


@pytest.mark.slow
@pytest.mark.parametrize(
    "make",
    [
        lambda: SimpleGate(),
        lambda: SimplifiedChannelAttention(8, 4),
        lambda: LargeKernelAttention(8, 4),
        lambda: IMACConv(8, 8, split=4, n_curve=3),
        lambda: HIE(8),
        lambda: IMAE(8),
        lambda: randomise_(AIEM(8), 5).float(),
    ],
    ids=["SimpleGate", "SimplifiedChannelAttention", "LargeKernelAttention", "IMACConv", "HIE", "IMAE", "AIEM"],
)
def test_torch_compile_fullgraph(make):
    module = make()
    x = (0.5 + torch.randn(2, 8, 6, 7)).requires_grad_()
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    got = compiled(x)
    expected = module(x)
    torch.testing.assert_close(got, expected)
    (grad,) = torch.autograd.grad(got.sum(), x)
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(grad, expected_grad)
