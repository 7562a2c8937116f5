"""The entry point of tracing: runs a network on a lazy image, with the module-level rules in force.

Apart from :mod:`vqcnir.tiling.trace` (the tracer and its lazy tensors) because the module-level rules
(:mod:`vqcnir.tiling.modules`) are built on that tracer, and this function uses both.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from vqcnir.tiling.graph import Graph, Ref, SourceOp
from vqcnir.tiling.modules import module_rules
from vqcnir.tiling.regions import Grid, TilingError
from vqcnir.tiling.trace import LazyTensor, Tracer


def _enter(paths: list[str], label: str, *_: Any) -> None:
    paths.append(label)


def _leave(paths: list[str], *_: Any) -> None:
    if paths:
        paths.pop()


@contextlib.contextmanager
def module_paths(module: nn.Module | None, tracer: Tracer) -> Iterator[None]:
    """Keep ``tracer.paths`` at the module being run, for messages."""
    if module is None:
        yield
        return
    handles = []
    for path, sub in module.named_modules():
        label = f"{path or '<network>'} ({type(sub).__name__})"
        handles.append(sub.register_forward_pre_hook(functools.partial(_enter, tracer.paths, label)))
        handles.append(sub.register_forward_hook(functools.partial(_leave, tracer.paths)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def trace(
    fn: Callable[[torch.Tensor], torch.Tensor],
    shape: Sequence[int],
    dtype: torch.dtype,
    device: torch.device,
    module: nn.Module | None = None,
) -> Graph:
    """Trace ``fn`` (image ``[B, C, H, W]`` -> one full-resolution tensor) into a :class:`Graph`.

    ``module`` (the network ``fn`` runs) gives messages their module path and lets module-level rules
    (:mod:`vqcnir.tiling.modules`) take over the layers they handle.
    """
    tracer = Tracer(device)
    meta = torch.empty(tuple(shape), dtype=dtype, device="meta")
    grid = Grid(int(shape[-2]), int(shape[-1]))
    source = tracer.record(SourceOp(), [], [meta], grid, ("hw",), where="input")
    with tracer.active(), torch.no_grad(), module_paths(module, tracer), module_rules(module, tracer):
        image = tracer.wrap(Ref(source))
        out = fn(image)
        del image
    if not isinstance(out, LazyTensor) or not out._ref.node.spatial:
        raise TilingError(f"the traced function must return one full-resolution tensor, got {type(out).__name__}")
    ref = out._ref
    tracer.finish([ref])
    del out
    return Graph(tracer.nodes, source, [ref])
