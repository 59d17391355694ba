#!/usr/bin/env bash
# Many streams in one process: 1, 2, 4 and 8 copies of a clip through one gst-launch-1.0
# pipeline (one `decodebin ! yoloanonymize ! fakesink` branch per copy), with the elements sharing
# one inference worker (shared-worker=auto, the default) versus one session per stream
# (shared-worker=none). Prints total frames/s (all streams' frames over the wall time, model
# loading included), peak resident memory of the process, and how many batches ran together with
# another stream's. Every run is checked: each element must report, at EOS, as many frames as
# went in. Runs are interleaved (shared, private, shared, ...) and the median is reported.
#
# Usage: benches/streams.sh [--frames N] [--runs R] [--streams "1 2 4 8"] [--input FILE]
#                           [--props "PROPS"] [--workdir DIR]
#   --frames N    the first N frames of the input for every stream (default 200)
#   --input FILE  the clip (default: vtest.avi as scripts/common.sh's ya_find_vtest finds it:
#                 $YOLOANONYMIZE_VTEST, ../shared/media/vtest.avi beside the repository, ...)
#   --runs R      runs of every configuration (default 3)
#   --props       extra yoloanonymize properties for every element, e.g. "batch-size=8"
# Needs the plugin built (target/release, or GST_PLUGIN_PATH) and GNU time (/usr/bin/time).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
YA_LOG_TAG=streams
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

frames=200 runs=3 streams="1 2 4 8" input='' props=''
workdir=/tmp/yoloanonymize-streams
while [[ $# -gt 0 ]]; do
    case "$1" in
    --frames) frames=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --streams) streams=$2; shift 2 ;;
    --input) input=$2; shift 2 ;;
    --props) props=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
done
if [[ -z "$input" ]]; then
    ya_find_vtest || die "vtest.avi not found: set YOLOANONYMIZE_VTEST or give --input FILE"
    input=$YA_VTEST
fi
[[ -f "$input" ]] || die "input not found: $input"
[[ -x /usr/bin/time ]] || die "GNU time is needed (Debian package time)"
export GST_PLUGIN_PATH=${GST_PLUGIN_PATH:-$repo_root/target/release}
gst-inspect-1.0 yoloanonymize >/dev/null 2>&1 || die "yoloanonymize not found in $GST_PLUGIN_PATH (build it: cargo build --release)"
mkdir -p "$workdir"

# The first $frames frames, decoded once and stored as raw-ish lossless H.264 so that every run
# decodes the same thing cheaply.
clip=$workdir/$(basename "${input%.*}")-${frames}f.mp4
if [[ ! -s "$clip" ]]; then
    gst-launch-1.0 -q filesrc location="$input" ! decodebin ! identity eos-after=$((frames + 1)) \
        ! videoconvert ! video/x-raw,format=I420 ! x264enc pass=quant quantizer=18 key-int-max=10 \
        ! mp4mux ! filesink location="$clip.tmp" && mv "$clip.tmp" "$clip"
fi
# Frames a decoder gives (each scaled to 4x1 GRAY8: 4 bytes a frame).
bytes=$(gst-launch-1.0 -q filesrc location="$clip" ! decodebin ! videoconvert ! videoscale \
    ! video/x-raw,format=GRAY8,width=4,height=1 ! fdsink fd=1 | wc -c)
n=$((bytes / 4))

run() { # mode streams -> "fps rss_mb merged"
    local mode=$1 k=$2 desc='' i log
    for ((i = 0; i < k; i++)); do
        desc+=" filesrc location=$clip ! decodebin ! yoloanonymize name=y$i shared-worker=$mode $props ! fakesink sync=false"
    done
    log=$workdir/run-$mode-$k.log
    # shellcheck disable=SC2086
    /usr/bin/time -f 'TIME %e %M' -o "$log.time" gst-launch-1.0 -m $desc >"$log" 2>&1 ||
        die "the $mode run with $k streams failed: see $log"
    local done_ok merged
    done_ok=$(grep -c "yoloanonymize-stats, .*eos=(boolean)true, .*frames=(guint64)$n," "$log" || true)
    [[ $done_ok == "$k" ]] || die "$mode, $k streams: $done_ok of $k elements reported $n frames at EOS (see $log)"
    merged=$(grep "yoloanonymize-stats, .*eos=(boolean)true" "$log" | sed -n 's/.*batches-merged=(guint64)\([0-9]*\).*/\1/p' | awk '{s += $1} END {print s + 0}')
    read -r _ secs kb <"$log.time"
    awk -v s="$secs" -v kb="$kb" -v f=$((n * k)) -v m="$merged" 'BEGIN { printf "%.1f %.0f %d\n", f / s, kb / 1024, m }'
}

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

echo "streams.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "input: $clip ($n frames per stream); runs: $runs; extra properties: ${props:-none}"
declare -A fps rss merged
for k in $streams; do
    for ((r = 0; r < runs; r++)); do
        for mode in auto none; do
            read -r f m g < <(run "$mode" "$k")
            fps[$mode,$k]+="$f "
            rss[$mode,$k]+="$m "
            merged[$mode,$k]+="$g "
            echo "  $k streams, shared-worker=$mode, run $((r + 1)): $f frames/s, peak RSS $m MiB, batches merged $g" >&2
        done
    done
done
echo
echo "| streams | shared worker: frames/s | one session per stream: frames/s | shared / per-stream | peak RSS shared | peak RSS per-stream | batches run with another stream's (shared) |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for k in $streams; do
    fa=$(tr ' ' '\n' <<<"${fps[auto,$k]}" | grep . | median)
    fn=$(tr ' ' '\n' <<<"${fps[none,$k]}" | grep . | median)
    ra=$(tr ' ' '\n' <<<"${rss[auto,$k]}" | grep . | median)
    rn=$(tr ' ' '\n' <<<"${rss[none,$k]}" | grep . | median)
    ga=$(tr ' ' '\n' <<<"${merged[auto,$k]}" | grep . | median)
    awk -v k="$k" -v fa="$fa" -v fn="$fn" -v ra="$ra" -v rn="$rn" -v ga="$ga" \
        'BEGIN { printf "| %d | %.1f | %.1f | %.2fx | %d MiB | %d MiB | %d |\n", k, fa, fn, fa / fn, ra, rn, ga }'
done
echo
echo "Frames/s and memory are medians of $runs runs; batches merged is the median total over the streams."
