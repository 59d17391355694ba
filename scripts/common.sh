# shellcheck shell=bash
# Helpers sourced by the shell scripts of scripts/, benches/, models/ and samples/ (not meant to
# be run on its own): the repository's root (YA_REPO_ROOT), the pinned versions
# (scripts/versions.env), messages (log, warn, die), finding vtest.avi (ya_find_vtest) and the
# Rust toolchain check.

YA_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
# shellcheck source=scripts/versions.env
. "$YA_REPO_ROOT/scripts/versions.env"

# Messages, one line each, tagged "[TAG]" with TAG = $YA_LOG_TAG (set it before sourcing this
# file; default yoloanonymize). With YA_LOG_T0 set to a $SECONDS value the tag also gives the
# seconds since then: "[TAG  42s]".
#   log MESSAGE...   on stdout, or on stderr where YA_LOG_FD=2 (scripts whose stdout is a result)
#   warn MESSAGE...  "[TAG] WARNING: MESSAGE" on stderr
#   die MESSAGE...   "[TAG] ERROR: MESSAGE" on stderr, then exit 1
# ya_log, ya_warn and ya_die are the same (a script may redefine log, as setup-ray.sh does, on
# top of ya_log).
ya_log_tag() {
    if [[ -n "${YA_LOG_T0:-}" ]]; then
        printf '%s %3ds' "${YA_LOG_TAG:-yoloanonymize}" $((SECONDS - YA_LOG_T0))
    else
        printf '%s' "${YA_LOG_TAG:-yoloanonymize}"
    fi
}
ya_log() { printf '[%s] %s\n' "$(ya_log_tag)" "$*" >&"${YA_LOG_FD:-1}"; }
ya_warn() { printf '[%s] WARNING: %s\n' "$(ya_log_tag)" "$*" >&2; }
ya_die() {
    printf '[%s] ERROR: %s\n' "$(ya_log_tag)" "$*" >&2
    exit 1
}
log() { ya_log "$@"; }
warn() { ya_warn "$@"; }
die() { ya_die "$@"; }

# ya_find_vtest: sets YA_VTEST to OpenCV's vtest.avi (795 frames of 768x576 at 10 frames/s), the
# first of:
#   1. $YOLOANONYMIZE_VTEST, else $VTEST_AVI (the name the model scripts took): dies when set to
#      a path that is not a file
#   2. ../shared/media/vtest.avi beside the repository (<repo>/../shared/media/vtest.avi; in a
#      git worktree, also beside the main working tree)
#   3. /work/shared/media/vtest.avi
# Returns 1, YA_VTEST empty, when none is there. No sha256 check: ya_vtest_checked does one, and
# downloads the file where it is nowhere.
ya_find_vtest() {
    YA_VTEST=""
    local env_name="" candidate main=""
    if [[ -n "${YOLOANONYMIZE_VTEST:-}" ]]; then
        env_name=YOLOANONYMIZE_VTEST
    elif [[ -n "${VTEST_AVI:-}" ]]; then
        env_name=VTEST_AVI
    fi
    if [[ -n "$env_name" ]]; then
        [[ -f "${!env_name}" ]] || ya_die "$env_name=${!env_name} does not exist."
        YA_VTEST=${!env_name}
        return 0
    fi
    # The main working tree of a git worktree: the parent of the common .git directory.
    main=$(git -C "$YA_REPO_ROOT" rev-parse --path-format=absolute --git-common-dir 2>/dev/null) &&
        main=$(dirname "$main") || main=$YA_REPO_ROOT
    for candidate in "$YA_REPO_ROOT/../shared/media/vtest.avi" "$main/../shared/media/vtest.avi" \
        /work/shared/media/vtest.avi; do
        if [[ -f "$candidate" ]]; then
            YA_VTEST=$(cd "$(dirname "$candidate")" && pwd -P)/vtest.avi
            return 0
        fi
    done
    return 1
}

# ya_vtest_checked WORKDIR: ya_find_vtest, else the file from Debian's opencv-doc package
# (VTEST_DEB_VERSION, apt-get download into WORKDIR, WORKDIR/vtest.avi); then dies unless its
# sha256 is VTEST_SHA256. Sets YA_VTEST.
ya_vtest_checked() {
    local work=$1
    if ! ya_find_vtest; then
        ya_log "Downloading opencv-doc=$VTEST_DEB_VERSION with apt-get download ..."
        (cd "$work" && apt-get download "opencv-doc=$VTEST_DEB_VERSION") ||
            ya_die "apt-get download opencv-doc=$VTEST_DEB_VERSION failed (run 'apt-get update' as root, or set YOLOANONYMIZE_VTEST to a copy of vtest.avi)."
        YA_VTEST=$work/vtest.avi
        dpkg-deb --fsys-tarfile "$work"/opencv-doc_*.deb |
            tar -xO ./usr/share/doc/opencv-doc/examples/data/vtest.avi >"$YA_VTEST"
        rm -f "$work"/opencv-doc_*.deb
    fi
    [[ "$(sha256sum "$YA_VTEST" | cut -d' ' -f1)" == "$VTEST_SHA256" ]] ||
        ya_die "$YA_VTEST does not have the expected sha256 $VTEST_SHA256."
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
