#!/usr/bin/env bash
# Called by meson.build's custom_target: builds the plugin with cargo in release mode and copies it
# to the path meson expects. Environment set by meson: CARGO_TARGET_DIR, YOLOANONYMIZE_ORT_LIB,
# YOLOANONYMIZE_MODEL_DIR (baked into the plugin at compile time).
# Usage: meson-cargo-build.sh CARGO SOURCE_DIR OUTPUT [extra cargo build args...]
set -euo pipefail
YA_LOG_TAG=meson-cargo-build
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
(($# >= 3)) || { echo "usage: $0 CARGO SOURCE_DIR OUTPUT [cargo args...]" >&2; exit 2; }
cargo=$1 src=$2 out=$3
shift 3
: "${CARGO_TARGET_DIR:?CARGO_TARGET_DIR must be set}"
log "YOLOANONYMIZE_ORT_LIB=${YOLOANONYMIZE_ORT_LIB:-} YOLOANONYMIZE_MODEL_DIR=${YOLOANONYMIZE_MODEL_DIR:-} CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
"$cargo" build --release --manifest-path "$src/Cargo.toml" "$@"
built=$CARGO_TARGET_DIR/release/libgstyoloanonymize.so
[[ -f "$built" ]] || die "cargo did not produce $built"
# Copy only when it changed, so that an up-to-date build does not touch the output.
if ! cmp -s "$built" "$out"; then
    cp -f "$built" "$out.tmp"
    mv -f "$out.tmp" "$out"
fi
