# shellcheck shell=bash
# Helpers sourced by the scripts in this directory (not meant to be run on its own).

YA_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
# shellcheck source=scripts/versions.env
. "$YA_REPO_ROOT/scripts/versions.env"

ya_log() { printf '[%s] %s\n' "${YA_LOG_TAG:-yoloanonymize}" "$*"; }
ya_warn() { printf '[%s] WARNING: %s\n' "${YA_LOG_TAG:-yoloanonymize}" "$*" >&2; }
ya_die() {
    printf '[%s] ERROR: %s\n' "${YA_LOG_TAG:-yoloanonymize}" "$*" >&2
    exit 1
}

# ya_version_ge A B: true when version A >= version B.
ya_version_ge() {
    [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]
}

# Version of the rustc found on PATH (e.g. 1.95.0), or nothing.
ya_rustc_version() {
    local v
    v=$("${RUSTC:-rustc}" --version 2>/dev/null | awk '{print $2}') || return 0
    printf '%s' "${v%%-*}"
}

# Make sure cargo and a rustc >= RUST_MIN_VERSION are on PATH, looking in ~/.cargo/bin (rustup's
# default) too; exits with instructions otherwise. Exports PATH when it has to change it.
ya_require_rust() {
    local cargo_bin="${CARGO_HOME:-${HOME:-/nonexistent}/.cargo}/bin"
    local hint="yoloanonymize needs Rust >= ${RUST_MIN_VERSION} with cargo (Debian 12's own rustc 1.63 is too old). Install it with rustup (https://rustup.rs): curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal, then run '. \"\$HOME/.cargo/env\"' or open a new shell."
    local ver
    ver=$(ya_rustc_version)
    if { ! command -v cargo >/dev/null 2>&1 || [[ -z "$ver" ]] || ! ya_version_ge "$ver" "$RUST_MIN_VERSION"; } &&
        [[ -x "$cargo_bin/cargo" && -x "$cargo_bin/rustc" ]]; then
        PATH="$cargo_bin:$PATH"
        export PATH
        ver=$(ya_rustc_version)
    fi
    command -v cargo >/dev/null 2>&1 || ya_die "cargo not found on PATH or in $cargo_bin. $hint"
    [[ -n "$ver" ]] || ya_die "rustc not found (or not working) on PATH or in $cargo_bin. $hint"
    ya_version_ge "$ver" "$RUST_MIN_VERSION" ||
        ya_die "found rustc $ver at $(command -v "${RUSTC:-rustc}"), which is too old. $hint"
}
