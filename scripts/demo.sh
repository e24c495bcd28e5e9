#!/usr/bin/env bash
# The main job end to end: install, build, make a model, compress and decompress a sample
# physics table, verify it, and print the sizes next to xz -9.
#
# The model here is randomly initialised (training arrives with issue #3), so it does not
# yet beat xz: it shows the pipeline and the format's bounded expansion, not the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh >/dev/null
BIN=${BUILD_DIR:-build}
OUT=demo-out
mkdir -p "$OUT"
ROWS=${ROWS:-20000}

"$BIN/boa-sample-data" --rows "$ROWS" -o "$OUT/jets.f32"
"$BIN/client/boa-client" model init --d-model 64 --layers 2 --seed 1 -o "$OUT/model.boam" -f
"$BIN/client/boa-client" compress -f "$OUT/jets.f32" -m "$OUT/model.boam" --chunk-size 16K
"$BIN/client/boa-client" info "$OUT/jets.f32.boa"
"$BIN/client/boa-client" decompress -f "$OUT/jets.f32.boa" -m "$OUT/model.boam" -o "$OUT/jets.out"
cmp "$OUT/jets.f32" "$OUT/jets.out"
"$BIN/client/boa-client" eval "$OUT/jets.f32" -m "$OUT/model.boam" --chunk-size 16K
xz -9 -k -f -c "$OUT/jets.f32" > "$OUT/jets.f32.xz"

orig=$(stat -c %s "$OUT/jets.f32")
boa=$(stat -c %s "$OUT/jets.f32.boa")
xz=$(stat -c %s "$OUT/jets.f32.xz")
echo
printf '%-14s %12s %8s\n' "method" "bytes" "ratio"
printf '%-14s %12d %8.3f\n' "original" "$orig" 1
awk -v o="$orig" -v b="$boa" -v x="$xz" 'BEGIN {
  printf "%-14s %12d %8.3f\n", "boa (random)", b, o / b
  printf "%-14s %12d %8.3f\n", "xz -9", x, o / x }'
echo "round trip: identical"
