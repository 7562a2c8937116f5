"""The authors' released checkpoint (``VQCNIR_LOLBlur_G.pth``, state dict under ``params``) in our names.

Every official-checkpoint converter lives here, under one naming scheme and one key-matching rule:

- **Names**: ``<our module>_state_dict_from_official(official, prefix)`` returns the state dict of one of
  our modules (keys relative to it) from an official state dict: :func:`vqcnir_state_dict_from_official`
  (the whole model), :func:`aiem_state_dict_from_official` (one ``vqcnir_ops.AIEM``),
  :func:`aiem_blocks_state_dict_from_official` (a stack of them), :func:`channel_attention_state_dict_from_official`
  (``vqcnir_ops.BidirectionalChannelAttention`` from the official ``TWAM``),
  :func:`texture_warp_state_dict_from_official` (``vqcnir_ops.TextureWarp``) and
  :func:`dbca_state_dict_from_official` (``vqcnir_ops.DBCA`` of one decoder level).
- **Matching**: a converter reads exactly the keys that start with its official ``prefix`` (a plain string
  prefix, never a substring anywhere in the key); each key's remainder must match one rule of the part's
  table in full, or the converter raises ``KeyError`` naming the official key. Keys outside the prefix are
  ignored, so the whole checkpoint can be passed to every converter.

The tables (official -> ours; ``{name}`` is one index, ``{param}`` one key component, ``{tail}`` the rest):

==========================================================  ==================================================
``multiscale_encoder.in_conv.*``                            ``encoder.in_conv.*``
``multiscale_encoder.blocks.i.0.*``                         ``encoder.blocks.i.0.*`` (stride-2 conv)
``multiscale_encoder.blocks.i.r.conv.{0.norm,2,3.norm,5}.*``  ``encoder.blocks.i.r.{norm1,conv1,norm2,conv2}.*``
``multiscale_encoder.blocks.3.blks.k.*``                    ``encoder.enhance.k.*`` (``AIEM_RULES``)
``before_quant_group.0.*``                                  ``quant_conv.*``
``quantize_group.0.embedding.weight``                       ``quantizer.embedding.weight``
``after_quant_group.0.conv.*``                              ``post_quant_conv.*``
``decoder_group.i.block.1.*``                               ``decoder_g.blocks.i.1.*``
``decoder_group.i.block.{2,3}.conv.{0.norm,2,3.norm,5}.*``  ``decoder_g.blocks.i.{2,3}.{norm1,conv1,norm2,conv2}.*``
``out_conv.*``                                              ``to_rgb.*``
``main_decode.attn.Level_s.*``                              ``decoder_d.dbca.s.attn.*`` (``TWAM_RULES``)
``main_decode.align_func_dict.Level_s.*``                   ``decoder_d.dbca.s.warp.*`` (``TEXTURE_WARP_RULES``)
``main_decode.pre_upsample_dict.Level_s.1.*``               ``decoder_d.upsample.s.1.*``
``main_decode.decoder_dict.Level_s.*``                      ``decoder_d.fuse.s.*``
==========================================================  ==================================================

AIEM (official ``models/main_decode.py``, per block): ``norm1 conv1 conv2 sca1 sca2.1 conv3`` -> ``hie.{norm,
conv_in, dwconv, lka, sca.conv, conv_out}``, ``norm2 conv4 conv5`` -> ``imae.{norm, conv_in, conv_out}``,
``IMAC.predictA{i}`` -> ``imae.imac.curve_nets.{i}``, the per-split 3x3 convs ``IMAC.conv{i}`` (``[C/S, C/S, 3,
3]`` each) concatenated over i into the one grouped conv ``imae.imac.proj`` (``[C, C/S, 3, 3]``, ``groups=S``);
``beta``, ``gamma`` unchanged. TWAM: ``scale`` ``[heads, 1, 1]`` -> ``temperature`` ``[heads]``; ``beta`` and
``gamma`` ``[1, C, 1, 1]`` -> ``gamma_d`` and ``gamma_g`` ``[C]``; ``d_proj1 g_proj1 d_proj2 g_proj2`` ->
``proj_q_d proj_q_g proj_v_d proj_v_g``; ``norm_d``, ``norm_g`` unchanged. The texture warp's names are ours.

Loading (:func:`load_official_checkpoint`) is strict: every official tensor is consumed, or matches
``UNUSED_OFFICIAL_KEYS`` (training-only parts that inference does not use), and every parameter of ours is
filled with a tensor of its shape; missing, extra and mis-shaped tensors are named by their official key.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from vqcnir.checkpoint import CheckpointError, load_torch_file
from vqcnir.config import VQCNIRConfig
from vqcnir.model import VQCNIR

OFFICIAL_AIEM_PREFIX = "multiscale_encoder.blocks.3.blks."
OFFICIAL_DECODER_PREFIX = "main_decode."
# Training-only parts of the official VQLOL (the semantic loss of the HQ stage) that inference ignores.
UNUSED_OFFICIAL_KEYS = (re.compile(r"conv_semantic\..*"), re.compile(r"vgg_feat_extractor\..*"))

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_GROUPS = {"param": r"[^.]+", "tail": r".+"}  # every other placeholder is an index


@functools.cache
def _pattern(template: str) -> re.Pattern[str]:
    parts, last = [], 0
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1)
        parts += [re.escape(template[last : match.start()]), f"(?P<{name}>{_GROUPS.get(name, r'[0-9]+')})"]
        last = match.end()
    return re.compile("".join(parts) + re.escape(template[last:]))


@dataclass(frozen=True)
class Rule:
    """One official key pattern and our key for it (``{name}`` placeholders as in the module table).

    ``flatten`` reshapes the value to 1-D; ``concat`` marks a placeholder that appears on the official side
    only: the values of its indices 0..n-1 are concatenated along dim 0 into our one tensor.
    """

    official: str
    ours: str
    flatten: bool = False
    concat: str | None = None

    def under(self, official_prefix: str, our_prefix: str) -> Rule:
        """This rule for a part that sits at ``official_prefix`` in the checkpoint and ``our_prefix`` in ours."""
        return Rule(official_prefix + self.official, our_prefix + self.ours, self.flatten, self.concat)


def _under(official_prefix: str, our_prefix: str, rules: Sequence[Rule]) -> tuple[Rule, ...]:
    return tuple(rule.under(official_prefix, our_prefix) for rule in rules)


def _renames(pairs: dict[str, str], rest: str = "{param}") -> tuple[Rule, ...]:
    """One rule per renamed submodule: ``<theirs>.<rest>`` -> ``<ours>.<rest>``."""
    return tuple(Rule(f"{theirs}.{rest}", f"{ours}.{rest}") for theirs, ours in pairs.items())


RESBLOCK_RULES = _renames({"conv.0.norm": "norm1", "conv.2": "conv1", "conv.3.norm": "norm2", "conv.5": "conv2"})
AIEM_RULES = (
    *_renames({"norm1": "hie.norm", "conv1": "hie.conv_in", "conv2": "hie.dwconv", "sca2.1": "hie.sca.conv"}),
    *_renames({"conv3": "hie.conv_out", "norm2": "imae.norm", "conv4": "imae.conv_in", "conv5": "imae.conv_out"}),
    Rule("sca1.{tail}", "hie.lka.{tail}"),
    Rule("IMAC.predictA{split}.{tail}", "imae.imac.curve_nets.{split}.{tail}"),
    Rule("IMAC.conv{split}.{param}", "imae.imac.proj.{param}", concat="split"),
    Rule("beta", "beta"),
    Rule("gamma", "gamma"),
)
TWAM_RULES = (
    Rule("scale", "temperature", flatten=True),  # [heads, 1, 1] -> [heads]
    Rule("beta", "gamma_d", flatten=True),  # [1, C, 1, 1] -> [C]: out_d = f_d + gamma_d * a_g
    Rule("gamma", "gamma_g", flatten=True),  # [1, C, 1, 1] -> [C]: out_g = f_g + gamma_g * a_d
    *_renames({"norm_d": "norm_d", "norm_g": "norm_g", "d_proj1": "proj_q_d", "g_proj1": "proj_q_g"}),
    *_renames({"d_proj2": "proj_v_d", "g_proj2": "proj_v_g"}),
)
TEXTURE_WARP_RULES = _renames(
    {"offset_conv1.{layer}": "offset_conv1.{layer}", "offset_conv2.{layer}": "offset_conv2.{layer}", "dcn": "dcn"}
) + _renames({"dcn.conv_offset": "dcn.conv_offset"})
VQCNIR_RULES = (
    Rule("multiscale_encoder.in_conv.{param}", "encoder.in_conv.{param}"),
    Rule("multiscale_encoder.blocks.{level}.0.{param}", "encoder.blocks.{level}.0.{param}"),
    *_under("multiscale_encoder.blocks.{level}.{block}.", "encoder.blocks.{level}.{block}.", RESBLOCK_RULES),
    *_under(OFFICIAL_AIEM_PREFIX + "{k}.", "encoder.enhance.{k}.", AIEM_RULES),
    Rule("before_quant_group.0.{param}", "quant_conv.{param}"),
    Rule("quantize_group.0.embedding.weight", "quantizer.embedding.weight"),
    Rule("after_quant_group.0.conv.{param}", "post_quant_conv.{param}"),
    Rule("decoder_group.{level}.block.1.{param}", "decoder_g.blocks.{level}.1.{param}"),
    *_under("decoder_group.{level}.block.{block}.", "decoder_g.blocks.{level}.{block}.", RESBLOCK_RULES),
    Rule("out_conv.{param}", "to_rgb.{param}"),
    *_under(OFFICIAL_DECODER_PREFIX + "attn.Level_{s}.", "decoder_d.dbca.{s}.attn.", TWAM_RULES),
    *_under(OFFICIAL_DECODER_PREFIX + "align_func_dict.Level_{s}.", "decoder_d.dbca.{s}.warp.", TEXTURE_WARP_RULES),
    Rule(OFFICIAL_DECODER_PREFIX + "pre_upsample_dict.Level_{s}.1.{param}", "decoder_d.upsample.{s}.1.{param}"),
    Rule(OFFICIAL_DECODER_PREFIX + "decoder_dict.Level_{s}.{tail}", "decoder_d.fuse.{s}.{tail}"),
)


@dataclass(frozen=True)
class Converted:
    """A conversion's result: our state dict, the official key(s) each of our keys came from, and the
    official keys under the prefix that no rule matched."""

    state_dict: dict[str, torch.Tensor]
    origin: dict[str, str]
    unknown: list[str]


def convert(official: Mapping[str, torch.Tensor], rules: Sequence[Rule], prefix: str = "") -> Converted:
    """Convert every key of ``official`` that starts with ``prefix`` by the one rule its remainder matches."""
    compiled = [(rule, _pattern(rule.official)) for rule in rules]
    ours: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    parts: dict[str, dict[int, torch.Tensor]] = {}
    unknown: list[str] = []
    for key, value in official.items():
        if not key.startswith(prefix):
            continue
        local = key[len(prefix) :]
        matches = [(rule, m) for rule, pattern in compiled if (m := pattern.fullmatch(local))]
        if not matches:
            unknown.append(key)
            continue
        if len(matches) > 1:
            raise ValueError(f"official key {key!r} matches {len(matches)} rules: the table is ambiguous")
        rule, match = matches[0]
        name = _PLACEHOLDER.sub(lambda p, m=match: m.group(p.group(1)), rule.ours)
        if rule.concat is not None:
            parts.setdefault(name, {})[int(match.group(rule.concat))] = value
            origin[name] = prefix + _PLACEHOLDER.sub(
                lambda p, m=match, c=rule.concat: f"<{c}>" if p.group(1) == c else m.group(p.group(1)), rule.official
            )
            continue
        ours[name] = value.reshape(-1) if rule.flatten else value
        origin[name] = key
    for name, pieces in parts.items():
        if sorted(pieces) != list(range(len(pieces))):
            raise KeyError(f"official keys {origin[name]!r} must be numbered 0..n-1, got {sorted(pieces)}")
        ours[name] = torch.cat([pieces[i] for i in range(len(pieces))], dim=0)
    return Converted(ours, origin, unknown)


def official_name(our_key: str, rules: Sequence[Rule], prefix: str = "") -> str:
    """The official key that fills ``our_key`` (``<name>`` for a concatenated index), or ``our_key`` itself
    marked as having none."""
    for rule in rules:
        match = _pattern(rule.ours).fullmatch(our_key)
        if match:
            return prefix + _PLACEHOLDER.sub(
                lambda p, m=match: m.group(p.group(1)) if p.group(1) in m.groupdict() else f"<{p.group(1)}>",
                rule.official,
            )
    return f"(no official key for {our_key!r})"


def _part(official: Mapping[str, torch.Tensor], rules: Sequence[Rule], prefix: str) -> dict[str, torch.Tensor]:
    converted = convert(official, rules, prefix)
    if converted.unknown:
        raise KeyError(f"official keys under {prefix!r} that no rule matches: {converted.unknown[:8]}")
    if not converted.state_dict:
        raise KeyError(f"no key starts with {prefix!r}: is it an official VQCNIR checkpoint?")
    return converted.state_dict


def aiem_state_dict_from_official(official: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """One official ``AIEM`` block (keys under ``prefix``) -> ``vqcnir_ops.AIEM``'s state dict (``AIEM_RULES``).

    Example:
        >>> block = vqcnir_ops.AIEM(256)
        >>> block.load_state_dict(aiem_state_dict_from_official(ckpt["params"], OFFICIAL_AIEM_PREFIX + "0."))
    """
    return _part(official, AIEM_RULES, prefix)


def aiem_blocks_state_dict_from_official(
    official: Mapping[str, torch.Tensor], prefix: str = OFFICIAL_AIEM_PREFIX
) -> dict[str, torch.Tensor]:
    """Every block ``{prefix}{k}.*`` -> ``{k}.*`` of an ``nn.Sequential`` / ``nn.ModuleList`` of ``AIEM``.

    Example:
        >>> blocks = torch.nn.Sequential(*[vqcnir_ops.AIEM(256) for _ in range(12)])
        >>> blocks.load_state_dict(aiem_blocks_state_dict_from_official(ckpt["params"]))
    """
    return _part(official, _under("{k}.", "{k}.", AIEM_RULES), prefix)


def channel_attention_state_dict_from_official(
    official: Mapping[str, torch.Tensor], prefix: str
) -> dict[str, torch.Tensor]:
    """The official ``TWAM`` under ``prefix`` -> ``vqcnir_ops.BidirectionalChannelAttention`` (``TWAM_RULES``).

    Example:
        >>> attn = vqcnir_ops.BidirectionalChannelAttention(256, num_heads=4)
        >>> twam = channel_attention_state_dict_from_official(ckpt["params"], "main_decode.attn.Level_8.")
        >>> attn.load_state_dict(twam)
    """
    return _part(official, TWAM_RULES, prefix)


def texture_warp_state_dict_from_official(official: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The official ``TextureWarpingModule`` under ``prefix`` -> ``vqcnir_ops.TextureWarp`` (same names).

    Example:
        >>> warp = vqcnir_ops.TextureWarp(64, previous_offset_channels=128)
        >>> prefix = "main_decode.align_func_dict.Level_2."
        >>> warp.load_state_dict(texture_warp_state_dict_from_official(ckpt["params"], prefix))
    """
    return _part(official, TEXTURE_WARP_RULES, prefix)


