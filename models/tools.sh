# shellcheck shell=bash
# Helpers sourced by the model scripts of models/ and samples/make-sample.sh (not meant to be run).
# The caller has sourced scripts/common.sh (log, die, ya_vtest_checked, and scripts/versions.env:
# ORT_VERSION, VTEST_DEB_VERSION, VTEST_SHA256).

# Every package the model scripts' virtualenv gets, pinned (onnxruntime's and onnx's dependencies
# included); one set, so that one virtualenv serves both scripts.
PIP_PINS=(
    "onnxruntime==$ORT_VERSION"
    onnx==1.23.2
    numpy==2.4.6
    sympy==1.14.0 # symbolic shape inference in quant_pre_process; quantize_int8.py imports it
    mpmath==1.3.0
    protobuf==7.36.2
    flatbuffers==25.12.19
    ml_dtypes==0.6.0
    packaging==26.4 # onnxruntime.transformers.float16 imports it
    typing_extensions==4.16.0
)

# ensure_venv VENV PYTHON: makes VENV (with PYTHON's venv module) and installs PIP_PINS unless it
# already has onnxruntime ORT_VERSION and the other packages; logs the versions in use.
ensure_venv() {
    local venv=$1 python=$2
    if ! "$venv/bin/python" -c "import onnxruntime, sys; sys.exit(onnxruntime.__version__ != '$ORT_VERSION')" 2>/dev/null ||
        ! "$venv/bin/python" -c "import onnx, numpy, sympy, packaging" 2>/dev/null; then
        "$python" -m venv "$venv" || die "could not create a virtualenv (Debian: apt-get install python3-venv)."
        "$venv/bin/pip" install --only-binary=:all: "${PIP_PINS[@]}"
    fi
    log "onnxruntime $("$venv/bin/python" -c 'import onnxruntime; print(onnxruntime.__version__)'), onnx $("$venv/bin/python" -c 'import onnx; print(onnx.__version__)')"
}

# make_venv DIR REQUIREMENTS CHECK_IMPORT: (re)creates DIR (with $python, default python3) from the
# pinned, hash-checked REQUIREMENTS file unless the Python code CHECK_IMPORT works in it.
make_venv() {
    local venv=$1 req=$2 check=$3
    if ! "$venv/bin/python" -c "$check" 2>/dev/null; then
        "${python:-python3}" -m venv --clear "$venv" || die "could not create a virtualenv (Debian: apt-get install python3-venv)."
        "$venv/bin/pip" install -q --only-binary=:all: --require-hashes -r "$req" ||
            die "pip could not install $req into $venv (Python 3.11 on x86_64 Linux is needed: the wheels are pinned by hash)."
    fi
}

# find_vtest WORKDIR: sets vtest_avi to OpenCV's vtest.avi: scripts/common.sh's ya_vtest_checked
# ($YOLOANONYMIZE_VTEST or $VTEST_AVI when set, else ../shared/media/vtest.avi beside the
# repository or /work/shared/media/vtest.avi, else the file from Debian's opencv-doc package,
# apt-get download into WORKDIR). Dies unless its sha256 is VTEST_SHA256.
find_vtest() {
    ya_vtest_checked "$1"
    vtest_avi=$YA_VTEST
}

# decode_frames WxH: writes $work/vtest-WxH.rgb (raw RGB, all $FRAMES frames of vtest.avi, found
# by find_vtest) unless it is already there.
decode_frames() {
    local w=${1%x*} h=${1#*x} f=$work/vtest-$1.rgb el
    [[ -f "$f" && $(stat -c %s "$f") -eq $((FRAMES * w * h * 3)) ]] && return 0
    for el in avidemux avdec_msmpeg4 videoconvert videoscale fdsink; do
        gst-inspect-1.0 "$el" >/dev/null 2>&1 || die "GStreamer element $el is missing (gstreamer1.0-libav, gstreamer1.0-plugins-base/good)."
    done
    [[ -n "${vtest_avi:-}" ]] || find_vtest "$work"
    gst-launch-1.0 -q filesrc location="$vtest_avi" ! decodebin ! videoconvert ! videoscale ! \
        "video/x-raw,format=RGB,width=$w,height=$h" ! fdsink fd=1 >"$f.tmp"
    [[ $(stat -c %s "$f.tmp") -eq $((FRAMES * w * h * 3)) ]] ||
        die "decoding $vtest_avi gave $(stat -c %s "$f.tmp") bytes, not $FRAMES frames of ${w}x$h RGB."
    mv "$f.tmp" "$f"
    log "frames: $f ($FRAMES frames, ${w}x$h RGB)"
}
