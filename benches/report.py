#!/usr/bin/env python3
"""Turns one bench.sh run directory into the benchmark report.

  report.py RUNDIR

Reads RUNDIR/meta.tsv, RUNDIR/runs.tsv, the gst-launch logs (for the yoloanonymize-stats message),
the detections-files and the output clips; prints plain-text tables and writes RUNDIR/results.md.
Python 3 standard library only (the ONNX operation count runs onnx_flops.py in the virtualenv
named in meta.tsv, when there is one).
"""
import csv
import json
import math
import os
import re
import statistics
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coverage  # noqa: E402
import mp4info  # noqa: E402

# Ultralytics, https://docs.ultralytics.com/tasks/pose/ (YOLO11 pose table): YOLO11n-pose,
# size 640, params 2.9 M, "FLOPs (B)" 7.6, i.e. 7.6e9 operations per 640x640 image, counting a
# multiply-accumulate as two.
ULTRALYTICS_GFLOPS_640 = 7.6
ULTRALYTICS_SOURCE = ("Ultralytics' published figure for YOLO11n-pose, 7.6 GFLOPs at 640x640 "
                      "(https://docs.ultralytics.com/tasks/pose/, column 'FLOPs (B)'), scaled by "
                      "the network input's area / 640^2")
STATS_RE = re.compile(r"yoloanonymize-stats, (.*?);?\s*$")
FIELD_RE = re.compile(r'([\w-]+)=\((\w+)\)("(?:[^"\\]|\\.)*"|[^,]+)')
STAGES = ["preprocess-ms", "inference-ms", "decode-ms", "redact-ms", "wait-ms"]


# ----------------------------------------------------------------------------------------------
# Tables


class Table:
    def __init__(self, title, headers, note=None):
        self.title, self.headers, self.rows, self.note = title, headers, [], note

    def add(self, *row):
        self.rows.append([("" if c is None else str(c)) for c in row])

    @staticmethod
    def _numeric(col):
        return all(re.match(r"^[-+]?[\d.]+(x|%| s)?$|^n/a$|^$|^-$", c) for c in col)

    def text(self):
        cols = list(zip(self.headers, *self.rows)) if self.rows else [(h,) for h in self.headers]
        widths = [max(len(c) for c in col) for col in cols]
        right = [self._numeric(col[1:]) and len(col) > 1 for col in cols]
        def line(cells):
            return "  ".join(c.rjust(w) if r else c.ljust(w)
                             for c, w, r in zip(cells, widths, right)).rstrip()
        out = [f"== {self.title} ==", line(self.headers), line(["-" * w for w in widths])]
        out += [line(r) for r in self.rows]
        if self.note:
            out.append(self.note)
        return "\n".join(out)

    def markdown(self):
        cols = list(zip(self.headers, *self.rows)) if self.rows else [(h,) for h in self.headers]
        right = [self._numeric(col[1:]) and len(col) > 1 for col in cols]
        out = [f"### {self.title}", "", "| " + " | ".join(self.headers) + " |",
               "|" + "|".join("---:" if r else "---" for r in right) + "|"]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in self.rows]
        if self.note:
            out += ["", self.note]
        return "\n".join(out)


def fmt_fps(v):
    if v is None:
        return "n/a"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def fmt_ratio(v):
    if v is None:
        return "n/a"
    return f"{v:.2f}x" if v >= 0.1 else f"{v:.3f}x"


def fmt_ms(v):
    return "n/a" if v is None else f"{v:.2f}"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ----------------------------------------------------------------------------------------------
# Inputs


