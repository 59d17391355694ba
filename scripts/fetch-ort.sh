#!/usr/bin/env bash
# Installs the ONNX Runtime shared library that yoloanonymize loads at run time, taken from the
# official PyPI wheel (pinned in scripts/versions.env and checked against its sha256), into
# <deps>/onnxruntime/ (default <repo>/.deps/onnxruntime/):
#   libonnxruntime.so.<version>, libonnxruntime.so.1 and libonnxruntime.so (symlinks),
#   libonnxruntime_providers_shared.so, LICENSE, ThirdPartyNotices.txt, .stamp
# With --openvino: the onnxruntime-openvino wheel into <deps>/onnxruntime-openvino/, with the
# OpenVINO execution provider and OpenVINO's own libraries (every lib*.so* of the wheel).
# Does nothing when that is already in place with the recorded content.
#
# Usage: scripts/fetch-ort.sh [--openvino] [--force]
# Environment: YOLOANONYMIZE_DEPS_DIR  where to put wheels/ and onnxruntime/ (default <repo>/.deps)
#              PYTHON                  Python interpreter with pip (default python3)
set -euo pipefail

YA_LOG_TAG=fetch-ort
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

force=0
flavour=onnxruntime
for arg in "$@"; do
    case "$arg" in
    --force) force=1 ;;
    --openvino)
        flavour=onnxruntime-openvino
        ORT_VERSION=$ORT_OPENVINO_VERSION ORT_WHEEL=$ORT_OPENVINO_WHEEL ORT_WHEEL_SHA256=$ORT_OPENVINO_WHEEL_SHA256
        ;;
    -h | --help)
        sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) ya_die "unknown argument: $arg (try --help)" ;;
    esac
done

deps_dir=${YOLOANONYMIZE_DEPS_DIR:-$YA_REPO_ROOT/.deps}
wheel_dir=$deps_dir/wheels
ort_dir=$deps_dir/$flavour
lib_name=libonnxruntime.so.$ORT_VERSION
stamp=$ort_dir/.stamp
python=${PYTHON:-python3}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
stamp_value() { sed -n "s/^$1=//p" "$stamp" 2>/dev/null | head -n1; }

# True when ort_dir holds what a previous run extracted from the pinned wheel, unchanged.
installed_ok() {
    [[ -f "$ort_dir/$lib_name" && -f "$ort_dir/libonnxruntime_providers_shared.so" &&
        -f "$ort_dir/LICENSE" && -f "$stamp" ]] || return 1
    [[ -L "$ort_dir/libonnxruntime.so" && "$(readlink "$ort_dir/libonnxruntime.so")" == "$lib_name" ]] || return 1
    [[ -L "$ort_dir/libonnxruntime.so.1" && "$(readlink "$ort_dir/libonnxruntime.so.1")" == "$lib_name" ]] || return 1
    [[ "$(stamp_value wheel_sha256)" == "$ORT_WHEEL_SHA256" ]] || return 1
    [[ "$(stamp_value lib_sha256)" == "$(sha256_of "$ort_dir/$lib_name")" ]] || return 1
    [[ "$(stamp_value providers_shared_sha256)" == "$(sha256_of "$ort_dir/libonnxruntime_providers_shared.so")" ]] || return 1
}

if [[ $force == 0 ]] && installed_ok; then
    ya_log "ONNX Runtime $ORT_VERSION already present in $ort_dir (content matches $stamp); nothing to do."
    exit 0
fi
if [[ -e "$ort_dir/$lib_name" ]]; then
    ya_log "ONNX Runtime in $ort_dir is incomplete, modified or from another wheel; reinstalling it."
fi

command -v sha256sum >/dev/null 2>&1 || ya_die "sha256sum not found (package coreutils)."
command -v "$python" >/dev/null 2>&1 || ya_die "$python not found; install python3 and python3-pip (or set PYTHON)."

wheel_ok() { (cd "$wheel_dir" && printf '%s  %s\n' "$ORT_WHEEL_SHA256" "$ORT_WHEEL" | sha256sum -c --quiet --status -); }

mkdir -p "$wheel_dir"
if [[ -f "$wheel_dir/$ORT_WHEEL" ]] && wheel_ok; then
    ya_log "Using the cached wheel $wheel_dir/$ORT_WHEEL (sha256 OK)."
