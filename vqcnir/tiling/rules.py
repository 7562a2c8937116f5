"""Rules for the local torch operations: per-pixel functions, reshapes, convolutions, pooling, resampling.

Each rule checks at trace time that the call is exact on tiles, then records a node whose op says which
input region an output region needs and computes it from crops:

- per-pixel (element-wise functions, dtype casts, ops along the channel dims, reshapes that keep the pixel
  grid last): the same region of every input;
- windows (``conv2d``, ``vqcnir_ops.depthwise_conv2d``, ``avg_pool2d``, ``max_pool2d``): the window's rows
  and columns, padded as the call pads only where they leave the image;
- resampling (``interpolate`` by powers of two, ``pixel_shuffle``, ``pixel_unshuffle``): an input region
  aligned to the scale with the margin the interpolation reads, resampled, then cut to the output region.

Reductions over the pixels live in :mod:`vqcnir.tiling.reductions` (the normalisations and the channel
attention built on them in :mod:`vqcnir.tiling.statistics`), deformable convolution in
:mod:`vqcnir.tiling.deform`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._pytree import tree_flatten

from vqcnir.tiling.graph import Context, LocalOp, Node, Slot, fill
from vqcnir.tiling.reductions import spatial_reduction
from vqcnir.tiling.regions import Crop, Grid, Region, from_hw, take
from vqcnir.tiling.trace import Call, LazyTensor, Tracer, base_name, rule

ELEMENTWISE = (
    "add sub mul div true_divide floor_divide remainder fmod pow rsub neg negative abs sqrt rsqrt exp exp2 expm1 "
    "log log2 log10 log1p sin cos tan tanh sinh cosh asin acos atan atan2 sigmoid relu relu6 silu gelu elu selu "
    "celu leaky_relu hardtanh hardsigmoid hardswish mish softplus softsign tanhshrink logsigmoid square "
    "reciprocal clamp clip clamp_min clamp_max floor ceil round trunc frac sign where maximum minimum fmax fmin "
    "lerp addcmul addcdiv lt le gt ge eq ne logical_and logical_or logical_not logical_xor bitwise_and "
    "bitwise_or isnan isfinite isinf nan_to_num erf erfc prelu threshold "
    "to type float double half bfloat16 contiguous clone detach type_as dropout alpha_dropout feature_alpha_dropout "
    "dropout2d vqcnir::curve_map_fwd"
).split()


def spatial_dims(ndim: int, layout: str) -> set[int]:
    return {ndim - 2, ndim - 1} if layout == "hw" else {ndim - 1}


def common_grid(call: Call) -> tuple[Grid, str]:
    """The one grid and layout of the call's full-resolution inputs."""
    spatial = call.spatial()
    grids = {(t._ref.node.grid, t._ref.layout) for t in spatial}
    if len(grids) != 1:
        listed = ", ".join(f"{tuple(t.shape)}" for t in spatial)
        raise call.error(f"mixes full-resolution activations of different pixel grids or layouts ({listed})")
    grid, layout = grids.pop()
    return grid, layout


def check_broadcast(call: Call, out: Any, grid: Grid, layout: str) -> None:
    """Per-pixel: every output keeps the grid last; other tensors broadcast along it only with size 1."""
    n_spatial = 2 if layout == "hw" else 1
    trailing = (grid.height, grid.width) if layout == "hw" else (grid.height * grid.width,)
    for leaf in tree_flatten(out)[0]:
        if isinstance(leaf, torch.Tensor) and tuple(leaf.shape[-n_spatial:]) != trailing:
            raise call.error(f"moves the pixel grid: output shape {tuple(leaf.shape)}, grid {grid} ({layout})")
    for leaf in tree_flatten((call.args, call.kwargs))[0]:
        if not isinstance(leaf, torch.Tensor) or (isinstance(leaf, LazyTensor) and leaf._ref.node.spatial):
            continue
        dims = tuple(leaf.shape[-n_spatial:]) if leaf.dim() >= 1 else ()
        if any(size != 1 for size in dims[-min(len(dims), n_spatial) :]) and leaf.dim() > 0:
            if leaf.dim() >= n_spatial and tuple(leaf.shape[-n_spatial:]) == trailing and leaf.numel() > 1:
                raise call.error(
                    f"combines a full-resolution activation with a constant of the image's size {tuple(leaf.shape)}: "
                    "constants must broadcast over the pixels (size 1 there)"
                )
            raise call.error(f"a tensor of shape {tuple(leaf.shape)} does not broadcast over the pixels")


