"""From a traced graph to passes over tiles.

*Stage* of a node: how many whole-image statistics must be known, one after the other, before it can be
computed (a reduction's result is one stage after its input; a deformable convolution is one stage after
the activation it samples, which must be complete first). Pass ``p`` computes, tile by tile, what has
stage ``p`` and accumulates the reductions over stage-``p`` activations.

An activation is *materialised* (kept at full resolution in host memory between passes) when a later
stage reads it, when it is sampled at random, or when it is an output; everything else is recomputed
inside the tiles of the pass that needs it, from the materialised activations, with the halo its
receptive field needs. Where a materialised activation is a cheap function (per-pixel, 1x1 convolution,
resampling) of others that are kept anyway, those are kept instead (:func:`_push_down`). The passes of a
stage are split by pixel grid (each pass tiles one grid); a materialised activation is freed after the
last pass that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vqcnir.tiling.graph import Graph, Node, Ref
from vqcnir.tiling.regions import Grid, Region, TilingError


@dataclass
class Pass:
    """One sweep over the tiles of ``grid``."""

    index: int
    stage: int
    grid: Grid
    materialise: list[Ref]  # written to host buffers, tile by tile
    reductions: list[Node]  # accumulated over the tiles
    nodes: list[Node] = field(default_factory=list)  # computed in every tile, topological order
    sources: list[Ref] = field(default_factory=list)  # materialised activations read by region
    random: list[Ref] = field(default_factory=list)  # materialised activations read at random
    smalls: list[Node] = field(default_factory=list)  # small values computed after the pass
    free: list[Ref] = field(default_factory=list)  # host buffers released after the pass

    def describe(self) -> str:
        what = [r.node.where.split(": ")[0] for r in self.materialise] + [
            n.where.split(": ")[0] for n in self.reductions
        ]
        return f"stage {self.stage} on {self.grid} ({what[0] if what else ''})"


@dataclass
class Schedule:
    """The passes of a graph, in order."""

    graph: Graph
    passes: list[Pass]
    materialised: set[Ref]
    needed: set[Node]
    first_smalls: list[Node]  # small values that need no pass


def _needed(graph: Graph) -> set[Node]:
    needed: set[Node] = set()
    stack = [ref.node for ref in graph.outputs]
    while stack:
        node = stack.pop()
        if node in needed:
            continue
        needed.add(node)
        stack.extend(ref.node for ref in node.inputs)
    return needed


def build_schedule(graph: Graph) -> Schedule:
    """Stages, materialised activations, passes and their liveness for ``graph`` (see the module docstring).

    Raises TilingError when an output needs a value that tiling does not compute.
    """
    needed = _needed(graph)
    order = [n for n in graph.nodes if n in needed]
    for node in order:
        if node.op.kind == "unavailable":
            raise TilingError(f"the output needs {node.op.describe()} ({node.where}), which tiling does not compute")
    stage: dict[Node, int] = {}
    for node in order:
        ops = node.op
        levels = [
            stage[ref.node] + (1 if i in getattr(ops, "random_access", ()) else 0) for i, ref in enumerate(node.inputs)
        ]
        stage[node] = max(levels, default=0) + (1 if ops.kind == "reduce" else 0)

    materialised: set[Ref] = set(graph.outputs) | {Ref(graph.source, 0)}
    for node in order:
        if not node.spatial or node.op.kind == "source":
            continue
        for user in node.users:
            if user not in needed:
                continue
            for position, ref in enumerate(user.inputs):
                if ref.node is not node:
                    continue
                used_at = stage[user] - 1 if user.op.kind == "reduce" else stage[user]
                if position in getattr(user.op, "random_access", ()):
                    materialised.add(ref)
                elif used_at > stage[node] and not getattr(node.op, "cheap", False):
                    materialised.add(ref)

    _push_down(order, stage, materialised, graph)
    groups: dict[tuple[int, Grid], tuple[list[Ref], list[Node]]] = {}
    for node in order:
        if node.op.kind == "reduce":
            grids = {ref.node.grid for ref in node.inputs if ref.node.spatial}
            if len(grids) != 1:
                raise TilingError(f"{node.where}: a reduction over activations of different grids")
            groups.setdefault((stage[node] - 1, grids.pop()), ([], []))[1].append(node)
        elif node.op.kind == "local":
            for index in range(len(node.metas)):
                if Ref(node, index) in materialised:
                    groups.setdefault((stage[node], node.grid), ([], []))[0].append(Ref(node, index))
    keys = sorted(
        groups, key=lambda k: (k[0], min([r.node.index for r in groups[k][0]] + [n.index for n in groups[k][1]]))
    )
    passes = [Pass(i, key[0], key[1], *groups[key]) for i, key in enumerate(keys)]

    done: set[Ref] = {Ref(graph.source, 0)}
    known: set[Node] = set()
    first_smalls = _ready_smalls(order, known)
    for p in passes:
        _fill_pass(p, done, known)
        done.update(p.materialise)
        known.update(p.reductions)
        p.smalls = _ready_smalls(order, known)
    _liveness(passes, graph)
    return Schedule(graph, passes, materialised, needed, first_smalls)


def _bytes(ref: Ref) -> int:
    return ref.node.pixel_bytes(ref.index) * ref.node.grid.height * ref.node.grid.width


def _push_down(order: list[Node], stage: dict[Node, int], materialised: set[Ref], graph: Graph) -> None:
    """Keep the inputs of cheap ops instead of their outputs when that holds less memory.

    E.g. the attention's ``q = conv1x1(layer_norm(f))``, needed by a later stage: keeping ``f`` (kept
    anyway) and recomputing ``q`` in the tiles that need it saves ``q``'s buffer. For a materialised
    output of a cheap op (per-pixel, 1x1 convolution, resampling: ``LocalOp.recomputable``), the
    *frontier* is what it is computed from through cheap ops, up to materialised or expensive nodes; it
    replaces the output when the buffers it adds (expensive nodes, and materialised ones kept longer
    than they would be) hold no more than the output.
    """
    needed = set(order)
    last: dict[Ref, int] = {}
    forced = set(graph.outputs) | {Ref(graph.source, 0)}
    for node in order:
        for position, ref in enumerate(node.inputs):
            if ref.node.spatial:
                used_at = stage[node] - 1 if node.op.kind == "reduce" else stage[node]
                last[ref] = max(last.get(ref, 0), used_at)
                if position in getattr(node.op, "random_access", ()):
                    forced.add(ref)

    def frontier(node: Node, seen: set[Node], out: dict[Ref, None]) -> None:
        for ref in node.inputs:
            if not ref.node.spatial or ref.node not in needed or ref.node in seen:
                continue
            op = ref.node.op
            if ref in materialised or op.kind != "local" or not op.recomputable(ref.node):
                out[ref] = None
            elif not op.cheap:
                seen.add(ref.node)
                frontier(ref.node, seen, out)

    for node in reversed(order):
        if node.op.kind != "local" or not node.op.recomputable(node):
            continue
        for index in range(len(node.metas)):
            ref = Ref(node, index)
            if ref not in materialised or ref in forced:
                continue
            keep: dict[Ref, None] = {}
            frontier(node, {node}, keep)
            new = [i for i in keep if i not in materialised]
            longer = [i for i in keep if i in materialised and last.get(i, stage[i.node]) < last[ref]]
            if sum(_bytes(i) for i in (*new, *longer)) <= _bytes(ref):
                materialised.discard(ref)
                materialised.update(new)
                for i in keep:
                    last[i] = max(last.get(i, stage[i.node]), last[ref])


def _ready_smalls(order: list[Node], known: set[Node]) -> list[Node]:
    """Small nodes whose inputs are all known now (marked known in order)."""
    ready = []
    for node in order:
        if node.op.kind == "small" and node not in known and all(ref.node in known for ref in node.inputs):
            known.add(node)
            ready.append(node)
    return ready


def _fill_pass(p: Pass, done: set[Ref], known: set[Node]) -> None:
    compute: set[Node] = set()
    sources: dict[Ref, None] = {}
    random: dict[Ref, None] = {}

    def visit(ref: Ref) -> None:
        node = ref.node
        if not node.spatial:
            if node not in known:
                raise AssertionError(f"{node.label()} is not known before pass {p.index}")
            return
        if ref in done:
            sources[ref] = None
            return
        if node in compute:
            return
        compute.add(node)
        for position, inp in enumerate(node.inputs):
            if position in getattr(node.op, "random_access", ()):
                if inp not in done:
                    raise AssertionError(f"{inp.node.label()} is sampled before it is materialised")
                random[inp] = None
            else:
                visit(inp)

    for ref in p.materialise:
        visit(ref)
    for node in p.reductions:
        for ref in node.inputs:
            visit(ref)
    p.nodes = sorted(compute, key=lambda n: n.index)
    p.sources, p.random = list(sources), list(random)


def _liveness(passes: list[Pass], graph: Graph) -> None:
    last: dict[Ref, int] = {}
    for p in passes:
        for ref in (*p.sources, *p.random):
            last[ref] = p.index
    for ref, index in last.items():
        if ref not in graph.outputs and ref.node is not graph.source:
            passes[index].free.append(ref)


@dataclass
class TileRegions:
    """What one tile of a pass computes and reads."""

    nodes: dict[Node, Region]  # region computed, per node of the pass
    sources: dict[Ref, Region]  # region read, per materialised activation


def tile_regions(p: Pass, tile: Region) -> TileRegions:
    """Propagate ``tile`` (of the pass grid) back through the pass: the region each node must compute."""
    nodes: dict[Node, Region] = {}
    sources: dict[Ref, Region] = {}
    materialised = set(p.sources)

    def need(ref: Ref, region: Region) -> None:
        region = region.clip(ref.node.grid)
        if ref in materialised:
            sources[ref] = region.union(sources.get(ref))
        else:
            nodes[ref.node] = region.union(nodes.get(ref.node))

    for ref in p.materialise:
        need(ref, tile)
    for node in p.reductions:
        for ref in node.inputs:
            if ref.node.spatial:
                need(ref, tile)
    for node in reversed(p.nodes):
        region = nodes.get(node)
        if region is None:
            continue
        for ref, want in zip(node.inputs, node.op.input_regions(node, region), strict=True):
            if want is not None:
                need(ref, want)
    return TileRegions(nodes, sources)


def halo(p: Pass, regions: TileRegions, tile: Region) -> int:
    """How far (pixels of the pass grid) ``regions`` reach beyond ``tile``."""
    reach = 0.0
    items = [(n.grid, r) for n, r in regions.nodes.items()] + [(ref.node.grid, r) for ref, r in regions.sources.items()]
    for grid, region in items:
        sy, sx = p.grid.height / grid.height, p.grid.width / grid.width
        reach = max(reach, tile.y0 - region.y0 * sy, region.y1 * sy - tile.y1, tile.x0 - region.x0 * sx,
                    region.x1 * sx - tile.x1)  # fmt: skip
    return int(-(-reach // 1))
