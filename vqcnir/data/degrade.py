"""Synthetic night blur: turns a sharp, well-lit sRGB photo into a dark, shaken, noisy one.

Pipeline (after LOL-Blur, Zhou et al., "LEDNet", ECCV 2022), all in float64:

1. sRGB -> linear light (inverse sRGB gamma).
2. Light sources (max channel >= ``saturation_threshold`` in sRGB, i.e. clipped by the camera) are
   multiplied by a gain, so that after the blur they streak instead of fading to grey.
3. Motion blur with a random camera-shake kernel (:mod:`vqcnir.data.kernels`), in linear light.
4. Darkening on CIE Lab lightness: the Zero-DCE curve ``l <- l + a * l * (1 - l)`` (``l = L / 100``)
   iterated ``curve_iterations`` times, with ``a`` in [-1, 0] solved by bisection so that the mean
   lightness becomes the sampled exposure E (the exposure level that conditions LOL-Blur's curve).
   Chroma (a, b) is scaled with L. Pixels with L > ``protect_lightness`` are left exactly as they
   were, so light sources stay bright.
5. Noise: Poisson (shot noise, in linear light, ``peak`` photons at 1.0) or Gaussian (in sRGB).
6. Back to sRGB, clipped, quantised to 8 bits.

Options for the wider range of real night photos (all off by default, so the defaults give the same bytes
as before; :data:`NIGHT_PARAMS` turns them on): ``exposure_law="linear"`` darkens by a plain linear-light
gain (exposure 1-30%, drawn log-uniformly) with clipped light sources kept clipped, ``defocus_prob`` adds a
defocus disk to the shake, ``cast_prob`` tints the scene with a street-light colour (sodium, warm, cool),
``noise="sensor"`` (or ``"night"``) draws Poisson-Gaussian sensor noise (shot + read) in linear light, and
``jpeg_prob`` compresses the 8-bit result (:mod:`vqcnir.data.night_effects`).

Every random value comes from the Generator passed in: the same Generator state gives identical bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from .color import lab_to_linear, linear_to_lab, linear_to_srgb, srgb_to_linear
from .kernels import convolve, sample_shake_kernel
from .night_effects import STREET_LIGHT_CASTS, cast_gains, combine_kernels, disk_kernel, jpeg_round_trip, sensor_noise

# "night": sensor noise (Poisson-Gaussian) in 3 of 4 images, Gaussian in sRGB in the rest.
NOISE_KINDS = ("mixed", "gaussian", "poisson", "sensor", "night", "none")
EXPOSURE_LAWS = ("lab", "linear")
_CASTS = tuple(sorted(STREET_LIGHT_CASTS))


@dataclass(frozen=True)
class NightBlurParams:
    """Parameters of :func:`degrade`; a pair ``(low, high)`` is a range sampled uniformly per image.

    Attributes:
        blur_prob: probability in [0, 1] that an image is blurred (default 1.0).
        blur_length: camera-shake path length in pixels, >= 0 (default (4, 20)).
        shake_steps: trajectory samples, >= 1 (default 64).
        shake_anxiety: heading drift per step, >= 0 (default 0.3).
        shake_centripetal: pull back to the start per step, >= 0 (default 0.1).
        shake_impulse_prob: probability of a jerk per step, in [0, 1] (default 0.05).
        saturation_threshold: sRGB max-channel value in (0, 1] from which a pixel is a light source (default 0.98).
        saturation_gain: linear-light gain of light sources before the blur, >= 1 (default (2, 6)).
        exposure: target mean Lab lightness / 100 after darkening, in (0, 1) (default (0.05, 0.3), as LOL-Blur).
        protect_lightness: Lab L above which pixels are not darkened, in [0, 100] (default 97).
        curve_iterations: iterations of the darkening curve, >= 1 (default 8).
        noise: "mixed" (Poisson or Gaussian, 50/50), "gaussian", "poisson" or "none" (default "mixed").
        gaussian_sigma: Gaussian noise standard deviation in sRGB [0, 1] units, >= 0 (default (0, 8/255)).
        poisson_peak: photons collected at linear value 1.0, > 0 (default (300, 3000)).
        exposure_law: "lab" (the Lab-lightness curve above, default) or "linear" (linear light times the
            exposure, drawn log-uniformly from ``exposure``; light sources, pixels clipped to white in every
            channel, are boosted by gain / exposure, so they stay clipped).
        defocus_prob: probability that a defocus disk is added to the blur (default 0).
        defocus_radius: its radius in pixels (default (0.5, 3.0)).
        cast_prob: probability of a street-light colour cast (default 0).
        cast_strength: its strength in [0, 1] (mixed with neutral light; default (0.2, 0.8)).
        shot_noise: ``noise="sensor"``: value of one photo-electron in linear units, drawn log-uniformly
            (default (2e-4, 4e-3): 5000 to 250 electrons at white, bright ISO to very high ISO).
        read_noise: ``noise="sensor"``: read-noise standard deviation in linear units, log-uniform
            (default (2e-4, 2e-3)).
        jpeg_prob: probability that the 8-bit result is JPEG-compressed (default 0).
        jpeg_quality: its quality, an integer range in [1, 95] (default (50, 95)).
    """

    blur_prob: float = 1.0
    blur_length: tuple[float, float] = (4.0, 20.0)
    shake_steps: int = 64
    shake_anxiety: float = 0.3
    shake_centripetal: float = 0.1
    shake_impulse_prob: float = 0.05
    saturation_threshold: float = 0.98
    saturation_gain: tuple[float, float] = (2.0, 6.0)
    exposure: tuple[float, float] = (0.05, 0.3)
    protect_lightness: float = 97.0
    curve_iterations: int = 8
    noise: str = "mixed"
    gaussian_sigma: tuple[float, float] = (0.0, 8.0 / 255.0)
    poisson_peak: tuple[float, float] = field(default=(300.0, 3000.0))
    exposure_law: str = "lab"
    defocus_prob: float = 0.0
    defocus_radius: tuple[float, float] = (0.5, 3.0)
    cast_prob: float = 0.0
    cast_strength: tuple[float, float] = (0.2, 0.8)
    shot_noise: tuple[float, float] = (2e-4, 4e-3)
    read_noise: tuple[float, float] = (2e-4, 2e-3)
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (50, 95)

    def __post_init__(self) -> None:
        ranges = {
            "defocus_radius": (0.0, 64.0),
            "cast_strength": (0.0, 1.0),
            "shot_noise": (1e-9, 1.0),
            "read_noise": (1e-9, 1.0),
            "jpeg_quality": (1, 95),
            "blur_length": (0.0, np.inf),
            "saturation_gain": (1.0, np.inf),
            "exposure": (1e-6, 1.0 - 1e-6),
            "gaussian_sigma": (0.0, 1.0),
            "poisson_peak": (1e-6, np.inf),
        }
        for name, (lo, hi) in ranges.items():
            value = getattr(self, name)
            if len(value) != 2 or not lo <= value[0] <= value[1] <= hi:
                raise ValueError(f"NightBlurParams.{name} must be a range (low, high) with {lo} <= low <= high <= {hi}")
        scalars = {
            "blur_prob": (0.0, 1.0),
            "shake_anxiety": (0.0, np.inf),
            "shake_centripetal": (0.0, np.inf),
            "shake_impulse_prob": (0.0, 1.0),
            "saturation_threshold": (1e-6, 1.0),
            "protect_lightness": (0.0, 100.0),
            "defocus_prob": (0.0, 1.0),
            "cast_prob": (0.0, 1.0),
            "jpeg_prob": (0.0, 1.0),
        }
        for name, (lo, hi) in scalars.items():
            if not lo <= getattr(self, name) <= hi:
                raise ValueError(f"NightBlurParams.{name} must be in [{lo}, {hi}], got {getattr(self, name)}")
        if self.shake_steps < 1 or self.curve_iterations < 1:
            raise ValueError("NightBlurParams.shake_steps and curve_iterations must be >= 1")
        if self.noise not in NOISE_KINDS:
            raise ValueError(f"NightBlurParams.noise must be one of {NOISE_KINDS}, got {self.noise!r}")
        if self.exposure_law not in EXPOSURE_LAWS:
            raise ValueError(f"NightBlurParams.exposure_law must be one of {EXPOSURE_LAWS}, got {self.exposure_law!r}")
        if any(not float(q).is_integer() for q in self.jpeg_quality):
            raise ValueError(f"NightBlurParams.jpeg_quality must be two integers, got {self.jpeg_quality}")

    def to_dict(self) -> dict:
        """Plain dict (lists for ranges), e.g. for a manifest or a config file."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}


