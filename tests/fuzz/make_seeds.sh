#!/usr/bin/env bash
# Writes the seed corpora under tests/fuzz/corpus/ (committed; run again after a format
# change): .boa streams and model files made by boa-client, configuration files from the
# repository, and request sequences for request_fuzz (first byte: the RPC; then messages,
# each a 2-byte little-endian length and protobuf bytes).
#   tests/fuzz/make_seeds.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")"
BUILD=$(cd "../../${1:-build}" && pwd)
C="$BUILD/client/boa-client"
rm -rf corpus && mkdir -p corpus/{container_fuzz,decode_fuzz,model_fuzz,checkpoint_fuzz,config_fuzz,request_fuzz}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$C" model init --d-model 8 --layers 1 --seed 1 -o "$tmp/small.boam" -q
"$C" model init --d-model 8 --layers 1 --seed 2 --dtype f16 -o "$tmp/half.boam" -q
cp "$tmp/small.boam" corpus/model_fuzz/f32.boam
cp "$tmp/half.boam" corpus/model_fuzz/f16.boam
head -c 0 /dev/null > "$tmp/empty"
printf 'x' > "$tmp/one"
head -c 700 /dev/zero > "$tmp/zeros"
"$BUILD/boa-sample-data" --rows 10 --seed 3 -o "$tmp/table" > /dev/null
for f in empty one zeros table; do
  "$C" --local compress "$tmp/$f" -m "$tmp/small.boam" --chunk-size 256 -o "$tmp/$f.boa" -q -f
  cp "$tmp/$f.boa" "corpus/container_fuzz/$f.boa"
  cp "$tmp/$f.boa" "corpus/decode_fuzz/$f.boa"
done
cp ../data/*.pt corpus/checkpoint_fuzz/ 2>/dev/null || true
cp ../../deploy/boad.yaml corpus/config_fuzz/boad.yaml
cp ../../experiments/jets/jets.yaml corpus/config_fuzz/experiment.yaml
printf 'tokens:\n  - name: a\n    sha256: %s\n    roles: [read, write]\ncertificates:\n  - identity: "*"\n    roles: [read]\n' \
  "$(printf '%064d' 0)" > corpus/config_fuzz/tokens.yaml
python3 - "$tmp/table.boa" "$tmp/small.boam" <<'PY'
import struct, sys
def varint(n):
    out = b""
    while True:
        b = n & 0x7f; n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n: return out
def field(num, wire, payload):
    key = varint(num << 3 | wire)
    return key + (varint(len(payload)) + payload if wire == 2 else varint(payload))
def msgs(*ms): return b"".join(struct.pack("<H", len(m)) + m for m in ms)
boa = open(sys.argv[1], "rb").read()
model = open(sys.argv[2], "rb").read()
def opts(chunk=0):
    return field(1, 2, b"m") + (field(2, 0, chunk) if chunk else b"")
seeds = {
  "compress": bytes([0]) + msgs(field(1, 2, opts(chunk=256)), field(2, 2, b"hello world" * 20)),
  "compress_no_options": bytes([0]) + msgs(field(2, 2, b"data first")),
  "decompress": bytes([1]) + msgs(field(2, 2, boa[:300]), field(2, 2, boa[300:])),
  "decompress_options": bytes([1]) + msgs(field(1, 2, field(1, 2, b"m") + field(3, 0, 1)), field(2, 2, boa)),
  "verify": bytes([2]) + msgs(field(2, 2, boa)),
  "eval": bytes([3]) + msgs(field(1, 2, opts()), field(2, 2, b"abcabcabc" * 30)),
  "upload_head": bytes([4]) + msgs(field(1, 2, field(1, 2, b"up")), field(2, 2, model[:1500])),
  "get": bytes([5]) + msgs(field(1, 2, b"m:1")),
  "train": bytes([6]) + msgs(field(1, 2, b"t") + field(2, 2, b"a.bin") + field(3, 0, 8) + field(4, 0, 1)),
}
for name, data in seeds.items():
    open(f"corpus/request_fuzz/{name}", "wb").write(data)
PY
echo "seeds: $(find corpus -type f | wc -l) files, $(du -sh corpus | cut -f1)"
