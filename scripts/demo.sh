#!/usr/bin/env bash
# The main job end to end: install, build, generate a sample physics table (jet features,
# float32), train a small model on it, compress and decompress with it, verify, and print
# the sizes next to xz.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh >/dev/null
BIN=${BUILD_DIR:-build}
CLIENT="$BIN/client/boa-client"
OUT=demo-out
mkdir -p "$OUT"
ROWS=${ROWS:-20000}               # 24 float32 features per row: 96 bytes
TRAIN_SECONDS=${TRAIN_SECONDS:-120}

"$BIN/boa-sample-data" --rows "$ROWS" -o "$OUT/jets.f32"
echo "== training a d_model 64 x 2 model for up to ${TRAIN_SECONDS} s on the first 80 % of the table"
"$CLIENT" train "$OUT/jets.f32" -o "$OUT/jets.boam" -f --d-model 64 --layers 2 \
  --seq-len 1024 --batch-size 8 --lr 3e-3 --epochs 4 --max-seconds "$TRAIN_SECONDS"
echo "== compress, inspect, decompress, verify"
"$CLIENT" compress -f "$OUT/jets.f32" -m "$OUT/jets.boam"
"$CLIENT" info "$OUT/jets.f32.boa"
"$CLIENT" decompress -f "$OUT/jets.f32.boa" -m "$OUT/jets.boam" -o "$OUT/jets.out"
cmp "$OUT/jets.f32" "$OUT/jets.out"
xz -9 -k -f -c "$OUT/jets.f32" > "$OUT/jets.f32.xz"
xz -9e -k -f -c "$OUT/jets.f32" > "$OUT/jets.f32.xze"
zstd -19 -q -f "$OUT/jets.f32" -o "$OUT/jets.f32.zst"

orig=$(stat -c %s "$OUT/jets.f32")
echo
printf '%-10s %12s %8s\n' "method" "bytes" "ratio"
for f in "boa:$OUT/jets.f32.boa" "xz -9:$OUT/jets.f32.xz" "xz -9e:$OUT/jets.f32.xze" "zstd -19:$OUT/jets.f32.zst"; do
  name=${f%%:*}
  size=$(stat -c %s "${f#*:}")
  awk -v n="$name" -v o="$orig" -v s="$size" 'BEGIN { printf "%-10s %12d %8.3f\n", n, s, o / s }'
done
echo "original   $orig bytes; model $(stat -c %s "$OUT/jets.boam") bytes; round trip identical"
