"""Argument checks shared by the functionals and layers of vqcnir_ops and by vqcnir (public: ``vqcnir_ops.validation``).

Each error names the argument and what was expected.
"""

from __future__ import annotations

import torch

from vqcnir_ops._dtypes import FLOAT_DTYPES


def check_tensor(
    name: str,
    value: object,
    *,
    ndim: int | tuple[int, ...] | None = None,
    floating: bool = True,
) -> torch.Tensor:
    """Check that ``value`` is a tensor with ``ndim`` dimensions and (by default) a float dtype."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"argument '{name}' must be a torch.Tensor, got {type(value).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if value.dim() not in allowed:
            expected = " or ".join(str(n) for n in allowed)
            raise ValueError(f"argument '{name}' must have {expected} dimensions, got shape {tuple(value.shape)}")
    if floating and value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"argument '{name}' must be float16, bfloat16, float32 or float64, got {value.dtype}")
    return value


def check_same_device(**tensors: torch.Tensor) -> None:
    """All tensors on one device; the message lists each argument's device."""
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        listed = ", ".join(f"'{name}' on {device}" for name, device in devices.items())
        raise ValueError(f"arguments must be on the same device, got {listed}")
