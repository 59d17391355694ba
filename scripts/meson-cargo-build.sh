#!/usr/bin/env bash
# Called by meson.build's custom_target: builds the plugin with cargo in release mode and copies it
# to the path meson expects. Environment set by meson: CARGO_TARGET_DIR, YOLOANONYMIZE_ORT_LIB,
# YOLOANONYMIZE_MODEL_DIR (baked into the plugin at compile time).
# Usage: meson-cargo-build.sh CARGO SOURCE_DIR OUTPUT [extra cargo build args...]
set -euo pipefail
(($# >= 3)) || { echo "usage: $0 CARGO SOURCE_DIR OUTPUT [cargo args...]" >&2; exit 2; }
cargo=$1 src=$2 out=$3
shift 3
: "${CARGO_TARGET_DIR:?CARGO_TARGET_DIR must be set}"
echo "meson-cargo-build: YOLOANONYMIZE_ORT_LIB=${YOLOANONYMIZE_ORT_LIB:-} YOLOANONYMIZE_MODEL_DIR=${YOLOANONYMIZE_MODEL_DIR:-} CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
"$cargo" build --release --manifest-path "$src/Cargo.toml" "$@"
built=$CARGO_TARGET_DIR/release/libgstyoloanonymize.so
[[ -f "$built" ]] || { echo "meson-cargo-build: cargo did not produce $built" >&2; exit 1; }
# Copy only when it changed, so that an up-to-date build does not touch the output.
if ! cmp -s "$built" "$out"; then
    cp -f "$built" "$out.tmp"
    mv -f "$out.tmp" "$out"
fi
