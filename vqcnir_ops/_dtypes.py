"""The one dtype policy of every vqcnir_ops op (reference, cpp, cuda and triton backends alike).

1. **What mixes.** An op's *activations*, the tensors computed from the data (``nearest_code``'s ``z``;
   ``curve_map``'s ``x`` and ``a``; the attention's ``q_d, q_g, v_d, v_g, f_d, f_g``; ``deform_conv2d``'s
   ``input``, ``offset`` and ``mask``), share one dtype: the call's dtype, float16, bfloat16, float32 or
   float64 (:func:`call_dtype` names the argument that differs). Its *parameters* (``codebook``;
   ``temperature``, ``gamma_d``, ``gamma_g``; ``weight``, ``bias``) may have any of these dtypes, e.g.
   float32 weights with bfloat16 activations under ``torch.autocast``.
2. **Output dtype.** Outputs that are activations have the call's dtype; every gradient has its input's
   dtype; ``nearest_code``'s distances have the compute dtype (a sum of squares overflows float16) and its
   indices are int64.
3. **Computed in float32**, or float64 when the activations are float64 (:func:`compute_dtype`): every
   backend converts what it loads, parameters included, to the compute dtype and accumulates there. The
   one exception: the GPU tensor-core products of the Triton kernels for float16/bfloat16 activations take
   both operands in the activations' dtype (a float32 parameter is rounded to it there, as under
   ``torch.autocast``) and accumulate in float32.

The call's dtype also narrows the backends: ``triton`` and ``cuda`` compute in float32 only, so a float64
call runs on ``reference`` or ``cpp`` (``vqcnir_ops._backend``).
"""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a call whose activations have ``dtype`` is computed in: float64 for float64, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def call_dtype(**activations: torch.Tensor | None) -> torch.dtype:
    """The one dtype of a call's activations (``None`` entries are absent optional tensors).

    Raises:
        TypeError: naming the first argument whose dtype differs from the first one's.
    """
    given = [(name, t) for name, t in activations.items() if t is not None]
    first_name, first = given[0]
    for name, t in given[1:]:
        if t.dtype != first.dtype:
            raise TypeError(
                f"argument '{name}' has dtype {t.dtype} but '{first_name}' has {first.dtype}: the activations of "
                "one call share a dtype (parameters may differ; see vqcnir_ops._dtypes)"
            )
    return first.dtype
