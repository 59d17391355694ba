#!/usr/bin/env python3
"""The Python half of scripts/gpu-check.sh (standard library only, any Python 3.8+).

  gpu_check.py record --id ID --kind KIND --desc TEXT --log LOG [--mem FILE] [--rc N]
                      [--wall S] [--param K=V ...]        one run -> one JSON line on stdout
  gpu_check.py compare REF.jsonl CAND.jsonl [--vis 0.5]   detections of two runs -> JSON
  gpu_check.py report RESULTS.jsonl OUT.md                 the Markdown results file
  gpu_check.py cuda-libs                                   NVIDIA's Python packages and libraries

A run's LOG is what `gst-launch-1.0 -m` printed: the element messages `yoloanonymize-provider` and
`yoloanonymize-stats` (periodic ones while running, one at EOS per element), and ERROR lines.
Steady frames/s is the median of an element's periodic reports but the first (each covers one
second of stream time, timed on the wall clock, so model loading and the first batches' warm-up
are outside); with several elements (streams) their medians are added.
MEM is what nvidia-smi printed every 0.2 s during the run: `gpu <MiB used>` lines, and `app <pid>
<MiB>` lines where the driver lists processes; `base <MiB>` is the reading before the run.
"""
import json
import math
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coverage  # noqa: E402  (benches/coverage.py)

FIELD = re.compile(r'([\w-]+)=\((\w+)\)("(?:[^"\\]|\\.)*"|[^,;]*)')
SOURCE_LINE = re.compile(r"^\S+\.(rs|c|cpp)\(\d+\)")
MSG = re.compile(r'^Got message #\d+ from element "([^"]+)" \(element\): ([\w-]+), (.*)$')


def value(ty, raw):
    if raw.startswith('"'):
        raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
    if ty in ("double", "float"):
        return float(raw)
    if ty in ("int", "uint", "guint64", "gint64", "long", "ulong"):
        return int(raw)
    if ty == "boolean":
        return raw.lower() in ("true", "1", "yes")
    return raw


def parse_log(path):
    provider, errors, elements = {}, [], {}
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError as e:
        return {"provider": {}, "errors": [f"no log: {e}"], "elements": {}}
    for i, line in enumerate(lines):
        m = MSG.match(line)
        if m:
            name, kind, rest = m.groups()
            fields = {k: value(t, v) for k, t, v in FIELD.findall(rest)}
            if kind == "yoloanonymize-provider":
                provider[name] = fields
            elif kind == "yoloanonymize-stats":
                el = elements.setdefault(name, {"fps": [], "eos": None})
                if fields.get("eos"):
                    el["eos"] = fields
                else:
                    el["fps"].append(fields.get("fps", 0.0))
        elif line.startswith("ERROR:") or line.startswith("WARNING:"):
            nxt = lines[i + 2] if i + 2 < len(lines) and lines[i + 1].startswith("Additional debug info") else ""
            if SOURCE_LINE.match(nxt):  # where in the code, not what happened
                nxt = ""
            errors.append((line + " " + nxt).strip())
    return {"provider": provider, "errors": errors, "elements": elements}


def parse_mem(path):
    base = gpu = None
    apps = {}
    try:
        for line in open(path, encoding="utf-8", errors="replace"):
            p = line.replace(",", " ").split()
            try:
                if p[:1] == ["base"]:
                    base = float(p[1])
                elif p[:1] == ["gpu"]:
                    gpu = max(gpu or 0.0, float(p[1]))
                elif p[:1] == ["app"]:
                    apps[p[1]] = max(apps.get(p[1], 0.0), float(p[2]))
            except (IndexError, ValueError):
                continue
    except OSError:
        pass
    return {
        "max_used_mib": gpu,
        "delta_mib": (gpu - base) if gpu is not None and base is not None else None,
        "process_mib": max(apps.values()) if apps else None,
    }


