#!/usr/bin/env python3
"""Static int8 quantization of yolo11n-pose-dynamic.onnx with ONNX Runtime, and the checks that
decide whether the result is worth shipping. Run it through models/quantize-int8.sh, which creates
the virtualenv (onnxruntime, onnx, numpy pinned) and decodes the frames this script reads.

Frames are raw RGB, 640x480, packed one after another (what
`gst-launch-1.0 ... ! video/x-raw,format=RGB,width=640,height=480 ! fdsink` writes); vtest.avi is
768x576, which letterboxes to exactly 640x480, so no padding is involved.

Subcommands:
  quantize  quant_pre_process + quantize_static (QDQ, per-channel int8 weights), one variant
  bench     inference ms/frame of several models, side by side, median of N passes
  eval      accuracy of int8 models against the fp32 model on every frame (persons, eyes)
  variants  list the named variants
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

W, H = 640, 480  # what quantize and bench use; eval takes --size

# Calibration: 100 frames spread evenly over the 795-frame clip, every 8th frame (0, 8, ..., 792).
CALIB_STEP = 8
CALIB_COUNT = 100

# Node groups (names as in the Ultralytics export of YOLO11n-pose, opset 17).
# decode: everything in the Pose head after its conv branches: DFL (softmax + its 1x1 conv), anchor
#   and stride generation, box/keypoint decode, the score sigmoid and the final concats. Its tensors
#   mix pixel coordinates (0..640) and probabilities (0..1); they must stay float.
RE_DECODE = re.compile(r"^/model\.23/(?!cv[234]\.)")
# head-final: the last 1x1 conv of each head branch (cv2 = box DFL logits, cv3 = class logit,
#   cv4 = keypoint offsets and visibility logits), 3 scales each: 9 convs.
RE_HEAD_FINAL = re.compile(r"^/model\.23/cv[234]\.\d/cv[234]\.\d\.2/")
# kpt-branch: the whole keypoint branch cv4 (3 convs per scale).
RE_KPT_BRANCH = re.compile(r"^/model\.23/cv4\.")
# head: every conv of the Pose head (cv2, cv3, cv4).
RE_HEAD = re.compile(r"^/model\.23/")
# attn: the C2PSA attention block (model.10: MatMul, Softmax, ...).
RE_ATTN = re.compile(r"^/model\.10/")

GROUPS = {
    "decode": RE_DECODE,
    "head-final": RE_HEAD_FINAL,
    "kpt-branch": RE_KPT_BRANCH,
    "head": RE_HEAD,
    "attn": RE_ATTN,
}

# Layers kept in float by the mixed variants, found by excluding one layer at a time (see
# README-int8.md): the stem convs (model.0, model.1), model.7 (stride-2 conv), the SPPF (model.9),
# two neck C3k2 blocks (model.13, model.19), and the Pose head's class and keypoint branches.
MIXED_A = r"decode,head-final,attn,^/model\.(0|1|7|9|13|19)/,^/model\.23/cv[34]\."
MIXED_B = r"decode,head-final,attn,^/model\.(0|1|9|19)/,^/model\.23/cv[34]\."
MIXED_C = r"decode,head-final,attn,^/model\.(1|9)/,^/model\.23/cv3\."

# Named variants: (calibration method, activation type, excluded groups or node-name regexes,
# op types or None = all that ORT's QDQ quantizer supports).
VARIANTS = {
    "minmax-u8-decode": ("minmax", "quint8", "decode", None),
    "minmax-u8-headfinal": ("minmax", "quint8", "decode,head-final", None),
    "minmax-u8-headfinal-kpt": ("minmax", "quint8", "decode,head-final,kpt-branch", None),
    "minmax-u8-head": ("minmax", "quint8", "head", None),
    "minmax-s8-headfinal": ("minmax", "qint8", "decode,head-final", None),
    "minmax-u8-headfinal-conv": ("minmax", "quint8", "decode,head-final", "Conv"),
    "entropy-u8-headfinal": ("entropy", "quint8", "decode,head-final", None),
    "percentile-u8-headfinal": ("percentile", "quint8", "decode,head-final", None),
    "minmax-u8-headfinal-attn": ("minmax", "quint8", "decode,head-final,attn", None),
    "entropy-u8-headfinal-attn": ("entropy", "quint8", "decode,head-final,attn", None),
    "percentile-u8-headfinal-attn": ("percentile", "quint8", "decode,head-final,attn", None),
    "minmax-u8-mixed-a": ("minmax", "quint8", MIXED_A, None),
    "minmax-u8-mixed-b": ("minmax", "quint8", MIXED_B, None),
    "minmax-u8-mixed-c": ("minmax", "quint8", MIXED_C, None),
}

METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
QTYPES = {"quint8": QuantType.QUInt8, "qint8": QuantType.QInt8}


def log(*a):
    print("[quantize_int8]", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Frames


def open_frames(path: str, w: int = W, h: int = H) -> np.ndarray:
    if w % 32 or h % 32:
        raise SystemExit(f"{w}x{h}: width and height must be multiples of 32")
    size = Path(path).stat().st_size
    if size % (w * h * 3):
        raise SystemExit(f"{path}: {size} bytes is not a whole number of {w}x{h} RGB frames")
    return np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, h, w, 3)


def to_input(frames: np.ndarray) -> np.ndarray:
    """uint8 NHWC RGB -> float32 NCHW 0..1 (640x480 needs no letterbox padding)."""
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)


def calib_indices(n_frames: int) -> list[int]:
    idx = list(range(0, n_frames, CALIB_STEP))[:CALIB_COUNT]
    return idx


class FrameReader(CalibrationDataReader):
    """Calibration frames, batch 1, with set_range so ORT can calibrate in strides
    (CalibStridedMinMax) instead of keeping every activation of every frame in memory."""

    def __init__(self, frames: np.ndarray, indices: list[int], input_name: str):
        self.frames, self.indices, self.input_name = frames, indices, input_name
        self.set_range(0, len(indices))

    def __len__(self):
        return len(self.indices)

    def set_range(self, start_index: int, end_index: int):
        self._it = iter(self.indices[start_index:end_index])

    def get_next(self):
        i = next(self._it, None)
        if i is None:
            return None
        return {self.input_name: to_input(self.frames[i : i + 1])}


# ---------------------------------------------------------------------------------------------
# Quantization


def excluded_nodes(model: onnx.ModelProto, groups: str) -> list[str]:
    pats = [GROUPS[g] if g in GROUPS else re.compile(g) for g in groups.split(",") if g]
    return [n.name for n in model.graph.node if any(p.match(n.name) for p in pats)]


def io_signature(model: onnx.ModelProto):
    def dims(vi):
        return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]

    g = model.graph
    inits = {i.name for i in g.initializer}
    return (
        [(i.name, i.type.tensor_type.elem_type, dims(i)) for i in g.input if i.name not in inits],
        [(o.name, o.type.tensor_type.elem_type, dims(o)) for o in g.output],
    )


def check_same(ref_path, path, frames, atol):
    """The pre-processed model must compute what the original computes, at several shapes."""
    r = ort.InferenceSession(ref_path, providers=["CPUExecutionProvider"])
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = to_input(frames[[0, 400]])
    for inp in [
        x,
        x[:1, :, 48:432, :],
        np.pad(x, ((0, 0), (0, 0), (80, 80), (0, 0)), constant_values=114 / 255),
    ]:
        a_, b_ = r.run(None, {"images": inp})[0], s.run(None, {"images": inp})[0]
        if a_.shape != b_.shape or not np.allclose(a_, b_, atol=atol, rtol=1e-4):
            raise SystemExit(f"{path} differs from {ref_path} at input shape {inp.shape}")


def cmd_quantize(a):
    method, act, group, op_types = VARIANTS[a.variant]
    custom = False
    for k in ("method", "act", "exclude", "op_types"):
        if getattr(a, k) is not None:
            custom = True
    method = a.method or method
    act = a.act or act
    group = a.exclude if a.exclude is not None else group
    op_types = a.op_types if a.op_types is not None else op_types
    op_types = op_types.split(",") if op_types else None
    name = (
        f"custom(method={method},act={act},exclude={group},op_types={op_types})"
        if custom
        else a.variant
    )
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    frames = open_frames(a.frames)
    fp32 = onnx.load(a.model)

    pre = work / "yolo11n-pose-dynamic.pre.onnx"
    if not pre.exists():
        log(f"quant_pre_process {a.model} -> {pre}")
        # auto_merge: symbolic shape inference cannot prove that the upsampled and the skip
        # tensors of the neck have the same H and W (true when H and W are multiples of 32).
        quant_pre_process(
            a.model,
            str(pre),
            skip_optimization=False,
            skip_onnx_shape=False,
            skip_symbolic_shape=False,
            auto_merge=True,
        )
        check_same(a.model, str(pre), frames, atol=1e-3)
    prem = onnx.load(str(pre))
    exclude = excluded_nodes(prem, group)
    idx = calib_indices(len(frames))
    log(
        f"variant {name}: method={method} activations={act} weights=qint8 per-channel, "
        f"exclude={group} ({len(exclude)} nodes), op_types={op_types or 'all supported'}, "
        f"calibration frames {idx[0]}..{idx[-1]} step {CALIB_STEP} ({len(idx)})"
    )
    # The calibration cache holds the ranges of every tensor of the quantizable op types; it does
    # not depend on the excluded nodes, so variants that only differ there share it.
    cache = work / f"calib-{method}-{'all' if not op_types else '-'.join(op_types)}.json"
    extra = {"CalibStridedMinMax": 10}  # calibrate 10 frames at a time (any method)
    if method == "percentile":
        extra["CalibPercentile"] = a.percentile
        cache = cache.with_name(cache.stem + f"-p{a.percentile}.json")
    if a.moving_average:
        if method != "minmax":
            raise SystemExit("--moving-average only applies to minmax")
        extra["CalibMovingAverage"] = True
        extra["CalibMovingAverageConstant"] = a.moving_average
        cache = cache.with_name(cache.stem + f"-ma{a.moving_average}.json")
    t0 = time.time()
    quantize_static(
        str(pre),
        a.output,
        FrameReader(frames, idx, fp32.graph.input[0].name),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=op_types,
        per_channel=True,
        reduce_range=False,
        activation_type=QTYPES[act],
        weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude,
        calibrate_method=METHODS[method],
        extra_options=extra,
        calibration_cache_path=str(cache),
    )
    log(f"quantize_static took {time.time() - t0:.0f} s")

    q = onnx.load(a.output)
    # Symbolic shape inference renamed the output's 'anchors' dim to an expression of height and
    # width; put back the fp32 model's declarations of the graph inputs and outputs.
    for dst, src in [(q.graph.input, fp32.graph.input), (q.graph.output, fp32.graph.output)]:
        for vi in dst:
            ref = next(v for v in src if v.name == vi.name)
            vi.CopyFrom(ref)
    # Keep Ultralytics' metadata (stride, kpt_shape, names, licence ...) and say what was done.
    have = {p.key for p in q.metadata_props}
    for p in fp32.metadata_props:
        if p.key not in have:
            q.metadata_props.add(key=p.key, value=p.value)
    q.metadata_props.add(
        key="quantization",
        value=(
            f"onnxruntime {ort.__version__} quantize_static QDQ, weights QInt8 per-channel, "
            f"activations {QTYPES[act].name}, calibration {method} on vtest.avi frames "
            f"0..792 step 8 at 640x480, variant {name}"
        ),
    )
    onnx.save(q, a.output)
    if io_signature(q) != io_signature(fp32):
        raise SystemExit(f"I/O signature differs: {io_signature(q)} vs {io_signature(fp32)}")
    s = ort.InferenceSession(a.output, providers=["CPUExecutionProvider"])
    for n, h, w in [(2, 480, 640), (1, 384, 640), (1, 640, 640), (3, 256, 320)]:
        y = s.run(None, {"images": np.zeros((n, 3, h, w), np.float32)})[0]
        anchors = sum((h // st) * (w // st) for st in (8, 16, 32))
        assert y.shape == (n, 56, anchors), (y.shape, n, h, w)
    log(f"wrote {a.output} ({Path(a.output).stat().st_size} bytes), I/O {io_signature(q)}")


# ---------------------------------------------------------------------------------------------
# Inference, decode, NMS


def session(path: str, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def iou_one_to_many(b, bs):
    x0 = np.maximum(b[0], bs[:, 0])
    y0 = np.maximum(b[1], bs[:, 1])
    x1 = np.minimum(b[2], bs[:, 2])
    y1 = np.minimum(b[3], bs[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (b[2] - b[0]) * (b[3] - b[1])
    areas = (bs[:, 2] - bs[:, 0]) * (bs[:, 3] - bs[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def decode(out: np.ndarray, conf: float = 0.25, iou: float = 0.7, max_det: int = 300):
    """One image's output [56, anchors] -> (boxes xyxy [n,4], scores [n], keypoints [n,17,3])."""
    p = out.T
    p = p[p[:, 4] >= conf]
    order = np.argsort(-p[:, 4], kind="stable")
    p = p[order]
    boxes = np.stack(
        [
            p[:, 0] - p[:, 2] / 2,
            p[:, 1] - p[:, 3] / 2,
            p[:, 0] + p[:, 2] / 2,
            p[:, 1] + p[:, 3] / 2,
        ],
        axis=1,
    )
    keep = []
    alive = np.ones(len(p), bool)
    for i in range(len(p)):
        if not alive[i]:
            continue
        keep.append(i)
        if len(keep) == max_det:
            break
        rest = np.nonzero(alive[i + 1 :])[0] + i + 1
        if len(rest):
            alive[rest[iou_one_to_many(boxes[i], boxes[rest]) > iou]] = False
    keep = np.array(keep, int)
    return boxes[keep], p[keep, 4], p[keep, 5:].reshape(-1, 17, 3)


