#!/usr/bin/env bash
# Installs every Debian 12 package that wfm's build, tests, benchmarks and
# demo need. Idempotent and non-interactive: packages already present are not
# touched, and apt runs only when something is missing.
#
#   deploy/setup.sh              # as root, or as a user with sudo
#   deploy/setup.sh --build-only # only what building wfm-server, wfm and
#                                # wfm-train needs (the container's build stage)
set -euo pipefail

BUILD_PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  # model/: LibTorch with a fast BLAS (without OpenBLAS, LibTorch falls back
  # to the reference BLAS, ~25x slower on matrix products)
  libtorch-dev libopenblas0-pthread libgloo-dev
  libabsl-dev liblemon-dev libnanoflann-dev nlohmann-json3-dev
  libhdf5-dev libzip-dev zipcmp ziptool zipmerge
  # server/ and client/
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  prometheus-cpp-dev libcli11-dev
)
TEST_PACKAGES=(
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-numpy python3-scipy python3-pot python3-torch python3-h5py
  python3-anndata python3-grpcio python3-grpc-tools python3-protobuf
  # the Python package (pip install ./python into a virtual environment),
  # its optional progress bars and the examples' figures
  python3-pip python3-setuptools python3-wheel python3-venv python3-tqdm
  python3-matplotlib
  openssl curl prometheus yamllint
  # sanitizer and fuzzing builds
  clang libclang-rt-14-dev
)

build_only=false
case "${1:-}" in
  --build-only) build_only=true ;;
  "") ;;
  *) echo "usage: deploy/setup.sh [--build-only]" >&2; exit 2 ;;
esac
PACKAGES=("${BUILD_PACKAGES[@]}")
if ! $build_only; then PACKAGES+=("${TEST_PACKAGES[@]}"); fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

# kubectl renders the Kubernetes manifests in tests/deploy (`kubectl
# kustomize`). Any kubectl on PATH will do; where none is (a fresh Debian
# 12), Debian's kubernetes-client provides it.
# Debian 12's is kubectl 1.20, with kustomize 2.0.3: the kustomizations keep
# to the fields that version reads (tests/deploy checks it), and it renders
# the same objects as a current kubectl (but for the generated Secret's hash
# suffix, which kustomize versions compute differently).
if ! $build_only && ! command -v kubectl >/dev/null 2>&1; then
  missing+=(kubernetes-client)
fi

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
