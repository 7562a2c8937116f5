"""Model configuration: one dataclass, with the official (``paper``) and a ``tiny`` preset.

Resolution levels are named by their downsampling factor: level 1 is the input resolution, level 8
the 1/8-resolution latent where the codebook lives.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


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
        object.__setattr__(self, "encoder_channels", tuple(self.encoder_channels))
        object.__setattr__(self, "decoder_channels", tuple(self.decoder_channels))
        object.__setattr__(self, "attention_heads", tuple(self.attention_heads))
        if len(self.encoder_channels) != 4 or len(self.decoder_channels) != 4 or len(self.attention_heads) != 4:
            raise ValueError("encoder_channels, decoder_channels and attention_heads need one entry per level (4)")
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
    def preset(cls, name: str) -> VQCNIRConfig:
        presets = {"paper": cls.paper, "tiny": cls.tiny}
        if name not in presets:
            raise ValueError(f"unknown model preset {name!r}; expected one of {sorted(presets)}")
        return presets[name]()

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> VQCNIRConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; expected a subset of {sorted(known)}")
        return cls(**values)
