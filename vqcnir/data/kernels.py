"""Camera-shake motion-blur kernels: a random trajectory, rasterised to a normalised ``[K, K]`` kernel.

The trajectory is a unit-speed random walk in the image plane whose heading drifts (``anxiety``), is
pulled back towards the start (``centripetal``, a hand held still) and occasionally jerks
(``impulse_prob``), the camera-shake model of Boracchi and Foi, "Modeling the performance of image
restoration from motion blur" (IEEE TIP 2012). It is scaled to a sampled path length in pixels and
splatted bilinearly at sub-pixel steps, so short and curved paths give smooth kernels.
"""

from __future__ import annotations

import numpy as np


def shake_trajectory(
    rng: np.random.Generator,
    length: float,
    *,
    steps: int = 64,
    anxiety: float = 0.3,
    centripetal: float = 0.1,
    impulse_prob: float = 0.05,
) -> np.ndarray:
    """Sample a camera-shake path of total length ``length`` pixels: ``[steps + 1, 2]`` (x, y), starting at 0."""
    if length < 0:
        raise ValueError(f"argument 'length' must be >= 0, got {length}")
    if steps < 1:
        raise ValueError(f"argument 'steps' must be >= 1, got {steps}")
    velocity = np.exp(1j * rng.uniform(0.0, 2.0 * np.pi))
    position = 0j
    path = [position]
    for _ in range(steps):
        turn = anxiety * complex(rng.standard_normal(), rng.standard_normal())
        pull = -centripetal * position / max(abs(position), 1.0)
        jerk = 0j
        if rng.uniform() < impulse_prob:
            jerk = 2.0 * np.exp(1j * rng.uniform(0.0, 2.0 * np.pi))
        velocity = velocity + turn + pull + jerk
        velocity = velocity / max(abs(velocity), 1e-12)
        position = position + velocity
        path.append(position)
    points = np.asarray(path) * (length / steps)
    return np.stack([points.real, points.imag], axis=-1)


def rasterize_trajectory(path: np.ndarray, *, samples_per_pixel: int = 4) -> np.ndarray:
    """Splat a path ``[N, 2]`` (pixels) into the smallest odd square kernel that holds it; sums to 1."""
    segments = np.diff(path, axis=0)
    lengths = np.hypot(segments[:, 0], segments[:, 1])
    points = [path[:1]]
    for start, step, seg_len in zip(path[:-1], segments, lengths, strict=True):
        n = max(1, int(np.ceil(seg_len * samples_per_pixel)))
        points.append(start + step * (np.arange(1, n + 1)[:, None] / n))
    pts = np.concatenate(points)
    pts = pts - (pts.min(axis=0) + pts.max(axis=0)) / 2.0  # centre the path on the kernel's middle pixel
    half = int(np.ceil(np.abs(pts).max())) + 1
    size = 2 * half + 1
    kernel = np.zeros((size, size), dtype=np.float64)
    xy = pts + half
    x0, y0 = np.floor(xy[:, 0]).astype(int), np.floor(xy[:, 1]).astype(int)
    fx, fy = xy[:, 0] - x0, xy[:, 1] - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + dy, x0 + dx), w)
    return kernel / kernel.sum()


def sample_shake_kernel(
    rng: np.random.Generator,
    length_range: tuple[float, float] = (4.0, 20.0),
    **trajectory_options: float,
) -> np.ndarray:
    """A random camera-shake kernel ``[K, K]`` (K odd, sum 1) with path length drawn from ``length_range``.

    Example:
        >>> k = sample_shake_kernel(np.random.default_rng(0), (4.0, 20.0))
        >>> bool(abs(k.sum() - 1) < 1e-12) and k.shape[0] % 2 == 1
        True
    """
    low, high = length_range
    if not 0 <= low <= high:
        raise ValueError(f"argument 'length_range' must satisfy 0 <= low <= high, got {length_range}")
    length = rng.uniform(low, high)
    return rasterize_trajectory(shake_trajectory(rng, length, **trajectory_options))


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve an ``[H, W, C]`` float image with a ``[K, K]`` kernel (FFT, reflected borders, same size)."""
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 != 1:
        raise ValueError(f"argument 'kernel' must be square with an odd side, got shape {kernel.shape}")
    k = kernel.shape[0]
    r = k // 2
    padded = np.pad(image, ((r, r), (r, r), (0, 0)), mode="symmetric")
    hp, wp = padded.shape[:2]
    shape = (hp + k - 1, wp + k - 1)
    spectrum = np.fft.rfft2(padded, s=shape, axes=(0, 1)) * np.fft.rfft2(kernel, s=shape)[..., None]
    full = np.fft.irfft2(spectrum, s=shape, axes=(0, 1))
    return full[k - 1 : hp, k - 1 : wp]
