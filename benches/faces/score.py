#!/usr/bin/env python3
"""Scores how well a tool covered the faces of the benchmark clip, from the pixels it changed.

  score.py truth --clip CLIP.y4m --judges A.jsonl,B.jsonl,... --people REF.jsonl --out TRUTH.json
  score.py tool --clip CLIP.y4m --truth TRUTH.json --format i420|rgb --output FILE|- \
      [--input-rgb CMD] --name NAME --seconds S --out RESULT.json
  score.py report RUNDIR

truth: ground truth = faces found by >= 2 judges in the same frame (a judge's face joins another
judge's when their boxes overlap by IoU >= 0.3, or when their eye midpoints lie within 0.35 x the
inter-eye distance of each other with inter-eye distances within a factor 2), with the mean of the
judges' eye points and boxes; plus the 'near' zone of every frame: every box of any judge grown by
its own size on each side, and every person box of REF (the element's float32 reference run's
detections-file, people found by the pose model) grown by 10 % on each side.

tool: the covered mask of a frame = the pixels the tool changed (it runs with a solid fill).
  i420: the element's raw I420 output against the clip's own planes: a pixel is changed when its
        luma differs, or when its luma equals the fill's and its chroma sample differs.
  rgb:  raw RGB frames (deface's lossless output and the clip as deface's ffmpeg decoded it, from
        readframes.py): a pixel is changed when any channel differs.
A face's eyes count as covered when both eye points and 8 points around each, at a radius of
max(1, 0.1 x the inter-eye distance), are inside the mask; a face counts as covered at 80 % when
>= 80 % of its (mean) box is inside the mask. Far pixels = outside the near zone.

report: the tables of all RESULT.json files in RUNDIR/results, in the order of RUNDIR/order.txt.
"""
import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import judges as J  # noqa: E402

BUCKETS = [(0, 6, "< 6 px"), (6, 10, "6-10 px"), (10, 25, "10-25 px"), (25, 60, "25-60 px"),
           (60, 1e9, "> 60 px")]
# The bar holds "in every inter-eye bucket down to 6 px": frames with an uncovered eye are
# also counted over the faces of at least this inter-eye distance.
MIN_IED = 6.0
CUT_WINDOW = 8  # frames after a cut (the cut frame and the 7 after it)
STEADY_FROM = 9  # frames since the cut: the 10th frame on


# ----------------------------------------------------------------------------------------------
# Ground truth


def _mid(f):
    e = f.get("eyes")
    if not e:
        return None
    return ((e[0][0] + e[1][0]) / 2, (e[0][1] + e[1][1]) / 2,
            math.hypot(e[1][0] - e[0][0], e[1][1] - e[0][1]))


def same_face(a, b):
    if J.iou(a["box"], b["box"]) >= 0.3:
        return True
    ma, mb = _mid(a), _mid(b)
    if ma is None or mb is None or min(ma[2], mb[2]) <= 0:
        return False
    d = math.hypot(ma[0] - mb[0], ma[1] - mb[1])
    return d <= 0.35 * max(ma[2], mb[2]) and max(ma[2], mb[2]) / min(ma[2], mb[2]) <= 2.0


def ground_truth(dets, min_judges=2):
    """dets: {judge: [faces]} of one frame -> faces found by >= min_judges judges."""
    clusters = []
    allf = sorted(((f["score"], j, k, f) for j, fs in dets.items() for k, f in enumerate(fs)),
                  key=lambda t: (-t[0], t[1], t[2]))
    for _, j, _, f in allf:
        for c in clusters:
            if j not in c and same_face(next(iter(c.values())), f):
                c[j] = f
                break
        else:
            clusters.append({j: f})
    out = []
    for c in clusters:
        if len(c) < min_judges:
            continue
        box = [float(np.mean([f["box"][i] for f in c.values()])) for i in range(4)]
        withe = [f["eyes"] for f in c.values() if f.get("eyes")]
        eyes = None
        if withe:
            eyes = [[float(np.mean([e[k][i] for e in withe])) for i in range(2)] for k in range(2)]
        ied = math.hypot(eyes[1][0] - eyes[0][0], eyes[1][1] - eyes[0][1]) if eyes else None
        out.append({"box": [round(v, 1) for v in box],
                    "eyes": [[round(v, 1) for v in e] for e in eyes] if eyes else None,
                    "ied": round(ied, 2) if ied is not None else None, "judges": sorted(c)})
    return out


def load_jsonl(path):
    frames, done = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            if rec.get("done"):
                done = rec
            else:
                frames[int(rec["frame"])] = rec
    return frames, done


