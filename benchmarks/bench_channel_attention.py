"""Fused bi-directional channel attention vs the official TWAM code, at VQCNIR's decoder levels.

    python benchmarks/bench_channel_attention.py [--device cpu|cuda] [--dtype ...] [--batch B] [--quick] [--only TEXT]
                                                 [--no-compile] [--no-save] [--json-out FILE]

Each case is a decoder level of 256 px crops (256ch@32x32, 256ch@64x64 with 4 heads, 128ch@128x128 with 2,
64ch@256x256 with 1) and a 1080p image at the 1/8 level (256ch@135x240, 4 heads), for the forward alone and
forward + backward. Inputs are the projected ``[B, C, H, W]`` features, the op includes the DBCA epilogue.
Providers: ``official`` (TWAM's rearrange / normalize / matmul / softmax (twice, as in the official
code) / matmul / residual; the baseline), ``official+compile``, every available vqcnir_ops backend
(``reference`` is our two-phase algorithm in PyTorch), ``cpp (driver)`` (the ``cpp`` backend's C++ driver
called directly: the op without its Python layer) and ``auto+compile`` (the functional inside torch.compile).
On CPU the default batch is 1 (8 takes far past 3 minutes on 2 cores); say so when quoting.
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import Case, parse_args, run  # noqa: E402

import vqcnir_ops  # noqa: E402
from vqcnir_ops import _backend  # noqa: E402
from vqcnir_ops.attention.reference import NORMALIZE_EPS  # noqa: E402

LEVELS = [("L8 256ch@32x32 h4", 256, 32, 32, 4), ("L4 256ch@64x64 h4", 256, 64, 64, 4),
          ("L2 128ch@128x128 h2", 128, 128, 128, 2), ("L1 64ch@256x256 h1", 64, 256, 256, 1)]  # fmt: skip
IMAGE_1080P = ("1080p 1/8 256ch@135x240 h4", 256, 135, 240, 4)


def official(q_d, q_g, v_d, v_g, f_d, f_g, temperature, beta, gamma, heads):
    """TWAM.forward after its projections (AlexZou14/VQCNIR models/main_decode.py), without einops."""
    b, c, h, w = q_d.shape

    def split(x):
        return x.reshape(b, heads, c // heads, h * w)

    q_d = torch.nn.functional.normalize(split(q_d), dim=-1)
    q_g = torch.nn.functional.normalize(split(q_g), dim=-1)
    attention = (q_d @ q_g.transpose(-2, -1)) * temperature.view(heads, 1, 1)
    f_g2d = torch.matmul(torch.softmax(attention, dim=-1), split(v_g)).reshape(b, c, h, w)
    f_d2g = torch.matmul(torch.softmax(attention, dim=-1), split(v_d)).reshape(b, c, h, w)
    return f_d + f_g2d * beta.view(1, c, 1, 1), f_g + f_d2g * gamma.view(1, c, 1, 1)


def fused(q_d, q_g, v_d, v_g, f_d, f_g, temperature, beta, gamma, heads, backend=None):
    return vqcnir_ops.bidirectional_channel_attention(
        q_d, q_g, v_d, v_g, temperature, heads=heads, f_d=f_d, f_g=f_g, gamma_d=beta, gamma_g=gamma, backend=backend
    )


def cpp_driver(inputs):
    """A provider: the ``cpp`` backend's C++ forward (and backward) called directly on ``[B, heads, C, N]``
    views, without the functional's argument checks, backend choice and op dispatch, and outside autograd
    (the backward gets the same output gradients as the other providers, ``output_grads``).
    The gap between this row and ``cpp`` is what that Python layer costs a call."""
    q_d, q_g, v_d, v_g, f_d, f_g, temperature, beta, gamma, heads = inputs
    backward = q_d.requires_grad
    b, c, h, w = q_d.shape

    def split(x):
        return x.detach().reshape(b, heads, c // heads, h * w)

    streams = [split(t) for t in (q_d, q_g, v_d, v_g)]
    # By value source, as the functional maps the DBCA epilogue: attn @ v_d goes to G (gamma, f_g).
    extra = (temperature.detach(), gamma.detach(), beta.detach(), split(f_g), split(f_d))
    options = (True, 1.0, NORMALIZE_EPS)
    # y_d = f_g + gamma * (attn @ v_d) is the functional's second output (out_g), y_g its first (out_d).
    grad_out_d, grad_out_g = (split(g) for g in output_grads(inputs)) if backward else (None, None)
    spec = _backend.registered_ops()["bidirectional_channel_attention"]

    def call():
        _, _, *saved = spec.forward("cpp", *streams, *extra, *options)
        if backward:
            spec.backward("cpp", grad_out_g, grad_out_d, *streams, *extra[:3], *saved, *options)

    return call


def make_inputs(batch, channels, height, width, heads, backward, dtype):
    def build(device):
        def act():
            return torch.randn(batch, channels, height, width, device=device, dtype=dtype, requires_grad=backward)

        def param(*shape, base=0.0):  # in the inputs' dtype, as in a model cast with .to(dtype)
            return (base + 0.1 * torch.randn(*shape, device=device)).to(dtype).requires_grad_(backward)

        tensors = [act() for _ in range(6)]
        return (*tensors, param(heads, base=1.0), param(channels), param(channels), heads)

    return build


def cases(batch: int, quick: bool, dtype: torch.dtype) -> list[Case]:
    shapes = [(name, batch, c, h, w, heads) for name, c, h, w, heads in LEVELS]
    shapes.append((IMAGE_1080P[0], 1, *IMAGE_1080P[1:]))
    if quick:
        shapes = [("quick 64ch@32x32 h1", 1, 64, 32, 32, 1)]
    out = []
    for backward in (False, True):
        for name, b, c, h, w, heads in shapes:
            n = h * w
            flops = 6.0 * b * c * (c // heads) * n  # one gram and two map applications, 2 flops per MAC
            moved = 8 * b * c * n * dtype.itemsize  # 6 inputs read, 2 outputs written
            mode = "fwd+bwd" if backward else "fwd"
            if backward:  # the backward does two more grams and four more passes
                flops, moved = 3 * flops, 2.5 * moved
            make = make_inputs(b, c, h, w, heads, backward, dtype)
            out.append(Case(f"{name} B{b} {mode}", make, flops=flops, bytes=moved))
    return out


def output_grads(inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients every provider's backward gets for its two outputs: dense random tensors, as a layer
    after the attention hands back in a network (``out.sum()``'s gradient would be one number expanded to the
    output's shape: a special case that the compiled code folds into its kernels and ours copies first)."""
    gen = torch.Generator().manual_seed(0)
    like = inputs[0]
    return tuple(torch.randn(like.shape, generator=gen).to(like.device, like.dtype) for _ in range(2))