class PerPixel(LocalOp):
    """``func`` applied to the same region of every input (element-wise or along the channel dims)."""

    def __init__(self, func: Callable, name: str, args: tuple, kwargs: dict) -> None:
        self.func, self.name, self.args, self.kwargs = func, name, args, kwargs

    def describe(self) -> str:
        return self.name

    def recomputable(self, node: Node) -> bool:
        return True

    def compute(self, node: Node, inputs: list[Any], region: Region, ctx: Context) -> tuple:
        values = [take(v, region, node.inputs[i].node.grid) if isinstance(v, Crop) else v for i, v in enumerate(inputs)]
        args, kwargs = fill((self.args, self.kwargs), values)
        return tuple(tree_flatten(self.func(*args, **kwargs))[0])


def per_pixel(
    tracer: Tracer, call: Call, func: Callable | None = None, view: bool = False, trusted: bool = False
) -> Any:
    """Record ``call`` as per-pixel after checking that it keeps the pixel grid (``view``: shares storage;
    ``trusted``: a function of this package, whose other arguments need no broadcast check)."""
    grid, layout = common_grid(call)
    out = tracer.meta_call(call, func)
    if not trusted:
        check_broadcast(call, out, grid, layout)
    args, kwargs, refs = tracer.template(call)
    op = PerPixel(func or call.func, base_name(call), args, kwargs)
    if "inplace" in kwargs:
        op.kwargs = {**kwargs, "inplace": False}
    view_of = call.spatial()[0]._ref if view else None
    result = tracer.emit(op, call, refs, out, grid, view_of=view_of)
    return tracer.maybe_in_place(call, result)


@rule(*ELEMENTWISE)
def elementwise(tracer: Tracer, call: Call) -> Any:
    if call.name == "to" or call.name == "type":
        for leaf in tree_flatten((call.args[1:], call.kwargs))[0]:
            if isinstance(leaf, (torch.device, str)) and not isinstance(leaf, torch.dtype):
                target = torch.device(leaf) if not isinstance(leaf, str) or leaf[:1].isalpha() else None
                if target is not None and target.type != tracer.device.type:
                    raise call.error(f"moves a full-resolution activation to {leaf}: keep the network on one device")
    return per_pixel(tracer, call)


ARITHMETIC = "add sub mul truediv div floordiv mod pow and or xor".split()
# Python operators: the dunder methods themselves run on the crops.
rule(*(f"__{n}__" for n in ARITHMETIC), *(f"__r{n}__" for n in ARITHMETIC), "__neg__", "__abs__", "__invert__",
     "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__")(elementwise)  # fmt: skip


@rule(*(f"__i{n}__" for n in ARITHMETIC), *(f"{n}_" for n in ELEMENTWISE if n.isidentifier()))
def in_place(tracer: Tracer, call: Call) -> Any:
    """``x += y`` / ``x.mul_(y)``: recorded out of place; ``x`` is rebound to the result."""
    name = {"truediv": "div", "floordiv": "floor_divide", "mod": "remainder", "and": "bitwise_and",
            "or": "bitwise_or", "xor": "bitwise_xor"}.get(base_name(call), base_name(call))  # fmt: skip
    return per_pixel(tracer, call, getattr(torch.Tensor, name, None) or getattr(torch, name))


@rule("matmul", "__matmul__")
def matmul(tracer: Tracer, call: Call) -> Any:
    left, right = call.args[0], call.args[1]
    if isinstance(left, LazyTensor) and left._ref.node.spatial:
        raise call.error("contracts over the pixels (a full-resolution activation on the left): not supported")
    if right._ref.layout != "n":
        raise call.error("the full-resolution operand must have its pixels flattened into the last dim")
    return per_pixel(tracer, call)


# --- ops along dims ------------------------------------------------------------------------------------

