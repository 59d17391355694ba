#!/usr/bin/env bash
# Runs yoloanonymize on a GPU machine through ONNX Runtime's CUDA provider and measures it, in one
# command of under 10 minutes: the first GPU run. What it needs beside the working tree is the
# payload scripts/gpu-pack.sh made (.gpu-pack/N/, carried by the device tool); the machine must
# have an NVIDIA driver, python3, and CUDA 13's libraries as NVIDIA's Python packages
# (nvidia-cuda-runtime, nvidia-cublas, nvidia-cudnn-cu13, ...); it needs no GStreamer, no network.
#
# Steps (each timed out on its own; a step that cannot run says what is missing and why):
#   1. assemble: every part's sha256 against .gpu-pack/*/MANIFEST, the archive's, then every file's
#   2. host: glibc and libstdc++ new enough for the Debian 12 build (else lib-fallback/), the OS
#   3. CUDA libraries in NVIDIA's Python packages (found by python3, listed with their versions)
#   4. GStreamer from the payload alone (gst-inspect-1.0 yoloanonymize), the sample decoded
#   5. driver: nvidia-smi and libcuda.so.1; without them it stops here, after step 6's check
#   6. device=cuda registers the CUDA provider (provider cuda:0, the element finding the CUDA
#      libraries by itself; where they were loaded from)
#   7. frames/s and GPU memory at batch-size 1, 8 and 32, float32 and half-precision=true
#   8. 1, 4 and 16 streams through one shared worker (batch-size 8): frames/s, batches merged
#   9. detections of CUDA float32 and float16 against the CPU float32 run on the same 100 frames
#  10. the CLI on the sample with --device cuda
# Results: $OUT/gpu-results.md (Markdown, for benches/results/), $OUT/gpu-check.log, the
# detections files and $OUT/gpu-runs.tar.xz (every run's log); at most 8 files.
#
# Usage: scripts/gpu-check.sh [--stage] [--assemble-only DIR] [--rehearse-cpu]
#   --stage            copy the parts carried in this call to $STAGE and stop (for a payload
#                      that needs several calls: see benches/README-gpu.md)
#   --assemble-only D  step 1 into D, printing each part's and the archive's sha256, then stop
#   --rehearse-cpu     steps 1-4 and 6-10 with device=cpu and few frames, no driver needed: tries
#                      this script's own logic on a machine without a GPU (not a GPU result)
# Environment: OUT (default benches/results/local), YA_GPU_WORK (default /tmp/yoloanonymize-gpu),
#              STAGE (default /tmp/yoloanonymize-gpu-stage), YA_GPU_PACK (default .gpu-pack),
#              YA_GPU_BUDGET (seconds for the whole run, default 540; steps that would not fit
#              are skipped and say so)
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
OUT=${OUT:-$repo/benches/results/local}
work=${YA_GPU_WORK:-/tmp/yoloanonymize-gpu}
STAGE=${STAGE:-/tmp/yoloanonymize-gpu-stage}
packdir=${YA_GPU_PACK:-$repo/.gpu-pack}
budget=${YA_GPU_BUDGET:-540}
mode=full
assemble_dir=""
for ((i = 1; i <= $#; i++)); do
    case "${!i}" in
    --stage) mode=stage ;;
    --assemble-only)
        i=$((i + 1))
        mode=assemble assemble_dir=${!i:-}
        [[ -n $assemble_dir ]] || { echo "gpu-check: --assemble-only needs a folder" >&2; exit 2; }
        ;;
    --rehearse-cpu) mode=rehearse ;;
    -h | --help) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown argument ${!i} (try --help)" >&2; exit 2 ;;
    esac
done

