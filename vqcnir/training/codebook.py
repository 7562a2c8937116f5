"""Dead-code restarts for stage 1: codes the encoder stopped choosing are moved onto current latents.

A VQGAN trained from scratch often collapses onto a few codes (a small model at a high learning rate
can end on one). Every ``train.codebook_restart`` iterations, the codes not chosen since the last
restart are replaced by encoder latents drawn at random from the current batch (the usual remedy, as in
Jukebox and vector-quantize-pytorch's ``threshold_ema_dead_code``). Draws use the global torch RNG,
which checkpoints save, so resumed runs restart the same codes. Off (0) in the paper recipes.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from vqcnir_ops import VectorQuantizer

from .runtime import Runtime


@torch.no_grad()
def restart_dead_codes(quantizer: VectorQuantizer, latent: torch.Tensor, runtime: Runtime) -> int:
    """Replace the codes of ``quantizer`` unused since the last call with rows of ``latent``
    ``[B, C, H, W]``; reset the usage counts; returns how many codes were replaced (rank 0's choice,
    broadcast to every rank)."""
    dead = (quantizer.usage_counts == 0).nonzero().flatten()
    rows = latent.detach().float().permute(0, 2, 3, 1).reshape(-1, quantizer.code_dim)
    if dead.numel():
        picks = torch.randint(rows.shape[0], (dead.numel(),), device="cpu").to(rows.device)
        quantizer.codebook[dead] = rows[picks].to(quantizer.codebook.dtype)
    if runtime.distributed and dist.is_initialized():
        dist.broadcast(quantizer.codebook.data, src=0)
    quantizer.reset_usage()
    return int(dead.numel())
