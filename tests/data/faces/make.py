#!/usr/bin/env python3
"""Makes the face fixtures of tests/data/faces/ (see README.md there) and says which detector
finds each face.

  make.py --astronaut astronaut.png --face-model face_detection_yunet_2023mar_dynamic.onnx
          --pose-model yolo11n-pose-dynamic.onnx [--out DIR]

Writes, deterministically from scikit-image's astronaut.png (NASA, public domain):
  face-alone.png        320x240: a close crop of the face, no body in the frame (75 px between
                        the eyes)
  face-hidden-body.png  640x360: a head (14 px between the eyes) behind a person in front, who
                        hides its body
  face-small.png        960x544: a small person (6 px between the eyes) in a wide frame
  reference/frame-120x100.rgb, reference/yunet-outputs.f32, reference/yunet.json
                        raw RGB of a 120x100 crop, the face model's 12 raw outputs for it (little-
                        endian float32, in the order of src/face.rs YUNET_OUTPUTS) and the Python
                        reference's decoding (models/face_models.py): the unit test
                        face::tests::agrees_with_the_python_reference compares src/face.rs with it
  findings.json         for each PNG: the face's box and eyes, what YOLO11n-pose finds with the
                        element's letterbox (long side 640, multiples of 32, padding 114) and
                        defaults (confidence 0.25, IoU 0.7, keypoints 0.5), and what the face model
                        finds at full resolution (threshold 0.5, IoU 0.3)
Runs ONNX Runtime's CPU provider (numpy, Pillow, onnxruntime).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "models"))
import face_models as fm  # noqa: E402

# The astronaut's eyes in astronaut.png (512x512), and her face box: the face model's landmarks
# and box on the original image, rounded.
EYES = ((200.0, 102.0), (247.0, 103.0))
FACE = (178.0, 63.0, 268.0, 176.0)
# Head and hair with some of the photo's background around them, down to the collar.
HEAD = (130, 0, 330, 230)
# The PNGs are stored with a 256-colour palette (tens of KB; the findings are measured on the
# stored files). Fast octree keeps the small faces: a 128-colour median cut took the small face's
# score from 0.82 to 0.35.
COLOURS = 256


def gradient(w, h, top, bottom):
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    g = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    return Image.fromarray(np.repeat(g, w, axis=1).round().astype(np.uint8))


def paste(bg, img, crop, scale, x, y):
    """Pastes `crop` of the astronaut scaled by `scale` with its top left at (x, y); returns the
    face's eyes and box in frame pixels."""
    patch = img.crop(crop)
    patch = patch.resize((round(patch.width * scale), round(patch.height * scale)), Image.LANCZOS)
    bg.paste(patch, (x, y))
    eyes = [((ex - crop[0]) * scale + x, (ey - crop[1]) * scale + y) for ex, ey in EYES]
    box = [(FACE[0] - crop[0]) * scale + x, (FACE[1] - crop[1]) * scale + y,
           (FACE[2] - crop[0]) * scale + x, (FACE[3] - crop[1]) * scale + y]
    return eyes, box


def make_images(astronaut):
    img = Image.open(astronaut).convert("RGB")
    out = {}
    # (a) A close crop, forehead to chin: no body in the frame.
    crop = img.crop((125, 25, 325, 175)).resize((320, 240), Image.LANCZOS)
    s = 320 / 200
    eyes = [((ex - 125) * s, (ey - 25) * s) for ex, ey in EYES]
    box = [(FACE[0] - 125) * s, (FACE[1] - 25) * s, (FACE[2] - 125) * s, min(240.0, (FACE[3] - 25) * s)]
    out["face-alone.png"] = (crop, eyes, box)
    # (b) A head (14 px between the eyes) behind a person in front: only the head shows, its
    # body is hidden by the front person's photo, pasted over it.
    bg = gradient(640, 360, (150, 180, 215), (205, 215, 225))
    eyes, box = paste(bg, img, HEAD, 14 / 47, 330, 60)
    bg.paste(img.resize((330, 330), Image.LANCZOS), (150, 100))
    box[3] = min(box[3], 100.0)
    out["face-hidden-body.png"] = (bg, eyes, box)
    # (c) A small person (6 px between the eyes) in a wide frame.
    bg = gradient(960, 544, (120, 130, 140), (180, 175, 165))
    eyes, box = paste(bg, img, (0, 0, 512, 512), 6 / 47, 610, 230)
    out["face-small.png"] = (bg, eyes, box)
    return img, out


