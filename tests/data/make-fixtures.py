#!/usr/bin/env python3
"""Writes the tiny ONNX models the tests use to exercise yoloanonymize's error paths.

The pose contract the element expects (what models/yolo11n-pose-dynamic.onnx has):
    input  `images`  float32 [batch, 3, H, W]
    output `output0` float32 [batch, 56, anchors]

Files written next to this script:
    wrong-output.onnx  output0 = Identity(images), declared [N,3,H,W]: rank 4, not a pose model.
    wrong-input.onnx   input images is [N,1,H,W] (1 channel instead of 3); output0 is a valid
                       [N,56,A] (the input tiled to 56 channels and flattened).
    fails-at-run.onnx  matches the contract ([N,3,H,W] -> [M,56,7]) and loads, but output0 =
                       Reshape(images, [-1,56,7]) fails at run time unless N*3*H*W is a multiple
                       of 392 (e.g. it fails on a [1,3,48,64] input).
    not-onnx.onnx      a few bytes of plain text.

Reproduce (ONNX Runtime 1.31 loads IR version <= 10; these use IR 8 and opset 17):
    python3 -m venv /tmp/onnxenv && /tmp/onnxenv/bin/pip install onnx numpy onnxruntime==1.31.1
    /tmp/onnxenv/bin/python tests/data/make-fixtures.py          # write the files
    /tmp/onnxenv/bin/python tests/data/make-fixtures.py --check  # write, then check them with onnxruntime
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17
IR_VERSION = 8


def save(graph, name):
    model = helper.make_model(
        graph,
        producer_name="yoloanonymize tests/data/make-fixtures.py",
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    path = os.path.join(HERE, name)
    # Plain serialisation: deterministic bytes for the same onnx version.
    with open(path, "wb") as f:
        f.write(model.SerializeToString(deterministic=True))
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    return path


def wrong_output():
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, "H", "W"])
    output0 = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["N", 3, "H", "W"])
    node = helper.make_node("Identity", ["images"], ["output0"])
    return save(helper.make_graph([node], "wrong_output", [images], [output0]), "wrong-output.onnx")


def wrong_input():
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 1, "H", "W"])
    output0 = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["N", 56, "A"])
    repeats = numpy_helper.from_array(np.array([1, 56, 1, 1], dtype=np.int64), "repeats")
    shape = numpy_helper.from_array(np.array([0, 56, -1], dtype=np.int64), "shape")
    nodes = [
        helper.make_node("Tile", ["images", "repeats"], ["tiled"]),  # [N,56,H,W]
        helper.make_node("Reshape", ["tiled", "shape"], ["output0"]),  # [N,56,H*W]
    ]
    graph = helper.make_graph(nodes, "wrong_input", [images], [output0], initializer=[repeats, shape])
    return save(graph, "wrong-input.onnx")


def fails_at_run():
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, "H", "W"])
    output0 = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["M", 56, 7])
    shape = numpy_helper.from_array(np.array([-1, 56, 7], dtype=np.int64), "shape")
    node = helper.make_node("Reshape", ["images", "shape"], ["output0"])
    graph = helper.make_graph([node], "fails_at_run", [images], [output0], initializer=[shape])
    return save(graph, "fails-at-run.onnx")


def not_onnx():
    path = os.path.join(HERE, "not-onnx.onnx")
    with open(path, "w", encoding="ascii") as f:
        f.write("This is not an ONNX model, just a few bytes of plain text.\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    return path


def check():
    """Loads every file with ONNX Runtime and checks it behaves as described above."""
    import onnxruntime as ort

    print(f"checking with onnxruntime {ort.__version__}")

    def session(name):
        return ort.InferenceSession(os.path.join(HERE, name), providers=["CPUExecutionProvider"])

    def shapes(s):
        return ([(i.name, i.shape) for i in s.get_inputs()], [(o.name, o.shape) for o in s.get_outputs()])

    s = session("wrong-output.onnx")
    assert shapes(s) == ([("images", ["N", 3, "H", "W"])], [("output0", ["N", 3, "H", "W"])]), shapes(s)
    x = np.random.rand(1, 3, 48, 64).astype(np.float32)
    assert np.array_equal(s.run(None, {"images": x})[0], x)
    print("wrong-output.onnx: loads;", shapes(s))

    s = session("wrong-input.onnx")
    assert shapes(s) == ([("images", ["N", 1, "H", "W"])], [("output0", ["N", 56, "A"])]), shapes(s)
    y = s.run(None, {"images": np.random.rand(2, 1, 32, 64).astype(np.float32)})[0]
    assert y.shape == (2, 56, 32 * 64), y.shape
    print("wrong-input.onnx: loads, runs [2,1,32,64] ->", list(y.shape), ";", shapes(s))

    s = session("fails-at-run.onnx")
    assert shapes(s) == ([("images", ["N", 3, "H", "W"])], [("output0", ["M", 56, 7])]), shapes(s)
    try:
        s.run(None, {"images": np.zeros((1, 3, 48, 64), dtype=np.float32)})
    except Exception as e:  # onnxruntime raises its own exception types
        print(f"fails-at-run.onnx: loads; [1,3,48,64] raises {type(e).__name__}: {str(e)[:160]}")
    else:
        raise AssertionError("fails-at-run.onnx ran a [1,3,48,64] input without error")
    y = s.run(None, {"images": np.zeros((1, 3, 56, 56), dtype=np.float32)})[0]  # 9408 = 24 * 392
    assert y.shape == (24, 56, 7), y.shape
    print("fails-at-run.onnx: [1,3,56,56] runs ->", list(y.shape))

    try:
        session("not-onnx.onnx")
    except Exception as e:
        print(f"not-onnx.onnx: fails to load: {type(e).__name__}: {str(e)[:160]}")
    else:
        raise AssertionError("not-onnx.onnx loaded")
    print("all fixtures behave as described")


def main(argv):
    if any(a not in ("--check",) for a in argv[1:]):
        sys.exit(__doc__)
    wrong_output()
    wrong_input()
    fails_at_run()
    not_onnx()
    if "--check" in argv:
        check()


if __name__ == "__main__":
    main(sys.argv)
