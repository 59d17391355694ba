#!/usr/bin/env bash
# Reproduces samples/vtest-short.mp4: frames 500 to 599 (10 s at 10 fps, 768x576; the busiest
# stretch, with the most people) of OpenCV's vtest.avi, re-encoded with GStreamer to H.264
# (x264enc, constant quality 18, a keyframe every 10 frames, no B-frames) in MP4 and restamped
# from 0, then checks that it decodes to exactly 100 frames stamped 0.0 s, 0.1 s, ..., 9.9 s and
# that they are the intended source frames. See samples/README.md for provenance and licence.
#
# Usage: samples/make-sample.sh [OUTPUT]      (default: samples/vtest-short.mp4)
# Environment:
#   YOLOANONYMIZE_VTEST=/path/to/vtest.avi (or VTEST_AVI=...)
#                                  use this copy instead of downloading Debian's opencv-doc package
#                                  (its sha256 is checked either way)
#   FIRST_FRAME=500 FRAMES=100     which frames to cut (vtest.avi has 795)
# Without them it takes ../shared/media/vtest.avi beside the repository or
# /work/shared/media/vtest.avi where there is one (scripts/common.sh's ya_find_vtest), else runs
# `apt-get download opencv-doc=4.6.0+dfsg-12` (about 96 MB, no root needed, but the apt lists must
# be current: `apt-get update` as root first if the download fails).
# Needs GStreamer 1.22 with x264enc (gstreamer1.0-plugins-ugly), mp4mux (gstreamer1.0-plugins-good)
# and avdec_msmpeg4 (gstreamer1.0-libav), and python3-gi with gir1.2-gstreamer-1.0 (gst-launch-1.0
# cannot seek, and the cut starts with an accurate seek).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
YA_LOG_TAG=make-sample
# shellcheck source=scripts/common.sh
. "$here/../scripts/common.sh" # log, die, ya_find_vtest

FIRST_FRAME=${FIRST_FRAME:-500}
FRAMES=${FRAMES:-100}
FPS=10 # vtest.avi's frame rate

output=${1:-$here/vtest-short.mp4}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python=${PYTHON:-/usr/bin/python3} # Debian's python3, where python3-gi lives

for el in x264enc mp4mux h264parse avdec_msmpeg4 avidemux appsink; do
    gst-inspect-1.0 "$el" >/dev/null 2>&1 || die "GStreamer element $el is missing (see the header of this script)."
done
"$python" -c 'import gi; gi.require_version("Gst", "1.0"); from gi.repository import Gst' 2>/dev/null ||
    die "$python cannot import GStreamer's Python bindings (Debian: apt-get install python3-gi gir1.2-gstreamer-1.0)."

# --- 1. vtest.avi ----------------------------------------------------------------------------
# shellcheck source=models/tools.sh
. "$here/../models/tools.sh"
find_vtest "$work"
src=$vtest_avi
log "vtest.avi: $src (sha256 OK)"

# --- 2. Cut and encode -----------------------------------------------------------------------
# An accurate seek to [FIRST_FRAME, FIRST_FRAME + FRAMES) / FPS: avidemux starts at the keyframe
# before, and the decoder drops the frames outside the segment; mp4mux writes running time, so
# the clip starts at 0. B-frames are off, so the MP4 needs no edit list. threads=1 makes x264's
# output the same on every run (mp4mux still writes the current time into the file header).
cat >"$work/cut.py" <<'PY'
import sys
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst

src, out, start_ns, stop_ns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
Gst.init(None)
pipeline = Gst.parse_launch(
    "filesrc name=src ! avidemux ! avdec_msmpeg4 name=dec ! videoconvert ! video/x-raw,format=I420"
    " ! x264enc threads=1 speed-preset=medium pass=qual quantizer=18 key-int-max=10 bframes=0"
    " ! video/x-h264,profile=high ! h264parse ! mp4mux faststart=true ! filesink name=sink")
pipeline.get_by_name("src").set_property("location", src)
pipeline.get_by_name("sink").set_property("location", out)
bus = pipeline.get_bus()

def wait(types):
    msg = bus.timed_pop_filtered(120 * Gst.SECOND, types | Gst.MessageType.ERROR)
    if msg is None:
        sys.exit("cut.py: timed out")
    if msg.type == Gst.MessageType.ERROR:
        err, dbg = msg.parse_error()
        sys.exit(f"cut.py: {err.message} ({dbg})")
    return msg

pipeline.set_state(Gst.State.PAUSED)
wait(Gst.MessageType.ASYNC_DONE)
# Seek from the decoder upstream (avidemux handles it); a seek sent to the pipeline would also
# reach filesink, whose segment is in bytes.
if not pipeline.get_by_name("dec").seek(1.0, Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.ACCURATE,
                     Gst.SeekType.SET, start_ns, Gst.SeekType.SET, stop_ns):
    sys.exit("cut.py: seek refused")
