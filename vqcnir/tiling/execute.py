"""Running a schedule: passes over tiles, full-resolution activations in host memory between them."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import tempfile
from collections.abc import Callable
from typing import Any

import torch

from vqcnir.tiling.graph import Node, Ref, select
from vqcnir.tiling.regions import Crop, Region, count_tiles, from_hw, take, tiles
from vqcnir.tiling.schedule import Pass, Schedule, tile_regions

Progress = Callable[[int, int, str], None]
TRIM_THRESHOLD = 32 * 2**20  # free heap bytes that make a tile give memory back (see release_free_memory)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]  # fmt: skip


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is None or not hasattr(libc, "malloc_trim"):
            return None
        if hasattr(libc, "mallinfo2"):
            libc.mallinfo2.restype = _MallInfo2
        return libc
    except OSError:
        return None


def release_free_memory(at_least: int = 0) -> None:
    """Give the C heap's free pages back to the OS (glibc ``malloc_trim``) when it holds ``at_least`` free bytes.

    Tiles allocate many blocks of a few MB, below glibc's mmap threshold: freed, they stay in the heap,
    fragmented, and the process's resident memory creeps up tile after tile (by 100+ MB over a pass of
    a 4 MP image). Trimming keeps it at what is in use; re-touching the released pages costs time, so
    between tiles it only runs once the free heap exceeds ``at_least`` (``mallinfo2``, glibc >= 2.33).
    """
    libc = _libc()
    if libc is None:
        return
    if at_least and hasattr(libc, "mallinfo2") and libc.mallinfo2().fordblks < at_least:
        return
    libc.malloc_trim(0)


class HostBuffers:
    """Full-resolution activations on the CPU: in RAM, or in memory-mapped files under ``offload``."""

    def __init__(self, offload: str | os.PathLike | None = None) -> None:
        if offload is not None and not os.path.isdir(offload):
            raise FileNotFoundError(f"argument 'offload' must be an existing folder, got {os.fspath(offload)!r}")
        self.offload = offload

    def allocate(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        if self.offload is None:
            return torch.empty(shape, dtype=dtype)
        handle, path = tempfile.mkstemp(prefix="vqcnir-tile-", suffix=".bin", dir=self.offload)
        os.close(handle)
        try:
            count = 1
            for size in shape:
                count *= size
            return torch.from_file(path, shared=True, size=count, dtype=dtype).view(shape)
        finally:
            os.remove(path)  # the mapping stays valid; the space is released with the tensor


def _buffer_shape(ref: Ref) -> tuple[int, ...]:
    meta, grid = ref.meta, ref.node.grid
    lead = tuple(meta.shape[:-2]) if ref.layout == "hw" else tuple(meta.shape[:-1])
    return (*lead, grid.height, grid.width)


class Runner:
    """Executes a :class:`Schedule` on ``device``; also the :class:`~vqcnir.tiling.graph.Context` of its ops."""

    def __init__(self, schedule: Schedule, device: torch.device, fetch_limit: int, offload: str | None = None) -> None:
        self.schedule, self.device, self.fetch_limit = schedule, device, fetch_limit
        self.host = HostBuffers(offload)
        self.buffers: dict[Ref, torch.Tensor] = {}
        self.small: dict[Ref, torch.Tensor] = {}

    def fetch(self, ref: Ref, region: Region) -> Crop:
        region = region.clip(ref.node.grid)
        view = self.buffers[ref][..., region.y0 : region.y1, region.x0 : region.x1]
        return Crop(from_hw(view.to(self.device), ref.layout), region, ref.layout)

    def _store_small(self, node: Node, value: Any) -> None:
        values = value if isinstance(value, tuple) else (value,)
        for index, tensor in enumerate(values):
            self.small[Ref(node, index)] = tensor

    def _compute_smalls(self, nodes: list[Node]) -> None:
        for node in nodes:
            self._store_small(node, node.op.compute(node, [self.small[ref] for ref in node.inputs]))

    def run(self, image: torch.Tensor, sides: list[int], progress: Progress | None = None) -> torch.Tensor:
        """The output for ``image`` (the traced input, on the CPU or ``device``), on the CPU."""
        schedule = self.schedule
        self.buffers[Ref(schedule.graph.source, 0)] = image
        self._compute_smalls(schedule.first_smalls)
        total = sum(count_tiles(p.grid, side) for p, side in zip(schedule.passes, sides, strict=True))
        done = 0
        for p, side in zip(schedule.passes, sides, strict=True):
            for ref in p.materialise:
                self.buffers[ref] = self.host.allocate(_buffer_shape(ref), ref.meta.dtype)
            states: dict[Node, Any] = {}
            count = count_tiles(p.grid, side)
            for number, tile in enumerate(tiles(p.grid, side), start=1):
                self._tile(p, tile, states)
                release_free_memory(at_least=TRIM_THRESHOLD)
                done += 1
                if progress is not None:
                    progress(done, total, f"pass {p.index + 1}/{len(schedule.passes)} {p.describe()}: "
                                          f"tile {number}/{count}")  # fmt: skip
            for node in p.reductions:
                inputs = [None if ref.node.spatial else self.small[ref] for ref in node.inputs]
                self._store_small(node, node.op.finalize(node, states[node], inputs))
            self._compute_smalls(p.smalls)
            for ref in p.free:
                del self.buffers[ref]
            release_free_memory()
        return self.buffers[schedule.graph.outputs[0]]

    def _tile(self, p: Pass, tile: Region, states: dict[Node, Any]) -> None:
        regions = tile_regions(p, tile)
        crops = {ref: self.fetch(ref, region) for ref, region in regions.sources.items()}
        values: dict[Node, tuple] = {}
        uses: dict[Node, int] = {}
        for node in (*p.nodes, *p.reductions):
            for used in {ref.node for ref in node.inputs if ref.node in regions.nodes}:
                uses[used] = uses.get(used, 0) + 1
        writes: dict[Node, list[Ref]] = {}
        for ref in p.materialise:
            writes.setdefault(ref.node, []).append(ref)

        def inputs_of(node: Node) -> list[Any]:
            out: list[Any] = []
            for position, ref in enumerate(node.inputs):
                if position in getattr(node.op, "random_access", ()):
                    out.append(None)
                elif ref in crops:
                    out.append(crops[ref])
                elif ref.node.spatial:
                    out.append(Crop(select(values[ref.node], ref.index), regions.nodes[ref.node], ref.layout))
                else:
                    out.append(self.small[ref])
            return out

        for node in sorted((*p.nodes, *p.reductions), key=lambda n: n.index):
            if node.op.kind == "reduce":
                state = node.op.partial(node, inputs_of(node), tile)
                states[node] = state if node not in states else node.op.combine(states[node], state)
            else:
                region = regions.nodes[node]
                value = node.op.compute(node, inputs_of(node), region, self)
                values[node] = value if isinstance(value, tuple) else (value,)
                for ref in writes.get(node, ()):
                    crop = Crop(values[node][ref.index], region, ref.layout)
                    hw = Crop(take(crop, tile, node.grid), tile, ref.layout).as_hw()
                    self.buffers[ref][..., tile.y0 : tile.y1, tile.x0 : tile.x1].copy_(hw)
                if not uses.get(node):
                    del values[node]
            for used in {ref.node for ref in node.inputs if ref.node in values}:
                uses[used] -= 1
                if uses[used] == 0:
                    del values[used]
