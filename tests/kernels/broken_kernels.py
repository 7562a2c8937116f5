"""Kernels the offline compile gate must reject; ``test_compile_gate.py`` runs the gate on this file.

Not collected by pytest and never imported by the library: only ``python -m vqcnir_ops._aot --modules``
loads it, with TRITON_INTERPRET unset.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from vqcnir_ops._aot import GateCase
from vqcnir_ops._launch import launch, launch_target


@triton.jit
def _runtime_static_range_kernel(x_ptr, n):
    total = 0.0
    for i in tl.static_range(n):  # a runtime bound: Triton's interpreter runs it, a real compile rejects it
        total += tl.load(x_ptr + i)
    tl.store(x_ptr, total)


@triton.jit
def _oversized_shared_memory_kernel(a_ptr, b_ptr, c_ptr, K, BLOCK: tl.constexpr):
    rows = tl.arange(0, BLOCK)
    acc = tl.zeros([BLOCK, BLOCK], dtype=tl.float32)
    for k in range(0, K, BLOCK):  # 128 x 128 half tiles, four stages deep: ~190 KB of shared memory
        a = tl.load(a_ptr + rows[:, None] * K + k + rows[None, :])
        b = tl.load(b_ptr + (k + rows[:, None]) * BLOCK + rows[None, :])
        acc += tl.dot(a, b)
    tl.store(c_ptr + rows[:, None] * BLOCK + rows[None, :], acc)


@triton.jit
def _fine_kernel(x_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(x_ptr + offsets, 2 * tl.load(x_ptr + offsets, mask=offsets < n), mask=offsets < n)


@triton.jit
def _never_launched_kernel(x_ptr):
    tl.store(x_ptr, 1.0)


def _runtime_static_range() -> None:
    x = torch.zeros(16)
    launch(launch_target(x.device), _runtime_static_range_kernel, (1,), x, 4)


def _oversized_shared_memory() -> None:
    a, b = torch.zeros(128, 1024, dtype=torch.float16), torch.zeros(1024, 128, dtype=torch.float16)
    c = torch.zeros(128, 128)
    launch(launch_target(a.device), _oversized_shared_memory_kernel, (1,), a, b, c, 1024, BLOCK=128, num_stages=4)


def _fine() -> None:
    x = torch.zeros(1000)
    launch(launch_target(x.device), _fine_kernel, (triton.cdiv(1000, 256),), x, 1000, BLOCK=256)


def _launched_directly() -> None:
    x = torch.zeros(64)
    _fine_kernel[(1,)](x, 64, BLOCK=64)  # not through vqcnir_ops._launch.launch


CASES = [
    GateCase("runtime static_range", _runtime_static_range),
    GateCase("oversized shared memory", _oversized_shared_memory),
    GateCase("fine", _fine),
    GateCase("launched directly", _launched_directly),
]
