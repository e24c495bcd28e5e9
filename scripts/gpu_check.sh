#!/usr/bin/env bash
# The GPU device check (docs/performance.md, "On a GPU"): on a machine with a CUDA GPU,
# CUDA, CMake and ninja but none of boa's Debian packages, builds the engine-only
# configuration (-DBOA_ENGINE_ONLY=ON: the codec library, its tests, the benchmarks) and
# runs (1) the bit-equality tests of the CUDA engine against the CPU engine, whose GPU cases
# run here instead of skipping, (2) the codec tests with the GPU among the backends (the
# same .boa from every backend, each decoding the others'), (3) boa-gpu-bench's tables,
# (4) boad on the GPU end to end: a file compressed through boad (`devices: [cuda:0]`) is the
# CPU's .boa byte for byte and decodes on the CPU, and boad-bench's table on the GPU.
# Everything is written to $OUT (default ./gpu-check-out): log.txt, tests.txt, bench.md,
# boad.md.
#
# Libraries come from .gpu-deps/*.deb (Debian's libxxhash-dev, liblzma-dev, libssl-dev,
# libgtest-dev), unpacked into a prefix under /tmp, never into /. Where the build fails
# there, the programs in .gpu-build/programs.tar.xz (engine-only, built here and stripped:
# they need only glibc and libstdc++) are run instead. boad cannot be built there (gRPC,
# protobuf, ...): .gpu-build/boad.tar.xz holds boad, boa-client and boad-bench built here
# without training (BOA_TRAIN=OFF), with every library they load, run by
# scripts/gpu/run_bundled.sh. On a Debian machine with nvcc:
#   scripts/gpu_check.sh --fetch      # .gpu-deps/*.deb
#   scripts/gpu_check.sh --prebuild   # .gpu-build/: the test programs, the benchmarks, boad
set -uo pipefail
cd "$(dirname "$0")/.."
DEPS_DIR=.gpu-deps
PREBUILT=.gpu-build
if [ "${1:-}" = "--fetch" ]; then
  mkdir -p "$DEPS_DIR" && cd "$DEPS_DIR" && apt-get download libxxhash-dev liblzma-dev libssl-dev libgtest-dev
  exit
