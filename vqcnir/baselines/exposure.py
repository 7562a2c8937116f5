"""Global exposure correction: a tone curve on CIE Lab lightness, solved so the mean lightness hits a target.

A night photo is mostly too dark everywhere, so the first classical step lifts the lightness ``l = L / 100``
with one monotone curve ``f`` for the whole image, choosing the curve's single parameter by bisection so
that ``mean(f(l))`` equals ``target``. Chroma (Lab a, b) is scaled by ``f(l) / l``, which keeps each
pixel's saturation (chroma relative to lightness), so colours come back with the light. ``f(1) = 1`` for
every curve: light sources and white stay where they are. Images already as bright as ``target`` are
left as they are (the curves only brighten).

Curves (``curve=``):
    ``"gamma"``: ``f(l) = l ** g``, ``g`` in [0.02, 1]: a power law, steepest in the deep shadows.
    ``"dce"``: the Zero-DCE light-enhancement curve (Guo et al., CVPR 2020) ``l <- l + a * l * (1 - l)``
    iterated 8 times, ``a`` in [0, 1]: its slope at black is at most ``(1 + a) ** 8``, so it amplifies
    the noise of near-black pixels less than a power law.
"""

from __future__ import annotations

import numpy as np

from vqcnir.data.color import lab_to_linear, linear_to_lab, linear_to_srgb, srgb_to_linear

CURVES = ("gamma", "dce")
DCE_ITERATIONS = 8
_BISECTION_STEPS = 40  # the parameter interval shrinks 2**40-fold: far below 8-bit resolution
_DARK = 1e-4  # lightness below which a pixel is black: its chroma is not scaled (0 / 0)


def tone_curve(lit: np.ndarray, curve: str, parameter: float) -> np.ndarray:
    """``f(lit)`` for lightness ``lit`` in [0, 1] (any shape); ``parameter`` is ``g`` (gamma) or ``a`` (dce)."""
    if curve == "gamma":
        return np.power(lit, parameter)
    if curve == "dce":
        for _ in range(DCE_ITERATIONS):
            lit = lit + parameter * lit * (1.0 - lit)
        return lit
    raise ValueError(f"argument 'curve' must be one of {CURVES}, got {curve!r}")


def solve_curve(lit: np.ndarray, target: float, curve: str) -> float:
    """The curve parameter that brings ``mean(f(lit))`` to ``target`` (bisection; the identity when the
    image is already that bright; the strongest curve when even that stays darker)."""
    # Parameter ranges, identity first: gamma brightens as g falls from 1, dce as a rises from 0.
    identity, strongest = {"gamma": (1.0, 0.02), "dce": (0.0, 1.0)}[curve]
    if tone_curve(lit, curve, identity).mean() >= target:
        return identity
    if tone_curve(lit, curve, strongest).mean() <= target:
        return strongest
    weak, strong = identity, strongest
    for _ in range(_BISECTION_STEPS):
        middle = 0.5 * (weak + strong)
        if tone_curve(lit, curve, middle).mean() < target:
            weak = middle
        else:
            strong = middle
    return 0.5 * (weak + strong)


def correct_exposure(image: np.ndarray, target: float, curve: str = "gamma") -> np.ndarray:
    """Brighten sRGB ``image`` ``[H, W, 3]`` float in [0, 1] so its mean Lab lightness / 100 is ``target``.

    Args:
        image: sRGB display values, float, ``[H, W, 3]``, in [0, 1].
        target: mean lightness / 100 to reach, in (0, 1).
        curve: ``"gamma"`` or ``"dce"`` (see the module docstring).

    Returns:
        float64 ``[H, W, 3]`` in [0, 1] (colours outside the sRGB gamut clipped).

    Example:
        >>> from vqcnir.data.color import lightness
        >>> dark = np.linspace(0.0, 0.2, 48).reshape(4, 4, 3)
        >>> round(float(lightness(correct_exposure(dark, 0.5)).mean()) / 100, 2)
        0.5
    """
    if curve not in CURVES:
        raise ValueError(f"argument 'curve' must be one of {CURVES}, got {curve!r}")
    if not 0.0 < target < 1.0:
        raise ValueError(f"argument 'target' must be in (0, 1), got {target}")
    lab = linear_to_lab(srgb_to_linear(image))
    lit = np.clip(lab[..., 0] / 100.0, 0.0, 1.0)
    parameter = solve_curve(lit, target, curve)
    lifted = tone_curve(lit, curve, parameter)
    ratio = np.where(lit > _DARK, lifted / np.maximum(lit, _DARK), 1.0)
    out = np.stack([100.0 * lifted, lab[..., 1] * ratio, lab[..., 2] * ratio], axis=-1)
    return np.clip(linear_to_srgb(lab_to_linear(out)), 0.0, 1.0)