def read_meta(rundir):
    meta = {"nframes": {}, "configs": []}
    with open(os.path.join(rundir, "meta.tsv"), encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "nframes":
                meta["nframes"][parts[1]] = int(parts[2])
            elif parts[0] == "config":
                meta["configs"].append((parts[1], parts[2] if len(parts) > 2 else ""))
            else:
                meta[parts[0]] = parts[1] if len(parts) > 1 else ""
    meta["sizes"] = meta["sizes"].split()
    meta["coverage_sizes"] = meta.get("coverage_sizes", "").split()
    return meta


def read_runs(rundir):
    with open(os.path.join(rundir, "runs.tsv"), encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    for r in rows:
        r["round"] = int(r["round"])
        r["elapsed"] = int(r["elapsed_ns"]) / 1e9
        r["rc"] = int(r["rc"])
        r["stats"] = parse_stats(r["log"]) if r["tool"] == "yoloanonymize" else None
    return rows


def parse_stats(log):
    """The totals of a gst-launch -m log's yoloanonymize-stats messages, as a dict: the message
    with eos=true when the element marks it (it may also post the message periodically), else
    the last one; None if there is none."""
    found = []
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = STATS_RE.search(line)
                if m:
                    found.append(m.group(1))
    except OSError:
        return None
    if not found:
        return None
    final = [f for f in found if re.search(r"(^|, )eos=\(boolean\)(true|1)\b", f)]
    stats = {}
    for name, typ, value in FIELD_RE.findall((final or found)[-1]):
        value = value.strip()
        if typ in ("double", "float"):
            stats[name] = float(value)
        elif typ in ("guint64", "gint64", "uint", "int", "guint", "gint"):
            stats[name] = int(value)
        elif typ == "boolean":
            stats[name] = value.lower() == "true"
        else:
            stats[name] = value.strip('"')
    return stats


def props_dict(props):
    d = {}
    for p in props.split():
        if "=" in p:
            k, v = p.split("=", 1)
            d[k] = v
    return d


def label(mode, tool, config):
    if tool == "baseline":
        return "decode only (identity)" if mode == "element" else "no anonymizer (x264enc)"
    if tool == "yoloanonymize":
        return f"yoloanonymize [{config}]"
    if tool == "deface":
        return "deface 1.5.0"
    return tool


# ----------------------------------------------------------------------------------------------
# Network size and operation counts


def letterbox(src_w, src_h, input_size):
    """The element's dynamic-model network input (src/preprocess.rs Letterbox::new)."""
    s = max(32, -(-input_size // 32) * 32)
    scale = s / max(src_w, src_h)
    def side(v):
        inner = min(max(int(math.floor(v * scale + 0.5)), 1), s)
        return max(1, -(-inner // 32)) * 32
    return side(src_w), side(src_h)


def onnx_counts(meta, model, nets):
    py = meta.get("onnx_python")
    if not py or not os.path.exists(py) or not os.path.exists(model):
        return None
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onnx_flops.py")
    try:
        out = subprocess.run([py, script, model] + sorted(nets), check=True, capture_output=True,
                             text=True, timeout=600).stdout
        return json.loads(out)
    except (subprocess.SubprocessError, json.JSONDecodeError, OSError) as e:
        print(f"report.py: counting operations of {model} failed: {e}", file=sys.stderr)
        return None


def analysed_frames(stats, props):
    """Frames the model actually ran on, and how that was found."""
    for key in ("frames-analysed", "frames-analyzed", "analysed", "analysed-frames",
                "inferred-frames"):
        if key in stats:
            return stats[key], f"stats {key}"
    k = int(props.get("detect-interval", "1") or 1)
    if k > 1:
        return -(-stats["frames"] // k), f"frames / detect-interval {k}, rounded up"
    return stats["frames"], "all frames"


# ----------------------------------------------------------------------------------------------


def main(argv):
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    rundir = argv[1]
    meta = read_meta(rundir)
    runs = read_runs(rundir)
    sizes, configs = meta["sizes"], meta["configs"]
    config_props = {name: props_dict(p) for name, p in configs}
    nruns = max((r["round"] for r in runs), default=0)
    warnings = []
    tables = []

    def select(size, mode, tool, config=""):
        return [r for r in runs
                if (r["size"], r["mode"], r["tool"], r["config"]) == (size, mode, tool, config)]

    def fps_of(r):
        return meta["nframes"][r["size"]] / r["elapsed"] if r["rc"] == 0 else None

    # Throughput -------------------------------------------------------------------------------
    order = [("element", "baseline", "")] + [("element", "yoloanonymize", c) for c, _ in configs]
    order += [("element", "faceblur", ""), ("e2e", "baseline", "")]
    order += [("e2e", "yoloanonymize", c) for c, _ in configs]
    order += [("e2e", "faceblur", ""), ("e2e", "deface", "")]
    med = {}
    t = Table(f"Throughput: median frames/s over {nruns} interleaved run(s), wall-clock of the "
              f"whole process",
              ["size", "frames", "pipeline", "tool", "median s", "median fps", "each run (fps)"],
              "element-only: filesrc ! decodebin ! <tool> ! fakesink sync=false (faceblur with "
              "videoconvert before it). end-to-end: filesrc ! decodebin ! queue ! <tool> ! queue ! "
              "x264enc ENC ! mp4mux ! filesink (faceblur between two videoconverts; the baseline is "
              "decodebin ! queue ! x264enc); deface reads the MP4 and writes its own MP4.")
    for size in sizes:
        for mode, tool, config in order:
            rs = select(size, mode, tool, config)
            if not rs:
                continue
            fps = [fps_of(r) for r in rs]
            ok = [r["elapsed"] for r in rs if r["rc"] == 0]
            med[(size, mode, tool, config)] = median(fps)
            each = " / ".join(fmt_fps(v) if v is not None else f"FAILED(rc={r['rc']})"
                              for v, r in zip(fps, rs))
            t.add(size, meta["nframes"][size], "element-only" if mode == "element" else "end-to-end",
                  label(mode, tool, config), f"{median(ok):.2f}" if ok else "n/a",
                  fmt_fps(median(fps)) if ok else "FAILED", each)
            for r in rs:
                if r["rc"] != 0:
                    warnings.append(f"{size} {mode} {label(mode, tool, config)} run {r['round']} "
                                    f"failed (exit {r['rc']}): {r['log']}")
    tables.append(t)

    # Ratios -----------------------------------------------------------------------------------
    t = Table("yoloanonymize relative to the others: ratio of median frames/s (>1: yoloanonymize "
              "is faster)",
              ["size", "config", "pipeline", "vs deface", "vs faceblur", "vs baseline"],
              "baseline = decode only (element-only) or decode + x264enc without anonymizer "
              "(end-to-end), so 'vs baseline' is the fraction of the bare pipeline's speed that is "
              "left. deface has no element-only mode (it always decodes and encodes): n/a there.")
    for size in sizes:
        for config, _ in configs:
            for mode in ("element", "e2e"):
                y = med.get((size, mode, "yoloanonymize", config))
                def ratio(tool):
                    other = med.get((size, mode, tool, ""))
                    return fmt_ratio(y / other) if y and other else "n/a"
                t.add(size, config, "element-only" if mode == "element" else "end-to-end",
                      ratio("deface"), ratio("faceblur"), ratio("baseline"))
    tables.append(t)

    # Stages -----------------------------------------------------------------------------------
    extra_ms = sorted({k for r in runs if r["stats"] for k in r["stats"]
                       if k.endswith("-ms") and k not in STAGES})
    stage_names = STAGES + extra_ms
    t = Table("Inside yoloanonymize (yoloanonymize-stats at EOS): ms per frame, median over runs",
              ["size", "config", "pipeline", "frames", "batches", "people", "regions",
               "whole-frame"] + [s[:-3] for s in stage_names] + ["wall"],
              "preprocess (colour conversion + letterbox into the batch tensor), decode (model "
              "output to detections) and redact run on the streaming thread; inference runs on the "
              "element's inference thread, overlapping them; wait = time the streaming thread "
              "waited for the inference thread. wall = the whole process's wall-clock / frames.")
    have_stats = False
    for size in sizes:
        for config, _ in configs:
            for mode in ("element", "e2e"):
                rs = [r for r in select(size, mode, "yoloanonymize", config) if r["rc"] == 0]
                st = [r["stats"] for r in rs if r["stats"]]
                if not rs:
                    continue
                if not st:
                    warnings.append(f"{size} {mode} yoloanonymize [{config}]: no "
                                    "yoloanonymize-stats message in the logs")
                    continue
                have_stats = True
                n = meta["nframes"][size]
                for s in st:
                    if s.get("frames") != n:
                        warnings.append(f"{size} {mode} yoloanonymize [{config}]: stats report "
                                        f"{s.get('frames')} frames, the clip has {n}")
                    for key in ("frames-passed-unanalysed", "frames-late",
                                "frames-redacted-whole"):
                        if s.get(key):
                            warnings.append(f"{size} {mode} yoloanonymize [{config}]: {key} = "
                                            f"{s[key]}")
                def m(key):
                    return median([s.get(key) for s in st])
                per = [fmt_ms(median([s[k] / s["frames"] for s in st if k in s and s["frames"]]))
                       for k in stage_names]
                wall = median([1000 * r["elapsed"] / n for r in rs])
                t.add(size, config, "element-only" if mode == "element" else "end-to-end",
                      m("frames"), m("batches"), m("people"), m("regions"),
                      m("frames-redacted-whole"), *per, fmt_ms(wall))
    if have_stats:
        tables.append(t)

    # GFLOP/s ----------------------------------------------------------------------------------
    t = Table("Inference arithmetic: achieved GFLOP/s = frames analysed x GFLOPs per frame / "
              "inference seconds (median over element-only runs)",
              ["size", "config", "model", "net input", "GFLOPs/frame (ONNX count)",
               "GFLOPs/frame (Ultralytics, scaled)", "frames analysed", "inference s",
               "GFLOP/s (ONNX count)", "GFLOP/s (Ultralytics)"])
    nets_by_model = {}
    plan = []
    for size in sizes:
        w, h = (int(v) for v in size.split("x"))
        for config, _ in configs:
            props = config_props[config]
            model = props.get("model", meta.get("default_model", ""))
            if model and not os.path.isabs(model):
                model = os.path.join(meta["repo_root"], model)
            net = letterbox(w, h, int(props.get("input-size", "640")))
            nets_by_model.setdefault(model, set()).add(f"{net[0]}x{net[1]}")
            plan.append((size, config, props, model, net))
    counts = {m: onnx_counts(meta, m, nets) for m, nets in nets_by_model.items()}
    for size, config, props, model, net in plan:
        c = counts.get(model)
        net_s = f"{net[0]}x{net[1]}"
        g_onnx = None
        if c:
            if c.get("fixed_input"):
                fh, fw = c["fixed_input"]
                net, net_s = (fw, fh), f"{fw}x{fh} (fixed by the model)"
            entry = next(iter(c["sizes"].values())) if c.get("fixed_input") else c["sizes"].get(
                f"{net[0]}x{net[1]}")
            if entry:
                g_onnx = entry["gflops"]
                if entry.get("unknown"):
                    warnings.append(f"{model}: {entry['unknown']} Conv/MatMul nodes without a "
                                    "known shape were not counted")
        g_ul = ULTRALYTICS_GFLOPS_640 * net[0] * net[1] / (640 * 640)
        # The pose model's own time: the face detector's share of the inference thread's time
        # is taken out; a configuration without the pose model has no figure here.
        def pose_s(r):
            st = r["stats"]
            return (st["inference-ms"] - st.get("face-inference-ms", 0.0)) / 1000
        if "pose" not in props.get("detectors", "pose"):
            continue
        rs = [r for r in select(size, "element", "yoloanonymize", config)
              if r["rc"] == 0 and r["stats"] and "inference-ms" in r["stats"]]
        if not rs:
            continue
        af = [analysed_frames(r["stats"], props) for r in rs]
        inf_s = median([pose_s(r) for r in rs])
        frames_an = median([a for a, _ in af])
        def rate(g):
            if g is None:
                return "n/a"
            v = median([a * g / pose_s(r) for (a, _), r in zip(af, rs) if pose_s(r) > 0])
            return "n/a" if v is None else f"{v:.1f}"
        t.add(size, config, os.path.basename(model), net_s,
              "n/a" if g_onnx is None else f"{g_onnx:.2f}", f"{g_ul:.2f}",
              f"{frames_an:g} ({af[0][1]})", f"{inf_s:.2f}", rate(g_onnx), rate(g_ul))
    t.note = ("GFLOPs per frame: 'ONNX count' = 2 x multiply-accumulates of every Conv and MatMul "
              "in the model graph at that input size (benches/onnx_flops.py: Conv MACs = Cout x "
              "Cin/groups x kh x kw x Hout x Wout; at 640x640 the bundled model counts 7.47); "
              f"'Ultralytics' = {ULTRALYTICS_SOURCE} (valid for YOLO11n-pose only). The network "
              "input keeps the frame's aspect ratio: long side input-size, short side rounded up to "
              "a multiple of 32. inference s = the inference thread's time in ONNX Runtime's run "
              "call for the pose model, all batches (the face detector's time, face-inference-ms, "
              "taken out; configurations without the pose model are not listed).")
    if t.rows:
        tables.append(t)

    # Coverage ---------------------------------------------------------------------------------
    if meta.get("has_detections_file") == "1":
        t = Table("Privacy coverage: reference eye regions covered by each configuration's "
                  "redactions (worst of the element-only runs)",
                  ["size", "config", "eye regions covered", "covered %",
                   "frames with an uncovered eye", "runs agree", "first uncovered frames"],
                  "Reference: yoloanonymize input-size=640 batch-size=1 with the default model on "
                  "every frame. An eye region counts as covered when >= 95% of its area lies inside "
                  "the union of the configuration's redacted regions in the same frame (any kind; a "
                  "frame redacted whole covers everything).")
        for size in meta["coverage_sizes"]:
            ref_path = os.path.join(rundir, f"ref-{size}.jsonl")
            if not os.path.exists(ref_path):
                warnings.append(f"no reference detections at {size}")
                continue
            ref = coverage.load(ref_path)
            for config, _ in configs:
                results = []
                for r in select(size, "element", "yoloanonymize", config):
                    if r["rc"] == 0 and r["detections"] and os.path.exists(r["detections"]):
                        results.append(coverage.compare(ref, coverage.load(r["detections"])))
                if not results:
                    t.add(size, config, "n/a", "n/a", "n/a", "", "")
                    continue
                worst = min(results, key=lambda s: (s["covered"], -s["frames_uncovered"]))
                agree = all((s["covered"], s["frames_uncovered"]) ==
                            (worst["covered"], worst["frames_uncovered"]) for s in results)
                for s in results:
                    if s["missing_frames"]:
                        warnings.append(f"{size} [{config}]: {s['missing_frames']} frames missing "
                                        "from the detections-file")
                pct = "n/a" if worst["percent"] is None else f"{worst['percent']:.2f}%"
                t.add(size, config, f"{worst['covered']}/{worst['eye_regions']}", pct,
                      worst["frames_uncovered"], "yes" if agree else "no",
                      " ".join(str(i) for i in worst["uncovered_frame_list"][:8]) or "-")
            if ref and all(not r.get("regions") for r in ref.values()):
                warnings.append(f"the reference run at {size} redacted nothing")
        tables.append(t)

    # Encoders and output checks ---------------------------------------------------------------
    enc_lines = [f"GStreamer end-to-end pipelines: x264enc {meta['enc']}"]
    if not any(r["tool"] == "deface" for r in runs):
        enc_lines.append("deface: not run")
    elif meta.get("deface_own") == "1":
        enc_lines.append("deface: its own default encoder (imageio-ffmpeg, libx264, preset medium, "
                         "CRF 23): NOT the same settings as the GStreamer pipelines")
    else:
        enc_lines.append(f"deface: --ffmpeg-config '{meta.get('deface_config', '')}' "
                         "(its imageio-ffmpeg's own ffmpeg and libx264 build)")
    last = {}
    for r in runs:
        if r["output"]:
            last[r["output"]] = r
    for out, r in sorted(last.items()):
        if r["rc"] != 0 or not os.path.exists(out):
            continue
        n = mp4info.video_frames(out)
        if n != meta["nframes"][r["size"]]:
            warnings.append(f"{out}: {n} frames, the input has {meta['nframes'][r['size']]}")
    for size in sizes:
        gst = [r for r in runs if (r["size"], r["mode"], r["tool"]) == (size, "e2e", "baseline")]
        dfc = [r for r in runs if (r["size"], r["tool"]) == (size, "deface")]
        if not gst or not dfc or not os.path.exists(gst[-1]["output"]) or not os.path.exists(
                dfc[-1]["output"]):
            continue
        a, b = mp4info.x264_options(gst[-1]["output"]), mp4info.x264_options(dfc[-1]["output"])
        if not a or not b:
            continue
        def opts(s):
            return dict(kv.split("=", 1) for kv in s.split("options:", 1)[-1].split() if "=" in kv)
        oa, ob = opts(a), opts(b)
        diff = [f"{k}: {oa.get(k, '-')} vs {ob.get(k, '-')}" for k in sorted(set(oa) | set(ob))
                if oa.get(k) != ob.get(k)]
        core = lambda s: " ".join(s.split(" - ")[0:2])  # noqa: E731
        enc_lines.append(f"{size}: x264 settings written in the streams, GStreamer ({core(a)}) vs "
                         f"deface ({core(b)}): " + ("identical" if not diff else
                                                     "differ in " + "; ".join(diff)))
        break
    for r in runs:
        if r["tool"] == "faceblur" and r["rc"] == 0:
            with open(r["log"], encoding="utf-8", errors="replace") as f:
                # The default profile's failure is printed when the element is made, before
                # the pipeline's profile is set; only a failure to open ours matters.
                if f"Can't open file: '{meta.get('faceblur_profile')}'" in f.read():
                    warnings.append(f"faceblur could not load its cascade: {r['log']}")
                    break
    for r in runs:
        if r["tool"] == "yoloanonymize" and r["rc"] == 0:
            with open(r["log"], encoding="utf-8", errors="replace") as f:
                text = f.read()
            if "pixelated whole" in text or "Could not analyse" in text:
                warnings.append(f"yoloanonymize redacted whole frames it could not analyse: "
                                f"{r['log']}")

    # Output -----------------------------------------------------------------------------------
    header = ""
    hp = os.path.join(rundir, "header.txt")
    if os.path.exists(hp):
        with open(hp, encoding="utf-8") as f:
            header = f.read().rstrip()
    text_parts = [tb.text() for tb in tables]
    text_parts.append("== Encoders ==\n" + "\n".join(enc_lines))
    if warnings:
        text_parts.append("== Warnings ==\n" + "\n".join(f"- {w}" for w in warnings))
    print("\n\n".join(text_parts))
    md = ["# yoloanonymize benchmark", "", "```", header, "```", ""]
    md += [tb.markdown() + "\n" for tb in tables]
    md += ["### Encoders", ""] + [f"- {line}" for line in enc_lines] + [""]
    if warnings:
        md += ["### Warnings", ""] + [f"- {w}" for w in warnings] + [""]
    md += ["Caveats: each time is the wall-clock of a whole process, including start-up and model "
           "loading; other work on the machine adds noise (see the load averages above); deface's "
           "encoder is its own ffmpeg/libx264, configured as listed under Encoders.", ""]
    with open(os.path.join(rundir, "results.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
