#!/usr/bin/env bash
# boad end to end on one device (scripts/gpu_check.sh, stage 4): with an untrained model and
# bytes sampled from it (so every chunk is model-coded), a file compressed through boad on
# DEVICE must be the CPU's .boa byte for byte and each must decode on the other side; then
# boad-bench's table on DEVICE goes to TABLE.
#   scripts/gpu/boad_check.sh BIN_DIR DEVICE TABLE     (BIN_DIR: boad, boa-client, boad-bench)
set -uo pipefail
B=$1 DEVICE=$2 TABLE=$3
W=$(mktemp -d /tmp/boa-boad-check-XXXXXX)
client() { timeout 120 "$B/boa-client" "$@"; }
"$B/boa-client" --local model init --d-model 64 --layers 2 --seed 1 -o "$W/m.boam" -q || exit 1
"$B/boa-client" --local model sample "$W/m.boam" --bytes 1M -o "$W/sampled.bin" -q || exit 1
"$B/boad" --devices "$DEVICE" --listen 127.0.0.1:0 --model-dir "$W/models" --jobs-dir "$W/jobs" > "$W/boad.out" 2>&1 &
boad_pid=$!
trap 'kill $boad_pid 2> /dev/null; wait $boad_pid 2> /dev/null; rm -rf "$W"' EXIT
for _ in $(seq 100); do grep -q "boad listening on" "$W/boad.out" && break; sleep 0.2; done
addr=$(sed -n 's/^boad listening on //p' "$W/boad.out")
[ -n "$addr" ] || { cat "$W/boad.out"; echo "boad on $DEVICE did not start"; exit 1; }
rc=1
if client --server "$addr" models upload "$W/m.boam" --name m &&
   client --server "$addr" -v compress "$W/sampled.bin" -m m -o "$W/served.boa" &&
   client --local compress "$W/sampled.bin" -m "$W/m.boam" --device cpu -o "$W/cpu.boa" &&
   client --local decompress "$W/served.boa" -m "$W/m.boam" --device cpu -o "$W/back-cpu.bin" &&
   client --server "$addr" -v decompress "$W/cpu.boa" -o "$W/back-served.bin"; then
  client --server "$addr" status
  if cmp "$W/served.boa" "$W/cpu.boa" && cmp "$W/back-cpu.bin" "$W/sampled.bin" && cmp "$W/back-served.bin" "$W/sampled.bin"; then
    if "$B/boa-client" --local info "$W/served.boa" | grep -q "(0 model-coded"; then
      echo "boad on $DEVICE: no chunk was model-coded: the check did not exercise the network"
    else
      echo "boad on $DEVICE: the same .boa as the CPU in this process, and each decodes the other's"; rc=0
    fi
  else
    echo "boad on $DEVICE: the .boa or its decoding DIFFERS from the CPU's"
  fi
fi
kill "$boad_pid" 2> /dev/null; wait "$boad_pid" 2> /dev/null
timeout 120 "$B/boad-bench" --boad "$B/boad" --devices "$DEVICE" | tee "$TABLE"
[ "${PIPESTATUS[0]}" = 0 ] || rc=1
exit $rc
