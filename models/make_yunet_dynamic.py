#!/usr/bin/env python3
"""Makes YuNet 2023mar take any batch, height and width, and checks the result.

  make_yunet_dynamic.py convert --model face_detection_yunet_2023mar.onnx --output OUT
  make_yunet_dynamic.py check --ref face_detection_yunet_2023mar.onnx --model OUT
                              [--rgb FRAME.rgb --size WxH]

The original graph is fully convolutional except for its twelve output Reshapes, whose target
shapes [1, -1, C] fix the batch to 1, and its declared input/output shapes [1, 3, 640, 640] and
[1, n, C]. `convert` sets each Reshape's first target dimension to 0 (copy the batch from the
input), declares the input [N, 3, H, W] and the outputs [N, n_s, C], drops the stale value_info,
runs ONNX shape inference and the full checker. Nothing else changes: weights, operators, opset
11 and IR version 6 are the original's. H and W must be multiples of 32 (the two 2x upsamplings
are added to the stride-16 and stride-8 maps).

`check` (ONNX Runtime, CPU EP): at [1, 3, 640, 640] the outputs of both models are bit-identical
(random input and, with --rgb, a real image: raw RGB bytes of --size, e.g.
tests/data/faces/reference/frame-120x100.rgb); at other sizes (multiples of 32, batch 1 and 2) the
outputs have n = (H/s)(W/s) rows, batch rows equal single-image runs, and the faces found in an
image placed at the top left of a 640x640, 960x544 and 1920x1088 input are the same boxes.
"""
import argparse
import sys

import numpy as np
import onnx
from onnx import numpy_helper

STRIDES = (8, 16, 32)
CHANNELS = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}


def convert(src, dst):
    m = onnx.load(src)
    init = {i.name: i for i in m.graph.initializer}
    reshapes = [n for n in m.graph.node if n.op_type == "Reshape"]
    if len(reshapes) != 12:
        sys.exit(f"expected 12 output Reshapes, found {len(reshapes)}: not the YuNet 2023mar graph")
    for name in sorted({n.input[1] for n in reshapes}):  # several Reshapes share one target
        t = init[name]
        shape = numpy_helper.to_array(t).copy()
        if len(shape) != 3 or shape.tolist()[:2] != [1, -1]:
            sys.exit(f"unexpected Reshape target {shape.tolist()} ({name}): not the YuNet 2023mar graph")
        shape[0] = 0
        t.CopyFrom(numpy_helper.from_array(shape, t.name))
    n_reshape = len(reshapes)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    for d, name in zip(dims, ("N", None, "H", "W")):
        if name:
            d.ClearField("dim_value")
            d.dim_param = name
    for o in m.graph.output:
        kind, stride = o.name.split("_")
        d = o.type.tensor_type.shape.dim
        d[0].ClearField("dim_value")
        d[0].dim_param = "N"
        d[1].ClearField("dim_value")
        d[1].dim_param = f"n_{stride}"
        assert d[2].dim_value == CHANNELS[kind]
    del m.graph.value_info[:]
    m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, dst)
    print(f"wrote {dst}: {n_reshape} Reshapes now copy the batch; input [N, 3, H, W]")


def _run(sess, x):
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {"input": x})))


def _faces(out, b, w, h, thr=0.6):
    """Boxes (x0, y0, x1, y1, score) above thr, NMS 0.3 (the decoding of models/face_models.py)."""
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    import face_models as fm

    return fm.nms(fm.YuNet().decode(out, b, w, h, thr), 0.3)[:, :5]


def check(ref_path, path, image, size):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    ref = ort.InferenceSession(ref_path, so, providers=["CPUExecutionProvider"])
    dyn = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    shape = [d if isinstance(d, str) else d for d in dyn.get_inputs()[0].shape]
    print(f"input {dyn.get_inputs()[0].name} {shape}; outputs {[o.name for o in dyn.get_outputs()]}")
    rng = np.random.default_rng(12345)
    inputs = [rng.uniform(0, 255, (1, 3, 640, 640)).astype(np.float32)]
    img = None
    if image:
        w, h = (int(v) for v in size.split("x"))
        img = np.fromfile(image, np.uint8).reshape(h, w, 3)[..., ::-1].astype(np.float32)  # BGR
        if h > 640 or w > 640:
            sys.exit(f"{image} must fit in 640x640")
        x = np.zeros((1, 3, 640, 640), np.float32)
        x[0, :, :h, :w] = img.transpose(2, 0, 1)
        inputs.append(x)
    for x in inputs:
        a, b = _run(ref, x), _run(dyn, x)
        for k in a:
            if a[k].shape != b[k].shape or not np.array_equal(a[k], b[k]):
                sys.exit(f"640x640: output {k} differs from the original")
    print(f"640x640: all 12 outputs bit-identical to the original ({len(inputs)} inputs)")
    for n, h, w in ((1, 320, 320), (1, 544, 960), (2, 480, 640), (1, 1088, 1920), (2, 32, 64)):
        x = rng.uniform(0, 255, (n, 3, h, w)).astype(np.float32)
        out = _run(dyn, x)
        for k, v in out.items():
            kind, s = k.split("_")
            s = int(s)
            want = (n, (h // s) * (w // s), CHANNELS[kind])
            if v.shape != want:
                sys.exit(f"{w}x{h} batch {n}: {k} has shape {v.shape}, expected {want}")
            if not np.all(np.isfinite(v)):
                sys.exit(f"{w}x{h}: {k} is not finite")
        if n == 2:
            for i in range(2):
                single = _run(dyn, x[i : i + 1])
                for k in out:
                    if not np.allclose(out[k][i], single[k][0], atol=1e-4, rtol=1e-4):
                        sys.exit(f"{w}x{h}: batch row {i} of {k} differs from a single run")
        print(f"{w}x{h} batch {n}: output shapes n = (H/s)(W/s) for s in 8, 16, 32" + (", batch rows equal single runs" if n == 2 else ""))
    if img is not None:
        found = {}
        for h, w in ((640, 640), (544, 960), (1088, 1920)):
            if img.shape[0] > h or img.shape[1] > w:
                continue
            x = np.zeros((1, 3, h, w), np.float32)
            x[0, :, : img.shape[0], : img.shape[1]] = img.transpose(2, 0, 1)
            found[f"{w}x{h}"] = _faces(_run(dyn, x), 0, w, h)
        base = found["640x640"]
        if len(base) == 0:
            sys.exit(f"no face found in {image} at 640x640")
        for k, f in found.items():
            if len(f) != len(base) or np.abs(f - base).max() > 0.5:
                sys.exit(f"{k}: faces {f.round(2).tolist()} differ from 640x640's {base.round(2).tolist()}")
            print(f"{k}: {len(f)} face(s) {np.round(f.astype(np.float64), 2).tolist()}")
        print("the same faces at every input size")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert")
    c.add_argument("--model", required=True)
    c.add_argument("--output", required=True)
    k = sub.add_parser("check")
    k.add_argument("--ref", required=True)
    k.add_argument("--model", required=True)
    k.add_argument("--rgb", help="raw RGB image (8 bits a channel) for the real-image checks")
    k.add_argument("--size", help="its size, WxH")
    a = p.parse_args()
    if a.cmd == "convert":
        convert(a.model, a.output)
    else:
        check(a.ref, a.model, a.rgb, a.size)


if __name__ == "__main__":
    main()
