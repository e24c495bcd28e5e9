#!/usr/bin/env bash
# The training-quality benchmark: a model trained for at most TRAIN_SECONDS (default 600)
# on the first 80 % of the sample jet table compresses the held-out test split (the last
# 10 %); compared with xz -9e on the same bytes. Prints a table for docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BUILD_DIR:-build}
OUT=${OUT:-bench-out}
ROWS=${ROWS:-100000}
TRAIN_SECONDS=${TRAIN_SECONDS:-600}
mkdir -p "$OUT"
"$BIN/boa-sample-data" --rows "$ROWS" -o "$OUT/jets.f32"
"$BIN/client/boa-client" --local train "$OUT/jets.f32" -o "$OUT/jets.boam" -f --d-model 64 --layers 2 \
  --seq-len 1024 --batch-size 8 --lr 3e-3 --epochs 100 --max-seconds "$TRAIN_SECONDS" --no-progress
n=$(stat -c %s "$OUT/jets.f32")
test_start=$(awk -v n="$n" 'BEGIN { printf "%d", int(n * 0.8) + int(n * 0.1) }')
tail -c $((n - test_start)) "$OUT/jets.f32" > "$OUT/test.f32"
"$BIN/client/boa-client" --local compress -f -q "$OUT/test.f32" -m "$OUT/jets.boam"
xz -9e -k -f -c "$OUT/test.f32" > "$OUT/test.f32.xz"
t=$(stat -c %s "$OUT/test.f32"); b=$(stat -c %s "$OUT/test.f32.boa"); x=$(stat -c %s "$OUT/test.f32.xz")
echo
echo "| held-out test split ($t bytes) | bytes | ratio |"
echo "|---|---:|---:|"
awk -v t="$t" -v b="$b" -v x="$x" -v s="$TRAIN_SECONDS" 'BEGIN {
  printf "| boa, d_model 64 x 2 trained %d s | %d | %.3f |\n", s, b, t / b
  printf "| xz -9e | %d | %.3f |\n", x, t / x }'
