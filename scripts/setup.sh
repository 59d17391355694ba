#!/usr/bin/env bash
# One-stop set-up for building and running yoloanonymize on Debian 12 (or a close relative).
# Safe to run again: whatever is already in place is left alone.
#   1. installs the Debian packages it needs that are missing (apt-get; sudo when not root)
#   2. checks for Rust >= RUST_MIN_VERSION (cargo on PATH or in ~/.cargo/bin)
#   3. installs the ONNX Runtime CPU library into .deps/onnxruntime/ and its OpenVINO build (faster
#      on the CPU; preferred by the element) into .deps/onnxruntime-openvino/ (scripts/fetch-ort.sh)
#   4. checks the bundled model
#   5. builds the plugin: cargo build --release -> target/release/libgstyoloanonymize.so
# After this, nothing needs to be exported: the plugin finds .deps/onnxruntime/libonnxruntime.so
# by itself (ORT_DYLIB_PATH still overrides it).
#
# Environment:
#   YOLOANONYMIZE_SKIP_APT=1    do not check or install Debian packages (non-Debian systems)
#   YOLOANONYMIZE_SKIP_BUILD=1  stop before cargo build
#   YOLOANONYMIZE_DEPS_DIR      where ONNX Runtime goes (default <repo>/.deps)
set -euo pipefail

YA_LOG_TAG=setup
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

case "${1:-}" in
-h | --help)
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
"") ;;
*) ya_die "unknown argument: $1 (try --help)" ;;
esac

# --- 1. Debian packages ----------------------------------------------------------------------
DEB_PACKAGES=(
    pkg-config
    build-essential
    libgstreamer1.0-dev
    libgstreamer-plugins-base1.0-dev
    gstreamer1.0-tools
    gstreamer1.0-plugins-base
    gstreamer1.0-plugins-base-apps # gst-discoverer-1.0, used by scripts/quickstart.sh
    gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly
    gstreamer1.0-libav
    libgstrtspserver-1.0-dev # gstreamer-rtsp-server crate: tests/rtsp.rs, examples/rtsp-serve.rs
    python3
    python3-pip
    python3-gi                  # examples/embed.py (PyGObject), run by tests/examples.rs
    gir1.2-gstreamer-1.0        # its Gst typelib
    gir1.2-gst-plugins-base-1.0 # its GstVideo and GstApp typelibs
    meson
    ninja-build
    ca-certificates
)
# pkg-config modules the Rust crates link against (gstreamer-check-1.0 ships in libgstreamer1.0-dev).
PKG_CONFIG_MODULES=(gstreamer-1.0 gstreamer-base-1.0 gstreamer-video-1.0 gstreamer-app-1.0 gstreamer-check-1.0 gstreamer-rtsp-server-1.0)
GST_MIN_VERSION=1.22

if [[ "${YOLOANONYMIZE_SKIP_APT:-0}" == 1 ]]; then
    ya_log "YOLOANONYMIZE_SKIP_APT=1: not checking Debian packages."
