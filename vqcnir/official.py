"""Loading the authors' released checkpoint (``VQCNIR_LOLBlur_G.pth``, state dict under ``params``).

Key mapping, official -> ours (``s`` = level 8, 4, 2, 1; ``i`` = 0, 1, 2; ``r`` = 1, 2):

==========================================================  ==================================================
``multiscale_encoder.in_conv.*``                            ``encoder.in_conv.*``
``multiscale_encoder.blocks.i.0.*``                         ``encoder.blocks.i.0.*`` (stride-2 conv)
``multiscale_encoder.blocks.i.r.conv.{0.norm,2,3.norm,5}.*``  ``encoder.blocks.i.r.{norm1,conv1,norm2,conv2}.*``
``multiscale_encoder.blocks.3.blks.k.*``                    ``encoder.enhance.k.*`` (``convert_official_aiem``)
``before_quant_group.0.*``                                  ``quant_conv.*``
``quantize_group.0.embedding.weight``                       ``quantizer.embedding.weight``
``after_quant_group.0.conv.*``                              ``post_quant_conv.*``
``decoder_group.i.block.1.*``                               ``decoder_g.blocks.i.1.*``
``decoder_group.i.block.{2,3}.conv.{0.norm,2,3.norm,5}.*``  ``decoder_g.blocks.i.{2,3}.{norm1,conv1,norm2,conv2}.*``
``out_conv.*``                                              ``to_rgb.*``
``main_decode.attn.Level_s.*``                              ``decoder_d.dbca.s.attn.*`` (TWAM key map)
``main_decode.align_func_dict.Level_s.*``                   ``decoder_d.dbca.s.warp.*``
``main_decode.pre_upsample_dict.Level_s.1.*``               ``decoder_d.upsample.s.1.*``
``main_decode.decoder_dict.Level_s.*``                      ``decoder_d.fuse.s.*``
==========================================================  ==================================================

Loading is strict: every official tensor is consumed, or matches ``UNUSED_OFFICIAL_KEYS`` (training-only
parts that inference does not use), and every parameter of ours is filled with a tensor of its shape.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping

import torch

from vqcnir.checkpoint import CheckpointError
from vqcnir.config import VQCNIRConfig
from vqcnir.model import VQCNIR
from vqcnir_ops import convert_official_aiem_blocks
from vqcnir_ops.dbca import dbca_state_dict_from_official

# Training-only parts of the official VQLOL (the semantic loss of the HQ stage) that inference ignores.
UNUSED_OFFICIAL_KEYS = (re.compile(r"conv_semantic\..*"), re.compile(r"vgg_feat_extractor\..*"))

_RES = {"0.norm": "norm1", "2": "conv1", "3.norm": "norm2", "5": "conv2"}
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"multiscale_encoder\.in_conv\.(.+)"), r"encoder.in_conv.\1"),
    (re.compile(r"multiscale_encoder\.blocks\.([012])\.0\.(.+)"), r"encoder.blocks.\1.0.\2"),
    (re.compile(r"before_quant_group\.0\.(.+)"), r"quant_conv.\1"),
    (re.compile(r"quantize_group\.0\.embedding\.weight"), r"quantizer.embedding.weight"),
    (re.compile(r"after_quant_group\.0\.conv\.(.+)"), r"post_quant_conv.\1"),
    (re.compile(r"decoder_group\.(\d)\.block\.1\.(.+)"), r"decoder_g.blocks.\1.1.\2"),
    (re.compile(r"out_conv\.(.+)"), r"to_rgb.\1"),
    (re.compile(r"main_decode\.pre_upsample_dict\.Level_(\d+)\.1\.(.+)"), r"decoder_d.upsample.\1.1.\2"),
    (re.compile(r"main_decode\.decoder_dict\.Level_(\d+)\.(.+)"), r"decoder_d.fuse.\1.\2"),
)
_RESBLOCK = re.compile(
    r"(multiscale_encoder\.blocks\.([012])\.([12])|decoder_group\.(\d)\.block\.([23]))\.conv\.(0\.norm|2|3\.norm|5)\.(.+)"
)
_AIEM_PREFIX = "multiscale_encoder.blocks.3.blks."
_DBCA = re.compile(r"main_decode\.(attn|align_func_dict)\.Level_(\d+)\..+")


def convert_official_state_dict(official: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official state dict in our names (module table). Raises ``KeyError`` listing official keys
    that no rule consumes (other than ``UNUSED_OFFICIAL_KEYS``)."""
    ours: dict[str, torch.Tensor] = {}
    unknown, levels = [], set()
    for key, value in official.items():
        if key.startswith(_AIEM_PREFIX) or any(p.fullmatch(key) for p in UNUSED_OFFICIAL_KEYS):
            continue
        dbca = _DBCA.fullmatch(key)
        if dbca:
            levels.add(int(dbca.group(2)))
            continue
        res = _RESBLOCK.fullmatch(key)
        if res:
            where = f"encoder.blocks.{res[2]}.{res[3]}" if res[2] else f"decoder_g.blocks.{res[4]}.{res[5]}"
            ours[f"{where}.{_RES[res[6]]}.{res[7]}"] = value
            continue
        for pattern, replacement in _RULES:
            if pattern.fullmatch(key):
                ours[pattern.sub(replacement, key)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f"official checkpoint has {len(unknown)} keys no mapping consumes, e.g. {unknown[:8]}")
    ours.update(convert_official_aiem_blocks(official, dst_prefix="encoder.enhance."))
    for level in sorted(levels):
        for key, value in dbca_state_dict_from_official(official, level).items():
            ours[f"decoder_d.dbca.{level}.{key}"] = value
    return ours


def load_official_checkpoint(
    path: str | os.PathLike, config: VQCNIRConfig | None = None, backend: str | None = None
) -> VQCNIR:
    """Build VQCNIR (``paper`` config by default) with the authors' weights, in eval mode.

    The file is read with ``torch.load(weights_only=True)`` (tensors only, no arbitrary code). A file that
    is empty, damaged, not a PyTorch file, or holds anything but tensors raises :class:`CheckpointError`
    naming it.

    Example:
        >>> model = load_official_checkpoint("VQCNIR_LOLBlur_G.pth")  # doctest: +SKIP
        >>> restored = model.restore(night_image)  # doctest: +SKIP
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"argument 'path': no file at {os.fspath(path)!r}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, pickle.UnpicklingError, RuntimeError, ValueError, OSError) as error:
        reason = "the file is empty" if os.path.getsize(path) == 0 else f"{type(error).__name__}: {error}"
        raise CheckpointError(
            f"cannot read {os.fspath(path)!r} as a PyTorch checkpoint ({reason}); expected the authors' "
            "VQCNIR_LOLBlur_G.pth (a state dict under 'params')"
        ) from error
    state = checkpoint.get("params", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{os.fspath(path)!r} holds no state dict (expected a dict, with the weights under 'params')"
        )
    model = VQCNIR(config or VQCNIRConfig.paper(), backend=backend)
    converted = convert_official_state_dict(state)
    missing, unexpected = model.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise RuntimeError(
            f"official checkpoint does not fit this config: missing {missing[:8]} ({len(missing)}), "
            f"unexpected {unexpected[:8]} ({len(unexpected)})"
        )
    return model.eval()
