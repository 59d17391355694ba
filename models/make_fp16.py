#!/usr/bin/env python3
"""float16 variant of yolo11n-pose-dynamic.onnx, for the element's half-precision option (CUDA),
and the checks of it that run on ONNX Runtime's CPU execution provider. Run it through
models/make-fp16.sh, which creates the virtualenv (onnxruntime, onnx, numpy pinned) and decodes the
frames `eval` reads.

Subcommands:
  convert  onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True), then a
           stable topological sort, onnx.checker (full check), the I/O contract and a CPU run at
           four input shapes
  cpu-ops  which operators ONNX Runtime's CPU EP runs in float32 between inserted Cast nodes
  profile  kernel time per operator type, fp32 and fp16 side by side (why fp16 is not slower)
  eval     fp16 against fp32 on raw RGB frames: raw output differences, persons and confident eyes
           (decode, NMS and matching are quantize_int8.py's)

Speed is measured with `quantize_int8.py bench` (make-fp16.sh does that with CHECK=1).
"""

from __future__ import annotations

import argparse
import collections
import heapq
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto
from onnxruntime.transformers.float16 import convert_float_to_float16

# Shared with the int8 script: frame reading, the I/O signature, sessions, decode + NMS, matching.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from quantize_int8 import (
    compare,
    decode,
    io_signature,
    match,
    open_frames,
    session,
    to_input,
)

ELEM = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16", TensorProto.INT64: "int64"}


