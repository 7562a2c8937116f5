"""Whole-image statistics: reductions over all pixels, accumulated tile by tile, and what uses them.

Every global statistic of the supported layers is a sum (or an extremum) over pixels, so a pass over
the tiles of its input accumulates it exactly:

- ``mean`` / ``sum`` (and ``adaptive_avg_pool2d(x, 1)``): float64 sums and counts;
- ``var`` / ``std`` and ``group_norm``: per-tile count, mean and sum of squared deviations, merged with
  Chan et al.'s parallel update in float64 (no cancellation of a sum of squares);
- ``amax`` / ``amin``: running extrema;
- the channel attention of ``vqcnir_ops.bidirectional_channel_attention``: the Gram matrix
  ``q_d q_g^T`` and the squared norms, summed over tiles (``vqcnir_ops.attention.staged.gram_torch``).

What depends on a statistic is per pixel once its value is known: ``group_norm``'s normalisation, and
the attention's ``attn @ v + residual`` (``staged.attention_map`` turns the sums into the map once).
"""

from __future__ import annotations

from typing import Any

import torch

from vqcnir.tiling.graph import Node, ReduceOp, Ref
from vqcnir.tiling.reductions import Moments, crop_input, merge_moments, moments
from vqcnir.tiling.regions import Region
from vqcnir.tiling.rules import per_pixel
from vqcnir.tiling.trace import Call, LazyTensor, Tracer, rule
from vqcnir_ops.attention.staged import attention_map, gram_torch, mix_torch

# --- group_norm ----------------------------------------------------------------------------------------