def run_all(path, frames, indices, batch, threads, noise=0):
    s = session(path, threads)
    rng = np.random.default_rng(0)
    dets = []
    for k in range(0, len(indices), batch):
        ix = indices[k : k + batch]
        f = frames[ix]
        if noise:  # +-noise grey levels of uniform integer noise, for a stability yardstick
            f = np.clip(f + rng.integers(-noise, noise + 1, f.shape), 0, 255).astype(np.uint8)
        y = s.run(None, {"images": to_input(f)})[0]
        dets.extend(decode(o) for o in y)
    return dets


# ---------------------------------------------------------------------------------------------
# Benchmark


def cmd_bench(a):
    frames = open_frames(a.frames)
    idx = np.linspace(0, len(frames) - 1, a.count).round().astype(int)
    x = [to_input(frames[idx[k : k + a.batch]]) for k in range(0, len(idx), a.batch)]
    sess = {m: session(m, a.threads) for m in a.models}
    for m, s in sess.items():  # warm-up
        s.run(None, {"images": x[0]})
    # Interleaved batch by batch (every batch goes through every model, in an order that rotates),
    # so that load from other processes on a shared machine hits all models alike; a pass is the
    # sum over all batches, per model.
    times = {m: [] for m in a.models}
    k = 0
    for p in range(a.passes):
        acc = dict.fromkeys(a.models, 0.0)
        for b in x:
            r = k % len(a.models)
            k += 1
            for m in a.models[r:] + a.models[:r]:
                t0 = time.perf_counter()
                sess[m].run(None, {"images": b})
                acc[m] += time.perf_counter() - t0
        for m in a.models:
            times[m].append(acc[m] * 1000 / len(idx))
    base = statistics.median(times[a.models[0]])
    res = {}
    print(
        f"{len(idx)} frames {W}x{H} (indices {idx[0]}..{idx[-1]}, evenly spread), batch {a.batch}, "
        f"intra-op threads {a.threads}, ORT_ENABLE_ALL, onnxruntime {ort.__version__}, "
        f"median of {a.passes} passes, interleaved batch by batch"
    )
    for m in a.models:
        med = statistics.median(times[m])
        res[m] = {"ms_per_frame": med, "passes": times[m], "speedup_vs_first": base / med}
        print(
            f"  {Path(m).name:45s} {med:7.2f} ms/frame  passes {[f'{t:.2f}' for t in times[m]]}  "
            f"speed-up vs {Path(a.models[0]).name}: x{base / med:.2f}"
        )
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


