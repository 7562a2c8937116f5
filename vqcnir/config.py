"""Model configuration: one dataclass, with the official (``paper``) and a ``tiny`` preset.

Resolution levels are named by their downsampling factor: level 1 is the input resolution, level 8
the 1/8-resolution latent where the codebook lives.
"""

from __future__ import annotations

import math
import typing
from dataclasses import asdict, dataclass, fields
from typing import Any

_LEVELS = 4  # resolution levels 1, 2, 4, 8


@dataclass(frozen=True)
class VQCNIRConfig:
    """Sizes of the VQCNIR network (all configurable; defaults are the official model's).

    Attributes:
        in_channels: image channels.
        encoder_channels: channels at levels 1, 2, 4, 8 (input conv, then one stride-2 block each).
        num_aiem: AIEM blocks at level 8 (stage 2 only).
        aiem_split, aiem_curves: IMACConv splits and curve iterations in each AIEM.
        codebook_size, code_dim: the codebook (K codes of dim n_z).
        beta: commitment / code-alignment weight of the quantizer.
        decoder_channels: decoder G's channels at levels 8, 4, 2, 1 (also decoder D's).
        attention_heads: DBCA heads at levels 8, 4, 2, 1.
        offset_groups: deformable-convolution offset groups in texture warping.
        norm_groups: GroupNorm groups in residual blocks and the offset estimators.
    """

    in_channels: int = 3
    encoder_channels: tuple[int, ...] = (64, 128, 256, 256)
    num_aiem: int = 12
    aiem_split: int = 4
    aiem_curves: int = 3
    codebook_size: int = 1024
    code_dim: int = 512
    beta: float = 0.25
    decoder_channels: tuple[int, ...] = (256, 256, 128, 64)
    attention_heads: tuple[int, ...] = (4, 4, 2, 1)
    offset_groups: int = 4
    norm_groups: int = 32

    def __post_init__(self) -> None:
        for name, kind in typing.get_type_hints(type(self)).items():
            object.__setattr__(self, name, _checked(name, getattr(self, name), kind))
        if self.encoder_channels[-1] != self.decoder_channels[0]:
            raise ValueError(
                f"encoder_channels[-1] ({self.encoder_channels[-1]}) must equal decoder_channels[0] "
                f"({self.decoder_channels[0]}): decoder D starts from the deepest encoder feature"
            )
        for name in ("encoder_channels", "decoder_channels"):
            bad = [c for c in getattr(self, name) if c % self.norm_groups]
            if bad:
                raise ValueError(f"{name} {bad} must be divisible by norm_groups ({self.norm_groups})")
        for channels, heads in zip(self.decoder_channels, self.attention_heads, strict=True):
            if channels % heads:
                raise ValueError(f"decoder level with {channels} channels cannot be split into {heads} heads")

    @classmethod
    def paper(cls) -> VQCNIRConfig:
        """The official model (47,854,222 parameters with decoder D)."""
        return cls()

    @classmethod
    def tiny(cls) -> VQCNIRConfig:
        """Same structure, cut so that a training step on a 64 px crop is fast on 2 CPU cores."""
        return cls(
            encoder_channels=(16, 32, 32, 32),
            num_aiem=2,
            codebook_size=64,
            code_dim=32,
            decoder_channels=(32, 32, 32, 16),
            attention_heads=(2, 2, 1, 1),
            norm_groups=8,
        )

    @classmethod
    def small(cls) -> VQCNIRConfig:
        """A larger candidate for the default model: 2x tiny's widths at full resolution, 4x at 1/8, a 512 x 64
        codebook, 21.7 MB of float32 weights. At this session's CPU budget ``tiny`` gave the better prior per
        CPU-hour, so the shipped model is ``tiny`` (README, "The default model"); ``small`` is for longer runs."""
        return cls(
            encoder_channels=(32, 64, 128, 128),
            num_aiem=2,
            codebook_size=512,
            code_dim=64,
            decoder_channels=(128, 96, 64, 32),
            attention_heads=(2, 2, 1, 1),
            norm_groups=16,
        )

    @classmethod
    def preset(cls, name: str) -> VQCNIRConfig:
        """The preset called ``name`` (``"paper"``, ``"small"`` or ``"tiny"``)."""
        presets = {"paper": cls.paper, "small": cls.small, "tiny": cls.tiny}
        if name not in presets:
            raise ValueError(f"unknown model preset {name!r}; expected one of {sorted(presets)}")
        return presets[name]()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples as lists)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> VQCNIRConfig:
        """Inverse of :meth:`to_dict`; missing keys take the defaults, unknown keys raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; expected a subset of {sorted(known)}")
        return cls(**values)


def _checked(name: str, value: Any, kind: Any) -> Any:
    """``value`` as the field's type (int >= 1 / float >= 0 / tuple of 4 ints >= 1); ValueError naming the field."""
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"model config field '{name}' must be a finite number >= 0, got {value!r}")
        return float(value)
    if kind is int:
        low = 0 if name == "num_aiem" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"model config field '{name}' must be an integer >= {low}, got {value!r}")
        return value
    items = tuple(value) if isinstance(value, (list, tuple)) else None
    if (
        items is None
        or len(items) != _LEVELS
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in items)
    ):
        raise ValueError(f"model config field '{name}' must be {_LEVELS} integers >= 1 (one per level), got {value!r}")
    return items
