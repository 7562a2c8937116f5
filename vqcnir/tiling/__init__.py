"""Exact tiled inference: whole-image results in memory bounded by the tile size.

Why tiles usually change the result: GroupNorm, average pooling and channel attention use statistics of
everything they see, so a tile restored alone sees other statistics than the whole image (16-28 dB
apart for VQCNIR). But every such statistic is a *sum over pixels*, so it can be accumulated tile by
tile; only its consumers must wait until all tiles are summed.

Design (one file per step):

1. :mod:`~vqcnir.tiling.trace` runs the network's own ``forward`` once on a lazy tensor (a tensor subclass
   with shape, dtype and device but no data). Each torch call on it goes to a *rule* that checks the call
   is exact on tiles and records a node: per-pixel ops, windows (conv, pooling), power-of-two resampling
   (:mod:`~vqcnir.tiling.rules`); reductions over the pixels and what uses them (GroupNorm, means,
   variances, extrema, the bi-directional channel attention: :mod:`~vqcnir.tiling.statistics`);
   deformable convolution, whose receptive field the offsets decide (:mod:`~vqcnir.tiling.deform`);
   layers run whole on crops, such as ``VectorQuantizer`` (:mod:`~vqcnir.tiling.modules`). Anything
   else is refused with a :class:`TilingError` naming the function and the module: the schedule comes
   from the network's structure, never from a list per model.
2. :mod:`~vqcnir.tiling.schedule` orders the work into passes separated by the reductions; activations
   read by a later pass (or sampled at random, or returned) are materialised at full resolution in host
   memory, in the compute dtype (or in memory-mapped files); everything else is recomputed inside the
   tiles, each tile reading its inputs with the halo the receptive field needs, at any size (a tile
   smaller than the halo only costs time).
3. :mod:`~vqcnir.tiling.memory` estimates the peak of whole-image inference and of each pass for a tile
   size, and picks per pass the largest tile that fits a budget.
4. :mod:`~vqcnir.tiling.execute` runs the passes, tile by tile, accumulating each reduction's sums in
   float64 and writing materialised activations into their host buffers.

The result equals whole-image inference up to floating-point rounding (sums in another order, float64
statistics). Limits: per-pixel ops must be on the rule list; resampling only by powers of two without
``align_corners``; reductions must cover all pixel dims; no padding modes other than zeros inside
convolutions; data-dependent Python (``if x.mean() > 0``) cannot be traced; a deformable convolution
whose offsets scatter a tile's samples over the whole image reads (and holds) that much of its input.

Example:
    >>> plan = plan_exact(lambda x: model(x).image, (1, 3, 1024, 1536), torch.float32, torch.device("cpu"),
    ...                   module=model, budget=parse_memory("2GB"))  # doctest: +SKIP
    >>> out = run_exact(plan, image)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from vqcnir.tiling import deform, rules, statistics  # noqa: F401  (register their rules)
from vqcnir.tiling.capture import trace
from vqcnir.tiling.execute import Progress, Runner
from vqcnir.tiling.graph import Graph
from vqcnir.tiling.memory import (
    MemoryBudgetError,
    available_memory,
    choose_tiles,
    eager_peak,
    format_bytes,
    parse_memory,
)
from vqcnir.tiling.modules import register_local_module
from vqcnir.tiling.regions import TilingError
from vqcnir.tiling.schedule import Schedule, build_schedule

__all__ = [
    "MemoryBudgetError",
    "Plan",
    "TilingError",
    "available_memory",
    "format_bytes",
    "parse_memory",
    "plan_exact",
    "register_local_module",
    "run_exact",
    "trace",
]


@dataclass
class Plan:
    """A traced network, its passes and the tile side of each pass, with the planner's estimates."""

    graph: Graph
    schedule: Schedule
    sides: list[int]
    peak_bytes: int  # estimated peak of the tiled run (host buffers included on CPU without offload)
    whole_bytes: int  # estimated peak of whole-image inference
    device: torch.device
    offload: str | None = None
    whole: bool = False  # whole-image inference fits the budget: no tiles planned

    def __repr__(self) -> str:
        return f"Plan({self.describe().splitlines()[0]})"

    def describe(self) -> str:
        if self.whole:
            return f"whole image, estimated peak {format_bytes(self.whole_bytes)}"
        lines = [f"{len(self.schedule.passes)} passes, estimated peak {format_bytes(self.peak_bytes)} "
                 f"(whole image: {format_bytes(self.whole_bytes)})"]  # fmt: skip
        for p, side in zip(self.schedule.passes, self.sides, strict=True):
            lines.append(f"  {p.index:3d} {p.describe()}: tile {side}, {len(p.nodes)} ops, {len(p.reductions)} sums")
        return "\n".join(lines)