def cmd_record(argv):
    a = {"param": {}}
    it = iter(argv)
    for k in it:
        if k == "--param":
            key, _, v = next(it).partition("=")
            a["param"][key] = v
        elif k.startswith("--"):
            a[k[2:]] = next(it)
    run = parse_log(a["log"])
    steady = []
    eos = []
    for name, el in sorted(run["elements"].items()):
        f = el["fps"][1:] if len(el["fps"]) > 1 else []
        steady.append(statistics.median(f) if f else None)
        eos.append(el["eos"] or {})
    known = [s for s in steady if s is not None]
    total = lambda key: sum(e.get(key, 0) for e in eos)  # noqa: E731
    rec = {
        "id": a.get("id"),
        "kind": a.get("kind"),
        "desc": a.get("desc"),
        "param": a["param"],
        "rc": int(a.get("rc", "0")),
        "wall_s": float(a["wall"]) if "wall" in a else None,
        "providers": sorted({p.get("provider", "") for p in run["provider"].values()}),
        "notes": sorted({p.get("note", "") for p in run["provider"].values()} - {""}),
        "streams": len(run["elements"]),
        "steady_fps": sum(known) if known and len(known) == len(steady) else None,
        "steady_reports": min((max(len(el["fps"]) - 1, 0) for el in run["elements"].values()), default=0),
        "eos_fps": sum(e.get("fps", 0.0) for e in eos) if eos and all(eos) else None,
        "frames": total("frames"),
        "analysed": total("analysed"),
        "batches": total("batches"),
        "batches_merged": total("batches-merged"),
        "people": total("people"),
        "frames_whole": total("frames-redacted-whole"),
        "inference_ms": total("inference-ms"),
        "preprocess_ms": total("preprocess-ms"),
        "redact_ms": total("redact-ms"),
        "wait_ms": total("wait-ms"),
        "errors": run["errors"][:5],
    }
    if rec["batches"]:
        rec["frames_per_batch"] = rec["analysed"] / rec["batches"]
        rec["inference_ms_per_batch"] = rec["inference_ms"] / rec["batches"]
    if "mem" in a:
        rec.update(parse_mem(a["mem"]))
    if rec["wall_s"] is not None and not math.isfinite(rec["wall_s"]):
        rec["wall_s"] = None
    print(json.dumps(rec))


# ---------------------------------------------------------------------------------------------
# Detections


def iou(a, b):
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area if area > 0 else 0.0


def detected(rec):
    return [p for p in rec.get("people", []) if p.get("source", "detected") == "detected"]


def compare(ref_path, cand_path, vis=0.5):
    """People the model detected in each frame (source "detected"), matched one to one by box
    IoU >= 0.5, the reference's people by descending score (as models/quantize_int8.py does);
    eye error: both eyes (COCO keypoints 1 and 2) that are confident (>= vis) in the reference;
    eye coverage: benches/coverage.py over the redacted regions."""
    ref, cand = coverage.load(ref_path), coverage.load(cand_path)
    n_ref = matched = n_cand = 0
    eye_err, box_iou = [], []
    eyes_conf = eyes_conf_both = 0
    for idx in sorted(ref):
        r = detected(ref[idx])
        c = detected(cand.get(idx, {}))
        n_ref += len(r)
        n_cand += len(c)
        taken = [False] * len(c)
        for p in sorted(r, key=lambda p: -p["score"]):
            best, j = 0.0, -1
            for k, q in enumerate(c):
                if not taken[k]:
                    v = iou(p["box"], q["box"])
                    if v > best:
                        best, j = v, k
            if j < 0 or best < 0.5:
                continue
            taken[j] = True
            matched += 1
            box_iou.append(best)
            q = c[j]
            for e in (1, 2):
                kr, kc = p["keypoints"][e], q["keypoints"][e]
                if kr[2] >= vis:
                    eyes_conf += 1
                    eyes_conf_both += kc[2] >= vis
                    eye_err.append(math.hypot(kc[0] - kr[0], kc[1] - kr[1]))
    cov = coverage.compare(ref, cand, 0.95, "eyes")
    eye_err.sort()
    pct = lambda n, d: 100.0 * n / d if d else None  # noqa: E731
    return {
        "frames_ref": len(ref),
        "frames_cand": len(cand),
        "people_ref": n_ref,
        "people_cand": n_cand,
        "matched": matched,
        "matched_pct": pct(matched, n_ref),
        "unmatched_cand": n_cand - matched,
        "mean_box_iou": statistics.mean(box_iou) if box_iou else None,
        "eyes_confident": eyes_conf,
        "eyes_confident_in_both_pct": pct(eyes_conf_both, eyes_conf),
        "eye_err_mean_px": statistics.mean(eye_err) if eye_err else None,
        "eye_err_p95_px": eye_err[min(len(eye_err) - 1, int(0.95 * len(eye_err)))] if eye_err else None,
        "eye_err_max_px": eye_err[-1] if eye_err else None,
        "eye_regions_ref": cov["eye_regions"],
        "eye_regions_covered": cov["covered"],
        "eye_coverage_pct": cov["percent"],
        "frames_uncovered": cov["frames_uncovered"],
        "cand_redacted_whole": cov["cand_whole"],
    }


