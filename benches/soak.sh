#!/usr/bin/env bash
# Soak test of the yoloanonymize element: runs it on the sample clip played over and over
# (splitmuxsrc over N links to samples/vtest-short.mp4: people in every frame, timestamps that
# keep growing) and samples the resident memory (VmRSS) of the process every second. Prints the
# frames, the minutes, and the RSS at start (once the first frames are out), after one minute and
# at the end, so that a leak shows as growth between the last two.
#
# Usage: benches/soak.sh [options]
#   --frames N         frames to anonymize, rounded up to whole plays of the 100-frame clip
#                      (default 2000: a few minutes on a small CPU)
#   --props "P=V ..."  extra yoloanonymize properties (e.g. "device=cpu batch-size=8")
#   --plugin-path DIR  where libgstyoloanonymize.so is (default $GST_PLUGIN_PATH, else
#                      <repo>/target/release)
#   --workdir DIR      links, logs and samples (default /tmp/yoloanonymize-soak)
#   -h, --help
#
# Writes <workdir>/rss.tsv (seconds, frames so far, VmRSS and VmHWM in KiB) and
# <workdir>/messages.log (gst-launch-1.0 -m). Exits non-zero when the pipeline fails or
# anonymizes fewer frames than asked for. Timings on a shared machine are not figures; the
# memory figures are.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)

# log (on stderr, as the progress is) and die.
YA_LOG_TAG=soak YA_LOG_FD=2
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

frames=2000 props='' workdir=/tmp/yoloanonymize-soak
plugin_path=${GST_PLUGIN_PATH:-$repo_root/target/release}
need_arg() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value (try --help)"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
    --frames) need_arg "$@"; frames=$2; shift 2 ;;
    --props) need_arg "$@"; props=$2; shift 2 ;;
    --plugin-path) need_arg "$@"; plugin_path=$2; shift 2 ;;
    --workdir) need_arg "$@"; workdir=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
done
[[ "$frames" =~ ^[1-9][0-9]*$ ]] || die "--frames: expected a positive number, got '$frames'"
sample=$repo_root/samples/vtest-short.mp4
[[ -f "$sample" ]] || die "$sample is missing"
command -v gst-launch-1.0 >/dev/null || die "gst-launch-1.0 not found (apt-get install gstreamer1.0-tools)"
export GST_PLUGIN_PATH=$plugin_path
gst-inspect-1.0 yoloanonymize >/dev/null 2>&1 ||
    die "no yoloanonymize element in $plugin_path (build it with cargo build --release, or give --plugin-path)"

# samples/vtest-short.mp4 holds 100 frames (samples/README.md); the count is checked at the end.
clip_frames=100
parts=$(((frames + clip_frames - 1) / clip_frames))
frames=$((parts * clip_frames))

mkdir -p "$workdir/parts"
find "$workdir/parts" -name 'part*.mp4' -type l -delete
for ((i = 0; i < parts; i++)); do
    ln -s "$sample" "$(printf '%s/parts/part%06d.mp4' "$workdir" "$i")"
done

# shellcheck disable=SC2086 # $props: properties, split on purpose
pipeline=(splitmuxsrc "location=$workdir/parts/part*.mp4" ! h264parse ! avdec_h264 ! videoconvert
    ! yoloanonymize $props ! fakesink sync=false)
log "running: gst-launch-1.0 -m ${pipeline[*]}"
log "$parts links to $sample ($clip_frames frames each) in $workdir/parts"

log=$workdir/messages.log tsv=$workdir/rss.tsv
printf 'seconds\tframes\trss_kib\thwm_kib\n' >"$tsv"
gst-launch-1.0 -m "${pipeline[@]}" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT

# Frames out so far: the last count of the element's statistics (posted every second of stream).
frames_so_far() {
    grep -o 'yoloanonymize-stats.*' "$log" | grep -o 'frames=(guint64)[0-9]*' | tail -n1 | grep -o '[0-9]*$' || echo 0
}

t0=$(date +%s.%N)
start_t='' start_rss='' minute_rss='' end_rss='' end_hwm='' end_t=''
while kill -0 "$pid" 2>/dev/null; do
    status=$(cat "/proc/$pid/status" 2>/dev/null) || break
    rss=$(awk '/^VmRSS:/ { print $2 }' <<<"$status")
    hwm=$(awk '/^VmHWM:/ { print $2 }' <<<"$status")
    [[ -n "$rss" ]] || break
    now=$(date +%s.%N)
    t=$(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.1f", b - a }')
    done_frames=$(frames_so_far)
    printf '%s\t%s\t%s\t%s\n' "$t" "$done_frames" "$rss" "$hwm" >>"$tsv"
    if [[ -z "$start_t" && "$done_frames" -gt 0 ]]; then
        start_t=$t start_rss=$rss
    fi
    if [[ -n "$start_t" && -z "$minute_rss" ]] && awk -v t="$t" -v s="$start_t" 'BEGIN { exit !(t - s >= 60) }'; then
        minute_rss=$rss minute_frames=$done_frames
    fi
    end_rss=$rss end_hwm=$hwm end_t=$t
    sleep 1
done
rc=0
wait "$pid" || rc=$?
trap - EXIT
t_end=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

[[ "$rc" -eq 0 ]] || die "gst-launch-1.0 failed (status $rc); see $log"
grep -q 'eos=(boolean)true' "$log" || die "the element posted no final statistics; see $log"
final=$(grep 'yoloanonymize-stats' "$log" | grep 'eos=(boolean)true' | tail -n1 | grep -o 'frames=(guint64)[0-9]*' | grep -o '[0-9]*$')
[[ "$final" -eq "$frames" ]] || die "anonymized $final frames, asked for $frames; see $log"

mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
echo "soak: $final frames in $(awk -v t="$t_end" 'BEGIN { printf "%.1f", t / 60 }') minutes (wall clock; timings on a shared machine are not figures)"
echo "soak: RSS at start (first frames out, at ${start_t:-?} s): $(mib "${start_rss:-0}")"
if [[ -n "$minute_rss" ]]; then
    echo "soak: RSS after one minute (at frame $minute_frames): $(mib "$minute_rss")"
else
    echo "soak: RSS after one minute: n/a (the run ended within a minute of its first frames; use --frames to run longer)"
fi
echo "soak: RSS at the end (last sample, at $end_t s): $(mib "$end_rss"); peak (VmHWM) $(mib "$end_hwm")"
if [[ -n "$minute_rss" ]]; then
    echo "soak: growth from one minute to the end: $(awk -v a="$minute_rss" -v b="$end_rss" 'BEGIN { printf "%+.1f MiB", (b - a) / 1024 }')"
fi
echo "soak: samples in $tsv"
