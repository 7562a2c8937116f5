"""Public functional ``bidirectional_channel_attention``: validates arguments, picks the backend, calls the op."""

from __future__ import annotations

import torch

from vqcnir_ops._dtypes import call_dtype
from vqcnir_ops.attention import op as _op
from vqcnir_ops.attention.backends import SPEC
from vqcnir_ops.attention.reference import NORMALIZE_EPS, default_scale
from vqcnir_ops.to_onnx import exporting, onnx_form
from vqcnir_ops.validation import check_same_device, check_tensor

_STREAMS = ("q_d", "q_g", "v_d", "v_g")


def _as_heads(name: str, t: torch.Tensor, heads: int | None) -> torch.Tensor:
    """``[B, heads, C, N]`` as is, or ``[B, heads * C, H, W]`` viewed as ``[B, heads, C, H * W]``."""
    if heads is None:
        return t
    if t.shape[1] % heads:
        raise ValueError(f"argument '{name}' has {t.shape[1]} channels, not divisible by heads={heads}")
    return t.reshape(t.shape[0], heads, t.shape[1] // heads, t.shape[2] * t.shape[3])


def _check_gamma(name: str, gamma: torch.Tensor, channels: int) -> torch.Tensor:
    check_tensor(name, gamma)
    if gamma.numel() != channels or gamma.dim() not in (1, 4) or (gamma.dim() == 4 and gamma.shape[1] != channels):
        raise ValueError(
            f"argument '{name}' must have shape [{channels}] or [1, {channels}, 1, 1] (heads * C), "
            f"got {tuple(gamma.shape)}"
        )
    return gamma.reshape(channels)


def bidirectional_channel_attention(
    q_d: torch.Tensor,
    q_g: torch.Tensor,
    v_d: torch.Tensor,
    v_g: torch.Tensor,
    temperature: torch.Tensor,
    *,
    heads: int | None = None,
    f_d: torch.Tensor | None = None,
    f_g: torch.Tensor | None = None,
    gamma_d: torch.Tensor | None = None,
    gamma_g: torch.Tensor | None = None,
    normalize: bool = True,
    scale: float | None = None,
    eps: float = NORMALIZE_EPS,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel ("transposed") cross-attention in both directions with one shared C x C map (DBCA).

    ``attn = softmax(normalize(q_d) @ normalize(q_g)^T * temperature * scale)`` per batch element and
    head, over the last dim, with the L2 normalisation over the N = H * W pixels of the official model;
    then ``a_d = attn @ v_d`` (the D -> G message) and ``a_g = attn @ v_g`` (the G -> D message). Fused in
    two phases (a reduction over N for the scores and norms, then one pass over N per output): memory is
    O(B * heads * C^2) beyond the outputs, and reductions run in a fixed order (deterministic).

    Args:
        q_d, q_g, v_d, v_g: ``[B, heads, C, N]``, or ``[B, heads * C, H, W]`` with ``heads`` given; one
            dtype (float16/bfloat16/float32/float64; float32 accumulation, float64 for float64), any
            strides; B may be 0. The Triton backend takes C <= 128 per head, the others any C.
        temperature: ``[heads]``, learnable, any float dtype.
        heads: give it to pass ``[B, heads * C, H, W]`` tensors (outputs then have that layout).
        f_d, f_g, gamma_d, gamma_g: the fused DBCA epilogue, all four or none: ``f`` like ``q_d``,
            ``gamma`` ``[heads * C]`` (or ``[1, heads * C, 1, 1]``, any float dtype). Returns
            ``(out_d, out_g) = (f_d + gamma_d * a_g, f_g + gamma_g * a_d)`` instead of ``(a_d, a_g)``.
        normalize: True (default): L2-normalise the queries (official model); False: the paper's formula.
        scale: logit scale; default 1 with ``normalize``, ``1 / sqrt(C)`` without.
        eps: lower bound of the norm in the normalisation (``torch.nn.functional.normalize``'s 1e-12).
        backend: ``'auto'`` (default: ``$VQCNIR_OPS_BACKEND`` or automatic), ``'reference'``, ``'cpp'`` or
            ``'triton'``.

    Returns:
        ``(a_d, a_g)``, or ``(out_d, out_g)`` with the epilogue, in the values' dtype and the inputs'
        layout. Differentiable in every tensor argument. Contract: ``vqcnir_ops.attention.reference``.

    Example:
        >>> q_d, q_g, v_d, v_g = torch.randn(4, 2, 256, 32, 32).unbind(0)
        >>> a_d, a_g = bidirectional_channel_attention(q_d, q_g, v_d, v_g, torch.ones(4), heads=4)
        >>> a_d.shape
        torch.Size([2, 256, 32, 32])
    """
    tensors = dict(zip(_STREAMS, (q_d, q_g, v_d, v_g), strict=True))
    for name, t in tensors.items():
        check_tensor(name, t, ndim=4)
    if heads is not None and (not isinstance(heads, int) or heads < 1):
        raise ValueError(f"argument 'heads' must be a positive int, got {heads!r}")
    for name, t in tensors.items():
        if t.shape != q_d.shape:
            raise ValueError(
                f"argument '{name}' has shape {tuple(t.shape)} but 'q_d' has {tuple(q_d.shape)}; the D and G "
                "queries and values must have one shape"
            )
    epilogue = {"f_d": f_d, "f_g": f_g, "gamma_d": gamma_d, "gamma_g": gamma_g}
    given = [name for name, t in epilogue.items() if t is not None]
    if given and len(given) != 4:
        missing = sorted(set(epilogue) - set(given))
        raise ValueError(f"the fused epilogue needs f_d, f_g, gamma_d and gamma_g together; missing {missing}")
    for name in ("f_d", "f_g") if given else ():
        check_tensor(name, epilogue[name], ndim=4)
        if epilogue[name].shape != q_d.shape:
            raise ValueError(
                f"argument '{name}' must have the shape of 'q_d' {tuple(q_d.shape)}, got {tuple(epilogue[name].shape)}"
            )
    dtype = call_dtype(**tensors, f_d=f_d, f_g=f_g)
    check_same_device(**tensors, temperature=temperature, **{k: v for k, v in epilogue.items() if v is not None})

    shaped = {name: _as_heads(name, t, heads) for name, t in tensors.items()}
    batch, n_heads, channels, pixels = shaped["q_d"].shape
    if min(n_heads, channels, pixels) == 0:
        raise ValueError(f"argument 'q_d' has shape {tuple(q_d.shape)}: heads, C and N must be >= 1 (B may be 0)")
    check_tensor("temperature", temperature, ndim=1)
    if temperature.shape[0] != n_heads:
        raise ValueError(f"argument 'temperature' must have shape [{n_heads}] (heads), got {tuple(temperature.shape)}")
    if given:
        # By value source: attn @ v_d goes to G (gamma_g, f_g), attn @ v_g goes to D (gamma_d, f_d).
        gain_d = _check_gamma("gamma_g", gamma_g, n_heads * channels)
        gain_g = _check_gamma("gamma_d", gamma_d, n_heads * channels)
        res_d, res_g = _as_heads("f_g", f_g, heads), _as_heads("f_d", f_d, heads)
    else:
        gain_d = gain_g = torch.ones(n_heads * channels, dtype=temperature.dtype, device=q_d.device)
        res_d = res_g = None
    if scale is None:
        scale = default_scale(channels, normalize)

    if exporting():
        # The reference's epilogue is named by destination (f_d + gamma_d * a_g): undo the renaming above.
        # It returns the functional's order already: (out_d, out_g), or (a_d, a_g) without the epilogue.
        epilogue = {"f_d": res_g, "f_g": res_d, "gamma_d": gain_g, "gamma_g": gain_d} if given else {}
        out_d, out_g = onnx_form("bidirectional_channel_attention")(
            shaped["q_d"], shaped["q_g"], shaped["v_d"], shaped["v_g"], temperature, epilogue,
            bool(normalize), float(scale), float(eps),
        )  # fmt: skip
        return (out_d.view(q_d.shape), out_g.view(q_d.shape)) if heads is not None else (out_d, out_g)
    chosen = SPEC.choose(q_d.device, dtype, backend, channels_per_head=channels)
    y_d, y_g, *_ = _op.forward(
        shaped["q_d"], shaped["q_g"], shaped["v_d"], shaped["v_g"], temperature, gain_d, gain_g, res_d, res_g,
        bool(normalize), float(scale), float(eps), chosen,
    )  # fmt: skip
    if heads is not None:
        y_d, y_g = y_d.view(q_d.shape), y_g.view(q_d.shape)
    return (y_g, y_d) if given else (y_d, y_g)
