#!/usr/bin/env bash
# Installs what boa needs, builds it, and runs the whole test suite (ctest), then the fuzz
# targets (clang, ASan, UBSan): every seed once, and each target for 10 s; then the scheduler
# and boad under ThreadSanitizer (the load test for 20 s).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure -j "$(nproc)")
bash scripts/fuzz.sh --replay
bash scripts/fuzz.sh 10
bash scripts/tsan.sh 20
