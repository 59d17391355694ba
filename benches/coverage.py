#!/usr/bin/env python3
"""Privacy coverage of one yoloanonymize run against a reference run, from their detections-files.

  coverage.py REFERENCE.jsonl CANDIDATE.jsonl [--threshold 0.95] [--kind eyes|face|body]

Both files are what the element writes with `detections-file` set: one JSON object per output
frame, {"frame", "pts", "redacted_whole", "reason", "regions": [{"kind", "x0", "y0", "x1", "y1",
"score"}], "people": [...]}, coordinates in frame pixels, end exclusive.

Every `eyes` region of the reference counts as covered when at least THRESHOLD of its area lies
inside the union of the candidate's redacted regions of the same frame (any kind); a candidate frame
with redacted_whole=true covers everything, a frame missing from the candidate covers nothing.
"""
import json
import sys


def load(path):
    """frame index -> record."""
    frames = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not JSON: {e}") from None
            frames[int(rec["frame"])] = rec
    return frames


def _rect(r):
    return (int(r["x0"]), int(r["y0"]), int(r["x1"]), int(r["y1"]))


def covered_area(target, rects):
    """Area of target (x0, y0, x1, y1) that lies inside the union of rects."""
    tx0, ty0, tx1, ty1 = target
    clipped = []
    for x0, y0, x1, y1 in rects:
        x0, y0, x1, y1 = max(x0, tx0), max(y0, ty0), min(x1, tx1), min(y1, ty1)
        if x0 < x1 and y0 < y1:
            clipped.append((x0, y0, x1, y1))
    if not clipped:
        return 0
    xs = sorted({x for r in clipped for x in (r[0], r[2])})
    area = 0
    for xa, xb in zip(xs, xs[1:]):
        spans = sorted((r[1], r[3]) for r in clipped if r[0] <= xa and r[2] >= xb)
        covered = 0
        cur0 = cur1 = None
        for y0, y1 in spans:
            if cur1 is None or y0 > cur1:
                if cur1 is not None:
                    covered += cur1 - cur0
                cur0, cur1 = y0, y1
            else:
                cur1 = max(cur1, y1)
        if cur1 is not None:
            covered += cur1 - cur0
        area += covered * (xb - xa)
    return area


def compare(ref, cand, threshold=0.95, kind="eyes"):
    """Summary dict of how well cand covers the `kind` regions of ref (both as returned by load)."""
    total = covered = 0
    bad_frames = []
    missing = sorted(set(ref) - set(cand))
    ref_whole = sum(1 for r in ref.values() if r.get("redacted_whole"))
    cand_whole = sum(1 for r in cand.values() if r.get("redacted_whole"))
    worst = 1.0
    for idx in sorted(ref):
        eyes = [_rect(r) for r in ref[idx].get("regions", []) if r.get("kind") == kind]
        eyes = [e for e in eyes if e[2] > e[0] and e[3] > e[1]]
        if not eyes:
            continue
        c = cand.get(idx)
        frame_ok = True
        for e in eyes:
            total += 1
            if c is not None and c.get("redacted_whole"):
                covered += 1
                continue
            rects = [_rect(r) for r in c.get("regions", [])] if c is not None else []
            area = (e[2] - e[0]) * (e[3] - e[1])
            frac = covered_area(e, rects) / area
            worst = min(worst, frac)
            if frac >= threshold:
                covered += 1
            else:
                frame_ok = False
        if not frame_ok:
            bad_frames.append(idx)
    return {
        "eye_regions": total,
        "covered": covered,
        "percent": 100.0 * covered / total if total else None,
        "frames_uncovered": len(bad_frames),
        "uncovered_frame_list": bad_frames,
        "worst_fraction": worst,
        "ref_frames": len(ref),
        "cand_frames": len(cand),
        "missing_frames": len(missing),
        "ref_whole": ref_whole,
        "cand_whole": cand_whole,
    }


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    threshold = 0.95
    kind = "eyes"
    if "--threshold" in argv:
        threshold = float(argv[argv.index("--threshold") + 1])
        args = [a for a in args if a != argv[argv.index("--threshold") + 1]]
    if "--kind" in argv:
        kind = argv[argv.index("--kind") + 1]
        args = [a for a in args if a != kind]
    if len(args) != 2:
        sys.stderr.write(__doc__)
        return 2
    s = compare(load(args[0]), load(args[1]), threshold, kind)
    pct = "n/a" if s["percent"] is None else f"{s['percent']:.2f}%"
    print(f"{kind} regions covered: {s['covered']}/{s['eye_regions']} ({pct}); "
          f"frames with an uncovered {kind} region: {s['frames_uncovered']}"
          + (f" (first: {s['uncovered_frame_list'][:10]})" if s["frames_uncovered"] else "")
          + f"; frames: reference {s['ref_frames']}, candidate {s['cand_frames']}"
          + f" (missing {s['missing_frames']}); redacted whole: reference {s['ref_whole']},"
          + f" candidate {s['cand_whole']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