def timed(fn):
    """A provider: forward only for inputs without grad, forward + backward for inputs with it."""

    def make(inputs):
        backward = inputs[0].requires_grad
        leaves = [t for t in inputs if isinstance(t, torch.Tensor)]
        grads = output_grads(inputs) if backward else None

        def call():
            out = fn(*inputs)
            if backward:
                torch.autograd.grad(out, leaves, grad_outputs=grads)

        return call

    return make


def main() -> None:
    def add_batch(parser):
        parser.add_argument("--batch", type=int, default=None, help="crops per batch (default 8 on GPU, 1 on CPU)")

    args = parse_args(__doc__.splitlines()[0], add_batch)
    device = torch.device(args.device)
    batch = args.batch or (8 if device.type == "cuda" else 1)
    # One compiled graph per case and mode (dynamic=False): past the default limit of 8 dynamo would
    # silently fall back to eager and the "+compile" rows would time eager code.
    torch._dynamo.config.recompile_limit = 64

    providers = {"official": timed(official)}
    if not args.no_compile:
        providers["official+compile"] = timed(torch.compile(official, dynamic=False))
    for backend in vqcnir_ops.BACKENDS:
        if backend == "triton" and device.type == "cpu":
            continue  # the interpreter is for tests, not speed
        if backend in _backend.registered_ops()["bidirectional_channel_attention"].backends and (
            _backend.backend_unavailable_reason(backend, device.type) is None
        ):
            providers[backend] = timed(lambda *a, b=backend: fused(*a, backend=b))
    if "cpp" in providers:
        providers["cpp (driver)"] = cpp_driver
    if not args.no_compile:
        providers["auto+compile"] = timed(torch.compile(fused, dynamic=False))
    run("bench_channel_attention", cases(batch, args.quick, args.dtype), providers, device, "official", args)


if __name__ == "__main__":
    main()
