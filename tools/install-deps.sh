#!/usr/bin/env bash
# Installs the system packages SoftPrompt's build needs on a Debian bookworm machine:
#   cuda   - nvcc/ptxas (Debian's nvidia-cuda-toolkit lives in non-free) and clang-14 as its host compiler
#   blas   - OpenBLAS for fast CPU GEMMs (the engine falls back to managed code without it)
#   torch  - PyTorch (CPU) to regenerate reference fixtures (not needed to build or test)
#   mpi    - Open MPI (mpirun, libmpi.so.40) for data-parallel training and its tests (tests skip without it)
#   afl    - afl++ (afl-fuzz) for `./build.sh fuzz`
# Usage: tools/install-deps.sh cuda blas [torch] [mpi] [afl]
set -euo pipefail
want=("$@")
[ ${#want[@]} -eq 0 ] && want=(cuda blas)
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
pkgs=()
need_nonfree=0
for w in "${want[@]}"; do
  case "$w" in
    cuda)  command -v nvcc >/dev/null && command -v clang-14 >/dev/null || { pkgs+=(nvidia-cuda-toolkit clang-14); need_nonfree=1; } ;;
    blas)  ldconfig -p | grep -q libopenblas.so.0 || pkgs+=(libopenblas0-pthread) ;;
    torch) /usr/bin/python3 -c 'import torch' 2>/dev/null || pkgs+=(python3-torch libopenblas0-pthread) ;;
    # libopenmpi3 is the runtime (libmpi.so.40, loaded by name at run time); openmpi-bin gives mpirun.
    mpi)   command -v mpirun >/dev/null && ldconfig -p | grep -q 'libmpi.so.40' || pkgs+=(openmpi-bin libopenmpi3) ;;
    afl)   command -v afl-fuzz >/dev/null || pkgs+=(afl++) ;;
    *) echo "install-deps: unknown component '$w' (cuda|blas|torch|mpi|afl)" >&2; exit 2 ;;
  esac
done
[ ${#pkgs[@]} -eq 0 ] && exit 0
if [ "$need_nonfree" -eq 1 ] && [ -d /etc/apt/sources.list.d ] && ! grep -rqs "non-free" /etc/apt/sources.list.d/ /etc/apt/sources.list; then
  src=/etc/apt/sources.list.d/debian.sources
  uri=$(awk '/^URIs:/{print $2; exit}' "$src" 2>/dev/null || echo http://deb.debian.org/debian)
  key=$(awk '/^Signed-By:/{print $2; exit}' "$src" 2>/dev/null || echo /usr/share/keyrings/debian-archive-keyring.gpg)
  printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: contrib non-free\nSigned-By: %s\n' "$uri" "$key" \
    | $SUDO tee /etc/apt/sources.list.d/softprompt-nonfree.sources >/dev/null
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
