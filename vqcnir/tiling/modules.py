"""Module-level rules: layers run whole on crops, because their code is not per-pixel torch calls.

``VectorQuantizer`` flattens the pixels and the batch into rows for the nearest-code search; its
quantized features and code indices are still per pixel, so the layer runs as it is on each crop. Its
losses are whole-image means used in training: restoring never needs them, and a network output that
does is refused.

:func:`register_local_module` adds a class of your own: a layer whose spatial outputs at a pixel depend
only on its inputs within ``halo`` pixels (zero-padded convolutions count: at the image border the layer
pads as it does on the whole image, inside the image the crop carries the halo).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from vqcnir.tiling.graph import Context, LocalOp, Node, Ref, UnavailableOp, fill
from vqcnir.tiling.regions import Grid, Region, TilingError, take
from vqcnir.tiling.trace import Call, LazyTensor, Tracer, layout_of
from vqcnir_ops import VectorQuantizer

LOCAL_MODULES: dict[type[nn.Module], int] = {VectorQuantizer: 0}


def register_local_module(cls: type[nn.Module], halo: int = 0) -> None:
    """Run every ``cls`` layer whole on crops with ``halo`` extra pixels (see the module docstring).

    Example:
        >>> register_local_module(MyDenoiserBlock, halo=7)  # doctest: +SKIP
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"argument 'cls' must be an nn.Module subclass, got {cls!r}")
    if not isinstance(halo, int) or halo < 0:
        raise ValueError(f"argument 'halo' must be a non-negative int, got {halo!r}")
    LOCAL_MODULES[cls] = halo


class ModuleOnCrops(LocalOp):
    def __init__(self, forward: Any, halo: int, args: tuple, kwargs: dict, keep: list[int], name: str) -> None:
        self.forward, self.halo, self.args, self.kwargs, self.keep, self.name = forward, halo, args, kwargs, keep, name

    def describe(self) -> str:
        return self.name

    def recomputable(self, node: Node) -> bool:
        return self.halo == 0

    def _grow(self, region: Region) -> Region:
        h = self.halo
        return Region(region.y0 - h, region.y1 + h, region.x0 - h, region.x1 + h)

    def input_regions(self, node: Node, region: Region) -> list[Region | None]:
        return [self._grow(region) if ref.node.spatial else None for ref in node.inputs]

    def compute(self, node: Node, inputs: list[Any], region: Region, ctx: Context) -> tuple:
        have = self._grow(region).clip(node.grid)
        values = [take(v, have, node.inputs[i].node.grid) if ref.node.spatial else v
                  for i, (v, ref) in enumerate(zip(inputs, node.inputs, strict=True))]  # fmt: skip
        args, kwargs = fill((self.args, self.kwargs), values)
        leaves = tree_flatten(self.forward(*args, **kwargs))[0]
        dy, dx = region.y0 - have.y0, region.x0 - have.x0
        return tuple(leaves[i][..., dy : dy + region.height, dx : dx + region.width] for i in self.keep)


def _handler(module: nn.Module, original: Any, halo: int, tracer: Tracer, name: str) -> Any:
    inside = [False]

    def forward(*args: Any, **kwargs: Any) -> Any:
        call = Call(original, name, args, kwargs, tracer.where(name))
        spatial = call.spatial()
        if inside[0] or not spatial:
            return original(*args, **kwargs)
        grids = {t._ref.node.grid for t in spatial}
        if len(grids) != 1 or any(t._ref.layout != "hw" for t in spatial):
            raise call.error("its full-resolution inputs must share one pixel grid, as [B, C, H, W]")
        grid: Grid = grids.pop()
        state = {k: v.detach().to("meta") for k, v in [*module.named_parameters(), *module.named_buffers()]}
        meta_args = tree_map(
            lambda t: torch.empty_like(t._ref.meta) if isinstance(t, LazyTensor) else t, (args, kwargs)
        )
        inside[0] = True
        try:
            out = torch.func.functional_call(module, state, meta_args[0], meta_args[1])
        except Exception as error:
            raise call.error(f"cannot be traced: {type(error).__name__}: {error}") from error
        finally:
            inside[0] = False
        leaves, spec = tree_flatten(out)
        keep = [i for i, leaf in enumerate(leaves) if isinstance(leaf, torch.Tensor) and _on_grid(leaf, grid)]
        t_args, t_kwargs, refs = tracer.template(call)
        op = ModuleOnCrops(original, halo, t_args, t_kwargs, keep, name)
        node = tracer.record(op, refs, [leaves[i] for i in keep], grid, [layout_of(leaves[i], grid) for i in keep],
                             call.where)  # fmt: skip
        wrapped = []
        for i, leaf in enumerate(leaves):
            if i in keep:
                wrapped.append(tracer.wrap(Ref(node, keep.index(i))))
            elif isinstance(leaf, torch.Tensor):
                reason = f"output {i} of {name} (a whole-image value it computes for training)"
                lost = tracer.record(UnavailableOp(reason), refs, [leaf], None, where=call.where)
                wrapped.append(tracer.wrap(Ref(lost)))
            else:
                wrapped.append(leaf)
        return tree_unflatten(wrapped, spec)

    return forward


def _on_grid(leaf: torch.Tensor, grid: Grid) -> bool:
    return leaf.dim() >= 2 and tuple(leaf.shape[-2:]) == (grid.height, grid.width)


@contextlib.contextmanager
def module_rules(module: nn.Module | None, tracer: Tracer) -> Iterator[None]:
    """While tracing, layers of the registered classes run through :class:`ModuleOnCrops`."""
    patched = []
    for path, sub in module.named_modules() if module is not None else ():
        halo = next((h for cls, h in LOCAL_MODULES.items() if isinstance(sub, cls)), None)
        if halo is None:
            continue
        if "forward" in vars(sub):
            raise TilingError(f"{path} ({type(sub).__name__}) has its own instance attribute 'forward'")
        sub.forward = _handler(sub, sub.forward, halo, tracer, f"{path or '<network>'} ({type(sub).__name__})")
        patched.append(sub)
    try:
        yield
    finally:
        for sub in patched:
            del sub.forward
