"""The bookkeeping around a recipe's loop: experiment folder, resume, progress, logs, image grids,
validation with the best model kept, checkpoints, and the final save (also after Ctrl-C).

Experiment folder ``<path.experiments_root>/<name>/``: ``options.yaml`` (the resolved options),
``checkpoints/`` (:mod:`vqcnir.training.state`), ``best/`` (the generator with the best validation
PSNR, a ``save_pretrained`` folder), ``final/`` (the generator at the end), ``samples/`` (PNG grids),
``logs/`` (TensorBoard or ``metrics.csv``), ``results/`` (the validation outputs at the end, PNG).
With ``train.ema_decay`` > 0, validation, ``best/`` and ``final/`` use the weights' moving average
(:mod:`vqcnir.training.average`); checkpoints hold the raw weights and the average both.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset

from vqcnir.checkpoint import load_weights, save_pretrained
from vqcnir.io import remove_stale, write_text
from vqcnir.progress import Progress, format_values

from .average import WeightAverage
from .config import RESUME_FIXED, NetworkGOptions, RecipeOptions
from .data import DataPosition, batch_stream
from .monitor import ScalarLog, save_image_grid
from .options import OptionsError, differences, dump_yaml, to_dict
from .runtime import Runtime, StopOnInterrupt, barrier
from .state import FORMAT_VERSION, capture_rng_state, find_checkpoint, load_training_state, restore_rng_state
from .state import save_checkpoint as write_checkpoint
from .update import GANUpdate


class TrainingSession:
    """Everything a recipe's loop does besides computing the step.

    Args:
        options: the resolved recipe options (printed, saved as ``options.yaml`` and in every checkpoint).
        runtime: device / rank.
        model: the raw generator (not compiled, not DDP-wrapped): what checkpoints hold.
        update: the :class:`GANUpdate` (optimizers, schedules, discriminator).
        validate: ``validate(model, save_dir=None)`` returns the validation metrics of ``model`` (``psnr``
            decides the best model), writing the outputs as PNGs into ``save_dir`` when given; rank 0 only.
    """

    def __init__(
        self,
        options: RecipeOptions,
        runtime: Runtime,
        model: nn.Module,
        update: GANUpdate,
        validate: Callable[..., dict[str, float]],
    ) -> None:
        self.options, self.runtime, self.model, self.update, self.validate = options, runtime, model, update, validate
        self.directory = options.experiment_dir
        self.checkpoints = os.path.join(self.directory, "checkpoints")
        self.options_yaml = dump_yaml(options)
        self.position = DataPosition()
        self.best = {"psnr": -math.inf, "iteration": 0}
        self.start_iteration = self.iteration = 0
        self.interrupted = False
        self.last_saved = -1
        self.main = runtime.is_main
        self.log: ScalarLog | None = None
        self.progress: Progress | None = None
        decay = options.train.ema_decay
        self.average = WeightAverage(model, decay) if decay > 0 else None

    @property
    def evaluated(self) -> nn.Module:
        """The generator that validation scores and ``best/`` / ``final/`` keep: the average when it is on."""
        return self.average.module if self.average is not None else self.model

    # ----------------------------------------------------------------------------------------- resume
    def resume(self) -> int:
        """Start the run: load ``path.resume_state`` if set (``auto``: this experiment's latest checkpoint,
        if any), then print and save the options and open the logs. Returns the iteration to continue after
        (0 for a fresh run).

        Resuming restores weights, optimizers, schedules, discriminator, data position, best metric and RNG
        states. Options given now that differ from the checkpoint's take effect (and are listed), except
        those the checkpoint fixes (:data:`~vqcnir.training.config.RESUME_FIXED`: the networks, the seed,
        the training data's order): those raise :class:`OptionsError` listing every difference.
        """
        if self.main:  # what saves killed mid-way left behind (never a folder a live process writes)
            for sub in ("", "checkpoints", "best", "final", "samples", "results"):
                remove_stale(os.path.join(self.directory, sub))
        wanted = self.options.path.resume_state
        checkpoint = None
        if wanted:
            checkpoint = find_checkpoint(self.directory if wanted == "auto" else wanted)
            if checkpoint is None and wanted != "auto":
                raise FileNotFoundError(f"path.resume_state: no checkpoint found at {wanted}")
        if checkpoint is not None:
            self._load(checkpoint)
        if self.main:
            os.makedirs(self.directory, exist_ok=True)
            print(f"options ({self.options.name}):\n{self.options_yaml}", flush=True)
            write_text(os.path.join(self.directory, "options.yaml"), self.options_yaml)
        logs = os.path.join(self.directory, "logs")
        self.log = ScalarLog(logs, self.options.logger.use_tb_logger, enabled=self.main)
        self.progress = Progress(
            self.options.train.total_iter,
            "train",
            initial=self.start_iteration,
            unit="it",
            every=self.options.logger.print_freq,
            enabled=self.main,
            stream=sys.stdout,
            interactive=None if self.options.logger.progress_bar else False,
        )
        return self.start_iteration

    def _load(self, checkpoint: str) -> None:
        state = load_training_state(checkpoint)
        changed = self._changed_options(checkpoint, state["options"])
        load_weights(self.model, checkpoint)
        self.update.load_state_dict(state["update"])
        if any(key.startswith(("train.optim_", "train.scheduler.")) for key in changed):
            self.update.apply_options()
        self.position = DataPosition(int(state["epoch"]), int(state["batch"]))
        self.best = dict(state["best"])
        buffers = self._transient_buffers()
        for name, value in state["buffers"].items():
            buffers[name].copy_(value)
        averaged = self.average is not None and "average" in state
        if averaged:
            self.average.load_state_dict(state["average"])
        elif self.average is not None:  # the average turned on at this resume: it starts from these weights
            self.average.reset(self.model)
        per_rank = state.get("rng_per_rank") or []
        same_world = len(per_rank) == self.runtime.world_size
        restore_rng_state(per_rank[self.runtime.rank] if same_world else state["rng"])
        self.start_iteration = self.iteration = int(state["iteration"])
        self.last_saved = self.start_iteration
        if self.main:
            print(f"resumed from {checkpoint} at iteration {self.start_iteration}", flush=True)
            if self.average is not None and not averaged:
                print(f"  weight average (train.ema_decay={self.average.decay}) starts here", flush=True)
            if self.runtime.world_size > 1 and not same_world:
                print(f"  saved by {max(len(per_rank), 1)} process(es): every rank starts from rank 0's RNG state")
            for key, (old, new) in changed.items():
                print(f"  changed on resume: {key}: {old!r} -> {new!r}", flush=True)

    def _changed_options(self, checkpoint: str, saved: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """The options that differ from the checkpoint's; OptionsError if any of them is fixed by it."""
        old, new = dict(saved), to_dict(self.options)
        for side in (old, new):  # the network as built: a preset and the same sizes spelled out are equal
            network = side.get("network_g") or {}
            side["network_g"] = NetworkGOptions(**network).model_config().to_dict()
        changed = differences(old, new)
        changed.pop("path.resume_state", None)
        sections = tuple(key for key in RESUME_FIXED if key.endswith("."))
        fixed = [key for key in changed if key in RESUME_FIXED or key.startswith(sections)]
        if fixed:
            listed = "; ".join(f"{key}: {changed[key][0]!r} -> {changed[key][1]!r}" for key in fixed)
            raise OptionsError(
                f"cannot resume {checkpoint} with these options changed: {listed}. The checkpoint fixes the "
                "networks, the seed and the training data's order: drop these overrides, or start a new experiment "
                "(another --name)"
            )
        return changed

    # ------------------------------------------------------------------------------------ the loop
    def steps(self, dataset: Dataset) -> Iterator[tuple[int, dict]]:
        """``(iteration, batch)`` from the resumed iteration + 1 to ``train.total_iter``, this rank's
        batches of ``dataset`` (see :func:`batch_stream`). The first Ctrl-C ends the loop after the
        current iteration (``interrupted`` is then True and :meth:`finish` saves a checkpoint)."""
        data = self.options.datasets.train
        batches = batch_stream(
            dataset,
            data.batch_size_per_gpu,
            data.num_worker_per_gpu,
            self.options.manual_seed,
            self.position,
            self.runtime.rank,
            self.runtime.world_size,
            pin_memory=self.runtime.device.type == "cuda",
        )
        with StopOnInterrupt() as stop:
            while self.iteration < self.options.train.total_iter and not self._any_rank(stop.requested):
                try:
                    batch = next(batches)
                except Exception:
                    if stop.requested:  # Ctrl-C also reached the DataLoader workers
                        break
                    raise
                yield self.iteration + 1, batch
                self.iteration += 1
            self.interrupted = self._any_rank(stop.requested)

    def _any_rank(self, flag: bool) -> bool:
        """``flag`` on any rank (under DDP every rank must leave the loop at the same iteration)."""
        if not self.runtime.distributed or not dist.is_initialized():
            return flag
        shared = torch.tensor([int(flag)], device=self.runtime.device)
        dist.all_reduce(shared, op=dist.ReduceOp.MAX)
        return bool(shared.item())

    # ------------------------------------------------------------------------------------ each step
    def after_step(self, iteration: int, values: dict[str, float], images: tuple[torch.Tensor, ...]) -> None:
        """Progress bar, logs, image grid, validation and periodic checkpoint for a finished iteration.
        ``images``: (input, output, ground truth) of the batch."""
        logger, val_freq = self.options.logger, self.options.val.val_freq
        if self.average is not None:
            self.average.update(self.model)
        self.progress.update(values={k[2:]: v for k, v in values.items() if k.startswith("l_")})
        if self.main and iteration % logger.print_freq == 0:
            self.log.scalars(iteration, {f"train/{k}": v for k, v in values.items()})
        if self.main and logger.show_tf_imgs_freq and iteration % logger.show_tf_imgs_freq == 0:
            grid = save_image_grid(os.path.join(self.directory, "samples", f"iter_{iteration:08d}.png"), images)
            self.log.image("train/input_output_gt", iteration, grid)
        if val_freq and iteration % val_freq == 0 and iteration != self.options.train.total_iter:
            self.run_validation(iteration)
        if logger.save_checkpoint_freq and iteration % logger.save_checkpoint_freq == 0:
            self.save(iteration)

    def run_validation(self, iteration: int, save_dir: str | None = None) -> dict[str, float]:
        """Validate on rank 0, log, keep ``best/`` when the PSNR improved; returns the metrics."""
        metrics: dict[str, float] = {}
        if self.main:
            metrics = self.validate(self.evaluated, save_dir=save_dir)
            self.log.scalars(iteration, {f"val/{k}": v for k, v in metrics.items() if k != "count"})
            improved = metrics["psnr"] > self.best["psnr"]
            if improved:
                self.best = {"psnr": metrics["psnr"], "iteration": iteration}
                save_pretrained(self.evaluated, os.path.join(self.directory, "best"), {"iteration": str(iteration)})
            shown = {k: v for k, v in metrics.items() if k != "count"}
            self.progress.write(f"val @ {iteration}: {format_values(shown)}{' (best)' if improved else ''}")
        barrier(self.runtime)
        return metrics

    def save(self, iteration: int) -> str | None:
        """Write checkpoint ``iteration`` (rank 0, with every rank's RNG state) and point ``latest`` at it."""
        if iteration == self.last_saved:
            return None
        path = None
        rng_per_rank = [capture_rng_state()]
        if self.runtime.distributed and dist.is_initialized():
            rng_per_rank = [None] * self.runtime.world_size
            dist.all_gather_object(rng_per_rank, capture_rng_state())
        if self.main:
            state = {
                "format_version": FORMAT_VERSION,
                "iteration": iteration,
                "epoch": self.position.epoch,
                "batch": self.position.batch,
                "best": self.best,
                "update": self.update.state_dict(),
                "rng": rng_per_rank[0],
                "rng_per_rank": rng_per_rank,
                "buffers": self._transient_buffers(),  # e.g. codebook usage counts (not in the weights)
                "options": to_dict(self.options),
            }
            if self.average is not None:
                state["average"] = self.average.state_dict()
            path = write_checkpoint(
                self.checkpoints, iteration, self.model, state, self.options_yaml, self.options.logger.keep_checkpoints
            )
        self.last_saved = iteration
        barrier(self.runtime)
        return path

    def _transient_buffers(self) -> dict[str, torch.Tensor]:
        """The model's non-persistent buffers: training state that the weights file leaves out."""
        persistent = self.model.state_dict().keys()
        return {name: buf for name, buf in self.model.named_buffers() if name not in persistent}

    # ------------------------------------------------------------------------------------------- end
    def finish(self) -> dict[str, float]:
        """Save the last checkpoint; unless interrupted, validate (outputs into ``results/`` with
        ``val.save_img``), keep ``final/`` and return the metrics."""
        iteration = self.iteration
        self.progress.close()
        self.save(iteration)
        metrics: dict[str, float] = {}
        if self.interrupted:
            if self.main:
                print(f"stopped at iteration {iteration}; continue with --resume (experiment {self.directory})")
        elif iteration > self.start_iteration or not all(
            os.path.isdir(os.path.join(self.directory, kept)) for kept in ("best", "final")
        ):  # also a run stopped exactly at its last iteration: it still owes its final validation and model
            results = os.path.join(self.directory, "results") if self.options.val.save_img else None
            metrics = self.run_validation(iteration, results)
            if self.main:
                save_pretrained(self.evaluated, os.path.join(self.directory, "final"), {"iteration": str(iteration)})
                print(f"models: {self.directory}/best (best validation PSNR), {self.directory}/final", flush=True)
        self.log.close()
        return metrics

    def result(self, metrics: dict[str, float]) -> dict:
        """What a recipe's ``main`` returns."""
        return {
            "metrics": metrics,
            "interrupted": self.interrupted,
            "iteration": self.iteration,
            "directory": self.directory,
        }
