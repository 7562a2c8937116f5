"""Key mapping from the official VQCNIR checkpoint's AIEM blocks to ``vqcnir_ops.aiem.AIEM``.

The official model (AlexZou14/VQCNIR, ``models/main_decode.py``) stacks twelve ``AIEM(256)`` in
``multiscale_encoder.blocks.3.blks.{0..11}``. Per block, official key -> ours:

===============================  ==========================================
``norm1.*``                      ``hie.norm.*``
``conv1.*``                      ``hie.conv_in.*``
``conv2.*``                      ``hie.dwconv.*``
``sca1.{conv0,conv_spatial,conv1}.*``  ``hie.lka.{conv0,conv_spatial,conv1}.*``
``sca2.1.*``                     ``hie.sca.conv.*``
``conv3.*``                      ``hie.conv_out.*``
``beta``                         ``beta``
``norm2.*``                      ``imae.norm.*``
``conv4.*``                      ``imae.conv_in.*``
``IMAC.predictA{i}.{j}.*``       ``imae.imac.curve_nets.{i}.{j}.*``
``IMAC.conv{i}.weight/bias``     ``imae.imac.proj.weight/bias``: concatenated over i (dim 0)
``conv5.*``                      ``imae.conv_out.*``
``gamma``                        ``gamma``
===============================  ==========================================

Shapes are unchanged except ``proj``: the official per-split 3x3 convs ``conv{i}`` (``[C/S, C/S, 3, 3]``
each) become one grouped conv ``[C, C/S, 3, 3]`` with ``groups=S``, which computes the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

OFFICIAL_AIEM_PREFIX = "multiscale_encoder.blocks.3.blks."

_RENAMES: tuple[tuple[str, str], ...] = (
    ("norm1.", "hie.norm."),
    ("conv1.", "hie.conv_in."),
    ("conv2.", "hie.dwconv."),
    ("sca1.", "hie.lka."),
    ("sca2.1.", "hie.sca.conv."),
    ("conv3.", "hie.conv_out."),
    ("norm2.", "imae.norm."),
    ("conv4.", "imae.conv_in."),
    ("IMAC.predictA", "imae.imac.curve_nets."),
    ("conv5.", "imae.conv_out."),
)
_SPLIT_CONV = re.compile(r"IMAC\.conv(\d+)\.(weight|bias)")


def convert_official_aiem(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One official ``AIEM``'s state dict (keys relative to the block) -> ours (see the module table).

    Raises ``KeyError`` naming any key it does not know, and ``ValueError`` if the ``IMAC.conv{i}``
    entries are not numbered 0..S-1.

    Example:
        >>> block = AIEM(256)
        >>> block.load_state_dict(convert_official_aiem(official_block.state_dict()))
    """
    out: dict[str, torch.Tensor] = {}
    split_convs: dict[str, dict[int, torch.Tensor]] = {"weight": {}, "bias": {}}
    for key, value in state_dict.items():
        if key in ("beta", "gamma"):
            out[key] = value
            continue
        match = _SPLIT_CONV.fullmatch(key)
        if match:
            split_convs[match.group(2)][int(match.group(1))] = value
            continue
        for old, new in _RENAMES:
            if key.startswith(old):
                out[new + key[len(old) :]] = value
                break
        else:
            raise KeyError(f"convert_official_aiem: unknown official AIEM key {key!r}")
    for kind, parts in split_convs.items():
        if not parts:
            continue
        if sorted(parts) != list(range(len(parts))):
            raise ValueError(
                f"convert_official_aiem: IMAC.conv{{i}}.{kind} must be numbered 0..S-1, got {sorted(parts)}"
            )
        out[f"imae.imac.proj.{kind}"] = torch.cat([parts[i] for i in range(len(parts))], dim=0)
    return out


def convert_official_aiem_blocks(
    state_dict: Mapping[str, torch.Tensor], src_prefix: str = OFFICIAL_AIEM_PREFIX, dst_prefix: str = ""
) -> dict[str, torch.Tensor]:
    """Every ``{src_prefix}{k}.*`` block of an official checkpoint -> ``{dst_prefix}{k}.*`` in our names.

    Keys outside ``src_prefix`` are ignored, so a whole checkpoint can be passed. The result loads into
    an ``nn.ModuleList``/``nn.Sequential`` of ``AIEM`` (``dst_prefix=""``) or a model that holds one.

    Example:
        >>> blocks = torch.nn.Sequential(*[AIEM(256) for _ in range(12)])
        >>> blocks.load_state_dict(convert_official_aiem_blocks(checkpoint["params"]))
    """
    per_block: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        if key.startswith(src_prefix):
            index, _, rest = key[len(src_prefix) :].partition(".")
            per_block.setdefault(index, {})[rest] = value
    out: dict[str, torch.Tensor] = {}
    for index, block in per_block.items():
        for key, value in convert_official_aiem(block).items():
            out[f"{dst_prefix}{index}.{key}"] = value
    return out
