#!/usr/bin/env bash
# Runs the test suite: scripts/setup.sh (packages, Rust check, ONNX Runtime, release build), the
# style checks (`cargo fmt --check`, `cargo clippy --all-targets -- -D warnings`), then
# `cargo test --release --all-targets` so that the tests share the release build, with
# GST_PLUGIN_PATH pointing at target/release. Extra arguments go to cargo test, e.g.
#   scripts/test.sh -- --nocapture
#   scripts/test.sh --test element
set -euo pipefail

YA_LOG_TAG="test"
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bash "$YA_REPO_ROOT/scripts/setup.sh"
ya_require_rust # setup.sh ran in a child process: redo the PATH lookup for cargo here

export GST_PLUGIN_PATH="$YA_REPO_ROOT/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
cd "$YA_REPO_ROOT"
if [[ "${YOLOANONYMIZE_SKIP_LINT:-0}" != 1 ]]; then
    for tool in fmt clippy; do
        cargo "$tool" --version >/dev/null 2>&1 ||
            ya_die "cargo $tool is missing: rustup component add rustfmt clippy (or set YOLOANONYMIZE_SKIP_LINT=1 to skip the style checks)"
    done
    ya_log "Running: cargo fmt --check"
    cargo fmt --check || ya_die "cargo fmt --check failed: run cargo fmt (or set YOLOANONYMIZE_SKIP_LINT=1 to skip the style checks)"
    # Release profile: clippy then shares the dependencies' build with the tests.
    ya_log "Running: cargo clippy --release --all-targets -- -D warnings"
    cargo clippy --release --all-targets -- -D warnings ||
        ya_die "cargo clippy found warnings (see above)"
fi
ya_log "GST_PLUGIN_PATH=$GST_PLUGIN_PATH"
ya_log "Running: cargo test --release --all-targets $*"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --release --all-targets "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# The Ray runner's tests (scale/ray; a three-node Ray cluster on this machine), unless cargo test
# was given arguments; their "test result:" line joins the total below.
if (($# == 0)); then
    bash "$YA_REPO_ROOT/scripts/test-ray.sh" 2>&1 | tee -a "$log"
    ray_rc=${PIPESTATUS[0]}
    ((rc != 0)) || rc=$ray_rc
fi
set -e
# One closing line over every test binary (cargo prints one "test result" line per binary, and
# the last ones are binaries without tests).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;/) p += $i; if ($(i+1) ~ /^failed;/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$rc"