T0=$SECONDS
# log: scripts/common.sh's, with the seconds since the start ("[gpu-check  42s] ...").
YA_LOG_TAG=gpu-check YA_LOG_T0=$T0
# shellcheck source=scripts/common.sh
. "$repo/scripts/common.sh"
# Not common.sh's die: a stop is logged on stdout as "STOPPED: ...", which the log file
# ($OUT/gpu-check.log) is searched for below and the report quotes.
die() { log "STOPPED: $*"; exit "${2:-1}"; }
left() { echo $((budget - (SECONDS - T0))); }
py() { python3 "$@"; }
command -v python3 >/dev/null 2>&1 || die "python3 not found: it assembles the payload and writes the results."

# ---------------------------------------------------------------------------------------------
# 1. Assembling the payload.
manifest=""
for m in "$packdir"/*/MANIFEST "$STAGE/MANIFEST"; do
    [[ -f $m ]] && { manifest=$m; break; }
done

find_part() { # group/name -> path of a copy, if any
    local rel=$1 name=${1#*/} c
    for c in "$packdir/$rel" "$packdir"/*/"$name" "$STAGE/$name"; do
        [[ -f $c ]] && { echo "$c"; return 0; }
    done
    return 1
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [[ $mode == stage ]]; then
    [[ -n $manifest ]] || die "no .gpu-pack/N/MANIFEST here: run scripts/gpu-pack.sh and carry .gpu-pack/N" 1
    mkdir -p "$STAGE"
    cp "$manifest" "$STAGE/MANIFEST"
    n=0
    while read -r rel size want; do
        p=$(find_part "$rel") || continue
        [[ $p == "$STAGE/"* ]] && continue
        got=$(sha "$p")
        [[ $got == "$want" ]] || die "$rel: sha256 $got, the manifest says $want (a damaged copy)"
        cp "$p" "$STAGE/${rel#*/}" && n=$((n + 1))
    done < <(sed -n 's/^part=//p' "$manifest")
    log "staged $n part(s) in $STAGE: $(ls "$STAGE" | grep -c part-) of $(grep -c '^part=' "$manifest") there now"
    exit 0
fi

