#!/usr/bin/env bash
# Temporal-safety coverage (issue 4): how many of a per-frame reference run's eye and face regions
# stay covered, in every frame, with hold-frames 0 and the default, and with detect-interval 1, 2
# and 4, and at what speed.
#
#   benches/temporal.sh [--frames N] [--input FILE] [--workdir DIR]
#
# --input defaults to vtest.avi as scripts/common.sh's ya_find_vtest finds it
# ($YOLOANONYMIZE_VTEST, else ../shared/media/vtest.avi beside the repository, else
# /work/shared/media/vtest.avi).
#
# Reference: the default model in float32 on ONNX Runtime's CPU provider (device=cpu), at
# input-size=640, every frame, batch-size=1, hold-frames=0 (only what the detector reports),
# targets=eyes+face. Each configuration runs element-only
# (decodebin ! yoloanonymize targets=eyes+face ... ! fakesink), timed by wall clock, with its own
# detections-file; a reference region counts as covered when >= 95% of its area lies inside the
# union of the configuration's redacted regions in that frame (benches/coverage.py).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/.." && pwd -P)
YA_LOG_TAG=temporal
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
frames=795
input=''
workdir=/tmp/yoloanonymize-temporal
while (($#)); do
    case $1 in
    --frames) frames=$2; shift 2 ;;
    --input) input=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--frames N] [--input FILE] [--workdir DIR]" >&2; exit 2 ;;
    esac
done
if [[ -z $input ]]; then
    ya_find_vtest || die "vtest.avi not found: set YOLOANONYMIZE_VTEST or give --input FILE"
    input=$YA_VTEST
fi
[[ -f $input ]] || die "input not found: $input"
export GST_PLUGIN_PATH="$repo/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
mkdir -p "$workdir"
echo "# $0 --frames $frames --input $input"
echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$repo" rev-parse --short HEAD)"

# The first N frames as raw I420, so every run decodes nothing and sees exactly the same frames.
raw=$workdir/input-$frames.yuv
caps="video/x-raw,format=I420,width=768,height=576,framerate=10/1"
if [[ ! -s $raw ]]; then
    gst-launch-1.0 -q filesrc location="$input" ! parsebin ! decodebin ! identity eos-after=$((frames + 1)) \
        ! videoconvert ! videoscale ! "$caps" ! filesink location="$raw"
fi
src="filesrc location=$raw blocksize=$((768 * 576 * 3 / 2)) ! rawvideoparse width=768 height=576 format=i420 framerate=10/1"

run() { # NAME PROPS -> prints nanoseconds
    local name=$1 props=$2 t0 t1
    t0=$(date +%s%N)
    # shellcheck disable=SC2086
    gst-launch-1.0 -q $src ! yoloanonymize targets=eyes+face $props detections-file="$workdir/$name.jsonl" \
        ! fakesink sync=false >"$workdir/$name.log" 2>&1
    t1=$(date +%s%N)
    echo $((t1 - t0))
}

run reference "device=cpu batch-size=1 hold-frames=0 detect-interval=1 input-size=640" >/dev/null
printf '\n| configuration | frames/s | eye regions covered | frames with an uncovered eye region | face regions covered | frames with an uncovered face region |\n|---|---|---|---|---|---|\n'
for cfg in "hold-frames=0" "default" "detect-interval=2" "detect-interval=4"; do
    props=$cfg
    [[ $cfg == default ]] && props=""
    ns=$(run "cfg-${cfg//=/-}" "$props")
    fps=$(awk -v f="$frames" -v ns="$ns" 'BEGIN { printf "%.1f", f * 1e9 / ns }')
    eyes=$(python3 "$here/coverage.py" "$workdir/reference.jsonl" "$workdir/cfg-${cfg//=/-}.jsonl" --kind eyes)
    face=$(python3 "$here/coverage.py" "$workdir/reference.jsonl" "$workdir/cfg-${cfg//=/-}.jsonl" --kind face)
    cell() { sed -E 's/^[a-z]+ regions covered: ([0-9]+\/[0-9]+ \([0-9.n\/a%]+\)); frames with an uncovered [a-z]+ region: ([0-9]+)( \(first: [^)]*\))?.*/\1|\2\3/' <<<"$1"; }
    IFS='|' read -r ecov ebad <<<"$(cell "$eyes")"
    IFS='|' read -r fcov fbad <<<"$(cell "$face")"
    printf '| %s | %s | %s | %s | %s | %s |\n' "$cfg" "$fps" "$ecov" "$ebad" "$fcov" "$fbad"
done

# Flicker: how long the detector loses a person it finds again. A run with a long hold keeps each
# person's track through gaps of up to 50 frames; every gap between two detections of a track is
# a run of frames in which, without holding, that person's face would have been published.
run gaps "hold-frames=50" >/dev/null
python3 - "$workdir/gaps.jsonl" <<'PY'
import collections, json, sys
seen = collections.defaultdict(list)
for line in open(sys.argv[1]):
    rec = json.loads(line)
    for p in rec["people"]:
        if p["source"] == "detected":
            seen[p["track"]].append(rec["frame"])
gaps = [b - a - 1 for frames in seen.values() for a, b in zip(frames, frames[1:]) if b - a > 1]
frames_lost = sum(gaps)
print(f"\nFlicker gaps (frames between two detections of the same person, tracked with hold-frames=50): "
      f"{len(gaps)} gaps, {frames_lost} person-frames, over {len(seen)} tracks")
print("| gap length (frames) | gaps | person-frames |\n|---|---|---|")
for lo, hi in [(1, 1), (2, 2), (3, 3), (4, 5), (6, 10), (11, 25), (26, 50)]:
    g = [x for x in gaps if lo <= x <= hi]
    print(f"| {lo if lo == hi else f'{lo}-{hi}'} | {len(g)} | {sum(g)} |")
for h in (0, 2, 3, 5, 8, 10):
    covered = sum(min(x, h) for x in gaps)
    whole = sum(1 for x in gaps if x <= h)
    pct = 100.0 * covered / frames_lost if frames_lost else 100.0
    print(f"hold-frames={h}: {whole}/{len(gaps)} gaps closed entirely, {pct:.1f}% of the lost person-frames covered")
PY
echo
echo "Files: $workdir (reference.jsonl, cfg-*.jsonl); compare any two with benches/coverage.py A B --kind eyes|face"