@dataclass(frozen=True)
class DegradationDraw:
    """The random values of one degraded image (everything but the noise realisation)."""

    kernel: np.ndarray  # [K, K], sums to 1; [[1.0]] when not blurred
    gain: float
    exposure: float
    noise: str  # "gaussian", "poisson", "sensor" or "none"
    noise_level: float  # sigma (gaussian), peak photons (poisson), shot (sensor), 0 (none)
    read_noise: float = 0.0  # sensor: read-noise sigma in linear units
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)  # linear-RGB gains of the illuminant
    jpeg_quality: int = 0  # 0: not compressed


def draw_degradation(rng: np.random.Generator, params: NightBlurParams) -> DegradationDraw:
    """Draw kernel, light-source gain, exposure and noise for one image (a fixed number of draws per stage)."""
    blurred = rng.uniform() < params.blur_prob
    kernel = np.ones((1, 1))
    if blurred:
        kernel = sample_shake_kernel(
            rng,
            params.blur_length,
            steps=params.shake_steps,
            anxiety=params.shake_anxiety,
            centripetal=params.shake_centripetal,
            impulse_prob=params.shake_impulse_prob,
        )
    gain = float(rng.uniform(*params.saturation_gain))
    if params.exposure_law == "linear":
        exposure = float(np.exp(rng.uniform(*np.log(params.exposure))))
    else:
        exposure = float(rng.uniform(*params.exposure))
    noise = params.noise
    if noise == "mixed":
        noise = "poisson" if rng.uniform() < 0.5 else "gaussian"
    elif noise == "night":
        noise = "sensor" if rng.uniform() < 0.75 else "gaussian"
    level, read = 0.0, 0.0
    if noise == "gaussian":
        level = float(rng.uniform(*params.gaussian_sigma))
    elif noise == "poisson":
        level = float(rng.uniform(*params.poisson_peak))
    elif noise == "sensor":
        level = float(np.exp(rng.uniform(*np.log(params.shot_noise))))
        read = float(np.exp(rng.uniform(*np.log(params.read_noise))))
    # The options below draw only when enabled, so the draws above stay those of earlier versions.
    if params.defocus_prob > 0 and rng.uniform() < params.defocus_prob:
        kernel = combine_kernels(kernel, disk_kernel(float(rng.uniform(*params.defocus_radius))))
    cast = (1.0, 1.0, 1.0)
    if params.cast_prob > 0 and rng.uniform() < params.cast_prob:
        kind = _CASTS[int(rng.integers(len(_CASTS)))]
        cast = tuple(float(g) for g in cast_gains(kind, float(rng.uniform(*params.cast_strength))))
    quality = 0
    if params.jpeg_prob > 0 and rng.uniform() < params.jpeg_prob:
        quality = int(rng.integers(int(params.jpeg_quality[0]), int(params.jpeg_quality[1]) + 1))
    return DegradationDraw(
        kernel=kernel,
        gain=gain,
        exposure=exposure,
        noise=noise,
        noise_level=level,
        read_noise=read,
        cast=cast,
        jpeg_quality=quality,
    )