# name -> (position of the dim argument, its keyword, default); the dim indexes the first tensor's dims.
DIM_ARGUMENT: dict[str, tuple[int, str, Any]] = {
    "cat": (1, "dim", 0), "concat": (1, "dim", 0), "concatenate": (1, "axis", 0), "chunk": (2, "dim", 0),
    "split": (2, "dim", 0), "tensor_split": (2, "dim", 0), "unbind": (1, "dim", 0), "narrow": (1, "dim", None),
    "select": (1, "dim", None), "index_select": (1, "dim", None), "softmax": (1, "dim", None),
    "log_softmax": (1, "dim", None), "cumsum": (1, "dim", None), "cumprod": (1, "dim", None),
    "flip": (1, "dims", None), "normalize": (2, "dim", 1), "glu": (1, "dim", -1), "transpose": (1, "dim0", None),
    "swapaxes": (1, "axis0", None), "swapdims": (1, "dim0", None), "stack": (1, "dim", 0),
    "mean": (1, "dim", None), "sum": (1, "dim", None), "nansum": (1, "dim", None), "amax": (1, "dim", None),
    "amin": (1, "dim", None), "var": (1, "dim", None), "std": (1, "dim", None), "max": (1, "dim", None),
    "min": (1, "dim", None),
}  # fmt: skip
VIEWS = {"chunk", "split", "tensor_split", "unbind", "narrow", "select", "transpose", "swapaxes", "swapdims"}
REDUCTIONS = {"mean", "sum", "nansum", "amax", "amin", "var", "std", "max", "min"}


def _argument(call: Call, position: int, keyword: str, default: Any) -> Any:
    if keyword in call.kwargs:
        return call.kwargs[keyword]
    return call.args[position] if len(call.args) > position else default


def _normalise(dims: Any, ndim: int) -> list[int] | None:
    if dims is None:
        return None
    listed = list(dims) if isinstance(dims, (list, tuple)) else [dims]
    return [int(d) % ndim for d in listed]


@rule(*DIM_ARGUMENT)
def along_dims(tracer: Tracer, call: Call) -> Any:
    first = call.args[0][0] if call.name in ("cat", "concat", "concatenate", "stack") else call.args[0]
    if not isinstance(first, LazyTensor) or not first._ref.node.spatial:
        raise call.error("the first argument must be the full-resolution activation")
    ndim = first.dim() + (1 if call.name == "stack" else 0)
    position, keyword, default = DIM_ARGUMENT[call.name]
    dims = _normalise(_argument(call, position, keyword, default), ndim)
    if call.name in ("transpose", "swapaxes", "swapdims"):
        dims = _normalise([call.args[1], call.args[2]] if len(call.args) > 2 else list(call.kwargs.values()), ndim)
    pixel_dims = spatial_dims(ndim, first._ref.layout)
    touched = set(range(ndim)) if dims is None else set(dims)
    if call.name in REDUCTIONS and pixel_dims <= touched:
        if call.name in ("max", "min") and dims is not None:
            raise call.error("returns the arg-extremum over the pixels: use amax/amin")
        name = {"max": "amax", "min": "amin", "nansum": "sum"}.get(call.name, call.name)
        return spatial_reduction(tracer, call, name, sorted(touched))
    if dims is None or touched & pixel_dims:
        raise call.error(f"works along the pixel dims {sorted(pixel_dims)} (dims {sorted(touched)}): not per pixel")
    return per_pixel(tracer, call, view=call.name in VIEWS)


@rule("adaptive_avg_pool2d", "adaptive_max_pool2d")
def global_pool(tracer: Tracer, call: Call) -> Any:
    lazy = _hw_input(call)
    size = _argument(call, 1, "output_size", None)
    if size not in (1, (1, 1), [1, 1]) or call.kwargs.get("return_indices"):
        raise call.error("only output_size 1 (a global pool) without indices is supported")
    name = "mean" if call.name == "adaptive_avg_pool2d" else "amax"
    return spatial_reduction(tracer, call, name, [lazy.dim() - 2, lazy.dim() - 1])


@rule("permute")
def permute(tracer: Tracer, call: Call) -> Any:
    lazy = call.args[0]
    order = call.args[1] if len(call.args) == 2 and isinstance(call.args[1], (list, tuple)) else call.args[1:]
    order = _normalise(call.kwargs.get("dims", order), lazy.dim())
    keep = sorted(spatial_dims(lazy.dim(), lazy._ref.layout))
    if order[-len(keep) :] != keep:
        raise call.error(f"moves the pixel dims {keep} (order {order})")
    return per_pixel(tracer, call, view=True)


