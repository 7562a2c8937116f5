"""``VectorQuantizer``: the VQ-VAE/VQGAN bottleneck over the fused nearest-code lookup.

Loss formulas and state-dict layout follow FeMaSR's quantizer, on which VQCNIR's is built, so the
official checkpoint's ``quantize_group.0.embedding.weight`` loads into ``embedding.weight``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from vqcnir_ops.quantize.functional import nearest_code
from vqcnir_ops.validation import check_tensor


class QuantizerOutput(NamedTuple):
    """What ``VectorQuantizer.forward`` returns.

    quantized: ``[B, C, H, W]`` the chosen codes, with a straight-through gradient to the input.
    loss: scalar, the total quantization loss (below).
    indices: ``[B, H, W]`` int64 code indices.
    codebook_loss: scalar, ``mean((sg(z) - e)^2)`` (moves the codes; no gradient when frozen).
    commitment_loss: scalar, ``mean((z - sg(e))^2)`` (unweighted; ``loss`` applies ``beta``).
    alignment_loss: scalar, with ground-truth indices: ``beta * mean((z - sg(e_gt))^2) + gram term``;
        else 0.
    """

    quantized: torch.Tensor
    loss: torch.Tensor
    indices: torch.Tensor
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor
    alignment_loss: torch.Tensor


class CodeUsage(NamedTuple):
    """Codebook usage since the last reset: watch ``used_fraction`` for codebook collapse."""

    counts: torch.Tensor  # [K] int64, how often each code was chosen
    perplexity: float  # exp(entropy) of the usage distribution: K when uniform, 1 when collapsed
    used_fraction: float  # fraction of codes chosen at least once


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``[B, C, C]`` Gram matrix of ``[B, C, H, W]`` features, normalised by H * W."""
    flat = features.flatten(2)
    return flat @ flat.transpose(1, 2) / flat.shape[-1]


