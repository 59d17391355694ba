"""Makes an int8 (QDQ) variant of the face detector (YuNet 2023mar, dynamic input) by NNCF
post-training quantization (not shipped: models/README-face.md, "int8: measured, not shipped").
Run by models/quantize-face-nncf.sh, which decodes the calibration frames.

  quantize_face_nncf.py quantize --model FP32 --frames RAW --calib 100:440 --calib-step 7 [--faces DIR] --output OUT
  quantize_face_nncf.py bench --frames RAW FP32 INT8     (OpenVINO, batch 4, 2 threads, interleaved)
  quantize_face_nncf.py fixtures --dir DIR FP32 INT8...  (the fixtures' face scores, CPU provider)

--faces DIR: face-rich calibration. DIR holds pictures decoded to raw RGBx, named NAME.WxH.rgbx
(models/quantize-face-nncf.sh takes them from two npm packages that no evaluation uses): every
calibration frame is a vtest.avi frame at the face detector's input for 768x576 (x1.5,
1152x864) with faces of these pictures pasted on it at random sizes (20 to 400 pixels wide,
fixed seed), plus tiles of the group photo at three scales.

RAW: vtest.avi decoded to raw RGB 768x576 frames (models/tools.sh decode_frames); the face
detector's input at face-scale 1 is the frame itself, BGR 0..255, NCHW. The coverage of the result is judged by benches/faces/run.sh
(the element with face-model= this file), on clips whose vtest.avi stretches are frames 0..59 and
450..509: the calibration frames are taken from 100..439.
"""

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx

W, H = 768, 576


def log(*a):
    print("[quantize-face]", *a, file=sys.stderr, flush=True)


def frames_of(path):
    return np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, H, W, 3)


def to_input(frames):
    # RGB frames to the BGR planes YuNet takes.
    return np.ascontiguousarray(np.asarray(frames)[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32))


FACE_W, FACE_H = 1152, 864  # the face detector's input for a 768x576 frame (face-scale x1.5)


def resize(img, w, h):
    """Bilinear resize (pixel centres aligned, as the element's), HxWxC uint8 to h x w x C."""
    ih, iw = img.shape[:2]
    ys = np.clip((np.arange(h) + 0.5) * ih / h - 0.5, 0, ih - 1)
    xs = np.clip((np.arange(w) + 0.5) * iw / w - 0.5, 0, iw - 1)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, ih - 1)
    x1 = np.minimum(x0 + 1, iw - 1)
    wy = (ys - y0)[:, None, None]
    wx = (xs - x0)[None, :, None]
    f = img.astype(np.float32)
    top = f[y0][:, x0] * (1 - wx) + f[y0][:, x1] * wx
    bot = f[y1][:, x0] * (1 - wx) + f[y1][:, x1] * wx
    return np.clip(top * (1 - wy) + bot * wy + 0.5, 0, 255).astype(np.uint8)


def load_rgbx(path):
    """A picture decoded to raw RGBx, named NAME.WxH.rgbx: HxWx3 uint8 RGB."""
    w, h = (int(v) for v in Path(path).name.split(".")[-2].split("x"))
    return np.fromfile(path, np.uint8).reshape(h, w, 4)[..., :3]


