#!/usr/bin/env bash
# The main job end to end: install, build, start boad on a free loopback port, generate the
# sample jet-feature table, run the `jets` experiment (train a small model for up to two
# minutes, register it on boad, compress and decompress through boad, verify, timings),
# and print the sizes next to xz and zstd.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh >/dev/null
BIN=${BUILD_DIR:-build}
CLIENT="$BIN/client/boa-client"
EXP=experiments/jets

# The daemon, with a scratch model store; stopped (SIGTERM: it drains) when this script ends.
STORE=$(mktemp -d /tmp/boa-demo-XXXXXX)
"$BIN/server/boad" --listen 127.0.0.1:0 --model-dir "$STORE/models" --log-level warn > "$STORE/boad.out" &
BOAD_PID=$!
trap 'kill $BOAD_PID 2>/dev/null; wait $BOAD_PID 2>/dev/null; rm -rf "$STORE"' EXIT
for _ in $(seq 100); do grep -q "listening" "$STORE/boad.out" 2>/dev/null && break; sleep 0.1; done
export BOA_SERVER="$(sed -n 's/^boad listening on //p' "$STORE/boad.out")"
echo "boad is serving on $BOA_SERVER"

BIN="$PWD/$BIN" "$EXP/make_data.sh"
"$CLIENT" run --config jets --verify --show-timings
"$CLIENT" status
"$CLIENT" info "$EXP/jets.boa"

orig=$(stat -c %s "$EXP/jets.f32")
xz -9 -k -f -c "$EXP/jets.f32" > "$EXP/jets.f32.xz"
xz -9e -k -f -c "$EXP/jets.f32" > "$EXP/jets.f32.xze"
zstd -19 -q -f "$EXP/jets.f32" -o "$EXP/jets.f32.zst"
echo
printf '%-10s %12s %8s\n' "method" "bytes" "ratio"
for f in "boa:$EXP/jets.boa" "xz -9:$EXP/jets.f32.xz" "xz -9e:$EXP/jets.f32.xze" "zstd -19:$EXP/jets.f32.zst"; do
  name=${f%%:*}
  size=$(stat -c %s "${f#*:}")
  awk -v n="$name" -v o="$orig" -v s="$size" 'BEGIN { printf "%-10s %12d %8.3f\n", n, s, o / s }'
done
rm -f "$EXP/jets.f32.xz" "$EXP/jets.f32.xze" "$EXP/jets.f32.zst"
echo "original   $orig bytes; model $(stat -c %s "$EXP/jets_final_model_fp32.boam") bytes"
