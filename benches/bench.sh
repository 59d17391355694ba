#!/usr/bin/env bash
# Benchmark of the yoloanonymize element against deface, GStreamer's faceblur and plain GStreamer
# baselines, on the same clips, in one run on one machine. See benches/README.md.
#
# Usage: benches/bench.sh [options]
#   --frames N             the first N frames of the input (default 300; 795 = all of vtest.avi)
#   --runs R               timed runs of every configuration, interleaved (default 3)
#   --resolutions LIST     comma-separated: 576 (768x576), 720 (1280x720), 1080 (1920x1080) or WxH
#                          (default 576,720,1080); the input is plainly scaled, not letterboxed
#   --config NAME=PROPS    an extra yoloanonymize configuration, repeatable; PROPS are element
#                          properties separated by spaces (relative paths are taken from the
#                          repository root), e.g. --config int8="model=models/x-int8.onnx";
#                          "default" (no properties) is always measured first
#   --enc STRING           x264enc properties of every GStreamer end-to-end pipeline
#                          (default "speed-preset=veryfast pass=qual quantizer=23 key-int-max=250 bitrate=2048000")
#   --deface-ffmpeg-config JSON
#                          deface's --ffmpeg-config (default: derived from --enc: same preset, CRF
#                          and keyframe interval for its libx264)
#   --deface-own-encoder   run deface with its own default encoder settings instead
#   --coverage-all         privacy coverage at every resolution (default: 768x576 only, or the
#                          first resolution when 576 is not measured)
#   --skip-deface, --skip-faceblur
#   --with-deface          measure deface even with --quick
#   --workdir DIR          inputs, virtualenvs, logs and results (default /tmp/yoloanonymize-bench)
#   --input FILE           source clip (default: vtest.avi, as scripts/common.sh's ya_find_vtest
#                          finds it: $YOLOANONYMIZE_VTEST, else ../shared/media/vtest.avi beside
#                          the repository, else /work/shared/media/vtest.avi)
#   --plugin-path DIR      where libgstyoloanonymize.so is (default $GST_PLUGIN_PATH, else
#                          <repo>/target/release)
#   --quick                smoke test: --frames 30 --runs 1 --resolutions 576 --skip-deface
#                          (options given explicitly still win)
#   -h, --help
#
# Writes <workdir>/runs/<date>/ (logs, detections-files, runs.tsv, results.md) and copies the
# report to <workdir>/results.md. Installs (once) the Debian packages it needs when missing,
# deface 1.5.0 into <workdir>/venv-deface and the onnx package into <workdir>/venv-onnx.
set -euo pipefail

command_line=$(printf '%q ' "$0" "$@")
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)

# log (on stderr: stdout is the report) and die.
YA_LOG_TAG=bench YA_LOG_FD=2
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

# ---------------------------------------------------------------------------------------------
# Options

frames='' runs='' resolutions='' enc='' deface_config='' quick=0 skip_deface='' skip_faceblur=0
deface_own=0 coverage_all=0
workdir=/tmp/yoloanonymize-bench
input=''
plugin_path=${GST_PLUGIN_PATH:-$repo_root/target/release}
config_names=(default)
config_props=('')

