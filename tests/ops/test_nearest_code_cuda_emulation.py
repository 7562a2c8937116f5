"""The CUDA nearest-code kernel's algorithm, replayed on CPU (no GPU is needed to check its indexing,
padding, stride, tie and NaN logic; nvcc's code generation is checked on a GPU machine only)."""

from tests.ops import emulate_nearest_code_kernel


def test_cuda_kernel_algorithm_matches_reference():
    assert emulate_nearest_code_kernel.main() == 0
