"""Convolution geometry shared by the ops that take one (``deform_conv2d``, ``depthwise_conv2d``): the checked
``(h, w)`` pairs of stride, padding and dilation, and the output size they give.

Public: a network's own layers can check their arguments the same way (``check_int_pair``).
"""

from __future__ import annotations

from typing import NamedTuple

IntPair = int | tuple[int, int] | list[int]
# Geometry integers reach the kernels as int32 (Triton, the sampling positions) and int64 (the ops' schemas).
MAX_GEOMETRY = 2**31 - 1


def check_int_pair(name: str, value: IntPair, minimum: int) -> tuple[int, int]:
    """``value`` (an int, or two) as an ``(h, w)`` pair of ints in ``[minimum, MAX_GEOMETRY]``.

    Raises:
        TypeError: not an int or a pair of ints (bools refused), naming the argument.
        ValueError: out of range, naming the argument.
    """
    pair = (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"argument '{name}' must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum or max(pair) > MAX_GEOMETRY:
        raise ValueError(f"argument '{name}' must be between {minimum} and {MAX_GEOMETRY}, got {value!r}")
    return pair[0], pair[1]


class Geometry(NamedTuple):
    """Stride, padding and dilation of one convolution, each an ``(h, w)`` pair."""

    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)

    def flat(self) -> list[int]:
        """``[stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w]``: the custom ops' and C++ kernels' form."""
        return [*self.stride, *self.padding, *self.dilation]

    @classmethod
    def from_flat(cls, values: list[int]) -> Geometry:
        """The inverse of :meth:`flat`."""
        sh, sw, ph, pw, dh, dw = values
        return cls((sh, sw), (ph, pw), (dh, dw))

    def output_size(self, height: int, width: int, kernel: tuple[int, int]) -> tuple[int, int]:
        """``(Ho, Wo)`` of a convolution with this geometry (as ``torch.nn.functional.conv2d``)."""
        size = [
            (n + 2 * p - d * (k - 1) - 1) // s + 1
            for n, k, s, p, d in zip((height, width), kernel, self.stride, self.padding, self.dilation, strict=True)
        ]
        return size[0], size[1]