class Reshape(LocalOp):
    """A reshape of the dims in front of the pixels (and between the 'hw' and 'n' layouts)."""

    def __init__(self, lead: tuple[int, ...], layout: str) -> None:
        self.lead, self.layout = lead, layout

    def recomputable(self, node: Node) -> bool:
        return True

    def compute(self, node: Node, inputs: list[Any], region: Region, ctx: Context) -> tuple:
        crop = inputs[0]
        hw = Crop(take(crop, region, node.inputs[0].node.grid), region, crop.layout).as_hw()
        return (from_hw(hw.reshape(*self.lead, region.height, region.width), self.layout),)


@rule("reshape", "view", "flatten", "unflatten", "squeeze", "unsqueeze", "view_as", "reshape_as", "ravel")
def reshape(tracer: Tracer, call: Call) -> Any:
    lazy = call.args[0]
    if not isinstance(lazy, LazyTensor) or len(call.spatial()) != 1:
        raise call.error("only reshapes of one full-resolution activation are supported")
    grid, layout = lazy._ref.node.grid, lazy._ref.layout
    out = tracer.meta_call(call)
    pixels = grid.height * grid.width
    lead_in = lazy._ref.meta.numel() // pixels
    if out.dim() >= 2 and tuple(out.shape[-2:]) == (grid.height, grid.width) and out.numel() // pixels == lead_in:
        new_layout, lead = "hw", tuple(out.shape[:-2])
    elif out.dim() >= 1 and out.shape[-1] == pixels and out.numel() // pixels == lead_in:
        new_layout, lead = "n", tuple(out.shape[:-1])
    else:
        raise call.error(
            f"reshapes {tuple(lazy.shape)} to {tuple(out.shape)}, which does not keep the pixel grid {grid} "
            f"({layout}) as the last dims"
        )
    return tracer.emit(Reshape(lead, new_layout), call, [lazy._ref], out, grid, [new_layout], view_of=lazy._ref)


@rule("__getitem__")
def getitem(tracer: Tracer, call: Call) -> Any:
    lazy, index = call.args[0], call.args[1]
    items = list(index) if isinstance(index, tuple) else [index]
    if any(isinstance(i, torch.Tensor) or isinstance(i, (list, bool)) for i in items):
        raise call.error("advanced (tensor / list / bool) indexing of a full-resolution activation is not supported")
    consumed = sum(1 for i in items if i is not Ellipsis and i is not None)
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items = items[:at] + [slice(None)] * (lazy.dim() - consumed) + items[at + 1 :]
    dims = [i for i in items if i is not None]
    dims += [slice(None)] * (lazy.dim() - len(dims))
    n_spatial = len(spatial_dims(lazy.dim(), lazy._ref.layout))
    if any(d != slice(None) for d in dims[-n_spatial:]):
        raise call.error(f"indexes the pixel dims ({index!r}): cropping inside a network is not supported")
    return per_pixel(tracer, call, view=True)


class Fill(LocalOp):
    """A constant activation (``x.new_ones(...)``, ``torch.zeros_like(x)``)."""

    cheap = True

    def __init__(self, value: float, lead: tuple[int, ...], dtype: torch.dtype, layout: str) -> None:
        self.value, self.lead, self.dtype, self.layout = value, lead, dtype, layout

    def compute(self, node: Node, inputs: list[Any], region: Region, ctx: Context) -> tuple:
        hw = torch.full((*self.lead, region.height, region.width), self.value, dtype=self.dtype, device=ctx.device)
        return (from_hw(hw, self.layout),)