else
    rm -f "$wheel_dir/$ORT_WHEEL"
    "$python" -m pip --version >/dev/null 2>&1 ||
        ya_die "'$python -m pip' does not work; install pip (Debian: apt-get install python3-pip)."
    ya_log "Downloading $ORT_WHEEL from PyPI with pip ..."
    pip_download() {
        # A download installs nothing, so PEP 668 ("externally-managed-environment") does not apply;
        # a user-wide PIP_REQUIRE_VIRTUALENV=1 would still refuse it, so lift that for this call.
        PIP_REQUIRE_VIRTUALENV=false PIP_DISABLE_PIP_VERSION_CHECK=1 "$@" "$python" -m pip download \
            --no-deps --only-binary=:all: --progress-bar off \
            --platform "$ORT_WHEEL_PLATFORM" --python-version "$ORT_WHEEL_PYTHON_VERSION" \
            --implementation "$ORT_WHEEL_IMPLEMENTATION" \
            "$flavour==$ORT_VERSION" -d "$wheel_dir"
    }
    if ! pip_out=$(pip_download env 2>&1); then
        if grep -qi 'externally-managed-environment' <<<"$pip_out"; then
            ya_log "pip refused because of PEP 668; retrying the download with PIP_BREAK_SYSTEM_PACKAGES=1 (nothing gets installed)."
            pip_out=$(pip_download env PIP_BREAK_SYSTEM_PACKAGES=1 2>&1) ||
                { printf '%s\n' "$pip_out" >&2; ya_die "pip could not download $flavour==$ORT_VERSION."; }
        else
            printf '%s\n' "$pip_out" >&2
            ya_die "pip could not download $flavour==$ORT_VERSION (is https://pypi.org reachable?)."
        fi
    fi
    printf '%s\n' "$pip_out" | sed 's/^/    /'
    [[ -f "$wheel_dir/$ORT_WHEEL" ]] ||
        ya_die "pip did not produce $wheel_dir/$ORT_WHEEL; files there: $(cd "$wheel_dir" && echo *)"
    if ! wheel_ok; then
        got=$(sha256_of "$wheel_dir/$ORT_WHEEL")
        mv -f "$wheel_dir/$ORT_WHEEL" "$wheel_dir/$ORT_WHEEL.rejected"
        ya_die "sha256 mismatch for $ORT_WHEEL: expected $ORT_WHEEL_SHA256, got $got. The file was moved to $wheel_dir/$ORT_WHEEL.rejected and nothing was installed. Check your PyPI mirror/proxy; update scripts/versions.env only if you trust the new file."
    fi
    ya_log "sha256 of $ORT_WHEEL verified."
fi

# Extract into a temporary directory next to the destination, then swap it in.
tmp_dir=$(mktemp -d "$deps_dir/$flavour.tmp.XXXXXX")
trap 'rm -rf "$tmp_dir"' EXIT
"$python" - "$wheel_dir/$ORT_WHEEL" "$tmp_dir" "$lib_name" <<'PY'
import os, shutil, sys, zipfile

wheel, dest, lib_name = sys.argv[1:4]
members = {
    "onnxruntime/capi/" + lib_name: (lib_name, 0o755),
    "onnxruntime/capi/libonnxruntime_providers_shared.so": ("libonnxruntime_providers_shared.so", 0o755),
    "onnxruntime/LICENSE": ("LICENSE", 0o644),
    "onnxruntime/ThirdPartyNotices.txt": ("ThirdPartyNotices.txt", 0o644),
}
with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
    # Every other shared library of the wheel (execution providers, OpenVINO and its plugins,
    # which find each other through their $ORIGIN rpath); not the Python module.
    for n in names:
        base = n.rsplit("/", 1)[-1]
        if n.startswith("onnxruntime/capi/lib") and ".so" in base and n not in members:
            members[n] = (base, 0o755)
    missing = [m for m in members if m not in names]
    if missing:
        sys.exit("fetch-ort: not in the wheel: " + ", ".join(missing))
    for member, (name, mode) in members.items():
        path = os.path.join(dest, name)
        with z.open(member) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.chmod(path, mode)
PY
ln -s "$lib_name" "$tmp_dir/libonnxruntime.so"
ln -s "$lib_name" "$tmp_dir/libonnxruntime.so.1" # the library's SONAME
{
    echo "# written by scripts/fetch-ort.sh; used to skip the download when nothing changed"
    echo "ort_version=$ORT_VERSION"
    echo "wheel=$ORT_WHEEL"
    echo "wheel_sha256=$ORT_WHEEL_SHA256"
    echo "lib_sha256=$(sha256_of "$tmp_dir/$lib_name")"
    echo "providers_shared_sha256=$(sha256_of "$tmp_dir/libonnxruntime_providers_shared.so")"
} >"$tmp_dir/.stamp"
chmod 755 "$tmp_dir"
rm -rf "$ort_dir"
mv "$tmp_dir" "$ort_dir"
trap - EXIT
ya_log "Installed ONNX Runtime $ORT_VERSION ($flavour) into $ort_dir (libonnxruntime.so -> $lib_name)."
