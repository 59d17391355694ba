#!/usr/bin/env bash
# Builds models/yolo11n-pose-int8.onnx, a static int8 (QDQ) quantization of
# models/yolo11n-pose-dynamic.onnx, with ONNX Runtime's own quantization tools, calibrated on
# OpenCV's vtest.avi; optionally measures its speed and accuracy against the fp32 model.
# See models/README-int8.md for the results and for why the variant is what it is.
#
#   1. creates a virtualenv in WORKDIR with onnxruntime (the version the element links,
#      scripts/versions.env), onnx, numpy and sympy, all pinned;
#   2. decodes vtest.avi (sha256 checked) with GStreamer to raw 640x480 RGB frames (768x576
#      letterboxes to exactly 640x480, no padding): WORKDIR/vtest-640x480.rgb, 733 MB;
#   3. quant_pre_process (symbolic shape inference + ORT basic optimizations), then
#      quantize_static: QDQ, weights QInt8 per channel, activations per VARIANT, calibrated on 100
#      frames spread over the clip (frames 0, 8, 16, ..., 792, at 640x480, batch 1);
#   4. checks that the result loads in ONNX Runtime with the fp32 model's input/output names and
#      dynamic shapes, and writes OUTPUT;
#   5. with CHECK=1: the speed comparison (200 frames, batch 4, 2 intra-op threads, graph
#      optimization ALL, median of 3 passes interleaved batch by batch) and the accuracy
#      comparison on all 795 frames (persons and confident eyes of fp32 found again by int8).
#      The results go to stdout and to WORKDIR/bench.json and WORKDIR/eval-WxH.json.
#
# Usage: models/quantize-int8.sh [OUTPUT]       (default: models/yolo11n-pose-int8.onnx)
# Environment:
#   WORKDIR    work directory, kept afterwards (default /tmp/yoloanonymize-quant)
#   VARIANT    a name from `quantize_int8.py variants` (default: the one README-int8.md chose)
#   YOLOANONYMIZE_VTEST (or VTEST_AVI)  vtest.avi to use (default: ../shared/media/vtest.avi
#              beside the repository, else /work/shared/media/vtest.avi, else apt-get download
#              opencv-doc, as samples/make-sample.sh does; scripts/common.sh's ya_find_vtest)
#   CHECK=1    also run the benchmark and the accuracy check (about 2 minutes on 2 quiet cores)
#   COMPARE    with CHECK=1: more variants to build (WORKDIR/int8-VARIANT.onnx) and measure in
#              the same runs, e.g. COMPARE="minmax-u8-headfinal-attn minmax-u8-mixed-b"
#   EVAL_SIZES with CHECK=1: frame sizes for the accuracy check (default 640x480; README-int8.md
#              also used 768x576 and 512x384, decoded the same way, as held-out checks)
#   PYTHON     interpreter for the virtualenv (default python3; needs the venv module)
# Needs gst-launch-1.0 with avdec_msmpeg4 (gstreamer1.0-libav), videoconvert and videoscale.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
YA_LOG_TAG=quantize-int8
# shellcheck source=scripts/common.sh
. "$here/../scripts/common.sh" # log, die, ya_find_vtest; ORT_VERSION, VTEST_DEB_VERSION, VTEST_SHA256

# shellcheck source=models/tools.sh
. "$here/tools.sh" # PIP_PINS, ensure_venv, find_vtest, decode_frames
DEFAULT_VARIANT=minmax-u8-mixed-a
FRAMES=795

output=$(realpath -m "${1:-$here/yolo11n-pose-int8.onnx}")
work=${WORKDIR:-/tmp/yoloanonymize-quant}
variant=${VARIANT:-$DEFAULT_VARIANT}
python=${PYTHON:-python3}
fp32=$here/$MODEL_FILE
mkdir -p "$work"
work=$(cd "$work" && pwd -P)
log "Working in $work, variant $variant"

[[ "$(sha256sum "$fp32" | cut -d' ' -f1)" == "$MODEL_SHA256" ]] ||
    die "$fp32 does not have the expected sha256 $MODEL_SHA256."

# --- 1. virtualenv ---------------------------------------------------------------------------
venv=$work/venv
ensure_venv "$venv" "$python"

# --- 2. frames -------------------------------------------------------------------------------
decode_frames 640x480
frames=$work/vtest-640x480.rgb

# --- 3./4. quantize --------------------------------------------------------------------------
q=("$venv/bin/python" "$here/quantize_int8.py")
# quant_pre_process writes scratch files into the current directory: run it in the work dir.
(cd "$work" && "${q[@]}" quantize --model "$fp32" --frames "$frames" --workdir "$work" \
    --variant "$variant" --output "$work/int8-$variant.onnx")
mkdir -p "$(dirname "$output")"
cp "$work/int8-$variant.onnx" "$output"
log "Wrote $output ($(stat -c %s "$output") bytes, sha256 $(sha256sum "$output" | cut -d' ' -f1))"

# --- 5. checks -------------------------------------------------------------------------------
if [[ "${CHECK:-0}" == 1 ]]; then
    models=("$output")
    for v in ${COMPARE:-}; do
        (cd "$work" && "${q[@]}" quantize --model "$fp32" --frames "$frames" --workdir "$work" \
            --variant "$v" --output "$work/int8-$v.onnx")
        models+=("$work/int8-$v.onnx")
    done
    log "Speed, fp32 vs int8 (200 frames 640x480, batch 4, 2 threads, median of 3 passes):"
    "${q[@]}" bench --frames "$frames" --json "$work/bench.json" "$fp32" "${models[@]}"
    for size in ${EVAL_SIZES:-640x480}; do
        decode_frames "$size"
        log "Accuracy against fp32, all $FRAMES frames at $size:"
        "${q[@]}" eval --size "$size" --frames "$work/vtest-$size.rgb" --ref "$fp32" \
            --ref-cache "$work/ref-fp32-$size.pkl" --json "$work/eval-$size.json" "${models[@]}"
    done
fi
