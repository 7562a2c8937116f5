"""Which torch device a ``device`` option means on this machine (training recipes and every command)."""

from __future__ import annotations

import argparse

import torch


def check_device(device: str, local_rank: int = 0) -> torch.device:
    """The device meant by ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``) on this machine.

    ``"auto"`` is CUDA device ``local_rank`` when CUDA is available, else the CPU. Raises ValueError naming
    the option when the device does not exist here (e.g. ``cuda`` with a CPU-only torch).
    """
    if device == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        chosen = None
    if chosen is None or chosen.type not in ("cpu", "cuda"):
        raise ValueError(f"option 'device' must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, no GPU visible"
            raise ValueError(
                f"option 'device' is {device!r}, but this torch ({torch.__version__}, {build}) cannot use CUDA; "
                "use --device=cpu (or auto)"
            )
        index = local_rank if chosen.index is None else chosen.index
        if index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ValueError(f"option 'device' is {device!r}: cuda:{index} does not exist ({count} GPUs)")
    return chosen


def device_argument(parser: argparse.ArgumentParser, device: str | None) -> torch.device:
    """A command's ``--device`` (None: ``auto``) through :func:`check_device`; a bad one is a parser error."""
    try:
        return check_device(device or "auto")
    except ValueError as error:
        parser.error(str(error))
