"""Process setup for the recipes: device, torchrun/DDP, seeding, bf16 autocast, Ctrl-C handling.

Run a recipe with plain ``python`` (one process) or ``torchrun --nproc_per_node=N`` (DDP; NCCL on CUDA,
gloo on CPU). Everything here also works with a single process, so the DDP path is testable on CPU.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from vqcnir.device import check_device

from .options import OptionsError


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
    """Pick the device (see :func:`check_device`) and, under torchrun (``WORLD_SIZE`` set), join the process group."""
    distributed = "WORLD_SIZE" in os.environ and "RANK" in os.environ
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    chosen = check_device(device, local_rank)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return Runtime(chosen, rank, local_rank, world_size, distributed)


def teardown_runtime() -> None:
    """Leave the process group (torchrun), if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def run_recipe(main: Callable[[], dict]) -> int:
    """Run a recipe's ``main`` as a command and return its exit status: 0, or 130 after Ctrl-C.

    Bad options (:class:`~vqcnir.training.options.OptionsError`, e.g. an option changed on ``--resume`` that
    the checkpoint fixes) print one ``error:`` line and give 2. Under DDP, losing another process (it
    crashed or was killed: the collective fails) prints which rank noticed and what to do, and gives 1.
    Leaves the process group in every case.
    """
    try:
        result = main()
    except OptionsError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    except RuntimeError as error:
        if not _lost_peer(error):
            raise
        rank = os.environ.get("RANK", "?")
        print(
            f"error: rank {rank} lost contact with another training process, which probably failed: look for its "
            f"error above. The latest checkpoint is intact; continue with --resume. ({error})",
            file=sys.stderr,
            flush=True,
        )
        return 1
    finally:
        teardown_runtime()
    return 130 if result["interrupted"] else 0


def _lost_peer(error: RuntimeError) -> bool:
    """Whether ``error`` is a collective failing because another process of the group went away."""
    if not (dist.is_available() and dist.is_initialized()):
        return False
    text = str(error).lower()
    signs = ("connection closed by peer", "connection reset by peer", "broken pipe", "remote process exited")
    return isinstance(error, getattr(dist, "DistError", ())) or any(sign in text for sign in signs)


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
