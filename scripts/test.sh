#!/usr/bin/env bash
# Runs the test suite: scripts/setup.sh (packages, Rust check, ONNX Runtime, release build), then
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
ya_log "GST_PLUGIN_PATH=$GST_PLUGIN_PATH"
ya_log "Running: cargo test --release --all-targets $*"
exec cargo test --release --all-targets "$@"