else
    command -v dpkg-query >/dev/null 2>&1 ||
        ya_die "dpkg-query not found: this script installs Debian packages. On another system install the equivalents of: ${DEB_PACKAGES[*]}; then rerun with YOLOANONYMIZE_SKIP_APT=1."
    missing=()
    for pkg in "${DEB_PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        ya_log "Debian packages: all ${#DEB_PACKAGES[@]} present."
    else
        ya_log "Debian packages missing: ${missing[*]}"
        if [[ $(id -u) == 0 ]]; then
            as_root=()
        elif command -v sudo >/dev/null 2>&1; then
            as_root=(sudo)
            # Without a terminal sudo cannot ask for a password: fail fast instead of hanging.
            [[ -t 0 ]] || as_root=(sudo -n)
        else
            ya_die "not root and sudo is not available; as root run: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
        fi
        export DEBIAN_FRONTEND=noninteractive
        "${as_root[@]}" apt-get update ||
            ya_die "apt-get update failed; install these packages yourself: ${missing[*]}"
        "${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}" ||
            ya_die "apt-get install failed; install these packages yourself: ${missing[*]}"
        ya_log "Installed: ${missing[*]}"
    fi
fi

command -v pkg-config >/dev/null 2>&1 || ya_die "pkg-config not found (Debian package pkg-config)."
for mod in "${PKG_CONFIG_MODULES[@]}"; do
    pkg-config --exists "$mod" ||
        ya_die "pkg-config cannot find $mod (Debian: libgstreamer1.0-dev, libgstreamer-plugins-base1.0-dev and libgstrtspserver-1.0-dev)."
done
pkg-config --atleast-version="$GST_MIN_VERSION" gstreamer-1.0 ||
    ya_die "GStreamer >= $GST_MIN_VERSION is needed, found $(pkg-config --modversion gstreamer-1.0)."
ya_log "GStreamer $(pkg-config --modversion gstreamer-1.0) development files present (${PKG_CONFIG_MODULES[*]})."

# --- 2. Rust ---------------------------------------------------------------------------------
ya_require_rust
ya_log "Rust: $(rustc --version) at $(command -v rustc); $(cargo --version)."

# --- 3. ONNX Runtime -------------------------------------------------------------------------
bash "$YA_REPO_ROOT/scripts/fetch-ort.sh"
bash "$YA_REPO_ROOT/scripts/fetch-ort.sh" --openvino

# --- 4. Model --------------------------------------------------------------------------------
model=$YA_REPO_ROOT/models/$MODEL_FILE
[[ -f "$model" ]] || ya_die "$model is missing (it is part of the repository; see models/README.md)."
[[ "$(sha256sum "$model" | cut -d' ' -f1)" == "$MODEL_SHA256" ]] ||
    ya_die "$model does not have the expected sha256 $MODEL_SHA256 (a Git LFS pointer or a damaged checkout?)."
ya_log "Model present: models/$MODEL_FILE (sha256 OK)."
fp16=$YA_REPO_ROOT/models/$MODEL_FP16_FILE
[[ -f "$fp16" && "$(sha256sum "$fp16" | cut -d' ' -f1)" == "$MODEL_FP16_SHA256" ]] ||
    ya_die "$fp16 is missing or does not have the expected sha256 $MODEL_FP16_SHA256 (half-precision uses it; models/make-fp16.sh remakes it)."
face=$YA_REPO_ROOT/models/$FACE_MODEL_FILE
[[ -f "$face" && "$(sha256sum "$face" | cut -d' ' -f1)" == "$FACE_MODEL_SHA256" ]] ||
    ya_die "$face is missing or does not have the expected sha256 $FACE_MODEL_SHA256 (the face detector; models/make-yunet-dynamic.sh remakes it)."
face_int8=$YA_REPO_ROOT/models/$FACE_MODEL_INT8_FILE
[[ -f "$face_int8" && "$(sha256sum "$face_int8" | cut -d' ' -f1)" == "$FACE_MODEL_INT8_SHA256" ]] ||
    ya_die "$face_int8 is missing or does not have the expected sha256 $FACE_MODEL_INT8_SHA256 (the face detector's int8 variant; models/quantize-face-nncf.sh remakes it)."
int8=$YA_REPO_ROOT/models/$MODEL_INT8_FILE
[[ -f "$int8" && "$(sha256sum "$int8" | cut -d' ' -f1)" == "$MODEL_INT8_SHA256" ]] ||
    ya_die "$int8 is missing or does not have the expected sha256 $MODEL_INT8_SHA256 (precision=int8 and auto on OpenVINO use it; models/quantize-nncf.sh remakes it)."

# --- 5. Build --------------------------------------------------------------------------------
if [[ "${YOLOANONYMIZE_SKIP_BUILD:-0}" == 1 ]]; then
    ya_log "YOLOANONYMIZE_SKIP_BUILD=1: not building."
else
    ya_log "Building the plugin: cargo build --release"
    (cd "$YA_REPO_ROOT" && cargo build --release)
    plugin=$YA_REPO_ROOT/target/release/libgstyoloanonymize.so
    [[ -f "$plugin" ]] || ya_die "cargo build finished but $plugin is missing."
    ya_log "Plugin: $plugin"
    ya_log "Try it: GST_PLUGIN_PATH=$YA_REPO_ROOT/target/release gst-inspect-1.0 yoloanonymize"
fi
ya_log "Set-up complete."
