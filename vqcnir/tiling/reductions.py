"""Reductions over all pixels (``sum``, ``mean``, ``amax``, ``amin``, ``var``, ``std``), accumulated tile by tile.

Shared by the rules of :mod:`vqcnir.tiling.rules` (reductions and global pools met among local calls) and
:mod:`vqcnir.tiling.statistics` (group norm and the channel attention, which merge the same moments).
Sums and counts in float64; variances by count, mean and sum of squared deviations, merged with Chan et
al.'s parallel update (no cancellation of a sum of squares).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vqcnir.tiling.graph import Node, ReduceOp, Ref
from vqcnir.tiling.regions import Region, take
from vqcnir.tiling.trace import Call, LazyTensor, Tracer

Moments = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # count, mean, sum of squared deviations (float64)


def moments(x: torch.Tensor, dims: list[int]) -> Moments:
    """Count, mean and sum of squared deviations over ``dims`` (kept as size 1), as float64.

    ``torch.var_mean`` (one pass, Welford, double accumulation on the CPU) on the tile as it is: no
    float64 copy of the tile. Half-precision tiles are read as float32.
    """
    xf = x if x.dtype in (torch.float32, torch.float64) else x.float()
    count = float(math.prod(x.shape[d] for d in dims))
    var, mean = torch.var_mean(xf, dim=dims, correction=0, keepdim=True)
    n = torch.tensor(count, dtype=torch.float64, device=x.device)
    return n, mean.to(torch.float64), var.to(torch.float64) * count


def merge_moments(a: Moments, b: Moments) -> Moments:
    """Chan, Golub and LeVeque's pairwise update."""
    (na, ma, sa), (nb, mb, sb) = a, b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * (nb / n), sa + sb + delta.square() * (na * nb / n)


def crop_input(node: Node, inputs: list[Any], region: Region, index: int = 0) -> torch.Tensor:
    return take(inputs[index], region, node.inputs[index].node.grid)


class SpatialReduce(ReduceOp):
    """``sum`` / ``mean`` / ``amax`` / ``amin`` / ``var`` / ``std`` over ``dims`` (which include the pixels)."""

    def __init__(
        self, name: str, dims: list[int], correction: float, shape: tuple[int, ...], dtype: torch.dtype
    ) -> None:
        self.name, self.dims, self.correction, self.shape, self.dtype = name, dims, correction, shape, dtype

    def describe(self) -> str:
        return f"{self.name} over dims {self.dims}"

    def partial(self, node: Node, inputs: list[Any], region: Region) -> Any:
        x = crop_input(node, inputs, region)
        if self.name in ("sum", "mean"):
            total = x.sum(dim=self.dims, keepdim=True)
            return total.to(torch.float64) if x.is_floating_point() else total, math.prod(x.shape[d] for d in self.dims)
        if self.name in ("amax", "amin"):
            return getattr(x, self.name)(dim=self.dims, keepdim=True)
        return moments(x, self.dims)

    def combine(self, a: Any, b: Any) -> Any:
        if self.name in ("sum", "mean"):
            return a[0] + b[0], a[1] + b[1]
        if self.name in ("amax", "amin"):
            return torch.maximum(a, b) if self.name == "amax" else torch.minimum(a, b)
        return merge_moments(a, b)

    def finalize(self, node: Node, state: Any, inputs: list[Any]) -> torch.Tensor:
        if self.name == "sum":
            value = state[0]
        elif self.name == "mean":
            value = state[0] / state[1]
        elif self.name in ("amax", "amin"):
            value = state
        else:
            count, _, squares = state
            value = squares / (count - self.correction)
            value = value.sqrt() if self.name == "std" else value
        return value.to(self.dtype).reshape(self.shape)


def _correction(call: Call) -> float:
    if "correction" in call.kwargs:
        return float(call.kwargs["correction"])
    unbiased = call.kwargs.get(
        "unbiased", call.args[2] if len(call.args) > 2 and isinstance(call.args[2], bool) else True
    )
    return 1.0 if unbiased else 0.0


def spatial_reduction(tracer: Tracer, call: Call, name: str, dims: list[int]) -> LazyTensor:
    """A reduction over ``dims`` (normalised; they include every pixel dim) of one activation."""
    if len(call.spatial()) != 1:
        raise call.error("reduces more than one full-resolution activation at once")
    lazy = call.spatial()[0]
    out = tracer.meta_call(call)
    out = out if isinstance(out, torch.Tensor) else out[0]
    op = SpatialReduce(name, dims, _correction(call) if name in ("var", "std") else 0.0, tuple(out.shape), out.dtype)
    node = tracer.record(op, [lazy._ref], [out], None, where=call.where)
    return tracer.wrap(Ref(node))
