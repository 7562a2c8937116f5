#!/usr/bin/env bash
# Compile-check the CUDA kernels (CMakeLists.txt part (a): csrc/cuda/*.cu, no torch) with nvcc.
#
# Builds for the architectures in VQCNIR_CUDA_ARCHITECTURES (default "80;90") with warnings as errors in
# a throw-away build directory, so any compile error or warning fails. Needs no GPU and no CUDA torch.
# Without nvcc it says so and succeeds: the check is skipped, not failed.
#
# Usage: scripts/check_cuda_build.sh            (environment: NVCC, CUDACXX, VQCNIR_CUDA_ARCHITECTURES, JOBS)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
nvcc_bin="${CUDACXX:-${NVCC:-$(command -v nvcc || true)}}"
if [[ -z "${nvcc_bin}" || ! -x "${nvcc_bin}" ]]; then
  echo "nvcc not found: skipping the CUDA compile check"
  exit 0
fi
if ! command -v cmake >/dev/null 2>&1; then
  echo "error: nvcc is at ${nvcc_bin} but cmake is not installed; the CUDA compile check needs cmake >= 3.18" >&2
  exit 1
fi

build_dir="$(mktemp -d "${TMPDIR:-/tmp}/vqcnir-cuda-check.XXXXXX")"
trap 'rm -rf "${build_dir}"' EXIT
archs="${VQCNIR_CUDA_ARCHITECTURES:-80;90}"
start=${SECONDS}

echo "CUDA compile check: ${nvcc_bin} ($("${nvcc_bin}" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')), architectures ${archs}"
cmake -S "${repo_root}" -B "${build_dir}" \
  -DCMAKE_CUDA_COMPILER="${nvcc_bin}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DVQCNIR_CUDA_CHECK=ON \
  -DVQCNIR_WITH_TORCH=OFF \
  -DVQCNIR_WERROR=ON \
  -DVQCNIR_CUDA_ARCHITECTURES="${archs}" \
  >"${build_dir}/configure.log" 2>&1 || {
  cat "${build_dir}/configure.log" >&2
  echo "CUDA compile check FAILED at configure after $((SECONDS - start)) s" >&2
  exit 1
}
if ! cmake --build "${build_dir}" --target vqcnir_cuda_kernels -j "${JOBS:-2}"; then
  echo "CUDA compile check FAILED after $((SECONDS - start)) s" >&2
  exit 1
fi
echo "CUDA compile check passed in $((SECONDS - start)) s"