def face_canvases(frames, idx, faces_dir, seed=2026):
    """The face-rich calibration frames (RGB, FACE_H x FACE_W): see the module's docstring."""
    rng = np.random.default_rng(seed)
    pics = sorted(Path(faces_dir).glob("*.rgbx"))
    group = [p for p in pics if p.name.startswith("group.")]
    faces = [load_rgbx(p) for p in pics if p not in group]
    if not faces or not group:
        raise SystemExit(f"--faces {faces_dir}: no face pictures or no group.WxH.rgbx")
    out = []
    for i in idx:
        canvas = resize(frames[i], FACE_W, FACE_H)
        for _ in range(6):
            pic = faces[rng.integers(len(faces))]
            w = int(np.exp(rng.uniform(np.log(20), np.log(400))))
            h = max(1, round(w * pic.shape[0] / pic.shape[1]))
            if h >= FACE_H:
                continue
            x, y = rng.integers(0, FACE_W - w), rng.integers(0, FACE_H - h)
            canvas[y : y + h, x : x + w] = resize(pic, w, h)
        out.append(canvas)
    photo = load_rgbx(group[0])
    for scale in (0.6, 0.9, 1.35):
        big = resize(photo, round(photo.shape[1] * scale), round(photo.shape[0] * scale))
        for y in range(0, max(1, big.shape[0] - FACE_H // 2), FACE_H):
            for x in range(0, max(1, big.shape[1] - FACE_W // 2), FACE_W):
                tile = np.zeros((FACE_H, FACE_W, 3), np.uint8)
                part = big[y : y + FACE_H, x : x + FACE_W]
                tile[: part.shape[0], : part.shape[1]] = part
                out.append(tile)
    return out


def parse_range(s):
    a, b = s.split(":")
    return range(int(a), int(b))


def ignored_names(model, spec):
    """Nodes kept in float: `heads` = the two convolutions of every output branch (the twelve
    branches: cls, obj, bbox, kps at strides 8, 16, 32), `scores` = those of cls and obj only."""
    outputs = {o.name for o in model.graph.output}
    prod = {o: n for n in model.graph.node for o in n.output}
    names = []
    for part in filter(None, (spec or "").split(",")):
        if part not in ("heads", "scores"):
            raise SystemExit(f"--ignore: unknown group {part!r} (heads, scores)")
        for out in sorted(outputs):
            if part == "scores" and not out.startswith(("cls_", "obj_")):
                continue
            t, convs = out, 0
            while convs < 2 and t in prod:
                n = prod[t]
                if n.op_type == "Conv":
                    names.append(n.name)
                    convs += 1
                t = n.input[0]
    return sorted(set(names))


def cmd_quantize(a):
    import nncf
    import onnxruntime as ort

    frames = frames_of(a.frames)
    idx = list(parse_range(a.calib))[:: a.calib_step]
    if idx[-1] >= len(frames):
        raise SystemExit(f"--calib {a.calib}: the frames file has {len(frames)} frames")
    fp32 = onnx.load(a.model)
    model = fp32
    if a.opset and a.opset > fp32.opset_import[0].version:
        # Per-channel weight quantization needs opset 13 (QuantizeLinear's axis).
        from onnx import version_converter

        model = version_converter.convert_version(fp32, a.opset)
    name = model.graph.input[0].name
    names = ignored_names(model, a.ignore)
    if a.faces:
        canvases = face_canvases(frames, idx, a.faces)
        items = list(range(len(canvases)))
        dataset = nncf.Dataset(items, lambda i: {name: to_input(canvases[i][None])})
        calib = (
            f"{len(canvases)} face-rich frames at {FACE_W}x{FACE_H}: vtest.avi frames {idx[0]}..{idx[-1]} "
            f"step {a.calib_step} with faces pasted from {a.faces_source or Path(a.faces).name}, "
            f"and tiles of its group photo"
        )
    else:
        items = idx
        dataset = nncf.Dataset(idx, lambda i: {name: to_input(frames[i : i + 1])})
        calib = f"vtest.avi frames {idx[0]}..{idx[-1]} step {a.calib_step} ({len(idx)} frames) at {W}x{H}"
    how = (
        f"nncf {nncf.__version__} quantize (ONNX backend, onnxruntime {ort.__version__} CPU for the "
        f"statistics), opset {model.opset_import[0].version}, preset mixed, fast bias correction, "
        f"calibration on {calib}, batch 1; kept in float: {a.ignore or 'nothing'} ({len(names)} nodes)"
    )
    log(how)
    t0 = time.time()
    q = nncf.quantize(
        model,
        dataset,
        preset=nncf.QuantizationPreset.MIXED,
        target_device=nncf.TargetDevice.CPU,
        subset_size=len(items),
        fast_bias_correction=True,
        ignored_scope=nncf.IgnoredScope(names=names) if names else None,
    )
    log(f"nncf.quantize took {time.time() - t0:.0f} s")
    for dst, src in [(q.graph.input, fp32.graph.input), (q.graph.output, fp32.graph.output)]:
        for vi in dst:
            vi.CopyFrom(next(v for v in src if v.name == vi.name))
    del q.metadata_props[:]
    q.metadata_props.add(key="quantization", value=how)
    del q.graph.value_info[:]
    onnx.checker.check_model(q)
    tmp = Path(a.output + ".tmp")
    onnx.save(q, str(tmp))
    s = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    r = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    for n, h, w in [(2, 544, 960), (1, 576, 768), (1, 1088, 1920), (3, 64, 96)]:
        x = np.zeros((n, 3, h, w), np.float32)
        got = [o.shape for o in s.run(None, {name: x})]
        want = [o.shape for o in r.run(None, {name: x})]
        assert got == want, (got, want)
    os.replace(tmp, a.output)
    ops = {}
    for n in q.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    sha = hashlib.sha256(Path(a.output).read_bytes()).hexdigest()
    log(
        f"wrote {a.output} ({Path(a.output).stat().st_size} bytes, sha256 {sha}); QuantizeLinear "
        f"{ops.get('QuantizeLinear', 0)}, DequantizeLinear {ops.get('DequantizeLinear', 0)}, Conv {ops.get('Conv', 0)}"
    )


def cmd_bench(a):
    import onnxruntime as ort

    frames = frames_of(a.frames)
    xs = [to_input(frames[k : k + 4]) for k in range(300, 380, 4)]

    def session(p):
        o = ort.SessionOptions()
        o.intra_op_num_threads = 2
        ov = {"device_type": "CPU", "num_of_threads": 2, "load_config": '{"CPU":{"INFERENCE_PRECISION_HINT":"f32"}}'}
        return ort.InferenceSession(p, o, providers=[("OpenVINOExecutionProvider", ov)])

    sess = {p: session(p) for p in a.models}
    name = next(iter(sess.values())).get_inputs()[0].name
    for s in sess.values():
        s.run(None, {name: xs[0]})
        s.run(None, {name: xs[0]})
    times = {p: [] for p in sess}
    k = 0
    for _ in range(a.passes):
        acc = dict.fromkeys(sess, 0.0)
        for x in xs:
            order = list(sess)[k % len(sess) :] + list(sess)[: k % len(sess)]
            k += 1
            for p in order:
                t0 = time.perf_counter()
                sess[p].run(None, {name: x})
                acc[p] += time.perf_counter() - t0
        for p in sess:
            times[p].append(acc[p] * 1000 / (4 * len(xs)))
    base = statistics.median(times[a.models[0]])
    print(f"{4 * len(xs)} frames {W}x{H}, batch 4, 2 threads, onnxruntime {ort.__version__} OpenVINO, "
          f"{a.passes} passes interleaved, medians; 1-min load at the end {os.getloadavg()[0]:.1f}")
    for p in sess:
        m = statistics.median(times[p])
        print(f"  {Path(p).name:55s} {m:7.2f} ms/frame  x{base / m:.2f}")


def best_in_box(outputs, names, width, box):
    """The best YuNet score (sqrt(cls obj)) of an anchor whose decoded box centre is in `box`
    (x0, y0, x1, y1, input pixels): the outputs of one image `width` pixels wide."""
    o = dict(zip(names, outputs))
    best = 0.0
    for s in (8, 16, 32):
        cls, obj, bb = o[f"cls_{s}"][0, :, 0], o[f"obj_{s}"][0, :, 0], o[f"bbox_{s}"][0]
        cols = width // s
        a = np.arange(len(cls))
        cx = (a % cols + bb[:, 0]) * s
        cy = (a // cols + bb[:, 1]) * s
        score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
        inside = (cx >= box[0]) & (cx <= box[2]) & (cy >= box[1]) & (cy <= box[3])
        if inside.any():
            best = max(best, float(score[inside].max()))
    return best


def cmd_fixtures(a):
    """Each fixture face's best score in every model, at x1 and at x1.5 (what face-scale's
    automatic value gives these frames), the input padded with 0 to multiples of 32."""
    import json

    import onnxruntime as ort

    found = json.loads((Path(a.dir) / "findings.json").read_text())
    sess = {p: ort.InferenceSession(p, providers=["CPUExecutionProvider"]) for p in a.models}
    print(f"{'fixture':22s} {'scale':>5s} " + " ".join(f"{Path(p).name[:28]:>28s}" for p in a.models))
    for name, f in sorted(found.items()):
        pic = next(Path(a.dir).glob(Path(name).stem + ".*.rgbx"))
        img = load_rgbx(pic)
        for scale in (1.0, 1.5):
            w, h = round(img.shape[1] * scale), round(img.shape[0] * scale)
            pw, ph = -(-w // 32) * 32, -(-h // 32) * 32
            x = np.zeros((1, 3, ph, pw), np.float32)
            x[0, :, :h, :w] = to_input(resize(img, w, h)[None])[0]
            box = [v * scale for v in f["face_box"]]
            row = []
            for p, s in sess.items():
                names = [o.name for o in s.get_outputs()]
                outs = s.run(None, {s.get_inputs()[0].name: x})
                row.append(best_in_box(outs, names, pw, box))
            print(f"{name:22s} {scale:5.2f} " + " ".join(f"{v:28.3f}" for v in row))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quantize")
    q.add_argument("--model", required=True)
    q.add_argument("--frames", required=True)
    q.add_argument("--calib", default="100:440")
    q.add_argument("--calib-step", type=int, default=7)
    q.add_argument("--opset", type=int, default=13)
    q.add_argument("--ignore", default="", help="node groups kept in float: heads, scores")
    q.add_argument("--faces", default="", help="folder of face pictures (NAME.WxH.rgbx) for face-rich calibration")
    q.add_argument("--faces-source", default="", help="where the --faces pictures come from, for the provenance note")
    q.add_argument("--output", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--frames", required=True)
    b.add_argument("--passes", type=int, default=3)
    b.add_argument("models", nargs="+")
    x = sub.add_parser("fixtures")
    x.add_argument("--dir", required=True, help="tests/data/faces decoded: findings.json and NAME.WxH.rgbx")
    x.add_argument("models", nargs="+")
    a = ap.parse_args()
    {"quantize": cmd_quantize, "bench": cmd_bench, "fixtures": cmd_fixtures}[a.cmd](a)


if __name__ == "__main__":
    main()
