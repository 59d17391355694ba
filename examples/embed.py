#!/usr/bin/env python3
"""Embedding yoloanonymize in a Python application, with PyGObject.

    GST_PLUGIN_PATH=target/release python3 examples/embed.py INPUT [OUTPUT.mp4]

Builds ``filesrc ! decodebin ! yoloanonymize ! appsink`` element by element (with OUTPUT, a
``tee`` after yoloanonymize also feeds ``queue ! videoconvert ! x264enc ! mp4mux ! filesink``),
prints one line per frame with the regions the element redacted, then a summary from the
``yoloanonymize-stats`` message it posts at EOS. Warnings go to stderr; an error stops the
pipeline and exits with status 1 and the message on stderr. Needs Debian's python3-gi,
gir1.2-gstreamer-1.0 and gir1.2-gst-plugins-base-1.0 (run it with /usr/bin/python3 if another
python3 comes first on your PATH).

Where the regions come from. The element attaches a GstVideoRegionOfInterestMeta to each buffer
for every redacted region (what examples/embed.rs reads), but PyGObject on GStreamer 1.22 can
read only the first of them: Gst.Buffer.iterate_meta() is not introspectable,
Gst.Buffer.foreach_meta() needs a writable buffer (a buffer held by Python never is), and
GstVideo.buffer_get_video_region_of_interest_meta_id() looks a meta up by id, which is 0 for all
of them. So, per buffer, this reads what it can from the metas (how many regions; the first one,
which is a ``whole-frame`` region when the frame could not be analysed) and takes the full list
of regions from the element's ``detections-file`` (one JSON line per output frame, in the same
order as the metas), which is complete once EOS has reached the sink. It checks that both agree.
"""

import itertools
import json
import os
import sys
import tempfile

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstVideo", "1.0")
    gi.require_version("GstApp", "1.0")
    from gi.repository import GLib, Gst, GstApp, GstVideo  # noqa: F401 (GstApp: appsink's API)
except (ImportError, ValueError) as e:
    sys.exit(
        f"embed.py: cannot load PyGObject's GStreamer bindings ({e}); on Debian install "
        "python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 and use /usr/bin/python3"
    )

# What to redact and how (see the Properties section of the README).
PROPERTIES = {
    "targets": "face",
    "method": "pixelate",
    "batch-size": "4",
    "conf-threshold": "0.25",
    # Frames the model could not analyse leave pixelated whole, with a warning on the bus.
    "on-failure": "redact-frame",
}

Gst.init(None)
ROI_API = GstVideo.VideoRegionOfInterestMeta.get_info().api


class Error(Exception):
    """An error to report on stderr before exiting with status 1."""


def main(argv):
    if len(argv) not in (2, 3):
        print("usage: embed.py INPUT [OUTPUT.mp4]", file=sys.stderr)
        return 2
    fd, audit = tempfile.mkstemp(prefix="yoloanonymize-", suffix=".jsonl")
    os.close(fd)
    try:
        run(argv[1], argv[2] if len(argv) == 3 else None, audit)
    except Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        os.unlink(audit)
    return 0


