"""One optimisation step of either stage: the generator on :class:`vqcnir.losses.VQCNIRLoss`, then the
PatchGAN discriminator on the hinge (or non-saturating) loss, with their Adam optimizers and
MultiStepLR schedules (BasicSR's order: generator first, then discriminator, one scheduler step each)."""

from __future__ import annotations

import bisect
import contextlib
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import MultiStepLR

from vqcnir.discriminator import PatchDiscriminator
from vqcnir.losses import PerceptualLoss, VQCNIRLoss

from .config import NetworkDOptions, OptimOptions, TrainOptions
from .runtime import Runtime, set_requires_grad, wrap_model


def make_optimizer(options: OptimOptions, parameters: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    kind = torch.optim.Adam if options.type == "Adam" else torch.optim.AdamW
    return kind(list(parameters), lr=options.lr, betas=tuple(options.betas), weight_decay=options.weight_decay)


class GANUpdate:
    """Owns the loss, the discriminator, both optimizers and schedules; :meth:`step` does one iteration.

    Args:
        train: ``train`` options (optimizers, schedule, loss weights, clipping, precision).
        network_d: discriminator options (built only when the adversarial weight is > 0).
        parameters: the generator's trainable parameters (after any freezing).
        runtime: device / DDP.
    """

    def __init__(
        self, train: TrainOptions, network_d: NetworkDOptions, parameters: Iterable[nn.Parameter], runtime: Runtime
    ) -> None:
        losses = train.losses
        self.options, self.runtime = train, runtime
        self.parameters = [p for p in parameters if p.requires_grad]
        perceptual = PerceptualLoss(losses.perceptual_net) if losses.perceptual_weight > 0 else None
        self.loss = VQCNIRLoss(
            pixel_weight=losses.pixel_weight,
            alignment_weight=losses.alignment_weight,
            perceptual_weight=losses.perceptual_weight,
            adversarial_weight=losses.adversarial_weight,
            adversarial=losses.gan_type,
            perceptual=perceptual,
        ).to(runtime.device)
        self.optim_g = make_optimizer(train.optim_g, self.parameters)
        self.sched_g = MultiStepLR(self.optim_g, train.scheduler.milestones, train.scheduler.gamma)
        self.disc_raw: PatchDiscriminator | None = None
        if losses.adversarial_weight > 0:
            self.disc_raw = PatchDiscriminator(
                width=network_d.width,
                num_layers=network_d.num_layers,
                norm=network_d.norm,
                spectral_norm=network_d.spectral_norm,
            ).to(runtime.device)
            self.disc = wrap_model(self.disc_raw, runtime, train.compile)  # compiled, then DDP when distributed
            # The generator step calls D outside DDP (no gradient sync for D there: D is frozen in that step).
            ddp = isinstance(self.disc, nn.parallel.DistributedDataParallel)
            self.disc_compiled = self.disc.module if ddp else self.disc
            self.optim_d = make_optimizer(train.optim_d, self.disc_raw.parameters())
            self.sched_d = MultiStepLR(self.optim_d, train.scheduler.milestones, train.scheduler.gamma)

    def gan_active(self, iteration: int) -> bool:
        return self.disc_raw is not None and iteration > self.options.losses.net_d_start_iter

    def step(
        self,
        output: torch.Tensor,
        target: torch.Tensor,
        quant_loss: torch.Tensor,
        iteration: int,
        autocast: Callable[[], contextlib.AbstractContextManager],
    ) -> dict[str, float]:
        """Update the generator from its ``output`` (graph attached) and ``quant_loss`` (codebook loss in
        stage 1, code alignment in stage 2), then the discriminator. Returns the loss values by name."""
        use_gan = self.gan_active(iteration)
        if self.disc_raw is not None:
            set_requires_grad(self.disc_raw, False)  # the generator step must not touch D
        with autocast():
            fake_logits = self.disc_compiled(output) if use_gan else None
            terms = self.loss(output.float(), target, quantizer_loss=quant_loss.float(), fake_logits=fake_logits)
        self.optim_g.zero_grad(set_to_none=True)
        terms["total"].backward()
        if self.options.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.parameters, self.options.grad_clip)
        self.optim_g.step()
        self.sched_g.step()
        values = {f"l_g_{name}": float(value.detach()) for name, value in terms.items()}
        if use_gan:
            set_requires_grad(self.disc_raw, True)
            with autocast():
                real_logits = self.disc(target)
                fake_logits = self.disc(output.detach())
                d_terms = self.loss.discriminator_loss(real_logits.float(), fake_logits.float())
            self.optim_d.zero_grad(set_to_none=True)
            d_terms["total"].backward()
            self.optim_d.step()
            values.update({f"l_d_{name}": float(value.detach()) for name, value in d_terms.items()})
        if self.disc_raw is not None:
            self.sched_d.step()
        values["lr"] = self.sched_g.get_last_lr()[0]
        return values

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"optim_g": self.optim_g.state_dict(), "sched_g": self.sched_g.state_dict()}
        if self.disc_raw is not None:
            state.update(
                net_d=self.disc_raw.state_dict(), optim_d=self.optim_d.state_dict(), sched_d=self.sched_d.state_dict()
            )
        return state

    def apply_options(self) -> None:
        """Make the restored optimizers and schedules follow the current options (``--resume`` with changed
        ``train.optim_*`` or ``train.scheduler`` values): base rates, betas and weight decay, milestones and
        gamma. The rate from now on is the new base rate decayed by the milestones already passed."""
        schedule = self.options.scheduler
        pairs = [(self.optim_g, self.sched_g, self.options.optim_g)]
        if self.disc_raw is not None:
            pairs.append((self.optim_d, self.sched_d, self.options.optim_d))
        for optimizer, scheduler, optim in pairs:
            scheduler.milestones, scheduler.gamma = Counter(schedule.milestones), schedule.gamma
            scheduler.base_lrs = [optim.lr] * len(optimizer.param_groups)
            passed = bisect.bisect_right(sorted(schedule.milestones), scheduler.last_epoch)
            for group in optimizer.param_groups:
                group.update(
                    lr=optim.lr * schedule.gamma**passed,
                    initial_lr=optim.lr,
                    betas=tuple(optim.betas),
                    weight_decay=optim.weight_decay,
                )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optim_g.load_state_dict(state["optim_g"])
        self.sched_g.load_state_dict(state["sched_g"])
        if self.disc_raw is not None:
            if "net_d" not in state:
                raise ValueError("the checkpoint has no discriminator, but train.losses.adversarial_weight > 0")
            self.disc_raw.load_state_dict(state["net_d"])
            self.optim_d.load_state_dict(state["optim_d"])
            self.sched_d.load_state_dict(state["sched_d"])