@rule("new_ones", "new_zeros", "new_full", "new_empty", "ones_like", "zeros_like", "full_like", "empty_like")
def constant(tracer: Tracer, call: Call) -> Any:
    lazy = call.args[0]
    out = tracer.meta_call(call)
    value = {"ones": 1.0, "zero": 0.0, "empt": 0.0}.get(call.name.replace("new_", "")[:4])
    if value is None:  # new_full / full_like
        value = float(_argument(call, 2 if call.name == "new_full" else 1, "fill_value", 0.0))
    grid = lazy._ref.node.grid
    pixels = grid.height * grid.width
    if out.dim() >= 2 and tuple(out.shape[-2:]) == (grid.height, grid.width):
        lead, layout = tuple(out.shape[:-2]), "hw"
    elif out.dim() >= 1 and out.shape[-1] == pixels and call.name.endswith("_like"):
        lead, layout = tuple(out.shape[:-1]), "n"
    else:  # a constant without the pixel grid: an ordinary tensor
        return torch.full(tuple(out.shape), value, dtype=out.dtype, device=tracer.device)
    return tracer.emit(Fill(value, lead, out.dtype, layout), call, [], out, grid, [layout])


# --- windows: convolution and pooling ------------------------------------------------------------------


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


class Window(LocalOp):
    """conv2d / avg_pool2d / max_pool2d evaluated with padding 0 on a crop padded only at the image border."""

    def __init__(self, func: Callable, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
                 pads: tuple[int, int, int, int], pad_value: float, args: tuple, kwargs: dict) -> None:  # fmt: skip
        self.func, self.kernel, self.stride, self.dilation = func, kernel, stride, dilation
        self.pads, self.pad_value, self.args, self.kwargs = (
            pads,
            pad_value,
            args,
            kwargs,
        )  # pads: top, bottom, left, right

    def describe(self) -> str:
        return f"{self.func.__name__} {self.kernel[0]}x{self.kernel[1]}"

    def recomputable(self, node: Node) -> bool:
        return self.kernel == (1, 1) and self.stride == (1, 1) and not any(self.pads)

    def window(self, region: Region) -> Region:
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        top, _, left, _ = self.pads
        return Region(
            region.y0 * sh - top, (region.y1 - 1) * sh - top + dh * (kh - 1) + 1,
            region.x0 * sw - left, (region.x1 - 1) * sw - left + dw * (kw - 1) + 1,
        )  # fmt: skip

    def input_regions(self, node: Node, region: Region) -> list[Region | None]:
        return [self.window(region) if i == 0 else None for i in range(len(node.inputs))]

    def compute(self, node: Node, inputs: list[Any], region: Region, ctx: Context) -> tuple:
        want = self.window(region)
        grid = node.inputs[0].node.grid
        inside = want.clip(grid)
        top, bottom, left, right = inside.y0 - want.y0, want.y1 - inside.y1, inside.x0 - want.x0, want.x1 - inside.x1
        padding = 0
        if (top or left) and top >= bottom and left >= right:
            # The layer's own padding on every side: the extra rows/columns at the bottom/right only add
            # outputs past the region, which are cut (cheaper than copying a padded crop).
            x, padding = take(inputs[0], inside, grid), (top, left)
        else:
            x = take(inputs[0], want, grid, self.pad_value)
        args, kwargs = fill((self.args, self.kwargs), [x, *inputs[1:]])
        out = self.func(*args, **(kwargs | {"padding": padding}))
        return (out[..., : region.height, : region.width],)

    def workspace(self, node: Node, region: Region) -> int:
        # A contiguous (or padded) copy of the input window, and the library's own copy of the output
        # (oneDNN computes in a blocked layout and reorders).
        source = node.inputs[0]
        return self.window(region).area * source.node.pixel_bytes(source.index) + region.area * node.pixel_bytes()


def _same_padding(kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int, int, int]:
    total = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
    return (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)


def _hw_input(call: Call) -> LazyTensor:
    lazy = call.args[0]
    if not isinstance(lazy, LazyTensor) or not lazy._ref.node.spatial or lazy._ref.layout != "hw":
        raise call.error("the input must be a full-resolution [B, C, H, W] activation")
    if len(call.spatial()) != 1:
        raise call.error("weights computed from full-resolution activations are not supported")
    return lazy


