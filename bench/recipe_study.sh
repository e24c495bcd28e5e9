#!/usr/bin/env bash
# The training-recipe study (docs/training.md, "Recipe"): for one wall-clock budget, trains
# each SHAPE and compresses data it never saw, beside xz -9e, zstd -19 and bzip3 on the same
# bytes. The effective ratios count the model file once against 10 MB, 100 MB and 1 GB of
# such data (at the bits per byte measured here). Prints a markdown table.
#
#   BUDGET=1800 bench/recipe_study.sh "64:2:1024:8:3e-3" "96:2:1024:8:2e-3:f16"
#
# KIND=cms (default): trains on rows 0-159,999 of the real CMS jet table, evaluates rows
# 160,000-199,999; rows 200,000 and beyond are reserved for evaluation and never read
# (get_cms_jets.sh does not extract them). KIND=hepmc3 or pxpypze: boa-event-text events
# 0..TEXT_EVENTS-1 of seed 1 to train, events of seed 2 to evaluate. A SHAPE is
# d_model:layers:seq_len:batch:lr[:dtype]; with no SHAPE, `train`'s default recipe runs.
# CHUNK sets the compression chunk size (default: the codec's default).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BUILD_DIR:-build}
OUT=${OUT:-bench-out/recipe}
BUDGET=${BUDGET:-600}
THREADS=${THREADS:-0}
KIND=${KIND:-cms}
CHUNK=${CHUNK:-}
CLIENT="$BIN/client/boa-client"
OUT="$OUT/$KIND"
mkdir -p "$OUT"
case "$KIND" in
  cms)
    DATA=${DATA:-$(../shared/data/get_cms_jets.sh)}
    row=96
    head -c $((160000 * row)) "$DATA" > "$OUT/train.bin"
    tail -c +$((160000 * row + 1)) "$DATA" | head -c $((40000 * row)) > "$OUT/eval.bin" ;;
  hepmc3|pxpypze)
    events=${TEXT_EVENTS:-$([ "$KIND" = hepmc3 ] && echo 250 || echo 2500)}
    "$BIN/boa-event-text" --format "$KIND" --events "$events" --seed 1 -o "$OUT/train.bin"
    "$BIN/boa-event-text" --format "$KIND" --events $((events / 4)) --seed 2 -o "$OUT/eval.bin" ;;
  *) echo "KIND must be cms, hepmc3 or pxpypze" >&2; exit 2 ;;
esac
n=$(stat -c %s "$OUT/eval.bin")
size() { stat -c %s "$1"; }
xz9e=$(xz -9e -c "$OUT/eval.bin" | wc -c)
zstd19=$(zstd -19 -q -c "$OUT/eval.bin" | wc -c)
bz3=$( (bzip3 -c "$OUT/eval.bin" 2>/dev/null || true) | wc -c)
chunk=()
[ -n "$CHUNK" ] && chunk=(--chunk-size "$CHUNK")

threads=()
[ "$THREADS" -gt 0 ] && threads=(-T "$THREADS")
echo "| $KIND: recipe, budget ${BUDGET} s | steps | train s | model bytes | boa bytes of $n | ratio | vs xz -9e | vs xz -9e, model counted in 10 MB | 100 MB | 1 GB | compress KB/s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(default)
for shape in "${shapes[@]}"; do
  args=()
  name=default
  if [ "$shape" != default ]; then
    IFS=: read -r d l s bs lr dt <<< "$shape"
    args=(--d-model "$d" --layers "$l" --seq-len "$s" --batch-size "$bs" --lr "$lr" --dtype "${dt:-f32}")
    name="d${d}x${l} seq${s} b${bs} lr${lr} ${dt:-f32}"
  fi
  m="$OUT/$(echo "$name" | tr ' ' '_')-${BUDGET}s.boam"
  rm -rf "$m" "$m.ckpt"
  "$CLIENT" --local -q train "$OUT/train.bin" -o "$m" -f --splits 0.95,0.05,0 --epochs 1000 \
    --max-seconds "$BUDGET" "${threads[@]}" "${args[@]}"
  start=$(date +%s.%N)
  "$CLIENT" --local -q compress -f "${threads[@]}" "${chunk[@]}" "$OUT/eval.bin" -m "$m" -o "$OUT/eval.boa"
  secs=$(echo "$(date +%s.%N) - $start" | bc -l)
  "$CLIENT" --local -q decompress -f "${threads[@]}" "$OUT/eval.boa" -m "$m" -o "$OUT/eval.back"
  cmp -s "$OUT/eval.bin" "$OUT/eval.back" || { echo "$name: round trip differs" >&2; exit 1; }
  steps=$(sed -n 's/.*"steps": *\([0-9]*\).*/\1/p' "$m.report.json" | head -n 1)
  tsecs=$(sed -n 's/.*"seconds": *\([0-9.]*\).*/\1/p' "$m.report.json" | tail -n 1)
  awk -v name="$name" -v steps="$steps" -v ts="$tsecs" -v mb="$(size "$m")" -v b="$(size "$OUT/eval.boa")" \
      -v n="$n" -v x="$xz9e" -v secs="$secs" 'BEGIN {
    bpb = b / n
    printf "| %s | %d | %.0f | %d | %d | %.3f | %.3fx |", name, steps, ts, mb, b, n / b, x / b
    split("10e6 100e6 1e9", sizes, " ")
    for (i = 1; i <= 3; ++i) printf " %.3fx |", (x / n) * sizes[i] / (sizes[i] * bpb + mb)
    printf " %.0f |\n", n / secs / 1e3 }'
done
awk -v n="$n" -v x="$xz9e" -v z="$zstd19" -v b="$bz3" 'BEGIN {
  printf "| xz -9e | | | | %d | %.3f | 1.000x | | | | |\n", x, n / x
  printf "| zstd -19 | | | | %d | %.3f | %.3fx | | | | |\n", z, n / z, x / z
  if (b > 0) printf "| bzip3 | | | | %d | %.3f | %.3fx | | | | |\n", b, n / b, x / b }'
