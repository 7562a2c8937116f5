"""Tracing a network into a graph by running it on lazy tensors.

The network's own Python code runs once on a :class:`LazyTensor` that stands for the full-resolution
input: a tensor subclass with the real shape, dtype and device but no data. Every torch function that
touches one (``torch.conv2d``, ``Tensor.add``, ``F.group_norm``, the ``torch.ops.vqcnir`` ops, ...) reaches
``__torch_function__``, which looks up a *rule* for it (``RULES``, filled by ``rules.py``,
``statistics.py`` and ``deform.py``): the rule checks that the call can be tiled exactly, records a node
and returns new lazy tensors. Shapes come from running the same call on meta tensors. A function
without a rule is refused with a :class:`TilingError` naming it and the module that called it. Calls
that only involve whole-image statistics (small values) are recorded as they are, and asking for a
value during tracing (``.item()``, ``if tensor:``) is refused: the values do not exist yet.

Tracing also records when Python drops each activation, which the planner uses to estimate what
whole-image (eager) inference would hold in memory.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from vqcnir.tiling.graph import Node, Op, Ref, Slot, SmallOp, fill
from vqcnir.tiling.regions import Grid, TilingError

# Metadata needs no values: answered by the wrapper itself.
METADATA_PROPERTIES = frozenset(
    "shape dtype device ndim requires_grad is_cuda is_cpu is_meta is_mps is_xpu layout is_sparse is_quantized "
    "is_leaf grad_fn grad is_nested is_mkldnn names itemsize nbytes".split()
)
METADATA_FUNCTIONS = frozenset(
    "dim size numel nelement ndimension is_floating_point is_complex element_size is_contiguous stride "
    "get_device __len__ is_signed type_as_not_used".split()
)

# Calls that need values, which do not exist while tracing.
DATA_ACCESS = frozenset(
    "__bool__ __int__ __float__ __index__ __complex__ item tolist numpy __array__ data_ptr __iter__".split()
)

Rule = Callable[["Tracer", "Call"], Any]
RULES: dict[str, Rule] = {}


def rule(*names: str) -> Callable[[Rule], Rule]:
    """Register ``fn`` as the rule for the torch functions / methods / ops called ``names``."""

    def register(fn: Rule) -> Rule:
        for name in names:
            RULES[name] = fn
        return fn

    return register


def func_name(func: Callable) -> str:
    """``'conv2d'``, ``'add'``, ``'vqcnir::curve_map_fwd'``: the key of ``RULES``."""
    if isinstance(func, torch._ops.OpOverloadPacket):
        return func._qualified_op_name
    if isinstance(func, torch._ops.OpOverload):
        return func._schema.name
    return getattr(func, "__name__", repr(func))


@dataclass
class Call:
    """One intercepted call: the function, its arguments (with lazy tensors) and where it was made."""

    func: Callable
    name: str
    args: tuple
    kwargs: dict
    where: str

    def lazies(self) -> list[LazyTensor]:
        return [leaf for leaf in tree_flatten((self.args, self.kwargs))[0] if isinstance(leaf, LazyTensor)]

    def spatial(self) -> list[LazyTensor]:
        return [t for t in self.lazies() if t._ref.node.spatial]

    def error(self, reason: str) -> TilingError:
        return TilingError(f"{self.where}: {reason}")


class LazyTensor(torch.Tensor):
    """A tensor without data standing for an activation of the traced network (see the module docstring)."""

    _ref: Ref
    _holder: list[Ref]

    @staticmethod
    def __new__(cls: type[LazyTensor], ref: Ref, device: torch.device) -> LazyTensor:
        meta = ref.meta
        out = torch.Tensor._make_wrapper_subclass(cls, meta.shape, dtype=meta.dtype, device=device, requires_grad=False)
        out._ref = ref
        out._holder = [ref]
        return out

    @classmethod
    def __torch_function__(cls, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        tracer = Tracer.current()
        if tracer is None:
            raise TilingError(f"{func_name(func)}: a lazy activation was used after tracing ended")
        return tracer.handle(func, args, kwargs or {})

    @classmethod
    def __torch_dispatch__(cls, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        raise TilingError(
            f"{func} needs the values of a full-resolution activation while the network is traced "
            "(data-dependent Python code): it cannot be tiled"
        )


class Tracer:
    _stack: ClassVar[list[Tracer]] = []

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.nodes: list[Node] = []
        self.paths: list[str] = []
        self.live: dict[Ref, int] = {}
        self.deaths: dict[Ref, int] = {}

    @classmethod
    def current(cls) -> Tracer | None:
        return cls._stack[-1] if cls._stack else None

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        Tracer._stack.append(self)
        try:
            yield
        finally:
            Tracer._stack.pop()

    # --- nodes and wrappers ---------------------------------------------------------------------

    def where(self, name: str) -> str:
        return f"{self.paths[-1] if self.paths else '<network>'}: {name}"

    def record(
        self, op: Op, inputs: Sequence[Ref], metas: Sequence[torch.Tensor], grid: Grid | None,
        layouts: Sequence[str] = (), where: str = "", view_of: Ref | None = None,
    ) -> Node:  # fmt: skip
        node = Node(len(self.nodes), op, tuple(inputs), tuple(metas), grid, tuple(layouts), where or self.where(""))
        node.storage = view_of.node.storage if view_of is not None else node.index
        for ref in inputs:
            if node not in ref.node.users:
                ref.node.users.append(node)
        self.nodes.append(node)
        return node

    def wrap(self, ref: Ref) -> LazyTensor:
        out = LazyTensor(ref, self.device)
        self.live[ref] = self.live.get(ref, 0) + 1
        weakref.finalize(out, self._release, out._holder)
        return out

    def rebind(self, tensor: LazyTensor, ref: Ref) -> LazyTensor:
        """In-place semantics: ``tensor`` now stands for ``ref``."""
        self._release(tensor._holder)
        self.live[ref] = self.live.get(ref, 0) + 1
        tensor._ref = tensor._holder[0] = ref
        return tensor

    def _release(self, holder: list[Ref]) -> None:
        ref = holder[0]
        self.live[ref] -= 1
        if self.live[ref] == 0:
            self.deaths[ref] = len(self.nodes)

    def emit(self, op: Op, call: Call | None, inputs: Sequence[Ref], out_meta: Any, grid: Grid | None,
             layouts: Sequence[str] = (), view_of: Ref | None = None) -> Any:  # fmt: skip
        """Record a node whose outputs are the tensors of ``out_meta`` (any structure) and return the same
        structure of lazy tensors."""
        leaves, spec = tree_flatten(out_meta)
        metas = [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]
        if len(metas) != len(leaves):
            raise (call.error("returns non-tensor values") if call else TilingError("non-tensor outputs"))
        if grid is not None and not layouts:
            layouts = [layout_of(m, grid) for m in metas]
        node = self.record(op, inputs, metas, grid, layouts, call.where if call else "", view_of)
        wrapped = [self.wrap(Ref(node, i)) for i in range(len(metas))]
        return tree_unflatten(wrapped, spec)

    # --- calls ----------------------------------------------------------------------------------

    def handle(self, func: Callable, args: tuple, kwargs: dict) -> Any:
        name = func_name(func)
        if name == "__get__":
            prop = getattr(getattr(func, "__self__", None), "__name__", "")
            if prop in METADATA_PROPERTIES:
                with torch._C.DisableTorchFunctionSubclass():
                    return func(*args, **kwargs)
            name = prop
        elif name in METADATA_FUNCTIONS:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **kwargs)
        elif name in ("__repr__", "__str__", "__format__"):
            lazy = args[0]
            return f"LazyTensor({tuple(lazy.shape)}, {lazy.dtype}, node {lazy._ref.node.label()})"
        call = Call(func, name, args, kwargs, self.where(name))
        if name in DATA_ACCESS:
            raise call.error(
                "needs the value of an activation or of a whole-image statistic while the network is traced "
                "(data-dependent Python code): it cannot be tiled"
            )
        if not call.spatial():
            return self.small_call(call)
        found = RULES.get(name)
        if found is None:
            raise call.error(
                "no rule says how to run this on tiles of a full-resolution activation exactly (supported: "
                "element-wise and per-pixel ops, conv2d, pooling, interpolate, pixel (un)shuffle, group_norm, "
                "means/sums/extrema over the pixels, and the vqcnir_ops layers; see vqcnir.tiling)"
            )
        return found(self, call)

    def template(self, call: Call) -> tuple[tuple, dict, list[Ref]]:
        """The call's arguments with every lazy tensor replaced by a :class:`Slot`, and the slots' refs."""
        refs: list[Ref] = []

        def slot(leaf: Any) -> Any:
            if isinstance(leaf, LazyTensor):
                refs.append(leaf._ref)
                return Slot(len(refs) - 1)
            return leaf

        args, kwargs = tree_map(slot, (call.args, call.kwargs))
        return args, kwargs, refs

    def meta_call(self, call: Call, func: Callable | None = None) -> Any:
        """The call run on meta tensors: output shapes and dtypes."""

        def meta(leaf: Any) -> Any:
            if isinstance(leaf, LazyTensor):
                return torch.empty_like(leaf._ref.meta)
            if isinstance(leaf, torch.Tensor):
                return leaf.detach().to("meta")
            return leaf

        args, kwargs = tree_map(meta, (call.args, call.kwargs))
        try:
            return (func or call.func)(*args, **kwargs)
        except TilingError:
            raise
        except Exception as error:  # the network's own shape errors, or a value asked for while tracing
            raise call.error(f"cannot be traced: {type(error).__name__}: {error}") from error

    def small_call(self, call: Call) -> Any:
        """A call on whole-image statistics only (or none at all): recorded as it is, run once later."""
        args, kwargs, refs = self.template(call)
        out = self.meta_call(call, _out_of_place(call.func, call.name))
        leaves = tree_flatten(out)[0]
        if not leaves or not all(isinstance(leaf, torch.Tensor) for leaf in leaves):
            raise call.error(
                "needs the value of a whole-image statistic while the network is traced (data-dependent "
                "Python code): it cannot be tiled"
            )
        result = self.emit(SmallCall(call.func, call.name, args, kwargs), call, refs, out, None)
        return self.maybe_in_place(call, result)

    def maybe_in_place(self, call: Call, result: Any) -> Any:
        """For ``x.add_(y)`` / ``F.relu(x, inplace=True)``: ``x`` now stands for the result."""
        if is_in_place(call) and isinstance(call.args[0], LazyTensor) and isinstance(result, LazyTensor):
            return self.rebind(call.args[0], result._ref)
        return result

    def finish(self, outputs: Sequence[Ref]) -> None:
        """Death times for the eager-memory simulation (outputs stay alive)."""
        for node in self.nodes:
            refs = [Ref(node, i) for i in range(len(node.metas))]
            if any(ref in outputs for ref in refs):
                node.died = None
                continue
            times = [self.deaths.get(ref, node.index + 1) for ref in refs if self.live.get(ref, 0) == 0]
            node.died = max(times, default=node.index + 1)


def is_in_place(call: Call) -> bool:
    name = call.name
    return (name.endswith("_") and not name.startswith("__")) or name.startswith("__i") or call.kwargs.get("inplace")


def base_name(call: Call) -> str:
    """``'add'`` for ``add_`` and ``__iadd__``; ``'add'`` for ``__add__`` / ``__radd__``."""
    name = call.name
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        for prefix in ("i", "r"):
            if name.startswith(prefix) and name[1:] in _DUNDER_BASES:
                return name[1:]
        return name
    return name[:-1] if name.endswith("_") else name


_DUNDER_BASES = {"add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor", "matmul", "div"}


def _out_of_place(func: Callable, name: str) -> Callable:
    """Shapes of an in-place call come from running it out of place on the meta tensors."""
    if name.endswith("_") and not name.startswith("__"):
        return getattr(torch.Tensor, name[:-1], func)
    return func


def layout_of(meta: torch.Tensor, grid: Grid) -> str:
    if meta.dim() >= 2 and tuple(meta.shape[-2:]) == (grid.height, grid.width):
        return "hw"
    if meta.dim() >= 1 and meta.shape[-1] == grid.height * grid.width:
        return "n"
    raise TilingError(f"an output of shape {tuple(meta.shape)} does not end with the pixel grid {grid}")


class SmallCall(SmallOp):
    """A recorded torch call on small values."""

    def __init__(self, func: Callable, name: str, args: tuple, kwargs: dict) -> None:
        self.func, self.name, self.args, self.kwargs = func, name, args, kwargs

    def describe(self) -> str:
        return self.name

    def compute(self, node: Node, inputs: list[Any]) -> Any:
        args, kwargs = fill((self.args, self.kwargs), inputs)
        return tuple(tree_flatten(self.func(*args, **kwargs))[0])
