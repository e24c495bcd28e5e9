#!/usr/bin/env bash
# ThreadSanitizer over the scheduler and the service: builds boad and scheduler_test with
# clang -fsanitize=thread in build-tsan/ (without LibTorch, which is not instrumented), runs
# scheduler_test, then the load test of build/ (64 clients) against that boad. A race makes
# the instrumented program exit with status 66: scheduler_test fails, and the load test,
# which expects boad to exit 0 after its drain, fails too.
#   scripts/tsan.sh [SECONDS]    the load test's length (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
BUILD=build-tsan
if [ ! -f "$BUILD/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON -DBOA_CUDA=OFF -DCMAKE_CXX_FLAGS=-fsanitize=thread \
    -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread > /dev/null
fi
cmake --build "$BUILD" -j "$(nproc)" --target boad scheduler_test
[ -x "${BUILD_DIR:-build}/tests/load_test" ] || cmake --build "${BUILD_DIR:-build}" --target load_test
export TSAN_OPTIONS="exitcode=66 second_deadlock_stack=1 history_size=4 suppressions=$PWD/tests/tsan.supp"
"$BUILD/tests/scheduler_test" --gtest_brief=1
BOA_LOAD_SECONDS=$seconds BOA_LOAD_BOAD="$PWD/$BUILD/server/boad" "${BUILD_DIR:-build}/tests/load_test" --gtest_brief=1
echo "ThreadSanitizer: no race in scheduler_test or in boad under the load test"