def boost_light_sources(
    linear: np.ndarray, srgb: np.ndarray, threshold: float, gain: float, *, white_only: bool = False
) -> np.ndarray:
    """Multiply linear light by ``gain`` where the sRGB max channel is >= ``threshold`` (clipped highlights);
    ``white_only``: where every channel is (lamps and speculars clip to white; a saturated red does not)."""
    mask = (srgb.min if white_only else srgb.max)(axis=-1, keepdims=True) >= threshold
    return np.where(mask, linear * gain, linear)


def _curve(lit: np.ndarray, alpha: float, iterations: int) -> np.ndarray:
    for _ in range(iterations):
        lit = lit + alpha * lit * (1.0 - lit)
    return lit


def darken_lightness(
    linear: np.ndarray, exposure: float, *, protect_lightness: float = 97.0, iterations: int = 8
) -> np.ndarray:
    """Darken linear RGB ``[H, W, 3]`` on Lab lightness to mean L/100 = ``exposure``; L > protect untouched.

    Already darker images (mean lightness <= ``exposure``) are returned unchanged (a = 0).
    """
    lab = linear_to_lab(linear)
    lit = np.clip(lab[..., 0] / 100.0, 0.0, 1.0)
    protected = lab[..., 0] > protect_lightness

    def mean_after(alpha: float) -> float:
        return float(np.where(protected, lit, _curve(lit, alpha, iterations)).mean())

    lo, hi = -1.0, 0.0  # mean_after is increasing in alpha
    if mean_after(hi) <= exposure:
        return linear
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mean_after(mid) < exposure else (lo, mid)
    new_l = 100.0 * _curve(lit, 0.5 * (lo + hi), iterations)
    scale = np.where(lab[..., 0] > 1e-6, new_l / np.maximum(lab[..., 0], 1e-6), 0.0)
    darker = lab_to_linear(np.stack([new_l, lab[..., 1] * scale, lab[..., 2] * scale], axis=-1))
    return np.where(protected[..., None], linear, np.maximum(darker, 0.0))