# ---------------------------------------------------------------------------------------------
# Accuracy


def match(ref_boxes, ref_scores, boxes):
    """Greedy one-to-one matching of ref persons (by descending score) to the candidate box with the
    highest IoU among those not taken yet; returns the matched index or -1 per ref, and the IoU."""
    m = np.full(len(ref_boxes), -1)
    ious = np.zeros(len(ref_boxes))
    taken = np.zeros(len(boxes), bool)
    for r in np.argsort(-ref_scores, kind="stable"):
        if not len(boxes):
            break
        io = iou_one_to_many(ref_boxes[r], boxes)
        io[taken] = -1
        j = int(np.argmax(io))
        if io[j] >= 0.5:
            m[r], ious[r], taken[j] = j, io[j], True
    return m, ious


def compare(ref, dets, eye_px=3.0, vis=0.5):
    n_p = hit_p = n_eye = hit_eye = hit_eye_vis = n_extra = 0
    eye_err, kp_err, box_iou = [], [], []
    for (rb, rs, rk), (b, s, k) in zip(ref, dets):
        m, ious = match(rb, rs, b)
        n_p += len(rb)
        hit_p += int((m >= 0).sum())
        n_extra += len(b) - int((m >= 0).sum())
        box_iou.extend(ious[m >= 0])
        for r in range(len(rb)):
            j = m[r]
            for e in (1, 2):
                if rk[r, e, 2] >= vis:
                    n_eye += 1
                    if j >= 0:
                        d = float(np.hypot(*(k[j, e, :2] - rk[r, e, :2])))
                        eye_err.append(d)
                        if d <= eye_px:
                            hit_eye += 1
                            if k[j, e, 2] >= vis:
                                hit_eye_vis += 1
            if j >= 0:
                conf = rk[r, :, 2] >= vis
                kp_err.extend(np.hypot(*(k[j, conf, :2] - rk[r, conf, :2]).T))

    def pct(n, d):
        return 100.0 * n / max(d, 1)

    return {
        "persons": n_p,
        "person_recall_pct": pct(hit_p, n_p),
        "int8_unmatched_persons": n_extra,
        "mean_box_iou": float(np.mean(box_iou)) if box_iou else None,
        "confident_eyes": n_eye,
        "eye_recall_pct": pct(hit_eye, n_eye),
        "eye_recall_also_int8_vis_pct": pct(hit_eye_vis, n_eye),
        "mean_eye_err_px": float(np.mean(eye_err)) if eye_err else None,
        "p99_eye_err_px": float(np.percentile(eye_err, 99)) if eye_err else None,
        "mean_kpt_err_px": float(np.mean(kp_err)) if kp_err else None,
    }


