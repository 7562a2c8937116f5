"""The traced network: nodes, what each computes (its op), and how ops see tiles.

A node has one or more outputs of one kind:

- *spatial*: full-resolution activations on a :class:`Grid` (the last two dims, layout ``'hw'``, or the
  pixels flattened into the last dim, layout ``'n'``); computed region by region (``LocalOp``), or given
  (``SourceOp``: the input image);
- *small*: whole-image values without a pixel grid: the result of a reduction over all pixels
  (``ReduceOp``: sums accumulated tile by tile, then finalised) or a function of such values
  (``SmallOp``), computed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from torch.utils._pytree import tree_map

from vqcnir.tiling.regions import Crop, Grid, Region

Value = torch.Tensor | tuple[torch.Tensor, ...]


class Context(Protocol):
    """What an op may use while computing a tile: the compute device and random access to materialised
    activations (``fetch(ref, region)``: a :class:`Crop` over ``region`` clipped to the grid, on ``device``)."""

    device: torch.device
    fetch_limit: int  # bytes a random-access read should stay under

    def fetch(self, ref: Ref, region: Region) -> Crop: ...


@dataclass(frozen=True)
class Slot:
    """Where the ``index``-th lazy input goes in a recorded call's arguments."""

    index: int


def fill(template: Any, values: Sequence[Any]) -> Any:
    """``template`` with every :class:`Slot` replaced by its value."""
    return tree_map(lambda leaf: values[leaf.index] if isinstance(leaf, Slot) else leaf, template)


class Op:
    """What a node computes; ``describe`` names it in messages."""

    kind: ClassVar[str] = ""

    def describe(self) -> str:
        return type(self).__name__


class SourceOp(Op):
    """An activation given in full (the input image)."""

    kind = "source"


class LocalOp(Op):
    """Spatial outputs over any region, from its spatial inputs over regions it names (and small values).

    ``random_access`` lists input positions read through ``ctx.fetch`` wherever the data says (deformable
    sampling); they must be materialised before the node runs.
    """

    kind = "local"
    random_access: tuple[int, ...] = ()
    cheap = False  # recomputed wherever it is needed instead of being materialised (constants)

    def recomputable(self, node: Node) -> bool:
        """Cheap enough to recompute in later passes instead of keeping its output (per-pixel ops, 1x1
        convolutions, resampling)."""
        return False

    def input_regions(self, node: Node, region: Region) -> list[Region | None]:
        """The region of each spatial input that ``region`` of the output needs (unclipped; None for the
        small and random-access inputs)."""
        return [
            region if ref.node.spatial and i not in self.random_access else None for i, ref in enumerate(node.inputs)
        ]

    def compute(self, node: Node, inputs: list[Any], region: Region, ctx: Context) -> Value:
        """Outputs over ``region``: ``inputs`` holds a :class:`Crop` per spatial input (covering what
        ``input_regions`` asked, clipped to its grid) and the value of each small input."""
        raise NotImplementedError

    def workspace(self, node: Node, region: Region) -> int:
        """Bytes the computation allocates besides its outputs (planning estimate)."""
        return 0


class ReduceOp(Op):
    """Small outputs from all pixels of its spatial inputs, accumulated tile by tile."""

    kind = "reduce"

    def partial(self, node: Node, inputs: list[Any], region: Region) -> Any:
        """The statistic of one tile (``inputs``: crops over exactly ``region``, small values)."""
        raise NotImplementedError

    def combine(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def finalize(self, node: Node, state: Any, inputs: list[Any]) -> Value:
        """The outputs from the combined statistic (``inputs``: small values; spatial inputs are None)."""
        raise NotImplementedError


class SmallOp(Op):
    """A function of small values only."""

    kind = "small"

    def compute(self, node: Node, inputs: list[Any]) -> Value:
        raise NotImplementedError


class UnavailableOp(Op):
    """A value that tiling does not compute (e.g. a training loss); using it is an error naming ``reason``."""

    kind = "unavailable"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def describe(self) -> str:
        return self.reason


@dataclass(eq=False)
class Node:
    index: int
    op: Op
    inputs: tuple[Ref, ...]
    metas: tuple[torch.Tensor, ...]  # one meta tensor per output: shape and dtype at full resolution
    grid: Grid | None  # None: small outputs
    layouts: tuple[str, ...]  # per output, 'hw' or 'n' (spatial nodes)
    where: str  # module path and function, for messages
    storage: int = -1  # eager-memory simulation: views share their base's storage
    died: int | None = None  # clock when Python dropped the node's last output (eager-memory simulation)
    users: list[Node] = field(default_factory=list)

    @property
    def spatial(self) -> bool:
        return self.grid is not None

    def pixel_bytes(self, index: int | None = None) -> int:
        """Bytes per pixel of output ``index`` (all outputs when None)."""
        if self.grid is None:
            return 0
        pixels = max(self.grid.height * self.grid.width, 1)
        chosen = self.metas if index is None else (self.metas[index],)
        return sum(m.numel() // pixels * m.element_size() for m in chosen)

    def full_bytes(self) -> int:
        if self.grid is None:
            return sum(m.numel() * m.element_size() for m in self.metas)
        return self.pixel_bytes() * self.grid.height * self.grid.width

    def label(self) -> str:
        return f"#{self.index} {self.op.describe()} at {self.where}"

    def __repr__(self) -> str:
        return f"Node({self.label()})"


@dataclass(frozen=True, eq=False)
class Ref:
    """Output ``index`` of ``node``."""

    node: Node
    index: int = 0

    @property
    def meta(self) -> torch.Tensor:
        return self.node.metas[self.index]

    @property
    def layout(self) -> str:
        return self.node.layouts[self.index]

    def key(self) -> tuple[int, int]:
        return (self.node.index, self.index)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ref) and other.node is self.node and other.index == self.index

    def __hash__(self) -> int:
        return hash((id(self.node), self.index))


def select(value: Value, index: int) -> torch.Tensor:
    return value[index] if isinstance(value, tuple) else value


@dataclass
class Graph:
    """Nodes in creation (topological) order, the input's source node and the outputs."""

    nodes: list[Node]
    source: Node
    outputs: list[Ref]
