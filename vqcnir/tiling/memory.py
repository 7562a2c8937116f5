"""Memory: budgets, what a device has free, and the planner's estimates of a run's peak.

Estimates come from the traced graph, not from measurements:

- whole-image inference: the network's tensors from creation to the moment Python dropped them (recorded
  while tracing), views sharing their base, plus each operation's working memory;
- a pass of exact tiling: the activations it keeps at full resolution (host memory) plus one tile's
  working set: the crops it reads, the values it computes over their regions while they are in use,
  and each operation's working memory.

Both are multiplied by :data:`SAFETY` (allocator rounding, library scratch space) and get
:data:`RUNTIME` added (what a process allocates on its first convolutions: oneDNN's primitives and
scratch space, thread-local buffers, heap fragmentation); the tests compare them with measured peaks.
"""

from __future__ import annotations

import math
import os
import re

import torch

from vqcnir.tiling.graph import Graph, Node, Ref
from vqcnir.tiling.regions import Region
from vqcnir.tiling.schedule import Pass, Schedule, halo, tile_regions

SAFETY = 1.4
RUNTIME = 128 * 2**20
UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6, "mib": 2**20, "g": 2**30,
         "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12, "tib": 2**40}  # fmt: skip


class MemoryBudgetError(MemoryError):
    """Even the smallest tiles do not fit the memory budget; the message says what needs how much."""


def parse_memory(value: int | float | str | None, name: str = "max_memory") -> int | None:
    """Bytes from ``4_000_000_000``, ``"4GB"`` (10**9), ``"4GiB"`` / ``"4G"`` (2**30), ``"512MB"``; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"argument '{name}' must be a number of bytes or a string like '4GB', got {value!r}")
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", value)
        if match is None or match.group(2).lower() not in UNITS:
            raise ValueError(f"argument '{name}' must look like '4GB', '512MiB' or a number of bytes, got {value!r}")
        value = float(match.group(1)) * UNITS[match.group(2).lower()]
    if not math.isfinite(value) or value < 1:  # inf would overflow int(); 0.5 would become "0 B"
        raise ValueError(f"argument '{name}' must be a finite number of bytes >= 1, got {value!r}")
    return int(value)


def format_bytes(count: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{int(count)} B"


def available_memory(device: torch.device) -> int:
    """Free memory now: ``MemAvailable`` of /proc/meminfo (CPU), or on CUDA the driver's free memory plus
    the blocks torch's caching allocator holds unused (after one restoration they are free to the next)."""
    if device.type == "cuda":
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(torch.cuda.mem_get_info(device)[0]) + cached
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def eager_peak(graph: Graph) -> int:
    """Estimated peak of whole-image inference: tensors alive between creation and Python's release."""
    size: dict[int, int] = {}
    born: dict[int, int] = {}
    died: dict[int, int] = {}
    end = len(graph.nodes) + 1
    for node in graph.nodes:
        if not node.spatial:
            continue
        size[node.storage] = max(size.get(node.storage, 0), node.full_bytes())
        born.setdefault(node.storage, node.index)
        died[node.storage] = max(died.get(node.storage, 0), end if node.died is None else node.died)
    events = sorted([(t, s) for s, t in born.items()] + [(t, -s - 1) for s, t in died.items()])
    live = peak = 0
    transient = {n.index: n.op.workspace(n, n.grid.whole()) for n in graph.nodes if n.spatial and n.op.kind == "local"}
    for time, key in events:
        if key >= 0:
            live += size[key]
            peak = max(peak, live + transient.get(time, 0))
        else:
            live -= size[-key - 1]
    return int(peak * SAFETY) + RUNTIME


def buffer_bytes(ref: Ref) -> int:
    return ref.node.pixel_bytes(ref.index) * ref.node.grid.height * ref.node.grid.width