def cmd_compare(argv):
    vis, args = 0.5, list(argv)
    if "--vis" in args:
        i = args.index("--vis")
        vis = float(args[i + 1])
        del args[i : i + 2]
    print(json.dumps(compare(args[0], args[1], vis)))


# ---------------------------------------------------------------------------------------------
# NVIDIA's Python packages

PACKAGES = ["nvidia-cuda-runtime", "nvidia-cublas", "nvidia-cudnn-cu13", "nvidia-curand", "nvidia-cufft",
            "nvidia-nvjitlink", "nvidia-cuda-nvrtc", "torch", "onnxruntime", "onnxruntime-gpu"]
SONAMES = ["libcudart.so.13", "libcublasLt.so.13", "libcublas.so.13", "libcurand.so.10", "libcufft.so.12",
           "libnvJitLink.so.13", "libnvrtc.so.13", "libcudnn.so.9"]


def cmd_cuda_libs(_argv):
    out = {"python": sys.executable, "version": sys.version.split()[0], "packages": {}, "libs": {}, "dirs": []}
    try:
        from importlib import metadata
        for p in PACKAGES:
            try:
                out["packages"][p] = metadata.version(p)
            except metadata.PackageNotFoundError:
                out["packages"][p] = None
    except ImportError:
        pass
    try:
        import nvidia  # a namespace package: one folder per site-packages that has one
        roots = list(nvidia.__path__)
    except ImportError:
        roots = []
    for r in roots:
        for sub in sorted(os.listdir(r)):
            d = os.path.join(r, sub, "lib")
            if os.path.isdir(d):
                out["dirs"].append(d)
                for so in SONAMES:
                    if so not in out["libs"] and os.path.exists(os.path.join(d, so)):
                        out["libs"][so] = os.path.join(d, so)
    print(json.dumps(out))


# ---------------------------------------------------------------------------------------------
# Report


def f(v, nd=1, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}{unit}"
    return f"{v}{unit}"