@rule("conv2d")
def conv2d(tracer: Tracer, call: Call) -> Any:
    _hw_input(call)
    names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
    given = dict(zip(names, call.args, strict=False)) | call.kwargs
    weight = given["weight"]
    kernel = (int(weight.shape[-2]), int(weight.shape[-1]))
    stride, dilation = _pair(given.get("stride", 1)), _pair(given.get("dilation", 1))
    padding = given.get("padding", 0)
    if padding == "same":
        pads = _same_padding(kernel, dilation)
    elif padding == "valid":
        pads = (0, 0, 0, 0)
    else:
        ph, pw = _pair(padding)
        pads = (ph, ph, pw, pw)
    args, kwargs, refs = tracer.template(call)
    kept = {k: v for k, v in (dict(zip(names, args, strict=False)) | kwargs).items() if k not in ("padding",)}
    kept_args = (kept.pop("input"), kept.pop("weight"))
    op = Window(torch.conv2d, kernel, stride, dilation, pads, 0.0, kept_args, {**kept, "padding": 0})
    return tracer.emit(op, call, refs, tracer.meta_call(call), _output_grid(tracer, call))


def _depthwise_window(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *,
                      padding: int | tuple[int, int], dilation: list[int], backend: str) -> torch.Tensor:  # fmt: skip
    """The depth-wise op with the window's padding (an int or a pair) made the op's list."""
    return torch.ops.vqcnir.depthwise_conv2d_fwd(input, weight, bias, list(_pair(padding)), dilation, backend)


_depthwise_window.__name__ = "depthwise_conv2d"  # as the window's node describes itself


@rule("vqcnir::depthwise_conv2d_fwd")
def depthwise_conv2d(tracer: Tracer, call: Call) -> Any:
    """``vqcnir_ops.depthwise_conv2d`` (stride 1): a window like conv2d's."""
    _hw_input(call)
    names = ("input", "weight", "bias", "padding", "dilation", "backend")
    given = dict(zip(names, call.args, strict=False)) | call.kwargs
    weight = given["weight"]
    kernel = (int(weight.shape[-2]), int(weight.shape[-1]))
    (ph, pw), dilation = _pair(given["padding"]), _pair(given["dilation"])
    args, kwargs, refs = tracer.template(call)
    kept = {k: v for k, v in (dict(zip(names, args, strict=False)) | kwargs).items() if k != "padding"}
    kept_args = (kept.pop("input"), kept.pop("weight"), kept.pop("bias"))
    op = Window(_depthwise_window, kernel, (1, 1), dilation, (ph, ph, pw, pw), 0.0, kept_args, {**kept, "padding": 0})
    return tracer.emit(op, call, refs, tracer.meta_call(call), _output_grid(tracer, call))


def _output_grid(tracer: Tracer, call: Call) -> Grid:
    out = tracer.meta_call(call)
    first = out[0] if isinstance(out, tuple) else out
    return Grid(int(first.shape[-2]), int(first.shape[-1]))


@rule("avg_pool2d", "max_pool2d", "max_pool2d_with_indices")
def pool2d(tracer: Tracer, call: Call) -> Any:
    lazy = _hw_input(call)
    names = ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
    if call.name != "avg_pool2d":
        names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
    given = dict(zip(names, call.args, strict=False)) | call.kwargs
    if given.get("ceil_mode") or given.get("return_indices") or call.name.endswith("indices"):
        raise call.error("ceil_mode and return_indices are not supported")
    if call.name == "avg_pool2d" and (given.get("count_include_pad") is False or given.get("divisor_override")):
        raise call.error("count_include_pad=False / divisor_override depend on the image border: not supported")
    kernel = _pair(given["kernel_size"])
    stride = _pair(given.get("stride") or kernel)
    ph, pw = _pair(given.get("padding", 0))
    dilation = _pair(given.get("dilation", 1))
    func = F.avg_pool2d if call.name == "avg_pool2d" else F.max_pool2d
    extra = {"dilation": dilation} if func is F.max_pool2d else {}
    op = Window(func, kernel, stride, dilation, (ph, ph, pw, pw), -math.inf if func is F.max_pool2d else 0.0,
                (Slot(0),), {"kernel_size": kernel, "stride": stride, "padding": 0, **extra})  # fmt: skip
    return tracer.emit(op, call, [lazy._ref], tracer.meta_call(call), _output_grid(tracer, call))


# --- resampling ----------------------------------------------------------------------------------------


def _power_of_two(value: float) -> int | None:
    exponent = round(math.log2(value)) if value > 0 else None
    return exponent if exponent is not None and 2.0**exponent == value else None


