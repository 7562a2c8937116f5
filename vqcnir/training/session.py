"""The bookkeeping around a recipe's loop: experiment folder, resume, progress, logs, image grids,
validation with the best model kept, checkpoints, and the final save (also after Ctrl-C).

Experiment folder ``<path.experiments_root>/<name>/``: ``options.yaml`` (the resolved options),
``checkpoints/`` (:mod:`vqcnir.training.state`), ``best/`` (the generator with the best validation
PSNR, a ``save_pretrained`` folder), ``final/`` (the generator at the end), ``samples/`` (PNG grids),
``logs/`` (TensorBoard or ``metrics.csv``), ``results/`` (the validation outputs at the end, PNG).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset

from vqcnir.checkpoint import atomic_write, load_weights, save_pretrained

from .config import RecipeOptions
from .data import DataPosition, batch_stream
from .monitor import Progress, ScalarLog, format_values, save_image_grid
from .options import dump_yaml, to_dict
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
        validate: ``validate(save_dir=None)`` returns validation metrics (``psnr`` decides the best model),
            writing the outputs as PNGs into ``save_dir`` when given; runs on rank 0 only.
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
        if self.main:
            os.makedirs(self.directory, exist_ok=True)
            print(f"options ({options.name}):\n{self.options_yaml}", flush=True)
            atomic_write(os.path.join(self.directory, "options.yaml"), lambda p: _write(p, self.options_yaml))
        self.log = ScalarLog(os.path.join(self.directory, "logs"), options.logger.use_tb_logger, enabled=self.main)
        self.progress: Progress | None = None

    # ----------------------------------------------------------------------------------------- resume
    def resume(self) -> int:
        """Load ``path.resume_state`` if set (``auto``: this experiment's latest checkpoint, if any).
        Restores weights, optimizers, schedules, discriminator, data position, best metric and RNG
        states; returns the iteration to continue after (0 for a fresh run)."""
        wanted = self.options.path.resume_state
        if wanted:
            checkpoint = find_checkpoint(self.directory if wanted == "auto" else wanted)
            if checkpoint is None and wanted != "auto":
                raise FileNotFoundError(f"path.resume_state: no checkpoint found at {wanted}")
            if checkpoint is not None:
                state = load_training_state(checkpoint)
                load_weights(self.model, checkpoint)
                self.update.load_state_dict(state["update"])
                self.position = DataPosition(int(state["epoch"]), int(state["batch"]))
                self.best = dict(state["best"])
                buffers = self._transient_buffers()
                for name, value in state["buffers"].items():
                    buffers[name].copy_(value)
                restore_rng_state(state["rng"])
                self.start_iteration = self.iteration = int(state["iteration"])
                self.last_saved = self.start_iteration
                if self.main:
                    print(f"resumed from {checkpoint} at iteration {self.start_iteration}", flush=True)
        self.progress = Progress(
            self.options.train.total_iter,
            self.start_iteration,
            enabled=self.main,
            use_tqdm=None if self.options.logger.progress_bar else False,
            print_freq=self.options.logger.print_freq,
        )
        return self.start_iteration

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
        self.progress.update({k[2:]: v for k, v in values.items() if k.startswith("l_")})
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
            metrics = self.validate(save_dir=save_dir)
            self.log.scalars(iteration, {f"val/{k}": v for k, v in metrics.items() if k != "count"})
            improved = metrics["psnr"] > self.best["psnr"]
            if improved:
                self.best = {"psnr": metrics["psnr"], "iteration": iteration}
                save_pretrained(self.model, os.path.join(self.directory, "best"), {"iteration": str(iteration)})
            shown = {k: v for k, v in metrics.items() if k != "count"}
            self.progress.write(f"val @ {iteration}: {format_values(shown)}{' (best)' if improved else ''}")
        barrier(self.runtime)
        return metrics

    def save(self, iteration: int) -> str | None:
        """Write checkpoint ``iteration`` (rank 0) and point ``latest`` at it."""
        path = None
        if self.main and iteration != self.last_saved:
            state = {
                "format_version": FORMAT_VERSION,
                "iteration": iteration,
                "epoch": self.position.epoch,
                "batch": self.position.batch,
                "best": self.best,
                "update": self.update.state_dict(),
                "rng": capture_rng_state(),
                "buffers": self._transient_buffers(),  # e.g. codebook usage counts (not in the weights)
                "options": to_dict(self.options),
            }
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
        elif iteration > self.start_iteration or not os.path.isdir(os.path.join(self.directory, "best")):
            results = os.path.join(self.directory, "results") if self.options.val.save_img else None
            metrics = self.run_validation(iteration, results)
            if self.main:
                save_pretrained(self.model, os.path.join(self.directory, "final"), {"iteration": str(iteration)})
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


def _write(path: str, text: str) -> None:
    with open(path, "w") as out:
        out.write(text)