def cmd_eval(a):
    w, h = map(int, a.size.split("x"))
    frames = open_frames(a.frames, w, h)
    idx = np.arange(len(frames))
    t0 = time.time()
    cache = Path(a.ref_cache) if a.ref_cache else None
    if cache and cache.exists():
        ref = pickle.loads(cache.read_bytes())
    else:
        ref = run_all(a.ref, frames, idx, a.batch, a.threads)
        if cache:
            cache.write_bytes(pickle.dumps(ref))
    log(
        f"fp32 on {len(idx)} frames {w}x{h}: {time.time() - t0:.0f} s, "
        f"{sum(len(r[0]) for r in ref)} persons"
    )
    out = {}
    for m in a.models:
        t0 = time.time()
        dets = run_all(m, frames, idx, a.batch, a.threads, a.input_noise)
        r = compare(ref, dets)
        out[m] = r
        log(f"{m}: {time.time() - t0:.0f} s")
        print(
            f"{Path(m).name}{f' (input noise +-{a.input_noise})' if a.input_noise else ''}: persons {r['persons']}, person recall {r['person_recall_pct']:.2f}%, "
            f"eyes {r['confident_eyes']}, eye recall (<=3 px) {r['eye_recall_pct']:.2f}% "
            f"(and int8 vis>=0.5: {r['eye_recall_also_int8_vis_pct']:.2f}%), mean eye error "
            f"{r['mean_eye_err_px']:.2f} px (p99 {r['p99_eye_err_px']:.2f}), mean keypoint error "
            f"{r['mean_kpt_err_px']:.2f} px, mean box IoU {r['mean_box_iou']:.3f}, "
            f"extra int8 persons {r['int8_unmatched_persons']}",
            flush=True,
        )
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quantize")
    q.add_argument("--model", required=True, help="fp32 model (models/yolo11n-pose-dynamic.onnx)")
    q.add_argument("--frames", required=True, help="raw 640x480 RGB frames of vtest.avi")
    q.add_argument("--output", required=True)
    q.add_argument("--variant", default="minmax-u8-mixed-a", choices=sorted(VARIANTS))
    q.add_argument("--method", choices=sorted(METHODS), help="overrides the variant's")
    q.add_argument("--act", choices=sorted(QTYPES), help="activation type, overrides the variant's")
    q.add_argument(
        "--exclude",
        help=f"comma-separated groups ({', '.join(GROUPS)}) or node-name "
        "regexes, overrides the variant's",
    )
    q.add_argument(
        "--op-types", help="comma-separated op types to quantize, overrides the variant's"
    )
    q.add_argument("--workdir", required=True, help="pre-processed model and calibration caches")
    q.add_argument("--percentile", type=float, default=99.999)
    q.add_argument(
        "--moving-average",
        type=float,
        default=0,
        help="minmax: moving average of the per-frame ranges with this constant",
    )
    b = sub.add_parser("bench")
    b.add_argument("--frames", required=True)
    b.add_argument("--count", type=int, default=200)
    b.add_argument("--batch", type=int, default=4)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--passes", type=int, default=3)
    b.add_argument("--json")
    b.add_argument("models", nargs="+", help="first one is the baseline (fp32)")
    e = sub.add_parser("eval")
    e.add_argument("--frames", required=True)
    e.add_argument("--ref", required=True, help="fp32 model")
    e.add_argument(
        "--size", default=f"{W}x{H}", help="WxH of the raw RGB frames (default %(default)s)"
    )
    e.add_argument("--batch", type=int, default=4)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--json")
    e.add_argument(
        "--input-noise",
        type=int,
        default=0,
        help="add +-N grey levels of noise to the compared models' input (not the ref's)",
    )
    e.add_argument("--ref-cache", help="pickle of the fp32 detections, reused when it exists")
    e.add_argument("models", nargs="+")
    sub.add_parser("variants")
    a = ap.parse_args()
    if a.cmd == "quantize":
        cmd_quantize(a)
    elif a.cmd == "bench":
        cmd_bench(a)
    elif a.cmd == "eval":
        cmd_eval(a)
    else:
        for k, v in VARIANTS.items():
            print(k, *map(str, v))


if __name__ == "__main__":
    main()
