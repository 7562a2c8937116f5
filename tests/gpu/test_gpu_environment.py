"""The GPU tests run what users run: compiled Triton (not the interpreter) and the CUDA kernels, with the
launch settings of this GPU."""

from __future__ import annotations

import torch

from tests.gpu.common import NEEDS_GPU
from vqcnir_ops import _backend, _extension
from vqcnir_ops._launch import GPU_TARGETS, LaunchRecord, launch_target, observe_launches
from vqcnir_ops.curve.triton_kernels import curve_map_fwd_triton

pytestmark = NEEDS_GPU


def test_triton_is_compiled_and_the_cuda_kernels_are_built():
    assert not _backend.triton_interpreting(), "TRITON_INTERPRET is set: the GPU tests would test the interpreter"
    assert _backend.backend_unavailable_reason("triton", "cuda") is None
    assert _extension.has_cuda_kernels(), _extension.missing_reason() or "vqcnir_ops._C has no CUDA kernels"


def test_launch_target_is_this_gpu():
    props = torch.cuda.get_device_properties(0)
    target = launch_target(torch.device("cuda", 0))
    assert not target.interpreter and target.arch == props.major * 10 + props.minor
    known = GPU_TARGETS.get(target.arch)
    assert known is None or target.shared_memory >= known.shared_memory  # the opt-in maximum of the device
    records: list[LaunchRecord] = []
    x = torch.rand(1, 1, 1, 8, 8, device="cuda")
    with observe_launches(records.append):
        curve_map_fwd_triton(x, x)
    assert [r.target for r in records] == [target]


def test_free_memory_counts_the_blocks_torch_keeps_cached():
    """max_memory="auto" is resolved for each image: a second restoration must not see less free memory
    only because torch's caching allocator kept the first one's blocks."""
    from vqcnir.tiling import available_memory

    device = torch.device("cuda", 0)
    torch.cuda.empty_cache()
    before = available_memory(device)
    block = torch.empty(256 * 2**20, dtype=torch.uint8, device=device)
    del block  # 256 MiB now cached by torch, not free for the driver
    assert torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device) >= 256 * 2**20
    assert abs(available_memory(device) - before) < 64 * 2**20