def pose_find(sess, rgb, eyes, box):
    """YOLO11n-pose with the element's letterbox and defaults: every person (score >= 0.25 after
    NMS 0.7) whose box holds the face's eye midpoint, with its eye keypoints."""
    h, w = rgb.shape[:2]
    scale = 640 / max(w, h)
    net, (px, py) = fm.letterbox(rgb, scale, 114.0)
    x = np.ascontiguousarray((net / 255.0).transpose(2, 0, 1))[None].astype(np.float32)
    out = sess.run(None, {"images": x})[0][0]
    keep = out[4] >= 0.25
    rows = out[:, keep].T
    dets = np.column_stack([rows[:, 0] - rows[:, 2] / 2, rows[:, 1] - rows[:, 3] / 2, rows[:, 0] + rows[:, 2] / 2, rows[:, 1] + rows[:, 3] / 2, rows[:, 4], rows[:, 5:]])
    dets = fm.nms(dets, 0.7)
    mid = ((eyes[0][0] + eyes[1][0]) / 2, (eyes[0][1] + eyes[1][1]) / 2)
    found = []
    for d in dets:
        bx = [(d[0] - px) / scale, (d[1] - py) / scale, (d[2] - px) / scale, (d[3] - py) / scale]
        if not (bx[0] <= mid[0] <= bx[2] and bx[1] <= mid[1] <= bx[3]):
            continue
        kp = d[5:].reshape(17, 3)
        eyes_kp = [[float((kp[k, 0] - px) / scale), float((kp[k, 1] - py) / scale), float(kp[k, 2])] for k in (1, 2)]
        found.append({"score": round(float(d[4]), 4), "box": [round(float(v), 1) for v in bx],
                      "eyes": [[round(v, 3) for v in e] for e in eyes_kp],
                      "eyes_confident": all(e[2] >= 0.5 for e in eyes_kp)})
    return found


def face_find(sess, rgb, box):
    dets = fm.detect(sess, fm.YuNet(), [rgb], 1.0, 0.5, 0.3)[0]
    found = []
    for d in dets:
        c = ((d[0] + d[2]) / 2, (d[1] + d[3]) / 2)
        if box[0] <= c[0] <= box[2] and box[1] <= c[1] <= box[3]:
            found.append({"score": round(float(d[4]), 4), "box": [round(float(v), 1) for v in d[:4]],
                          "eyes": [[round(float(d[5]), 1), round(float(d[6]), 1)], [round(float(d[7]), 1), round(float(d[8]), 1)]]})
    return found, len(dets) - len(found)


def reference(img, face_sess, out_dir):
    """The decoder fixture: a 120x100 crop, its raw outputs, the Python decoding."""
    crop = np.asarray(img.crop((120, 25, 330, 200)).resize((120, 100), Image.LANCZOS))
    os.makedirs(out_dir, exist_ok=True)
    crop.tofile(os.path.join(out_dir, "frame-120x100.rgb"))
    model = fm.YuNet()
    net, (px, py) = fm.letterbox(crop, 1.0, model.pad_value)
    x = model.tensor(net)[None]
    names = [o.name for o in face_sess.get_outputs()]
    res = dict(zip(names, face_sess.run(None, {"input": x})))
    order = [f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in (8, 16, 32)]
    with open(os.path.join(out_dir, "yunet-outputs.f32"), "wb") as f:
        for k in order:
            f.write(res[k].astype("<f4").tobytes())
    thr, iou = 0.1, 0.3
    nh, nw = x.shape[2:]
    d = fm.nms(model.decode(res, 0, nw, nh, thr), iou).copy()
    d[:, [0, 2, 5, 7, 9, 11, 13]] -= px
    d[:, [1, 3, 6, 8, 10, 12, 14]] -= py
    rng = np.random.default_rng(7)
    flat = x.ravel()
    samples = sorted(int(i) for i in rng.choice(flat.size, 24, replace=False))
    meta = {
        "source": "scikit-image 0.26.0 skimage/data/astronaut.png, crop (120, 25, 330, 200) resized to 120x100 (Lanczos)",
        "frame_w": 120, "frame_h": 100, "scale": 1.0, "net_w": int(nw), "net_h": int(nh),
        "threshold": thr, "iou": iou,
        "tensor_channel_sums": [float(flat[c * nw * nh:(c + 1) * nw * nh].astype(np.float64).sum()) for c in range(3)],
        "tensor_samples": [[i, float(flat[i])] for i in samples],
        "faces": [[round(float(v), 4) for v in row] for row in d],
    }
    with open(os.path.join(out_dir, "yunet.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    return meta


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--astronaut", required=True)
    p.add_argument("--face-model", required=True)
    p.add_argument("--pose-model", required=True)
    p.add_argument("--out", default=HERE)
    a = p.parse_args()
    face_sess = fm.session(a.face_model, "cpu")
    pose_sess = fm.session(a.pose_model, "cpu")
    img, images = make_images(a.astronaut)
    findings = {}
    for name, (im, eyes, box) in images.items():
        path = os.path.join(a.out, name)
        im.quantize(COLOURS, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
        rgb = np.asarray(Image.open(path).convert("RGB"))
        pose = pose_find(pose_sess, rgb, eyes, box)
        face, others = face_find(face_sess, rgb, box)
        findings[name] = {
            "size": list(rgb.shape[1::-1]),
            "face_box": [round(float(v), 1) for v in box],
            "eyes": [[round(float(v), 1) for v in e] for e in eyes],
            "inter_eye_px": round(float(math.dist(*eyes)), 1),
            "pose_persons_on_face": pose,
            "face_model": face,
            "face_model_other_detections": others,
        }
        print(f"{name}: {os.path.getsize(path)} bytes, inter-eye {findings[name]['inter_eye_px']} px; "
              f"pose: {[(d['score'], d['eyes_confident']) for d in pose] or 'nothing'}; face model: {[d['score'] for d in face] or 'nothing'}")
    with open(os.path.join(a.out, "findings.json"), "w") as f:
        json.dump(findings, f, indent=1)
        f.write("\n")
    meta = reference(img, face_sess, os.path.join(a.out, "reference"))
    print(f"reference: {len(meta['faces'])} face(s) {meta['faces']}")


if __name__ == "__main__":
    main()
