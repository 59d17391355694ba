#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then anonymizes a video with the freshly built plugin and
# checks the result: it must be a playable MP4 with a video stream and as many frames as the input.
#
# Usage: scripts/quickstart.sh [INPUT [OUTPUT]]
#   INPUT   any file GStreamer's decodebin can read (default samples/vtest-short.mp4)
#   OUTPUT  H.264 MP4 to write (default out/vtest-short-anonymized.mp4, or out/<input name>-anonymized.mp4)
# Relative paths are taken from the current directory; the defaults live in the repository.
set -euo pipefail

YA_LOG_TAG=quickstart
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

case "${1:-}" in
-h | --help)
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
esac
(($# <= 2)) || ya_die "too many arguments (usage: scripts/quickstart.sh [INPUT [OUTPUT]])"

input=${1:-$YA_REPO_ROOT/samples/vtest-short.mp4}
if (($# >= 2)); then
    output=$2
elif (($# == 1)); then
    base=$(basename "$input")
    output=$YA_REPO_ROOT/out/${base%.*}-anonymized.mp4
else
    output=$YA_REPO_ROOT/out/vtest-short-anonymized.mp4
fi
[[ -f "$input" ]] || ya_die "input file not found: $input"

bash "$YA_REPO_ROOT/scripts/setup.sh"

export GST_PLUGIN_PATH="$YA_REPO_ROOT/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
gst-inspect-1.0 yoloanonymize >/dev/null 2>&1 ||
    ya_die "GStreamer cannot load the yoloanonymize element from $YA_REPO_ROOT/target/release (run: GST_PLUGIN_PATH=$YA_REPO_ROOT/target/release gst-inspect-1.0 yoloanonymize)."

# Number of decoded video frames in $1: each frame is scaled to 4x1 GRAY8, exactly 4 bytes, and
# the raw bytes are counted (gst-launch's -v "last-message" lines are not reliable for counting).
count_frames() {
    local bytes
    bytes=$(gst-launch-1.0 -q filesrc location="$1" ! decodebin ! videoconvert ! videoscale \
        ! video/x-raw,format=GRAY8,width=4,height=1 ! fdsink fd=1 | wc -c) ||
        ya_die "could not decode $1"
    ((bytes % 4 == 0)) || ya_die "frame counting of $1 gave $bytes bytes, not a multiple of 4"
    echo $((bytes / 4))
}

mkdir -p "$(dirname "$output")"
ya_log "Anonymizing $input -> $output"
start=$(date +%s)
# videoconvert is a no-op when the formats already match; it is there so that inputs in any raw
# format, and whatever the element outputs, reach x264enc in a format it takes.
gst-launch-1.0 -q filesrc location="$input" ! decodebin ! videoconvert ! yoloanonymize \
    ! videoconvert ! x264enc ! mp4mux ! filesink location="$output" ||
    ya_die "the anonymizing pipeline failed"
elapsed=$(($(date +%s) - start))

# The output must be a readable file with a video stream and a non-zero duration.
command -v gst-discoverer-1.0 >/dev/null 2>&1 ||
    ya_die "gst-discoverer-1.0 not found (Debian package gstreamer1.0-plugins-base-apps)."
info=$(gst-discoverer-1.0 "$output" 2>&1) || {
    printf '%s\n' "$info" >&2
    ya_die "gst-discoverer-1.0 cannot read $output"
}
duration=$(sed -n 's/^ *Duration: *//p' <<<"$info" | head -n1)
grep -Eq '^ *video( #[0-9]+)?:' <<<"$info" || {
    printf '%s\n' "$info" >&2
    ya_die "$output has no video stream"
}
[[ -n "$duration" && ! "$duration" =~ ^[0:.]+$ ]] || {
    printf '%s\n' "$info" >&2
    ya_die "$output has no duration (got '${duration:-none}')"
}

in_frames=$(count_frames "$input")
out_frames=$(count_frames "$output")
display=$output
[[ "$display" == "$YA_REPO_ROOT/"* ]] && display=${display#"$YA_REPO_ROOT/"}
if ((in_frames != out_frames)); then
    ya_die "wrote $display with $out_frames frames but the input had $in_frames"
fi
((out_frames > 0)) || ya_die "$display has no frames"
echo "Wrote $display ($out_frames frames, input had $in_frames; duration $duration; anonymizing took ${elapsed}s)"
