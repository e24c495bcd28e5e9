#!/usr/bin/env bash
# Generates experiments/jets/jets.f32: ROWS jets x 24 float32 features (default 20 000 rows,
# 1.9 MB), deterministic for a given seed.
set -euo pipefail
cd "$(dirname "$0")"
BIN=${BIN:-../../build}
"$BIN/boa-sample-data" --rows "${ROWS:-20000}" --seed "${SEED:-1}" -o jets.f32