def cmd_report(argv):
    src, dst = argv[0], argv[1]
    recs = []
    for line in open(src, encoding="utf-8"):
        line = line.strip()
        if line:
            recs.append(json.loads(line))
    info = {r["key"]: r["value"] for r in recs if r.get("type") == "info"}
    checks = [r for r in recs if r.get("type") == "check"]
    runs = [r for r in recs if r.get("kind") in ("batch", "streams")]
    comps = [r for r in recs if r.get("type") == "compare"]
    o = []
    title = info.pop("title", "yoloanonymize on CUDA: scripts/gpu-check.sh results")
    o.append(f"# {title}\n")
    if info:
        o.append("| | |\n|---|---|")
        for k, v in info.items():
            o.append(f"| {k} | {str(v).replace('|', '/')} |")
        o.append("")
    if checks:
        o.append("## Set-up checks\n")
        o.append("| step | result | details |\n|---|---|---|")
        for c in checks:
            o.append(f"| {c['step']} | {c['result']} | {str(c.get('details', '')).replace('|', '/')} |")
        o.append("")
    if runs:
        o.append("## Throughput\n")
        o.append("Frames/s: steady = median of the element's one-second reports after the first (sum over "
                 "streams); overall = frames over the time since the model was loaded (warm-up included). "
                 "GPU memory: the most nvidia-smi showed in use during the run, less what was in use before it "
                 "(per process where the driver lists processes).\n")
        o.append("| run | streams | batch | precision | provider | frames | steady fps | overall fps | "
                 "frames/batch | inference ms/batch | batches merged | GPU MiB (process / delta) | errors, warnings |")
        o.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in runs:
            p = r.get("param", {})
            mem = f"{f(r.get('process_mib'), 0)} / {f(r.get('delta_mib'), 0)}"
            err = "; ".join(r.get("errors", []))[:200] or ("exit %d" % r["rc"] if r.get("rc") else "")
            o.append(
                f"| {r['id']} | {r.get('streams')} | {p.get('batch', '-')} | {p.get('precision', '-')} | "
                f"{','.join(r.get('providers', [])) or '-'} | {r.get('frames')} | {f(r.get('steady_fps'))} | "
                f"{f(r.get('eos_fps'))} | {f(r.get('frames_per_batch'), 2)} | {f(r.get('inference_ms_per_batch'), 2)} | "
                f"{r.get('batches_merged')} | {mem} | {err.replace('|', '/')} |"
            )
        o.append("")
        o.append("Where the time goes (totals over the run, all streams):\n")
        o.append("| run | preprocess ms | inference ms | redact ms | wait ms | wall s |\n|---|---|---|---|---|---|")
        for r in runs:
            o.append(f"| {r['id']} | {f(r.get('preprocess_ms'), 0)} | {f(r.get('inference_ms'), 0)} | "
                     f"{f(r.get('redact_ms'), 0)} | {f(r.get('wait_ms'), 0)} | {f(r.get('wall_s'), 1)} |")
        o.append("")
    if comps:
        o.append("## Detections against the CPU float32 run (device=cpu, same frames)\n")
        o.append("People the model detected, matched one to one by box IoU >= 0.5; eye error over the eyes "
                 "confident (>= 0.5) in the reference; eye coverage: the reference's eye regions with >= 95 % of "
                 "their area inside the candidate's redacted regions (benches/coverage.py).\n")
        o.append("| candidate | frames | people (ref / cand) | matched | eyes compared | eyes confident in both | "
                 "eye error mean / p95 / max px | eye regions covered | frames redacted whole |")
        o.append("|---|---|---|---|---|---|---|---|---|")
        for c in comps:
            o.append(
                f"| {c['candidate']} | {c['frames_cand']}/{c['frames_ref']} | {c['people_ref']} / {c['people_cand']} | "
                f"{c['matched']} ({f(c['matched_pct'], 2, ' %')}) | {c['eyes_confident']} | "
                f"{f(c['eyes_confident_in_both_pct'], 2, ' %')} | {f(c['eye_err_mean_px'], 2)} / "
                f"{f(c['eye_err_p95_px'], 2)} / {f(c['eye_err_max_px'], 2)} | "
                f"{c['eye_regions_covered']}/{c['eye_regions_ref']} ({f(c['eye_coverage_pct'], 2, ' %')}) | "
                f"{c['cand_redacted_whole']} |"
            )
        o.append("")
    cmds = [r for r in recs if r.get("type") == "command"]
    if cmds:
        o.append("## Commands\n")
        for c in cmds:
            o.append(f"- `{c['id']}`: `{c['command']}`")
        o.append("")
    tmp = dst + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(o) + "\n")
    os.replace(tmp, dst)


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        sys.stdout.write(__doc__)
        return 0 if len(sys.argv) >= 2 else 2
    cmd = {"record": cmd_record, "compare": cmd_compare, "report": cmd_report, "cuda-libs": cmd_cuda_libs}.get(sys.argv[1])
    if cmd is None:
        sys.stderr.write(__doc__)
        return 2
    cmd(sys.argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