class Resample(LocalOp):
    """interpolate / pixel_shuffle / pixel_unshuffle: resample an aligned input crop, then cut the output.

    ``scale`` (output / input size per axis) is ``2**k``; ``margin`` input pixels are read around what the
    output region maps to (the interpolation's neighbours).
    """

    def __init__(self, func: Callable, kwargs: dict, scale: tuple[float, float], margin: int, offset: float) -> None:
        self.func, self.kwargs, self.scale, self.margin, self.offset = func, kwargs, scale, margin, offset

    def describe(self) -> str:
        return f"{getattr(self.func, '__name__', 'resample')} x{self.scale[0]:g}"

    def recomputable(self, node: Node) -> bool:
        return True

    def _axis(self, start: int, stop: int, scale: float, size: int) -> tuple[int, int]:
        align = max(int(round(1 / scale)), 1)  # downsampling: the crop starts at a multiple of the factor
        lo = math.floor((start + self.offset) / scale - self.offset) - self.margin
        hi = math.floor((stop - 1 + self.offset) / scale - self.offset) + 1 + self.margin
        lo = max(lo, 0) // align * align
        hi = min(-(-hi // align) * align, size)
        return lo, hi

    def input_regions(self, node: Node, region: Region) -> list[Region | None]:
        grid = node.inputs[0].node.grid
        y0, y1 = self._axis(region.y0, region.y1, self.scale[0], grid.height)
        x0, x1 = self._axis(region.x0, region.x1, self.scale[1], grid.width)
        return [Region(y0, y1, x0, x1)]

    def compute(self, node: Node, inputs: list[Any], region: Region, ctx: Context) -> tuple:
        want = self.input_regions(node, region)[0]
        x = take(inputs[0], want, node.inputs[0].node.grid)
        out = self.func(x, **self.kwargs)
        top, left = round(want.y0 * self.scale[0]), round(want.x0 * self.scale[1])
        return (out[..., region.y0 - top : region.y1 - top, region.x0 - left : region.x1 - left],)


@rule("interpolate", "upsample", "upsample_nearest", "upsample_bilinear")
def interpolate(tracer: Tracer, call: Call) -> Any:
    lazy = _hw_input(call)
    names = ("input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias")
    given = dict(zip(names, call.args, strict=False)) | call.kwargs
    mode = given.get("mode", "nearest")
    if call.name == "upsample_bilinear":
        mode, given["align_corners"] = "bilinear", True
    if given.get("antialias"):
        raise call.error("antialias reads a window that depends on the image size: not supported")
    if mode not in ("nearest", "nearest-exact", "bilinear", "bicubic") or given.get("align_corners"):
        raise call.error(f"mode {mode!r} (align_corners={given.get('align_corners')}) cannot be tiled exactly")
    grid = lazy._ref.node.grid
    out = tracer.meta_call(call)
    scale = (out.shape[-2] / grid.height, out.shape[-1] / grid.width)
    if any(_power_of_two(s) is None for s in scale) or out.shape[-2] != grid.height * scale[0]:
        raise call.error(f"scales by {scale}: only powers of two are tiled exactly")
    margin, offset = {"nearest": (0, 0.0), "nearest-exact": (0, 0.5), "bilinear": (1, 0.5), "bicubic": (2, 0.5)}[mode]
    kwargs = {"scale_factor": scale, "mode": mode}
    if mode in ("bilinear", "bicubic"):
        kwargs["align_corners"] = False
    op = Resample(F.interpolate, kwargs, scale, margin, offset)
    return tracer.emit(op, call, [lazy._ref], out, Grid(int(out.shape[-2]), int(out.shape[-1])))


@rule("pixel_shuffle", "pixel_unshuffle")
def pixel_shuffle(tracer: Tracer, call: Call) -> Any:
    lazy = _hw_input(call)
    factor = int(call.args[1] if len(call.args) > 1 else next(iter(call.kwargs.values())))
    scale = float(factor) if call.name == "pixel_shuffle" else 1.0 / factor
    func = F.pixel_shuffle if call.name == "pixel_shuffle" else F.pixel_unshuffle
    key = "upscale_factor" if call.name == "pixel_shuffle" else "downscale_factor"
    out = tracer.meta_call(call)
    op = Resample(func, {key: factor}, (scale, scale), 0, 0.0)
    return tracer.emit(op, call, [lazy._ref], out, Grid(int(out.shape[-2]), int(out.shape[-1])))