def dbca_state_dict_from_official(
    official: Mapping[str, torch.Tensor], level: int, prefix: str = OFFICIAL_DECODER_PREFIX
) -> dict[str, torch.Tensor]:
    """One decoder level's ``vqcnir_ops.DBCA``: ``{prefix}attn.Level_<level>.*`` (TWAM) -> ``attn.*`` and
    ``{prefix}align_func_dict.Level_<level>.*`` -> ``warp.*``.

    Example:
        >>> dbca = vqcnir_ops.DBCA(256, num_heads=4)
        >>> dbca.load_state_dict(dbca_state_dict_from_official(ckpt["params"], 8))
    """
    attn = _part(official, _under("", "attn.", TWAM_RULES), f"{prefix}attn.Level_{level}.")
    warp = _part(official, _under("", "warp.", TEXTURE_WARP_RULES), f"{prefix}align_func_dict.Level_{level}.")
    return attn | warp


def vqcnir_state_dict_from_official(official: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The whole official state dict in our names (``VQCNIR_RULES``). Raises ``KeyError`` listing official keys
    that no rule consumes (other than ``UNUSED_OFFICIAL_KEYS``)."""
    return _convert_checkpoint(official).state_dict


def _convert_checkpoint(official: Mapping[str, torch.Tensor]) -> Converted:
    used = {k: v for k, v in official.items() if not any(p.fullmatch(k) for p in UNUSED_OFFICIAL_KEYS)}
    converted = convert(used, VQCNIR_RULES)
    if converted.unknown:
        raise KeyError(
            f"official checkpoint has {len(converted.unknown)} keys no mapping consumes, e.g. {converted.unknown[:8]}"
        )
    return converted


def _load_into(model: VQCNIR, converted: Converted) -> None:
    """Strict load whose errors name official keys."""
    expected = model.state_dict()
    missing = [official_name(k, VQCNIR_RULES) for k in expected if k not in converted.state_dict]
    unexpected = [converted.origin[k] for k in converted.state_dict if k not in expected]
    misshaped = [
        f"{converted.origin[k]} {tuple(v.shape)} (expected {tuple(expected[k].shape)})"
        for k, v in converted.state_dict.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if missing or unexpected or misshaped:
        raise RuntimeError(
            "official checkpoint does not fit this config: "
            f"missing official keys {missing[:8]} ({len(missing)}), unexpected official keys {unexpected[:8]} "
            f"({len(unexpected)}), wrong shapes {misshaped[:8]} ({len(misshaped)})"
        )
    model.load_state_dict(converted.state_dict, strict=True)


def load_official_checkpoint(
    path: str | os.PathLike, config: VQCNIRConfig | None = None, backend: str | None = None
) -> VQCNIR:
    """Build VQCNIR (``paper`` config by default) with the authors' weights, in eval mode.

    The file is read with ``torch.load(weights_only=True)`` (tensors only, no arbitrary code). A file that
    is empty, damaged, not a PyTorch file, or holds anything but tensors raises :class:`CheckpointError`
    naming it; tensors that do not fit the config raise ``RuntimeError`` naming their official keys.

    Example:
        >>> model = load_official_checkpoint("VQCNIR_LOLBlur_G.pth")  # doctest: +SKIP
        >>> restored = model.restore(night_image)  # doctest: +SKIP
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"argument 'path': no file at {os.fspath(path)!r}")
    checkpoint = load_torch_file(
        path, "a PyTorch checkpoint", "; expected the authors' VQCNIR_LOLBlur_G.pth (a state dict under 'params')"
    )
    state = checkpoint.get("params", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{os.fspath(path)!r} holds no state dict (expected a dict, with the weights under 'params')"
        )
    model = VQCNIR(config or VQCNIRConfig.paper(), backend=backend)
    _load_into(model, _convert_checkpoint(state))
    return model.eval()
