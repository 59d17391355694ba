#!/usr/bin/env bash
# Builds models/face_detection_yunet_2023mar_dynamic-int8.onnx, the int8 (QDQ) variant of the face
# detector, by NNCF post-training quantization (ONNX backend), which the element runs beside the
# int8 pose model (precision=auto or int8 on OpenVINO). See models/README-face.md, "int8".
#
#   1. the virtualenvs of models/quantize-nncf.sh (venv-nncf: nncf 3.4.0 and ONNX Runtime's CPU
#      wheel; venv-ov: the onnxruntime-openvino wheel the element loads), pinned and hash-checked;
#   2. vtest.avi decoded to raw RGB 768x576 (the face detector's input at face-scale 1);
#   3. `quantize_face_nncf.py quantize`: the model converted to opset 13 (per-channel weights),
#      preset mixed, fast bias correction, calibrated on vtest.avi frames 100..439 step 7 (49
#      frames; the coverage benchmark's clip has vtest.avi frames 0..59 and 450..509); OUTPUT's
#      sha256 compared with FACE_MODEL_INT8_SHA256 (scripts/versions.env);
#   4. with CHECK=1: `quantize_face_nncf.py bench` (OpenVINO, batch 4, 2 threads, interleaved).
# Coverage is judged with the element: benches/faces/run.sh --config int8="face-model=OUTPUT".
#
# Usage: models/quantize-face-nncf.sh [OUTPUT]
# Environment: WORKDIR (default /tmp/yoloanonymize-nncf), YOLOANONYMIZE_VTEST, PYTHON, CHECK=1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
YA_LOG_TAG=quantize-face
# shellcheck source=scripts/common.sh
. "$here/../scripts/common.sh" # log, die, FACE_MODEL_*
# shellcheck source=models/tools.sh
. "$here/tools.sh" # find_vtest, decode_frames
FRAMES=795

output=$(realpath -m "${1:-$here/$FACE_MODEL_INT8_FILE}")
work=${WORKDIR:-/tmp/yoloanonymize-nncf}
python=${PYTHON:-python3}
fp32=$here/$FACE_MODEL_FILE
mkdir -p "$work"
work=$(cd "$work" && pwd -P)
log "Working in $work"
export NNCF_CI=1

[[ "$(sha256sum "$fp32" | cut -d' ' -f1)" == "$FACE_MODEL_SHA256" ]] ||
    die "$fp32 does not have the expected sha256 $FACE_MODEL_SHA256."

make_venv() {
    local venv=$1 req=$2 check=$3
    if ! "$venv/bin/python" -c "$check" 2>/dev/null; then
        "$python" -m venv --clear "$venv" || die "could not create a virtualenv (Debian: apt-get install python3-venv)."
        "$venv/bin/pip" install -q --only-binary=:all: --require-hashes -r "$req" ||
            die "pip could not install $req into $venv (Python 3.11 on x86_64 Linux is needed: the wheels are pinned by hash)."
    fi
}
make_venv "$work/venv-nncf" "$here/requirements-nncf.txt" \
    "import nncf, onnxruntime, sys; sys.exit(nncf.__version__ != '3.4.0' or onnxruntime.__version__ != '$ORT_VERSION')"

decode_frames 768x576

"$work/venv-nncf/bin/python" "$here/quantize_face_nncf.py" quantize --model "$fp32" \
    --frames "$work/vtest-768x576.rgb" --calib 100:440 --calib-step 7 --opset 13 --output "$output"
sha=$(sha256sum "$output" | cut -d' ' -f1)
log "Wrote $output ($(stat -c %s "$output") bytes, sha256 $sha)"
if [[ "$sha" == "${FACE_MODEL_INT8_SHA256:-}" ]]; then
    log "sha256 matches FACE_MODEL_INT8_SHA256 in scripts/versions.env."
else
    log "WARNING: sha256 differs from FACE_MODEL_INT8_SHA256 in scripts/versions.env (${FACE_MODEL_INT8_SHA256:-unset})."
fi

[[ "${CHECK:-0}" == 1 ]] || exit 0
make_venv "$work/venv-ov" "$here/requirements-openvino.txt" \
    "import onnxruntime, sys; sys.exit(onnxruntime.__version__ != '$ORT_OPENVINO_VERSION' or 'OpenVINOExecutionProvider' not in onnxruntime.get_available_providers())"
"$work/venv-ov/bin/python" "$here/quantize_face_nncf.py" bench --frames "$work/vtest-768x576.rgb" "$fp32" "$output"