assemble() { # dest -> payload at dest/payload
    local dest=$1 rel size want p got missing=() archive
    [[ -n $manifest ]] || die "no payload: .gpu-pack/N/MANIFEST is not in this working tree and $STAGE is empty. Run scripts/gpu-pack.sh where the tree was sent from, and name .gpu-pack/1 in the call's carry." 1
    mkdir -p "$dest"
    archive=$(sed -n 's/^archive=//p' "$manifest")
    read -r _ _ arch_sha <<<"$archive"
    if [[ -f $dest/payload/.archive-sha256 && "$(cat "$dest/payload/.archive-sha256")" == "$arch_sha" ]]; then
        log "payload already assembled in $dest/payload (archive sha256 $arch_sha)"
        return 0
    fi
    : >"$dest/payload.tar.xz"
    while read -r rel size want; do
        if ! p=$(find_part "$rel"); then
            missing+=("$rel")
            continue
        fi
        got=$(sha "$p")
        if [[ $got != "$want" ]]; then
            die "part $rel: sha256 $got, the manifest says $want (damaged in transit?)" 1
        fi
        log "part $rel: $size bytes, sha256 $got OK"
        cat "$p" >>"$dest/payload.tar.xz"
    done < <(sed -n 's/^part=//p' "$manifest")
    ((${#missing[@]} == 0)) || die "parts missing: ${missing[*]} (carry their .gpu-pack/N folders, or run --stage in earlier calls)" 1
    got=$(sha "$dest/payload.tar.xz")
    [[ $got == "$arch_sha" ]] || die "archive sha256 $got, the manifest says $arch_sha" 1
    log "archive payload.tar.xz: sha256 $got OK"
    rm -rf "$dest/payload.tmp" "$dest/payload"
    mkdir -p "$dest/payload.tmp"
    # Python's own xz and tar (no xz command needed); `tar -xJf` where Python lacks lzma.
    if ! py - "$dest/payload.tar.xz" "$dest/payload.tmp" <<'PY'; then
import sys, tarfile
with tarfile.open(sys.argv[1], "r:xz") as t:
    kw = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
    t.extractall(sys.argv[2], **kw)
PY
        tar -C "$dest/payload.tmp" -xJf "$dest/payload.tar.xz" || die "cannot unpack $dest/payload.tar.xz (neither Python's lzma nor tar -J)" 1
    fi
    # Every file against the list the pack recorded.
    local bad
    bad=$(cd "$dest/payload.tmp" && sed -n 's/^file //p' "$manifest" | sha256sum -c --quiet 2>&1 | head -5)
    [[ -z $bad ]] || die "unpacked files do not match the manifest: $bad" 1
    log "$(grep -c '^file ' "$manifest") files unpacked and checked (sha256) in $dest/payload"
    echo "$arch_sha" >"$dest/payload.tmp/.archive-sha256"
    mv "$dest/payload.tmp" "$dest/payload"
    rm -f "$dest/payload.tar.xz"
}

if [[ $mode == assemble ]]; then
    assemble "$assemble_dir"
    exit 0
fi

mkdir -p "$OUT" "$work"
results=$work/results.jsonl
: >"$results"
exec > >(tee "$OUT/gpu-check.log") 2>&1
report() { py "$repo/benches/gpu_check.py" report "$results" "$OUT/gpu-results.md" || log "could not write the report"; }
jstr() { py -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }
info() { echo "{\"type\":\"info\",\"key\":$(jstr "$1"),\"value\":$(jstr "$2")}" >>"$results"; }
check() { # step result details
    echo "{\"type\":\"check\",\"step\":$(jstr "$1"),\"result\":$(jstr "$2"),\"details\":$(jstr "$3")}" >>"$results"
    log "$1: $2${3:+ ($3)}"
    report
}
stop() { # why exit-code
    check "stopped" "STOPPED" "$1"
    finish
    exit "${2:-3}"
}
finish() {
    report
    cp "$results" "$OUT/results.jsonl"
    (cd "$work" && tar -cJf "$OUT/gpu-runs.tar.xz" runs 2>/dev/null)
    log "results: $OUT/gpu-results.md"
}
rehearse=0
[[ $mode == rehearse ]] && rehearse=1
info title "$([[ $rehearse == 1 ]] && echo 'REHEARSAL on the CPU (device=cpu), not a GPU result: scripts/gpu-check.sh --rehearse-cpu' || echo 'yoloanonymize on CUDA: scripts/gpu-check.sh results')"
info date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"

t=$SECONDS
(assemble "$work") || stop "the payload could not be assembled: $(grep 'STOPPED' "$OUT/gpu-check.log" | tail -n1 | sed 's/.*STOPPED: //')" 1
P=$work/payload
G=$P/gst
check "1 payload assembled" OK "$(grep -c '^part=' "$manifest") parts, sha256 checked, in $((SECONDS - t)) s; $(sed -n 's/^commit=/commit /p; s/^providers_cuda_stripped=/CUDA provider device code: /p' "$P/FILES" | tr '\n' ';')"
info "build" "$(sed -n 's/^commit=//p' "$P/FILES"), $(sed -n 's/^onnxruntime_gpu_wheel=//p' "$P/FILES" | cut -d' ' -f1), GStreamer $(sed -n 's/^gstreamer=//p' "$P/FILES")"

# ---------------------------------------------------------------------------------------------
# 2. Host.
os=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-?}")
glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
need_glibc=$(sed -n 's/^GLIBC_\([0-9.]*\)$/\1/p' "$P/REQUIRES")
need_cxx=$(sed -n 's/^GLIBCXX_\([0-9.]*\)$/\1/p' "$P/REQUIRES")
info host "$os, kernel $(uname -r), glibc ${glibc:-?}, $(nproc) CPUs"
if [[ -z $glibc ]] || ! ya_version_ge "$glibc" "$need_glibc"; then
    stop "this host's glibc ${glibc:-(unknown)} is older than $need_glibc, which the payload (built on Debian 12) needs; build and pack on an older distribution, or run on a newer host" 4
fi
fallback=""
host_cxx=$( (/sbin/ldconfig -p 2>/dev/null || ldconfig -p 2>/dev/null) | awk '/libstdc\+\+\.so\.6 .*x86-64/ {print $NF; exit}')
have_cxx=""
[[ -n $host_cxx ]] && have_cxx=$(py "$repo/scripts/gpu_elf.py" provides "$host_cxx" 2>/dev/null | sed -n 's/^GLIBCXX_\([0-9.]*\)$/\1/p' | sort -V | tail -n1)
if [[ -z $have_cxx ]] || ! ya_version_ge "$have_cxx" "$need_cxx"; then
    fallback=$G/lib-fallback
fi
check "2 host" OK "glibc $glibc >= $need_glibc; libstdc++ ${have_cxx:-none} $([[ -n $fallback ]] && echo "< $need_cxx: using Debian 12's from lib-fallback/" || echo ">= $need_cxx: the host's")"

# ---------------------------------------------------------------------------------------------
# 3. CUDA 13 libraries in NVIDIA's Python packages.
libs_json=$(py "$repo/benches/gpu_check.py" cuda-libs 2>&1)
libs_summary=$(py -c '
import json, sys
d = json.loads(sys.argv[1])
pk = ", ".join(f"{k} {v}" for k, v in d["packages"].items() if v)
miss = [s for s in ["libcudart.so.13", "libcublasLt.so.13", "libcublas.so.13", "libcurand.so.10", "libcudnn.so.9"] if s not in d["libs"]]
print(("MISSING " + " ".join(miss) if miss else "OK") + "\t" + d["python"] + " " + d["version"] + "; " + pk + "; lib folders: " + " ".join(d["dirs"]))
' "$libs_json" 2>&1) || libs_summary="MISSING	cannot read NVIDIA's Python packages: $libs_json"
check "3 CUDA libraries in Python packages" "${libs_summary%%	*}" "${libs_summary#*	}"
cuda_dirs=$(py -c 'import json,sys; print(":".join(json.loads(sys.argv[1])["dirs"]))' "$libs_json" 2>/dev/null || true)

# ---------------------------------------------------------------------------------------------
# 4. GStreamer from the payload.
mkdir -p "$work/no-gio-modules" "$work/runs"
driver_dir=""
gst_extra=()
gst_env() {
    env "${gst_extra[@]}" LD_LIBRARY_PATH="$G/lib${fallback:+:$fallback}${driver_dir:+:$driver_dir}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        GST_PLUGIN_SYSTEM_PATH_1_0="$G/plugins" GST_PLUGIN_PATH_1_0="$P/plugin" \
        GST_PLUGIN_SCANNER_1_0="$G/libexec/gst-plugin-scanner" GST_REGISTRY_1_0="$work/registry.bin" \
        GIO_MODULE_DIR="$work/no-gio-modules" ORT_DYLIB_PATH="$P/ort/libonnxruntime.so" \
        PATH="$G/bin:$P/bin:$PATH" "$@"
}
rm -f "$work/registry.bin"
if ! insp=$(gst_env timeout 60 gst-inspect-1.0 yoloanonymize 2>&1); then
    stop "gst-inspect-1.0 from the payload cannot load yoloanonymize: $(echo "$insp" | tail -n 3 | tr '\n' ' ')" 5
fi
nplug=$(gst_env timeout 60 gst-inspect-1.0 2>/dev/null | tail -n1)
W=768 H=576 FRAME=$((768 * 576 * 3 / 2))
frames=$work/frames.i420
if [[ ! -s $frames ]]; then
    gst_env timeout 60 gst-launch-1.0 -q filesrc location="$repo/samples/vtest-short.mp4" ! qtdemux ! h264parse \
        ! openh264dec ! videoconvert ! video/x-raw,format=I420,width=$W,height=$H ! filesink location="$frames.tmp" \
        >"$work/runs/decode.log" 2>&1 && mv "$frames.tmp" "$frames"
fi
nframes=$(($(stat -c %s "$frames" 2>/dev/null || echo 0) / FRAME))
((nframes == 100)) || stop "decoding samples/vtest-short.mp4 with the payload's openh264dec gave $nframes frames, not 100: $(tail -n 3 "$work/runs/decode.log" | tr '\n' ' ')" 5
# The models travel in the working tree; the element's default path is this build's source tree.
# (scripts/versions.env: sourced by scripts/common.sh above)
MODEL=$repo/models/$MODEL_FILE
for m in "$MODEL_FILE $MODEL_SHA256" "$MODEL_FP16_FILE $MODEL_FP16_SHA256"; do
    read -r mf ms <<<"$m"
    [[ -f $repo/models/$mf && "$(sha "$repo/models/$mf")" == "$ms" ]] ||
        stop "models/$mf is missing or not the pinned file (sha256 $ms in scripts/versions.env)" 5
done
check "4 GStreamer from the payload" OK "$(echo "$insp" | sed -n 's/^ *Version *//p' | head -n1 | sed 's/^/yoloanonymize /'); $nplug; samples/vtest-short.mp4 decoded by openh264dec: $nframes frames ${W}x$H"

# ---------------------------------------------------------------------------------------------
# 5. The NVIDIA driver.
smi="" driver=""
if command -v nvidia-smi >/dev/null 2>&1; then
    smi=$(timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -n1)
fi
cuda_load() { py -c 'import ctypes, sys
try:
    ctypes.CDLL("libcuda.so.1"); print("ok")
except OSError as e:
    print(e)' 2>&1; }
driver=$(cuda_load)
if [[ $driver != ok ]]; then
    for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib/wsl/lib; do
        if [[ -e $d/libcuda.so.1 ]]; then
            driver_dir=$d
            driver=$(LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" cuda_load)
            break
        fi
    done
fi
have_driver=0
[[ $driver == ok ]] && have_driver=1
if [[ $rehearse == 1 ]]; then
    check "5 NVIDIA driver" "skipped (rehearsal)" "nvidia-smi: ${smi:-not found}; libcuda.so.1: $driver"
elif [[ $have_driver == 1 ]]; then
    check "5 NVIDIA driver" OK "${smi:-nvidia-smi not found}; libcuda.so.1 loads${driver_dir:+ from $driver_dir (added to LD_LIBRARY_PATH)}"
    info gpu "$smi"
else
    check "5 NVIDIA driver" MISSING "libcuda.so.1: $driver; nvidia-smi: ${smi:-not found}"
fi

# GPU memory, polled while a run goes on.
mem_now() { timeout 10 nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -n1; }
mem_poll() { # file
    while :; do
        echo "gpu $(mem_now)"
        timeout 10 nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>/dev/null | sed 's/^/app /'
        sleep 0.2
    done >>"$1"
}

# One gst-launch-1.0 run, recorded: id kind desc timeout params... -- pipeline...
run_gst() {
    local id=$1 kind=$2 desc=$3 tmo=$4 params=() rc t1 t2 pp=""
    shift 4
    while [[ $1 != -- ]]; do params+=(--param "$1"); shift; done
    shift
    local rest
    rest=$(left)
    if ((rest < tmo + 15)); then
        tmo=$((rest - 15))
        if ((tmo < 10)); then
            check "$id" "skipped" "the time budget (${budget} s) is spent"
            return 1
        fi
    fi
    echo "{\"type\":\"command\",\"id\":$(jstr "$id"),\"command\":$(jstr "gst-launch-1.0 -m $*")}" >>"$results"
    if [[ $have_driver == 1 ]] && command -v nvidia-smi >/dev/null 2>&1; then
        echo "base $(mem_now)" >"$work/runs/$id.mem"
        mem_poll "$work/runs/$id.mem" &
        pp=$!
    fi
    t1=$(date +%s.%N)
    gst_env timeout -k 5 "$tmo" gst-launch-1.0 -m "$@" >"$work/runs/$id.log" 2>&1
    rc=$?
    t2=$(date +%s.%N)
    [[ -n $pp ]] && { kill "$pp" 2>/dev/null; wait "$pp" 2>/dev/null; }
    py "$repo/benches/gpu_check.py" record --id "$id" --kind "$kind" --desc "$desc" --log "$work/runs/$id.log" \
        ${pp:+--mem "$work/runs/$id.mem"} --rc "$rc" --wall "$(awk -v a="$t1" -v b="$t2" 'BEGIN {print b - a}')" \
        "${params[@]}" >>"$results"
    report
    log "$id: exit $rc, $(tail -n1 "$results" | py -c 'import json,sys; r=json.load(sys.stdin); print("provider", r["providers"], "steady fps", r["steady_fps"], "frames", r["frames"], "errors", r["errors"][:1])')"
    return "$rc"
}

# ---------------------------------------------------------------------------------------------
# 6. The CUDA provider registers (the element finds the CUDA libraries by itself).
device=cuda
[[ $rehearse == 1 ]] && device=cpu
SRC="filesrc location=$frames blocksize=$FRAME"
RAW="rawvideoparse width=$W height=$H format=i420"
gst_extra=(LD_DEBUG=files LD_DEBUG_OUTPUT="$work/runs/lddebug")
run_gst "6-provider" check "device=$device, 16 frames" 120 batch=1 -- \
    $SRC num-buffers=16 ! $RAW framerate=10/1 ! yoloanonymize name=ya0 model=$MODEL device=$device batch-size=1 ! fakesink sync=false
rc=$?
gst_extra=()
prov=$(tail -n1 "$results" | py -c 'import json,sys; r=json.load(sys.stdin); print(",".join(r["providers"]) or "-", "|", "; ".join(r["errors"] + r["notes"]))')
loaded=$(cat "$work"/runs/lddebug.* 2>/dev/null | sed -n 's/.*file=\([^ ]*\(libcudart\.so\.13\|libcudnn\.so\.9\|libcublas\.so\.13\|libonnxruntime_providers_cuda\.so\)\) .*/\1/p' | sort -u | tr '\n' ' ')
rm -f "$work"/runs/lddebug.*
if [[ $rc == 0 && ${prov%% |*} == "$([[ $rehearse == 1 ]] && echo cpu || echo cuda:0)" ]]; then
    check "6 provider" OK "provider ${prov%% |*}; CUDA libraries loaded: ${loaded:-(none)}"
elif [[ $have_driver == 0 && $rehearse == 0 ]]; then
    stop "no NVIDIA driver: libcuda.so.1 ($driver); nvidia-smi: ${smi:-not found}. The element, with the payload's ONNX Runtime and the Python packages' CUDA libraries, says: ${prov#*| }" 3
elif [[ -n $cuda_dirs ]] && [[ $rehearse == 0 ]]; then
    # The element did not find the libraries by itself: name them, and measure anyway.
    check "6 provider" FAILED "without help: ${prov#*| }; retrying with YOLOANONYMIZE_CUDA_LIB_DIRS=$cuda_dirs"
    export YOLOANONYMIZE_CUDA_LIB_DIRS=$cuda_dirs
    run_gst "6-provider-override" check "device=cuda, YOLOANONYMIZE_CUDA_LIB_DIRS" 120 batch=1 -- \
        $SRC num-buffers=16 ! $RAW framerate=10/1 ! yoloanonymize name=ya0 model=$MODEL device=cuda batch-size=1 ! fakesink sync=false ||
        stop "device=cuda fails even with YOLOANONYMIZE_CUDA_LIB_DIRS: $(tail -n1 "$results" | py -c 'import json,sys; print("; ".join(json.load(sys.stdin)["errors"]))')" 6
else
    stop "device=$device does not start: ${prov#*| }" 6
fi

# ---------------------------------------------------------------------------------------------
# 7-8. Throughput. The frames repeated into one file, read frame by frame; framerate=100/1 makes
# each periodic report cover 100 frames.
scale=1 least=64 DETN=100
[[ $rehearse == 1 ]] && scale=100 least=16 DETN=20
N=$((2000 / scale))
N=$((N < least ? least : N))
reps=$(((N + 99) / 100))
big=$work/frames-x$reps.i420
if [[ ! -s $big ]]; then
    for ((r = 0; r < reps; r++)); do cat "$frames"; done >"$big.tmp" && mv "$big.tmp" "$big"
fi
for prec in fp32 fp16; do
    half=false
    [[ $prec == fp16 ]] && half=true
    for b in 1 8 32; do
        run_gst "7-b$b-$prec" batch "batch-size $b, $prec" 90 batch=$b precision=$prec -- \
            filesrc location="$big" blocksize=$FRAME num-buffers=$N ! $RAW framerate=100/1 \
            ! yoloanonymize name=ya0 model=$MODEL device=$device batch-size=$b half-precision=$half ! fakesink sync=false
    done
done
for k in 1 4 16; do
    n=$(((k == 1 ? 2000 : k == 4 ? 1000 : 500) / scale))
    n=$((n < least ? least : n))
    branches=()
    for ((s = 0; s < k; s++)); do
        branches+=(filesrc location="$big" blocksize=$FRAME num-buffers=$n ! $RAW framerate=100/1
            ! yoloanonymize name=ya$s model=$MODEL device=$device batch-size=8 ! fakesink sync=false)
    done
    run_gst "8-streams-$k" streams "$k streams, one shared worker" 120 batch=8 precision=fp32 streams=$k -- "${branches[@]}"
done

# ---------------------------------------------------------------------------------------------
# 9. Detections against the CPU float32 run, on the sample's 100 frames at their own rate (20
# when rehearsing).
det() { # id device half
    run_gst "9-det-$1" detections "detections, device=$2 half-precision=$3" 120 batch=8 -- \
        $SRC num-buffers=$DETN ! $RAW framerate=10/1 ! yoloanonymize name=ya0 model=$MODEL device=$2 batch-size=8 \
        half-precision=$3 detections-file="$OUT/det-$1.jsonl" ! fakesink sync=false
}
det cpu-fp32 cpu false
det cuda-fp32 $device false
det cuda-fp16 $device true
for c in cuda-fp32 cuda-fp16; do
    if [[ -s $OUT/det-cpu-fp32.jsonl && -s $OUT/det-$c.jsonl ]]; then
        cmp_json=$(py "$repo/benches/gpu_check.py" compare "$OUT/det-cpu-fp32.jsonl" "$OUT/det-$c.jsonl") &&
            echo "$cmp_json" | py -c 'import json,sys; d=json.load(sys.stdin); d["type"]="compare"; d["candidate"]=sys.argv[1]; print(json.dumps(d))' "$c ($device)" >>"$results"
    fi
done
report

# ---------------------------------------------------------------------------------------------
# 10. The CLI, end to end on the sample (decode, anonymize, x264enc, mp4mux).
if (($(left) > 60)); then
    rm -f "$work/cli-out.mp4"
    gst_env timeout 60 yoloanonymize-cli "$repo/samples/vtest-short.mp4" "$work/cli-out.mp4" --device $device --model "$MODEL" \
        >"$work/runs/cli.log" 2>&1
    rc=$?
    check "10 CLI --device $device" "$([[ $rc == 0 && -s $work/cli-out.mp4 ]] && echo OK || echo "FAILED (exit $rc)")" \
        "$(tail -n 2 "$work/runs/cli.log" | tr '\n' ' ' | cut -c1-300); output $(stat -c %s "$work/cli-out.mp4" 2>/dev/null || echo 0) bytes"
fi
check "done" OK "in $((SECONDS - T0)) s"
finish
