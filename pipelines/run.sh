#!/usr/bin/env bash
# Runs a pipeline description from pipelines/ with gst-launch-1.0, filling in its placeholders.
#
#   pipelines/run.sh [gst-launch-1.0 options] FILE.pipeline NAME=VALUE...
#   pipelines/run.sh pipelines/anonymize-file.pipeline INPUT=in.mp4 OUTPUT=out.mp4
#   pipelines/run.sh -m pipelines/rtsp-to-hls.pipeline URL=rtsp://192.168.1.20/stream OUTDIR=hls
#
# Lines starting with # are comments; ${NAME} is replaced by VALUE (no quoting: use paths
# without spaces). The script stops if a placeholder is left unfilled. gst-launch-1.0 runs with
# -e, so Ctrl-C ends the stream cleanly (MP4 files and HLS playlists are finalized); add -m to
# see the element's yoloanonymize-stats messages. When GST_PLUGIN_PATH is not set and this tree
# has a release build, the plugin is taken from target/release.
#
# Media-factory descriptions (in parentheses, for an RTSP server) are served with
#   cargo run --release --example rtsp-serve -- FILE.pipeline NAME=VALUE...
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
opts=(-e)
while (($#)) && [[ "$1" == -* ]]; do
    [[ "$1" == -h || "$1" == --help ]] && {
        sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
    }
    opts+=("$1")
    shift
done
(($#)) || {
    echo "usage: $0 [gst-launch-1.0 options] FILE.pipeline NAME=VALUE..." >&2
    exit 2
}
file=$1
shift
[[ -f "$file" ]] || {
    echo "$file: no such pipeline file" >&2
    exit 2
}

desc=$(sed '/^[[:space:]]*#/d' "$file" | tr '\n' ' ')
for arg in "$@"; do
    [[ "$arg" == *=* ]] || {
        echo "expected NAME=VALUE, got '$arg'" >&2
        exit 2
    }
    name=${arg%%=*}
    value=${arg#*=}
    [[ "$desc" == *"\${$name}"* ]] || {
        echo "$file has no \${$name} placeholder" >&2
        exit 2
    }
    desc=${desc//"\${$name}"/$value}
done
# shellcheck disable=SC2016 # a literal ${NAME}
if left=$(grep -o '\${[A-Za-z0-9_]*}' <<<"$desc" | sort -u | tr '\n' ' ') && [[ -n "$left" ]]; then
    echo "$file: give a value for: $left(as NAME=VALUE)" >&2
    exit 2
fi
if [[ "$desc" =~ ^[[:space:]]*\( ]]; then
    echo "$file is a media-factory launch line for an RTSP server; run it with:" >&2
    echo "  cargo run --release --example rtsp-serve -- $file $*" >&2
    exit 2
fi

if [[ -z "${GST_PLUGIN_PATH:-}" && -f "$here/../target/release/libgstyoloanonymize.so" ]]; then
    export GST_PLUGIN_PATH=$here/../target/release
fi
# The description is split into words as gst-launch-1.0 expects, without globbing.
set -f
# shellcheck disable=SC2086
exec gst-launch-1.0 "${opts[@]}" $desc
