#!/usr/bin/env bash
# Compile-check the extension's C++ and CUDA sources against the headers of other torch releases (no link, no run).
#
#   scripts/check_torch_builds.sh [VERSION ...]     default: 2.4.0 (the lowest pyproject.toml declares), 2.7.1, 2.11.0
#
# For each version, pip downloads the PyPI wheel for this Python (--no-deps, a CUDA build, 0.5-0.8 GB) into
# VQCNIR_TORCH_WHEELS (default ~/.cache/vqcnir-torch-wheels; reused on later runs) and extracts its include/
# folder and C++ standard next to it. Then, with the flags torch's own cpp_extension uses for that release:
#   - every csrc/*.cpp and csrc/cpu/*.cpp with g++ -fsyntax-only (as a CPU build and as a CUDA build);
#   - every csrc/cuda/*.cpp with g++ -fsyntax-only and the CUDA toolkit's headers (needs nvcc's CUDA_HOME);
# The csrc/cuda/*.cu kernels include no torch header, so no torch release changes them: scripts/check_cuda_build.sh
# (run by scripts/test.sh) compiles them.
# Any error fails the script, which prints one line per version and kind. The torch installed in .venv is
# checked by the regular build (scripts/test.sh); CI does not run this script (it downloads GBs).
#
# Environment: VQCNIR_TORCH_WHEELS, PYTHON (default python3: its version picks the wheel and Python.h),
# CXX (default g++), NVCC (default: nvcc on PATH; without it the CUDA sources are skipped, with a note).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${VQCNIR_TORCH_WHEELS:-${HOME}/.cache/vqcnir-torch-wheels}"
python="${PYTHON:-python3}"
cxx="${CXX:-g++}"
nvcc_bin="${NVCC:-$(command -v nvcc || true)}"
versions=("$@")
if (( ${#versions[@]} == 0 )); then
  versions=(2.4.0 2.7.1 2.11.0)
fi
mkdir -p "${cache}"
py_tag="$("${python}" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
py_include="$("${python}" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
cuda_include=""
if [[ -n "${nvcc_bin}" ]]; then  # the toolkit's include folder, as nvcc itself reports it (nvcc may be a wrapper)
  cuda_include="$("${nvcc_bin}" --dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ INCLUDES="-I\([^"]*\)".*/\1/p' | head -n 1)"
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/vqcnir-torch-builds.XXXXXX")"
trap 'rm -rf "${work}"' EXIT
failures=0
summary=()

# Extract include/ and the C++ standard torch's cpp_extension passes, once per wheel.
headers_of() {
  local version="$1" dir="${cache}/torch-${1}-${py_tag}"
  if [[ ! -f "${dir}/std" ]]; then
    local wheel pattern="${cache}/torch-${version}-*${py_tag}-${py_tag}-*.whl"  # some wheels carry a build tag: -3-
    wheel="$(ls ${pattern} 2>/dev/null | head -n 1 || true)"
    if [[ -z "${wheel}" ]]; then
      echo "downloading torch ${version} for ${py_tag} into ${cache}" >&2
      "${python}" -m pip download --quiet --no-deps --only-binary=:all: --python-version "${py_tag#cp}" \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 "torch==${version}" -d "${cache}" >&2
      wheel="$(ls ${pattern} 2>/dev/null | head -n 1 || true)"
      if [[ -z "${wheel}" ]]; then
        echo "error: pip downloaded no torch ${version} wheel for ${py_tag} into ${cache}" >&2
        return 1
      fi
    fi
    rm -rf "${dir}" && mkdir -p "${dir}"
    "${python}" - "${wheel}" "${dir}" <<'EOF'
import re, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    archive.extractall(out, [n for n in archive.namelist() if n.startswith("torch/include/")])
    source = archive.read("torch/utils/cpp_extension.py").decode()
# The standard cpp_extension builds extensions with: the -std= flag its source names most often (a docstring
# example may name another one): c++17 up to torch 2.11, c++20 in 2.13.
stds = re.findall(r"-std=c\+\+(\d+)", source)
open(f"{out}/std", "w").write(f"c++{max(set(stds), key=stds.count) if stds else '17'}\n")
EOF
  fi
  echo "${dir}"
}

check() {  # check <version> <what> <command...>
  local version="$1" what="$2"
  shift 2
  if "$@" >"${work}/log" 2>&1; then
    summary+=("torch ${version}: ${what}: ok")
  else
    summary+=("torch ${version}: ${what}: FAILED")
    failures=$((failures + 1))
    echo "---- torch ${version}, ${what}: $*" >&2
    head -n 60 "${work}/log" >&2
  fi
}

cxx_sources=("${repo_root}"/csrc/vqcnir_ops.cpp "${repo_root}"/csrc/cpu/*.cpp)
cuda_cpp_sources=("${repo_root}"/csrc/cuda/*.cpp)
compile_cpu() {
  local f
  for f in "${cxx_sources[@]}"; do "${cxx}" "${flags[@]}" "${f}" || return 1; done
}
compile_cuda_build() {
  local f
  for f in "${cxx_sources[@]}" "${cuda_cpp_sources[@]}"; do
    "${cxx}" "${flags[@]}" -DVQCNIR_WITH_CUDA -I "${cuda_include}" "${f}" || return 1
  done
}
for version in "${versions[@]}"; do
  if ! headers="$(headers_of "${version}")"; then
    summary+=("torch ${version}: no headers (download or extraction failed)")
    failures=$((failures + 1))
    continue
  fi
  std="$(cat "${headers}/std")"
  inc="${headers}/torch/include"
  flags=(-fsyntax-only "-std=${std}" -fopenmp -Wall -Wextra -Werror -Wno-unused-parameter
         -I "${inc}" -I "${inc}/torch/csrc/api/include" -I "${repo_root}/csrc/include" -I "${py_include}")
  echo "torch ${version}: ${std}, headers in ${inc}"
  check "${version}" "C++ sources, CPU build" compile_cpu
  if [[ -z "${cuda_include}" ]]; then
    summary+=("torch ${version}: C++ sources, CUDA build: skipped (nvcc not found)")
    continue
  fi
  check "${version}" "C++ sources, CUDA build" compile_cuda_build
done
printf '%s\n' "${summary[@]}"
if (( failures )); then
  echo "torch build check FAILED (${failures})" >&2
  exit 1
fi
echo "torch build check passed for ${versions[*]}"
