#!/usr/bin/env bash
# Builds models/yolo11n-pose-dynamic-int8.onnx, an int8 (QDQ) variant of
# models/yolo11n-pose-dynamic.onnx, by NNCF post-training quantization (ONNX backend), for the
# element's precision=int8 (OpenVINO on the CPU); optionally checks it against the float32 model.
# See models/README-int8.md for the results and the choices.
#
#   1. creates two virtualenvs in WORKDIR from pinned, hash-checked wheels: venv-nncf
#      (models/requirements-nncf.txt: nncf, onnxruntime CPU for NNCF's statistics, onnx, numpy)
#      and venv-ov (models/requirements-openvino.txt: the onnxruntime-openvino wheel the element
#      loads, for the checks);
#   2. decodes vtest.avi (sha256 checked) with GStreamer to raw 640x480 RGB frames
#      (WORKDIR/vtest-640x480.rgb, 733 MB; 768x576 scales to exactly 640x480);
#   3. runs `quantize_nncf.py quantize` on calibration frames CALIB (default 0:300 step 3; the checks use
#      300:795 and samples/vtest-short.mp4 = frames 500..599, none of them calibration frames):
#      preset mixed, NNCF's default overflow fix (first layer), fast bias correction, the decode
#      and the last conv of every head branch and the C2PSA attention kept in float, activations
#      written as uint8; writes OUTPUT and compares its sha256 with MODEL_INT8_SHA256
#      (scripts/versions.env);
#   4. with CHECK=1: `quantize_nncf.py eval` (persons, confident eyes, eye error percentiles
#      against float32 on ONNX Runtime's CPU provider; the int8 model on OpenVINO and on the CPU
#      provider; float32 on OpenVINO as the yardstick) and `quantize_nncf.py bench` (OpenVINO,
#      batch 4, 2 threads, interleaved; float32, float16 file, int8; GFLOP/s).
#
# Usage: models/quantize-nncf.sh [OUTPUT]    (default: models/yolo11n-pose-dynamic-int8.onnx)
# Environment:
#   WORKDIR    work directory, kept afterwards (default /tmp/yoloanonymize-nncf)
#   YOLOANONYMIZE_VTEST (or VTEST_AVI)  vtest.avi to use (default: ../shared/media/vtest.avi
#              beside the repository, else /work/shared/media/vtest.avi, else apt-get download
#              opencv-doc, as samples/make-sample.sh does; scripts/common.sh's ya_find_vtest)
#   CALIB      calibration frames START:END of vtest.avi (default 0:300)
#   CALIB_STEP every CALIB_STEP-th frame of them (default 3: 100 frames)
#   IGNORE     node groups kept in float (default decode,head-final,attn; see quantize_nncf.py)
#   CHECK=1    also run the accuracy check and the benchmark (10 to 30 minutes on 2 shared cores)
#   EVAL_STEP  with CHECK=1: every EVAL_STEP-th frame of 300..794 (default 1)
#   PYTHON     interpreter for the virtualenvs (default python3, 3.11: the wheels are cp311)
# The quantization itself takes 5 to 20 minutes on 2 cores (NNCF's statistics run the model with
# every intermediate tensor as an output).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
YA_LOG_TAG=quantize-nncf
# shellcheck source=scripts/common.sh
. "$here/../scripts/common.sh" # log, die, ya_find_vtest; MODEL_*, MODEL_INT8_*, VTEST_*
# shellcheck source=models/tools.sh
. "$here/tools.sh" # find_vtest, decode_frames, make_venv
FRAMES=795

output=$(realpath -m "${1:-$here/${MODEL_INT8_FILE:-yolo11n-pose-dynamic-int8.onnx}}")
work=${WORKDIR:-/tmp/yoloanonymize-nncf}
python=${PYTHON:-python3}
fp32=$here/$MODEL_FILE
mkdir -p "$work"
work=$(cd "$work" && pwd -P)
log "Working in $work"
export NNCF_CI=1 # NNCF's telemetry becomes a stub (nothing is sent, nothing is asked)

[[ "$(sha256sum "$fp32" | cut -d' ' -f1)" == "$MODEL_SHA256" ]] ||
    die "$fp32 does not have the expected sha256 $MODEL_SHA256."

# --- 1. virtualenvs --------------------------------------------------------------------------
make_venv "$work/venv-nncf" "$here/requirements-nncf.txt" \
    "import nncf, onnxruntime, sys; sys.exit(nncf.__version__ != '3.4.0' or onnxruntime.__version__ != '$ORT_VERSION')"
make_venv "$work/venv-ov" "$here/requirements-openvino.txt" \
    "import onnxruntime, sys; sys.exit(onnxruntime.__version__ != '$ORT_OPENVINO_VERSION' or 'OpenVINOExecutionProvider' not in onnxruntime.get_available_providers())"
log "nncf $("$work/venv-nncf/bin/python" -c 'import nncf; print(nncf.__version__)'), onnxruntime $ORT_VERSION (statistics), onnxruntime-openvino $ORT_OPENVINO_VERSION (checks)"

# --- 2. frames -------------------------------------------------------------------------------
decode_frames 640x480

# --- 3. quantize -----------------------------------------------------------------------------
q=("$work/venv-nncf/bin/python" "$here/quantize_nncf.py")
mkdir -p "$(dirname "$output")"
"${q[@]}" quantize --model "$fp32" --frames "$work/vtest-640x480.rgb" --calib "${CALIB:-0:300}" \
    --calib-step "${CALIB_STEP:-3}" --ignore "${IGNORE:-decode,head-final,attn}" --output "$output"
sha=$(sha256sum "$output" | cut -d' ' -f1)
log "Wrote $output ($(stat -c %s "$output") bytes, sha256 $sha)"
if [[ "$sha" == "${MODEL_INT8_SHA256:-}" ]]; then
    log "sha256 matches MODEL_INT8_SHA256 in scripts/versions.env."
else
    log "WARNING: sha256 differs from MODEL_INT8_SHA256 in scripts/versions.env (${MODEL_INT8_SHA256:-unset})."
fi

# --- 4. checks -------------------------------------------------------------------------------
[[ "${CHECK:-0}" == 1 ]] || exit 0
c=("$work/venv-ov/bin/python" "$here/quantize_nncf.py")
log "Accuracy against float32 on ONNX Runtime's CPU provider, vtest.avi frames 300..794 (step ${EVAL_STEP:-1}):"
"${c[@]}" eval --frames "$work/vtest-640x480.rgb" --range 300:795 --step "${EVAL_STEP:-1}" \
    --ref "$fp32@cpu" --ref-cache "$work/ref-300-795-${EVAL_STEP:-1}.pkl" --json "$work/eval.json" \
    "$fp32@openvino" "$output@openvino" "$output@cpu"
log "Speed on OpenVINO (batch 4, 640x480, 2 threads, interleaved; ratios on a shared machine are what counts):"
"${c[@]}" bench --frames "$work/vtest-640x480.rgb" --passes 5 --json "$work/bench.json" \
    "$fp32@openvino" "$here/$MODEL_FP16_FILE@openvino" "$output@openvino"
