"""Makes an int8 (QDQ) variant of the face detector (YuNet 2023mar, dynamic input) by NNCF
post-training quantization (not shipped: models/README-face.md, "int8: measured, not shipped").
Run by models/quantize-face-nncf.sh, which decodes the calibration frames.

  quantize_face_nncf.py quantize --model FP32 --frames RAW --calib 100:440 --calib-step 7 --output OUT
  quantize_face_nncf.py bench --frames RAW FP32 INT8     (OpenVINO, batch 4, 2 threads, interleaved)

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
    dataset = nncf.Dataset(idx, lambda i: {name: to_input(frames[i : i + 1])})
    how = (
        f"nncf {nncf.__version__} quantize (ONNX backend, onnxruntime {ort.__version__} CPU for the "
        f"statistics), opset {model.opset_import[0].version}, preset mixed, fast bias correction, "
        f"calibration on vtest.avi frames {idx[0]}..{idx[-1]} step {a.calib_step} ({len(idx)} "
        f"frames) at {W}x{H}, batch 1; kept in float: {a.ignore or 'nothing'} ({len(names)} nodes)"
    )
    log(how)
    t0 = time.time()
    q = nncf.quantize(
        model,
        dataset,
        preset=nncf.QuantizationPreset.MIXED,
        target_device=nncf.TargetDevice.CPU,
        subset_size=len(idx),
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
    q.add_argument("--output", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--frames", required=True)
    b.add_argument("--passes", type=int, default=3)
    b.add_argument("models", nargs="+")
    a = ap.parse_args()
    {"quantize": cmd_quantize, "bench": cmd_bench}[a.cmd](a)


if __name__ == "__main__":
    main()