fi
if [ "${1:-}" = "--prebuild" ]; then
  set -e
  cmake -S . -B build-engine -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBOA_ENGINE_ONLY=ON -DBOA_CUDA=ON > /dev/null
  cmake --build build-engine -j "$(nproc)"
  rm -rf "$PREBUILT" && mkdir -p "$PREBUILT/bin"
  for f in build-engine/tests/*_test build-engine/bench/boa-gpu-bench; do
    strip -o "$PREBUILT/bin/$(basename "$f")" "$f"
  done
  tar -C "$PREBUILT" -cJf "$PREBUILT/programs.tar.xz" bin && rm -rf "$PREBUILT/bin"
  cmake -S . -B build-boad -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBOA_TRAIN=OFF -DBOA_BUILD_TESTS=OFF \
    -DBOA_CUDA=ON > /dev/null
  cmake --build build-boad -j "$(nproc)" --target boad boa-client boad-bench boa-sample-data
  programs="build-boad/server/boad build-boad/client/boa-client build-boad/bench/boad-bench build-boad/boa-sample-data"
  mkdir -p "$PREBUILT/boad/bin" "$PREBUILT/boad/lib"
  for f in $programs; do
    strip -o "$PREBUILT/boad/bin/$(basename "$f").real" "$f"
    cp scripts/gpu/run_bundled.sh "$PREBUILT/boad/bin/$(basename "$f")"
  done
  # shellcheck disable=SC2086
  ldd $programs | awk '/=> \// {print $3} /^\t\/.*ld-linux/ {print $1}' | sort -u | xargs -I{} cp -L {} "$PREBUILT/boad/lib/"
  tar -C "$PREBUILT" -cJf "$PREBUILT/boad.tar.xz" boad && rm -rf "$PREBUILT/boad"
  du -sh "$PREBUILT"/*  # they travel with the working tree (64 MiB in all)
  exit
fi
OUT=${OUT:-$PWD/gpu-check-out}
PREFIX=/tmp/boa-gpu-deps
BUILD=${BUILD:-/tmp/boa-gpu-build}
mkdir -p "$OUT" "$PREFIX"
exec > >(tee "$OUT/log.txt") 2>&1
start=$(date +%s)
stage() { echo; echo "== $* (at $(( $(date +%s) - start )) s)"; }

stage "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
nvcc --version | tail -1
cmake --version | head -1
nproc

stage "libraries"
for f in "$DEPS_DIR"/*.deb; do
  [ -e "$f" ] || { echo "no $DEPS_DIR/*.deb: using the system's libraries"; break; }
  if command -v dpkg-deb > /dev/null; then
    dpkg-deb -x "$f" "$PREFIX"
  else  # a .deb is an ar archive holding data.tar.*
    (tmp=$(mktemp -d) && cd "$tmp" && ar x "$OLDPWD/$f" && tar -xf data.tar.* -C "$PREFIX" && rm -rf "$tmp")
  fi
done
lib=$PREFIX/usr/lib/x86_64-linux-gnu
cmake_deps=()
if [ -d "$lib" ]; then
  cmake_deps=(-DCMAKE_PREFIX_PATH="$PREFIX/usr" -DCMAKE_LIBRARY_PATH="$lib" -DCMAKE_INCLUDE_PATH="$PREFIX/usr/include"
              -DOPENSSL_ROOT_DIR="$PREFIX/usr" -DOPENSSL_INCLUDE_DIR="$PREFIX/usr/include"
              -DOPENSSL_CRYPTO_LIBRARY="$lib/libcrypto.a" -DOPENSSL_SSL_LIBRARY="$lib/libssl.a"
              -DGTest_DIR="$lib/cmake/GTest" -DCMAKE_CXX_FLAGS="-isystem $PREFIX/usr/include/x86_64-linux-gnu")
fi

stage "configure and build (engine only, CUDA on)"
bin=""
if cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBOA_ENGINE_ONLY=ON -DBOA_CUDA=ON \
     -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" "${cmake_deps[@]}" && cmake --build "$BUILD" -j "$(nproc)"; then
  mkdir -p "$BUILD/all"
  ln -sf "$BUILD"/tests/*_test "$BUILD"/bench/boa-gpu-bench "$BUILD"/bench/boa-bench "$BUILD/all/"
  bin="$BUILD/all"
elif [ -f "$PREBUILT/programs.tar.xz" ]; then
  echo "the build failed: running the programs of $PREBUILT"
  mkdir -p /tmp/boa-gpu-prebuilt && tar -C /tmp/boa-gpu-prebuilt -xJf "$PREBUILT/programs.tar.xz"
  bin=/tmp/boa-gpu-prebuilt/bin
else
  echo "the build failed and there is no $PREBUILT"; exit 1
fi

stage "1-2. CUDA engine and codec against the CPU, bit for bit"
"$bin/cuda_engine_test" 2>&1 | tail -25
tests_rc=0
: > "$OUT/tests.txt"
for t in "$bin"/*_test; do
  if timeout 300 "$t" --gtest_brief=1 >> "$OUT/tests.txt" 2>&1; then
    echo "ok      $(basename "$t")"
  else
    echo "FAILED  $(basename "$t")"; tests_rc=1
  fi
done
grep -E "SKIPPED|FAILED" "$OUT/tests.txt" | sort | uniq -c | head -40
if grep -q "is not available here\|no GPU test" "$OUT/tests.txt"; then  # on a GPU machine, a skipped GPU test fails the check
  grep -m 3 "is not available here\|no GPU test" "$OUT/tests.txt"
  echo "GPU tests were skipped: the check has not run on the GPU"; tests_rc=1
fi

stage "3. boa-gpu-bench"
timeout 240 "$bin/boa-gpu-bench" | tee "$OUT/bench.md"
bench_rc=${PIPESTATUS[0]}

stage "4. boad on the GPU end to end"
boad_rc=1
if [ -f "$PREBUILT/boad.tar.xz" ]; then
  rm -rf /tmp/boa-boad && mkdir -p /tmp/boa-boad && tar -C /tmp/boa-boad -xJf "$PREBUILT/boad.tar.xz"
  timeout 200 scripts/gpu/boad_check.sh /tmp/boa-boad/boad/bin cuda:0 "$OUT/boad.md" && boad_rc=0
else
  echo "no $PREBUILT/boad.tar.xz: run scripts/gpu_check.sh --prebuild first"
fi

stage "done: tests rc=$tests_rc, bench rc=$bench_rc, boad rc=$boad_rc"
[ "$tests_rc" = 0 ] && [ "$bench_rc" = 0 ] && [ "$boad_rc" = 0 ]
