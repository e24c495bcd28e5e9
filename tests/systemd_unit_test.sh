#!/usr/bin/env bash
# deploy/systemd/boad.service: `systemd-analyze verify` accepts it without a single warning
# (with ExecStart pointed at the boad just built), and it waits longer on stop than boad
# drains (TimeoutStopSec > drain_seconds of deploy/boad.yaml).
set -euo pipefail
boad=$1 unit=$2 config=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/local/bin/boad|$boad|" "$unit" > "$tmp/boad.service"
if ! out=$(systemd-analyze verify "$tmp/boad.service" 2>&1) || [ -n "$out" ]; then
  echo "systemd-analyze verify: $out"
  exit 1
fi
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)$/\1/p' "$unit")
drain=$(sed -n 's/^drain_seconds: *\([0-9]*\).*/\1/p' "$config")
if [ -z "$stop" ] || [ -z "$drain" ] || [ "$stop" -le "$drain" ]; then
  echo "TimeoutStopSec ($stop) must exceed drain_seconds ($drain)"
  exit 1
fi
echo "boad.service verified; TimeoutStopSec $stop > drain_seconds $drain"
