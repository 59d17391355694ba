#!/usr/bin/env bash
# Builds models/yolo11n-pose-dynamic-fp16.onnx, a float16 conversion of
# models/yolo11n-pose-dynamic.onnx with float32 input and output, for the element's
# half-precision option (CUDA); optionally measures it against the fp32 model on ONNX Runtime's
# CPU execution provider. See models/README-fp16.md for the results.
#
#   1. creates a virtualenv in WORKDIR with onnxruntime (the version the element links,
#      scripts/versions.env), onnx, numpy and their dependencies, all pinned (the same pins as
#      quantize-int8.sh);
#   2. converts with onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True),
#      twice, and stops unless both runs give the same bytes; checks the result (onnx.checker full
#      check; ONNX Runtime CPU loads it with the fp32 model's input/output names, element types and
#      dynamic dims, and runs it at four input shapes) and writes OUTPUT;
#   3. with CHECK=1: decodes vtest.avi (sha256 checked) with GStreamer to raw 640x480 RGB frames
#      (768x576 letterboxes to exactly 640x480, no padding): WORKDIR/vtest-640x480.rgb, 733 MB;
#      lists the operators ONNX Runtime's CPU EP runs in float32 between inserted casts; runs
#      `quantize_int8.py bench` (fp32 and fp16 side by side: 200 frames, batch 4, 2 intra-op
#      threads, median of 3 passes interleaved batch by batch) and `make_fp16.py eval` (raw output
#      differences, persons and confident eyes of fp32 found again by fp16; the fp16 model in two
#      CPU sessions: ORT_ENABLE_BASIC, where every tensor between operators is rounded to float16,
#      and ORT_ENABLE_ALL, the element's level, where ORT drops many of those round trips).
#      The results go to stdout and to WORKDIR/bench.json and WORKDIR/eval-WxH.json.
#
# Usage: models/make-fp16.sh [OUTPUT]       (default: models/yolo11n-pose-dynamic-fp16.onnx)
# Environment:
#   WORKDIR    work directory, kept afterwards (default /tmp/yoloanonymize-fp16)
#   YOLOANONYMIZE_VTEST (or VTEST_AVI)  vtest.avi to use (default: ../shared/media/vtest.avi
#              beside the repository, else /work/shared/media/vtest.avi, else apt-get download
#              opencv-doc, as samples/make-sample.sh does; scripts/common.sh's ya_find_vtest)
#   CHECK=1    also run the benchmark and the accuracy check (about 2 minutes on 2 quiet cores;
#              4 with the three EVAL_SIZES of README-fp16.md)
#   EVAL_STEP  with CHECK=1: evaluate every EVAL_STEP-th frame (default 1: all 795 frames)
#   EVAL_SIZES with CHECK=1: frame sizes for the accuracy check (default 640x480; e.g. also 768x576
#              and 512x384, decoded the same way)
#   PYTHON     interpreter for the virtualenv (default python3; needs the venv module)
# CHECK=1 needs gst-launch-1.0 with avdec_msmpeg4 (gstreamer1.0-libav), videoconvert and videoscale.
# Nothing here runs on a GPU: the CUDA speed and accuracy of the fp16 model are not measured.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
YA_LOG_TAG=make-fp16
# shellcheck source=scripts/common.sh
. "$here/../scripts/common.sh" # log, die, ya_find_vtest; ORT_VERSION, MODEL_*, MODEL_FP16_*, VTEST_*

# shellcheck source=models/tools.sh
. "$here/tools.sh" # PIP_PINS, ensure_venv, find_vtest, decode_frames
FRAMES=795

output=$(realpath -m "${1:-$here/$MODEL_FP16_FILE}")
work=${WORKDIR:-/tmp/yoloanonymize-fp16}
python=${PYTHON:-python3}
fp32=$here/$MODEL_FILE
mkdir -p "$work"
work=$(cd "$work" && pwd -P)
log "Working in $work"

[[ "$(sha256sum "$fp32" | cut -d' ' -f1)" == "$MODEL_SHA256" ]] ||
    die "$fp32 does not have the expected sha256 $MODEL_SHA256."

# --- 1. virtualenv ---------------------------------------------------------------------------
venv=$work/venv
ensure_venv "$venv" "$python"

# --- 2. convert, twice -----------------------------------------------------------------------
mk=("$venv/bin/python" "$here/make_fp16.py")
"${mk[@]}" convert --model "$fp32" --output "$work/fp16-a.onnx"
"${mk[@]}" convert --model "$fp32" --output "$work/fp16-b.onnx" 2>/dev/null
sha_a=$(sha256sum "$work/fp16-a.onnx" | cut -d' ' -f1)
sha_b=$(sha256sum "$work/fp16-b.onnx" | cut -d' ' -f1)
[[ "$sha_a" == "$sha_b" ]] || die "two conversions gave different bytes ($sha_a, $sha_b)."
log "Two conversions gave the same bytes (sha256 $sha_a)."
mkdir -p "$(dirname "$output")"
cp "$work/fp16-a.onnx" "$output"
log "Wrote $output ($(stat -c %s "$output") bytes, sha256 $sha_a; fp32: $(stat -c %s "$fp32") bytes)"
if [[ "$sha_a" == "${MODEL_FP16_SHA256:-}" ]]; then
    log "sha256 matches MODEL_FP16_SHA256 in scripts/versions.env."
else
    log "WARNING: sha256 differs from MODEL_FP16_SHA256 in scripts/versions.env (${MODEL_FP16_SHA256:-unset})."
fi

# --- 3. checks -------------------------------------------------------------------------------
[[ "${CHECK:-0}" == 1 ]] || exit 0
decode_frames 640x480

log "What ONNX Runtime's CPU EP does with the fp16 model:"
"${mk[@]}" cpu-ops --model "$output" --workdir "$work"
log "Speed on CPU, fp32 vs fp16 (200 frames 640x480, batch 4, 2 threads, median of 3 passes):"
"$venv/bin/python" "$here/quantize_int8.py" bench --frames "$work/vtest-640x480.rgb" \
    --json "$work/bench.json" "$fp32" "$output"
for size in ${EVAL_SIZES:-640x480}; do
    decode_frames "$size"
    log "Accuracy against fp32 at $size, every ${EVAL_STEP:-1}. frame (1 = all), ONNX Runtime CPU:"
    "${mk[@]}" eval --size "$size" --frames "$work/vtest-$size.rgb" --step "${EVAL_STEP:-1}" \
        --ref "$fp32" --model "$output" --json "$work/eval-$size.json"
done