class VectorQuantizer(nn.Module):
    """Vector quantizer with straight-through gradients, VQ losses and VQCNIR's code alignment.

    Args:
        num_codes: K, codebook size (1024 in VQCNIR).
        code_dim: C, channels of the input and of each code (512 in VQCNIR).
        beta: weight of the commitment term and of the code-alignment term (0.25).
        frozen: freeze the codebook (stage 2 of VQCNIR); also see :meth:`freeze`.
        backend: nearest-code backend for every call (default: automatic, see ``vqcnir_ops._backend``).

    Losses, for input ``z`` and chosen codes ``e`` (``sg`` = stop-gradient):
        without ground truth: ``loss = mean((sg(z) - e)^2) + beta * mean((z - sg(e))^2)``;
        with ``gt_indices`` (code alignment): ``loss = beta * mean((z - sg(e_gt))^2)
        + mean((G(z) - G(sg(e_gt)))^2)`` where ``G`` is the Gram matrix over pixels, as in the
        official stage-2 quantizer.

    Example:
        >>> vq = VectorQuantizer(num_codes=64, code_dim=16)
        >>> out = vq(torch.randn(2, 16, 8, 8))
        >>> out.quantized.shape, out.indices.shape
        (torch.Size([2, 16, 8, 8]), torch.Size([2, 8, 8]))
    """

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        beta: float = 0.25,
        frozen: bool = False,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        if num_codes < 1 or code_dim < 1:
            raise ValueError(f"num_codes and code_dim must be >= 1, got {num_codes} and {code_dim}")
        self.num_codes, self.code_dim, self.beta, self.backend = int(num_codes), int(code_dim), float(beta), backend
        self.embedding = nn.Embedding(self.num_codes, self.code_dim)
        self.register_buffer("usage_counts", torch.zeros(self.num_codes, dtype=torch.int64), persistent=False)
        self.frozen = False
        if frozen:
            self.freeze()

    def freeze(self) -> VectorQuantizer:
        """Stop training the codebook (it gets no gradient, so optimizers built after this skip it)."""
        self.embedding.weight.requires_grad_(False)
        self.frozen = True
        return self

    @property
    def codebook(self) -> torch.Tensor:
        """``[K, C]`` the code vectors."""
        return self.embedding.weight

    def _check_input(self, z: torch.Tensor) -> None:
        check_tensor("z", z, ndim=4)
        if z.shape[1] != self.code_dim:
            raise ValueError(f"argument 'z' must have {self.code_dim} channels (code_dim), got shape {tuple(z.shape)}")

    def forward(self, z: torch.Tensor, gt_indices: torch.Tensor | None = None) -> QuantizerOutput:
        """Quantize ``z`` ``[B, C, H, W]``; ``gt_indices`` ``[B, H, W]`` (or ``[B, 1, H, W]``) enables
        the code-alignment loss of VQCNIR's stage 2."""
        self._check_input(z)
        batch, _, height, width = z.shape
        rows = z.permute(0, 2, 3, 1).reshape(-1, self.code_dim)
        indices, _ = nearest_code(rows.detach(), self.codebook, backend=self.backend)
        indices = indices.view(batch, height, width)
        codes = self.lookup(indices).to(z.dtype)

        codebook_loss = torch.mean((z.detach() - codes) ** 2)
        commitment_loss = torch.mean((z - codes.detach()) ** 2)
        if gt_indices is not None:
            gt_codes = self.lookup(self._check_gt_indices(gt_indices, batch, height, width)).to(z.dtype).detach()
            alignment_loss = self.beta * torch.mean((z - gt_codes) ** 2)
            alignment_loss = alignment_loss + torch.mean((gram_matrix(z) - gram_matrix(gt_codes)) ** 2)
            loss = alignment_loss
        else:
            alignment_loss = torch.zeros((), dtype=z.dtype, device=z.device)
            loss = codebook_loss + self.beta * commitment_loss

        if self.training:
            with torch.no_grad():
                self.usage_counts.index_add_(0, indices.flatten(), torch.ones_like(indices.flatten()))
        quantized = z + (codes - z).detach()  # straight-through: d quantized / d z = identity
        return QuantizerOutput(quantized, loss, indices, codebook_loss, commitment_loss, alignment_loss)

    def _check_gt_indices(self, gt_indices: torch.Tensor, batch: int, height: int, width: int) -> torch.Tensor:
        check_tensor("gt_indices", gt_indices, floating=False)
        if gt_indices.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"argument 'gt_indices' must be int64 or int32, got {gt_indices.dtype}")
        if gt_indices.dim() == 4 and gt_indices.shape[1] == 1:
            gt_indices = gt_indices.squeeze(1)
        if tuple(gt_indices.shape) != (batch, height, width):
            raise ValueError(
                f"argument 'gt_indices' must have shape {(batch, height, width)} (or with a channel of 1), "
                f"got {tuple(gt_indices.shape)}"
            )
        return gt_indices

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for ``indices`` ``[B, H, W]`` (or ``[B, 1, H, W]``) as features ``[B, C, H, W]``."""
        check_tensor("indices", indices, floating=False)
        if indices.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"argument 'indices' must be int64 or int32, got {indices.dtype}")
        if indices.dim() == 4 and indices.shape[1] == 1:
            indices = indices.squeeze(1)
        if indices.dim() != 3:
            raise ValueError(f"argument 'indices' must have shape [B, H, W], got {tuple(indices.shape)}")
        return self.embedding(indices).permute(0, 3, 1, 2)

    def usage(self) -> CodeUsage:
        """Code-usage statistics accumulated over training-mode forwards since :meth:`reset_usage`."""
        counts = self.usage_counts.clone()
        total = counts.sum()
        if total == 0:
            return CodeUsage(counts, 0.0, 0.0)
        probs = counts.double() / total
        entropy = -(probs[probs > 0] * probs[probs > 0].log()).sum()
        return CodeUsage(counts, float(entropy.exp()), float((counts > 0).double().mean()))

    def reset_usage(self) -> None:
        self.usage_counts.zero_()

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}, code_dim={self.code_dim}, beta={self.beta}, frozen={self.frozen}"