def run(input_path, output_path, audit):
    pipeline, appsink = build_pipeline(input_path, output_path, audit)
    seen = []  # what the metas of each buffer say, in output order
    appsink.connect("new-sample", on_new_sample, seen)

    bus = pipeline.get_bus()
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        # The element that failed (e.g. filesrc on a missing file) has posted the reason.
        msg = bus.timed_pop_filtered(Gst.SECOND, Gst.MessageType.ERROR)
        pipeline.set_state(Gst.State.NULL)
        raise Error(error_text(msg) if msg else "the pipeline could not start")

    summary = None
    try:
        while True:
            msg = bus.timed_pop_filtered(
                Gst.CLOCK_TIME_NONE,
                Gst.MessageType.EOS
                | Gst.MessageType.ERROR
                | Gst.MessageType.WARNING
                | Gst.MessageType.ELEMENT,
            )
            if msg.type == Gst.MessageType.EOS:
                break
            if msg.type == Gst.MessageType.ERROR:
                raise Error(error_text(msg))
            if msg.type == Gst.MessageType.WARNING:
                err, _debug = msg.parse_warning()
                print(f"warning from {msg.src.get_path_string()}: {err.message}", file=sys.stderr)
                continue
            s = msg.get_structure()
            if s is not None and s.get_name() == "yoloanonymize-stats":
                # Posted every second of stream time, and once more at EOS with the totals.
                if s.get_value("eos"):
                    summary = summary_text(s)
                else:
                    print(
                        f"progress: {s.get_value('frames')} frames, {s.get_value('fps'):.1f} fps",
                        file=sys.stderr,
                    )
    finally:
        pipeline.set_state(Gst.State.NULL)

    with open(audit, encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    if len(records) != len(seen):
        raise Error(
            f"{len(seen)} frames reached the appsink but detections-file has {len(records)}"
        )
    for number, (meta, record) in enumerate(zip(seen, records)):
        print(describe_frame(number, meta, record))
    if summary:
        print(summary)


def build_pipeline(input_path, output_path, audit):
    """``filesrc ! decodebin ! yoloanonymize ! appsink``, plus an encoding branch if asked."""
    pipeline = Gst.Pipeline.new("embed")
    src = make("filesrc", location=input_path)
    decode = make("decodebin")
    anonymize = make("yoloanonymize")
    for name, value in PROPERTIES.items():
        Gst.util_set_object_arg(anonymize, name, value)  # parses enums and flags from strings
    anonymize.set_property("detections-file", audit)
    # sync=false: as fast as possible, not at the clip's frame rate.
    appsink = make("appsink", sync=False, **{"emit-signals": True})

    for element in (src, decode, anonymize, appsink):
        pipeline.add(element)
    link(src, decode)
    if output_path is None:
        link(anonymize, appsink)
    else:
        tee, to_appsink, to_file = make("tee"), make("queue"), make("queue")
        convert, mux = make("videoconvert"), make("mp4mux")
        # zerolatency: x264enc gives a frame out per frame in. With its default look-ahead it
        # holds more frames than the appsink branch's queue buffers while the appsink waits for
        # the pipeline to reach PLAYING, and the tee would block both branches.
        encode = make("x264enc")
        Gst.util_set_object_arg(encode, "speed-preset", "veryfast")
        Gst.util_set_object_arg(encode, "tune", "zerolatency")
        sink = make("filesink", location=output_path)
        for element in (tee, to_appsink, to_file, convert, encode, mux, sink):
            pipeline.add(element)
        link(anonymize, tee, to_appsink, appsink)
        link(tee, to_file, convert, encode, mux, sink)

    # decodebin creates its source pads once it knows what the file holds: link the first video
    # one to yoloanonymize, and fail clearly if there is none.
    anonymize_sink = anonymize.get_static_pad("sink")

    def on_pad_added(_decode, pad):
        caps = pad.get_current_caps()
        is_video = caps is not None and caps.get_structure(0).get_name().startswith("video/")
        if is_video and not anonymize_sink.is_linked():
            result = pad.link(anonymize_sink)
            if result != Gst.PadLinkReturn.OK:
                post_error(decode, f"Cannot link the decoded video to yoloanonymize: {result}")

    def on_no_more_pads(_decode):
        if not anonymize_sink.is_linked():
            post_error(decode, "The input has no video stream")

    decode.connect("pad-added", on_pad_added)
    decode.connect("no-more-pads", on_no_more_pads)
    return pipeline, appsink


def on_new_sample(appsink, seen):
    """Called on the streaming thread for every frame that reaches the appsink."""
    buf = appsink.emit("pull-sample").get_buffer()
    seen.append({"pts": buf.pts, "regions": buf.get_n_meta(ROI_API), "first": first_region(buf)})
    return Gst.FlowReturn.OK


def first_region(buf):
    """The buffer's first region-of-interest meta as (kind, x, y, w, h, detail), or None."""
    roi = GstVideo.buffer_get_video_region_of_interest_meta_id(buf, 0)
    if roi is None:
        return None
    detection = roi.get_param("detection")  # a redacted region
    failure = roi.get_param("yoloanonymize")  # a frame pixelated whole: it could not be analysed
    if detection is not None:
        detail = f"conf {detection.get_value('confidence'):.2f}"
    elif failure is not None:
        detail = f'reason "{failure.get_value("reason")}"'
    else:
        detail = ""
    return (GLib.quark_to_string(roi.roi_type), roi.x, roi.y, roi.w, roi.h, detail)


def describe_frame(number, meta, record):
    """``frame N pts T regions K: kind x,y wxh conf C; ...``, as examples/embed.rs prints it."""
    regions = []  # (kind, x, y, w, h, detail) in the order of the buffer's metas
    if record["redacted_whole"]:
        regions.append(meta["first"])  # the "whole-frame" region comes first
    for r in record["regions"]:
        w, h = r["x1"] - r["x0"], r["y1"] - r["y0"]
        regions.append((r["kind"], r["x0"], r["y0"], w, h, f"conf {r['score']:.2f}"))
    # The file and the metas describe the same regions, in the same order.
    if len(regions) != meta["regions"] or (regions and regions[0][:5] != meta["first"][:5]):
        raise Error(f"frame {number}: the region metas and detections-file disagree")
    pts = meta["pts"]
    if record["pts"] != (None if pts == Gst.CLOCK_TIME_NONE else pts):
        raise Error(f"frame {number}: detections-file has pts {record['pts']}, the buffer {pts}")
    line = f"frame {number} pts {format_time(pts)} regions {len(regions)}"
    if not regions:
        return line
    return f"{line}: " + "; ".join(f"{k} {x},{y} {w}x{h} {d}" for k, x, y, w, h, d in regions)


def summary_text(s):
    """One line from the ``yoloanonymize-stats`` message posted at EOS."""
    v = s.get_value
    return (
        f"summary: {v('frames')} frames, {v('analysed')} analysed in {v('batches')} batches, "
        f"{v('people')} people, {v('regions')} regions, "
        f"{v('frames-redacted-whole')} redacted whole, {v('frames-late')} late; "
        f"{v('fps'):.1f} fps, {v('inference-ms-per-batch'):.1f} ms inference per batch"
    )


def make(factory, **properties):
    element = Gst.ElementFactory.make(factory, None)
    if element is None:
        hint = (
            ": set GST_PLUGIN_PATH to the directory holding libgstyoloanonymize.so "
            "(target/release after cargo build --release)"
            if factory == "yoloanonymize"
            else " (is its GStreamer plugin package installed?)"
        )
        raise Error(f"no GStreamer element {factory!r}{hint}")
    for name, value in properties.items():
        element.set_property(name, value)
    return element


def link(*elements):
    for a, b in itertools.pairwise(elements):
        if not a.link(b):
            raise Error(f"cannot link {a.get_name()} to {b.get_name()}")


def post_error(element, text):
    error = GLib.Error.new_literal(Gst.core_error_quark(), text, Gst.CoreError.NEGOTIATION)
    element.post_message(Gst.Message.new_error(element, error, None))


def error_text(msg):
    err, debug = msg.parse_error()
    text = f"from {msg.src.get_path_string()}: {err.message}"
    return f"{text}\n{debug}" if debug else text


def format_time(ns):
    """Like GStreamer's GST_TIME_FORMAT: 0:00:01.200000000."""
    if ns == Gst.CLOCK_TIME_NONE:
        return "--:--:--.---------"
    s, frac = divmod(ns, Gst.SECOND)
    return f"{s // 3600}:{s // 60 % 60:02}:{s % 60:02}.{frac:09}"


if __name__ == "__main__":
    sys.exit(main(sys.argv))
