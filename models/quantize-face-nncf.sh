#!/usr/bin/env bash
# Makes an int8 (QDQ) variant of the face detector by NNCF post-training quantization (ONNX
# backend), to judge whether it can run beside the int8 pose model. It is NOT shipped: on
# 2026-12-02 it was 2.1x faster than float32 on OpenVINO but lost score on small faces (one
# fixture face from 0.77 to 0.41-0.44), see models/README-face.md, "int8: measured, not shipped".
#
#   1. the virtualenv venv-nncf of models/quantize-nncf.sh (nncf 3.4.0, ONNX Runtime's CPU wheel),
#      pinned and hash-checked; with CHECK=1 also venv-ov (the onnxruntime-openvino wheel);
#   2. vtest.avi decoded to raw RGB 768x576 (the face detector's input at face-scale 1);
#   3. `quantize_face_nncf.py quantize`: opset 13 (per-channel weights), preset mixed, fast bias
#      correction, calibrated on vtest.avi frames 100..439 step 7 (49 frames; the coverage
#      benchmark's clip has vtest.avi frames 0..59 and 450..509), IGNORE groups kept in float;
#      two runs give the same bytes;
#   4. with CHECK=1: `quantize_face_nncf.py bench` (OpenVINO, batch 4, 2 threads, interleaved).
# Judge its coverage with the element: benches/faces/run.sh --config int8="face-model=OUTPUT".
#
# Usage: models/quantize-face-nncf.sh [OUTPUT]   (default WORKDIR/yunet-int8.onnx)
# Environment: WORKDIR (default /tmp/yoloanonymize-nncf), IGNORE (heads, scores; default none),
#   YOLOANONYMIZE_VTEST, PYTHON, CHECK=1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
YA_LOG_TAG=quantize-face
# shellcheck source=scripts/common.sh
. "$here/../scripts/common.sh" # log, die, FACE_MODEL_*, ORT_*
# shellcheck source=models/tools.sh
. "$here/tools.sh" # find_vtest, decode_frames, make_venv
FRAMES=795

work=${WORKDIR:-/tmp/yoloanonymize-nncf}
mkdir -p "$work"
output=$(realpath -m "${1:-$work/yunet-int8.onnx}")
python=${PYTHON:-python3}
fp32=$here/$FACE_MODEL_FILE
mkdir -p "$work"
work=$(cd "$work" && pwd -P)
log "Working in $work"
export NNCF_CI=1

[[ "$(sha256sum "$fp32" | cut -d' ' -f1)" == "$FACE_MODEL_SHA256" ]] ||
    die "$fp32 does not have the expected sha256 $FACE_MODEL_SHA256."

make_venv "$work/venv-nncf" "$here/requirements-nncf.txt" \
    "import nncf, onnxruntime, sys; sys.exit(nncf.__version__ != '3.4.0' or onnxruntime.__version__ != '$ORT_VERSION')"

decode_frames 768x576

"$work/venv-nncf/bin/python" "$here/quantize_face_nncf.py" quantize --model "$fp32" \
    --frames "$work/vtest-768x576.rgb" --calib 100:440 --calib-step 7 --opset 13 --ignore "${IGNORE:-}" --output "$output"
log "Wrote $output ($(stat -c %s "$output") bytes, sha256 $(sha256sum "$output" | cut -d' ' -f1))"

[[ "${CHECK:-0}" == 1 ]] || exit 0
make_venv "$work/venv-ov" "$here/requirements-openvino.txt" \
    "import onnxruntime, sys; sys.exit(onnxruntime.__version__ != '$ORT_OPENVINO_VERSION' or 'OpenVINOExecutionProvider' not in onnxruntime.get_available_providers())"
"$work/venv-ov/bin/python" "$here/quantize_face_nncf.py" bench --frames "$work/vtest-768x576.rgb" "$fp32" "$output"