def log(*a):
    print("[make_fp16]", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Conversion


def topo_sort(graph: onnx.GraphProto) -> None:
    """Reorder graph.node topologically, keeping the original order wherever it is already valid
    (Kahn's algorithm, always taking the ready node that came first). convert_float_to_float16
    appends the Cast nodes for the float32 graph input and output at the end of the node list, which
    onnx.checker rejects ("Nodes in a graph must be topologically sorted")."""
    nodes = list(graph.node)
    for n in nodes:
        if any(
            a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute
        ):
            raise SystemExit(f"node {n.name} has a subgraph; topo_sort does not handle those")
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    deps = [{producer[x] for x in n.input if x in producer} for n in nodes]
    users = collections.defaultdict(list)
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    missing = [len(d) for d in deps]
    ready = [i for i, m in enumerate(missing) if m == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            missing[u] -= 1
            if missing[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(nodes):
        raise SystemExit("the converted graph has a cycle")
    del graph.node[:]
    graph.node.extend(nodes[i] for i in order)


def elem_counts(model: onnx.ModelProto) -> dict:
    inits = collections.Counter(
        ELEM.get(t.data_type, str(t.data_type)) for t in model.graph.initializer
    )
    params = collections.Counter()
    for t in model.graph.initializer:
        params[ELEM.get(t.data_type, str(t.data_type))] += int(np.prod(t.dims))
    return {"initializers": dict(inits), "initializer_elements": dict(params)}


def cmd_convert(a):
    fp32 = onnx.load(a.model)
    t0 = time.time()
    f16 = convert_float_to_float16(onnx.load(a.model), keep_io_types=True)
    # The converter re-runs ONNX shape inference and leaves its value_info (intermediate tensor
    # types and shapes, float16 where converted) in the model, next to the fp32 export's own. They
    # are optional hints; ONNX Runtime infers types and shapes itself. Drop them all.
    del f16.graph.value_info[:]
    topo_sort(f16.graph)
    f16.metadata_props.add(
        key="precision",
        value=(
            f"float16 weights and computation, float32 input and output: onnxruntime "
            f"{ort.__version__} onnxruntime.transformers.float16.convert_float_to_float16("
            f"keep_io_types=True), onnx {onnx.__version__}; made from {Path(a.model).name}"
        ),
    )
    onnx.checker.check_model(f16, full_check=True)
    onnx.save(f16, a.output)
    log(f"converted in {time.time() - t0:.1f} s; onnx.checker (full_check) OK")

    sig16, sig32 = io_signature(f16), io_signature(fp32)
    if sig16 != sig32:
        raise SystemExit(f"I/O signature differs: {sig16} vs {sig32}")
    s = ort.InferenceSession(a.output, providers=["CPUExecutionProvider"])
    r = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    got = (
        [(i.name, i.type, i.shape) for i in s.get_inputs()],
        [(o.name, o.type, o.shape) for o in s.get_outputs()],
    )
    want = (
        [(i.name, i.type, i.shape) for i in r.get_inputs()],
        [(o.name, o.type, o.shape) for o in r.get_outputs()],
    )
    if got != want:
        raise SystemExit(f"ONNX Runtime sees other inputs/outputs: {got} vs {want}")
    for n, h, w in [(2, 480, 640), (1, 384, 640), (1, 640, 640), (3, 256, 320)]:
        y = s.run(None, {"images": np.full((n, 3, h, w), 114 / 255, np.float32)})[0]
        anchors = sum((h // st) * (w // st) for st in (8, 16, 32))
        assert y.dtype == np.float32 and y.shape == (n, 56, anchors), (y.dtype, y.shape, n, h, w)
        assert np.isfinite(y).all(), (n, h, w)
    c16, c32 = elem_counts(f16), elem_counts(fp32)
    log(f"initializers: fp32 model {c32}, fp16 model {c16}")
    log(
        f"wrote {a.output} ({Path(a.output).stat().st_size} bytes); ONNX Runtime {ort.__version__} "
        f"CPU loads it: inputs {got[0]}, outputs {got[1]}; runs at 2x3x480x640, 1x3x384x640, "
        f"1x3x640x640, 3x3x256x320 with float32 output of the expected shape"
    )


def cmd_cpu_ops(a):
    """The session graph of ONNX Runtime's CPU EP (basic optimizations only, so that fusions do not
    hide the casts): the Cast nodes it inserted and the operators they feed with float32."""
    out = Path(a.workdir) / "fp16-cpu-session.onnx"
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(out)
    ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    m, g = onnx.load(a.model), onnx.load(str(out)).graph
    casts = {n.output[0]: n for n in g.node if n.op_type == "Cast"}
    in_model = collections.Counter(n.op_type for n in m.graph.node)
    in_session = collections.Counter(n.op_type for n in g.node)
    to_f32 = collections.Counter()
    for n in g.node:
        if n.op_type != "Cast" and any(
            i in casts and casts[i].attribute[0].i == TensorProto.FLOAT for i in n.input
        ):
            to_f32[n.op_type] += 1
    gone = in_model - in_session
    added = in_session - in_model
    del gone["Cast"], added["Cast"]
    print(
        f"ONNX Runtime {ort.__version__} CPU EP, session graph with ORT_ENABLE_BASIC "
        f"({out.name}): {in_session['Cast']} Cast nodes (the model has {in_model['Cast']}).\n"
        f"  operators fed float32 by an inserted Cast (of that operator's nodes in the session "
        f"graph): "
        + ", ".join(f"{k} {v}/{in_session[k]}" for k, v in sorted(to_f32.items()))
        + "\n  every other node runs on float16 (or integer) tensors"
        + (
            f"\n  model operators not in the session graph: {dict(sorted(gone.items()))}; added: "
            f"{dict(sorted(added.items()))} (ORT expands an operator without a float16 CPU kernel "
            f"into its ONNX function body where the operator has one, e.g. Softmax)"
            if gone or added
            else ""
        )
    )


def cmd_profile(a):
    """Kernel time per operator type, fp32 and fp16 side by side (ORT's profiler, CPU, the
    element's ORT_ENABLE_ALL): the same batch of frames, runs alternating between the models; per
    operator type the minimum over the runs (the least disturbed by other load), in ms per frame."""
    frames = open_frames(a.frames)
    idx = np.linspace(0, len(frames) - 1, a.batch + 2).round().astype(int)[1:-1]
    x = to_input(frames[idx])
    paths = [a.ref, a.model]
    sess = {}
    for p in paths:
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(a.workdir) / f"profile-{Path(p).stem}")
        sess[p] = ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
    for i in range(a.runs + 1):  # the first run of each is a warm-up
        for p in paths if i % 2 == 0 else paths[::-1]:
            sess[p].run(None, {"images": x})
    res = {}
    for p in paths:
        ev = json.loads(Path(sess[p].end_profiling()).read_text())
        runs = sorted((e for e in ev if e.get("name") == "model_run"), key=lambda e: e["ts"])[1:]
        per = [collections.Counter() for _ in runs]
        for e in ev:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                for k, r in enumerate(runs):
                    if r["ts"] <= e["ts"] <= r["ts"] + r["dur"]:
                        per[k][e["args"]["op_name"]] += e["dur"]
        ms = 1000.0 * len(x)
        res[p] = {
            "ops": {o: min(c[o] for c in per) / ms for o in set().union(*per)},
            "run_min": min(r["dur"] for r in runs) / ms,
            "run_median": sorted(r["dur"] for r in runs)[len(runs) // 2] / ms,
        }
    f32, f16 = res[a.ref], res[a.model]
    print(
        f"ORT profile, CPU, batch {len(x)} at 640x480 (frames {[int(i) for i in idx]}), "
        f"{a.threads} threads, ORT_ENABLE_ALL, {a.runs} runs each; whole run min / median "
        f"ms/frame: fp32 "
        f"{f32['run_min']:.2f} / {f32['run_median']:.2f}, fp16 {f16['run_min']:.2f} / "
        f"{f16['run_median']:.2f}"
    )
    ops = sorted(
        set(f32["ops"]) | set(f16["ops"]),
        key=lambda o: -f32["ops"].get(o, 0) - f16["ops"].get(o, 0),
    )
    print(f"  {'kernel time, min over runs, ms/frame':40s} {'fp32':>7s} {'fp16':>7s}")
    for o in ops:
        a32, a16 = f32["ops"].get(o, 0.0), f16["ops"].get(o, 0.0)
        if max(a32, a16) >= 0.05:
            print(f"  {o:40s} {a32:7.2f} {a16:7.2f}")
    small = [o for o in ops if max(f32["ops"].get(o, 0.0), f16["ops"].get(o, 0.0)) < 0.05]
    print(
        f"  {'others (< 0.05 each)':40s} {sum(f32['ops'].get(o, 0.0) for o in small):7.2f} "
        f"{sum(f16['ops'].get(o, 0.0) for o in small):7.2f}"
    )
    print(
        f"  {'sum':40s} {sum(f32['ops'].values()):7.2f} {sum(f16['ops'].values()):7.2f}",
        flush=True,
    )


# ---------------------------------------------------------------------------------------------
# Accuracy

# Rows of output0: 0..3 box (px), 4 person score, then 17 x (x px, y px, visibility).
KX = np.arange(5, 56, 3)
ROWS = {
    "box xywh (px)": np.arange(0, 4),
    "score": np.array([4]),
    "keypoint xy (px)": np.sort(np.concatenate([KX, KX + 1])),
    "keypoint visibility": KX + 2,
}


class Diff:
    """max and mean |fp32 - fp16| per group of rows, over all anchors and over the anchors that
    fp32 scores >= 0.25 (the candidates of the decode)."""

    def __init__(self):
        self.max = collections.defaultdict(float)
        self.sum = collections.defaultdict(float)
        self.n = collections.defaultdict(int)

    def add(self, a: np.ndarray, b: np.ndarray):
        d = np.abs(a.astype(np.float64) - b)
        cand = a[:, 4, :] >= 0.25  # [batch, anchors]
        groups = {"all": slice(None), **ROWS}
        for name, rows in groups.items():
            x = d[:, rows, :]
            for sel, key in ((None, name), (cand, name + ", score>=0.25")):
                v = x if sel is None else x.transpose(1, 0, 2)[:, sel]
                if v.size:
                    self.max[key] = max(self.max[key], float(v.max()))
                    self.sum[key] += float(v.sum())
                    self.n[key] += v.size

    def result(self):
        keys = [g + s for s in ("", ", score>=0.25") for g in ("all", *ROWS)]
        return {k: {"max": self.max[k], "mean": self.sum[k] / self.n[k]} for k in keys if self.n[k]}


def max_eye_err(ref, dets, vis=0.5):
    """Largest distance between a confident fp32 eye and the same eye of the matched fp16 person."""
    m_ = 0.0
    for (rb, rs, rk), (b, _, k) in zip(ref, dets):
        m, _ = match(rb, rs, b)
        for r in np.nonzero(m >= 0)[0]:
            for e in (1, 2):
                if rk[r, e, 2] >= vis:
                    m_ = max(m_, float(np.hypot(*(k[m[r], e, :2] - rk[r, e, :2]))))
    return m_


LEVELS = {
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def fp16_session(path: str, threads: int, level: str) -> ort.InferenceSession:
    """At ORT_ENABLE_BASIC the CPU EP keeps every Cast it inserted: each operator without a float16
    kernel computes in float32 and its output is rounded to float16, as if every tensor between
    operators were float16 (closest to a float16 run). At ORT_ENABLE_ALL (what the element uses on
    CPU) it drops the float16 -> float32 round trips between such operators, so whole Conv/SiLU
    chains run in float32 with only the weights and some tensors rounded."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = LEVELS[level]
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def cmd_eval(a):
    w, h = map(int, a.size.split("x"))
    frames = open_frames(a.frames, w, h)
    idx = np.arange(0, len(frames), a.step)
    levels = a.levels.split(",")
    ref_s = session(a.ref, a.threads)  # ORT_ENABLE_ALL
    sess = {lv: fp16_session(a.model, a.threads, lv) for lv in levels}
    diff = {lv: Diff() for lv in levels}
    dets = {lv: [] for lv in levels}
    secs = dict.fromkeys(["fp32", *levels], 0.0)
    ref = []
    for k in range(0, len(idx), a.batch):
        x = to_input(frames[idx[k : k + a.batch]])
        t0 = time.perf_counter()
        ya = ref_s.run(None, {"images": x})[0]
        secs["fp32"] += time.perf_counter() - t0
        ref.extend(decode(o) for o in ya)
        for lv, s in sess.items():
            t0 = time.perf_counter()
            yb = s.run(None, {"images": x})[0]
            secs[lv] += time.perf_counter() - t0
            if not np.isfinite(yb).all():
                raise SystemExit(f"fp16 output not finite (level {lv}, frames {idx[k]}..)")
            diff[lv].add(ya, yb)
            dets[lv].extend(decode(o) for o in yb)
    res = {
        "size": a.size,
        "frames": len(idx),
        "frame_indices": f"{idx[0]}..{idx[-1]} step {a.step}",
        "loop_ms_per_frame": {k: v * 1000 / len(idx) for k, v in secs.items()},
    }
    print(
        f"{len(idx)} frames {a.size} (indices {res['frame_indices']}), batch {a.batch}, "
        f"{a.threads} threads, onnxruntime {ort.__version__} CPU; fp32 at ORT_ENABLE_ALL"
    )
    for lv in levels:
        r = compare(ref, dets[lv])
        r["max_eye_err_px"] = max_eye_err(ref, dets[lv])
        r["fp16_unmatched_persons"] = r.pop("int8_unmatched_persons")
        r["eye_recall_also_fp16_vis_pct"] = r.pop("eye_recall_also_int8_vis_pct")
        res[lv] = {"raw_abs_diff": diff[lv].result(), "detections": r}
        print(f" fp16 session at ORT_ENABLE_{lv.upper()}:")
        print("  |fp32 - fp16| of output0        max        mean")
        for k, v in res[lv]["raw_abs_diff"].items():
            print(f"    {k:36s} {v['max']:9.4f}  {v['mean']:10.6f}")
        print(
            f"  persons (fp32, conf>=0.25, NMS IoU 0.7): {r['persons']}, also found by fp16 "
            f"(IoU>=0.5): {r['person_recall_pct']:.2f}%, mean box IoU {r['mean_box_iou']:.4f}, "
            f"fp16 persons matched to no fp32 person: {r['fp16_unmatched_persons']}"
        )
        print(
            f"  confident eyes (fp32 vis>=0.5): {r['confident_eyes']}, fp16 within 3 px: "
            f"{r['eye_recall_pct']:.2f}% (and fp16 vis>=0.5: "
            f"{r['eye_recall_also_fp16_vis_pct']:.2f}%), eye error mean "
            f"{r['mean_eye_err_px']:.3f} px, p99 {r['p99_eye_err_px']:.3f} px, max "
            f"{r['max_eye_err_px']:.3f} px; mean keypoint error {r['mean_kpt_err_px']:.3f} px",
            flush=True,
        )
    print(
        "  (inference time in this loop, not the benchmark: "
        + ", ".join(f"{k} {v:.1f} ms/frame" for k, v in res["loop_ms_per_frame"].items())
        + ")",
        flush=True,
    )
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert")
    c.add_argument("--model", required=True, help="fp32 model (models/yolo11n-pose-dynamic.onnx)")
    c.add_argument("--output", required=True)
    o = sub.add_parser("cpu-ops")
    o.add_argument("--model", required=True, help="the fp16 model")
    o.add_argument("--workdir", required=True, help="where the session graph is written")
    pr = sub.add_parser("profile")
    pr.add_argument("--frames", required=True, help="raw 640x480 RGB frames")
    pr.add_argument("--ref", required=True, help="fp32 model")
    pr.add_argument("--model", required=True, help="fp16 model")
    pr.add_argument("--workdir", required=True, help="where ORT writes its profile JSON files")
    pr.add_argument("--batch", type=int, default=4)
    pr.add_argument("--threads", type=int, default=2)
    pr.add_argument("--runs", type=int, default=15)
    e = sub.add_parser("eval")
    e.add_argument("--frames", required=True, help="raw RGB frames, WxH")
    e.add_argument("--size", default="640x480", help="WxH of the frames (default %(default)s)")
    e.add_argument("--ref", required=True, help="fp32 model")
    e.add_argument("--model", required=True, help="fp16 model")
    e.add_argument("--step", type=int, default=1, help="every STEP-th frame (default: all)")
    e.add_argument("--batch", type=int, default=4)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument(
        "--levels",
        default="basic,all",
        help="ORT optimization levels of the fp16 sessions, comma-separated (default %(default)s)",
    )
    e.add_argument("--json")
    a = ap.parse_args()
    {
        "convert": cmd_convert,
        "cpu-ops": cmd_cpu_ops,
        "profile": cmd_profile,
        "eval": cmd_eval,
    }[a.cmd](a)


if __name__ == "__main__":
    main()