def plan_exact(
    fn: Callable[[torch.Tensor], torch.Tensor],
    shape: Sequence[int],
    dtype: torch.dtype,
    device: torch.device,
    module: nn.Module | None = None,
    budget: int | None = None,
    tile: int | None = None,
    offload: str | None = None,
    whole_if_fits: bool = False,
) -> Plan:
    """Trace ``fn`` for inputs of ``shape`` and plan exact tiled inference on ``device``.

    Args:
        fn: image ``[B, C, H, W]`` -> one full-resolution tensor (e.g. ``lambda x: model(x).image``).
        module: the network ``fn`` runs (module paths in messages, module-level rules).
        budget: bytes the run may use (CPU: host buffers + tiles, unless ``offload``; GPU: device memory);
            None: tiles of ``tile`` (default 512) pixels.
        tile: tile side in pixels of each pass's grid (grown to a pass's halo when smaller).
        offload: a folder for memory-mapped host buffers.
        whole_if_fits: plan no tiles (``plan.whole``) when whole-image inference is estimated to fit ``budget``.

    Raises:
        TilingError: an operation cannot be tiled exactly (the message names it and its module).
        MemoryBudgetError: even the smallest tiles do not fit ``budget``.
    """
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 1):
        raise ValueError(f"argument 'tile' must be a positive int, got {tile!r}")
    graph = trace(fn, shape, dtype, device, module)
    schedule = build_schedule(graph)
    whole = eager_peak(graph)
    if whole_if_fits and budget is not None and whole <= budget:
        return Plan(graph, schedule, [], whole, whole, device, offload, whole=True)
    chosen = choose_tiles(schedule, budget, count_host=device.type == "cpu" and offload is None, tile=tile)
    sides = [side for side, _ in chosen]
    peak = max((need for _, need in chosen), default=0)
    return Plan(graph, schedule, sides, peak, whole, device, offload)


def run_exact(
    plan: Plan, image: torch.Tensor, progress: Progress | None = None, fetch_limit: int | None = None
) -> torch.Tensor:
    """Run ``plan`` on ``image`` (the traced shape; CPU or the plan's device); returns the output on the CPU.

    ``progress(done, total, description)`` is called after each tile. ``fetch_limit``: bytes a deformable
    convolution's box of samples may hold before its tile is split (default: a quarter of the plan's peak,
    at least 64 MiB).
    """
    if plan.whole:
        raise ValueError("this plan is whole-image inference (plan.whole): run the network itself")
    traced = plan.graph.source.metas[0]
    if tuple(image.shape) != tuple(traced.shape) or image.dtype != traced.dtype:
        raise ValueError(
            f"argument 'image' must have the traced shape {tuple(traced.shape)} and dtype {traced.dtype}, "
            f"got {tuple(image.shape)} {image.dtype}"
        )
    limit = fetch_limit if fetch_limit is not None else max(plan.peak_bytes // 4, 64 * 2**20)
    with torch.inference_mode():
        return Runner(plan.schedule, plan.device, limit, plan.offload).run(image, plan.sides, progress)
