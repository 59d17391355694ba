#!/usr/bin/env python3
"""int8 variant of YOLO11n-pose by NNCF post-training quantization, and its checks.

Run by models/quantize-nncf.sh (see models/README-int8.md); the subcommands:

  quantize  FP32 model + raw RGB frames -> QDQ int8 ONNX model (nncf.quantize, ONNX backend):
            calibration on vtest.avi frames --calib (default 0:300, batch 1, the element's
            preprocessing: RGB 0..1, 640x480 needs no letterbox), the nodes of --ignore kept in
            float; the fp32 model's I/O declarations and Ultralytics' metadata kept, a
            `quantization` metadata entry says how it was made.
  eval      every model against the float32 reference (fp32 model on ONNX Runtime's CPU provider)
            on the frames --range (default 300:795, none of them calibration frames): persons
            matched, confident eyes (keypoint conf >= 0.5) within 1/2/3/5 px, eye error
            percentiles; candidates on --provider (openvino, the element's default on the CPU, or
            cpu). A model given as PATH@cpu or PATH@openvino overrides --provider for itself.
  bench     speed, interleaved batch by batch, batch 4, 2 threads, median of passes; GFLOP/s
            against the graph's operation count (benches/onnx_flops.py).
  pad       coverage of a reference detections-file's eye regions by a candidate's regions grown
            by 0, 0.5, 1, ... network pixels (benches/coverage.py's rule): the padding a
            precision needs.

Needs nncf (quantize only), onnx, numpy and onnxruntime (quantize: the CPU wheel, which NNCF's
ONNX backend runs for its statistics; eval/bench: the onnxruntime-openvino wheel, which has both
providers). Set NNCF_CI=1 (the .sh does): NNCF's telemetry is then a stub.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "benches"))
# The frame reader, decode, NMS and matching of the earlier int8 attempt (one implementation).
from quantize_int8 import decode, io_signature, iou_one_to_many, match, open_frames, to_input  # noqa: E402

W, H = 640, 480

# Node groups that can be kept in float (regexes on the ONNX node names of the Ultralytics export).
GROUPS = {
    # Everything of the Pose head after its three conv branches: DFL (Softmax + conv), anchors,
    # strides, box and keypoint decoding (Mul/Add/Sub/Concat), score and keypoint sigmoids.
    "decode": r"^/model\.23/(?!cv[234]\.)",
    # The last 1x1 conv of each branch (box cv2, class cv3, keypoints cv4) at each of the 3 scales.
    "head-final": r"^/model\.23/cv[234]\.\d/cv[234]\.\d\.2/",
    "kpt": r"^/model\.23/cv4\.",  # the whole keypoint branch
    "cls": r"^/model\.23/cv3\.",  # the whole class branch
    "box": r"^/model\.23/cv2\.",  # the whole box branch
    "head": r"^/model\.23/",
    "attn": r"^/model\.10/",  # C2PSA attention (MatMul, Softmax)
    "stem": r"^/model\.0/",  # first conv, 3 input channels
}
DEFAULT_IGNORE = "decode,head-final"


def log(*a):
    print("[quantize_nncf]", *a, file=sys.stderr, flush=True)


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def parse_range(s: str) -> range:
    a, b = s.split(":")
    return range(int(a), int(b))


def ignored_names(model: onnx.ModelProto, spec: str) -> list[str]:
    pats = [re.compile(GROUPS.get(g, g)) for g in spec.split(",") if g]
    return [n.name for n in model.graph.node if any(p.match(n.name) for p in pats)]


# ---------------------------------------------------------------------------------------------
# quantize


def uint8_activations(model: onnx.ModelProto) -> int:
    """Re-expresses every int8 activation QuantizeLinear/DequantizeLinear pair as uint8 with the
    zero point moved by 128: the same quantization grid, bit for bit the same dequantized values.

    NNCF's ONNX backend writes an activation whose range goes below 0 (every SiLU output) as int8
    with a zero point (for example -118). OpenVINO 2025.4's CPU plugin, running such a model
    through its low-precision transformations on an AVX2 CPU, computes the convolutions behind
    them wrongly (every person lost on vtest.avi; with LP_TRANSFORMS_MODE=false, or on ONNX
    Runtime's CPU provider, the same file is right); with uint8 activations it is right. uint8
    activations with int8 weights are also ONNX Runtime's fast CPU path. Returns the count."""
    from onnx import numpy_helper

    g = model.graph
    init = {i.name: i for i in g.initializer}
    users = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    done = 0
    for n in g.node:
        if n.op_type != "QuantizeLinear" or n.input[0] in init or len(n.input) < 3:
            continue
        z = numpy_helper.to_array(init[n.input[2]])
        if z.dtype != np.int8:
            continue
        dqs = users.get(n.output[0], [])
        if not all(d.op_type == "DequantizeLinear" and d.input[2] == n.input[2] for d in dqs):
            raise SystemExit(f"{n.name}: not followed by DequantizeLinear nodes sharing its zero point")
        u8 = numpy_helper.from_array((z.astype(np.int16) + 128).astype(np.uint8), n.input[2] + "_u8")
        g.initializer.append(u8)
        for node in [n, *dqs]:
            node.input[2] = u8.name
        done += 1
    used = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return done


def cmd_quantize(a):
    import nncf
    import onnxruntime as ort
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    frames = open_frames(a.frames)
    calib = parse_range(a.calib)
    if calib.stop > len(frames):
        raise SystemExit(f"--calib {a.calib}: the frames file has {len(frames)} frames")
    fp32 = onnx.load(a.model)
    names = ignored_names(fp32, a.ignore)
    preset = {"mixed": nncf.QuantizationPreset.MIXED, "performance": nncf.QuantizationPreset.PERFORMANCE}[a.preset]
    overflow = {"first-layer": OverflowFix.FIRST_LAYER, "enable": OverflowFix.ENABLE, "disable": OverflowFix.DISABLE}[a.overflow_fix]
    idx = list(calib)[:: a.calib_step]
    adv = {}
    if a.propagation:
        from nncf.common.quantization.quantizer_propagation.structs import QuantizerPropagationRule

        adv["quantizer_propagation_rule"] = QuantizerPropagationRule[a.propagation]
    input_name = fp32.graph.input[0].name
    dataset = nncf.Dataset(idx, lambda i: {input_name: to_input(frames[i : i + 1])})
    how = (
        f"nncf {nncf.__version__} quantize (ONNX backend, onnxruntime {ort.__version__} CPU for the "
        f"statistics), preset {a.preset}, overflow_fix {a.overflow_fix}, "
        f"{'fast ' if a.fast_bias_correction else ''}bias correction, calibration on vtest.avi "
        f"frames {calib.start}..{calib.stop - 1} step {a.calib_step} ({len(idx)} frames) at "
        f"{W}x{H}, batch 1; kept in float: {a.ignore or 'nothing'} ({len(names)} nodes); "
        "activations re-expressed as uint8"
    )
    log(how)
    t0 = time.time()
    q = nncf.quantize(
        fp32,
        dataset,
        preset=preset,
        target_device=nncf.TargetDevice.CPU,
        subset_size=len(idx),
        fast_bias_correction=a.fast_bias_correction,
        ignored_scope=nncf.IgnoredScope(names=names) if names else None,
        advanced_parameters=AdvancedQuantizationParameters(overflow_fix=overflow, **adv),
    )
    log(f"nncf.quantize took {time.time() - t0:.0f} s")
    n_u8 = uint8_activations(q)
    log(f"{n_u8} int8 activation quantizers re-expressed as uint8")
    # The fp32 model's I/O declarations (names, element types, dynamic dims) and metadata.
    for dst, src in [(q.graph.input, fp32.graph.input), (q.graph.output, fp32.graph.output)]:
        for vi in dst:
            vi.CopyFrom(next(v for v in src if v.name == vi.name))
    keep = [p for p in q.metadata_props if p.key != "quantization"]
    del q.metadata_props[:]
    have = set()
    for p in list(fp32.metadata_props) + keep:
        if p.key not in have:
            q.metadata_props.add(key=p.key, value=p.value)
            have.add(p.key)
    q.metadata_props.add(key="quantization", value=how)
    del q.graph.value_info[:]  # optional shape hints; ONNX Runtime infers them
    onnx.checker.check_model(q)
    tmp = Path(a.output + ".tmp")
    onnx.save(q, str(tmp))
    if io_signature(onnx.load(str(tmp))) != io_signature(fp32):
        raise SystemExit("the quantized model's inputs/outputs differ from the fp32 model's")
    s = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    for n, h, w in [(2, 480, 640), (1, 384, 640), (1, 640, 640), (3, 256, 320)]:
        y = s.run(None, {input_name: np.zeros((n, 3, h, w), np.float32)})[0]
        anchors = sum((h // st) * (w // st) for st in (8, 16, 32))
        assert y.shape == (n, 56, anchors), (y.shape, n, h, w)
    os.replace(tmp, a.output)
    ops = {}
    for n in q.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    producer = {o: n.op_type for n in q.graph.node for o in n.output}
    convs_q = sum(
        1 for n in q.graph.node if n.op_type == "Conv" and producer.get(n.input[0]) == "DequantizeLinear"
    )
    log(
        f"wrote {a.output} ({Path(a.output).stat().st_size} bytes, sha256 {sha256(a.output)}); "
        f"QuantizeLinear {ops.get('QuantizeLinear', 0)}, DequantizeLinear {ops.get('DequantizeLinear', 0)}, "
        f"Conv {ops.get('Conv', 0)} ({convs_q} with dequantized inputs)"
    )


# ---------------------------------------------------------------------------------------------
# sessions


def session(path: str, provider: str, threads: int, precision: str | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if provider == "openvino":
        opts = {"device_type": "CPU", "num_of_threads": str(threads)}
        if precision:  # e.g. bf16, as the element's openvino-bf16 does
            opts["load_config"] = json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": precision}})
        return ort.InferenceSession(path, so, providers=[("OpenVINOExecutionProvider", opts)])
    if provider == "cpu":
        return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    raise SystemExit(f"unknown provider {provider}")


def split_spec(spec: str, default_provider: str):
    """PATH[@provider[:precision]] -> (path, provider, precision, label)."""
    path, _, rest = spec.partition("@")
    prov, _, prec = (rest or default_provider).partition(":")
    return path, prov, prec or None, f"{Path(path).name}@{prov}{':' + prec if prec else ''}"


# ---------------------------------------------------------------------------------------------
# eval


def run_all(sess, frames, indices, batch, conf=0.25):
    name = sess.get_inputs()[0].name
    dets = []
    for k in range(0, len(indices), batch):
        y = sess.run(None, {name: to_input(frames[indices[k : k + batch]])})[0]
        dets.extend(decode(o, conf) for o in y)
    return dets


def compare(ref, dets, vis=0.5, radii=(1.0, 2.0, 3.0, 5.0)):
    n_p = hit_p = extra = 0
    eye_err, kp_err, ious = [], [], []
    n_eye = 0
    within = dict.fromkeys(radii, 0)
    within_vis = dict.fromkeys(radii, 0)
    lost_eyes = []  # (frame index in the range, ref score)
    for fi, ((rb, rs, rk), (b, s, k)) in enumerate(zip(ref, dets)):
        m, io = match(rb, rs, b)
        n_p += len(rb)
        hit_p += int((m >= 0).sum())
        extra += len(b) - int((m >= 0).sum())
        ious.extend(io[m >= 0])
        for r in range(len(rb)):
            j = m[r]
            for e in (1, 2):  # COCO left and right eye
                if rk[r, e, 2] < vis:
                    continue
                n_eye += 1
                if j < 0:
                    lost_eyes.append((fi, float(rs[r])))
                    eye_err.append(float("inf"))
                    continue
                d = float(np.hypot(*(k[j, e, :2] - rk[r, e, :2])))
                eye_err.append(d)
                for rad in radii:
                    if d <= rad:
                        within[rad] += 1
                        if k[j, e, 2] >= vis:
                            within_vis[rad] += 1
            if j >= 0:
                conf = rk[r, :, 2] >= vis
                kp_err.extend(np.hypot(*(k[j, conf, :2] - rk[r, conf, :2]).T))

    def pct(x, d):
        return round(100.0 * x / max(d, 1), 3)

    e = np.array(eye_err) if eye_err else np.zeros(1)
    fin = e[np.isfinite(e)]
    return {
        "persons": n_p,
        "persons_matched_pct": pct(hit_p, n_p),
        "extra_persons": extra,
        "mean_box_iou": round(float(np.mean(ious)), 4) if ious else None,
        "confident_eyes": n_eye,
        "eyes_within_px_pct": {str(r): pct(within[r], n_eye) for r in radii},
        "eyes_within_px_still_confident_pct": {str(r): pct(within_vis[r], n_eye) for r in radii},
        "eye_err_px_of_matched": {
            q: round(float(np.percentile(fin, p)), 3) if len(fin) else None
            for q, p in [("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9), ("max", 100)]
        },
        "eyes_of_unmatched_persons": len(lost_eyes),
        "mean_kpt_err_px": round(float(np.mean(kp_err)), 3) if kp_err else None,
    }


def cmd_eval(a):
    w, h = map(int, a.size.split("x"))
    frames = open_frames(a.frames, w, h)
    rng = parse_range(a.range)
    idx = np.array([i for i in rng if i < len(frames)][:: a.step])
    t0 = time.time()
    ref_path, ref_prov, ref_prec, ref_label = split_spec(a.ref, "cpu")
    cache = Path(a.ref_cache) if a.ref_cache else None
    key = f"{sha256(ref_path)} {ref_prov} {ref_prec} {a.size} {a.frames} {idx.tolist()}"
    if cache and cache.exists() and pickle.loads(cache.read_bytes())[0] == key:
        ref = pickle.loads(cache.read_bytes())[1]
    else:
        ref = run_all(session(ref_path, ref_prov, a.threads, ref_prec), frames, idx, a.batch)
        if cache:
            cache.write_bytes(pickle.dumps((key, ref)))
    log(f"reference {ref_label} on frames {idx[0]}..{idx[-1]} ({len(idx)}) at {w}x{h}: {time.time() - t0:.0f} s")
    out = {"reference": ref_label, "frames": [int(idx[0]), int(idx[-1])], "size": a.size, "models": {}}
    for spec in a.models:
        path, prov, prec, label = split_spec(spec, a.provider)
        t0 = time.time()
        r = compare(ref, run_all(session(path, prov, a.threads, prec), frames, idx, a.batch, a.cand_conf))
        out["models"][label] = r
        log(f"{label}: {time.time() - t0:.0f} s")
        print(
            f"{label}: persons {r['persons']} matched {r['persons_matched_pct']:.2f}% "
            f"(extra {r['extra_persons']}, box IoU {r['mean_box_iou']}); confident eyes "
            f"{r['confident_eyes']}: within 1/2/3/5 px "
            + "/".join(f"{v:.2f}" for v in r["eyes_within_px_pct"].values())
            + " % (still confident: "
            + "/".join(f"{v:.2f}" for v in r["eyes_within_px_still_confident_pct"].values())
            + " %); eye error p50/p90/p99/p99.9/max "
            + "/".join(str(v) for v in r["eye_err_px_of_matched"].values())
            + f" px; eyes of unmatched persons {r['eyes_of_unmatched_persons']}; keypoint error "
            f"{r['mean_kpt_err_px']} px",
            flush=True,
        )
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


# ---------------------------------------------------------------------------------------------
# bench


def gflops_per_image(model: str, w: int, h: int) -> float:
    r = subprocess.run(
        [sys.executable, str(HERE.parent / "benches" / "onnx_flops.py"), model, f"{w}x{h}"],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(r.stdout)["sizes"][f"{w}x{h}"]["gflops"]


def cmd_bench(a):
    import onnxruntime as ort

    frames = open_frames(a.frames)
    idx = np.linspace(0, len(frames) - 1, a.count).round().astype(int)
    xs = [to_input(frames[idx[k : k + a.batch]]) for k in range(0, len(idx), a.batch)]
    specs = [split_spec(s, a.provider) for s in a.models]
    labels = [s[3] for s in specs]
    sess = {s[3]: session(s[0], s[1], a.threads, s[2]) for s in specs}
    for s in sess.values():  # warm-up (OpenVINO compiles on the first run of a shape)
        s.run(None, {"images": xs[0]})
        s.run(None, {"images": xs[0]})
    # Interleaved batch by batch in rotating order: load from other processes hits all alike.
    times = {m: [] for m in labels}
    k = 0
    for _ in range(a.passes):
        acc = dict.fromkeys(labels, 0.0)
        for x in xs:
            r = k % len(labels)
            k += 1
            for m in labels[r:] + labels[:r]:
                t0 = time.perf_counter()
                sess[m].run(None, {"images": x})
                acc[m] += time.perf_counter() - t0
        for m in labels:
            times[m].append(acc[m] * 1000 / len(idx))
    # The operation count of the float32 graph (the int8 one does the same work).
    gf = gflops_per_image(specs[0][0], W, H)
    base = statistics.median(times[labels[0]])
    load = os.getloadavg()[0]
    print(
        f"{len(idx)} frames {W}x{H}, batch {a.batch}, {a.threads} threads, onnxruntime "
        f"{ort.__version__}, {a.passes} passes interleaved batch by batch, medians; "
        f"{gf:.2f} GFLOP per image (benches/onnx_flops.py on {Path(specs[0][0]).name}); "
        f"1-min load average at the end {load:.1f}"
    )
    res = {"gflop_per_image": gf, "load1": load, "models": {}}
    for m in labels:
        med = statistics.median(times[m])
        res["models"][m] = {"ms_per_frame": med, "passes": times[m], "ratio_vs_first": base / med, "gflops": gf / med * 1000}
        print(
            f"  {m:55s} {med:8.2f} ms/frame  {gf / med * 1000:6.1f} GFLOP/s  x{base / med:.2f} vs "
            f"{labels[0]}  (passes min {min(times[m]):.2f}, max {max(times[m]):.2f})",
            flush=True,
        )
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


# ---------------------------------------------------------------------------------------------
# pad


def cmd_pad(a):
    from coverage import compare as cover, load

    ref, cand = load(a.reference), load(a.candidate)
    frames = parse_range(a.range) if a.range else None
    if frames:
        ref = {k: v for k, v in ref.items() if k in frames}
        cand = {k: v for k, v in cand.items() if k in frames}
    out = []
    for pad_net in [float(x) for x in a.pads.split(",")]:
        p = pad_net / a.scale  # network px -> frame px, as the element does
        grown = {}
        for k, rec in cand.items():
            r = dict(rec)
            r["regions"] = [
                dict(g, x0=g["x0"] - p, y0=g["y0"] - p, x1=g["x1"] + p, y1=g["y1"] + p)
                for g in rec.get("regions", [])
            ]
            grown[k] = r
        s = cover(ref, _float_rects(grown), a.threshold)
        out.append({"pad_network_px": pad_net, **{k: s[k] for k in ("eye_regions", "covered", "percent", "frames_uncovered")}})
        print(
            f"pad {pad_net:4.1f} network px ({p:.2f} frame px): {s['covered']}/{s['eye_regions']} "
            f"eye regions covered ({s['percent']:.2f} %), frames with an uncovered one: {s['frames_uncovered']}",
            flush=True,
        )
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


def _float_rects(frames):
    """coverage.py truncates coordinates to int: round outwards so that padding only grows."""
    import math

    for rec in frames.values():
        for g in rec.get("regions", []):
            g["x0"], g["y0"] = math.floor(g["x0"]), math.floor(g["y0"])
            g["x1"], g["y1"] = math.ceil(g["x1"]), math.ceil(g["y1"])
    return frames


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quantize")
    q.add_argument("--model", required=True)
    q.add_argument("--frames", required=True, help="raw 640x480 RGB frames of vtest.avi")
    q.add_argument("--output", required=True)
    q.add_argument("--calib", default="0:300", help="calibration frames START:END (default %(default)s)")
    q.add_argument("--calib-step", type=int, default=1)
    q.add_argument("--preset", choices=["mixed", "performance"], default="mixed")
    q.add_argument("--overflow-fix", choices=["first-layer", "enable", "disable"], default="first-layer")
    q.add_argument("--ignore", default=DEFAULT_IGNORE, help=f"groups ({', '.join(GROUPS)}) or node-name regexes, comma-separated (default %(default)s)")
    q.add_argument("--propagation", help="nncf QuantizerPropagationRule name (default: NNCF's)")
    q.add_argument("--no-fast-bias-correction", dest="fast_bias_correction", action="store_false")
    e = sub.add_parser("eval")
    e.add_argument("--frames", required=True)
    e.add_argument("--size", default=f"{W}x{H}")
    e.add_argument("--range", default="300:795")
    e.add_argument("--step", type=int, default=1, help="every STEP-th frame of the range")
    e.add_argument("--ref", required=True, help="PATH[@provider] (default provider cpu)")
    e.add_argument("--provider", default="openvino")
    e.add_argument("--batch", type=int, default=4)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--json")
    e.add_argument("--cand-conf", type=float, default=0.25, help="the candidates' confidence threshold (the reference's is 0.25)")
    e.add_argument("--ref-cache", help="pickle of the reference's detections, reused when it matches")
    e.add_argument("models", nargs="+", help="PATH[@cpu|@openvino[:bf16]]")
    b = sub.add_parser("bench")
    b.add_argument("--frames", required=True)
    b.add_argument("--provider", default="openvino")
    b.add_argument("--count", type=int, default=200)
    b.add_argument("--batch", type=int, default=4)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--passes", type=int, default=5)
    b.add_argument("--json")
    b.add_argument("models", nargs="+", help="PATH[@provider[:precision]]; the first is the baseline and gives the GFLOP count")
    p = sub.add_parser("pad")
    p.add_argument("reference")
    p.add_argument("candidate")
    p.add_argument("--scale", type=float, required=True, help="network px per frame px (640/768 for vtest.avi)")
    p.add_argument("--pads", default="0,0.5,1,1.5,2,3,4")
    p.add_argument("--range", help="frames START:END only")
    p.add_argument("--threshold", type=float, default=0.95)
    p.add_argument("--json")
    a = ap.parse_args()
    {"quantize": cmd_quantize, "eval": cmd_eval, "bench": cmd_bench, "pad": cmd_pad}[a.cmd](a)


if __name__ == "__main__":
    main()