need_arg() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value (try --help)"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
    --frames) need_arg "$@"; frames=$2; shift 2 ;;
    --runs) need_arg "$@"; runs=$2; shift 2 ;;
    --resolutions) need_arg "$@"; resolutions=$2; shift 2 ;;
    --config)
        need_arg "$@"
        [[ "$2" == *=* ]] || die "--config wants NAME=PROPS, got '$2'"
        name=${2%%=*}
        [[ "$name" =~ ^[A-Za-z0-9_.-]+$ ]] || die "--config name '$name': use letters, digits, _ . -"
        found=0
        for i in "${!config_names[@]}"; do
            if [[ "${config_names[$i]}" == "$name" ]]; then
                config_props[i]=${2#*=}
                found=1
            fi
        done
        if [[ $found == 0 ]]; then
            config_names+=("$name")
            config_props+=("${2#*=}")
        fi
        shift 2
        ;;
    --enc) need_arg "$@"; enc=$2; shift 2 ;;
    --deface-ffmpeg-config) need_arg "$@"; deface_config=$2; shift 2 ;;
    --deface-own-encoder) deface_own=1; shift ;;
    --coverage-all) coverage_all=1; shift ;;
    --skip-deface) skip_deface=1; shift ;;
    --with-deface) skip_deface=0; shift ;;
    --skip-faceblur) skip_faceblur=1; shift ;;
    --workdir) need_arg "$@"; workdir=$2; shift 2 ;;
    --input) need_arg "$@"; input=$2; shift 2 ;;
    --plugin-path) need_arg "$@"; plugin_path=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument: $1 (try --help)" ;;
    esac
done

if [[ $quick == 1 ]]; then
    frames=${frames:-30}
    runs=${runs:-1}
    resolutions=${resolutions:-576}
    skip_deface=${skip_deface:-1}
fi
frames=${frames:-300}
runs=${runs:-3}
resolutions=${resolutions:-576,720,1080}
skip_deface=${skip_deface:-0}
enc=${enc:-speed-preset=veryfast pass=qual quantizer=23 key-int-max=250 bitrate=2048000}
[[ "$frames" =~ ^[1-9][0-9]*$ ]] || die "--frames wants a positive integer"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "--runs wants a positive integer"
if [[ -z "$input" ]]; then
    ya_find_vtest || die "vtest.avi not found: set YOLOANONYMIZE_VTEST or give --input FILE"
    input=$YA_VTEST
fi
[[ -f "$input" ]] || die "input clip not found: $input"
mkdir -p "$workdir"
workdir=$(cd "$workdir" && pwd)
input=$(cd "$(dirname "$input")" && pwd)/$(basename "$input")
export GST_PLUGIN_PATH=$plugin_path

sizes=()
IFS=',' read -r -a res_list <<<"$resolutions"
for r in "${res_list[@]}"; do
    case "$r" in
    576) sizes+=(768x576) ;;
    720) sizes+=(1280x720) ;;
    1080) sizes+=(1920x1080) ;;
    [1-9]*x[1-9]*) sizes+=("$r") ;;
    *) die "unknown resolution '$r' (576, 720, 1080 or WxH)" ;;
    esac
done
coverage_sizes=()
if [[ $coverage_all == 1 ]]; then
    coverage_sizes=("${sizes[@]}")
else
    coverage_sizes=("${sizes[0]}")
    for s in "${sizes[@]}"; do [[ "$s" == 768x576 ]] && coverage_sizes=(768x576); done
fi

# The encoder settings for deface: its libx264 (through imageio-ffmpeg) with the preset, CRF and
# keyframe interval of $enc where it names them.
enc_value() { # enc_value KEY -> value of KEY=... in $enc, or nothing
    local kv
    for kv in $enc; do [[ "$kv" == "$1="* ]] && echo "${kv#*=}"; done
    return 0
}
if [[ $deface_own == 1 ]]; then
    deface_config=''
elif [[ -z "$deface_config" ]]; then
    params=''
    p=$(enc_value speed-preset)
    [[ -n "$p" ]] && params+=", \"-preset\", \"$p\""
    if [[ "$(enc_value pass)" == qual ]]; then
        params+=", \"-crf\", \"$(enc_value quantizer)\""
    fi
    p=$(enc_value key-int-max)
    [[ -n "$p" && "$p" != 0 ]] && params+=", \"-g\", \"$p\""
    deface_config="{\"codec\": \"libx264\", \"quality\": null, \"output_params\": [${params#, }]}"
fi