def degrade(
    image: np.ndarray,
    rng: np.random.Generator,
    params: NightBlurParams | None = None,
    *,
    draw: DegradationDraw | None = None,
) -> np.ndarray:
    """Synthesise a night-blurred version of a sharp sRGB image.

    Args:
        image: ``[H, W, 3]`` uint8 sRGB (or float in [0, 1]).
        rng: the sample's Generator (see :func:`vqcnir.data.seeding.sample_rng`).
        params: :class:`NightBlurParams` (defaults as documented there).
        draw: use these random values instead of drawing them from ``rng`` (noise still comes from ``rng``).

    Returns:
        ``[H, W, 3]`` uint8 sRGB.

    Example:
        >>> sharp = np.full((32, 32, 3), 180, np.uint8)
        >>> low = degrade(sharp, np.random.default_rng(0))
        >>> low.shape, low.dtype, bool(low.mean() < sharp.mean())
        ((32, 32, 3), dtype('uint8'), True)
    """
    params = params or NightBlurParams()
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"argument 'image' must be [H, W, 3], got shape {image.shape}")
    srgb = image.astype(np.float64) / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)
    draw = draw or draw_degradation(rng, params)
    linear = srgb_to_linear(srgb)
    if draw.cast != (1.0, 1.0, 1.0):
        linear = linear * np.asarray(draw.cast)
    linear_law = params.exposure_law == "linear"
    gain = draw.gain / draw.exposure if linear_law else draw.gain  # linear law: sources stay clipped
    linear = boost_light_sources(linear, srgb, params.saturation_threshold, gain, white_only=linear_law)
    if draw.kernel.size > 1:
        linear = convolve(linear, draw.kernel)
    if linear_law:
        linear = linear * draw.exposure
    else:
        linear = darken_lightness(
            linear, draw.exposure, protect_lightness=params.protect_lightness, iterations=params.curve_iterations
        )
    if draw.noise == "poisson":
        peak = draw.noise_level
        linear = rng.poisson(np.clip(linear, 0.0, None) * peak) / peak
    elif draw.noise == "sensor":
        linear = sensor_noise(linear, rng, draw.noise_level, draw.read_noise)
    out = linear_to_srgb(np.clip(linear, 0.0, 1.0))
    if draw.noise == "gaussian":
        out = out + rng.normal(0.0, draw.noise_level, size=out.shape)
    out = np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)
    return jpeg_round_trip(out, draw.jpeg_quality) if draw.jpeg_quality else out


# The default model's training degradation: real night photos, wider than LOL-Blur's synthesis. Exposure
# 1-30% in linear light, shake up to 16 px on the training crops plus defocus in a third of them, colour
# casts of street lighting in half, sensor noise from bright to very high ISO, JPEG in half.
NIGHT_PARAMS = NightBlurParams(
    blur_prob=0.9,
    blur_length=(2.0, 16.0),
    saturation_gain=(1.5, 4.0),
    exposure=(0.01, 0.3),
    exposure_law="linear",
    noise="night",
    gaussian_sigma=(0.0, 6.0 / 255.0),
    defocus_prob=0.35,
    defocus_radius=(0.5, 2.5),
    cast_prob=0.5,
    cast_strength=(0.2, 0.8),
    jpeg_prob=0.5,
    jpeg_quality=(50, 95),
)