def cmd_truth(args):
    meta = json.load(open(os.path.splitext(args.clip)[0] + ".json", encoding="utf-8"))
    n = meta["frames"]
    per_judge = {}
    for p in args.judges.split(","):
        frames, done = load_jsonl(p)
        if not done or done["frames"] != n:
            sys.exit(f"score.py: {p} is incomplete ({len(frames)} of {n} frames)")
        per_judge[done["judge"]] = (frames, done)
    people, _ = load_jsonl(args.people)
    if len(people) != n:
        sys.exit(f"score.py: {args.people} has {len(people)} frames, the clip {n}")
    W, H = meta["width"], meta["height"]
    out_frames = []
    agree = {"found_by": {}, "judge_faces": {j: 0 for j in per_judge},
             "judge_in_truth": {j: 0 for j in per_judge}}
    for i in range(n):
        dets = {j: fr[i]["faces"] for j, (fr, _) in per_judge.items()}
        gt = ground_truth(dets)
        allc = ground_truth(dets, min_judges=1)
        for c in allc:
            k = len(c["judges"])
            agree["found_by"][k] = agree["found_by"].get(k, 0) + 1
        for j in per_judge:
            agree["judge_faces"][j] += len(dets[j])
            agree["judge_in_truth"][j] += sum(1 for g in gt if j in g["judges"])
        near = []
        for fs in dets.values():
            for f in fs:
                x0, y0, x1, y1 = f["box"]
                w, h = x1 - x0, y1 - y0
                near.append([x0 - w, y0 - h, x1 + w, y1 + h])
        for p in people[i].get("people", []):
            if p.get("source", "detected") != "detected":
                continue
            x0, y0, x1, y1 = (v if v is not None else d for v, d in zip(p["box"], (0, 0, W, H)))
            w, h = x1 - x0, y1 - y0
            near.append([x0 - 0.1 * w, y0 - 0.1 * h, x1 + 0.1 * w, y1 + 0.1 * h])
        faces = [g for g in gt if g["eyes"] and all(0 <= e[0] < W and 0 <= e[1] < H
                                                    for e in g["eyes"])]
        out_frames.append({"faces": faces, "near": [[round(v, 1) for v in r] for r in near]})
    res = {"clip": meta, "judges": {j: {"seconds": d["seconds"]} for j, (_, d) in per_judge.items()},
           "agreement": agree, "frames": out_frames}
    with open(args.out + ".tmp", "w", encoding="utf-8") as f:
        json.dump(res, f)
    os.replace(args.out + ".tmp", args.out)
    nf = sum(len(fr["faces"]) for fr in out_frames)
    print(f"score.py: ground truth: {nf} faces in {n} frames", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------------------------
# Scoring a tool


def rect_mask(rects, W, H):
    m = np.zeros((H, W), bool)
    for x0, y0, x1, y1 in rects:
        x0, y0 = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
        x1, y1 = min(W, int(math.ceil(x1))), min(H, int(math.ceil(y1)))
        if x0 < x1 and y0 < y1:
            m[y0:y1, x0:x1] = True
    return m


def eye_covered(mask, e, r):
    H, W = mask.shape
    pts = [(e[0], e[1])] + [(e[0] + r * math.cos(a), e[1] + r * math.sin(a))
                            for a in np.linspace(0, 2 * math.pi, 8, endpoint=False)]
    for x, y in pts:
        xi, yi = int(math.floor(x)), int(math.floor(y))
        if 0 <= xi < W and 0 <= yi < H and not mask[yi, xi]:
            return False
    return True


def box_fraction(mask, b):
    H, W = mask.shape
    x0, y0 = max(0, int(round(b[0]))), max(0, int(round(b[1])))
    x1, y1 = min(W, int(round(b[2]))), min(H, int(round(b[3])))
    if x0 >= x1 or y0 >= y1:
        return 1.0
    return float(mask[y0:y1, x0:x1].mean())


def i420_masks(clip, output, n):
    W, H = None, None
    with open(output, "rb") as out:
        for i, w, h, (y, u, v) in J.y4m_frames(clip, n):
            ys, cs = w * h, (w // 2) * (h // 2)
            buf = out.read(ys + 2 * cs)
            if len(buf) < ys + 2 * cs:
                raise ValueError(f"{output}: frame {i} missing (the tool gave fewer frames)")
            a = np.frombuffer(buf, np.uint8)
            yo = a[:ys].reshape(h, w)
            uo = a[ys:ys + cs].reshape(h // 2, w // 2)
            vo = a[ys + cs:].reshape(h // 2, w // 2)
            ych = yo != y
            cch = (uo != u) | (vo != v)
            cch = np.repeat(np.repeat(cch, 2, 0), 2, 1)
            mask = ych
            if ych.any():
                fill_y = np.bincount(yo[ych]).argmax()
                mask = ych | (cch & (yo == fill_y))
            yield mask
        if out.read(1):
            raise ValueError(f"{output}: more frames than the clip ({n})")


def rgb_masks(cmd_in, cmd_out, W, H, n):
    size = W * H * 3
    pin = subprocess.Popen(cmd_in, stdout=subprocess.PIPE)
    pout = subprocess.Popen(cmd_out, stdout=subprocess.PIPE)
    try:
        for i in range(n):
            a, b = pin.stdout.read(size), pout.stdout.read(size)
            if len(a) < size or len(b) < size:
                raise ValueError(f"frame {i}: input or output ended early ({len(a)}, {len(b)} "
                                 "bytes)")
            a = np.frombuffer(a, np.uint8).reshape(H, W, 3)
            b = np.frombuffer(b, np.uint8).reshape(H, W, 3)
            yield (a != b).any(axis=2)
        if pout.stdout.read(1):
            raise ValueError("the tool's output has more frames than the clip")
    finally:
        for p in (pin, pout):
            p.stdout.close()
            p.wait()


def cmd_tool(args):
    truth = json.load(open(args.truth, encoding="utf-8"))
    meta = truth["clip"]
    W, H, n = meta["width"], meta["height"], meta["frames"]
    cuts = set(meta["cuts"])
    since = []
    last = 0
    for i in range(n):
        if i in cuts:
            last = i
        since.append(i - last)
    if args.format == "i420":
        masks = i420_masks(args.clip, args.output, n)
    else:
        rf = [args.readframes_python, os.path.join(HERE, "readframes.py")]
        masks = rgb_masks(rf + [args.input_video], rf + [args.output], W, H, n)
    dets = load_jsonl(args.detections)[0] if args.detections else None
    cross = {"frames_checked": 0, "frames_region_not_painted": 0, "frames_redacted_whole": 0,
             "pixels_painted_outside_regions": 0}
    frames = []
    for i, mask in enumerate(masks):
        fr = truth["frames"][i]
        if dets is not None:
            # Cross-check: every region of the element's detections-file must be painted.
            d = dets.get(i, {})
            cross["frames_checked"] += 1
            if d.get("redacted_whole"):
                cross["frames_redacted_whole"] += 1
            else:
                rm = rect_mask([(g["x0"], g["y0"], g["x1"], g["y1"]) for g in d.get("regions", [])],
                               W, H)
                cross["frames_region_not_painted"] += bool((rm & ~mask).any())
                cross["pixels_painted_outside_regions"] += int((mask & ~rm).sum())
        far = ~rect_mask(fr["near"], W, H)
        faces = []
        for g in fr["faces"]:
            r = max(1.0, 0.1 * g["ied"])
            eyes = all(eye_covered(mask, e, r) for e in g["eyes"])
            faces.append([g["ied"], bool(eyes), round(box_fraction(mask, g["box"]), 3),
                          g["judges"]])
        frames.append({"faces": faces, "far": int(far.sum()), "far_changed": int((mask & far).sum()),
                       "changed": int(mask.sum()), "since_cut": since[i],
                       "after_cut": (i - since[i]) in cuts and since[i] < CUT_WINDOW})
    if len(frames) != n:
        sys.exit(f"score.py: {args.name}: {len(frames)} frames scored, the clip has {n}")
    res = {"name": args.name, "command": args.command, "seconds": args.seconds, "frames": n,
           "per_frame": frames, "cross_check": cross if dets is not None else None}
    with open(args.out + ".tmp", "w", encoding="utf-8") as f:
        json.dump(res, f)
    os.replace(args.out + ".tmp", args.out)
    s = summary(res)
    print(f"score.py: {args.name}: eye recall {pct(s['eye'], s['faces'])}, faces >= 80 % "
          f"{pct(s['box80'], s['faces'])}, frames with an uncovered eye {s['bad_frames']}",
          file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------------------------
# Report


def pct(a, b):
    return "n/a" if not b else f"{100.0 * a / b:.1f} %"


def summary(res, without=None):
    """Totals of a tool's result; without = a judge whose votes do not count (a face then needs
    two of the other judges)."""
    s = {"faces": 0, "eye": 0, "box80": 0, "bad_frames": 0, "bad_frames_6": 0,
         "frames_with_faces": 0,
         "buckets": {b[2]: [0, 0, 0] for b in BUCKETS}}
    far = {"all": [0, 0], "cut": [0, 0], "steady": [0, 0]}
    for fr in res["per_frame"]:
        bad = bad6 = False
        for ied, eye, frac, *js in fr["faces"]:
            if without and js and len([j for j in js[0] if j != without]) < 2:
                continue
            s["faces"] += 1
            s["eye"] += eye
            s["box80"] += frac >= 0.8
            bad |= not eye
            bad6 |= (not eye) and ied >= MIN_IED
            for lo, hi, name in BUCKETS:
                if lo <= ied < hi:
                    b = s["buckets"][name]
                    b[0] += 1
                    b[1] += eye
                    b[2] += frac >= 0.8
        s["frames_with_faces"] += bool(fr["faces"])
        s["bad_frames"] += bad
        s["bad_frames_6"] += bad6
        groups = ["all"] + (["cut"] if fr["after_cut"] else []) + (
            ["steady"] if fr["since_cut"] >= STEADY_FROM else [])
        for g in groups:
            far[g][0] += fr["far_changed"]
            far[g][1] += fr["far"]
    s["far"] = {g: (100.0 * a / b if b else None) for g, (a, b) in far.items()}
    return s


def fmt_far(v):
    return "n/a" if v is None else f"{v:.2f} %"


def cmd_report(args):
    rd = args.rundir
    truth = json.load(open(os.path.join(rd, "truth.json"), encoding="utf-8"))
    meta = truth["clip"]
    order = [l.strip() for l in open(os.path.join(rd, "order.txt"), encoding="utf-8") if l.strip()]
    results = []
    for name in order:
        p = os.path.join(rd, "results", name + ".json")
        if os.path.exists(p):
            results.append(json.load(open(p, encoding="utf-8")))
    lines = []
    out = lines.append
    n = meta["frames"]
    nf = sum(len(f["faces"]) for f in truth["frames"])
    bcount = {b[2]: 0 for b in BUCKETS}
    for f in truth["frames"]:
        for g in f["faces"]:
            for lo, hi, name in BUCKETS:
                if lo <= g["ied"] < hi:
                    bcount[name] += 1
    with_faces = sum(1 for f in truth["frames"] if f["faces"])
    out(f"Clip: {meta['width']}x{meta['height']}, {n} frames, {len(meta['shots'])} shots (cuts at "
        f"frames {', '.join(map(str, meta['cuts']))}); ground truth: {nf} faces found by >= 2 of "
        f"the judges ({', '.join(sorted(truth['judges']))}) in {with_faces} frames; by "
        "inter-eye distance: " + ", ".join(f"{k} {v}" for k, v in bcount.items()) + ".")
    out("")
    out("| tool | eye recall | frames with an uncovered eye (of %d with faces; in brackets: an "
        "eye of a face >= 6 px) | faces >= 80 %% "
        "covered | far pixels changed | after cuts (8 frames) | steady (10th frame on) | "
        "frames/s |" % with_faces)
    out("|---|---:|---:|---:|---:|---:|---:|---:|")
    sums = []
    for r in results:
        s = summary(r)
        sums.append((r, s))
        fps = f"{r['frames'] / r['seconds']:.1f}" if r.get("seconds") else "n/a"
        out(f"| {r['name']} | {pct(s['eye'], s['faces'])} | {s['bad_frames']} "
            f"({s['bad_frames_6']}) | "
            f"{pct(s['box80'], s['faces'])} | {fmt_far(s['far']['all'])} | "
            f"{fmt_far(s['far']['cut'])} | {fmt_far(s['far']['steady'])} | {fps} |")
    out("")
    out("By inter-eye distance (faces in the ground truth: " +
        ", ".join(f"{k}: {v}" for k, v in bcount.items()) + "):")
    out("")
    out("| tool | " + " | ".join(f"eyes {b[2]}" for b in BUCKETS) + " | " +
        " | ".join(f">= 80 % {b[2]}" for b in BUCKETS) + " |")
    out("|---|" + "---:|" * (2 * len(BUCKETS)))
    for r, s in sums:
        cells = [pct(s["buckets"][b[2]][1], s["buckets"][b[2]][0]) for b in BUCKETS]
        cells += [pct(s["buckets"][b[2]][2], s["buckets"][b[2]][0]) for b in BUCKETS]
        out(f"| {r['name']} | " + " | ".join(cells) + " |")
    cf = [j for j in truth["judges"] if j.startswith("centerface")]
    if cf and len(truth["judges"]) >= 3 and any(r["name"].startswith("deface") for r, _ in sums):
        out("")
        out(f"deface runs CenterFace itself: the same figures with the faces that two judges other "
            f"than {cf[0]} found (its votes not counted):")
        out("")
        out("| tool | faces | eye recall | frames with an uncovered eye | faces >= 80 % covered | "
            "eyes < 6 px | eyes 6-10 px | eyes 10-25 px |")
        out("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r, _ in sums:
            s = summary(r, without=cf[0])
            b = s["buckets"]
            out(f"| {r['name']} | {s['faces']} | {pct(s['eye'], s['faces'])} | {s['bad_frames']} | "
                f"{pct(s['box80'], s['faces'])} | {pct(b['< 6 px'][1], b['< 6 px'][0])} | "
                f"{pct(b['6-10 px'][1], b['6-10 px'][0])} | "
                f"{pct(b['10-25 px'][1], b['10-25 px'][0])} |")
    out("")
    ag = truth["agreement"]
    out("Judges: " + "; ".join(
        f"{j}: {ag['judge_faces'][j]} faces, {ag['judge_in_truth'][j]} of them in the ground truth"
        f" ({pct(ag['judge_in_truth'][j], ag['judge_faces'][j])}), {truth['judges'][j]['seconds']}"
        " s" for j in sorted(ag["judge_faces"])) + ". Faces found by exactly k judges: " +
        ", ".join(f"k={k}: {v}" for k, v in sorted(ag["found_by"].items(), key=lambda t: int(t[0])))
        + ".")
    ann = os.path.join(rd, "annotated.json")
    if os.path.exists(ann):
        a = json.load(open(ann, encoding="utf-8"))
        out("")
        out(f"Judges on dlib's human-annotated faces ({a['human_faces']} faces, 37-109 px boxes, "
            f"in {a['images']} PASCAL VOC photos), the photos at their size and scaled down:")
        out("")
        js = list(next(iter(a["scales"].values()))["recall"])
        out("| photo scale | " + " | ".join(f"{j} recall" for j in js) +
            " | >= 2 judges recall | agreed faces without a human box |")
        out("|---:|" + "---:|" * (len(js) + 2))
        for sc, v in a["scales"].items():
            out(f"| {sc} | " + " | ".join(
                f"{100 * v['recall'][j]:.1f} % ({v['detections'][j]} found)" for j in js) +
                f" | {100 * v['recall_ge2']:.1f} % | {v['ge2_not_annotated']} |")
    out("")
    for r, _ in sums:
        c = r.get("cross_check")
        check = ""
        if c:
            check = (f" (cross-check with its detections-file: {c['frames_region_not_painted']} of "
                     f"{c['frames_checked']} frames with a region not painted, "
                     f"{c['frames_redacted_whole']} redacted whole, "
                     f"{c['pixels_painted_outside_regions'] / max(1, c['frames_checked']):.0f} px "
                     "a frame painted outside the regions: their edges rounded to the chroma grid)")
        out(f"- {r['name']}: `{r['command']}`{check}")
    text = "\n".join(lines)
    print(text)
    hp = os.path.join(rd, "header.txt")
    header = open(hp, encoding="utf-8").read().rstrip() if os.path.exists(hp) else ""
    with open(os.path.join(rd, "results.md"), "w", encoding="utf-8") as f:
        f.write("# yoloanonymize face-coverage benchmark\n\n```\n" + header + "\n```\n\n" + text +
                "\n")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("truth")
    p.add_argument("--clip", required=True)
    p.add_argument("--judges", required=True)
    p.add_argument("--people", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("tool")
    p.add_argument("--clip", required=True)
    p.add_argument("--truth", required=True)
    p.add_argument("--format", choices=["i420", "rgb"], required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--input-video", help="rgb: the video file the tool read")
    p.add_argument("--detections", help="i420: the element's detections-file, cross-checked")
    p.add_argument("--readframes-python", help="rgb: the python of deface's virtualenv")
    p.add_argument("--name", required=True)
    p.add_argument("--command", default="")
    p.add_argument("--seconds", type=float)
    p.add_argument("--out", required=True)
    p = sub.add_parser("report")
    p.add_argument("rundir")
    args = ap.parse_args()
    return {"truth": cmd_truth, "tool": cmd_tool, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