as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        return 1
    fi
}
apt_updated=0
apt_install() {
    log "installing Debian packages: $*"
    if [[ $apt_updated == 0 ]]; then
        as_root apt-get update -q >&2 || return 1
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}
has_element() { gst-inspect-1.0 "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------------------------------------
# Tools

command -v gst-launch-1.0 >/dev/null || apt_install gstreamer1.0-tools || die "gst-launch-1.0 missing"
for el in avdec_msmpeg4:gstreamer1.0-libav x264enc:gstreamer1.0-plugins-ugly \
    mp4mux:gstreamer1.0-plugins-good qtdemux:gstreamer1.0-plugins-good; do
    has_element "${el%%:*}" || apt_install "${el#*:}" || die "cannot install ${el#*:}"
done
has_element yoloanonymize ||
    die "GStreamer cannot find yoloanonymize in GST_PLUGIN_PATH=$GST_PLUGIN_PATH (build it with cargo build --release)"

faceblur_profile=/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml
if [[ $skip_faceblur == 0 ]]; then
    if ! has_element faceblur || [[ ! -f "$faceblur_profile" ]]; then
        apt_install gstreamer1.0-opencv opencv-data || true
    fi
    if ! has_element faceblur || [[ ! -f "$faceblur_profile" ]]; then
        log "faceblur or its cascade $faceblur_profile is not available: skipping faceblur"
        skip_faceblur=1
    fi
fi

inspect=$(gst-inspect-1.0 yoloanonymize)
# The coverage reference is the pose model alone in float32 (ONNX Runtime's CPU provider), also
# where the element has a face detector: its eye regions are what every configuration must cover.
ref_detectors=''
grep -q '^ *detectors ' <<<"$inspect" && ref_detectors='detectors=pose'

has_detections_file=0
grep -q '^ *detections-file ' <<<"$inspect" && has_detections_file=1
default_model=$(awk '/^  model /{m=1} m && /Default:/{sub(/.*Default: "/, ""); sub(/"$/, ""); print; exit}' <<<"$inspect")
plugin_version=$(awk '/^  Version /{print $2; exit}' <<<"$inspect")

python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv || true

# venv_install DIR MARKER PACKAGES...: a virtualenv with PACKAGES, made once (MARKER records them)
venv_install() {
    local dir=$1 marker=$2
    shift 2
    if [[ -x "$dir/bin/python" && -f "$dir/$marker" && "$(cat "$dir/$marker")" == "$*" ]]; then
        return 0
    fi
    log "installing $* into $dir"
    [[ -x "$dir/bin/python" ]] || python3 -m venv "$dir" >&2 || return 1
    "$dir/bin/pip" install -q --disable-pip-version-check "$@" >&2 || return 1
    echo "$*" >"$dir/$marker"
}

ort_version_here=$(sed -n 's/^ORT_VERSION=//p' "$repo_root/scripts/versions.env" 2>/dev/null || true)
deface_bin=''
if [[ $skip_deface == 0 ]]; then
    # deface uses the same ONNX Runtime release as the element when that wheel exists.
    if venv_install "$workdir/venv-deface" .bench-installed deface==1.5.0 \
        "onnxruntime${ort_version_here:+==$ort_version_here}" ||
        venv_install "$workdir/venv-deface" .bench-installed deface==1.5.0 onnxruntime; then
        deface_bin=$workdir/venv-deface/bin/deface
    else
        log "could not install deface: skipping it"
        skip_deface=1
    fi
fi
onnx_python=''
if venv_install "$workdir/venv-onnx" .bench-installed onnx; then
    onnx_python=$workdir/venv-onnx/bin/python
else
    log "could not install the onnx package: GFLOPs will only be the Ultralytics figure, scaled"
fi

# ---------------------------------------------------------------------------------------------
# Machine

stamp=$(date +%Y%m%d-%H%M%S)
rundir=$workdir/runs/$stamp
mkdir -p "$rundir" "$workdir/inputs" "$workdir/out"
ln -sfn "runs/$stamp" "$workdir/latest"

ort_lib=$(LD_DEBUG=files gst-launch-1.0 -q videotestsrc num-buffers=1 ! video/x-raw,width=64,height=64 ! \
    yoloanonymize ! fakesink 2>&1 | sed -n 's/.*file=\([^ ]*libonnxruntime\.so[^ ]*\) .*dynamically loaded.*/\1/p' | head -n1 || true)
ort_version=unknown
if [[ -n "$ort_lib" ]]; then
    ort_real=$(readlink -f "$ort_lib")
    if [[ "$ort_real" == *libonnxruntime.so.* ]]; then
        ort_version="${ort_real##*libonnxruntime.so.} ($ort_real)"
    else
        ort_version="unknown ($ort_real)"
    fi
fi
deface_versions='skipped'
if [[ -n "$deface_bin" ]]; then
    deface_versions="deface $("$deface_bin" --version 2>&1 | tail -n1), onnxruntime $("$workdir/venv-deface/bin/python" -c 'import onnxruntime; print(onnxruntime.__version__)' 2>/dev/null)"
fi
{
    echo "command: $command_line"
    echo "date: $(date -Is)"
    echo "machine: $(uname -n), $(nproc) cores (nproc), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(awk '/MemTotal/{printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "GStreamer: $(gst-launch-1.0 --version | sed -n 's/^GStreamer //p' | head -n1); yoloanonymize $plugin_version from $GST_PLUGIN_PATH"
    echo "ONNX Runtime (element): $ort_version"
    echo "deface: $deface_versions"
    echo "input: $input, first $frames frames, scaled to ${sizes[*]} (plain scale, no letterbox), H.264 MP4"
    echo "runs: $runs per configuration, interleaved; element configurations: $(for i in "${!config_names[@]}"; do printf '%s=[%s] ' "${config_names[$i]}" "${config_props[$i]}"; done)"
    echo "x264enc settings for every GStreamer end-to-end pipeline (ENC): $enc"
    if [[ $skip_deface == 1 ]]; then
        echo "deface: skipped"
    elif [[ $deface_own == 1 ]]; then
        echo "deface encoder: its own defaults (--ffmpeg-config not given: libx264, preset medium, CRF 23)"
    else
        echo "deface --ffmpeg-config: $deface_config"
    fi
    echo "results: $rundir"
} | tee "$rundir/header.txt"
echo

# ---------------------------------------------------------------------------------------------
# Inputs: the first $frames frames, re-encoded once per size to H.264 MP4 (cached)

declare -A clip nframes
base=$(basename "${input%.*}")
for size in "${sizes[@]}"; do
    w=${size%x*} h=${size#*x}
    out=$workdir/inputs/$base-${frames}f-$size.mp4
    desc="filesrc location=$input ! parsebin ! decodebin ! identity eos-after=$((frames + 1)) ! videoconvert ! videoscale add-borders=false ! video/x-raw,format=I420,width=$w,height=$h,pixel-aspect-ratio=1/1 ! x264enc pass=quant quantizer=18 key-int-max=10 ! mp4mux ! filesink location=$out.tmp # $(stat -c '%s %Y' "$input")"
    if [[ ! -s "$out" || ! -f "$out.desc" || "$(cat "$out.desc")" != "$desc" ]]; then
        log "encoding $out"
        rm -f "$out" "$out.desc"
        # parsebin ! decodebin (no multiqueue between demuxer and decoder) makes eos-after exact.
        gst-launch-1.0 -q filesrc location="$input" ! parsebin ! decodebin ! \
            identity eos-after=$((frames + 1)) ! videoconvert ! videoscale add-borders=false ! \
            "video/x-raw,format=I420,width=$w,height=$h,pixel-aspect-ratio=1/1" ! \
            x264enc pass=quant quantizer=18 key-int-max=10 ! mp4mux ! filesink location="$out.tmp" ||
            die "could not encode $out"
        mv "$out.tmp" "$out"
        echo "$desc" >"$out.desc"
    fi
    n=$(python3 "$script_dir/mp4info.py" frames "$out")
    if [[ $n -gt $frames ]]; then
        die "$out has $n frames, not $frames (the cut failed)"
    elif [[ $n -lt $frames ]]; then
        log "$input has only $n frames: measuring $n at $size"
    fi
    clip[$size]=$out
    nframes[$size]=$n
done

# ---------------------------------------------------------------------------------------------
# Runs

{
    printf 'frames_requested\t%s\nruns\t%s\nenc\t%s\ndeface_config\t%s\ndeface_own\t%s\n' \
        "$frames" "$runs" "$enc" "$deface_config" "$deface_own"
    printf 'repo_root\t%s\nworkdir\t%s\nonnx_python\t%s\ndefault_model\t%s\n' \
        "$repo_root" "$workdir" "$onnx_python" "$default_model"
    printf 'faceblur_profile\t%s\n' "$faceblur_profile"
    printf 'has_detections_file\t%s\nsizes\t%s\ncoverage_sizes\t%s\n' \
        "$has_detections_file" "${sizes[*]}" "${coverage_sizes[*]}"
    for size in "${sizes[@]}"; do printf 'nframes\t%s\t%s\n' "$size" "${nframes[$size]}"; done
    for i in "${!config_names[@]}"; do printf 'config\t%s\t%s\n' "${config_names[$i]}" "${config_props[$i]}"; done
} >"$rundir/meta.tsv"
printf 'round\tsize\tmode\ttool\tconfig\telapsed_ns\trc\tload1\tlog\tdetections\toutput\n' >"$rundir/runs.tsv"

read -r -a enc_props <<<"$enc"
cd "$repo_root" # relative paths in --config properties

# timed ROUND SIZE MODE TOOL CONFIG DETECTIONS OUTPUT -- COMMAND...: runs COMMAND, logs it, records
# its wall-clock time in runs.tsv.
timed() {
    local round=$1 size=$2 mode=$3 tool=$4 config=$5 det=$6 out=$7
    shift 8
    local log="$rundir/logs/r$round-$size-$mode-$tool${config:+-$config}.log"
    mkdir -p "$rundir/logs"
    local load1 t0 t1 rc=0
    load1=$(cut -d' ' -f1 /proc/loadavg)
    printf '%s\n\n' "$*" >"$log"
    t0=$(date +%s%N)
    "$@" >>"$log" 2>&1 || rc=$?
    t1=$(date +%s%N)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$size" "$mode" "$tool" "$config" \
        "$((t1 - t0))" "$rc" "$load1" "$log" "$det" "$out" >>"$rundir/runs.tsv"
    awk -v r="$round" -v R="$runs" -v s="$size" -v m="$mode" -v t="$tool${config:+ [$config]}" \
        -v ns="$((t1 - t0))" -v n="${nframes[$size]}" -v rc="$rc" -v l="$load1" 'BEGIN {
        printf "[run %d/%d] %-9s %-12s %-32s %8.2f s %8.1f fps  (load %s)%s\n", r, R, s, m, t,
            ns / 1e9, n / (ns / 1e9), l, (rc != 0 ? "  FAILED rc=" rc : "") }'
    if [[ $rc != 0 ]]; then
        log "failed (exit $rc), see $log:"
        tail -n 5 "$log" >&2
    fi
    return 0
}

yolo_props() { # yolo_props INDEX -> the element's properties, one per line
    local p
    read -r -a p <<<"${config_props[$1]}"
    [[ ${#p[@]} -gt 0 ]] && printf '%s\n' "${p[@]}"
    return 0
}

# Reference runs for coverage (untimed): the default model in float32 on ONNX Runtime's CPU
# provider (device=cpu: not OpenVINO's bfloat16) at input-size=640 on every frame, one frame per
# batch, and only what the detector itself reports (hold-frames=0: no tracking).
if [[ $has_detections_file == 1 ]]; then
    for size in "${coverage_sizes[@]}"; do
        log "reference run for coverage at $size"
        gst-launch-1.0 -m filesrc location="${clip[$size]}" ! decodebin ! \
            yoloanonymize device=cpu input-size=640 batch-size=1 $ref_detectors hold-frames=0 detect-interval=1 detections-file="$rundir/ref-$size.jsonl" ! \
            fakesink sync=false >"$rundir/ref-$size.log" 2>&1 ||
            die "reference run failed, see $rundir/ref-$size.log"
    done
else
    log "this build of yoloanonymize has no detections-file property: no coverage figures"
fi

for ((round = 1; round <= runs; round++)); do
    for size in "${sizes[@]}"; do
        in=${clip[$size]}
        outdir=$workdir/out
        # element only
        timed "$round" "$size" element baseline '' '' '' -- \
            gst-launch-1.0 -m filesrc location="$in" ! decodebin ! identity ! fakesink sync=false
        for i in "${!config_names[@]}"; do
            name=${config_names[$i]}
            mapfile -t props < <(yolo_props "$i")
            det=''
            if [[ $has_detections_file == 1 ]]; then
                det=$rundir/det/r$round-$size-$name.jsonl
                mkdir -p "$rundir/det"
                props+=("detections-file=$det")
            fi
            timed "$round" "$size" element yoloanonymize "$name" "$det" '' -- \
                gst-launch-1.0 -m filesrc location="$in" ! decodebin ! yoloanonymize "${props[@]}" ! \
                fakesink sync=false
        done
        if [[ $skip_faceblur == 0 ]]; then
            timed "$round" "$size" element faceblur '' '' '' -- \
                gst-launch-1.0 -m filesrc location="$in" ! decodebin ! videoconvert ! \
                faceblur profile="$faceblur_profile" ! fakesink sync=false
        fi
        # end to end
        out=$outdir/$size-baseline.mp4
        timed "$round" "$size" e2e baseline '' '' "$out" -- \
            gst-launch-1.0 -m filesrc location="$in" ! decodebin ! queue ! \
            x264enc "${enc_props[@]}" ! mp4mux ! filesink location="$out"
        for i in "${!config_names[@]}"; do
            name=${config_names[$i]}
            mapfile -t props < <(yolo_props "$i")
            out=$outdir/$size-yoloanonymize-$name.mp4
            timed "$round" "$size" e2e yoloanonymize "$name" '' "$out" -- \
                gst-launch-1.0 -m filesrc location="$in" ! decodebin ! queue ! \
                yoloanonymize "${props[@]}" ! queue ! x264enc "${enc_props[@]}" ! mp4mux ! \
                filesink location="$out"
        done
        if [[ $skip_faceblur == 0 ]]; then
            out=$outdir/$size-faceblur.mp4
            timed "$round" "$size" e2e faceblur '' '' "$out" -- \
                gst-launch-1.0 -m filesrc location="$in" ! decodebin ! queue ! videoconvert ! \
                faceblur profile="$faceblur_profile" ! videoconvert ! queue ! \
                x264enc "${enc_props[@]}" ! mp4mux ! filesink location="$out"
        fi
        if [[ $skip_deface == 0 ]]; then
            # deface writes its default output, <input>_anonymized.mp4, beside the input.
            out=${in%.*}_anonymized.${in##*.}
            if [[ $deface_own == 1 ]]; then
                timed "$round" "$size" e2e deface '' '' "$out" -- "$deface_bin" "$in"
            else
                timed "$round" "$size" e2e deface '' '' "$out" -- \
                    "$deface_bin" --ffmpeg-config "$deface_config" "$in"
            fi
        fi
    done
done

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$rundir/header.txt"
echo
python3 "$script_dir/report.py" "$rundir"
cp "$rundir/results.md" "$workdir/results.md"
echo
echo "Markdown report: $workdir/results.md (this run: $rundir)"
