"""Classical night-photo restoration pipelines: exposure curve, then denoising, then unsharp masking.

Every pipeline is a :class:`Baseline`: a name and a sequence of steps, each a small frozen dataclass
whose fields are its parameters. They run on sRGB float64 ``[H, W, 3]`` in [0, 1], deterministically
(no random numbers anywhere). :data:`BASELINES` holds the named variants; their parameters were tuned by
measurement on the demo set's training split (``benchmarks/tune_baselines.py``; never on test photos),
maximising mean PSNR, so the best variant is an honest bar for a learned model to clear.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from vqcnir.baselines.exposure import CURVES, correct_exposure
from vqcnir.baselines.filters import denoise_nlm, denoise_tv, unsharp


@dataclass(frozen=True)
class Exposure:
    """Tone curve on Lab lightness so the mean lightness / 100 becomes ``target`` (:func:`correct_exposure`)."""

    target: float
    curve: str = "gamma"

    def __post_init__(self) -> None:
        if not 0.0 < self.target < 1.0:
            raise ValueError(f"Exposure.target must be in (0, 1), got {self.target}")
        if self.curve not in CURVES:
            raise ValueError(f"Exposure.curve must be one of {CURVES}, got {self.curve!r}")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return correct_exposure(image, self.target, self.curve)


@dataclass(frozen=True)
class TotalVariation:
    """Chambolle TV denoising with weight ``strength`` x the estimated noise sigma (:func:`denoise_tv`)."""

    strength: float

    def __post_init__(self) -> None:
        _check_non_negative("TotalVariation.strength", self.strength)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return denoise_tv(image, self.strength)


@dataclass(frozen=True)
class NonLocalMeans:
    """Non-local means with ``h = strength`` x the estimated noise sigma (:func:`denoise_nlm`)."""

    strength: float

    def __post_init__(self) -> None:
        _check_non_negative("NonLocalMeans.strength", self.strength)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return denoise_nlm(image, self.strength)


@dataclass(frozen=True)
class Unsharp:
    """Unsharp mask of Gaussian ``radius`` (pixels) and ``amount`` (:func:`unsharp`)."""

    radius: float
    amount: float

    def __post_init__(self) -> None:
        if not self.radius > 0:
            raise ValueError(f"Unsharp.radius must be > 0, got {self.radius}")
        _check_non_negative("Unsharp.amount", self.amount)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return unsharp(image, self.radius, self.amount)


Step = Exposure | TotalVariation | NonLocalMeans | Unsharp


def _check_non_negative(name: str, value: float) -> None:
    if not value >= 0:  # also refuses NaN
        raise ValueError(f"{name} must be >= 0, got {value}")


@dataclass(frozen=True)
class Baseline:
    """A named classical pipeline: ``steps`` applied in order to sRGB float64 ``[H, W, 3]`` in [0, 1]."""

    name: str
    steps: tuple[Step, ...]
    description: str = ""

    def __call__(self, image: np.ndarray) -> np.ndarray:
        for step in self.steps:
            image = step(image)
        return np.clip(image, 0.0, 1.0)

    def to_dict(self) -> dict[str, object]:
        """Name, description and every step's parameters (for a results file)."""
        steps = [{"step": type(s).__name__, **{f.name: getattr(s, f.name) for f in fields(s)}} for s in self.steps]
        return {"name": self.name, "description": self.description, "steps": steps}


# Tuned on the demo set's 54 training tiles by benchmarks/tune_baselines.py (mean PSNR; every grid point in
# benchmarks/results/tune_baselines.jsonl): the Zero-DCE curve beat the power law at every target (18.28 vs
# 17.34 dB at the best target of both, 0.45); TV peaks at 1.0 and NLM at 0.75 x the estimated sigma (19.88,
# 19.98 dB); a light unsharp mask of radius 1.5 adds 0.02-0.05 dB after either (amount 0.2 after TV, 0.1
# after NLM). Re-run it after changing a step or the demo degradation.
EXPOSURE = Exposure(target=0.45, curve="dce")
TV = TotalVariation(strength=1.0)
NLM = NonLocalMeans(strength=0.75)
UNSHARP_AFTER_TV = Unsharp(radius=1.5, amount=0.2)
UNSHARP_AFTER_NLM = Unsharp(radius=1.5, amount=0.1)

BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("exposure", (EXPOSURE,), "exposure curve to the target mean lightness only"),
        Baseline("exposure+tv", (EXPOSURE, TV), "exposure curve, then total-variation denoising"),
        Baseline("exposure+nlm", (EXPOSURE, NLM), "exposure curve, then non-local means"),
        Baseline("exposure+tv+unsharp", (EXPOSURE, TV, UNSHARP_AFTER_TV), "exposure curve, TV denoising, unsharp mask"),
        Baseline(
            "exposure+nlm+unsharp", (EXPOSURE, NLM, UNSHARP_AFTER_NLM), "exposure curve, non-local means, unsharp mask"
        ),
    )
}