def host_bytes(schedule: Schedule) -> list[int]:
    """Full-resolution activations held during each pass (input image, buffers being written, outputs)."""
    alive = buffer_bytes(Ref(schedule.graph.source, 0))
    held = []
    for p in schedule.passes:
        alive += sum(buffer_bytes(ref) for ref in p.materialise)
        held.append(alive)
        alive -= sum(buffer_bytes(ref) for ref in p.free)
    return held


def centre_tile(p: Pass, side: int) -> Region:
    grid = p.grid
    h, w = min(side, grid.height), min(side, grid.width)
    y0, x0 = (grid.height - h) // 2, (grid.width - w) // 2
    return Region(y0, y0 + h, x0, x0 + w)


def working_set(p: Pass, side: int) -> int:
    """Estimated peak bytes of one interior tile of ``side`` pixels (reads, values in use, op workspace)."""
    tile = centre_tile(p, side)
    regions = tile_regions(p, tile)
    live = sum(region.area * ref.node.pixel_bytes(ref.index) for ref, region in regions.sources.items())
    uses: dict[Node, int] = {}
    for node in (*p.nodes, *p.reductions):
        for used in {ref.node for ref in node.inputs if ref.node in regions.nodes}:
            uses[used] = uses.get(used, 0) + 1
    peak = live
    for node in sorted((*p.nodes, *p.reductions), key=lambda n: n.index):
        if node.op.kind == "local":
            region = regions.nodes[node]
            out = region.area * node.pixel_bytes()
            peak = max(peak, live + out + node.op.workspace(node, region))
            live += out
            if not uses.get(node):
                live -= out
        for used in {ref.node for ref in node.inputs if ref.node in regions.nodes}:
            uses[used] -= 1
            if uses[used] == 0:
                live -= regions.nodes[used].area * used.pixel_bytes()
    return int(peak * SAFETY)


TILE_SIDES = (4096, 3072, 2048, 1536, 1024, 768, 512, 384, 256, 192, 128, 96, 64, 48, 32, 24, 16)


def pass_halo(p: Pass, side: int) -> int:
    tile = centre_tile(p, side)
    return halo(p, tile_regions(p, tile), tile)


def choose_tiles(
    schedule: Schedule, budget: int | None, count_host: bool, tile: int | None = None
) -> list[tuple[int, int]]:
    """``(tile side, estimated peak bytes)`` per pass.

    ``tile`` given: that side everywhere (grown to the pass's halo when smaller). Else the largest side
    of :data:`TILE_SIDES` (or the whole grid) whose estimate fits ``budget`` (no budget: 512). The estimate
    counts the host buffers when ``count_host`` (a CPU run without offloading).
    """
    hosts = host_bytes(schedule) if count_host else [0] * len(schedule.passes)
    chosen = []
    for p, host in zip(schedule.passes, hosts, strict=True):
        whole = max(p.grid.height, p.grid.width)
        if tile is not None or budget is None:
            side = min(tile or 512, whole)
            side = max(side, min(pass_halo(p, side), whole))
            chosen.append((side, host + working_set(p, side) + RUNTIME))
            continue
        for side in (whole, *(s for s in TILE_SIDES if s < whole)):
            need = host + working_set(p, side) + RUNTIME
            if need <= budget and (side >= whole or pass_halo(p, side) <= side):
                chosen.append((side, need))
                break
        else:
            side = max(TILE_SIDES[-1], min(pass_halo(p, TILE_SIDES[-1]), whole))
            need = working_set(p, side) + RUNTIME
            raise MemoryBudgetError(
                f"even {side}-pixel tiles do not fit max_memory={format_bytes(budget)}: pass {p.index} "
                f"({p.describe()}) needs about {format_bytes(need)} per tile"
                + (
                    f" plus {format_bytes(host)} of full-resolution activations kept between passes "
                    "(offload them to disk with offload=DIR)"
                    if host
                    else ""
                )  # fmt: skip
            )
    return chosen
