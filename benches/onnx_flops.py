#!/usr/bin/env python3
"""Counts the multiply-accumulates of an ONNX model for given input sizes (needs the `onnx` package).

  onnx_flops.py MODEL WxH [WxH ...]

Prints one JSON object: {"model", "onnx_version", "fixed_input": [H, W] or null, "sizes": {"WxH":
{"conv_macs", "matmul_macs", "other_conv_like": n, "unknown": n, "gflops"}}}, where gflops = 2 *
(conv_macs + matmul_macs) / 1e9 per image (batch 1): the convention of Ultralytics' "FLOPs (B)",
which counts one multiply-accumulate as two operations.

Conv (and ConvInteger, QLinearConv) MACs = N * Cout * Cin/groups * kh * kw * Hout * Wout; MatMul
(and MatMulInteger, QLinearMatMul) MACs = prod(output shape) * K. Shapes come from ONNX shape
inference after fixing the input to [1, 3, H, W]. Activations, additions, pooling and resizing are
not counted (they are a few percent at most for YOLO).
"""
import json
import math
import sys

import onnx
from onnx import shape_inference

# op type -> (index of the weight input, index of the A input) for the counted ops
CONV = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
MATMUL = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3)}


def _dims(vi):
    return [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]


def count(model_path, w, h):
    m = onnx.load(model_path)
    inp = [i for i in m.graph.input if i.name not in {x.name for x in m.graph.initializer}][0]
    dims = inp.type.tensor_type.shape.dim
    fixed = None
    if len(dims) == 4 and dims[2].HasField("dim_value") and dims[3].HasField("dim_value"):
        fixed = [dims[2].dim_value, dims[3].dim_value]
        h, w = fixed
    for d, v in zip(dims, [1, 3, h, w]):
        d.ClearField("dim_param")
        d.dim_value = v
    m = shape_inference.infer_shapes(m, strict_mode=False, data_prop=True)
    shapes = {}
    for vi in list(m.graph.value_info) + list(m.graph.output) + list(m.graph.input):
        shapes[vi.name] = _dims(vi)
    inits = {i.name: list(i.dims) for i in m.graph.initializer}
    conv = matmul = unknown = 0
    for n in m.graph.node:
        if n.op_type in CONV:
            wshape = inits.get(n.input[CONV[n.op_type]]) or shapes.get(n.input[CONV[n.op_type]])
            out = shapes.get(n.output[0])
            if not wshape or not out or None in wshape or None in out or len(out) != 4:
                unknown += 1
                continue
            cout, cin_g, kh, kw = wshape
            conv += out[0] * cout * cin_g * kh * kw * out[2] * out[3]
        elif n.op_type in MATMUL:
            ai, _bi = MATMUL[n.op_type]
            a = shapes.get(n.input[ai]) or inits.get(n.input[ai])
            out = shapes.get(n.output[0])
            if not a or not out or None in a or None in out:
                unknown += 1
                continue
            matmul += math.prod(out) * a[-1]
    return fixed, {
        "net": f"{w}x{h}",
        "conv_macs": conv,
        "matmul_macs": matmul,
        "unknown": unknown,
        "gflops": 2 * (conv + matmul) / 1e9,
    }


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    out = {"model": argv[1], "onnx_version": onnx.__version__, "fixed_input": None, "sizes": {}}
    for size in argv[2:]:
        w, h = (int(v) for v in size.split("x"))
        fixed, r = count(argv[1], w, h)
        out["fixed_input"] = fixed
        out["sizes"][size] = r
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
