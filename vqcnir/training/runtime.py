"""Process setup for the recipes: device, torchrun/DDP, seeding, bf16 autocast, Ctrl-C handling.

Run a recipe with plain ``python`` (one process) or ``torchrun --nproc_per_node=N`` (DDP; NCCL on CUDA,
gloo on CPU). Everything here also works with a single process, so the DDP path is testable on CPU.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_runtime(device: str = "auto") -> Runtime:
    """Pick the device and, under torchrun (``WORLD_SIZE`` set), join the process group."""
    distributed = "WORLD_SIZE" in os.environ and "RANK" in os.environ
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    chosen = torch.device(device)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return Runtime(chosen, rank, local_rank, world_size, distributed)


def teardown_runtime() -> None:
    """Leave the process group (torchrun), if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def exit_code(result: dict) -> int:
    """Leave the process group and give a recipe's exit status: 130 after Ctrl-C, else 0."""
    teardown_runtime()
    return 130 if result["interrupted"] else 0


def barrier(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.barrier()


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(runtime: Runtime, mixed_precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when ``mixed_precision == "bf16"``; a no-op on CPU (float32 there)."""
    enabled = mixed_precision == "bf16" and runtime.device.type == "cuda"
    return torch.autocast(runtime.device.type, dtype=torch.bfloat16, enabled=enabled)


def wrap_model(module: nn.Module, runtime: Runtime, compile_model: bool) -> nn.Module:
    """``torch.compile`` (optional), then DDP under torchrun; keep the raw module for saving."""
    wrapped = torch.compile(module) if compile_model else module
    if runtime.distributed and any(p.requires_grad for p in module.parameters()):
        device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(wrapped, device_ids=device_ids)
    return wrapped


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(flag)


class StopOnInterrupt:
    """Turns the first Ctrl-C (SIGINT) into ``requested = True`` so the loop can save and stop; a
    second Ctrl-C interrupts at once. Restores the previous handler on exit."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupted: saving a checkpoint after this iteration (Ctrl-C again to stop now)", flush=True)

    def __enter__(self) -> StopOnInterrupt:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
            self._previous = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """``module.eval()`` and no gradients inside; the previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)
