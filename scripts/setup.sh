#!/usr/bin/env bash
# Installs every system package boa needs on a fresh Debian 12 machine. Idempotent:
# packages already present are skipped, so a second run costs only the dpkg query.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git
  # codec core
  libxxhash-dev libssl-dev libcli11-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # clang's -Wthread-safety analysis of the annotated locking (a ctest); libFuzzer and the
  # sanitizers for the fuzz targets (scripts/fuzz.sh)
  clang libclang-rt-14-dev
  # daemon and wire contract
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libyaml-cpp-dev libspdlog-dev libfmt-dev prometheus-cpp-dev
  # training (LibTorch); without OpenBLAS's OpenMP build LibTorch uses the reference BLAS (~10x slower)
  libtorch-dev libopenblas0-openmp
  # Prometheus: promtool lints boad's /metrics in the tests
  prometheus
  # systemd-analyze checks deploy/systemd/boad.service; sd_notify for Type=notify
  systemd libsystemd-dev
  # baselines the demo and benchmarks compare against
  xz-utils zstd brotli bzip3 bzip2
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