class GroupMoments(ReduceOp):
    """Mean and (biased) variance ``[B, G]`` of each sample's channel groups over all pixels, in float64."""

    def __init__(self, groups: int) -> None:
        self.groups = groups

    def describe(self) -> str:
        return f"group_norm statistics ({self.groups} groups)"

    def partial(self, node: Node, inputs: list[Any], region: Region) -> Moments:
        x = crop_input(node, inputs, region)
        return moments(x.reshape(x.shape[0], self.groups, -1), [2])

    def combine(self, a: Moments, b: Moments) -> Moments:
        return merge_moments(a, b)

    def finalize(self, node: Node, state: Moments, inputs: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        count, mean, squares = state
        return mean, squares / count


def group_norm_apply(
    x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, groups: int,
    weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float,
) -> torch.Tensor:  # fmt: skip
    """``F.group_norm`` of ``x`` ``[B, C, ...]`` with given group statistics ``[B, G, 1]`` (any part of the image):
    ``x * scale + shift`` per sample and channel, one output allocation."""
    batch, channels = x.shape[:2]
    rstd = torch.rsqrt(var + eps).expand(batch, groups, channels // groups).reshape(batch, channels)
    mean = mean.expand(batch, groups, channels // groups).reshape(batch, channels)
    scale = rstd if weight is None else rstd * weight.to(rstd.dtype)
    shift = -mean * scale if bias is None else bias.to(rstd.dtype) - mean * scale
    view = (batch, channels) + (1,) * (x.dim() - 2)
    return torch.addcmul(shift.to(x.dtype).view(view), x, scale.to(x.dtype).view(view))


@rule("group_norm")
def group_norm(tracer: Tracer, call: Call) -> Any:
    names = ("input", "num_groups", "weight", "bias", "eps")
    given = dict(zip(names, call.args, strict=False)) | call.kwargs
    lazy = given["input"]
    if not isinstance(lazy, LazyTensor) or len(call.spatial()) != 1 or lazy.dim() < 3:
        raise call.error("the input must be one full-resolution [B, C, ...] activation")
    groups = int(given["num_groups"])
    tracer.meta_call(call)  # the call's own argument checks
    stats = tracer.record(GroupMoments(groups), [lazy._ref], _group_metas(lazy, groups), None, where=call.where)
    mean, var = tracer.wrap(Ref(stats, 0)), tracer.wrap(Ref(stats, 1))
    args = (lazy, mean, var, groups, given.get("weight"), given.get("bias"), float(given.get("eps", 1e-5)))
    return per_pixel(tracer, Call(group_norm_apply, "group_norm", args, {}, call.where), trusted=True)


def _group_metas(lazy: LazyTensor, groups: int) -> list[torch.Tensor]:
    meta = torch.empty(lazy.shape[0], groups, 1, dtype=torch.float64, device="meta")
    return [meta, torch.empty_like(meta)]


@rule("instance_norm")
def instance_norm(tracer: Tracer, call: Call) -> Any:
    names = ("input", "running_mean", "running_var", "weight", "bias", "use_input_stats", "momentum", "eps")
    given = dict(zip(names, call.args, strict=False)) | call.kwargs
    if not given.get("use_input_stats", True):
        return per_pixel(tracer, call)
    if given.get("running_mean") is not None:
        raise call.error("updating running statistics is not supported (use eval mode or track_running_stats=False)")
    lazy = given["input"]
    groups = lazy.shape[1]
    args = (lazy, groups, given.get("weight"), given.get("bias"), float(given.get("eps", 1e-5)))
    import torch.nn.functional as F

    return group_norm(tracer, Call(F.group_norm, "group_norm", args, {}, call.where))


# --- bi-directional channel attention ------------------------------------------------------------------


class ChannelGram(ReduceOp):
    """``(q_d @ q_g^T, |q_d|^2, |q_g|^2)`` over all pixels of ``[B, heads, C, N]`` queries."""

    def describe(self) -> str:
        return "channel attention Gram matrix"

    def partial(self, node: Node, inputs: list[Any], region: Region) -> tuple[torch.Tensor, ...]:
        parts = gram_torch(crop_input(node, inputs, region, 0), crop_input(node, inputs, region, 1))
        return tuple(p.to(torch.float64) for p in parts)

    def combine(self, a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return tuple(x + y for x, y in zip(a, b, strict=True))

    def finalize(self, node: Node, state: tuple[torch.Tensor, ...], inputs: list[Any]) -> tuple[torch.Tensor, ...]:
        return tuple(s.to(node.metas[0].dtype) for s in state)


def attention_mix(attn: torch.Tensor, v: torch.Tensor, res: torch.Tensor | None, gain: torch.Tensor) -> torch.Tensor:
    """``res + gain * (attn @ v)`` for ``v`` ``[B, heads, C, n]``: the per-pixel phase of the attention op."""
    rows = gain.to(attn.dtype).view(1, attn.shape[1], attn.shape[2], 1)
    return mix_torch(rows * attn, v, res, None)


@rule("vqcnir::bidirectional_channel_attention_fwd")
def channel_attention(tracer: Tracer, call: Call) -> Any:
    names = ("q_d", "q_g", "v_d", "v_g", "temperature", "gain_d", "gain_g", "res_d", "res_g", "normalize", "scale",
             "eps", "backend")  # fmt: skip
    given = dict(zip(names, call.args, strict=False)) | call.kwargs
    for name in ("q_d", "q_g", "v_d", "v_g"):
        t = given[name]
        if not isinstance(t, LazyTensor) or not t._ref.node.spatial or t._ref.layout != "n":
            raise call.error(f"argument {name!r} must be a full-resolution activation [B, heads, C, H * W]")
    out = tracer.meta_call(call)
    compute = out[2].dtype
    metas = [torch.empty_like(out[2]), torch.empty_like(out[4]), torch.empty_like(out[5])]
    for meta in metas:
        assert meta.dtype == compute
    gram = tracer.record(ChannelGram(), [given["q_d"]._ref, given["q_g"]._ref], metas, None, where=call.where)
    sums = [tracer.wrap(Ref(gram, i)) for i in range(3)]
    map_args = (*sums, given["temperature"], bool(given["normalize"]), float(given["scale"]), float(given["eps"]))
    amap = tracer.small_call(Call(attention_map, "attention_map", map_args, {}, call.where))
    mixed = [
        per_pixel(tracer, Call(attention_mix, "attention_mix", args, {}, call.where), trusted=True)
        for args in ((amap.attn, given["v_d"], given["res_d"], given["gain_d"]),
                     (amap.attn, given["v_g"], given["res_g"], given["gain_g"]))
    ]  # fmt: skip
    return (*mixed, amap.attn, amap.scores, amap.norm_d, amap.norm_g)