wait(Gst.MessageType.ASYNC_DONE)
pipeline.set_state(Gst.State.PLAYING)
wait(Gst.MessageType.EOS)
pipeline.set_state(Gst.State.NULL)
PY
start_ns=$((FIRST_FRAME * 1000000000 / FPS))
stop_ns=$(((FIRST_FRAME + FRAMES) * 1000000000 / FPS))
log "Encoding frames $FIRST_FRAME to $((FIRST_FRAME + FRAMES - 1)) ..."
"$python" "$work/cut.py" "$src" "$work/cut.mp4" "$start_ns" "$stop_ns"
[[ -s "$work/cut.mp4" ]] || die "the encoder produced no output."

# --- 3. Check: exactly FRAMES frames, stamped 0, 1/FPS, 2/FPS, ... ------------------------------
# basesink logs the start time of every buffer it receives, from the streaming thread, so this
# sees each frame once (unlike gst-launch -v's last-message notifications).
GST_DEBUG=basesink:5 GST_DEBUG_NO_COLOR=1 gst-launch-1.0 -q filesrc location="$work/cut.mp4" \
    ! decodebin ! fakesink 2>&1 >/dev/null |
    sed -n 's/.*gst_base_sink_chain_unlocked.*got times start: \([0-9:.]*\),.*/\1/p' >"$work/pts.txt"
for ((i = 0; i < FRAMES; i++)); do
    ns=$((i * 1000000000 / FPS))
    printf '%d:%02d:%02d.%09d\n' $((ns / 3600000000000)) $((ns / 60000000000 % 60)) \
        $((ns / 1000000000 % 60)) $((ns % 1000000000))
done >"$work/expected.txt"
if ! cmp -s "$work/pts.txt" "$work/expected.txt"; then
    diff "$work/expected.txt" "$work/pts.txt" | head -n 20 >&2 || true
    die "the clip does not decode to $FRAMES frames with timestamps 0, 1/$FPS s, ... (got $(wc -l <"$work/pts.txt") frames)."
fi
caps=$(gst-launch-1.0 -v filesrc location="$work/cut.mp4" ! decodebin ! fakesink 2>&1 |
    grep -o 'video/x-raw[^"]*' | head -n1) || true
[[ "$caps" == *"width=(int)768"* && "$caps" == *"height=(int)576"* ]] ||
    die "unexpected decoded caps: $caps"

# ... and its first, middle and last frames are the intended source frames (each is compared,
# scaled down to 96x72 grey, with every source frame near it; the closest must be the right one).
cat >"$work/match.py" <<'PY'
import sys
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst

clip, src, first, frames = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
Gst.init(None)

def grey_frames(path, count):
    p = Gst.parse_launch("filesrc name=f ! decodebin ! videoconvert ! videoscale"
                         " ! video/x-raw,format=GRAY8,width=96,height=72 ! appsink name=s sync=false")
    p.get_by_name("f").set_property("location", path)
    sink = p.get_by_name("s")
    p.set_state(Gst.State.PLAYING)
    out = []
    while len(out) < count:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        buf = sample.get_buffer()
        out.append(buf.extract_dup(0, buf.get_size()))
    p.set_state(Gst.State.NULL)
    return out

def mad(a, b):
    return sum(abs(x - y) for x, y in zip(a, b)) / len(a)

c = grey_frames(clip, frames)
s = grey_frames(src, first + frames + 5)
for k in (0, frames // 2, frames - 1):
    lo, hi = max(0, first + k - 5), min(len(s), first + k + 6)
    best = min(range(lo, hi), key=lambda i: mad(c[k], s[i]))
    print(f"clip frame {k} = source frame {best} (mean abs difference {mad(c[k], s[best]):.2f}/255)")
    if best != first + k or mad(c[k], s[best]) > 3:
        sys.exit(f"clip frame {k} is not source frame {first + k}")
PY
"$python" "$work/match.py" "$work/cut.mp4" "$src" "$FIRST_FRAME" "$FRAMES" | sed 's/^/    /' ||
    die "the clip's frames are not source frames $FIRST_FRAME.. (see above)."

mkdir -p "$(dirname "$output")"
mv -f "$work/cut.mp4" "$output"
log "Wrote $output: $FRAMES frames (source frames $FIRST_FRAME-$((FIRST_FRAME + FRAMES - 1))), 768x576, $FPS fps, pts 0 .. $(tail -n1 "$work/pts.txt"); sha256 $(sha256sum "$output" | cut -d' ' -f1)"
