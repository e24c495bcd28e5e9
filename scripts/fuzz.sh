#!/usr/bin/env bash
# The fuzz targets (tests/fuzz/): builds them with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer in build-fuzz/, then
#   scripts/fuzz.sh [SECONDS] [TARGET...]   fuzzes each target for SECONDS (default 60), from its
#                                           seed corpus and what earlier runs found (build-fuzz/corpus/)
#   scripts/fuzz.sh --replay [TARGET...]    runs every seed once (what CI does, with a short fuzz)
# and prints a table: target, executions, executions per second, corpus, findings. A finding
# (crash, sanitizer report, leak, timeout) is kept in build-fuzz/findings/ and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
ALL=(container_fuzz decode_fuzz model_fuzz checkpoint_fuzz config_fuzz request_fuzz)
mode=fuzz
seconds=60
if [ "${1:-}" = "--replay" ]; then mode=replay; shift; elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then seconds=$1; shift; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")

BUILD=build-fuzz
if [ ! -f "$BUILD/build.ninja" ]; then
  CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBOA_FUZZ=ON -DBOA_BUILD_TESTS=OFF \
    -DBOA_BUILD_BENCH=OFF -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON -DBOA_CUDA=OFF > /dev/null
fi
cmake --build "$BUILD" -j "$(nproc)" --target "${targets[@]}"
mkdir -p "$BUILD/findings" "$BUILD/logs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

failed=0
printf '%-16s %12s %10s %8s  %s\n' target executions "exec/s" corpus result
for t in "${targets[@]}"; do
  seeds="tests/fuzz/corpus/$t"
  log="$BUILD/logs/$t.log"
  if [ "$mode" = replay ]; then
    set +e
    "$BUILD/tests/fuzz/$t" -timeout=20 -rss_limit_mb=4096 "$seeds"/* > "$log" 2>&1
    rc=$?
    set -e
    runs=$(find "$seeds" -type f | wc -l)
    printf '%-16s %12s %10s %8s  %s\n' "$t" "$runs" - "$runs" "$([ $rc = 0 ] && echo ok || echo "FAILED ($log)")"
  else
    corpus="$BUILD/corpus/$t"
    mkdir -p "$corpus"
    set +e
    "$BUILD/tests/fuzz/$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$BUILD/findings/$t-" "$corpus" "$seeds" > "$log" 2>&1
    rc=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    size=$(find "$corpus" -type f | wc -l)
    printf '%-16s %12s %10s %8s  %s\n' "$t" "${runs:-?}" "${rate:-?}" "$size" "$([ $rc = 0 ] && echo "no findings" || echo "FINDING ($log)")"
  fi
  [ $rc = 0 ] || failed=1
done
exit $failed
