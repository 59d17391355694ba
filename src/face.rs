//! The face detector beside the pose model: YuNet 2023mar with dynamic batch, height and width
//! (`models/face_detection_yunet_2023mar_dynamic.onnx`, see `models/README-face.md`).
//!
//! The face input is the frame scaled by a factor (1 = full resolution, where YuNet found 98 % of
//! the faces with 6-10 px between the eyes; 1.5 found all of them) and padded to multiples of 32:
//! [`Letterbox::with_scale`] gives the geometry, [`fill_face_tensor`] writes the tensor (BGR,
//! `0..255`, NCHW, padding 0) from any of the element's pixel formats, and
//! [`decode_yunet_batch`] turns the model's twelve output tensors into [`FaceDetection`]s in
//! frame pixels, after non-maximum suppression.
//!
//! YuNet's outputs, per stride `s` in 8, 16, 32 and an input of `W` x `H` (multiples of 32):
//! `cls_s` and `obj_s` `[N, n, 1]`, `bbox_s` `[N, n, 4]`, `kps_s` `[N, n, 10]`, with
//! `n = (W/s)(H/s)` anchors, anchor `a = row * (W/s) + col`. For an anchor:
//! score = sqrt(clamp(cls, 0, 1) * clamp(obj, 0, 1));
//! box centre ((col + b0) s, (row + b1) s), size (exp(b2) s, exp(b3) s);
//! landmark j at ((k\[2j\] + col) s, (k\[2j+1\] + row) s).

use std::fmt;

use crate::decode::nms_by;
use crate::detection::landmark::NUM_LANDMARKS;
use crate::detection::{FaceDetection, Keypoint, Rect};
use crate::frame::FrameRef;
use crate::preprocess::{InputSpec, Letterbox, Preprocessor};

/// File name of the bundled face model (in `models/`, installed beside the pose model).
pub const FACE_MODEL_FILE: &str = "face_detection_yunet_2023mar_dynamic.onnx";

/// Measured defaults (models/README-face.md): score threshold, NMS IoU. The input scale is the
/// element's `face-scale`.
pub const DEFAULT_FACE_THRESHOLD: f32 = 0.5;
pub const DEFAULT_FACE_IOU: f32 = 0.3;

/// YuNet's input: BGR in `0..255`, padding 0 (what OpenCV's FaceDetectorYN pads with).
pub const YUNET_INPUT: InputSpec = InputSpec {
    bgr: true,
    scale: 1.0,
    pad: 0.0,
};
/// Name of the model's input tensor.
pub const YUNET_INPUT_NAME: &str = "input";
/// The strides of YuNet's three output levels.
pub const YUNET_STRIDES: [usize; 3] = [8, 16, 32];
/// The model's output names, in the order of [`YunetOutputs::from_ordered`].
pub const YUNET_OUTPUTS: [&str; 12] = [
    "cls_8", "cls_16", "cls_32", "obj_8", "obj_16", "obj_32", "bbox_8", "bbox_16", "bbox_32",
    "kps_8", "kps_16", "kps_32",
];

/// Moves a face detection from network pixels into frame pixels.
pub fn face_to_frame(d: &mut FaceDetection, lb: &Letterbox) {
    let (x0, y0) = lb.to_frame(d.bbox.x0, d.bbox.y0);
    let (x1, y1) = lb.to_frame(d.bbox.x1, d.bbox.y1);
    d.bbox = Rect::new(x0, y0, x1, y1);
    for k in d.landmarks.iter_mut() {
        (k.x, k.y) = lb.to_frame(k.x, k.y);
    }
}

/// Why the model's outputs could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum FaceError {
    /// The network input is not a multiple of 32 in both directions.
    InputSize { net_w: usize, net_h: usize },
    /// The images of one batch do not share one network input size.
    MixedInputSizes,
    /// An output tensor does not have the length the batch and input size imply.
    OutputLength {
        output: &'static str,
        len: usize,
        expected: usize,
    },
}

impl fmt::Display for FaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaceError::InputSize { net_w, net_h } => write!(
                f,
                "face model input {net_w}x{net_h} is not a multiple of 32 in both directions"
            ),
            FaceError::MixedInputSizes => {
                write!(f, "the frames of one face batch have different input sizes")
            }
            FaceError::OutputLength {
                output,
                len,
                expected,
            } => write!(
                f,
                "face model output {output} has {len} values, expected {expected}: the model is not YuNet 2023mar with dynamic input (models/README-face.md)"
            ),
        }
    }
}

impl std::error::Error for FaceError {}

/// YuNet's twelve output tensors for a whole batch, by level (index 0, 1, 2 = stride 8, 16, 32),
/// each `[batch, n, C]` row-major.
#[derive(Debug, Clone, Copy)]
pub struct YunetOutputs<'a> {
    pub cls: [&'a [f32]; 3],
    pub obj: [&'a [f32]; 3],
    pub bbox: [&'a [f32]; 3],
    pub kps: [&'a [f32]; 3],
}

impl<'a> YunetOutputs<'a> {
    /// From the tensors in [`YUNET_OUTPUTS`] order.
    pub fn from_ordered(t: [&'a [f32]; 12]) -> Self {
        Self {
            cls: [t[0], t[1], t[2]],
            obj: [t[3], t[4], t[5]],
            bbox: [t[6], t[7], t[8]],
            kps: [t[9], t[10], t[11]],
        }
    }

    /// Checks every tensor's length against `batch` images of `net_w` x `net_h`.
    fn check(&self, batch: usize, net_w: usize, net_h: usize) -> Result<(), FaceError> {
        if !net_w.is_multiple_of(32) || !net_h.is_multiple_of(32) || net_w == 0 || net_h == 0 {
            return Err(FaceError::InputSize { net_w, net_h });
        }
        for (l, &s) in YUNET_STRIDES.iter().enumerate() {
            let n = batch * (net_w / s) * (net_h / s);
            for (k, (t, c)) in [
                (self.cls[l], 1),
                (self.obj[l], 1),
                (self.bbox[l], 4),
                (self.kps[l], 10),
            ]
            .into_iter()
            .enumerate()
            {
                if t.len() != n * c {
                    return Err(FaceError::OutputLength {
                        output: YUNET_OUTPUTS[3 * k + l],
                        len: t.len(),
                        expected: n * c,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Decodes image `image` of a batch of `batch`: every anchor whose score is at least
/// `score_threshold`, in network pixels, before NMS. A NaN score is skipped.
pub fn decode_yunet(
    out: &YunetOutputs<'_>,
    batch: usize,
    image: usize,
    net_w: usize,
    net_h: usize,
    score_threshold: f32,
) -> Result<Vec<FaceDetection>, FaceError> {
    out.check(batch, net_w, net_h)?;
    assert!(image < batch, "image {image} of a batch of {batch}");
    let mut dets = Vec::new();
    for (l, &stride) in YUNET_STRIDES.iter().enumerate() {
        let cols = net_w / stride;
        let n = cols * (net_h / stride);
        let s = stride as f32;
        let first = image * n;
        let cls = &out.cls[l][first..first + n];
        let obj = &out.obj[l][first..first + n];
        for (a, (&c, &o)) in cls.iter().zip(obj).enumerate() {
            let score = (c.clamp(0.0, 1.0) * o.clamp(0.0, 1.0)).sqrt();
            if score.is_nan() || score < score_threshold {
                continue;
            }
            let (row, col) = ((a / cols) as f32, (a % cols) as f32);
            let b = &out.bbox[l][(first + a) * 4..(first + a) * 4 + 4];
            let k = &out.kps[l][(first + a) * 10..(first + a) * 10 + 10];
            let mut landmarks = [Keypoint::default(); NUM_LANDMARKS];
            for (j, lm) in landmarks.iter_mut().enumerate() {
                *lm = Keypoint {
                    x: (k[2 * j] + col) * s,
                    y: (k[2 * j + 1] + row) * s,
                    conf: score,
                };
            }
            dets.push(FaceDetection {
                bbox: Rect::from_center(
                    (col + b[0]) * s,
                    (row + b[1]) * s,
                    b[2].exp() * s,
                    b[3].exp() * s,
                ),
                score,
                landmarks,
            });
        }
    }
    Ok(dets)
}

/// Greedy non-maximum suppression (the pose decoder's, [`nms_by`]: NaN-safe ordering).
pub fn face_nms(dets: Vec<FaceDetection>, iou_threshold: f32) -> Vec<FaceDetection> {
    nms_by(dets, iou_threshold, |d| (d.bbox, d.score))
}

/// Decode, NMS and the move into frame pixels for every image of a batch; `lbs` holds each
/// image's letterbox (one per image, all with the same network size).
pub fn decode_yunet_batch(
    out: &YunetOutputs<'_>,
    lbs: &[Letterbox],
    score_threshold: f32,
    iou_threshold: f32,
) -> Result<Vec<Vec<FaceDetection>>, FaceError> {
    let Some(first) = lbs.first() else {
        return Ok(Vec::new());
    };
    let (net_w, net_h) = (first.net_w, first.net_h);
    if lbs.iter().any(|lb| (lb.net_w, lb.net_h) != (net_w, net_h)) {
        return Err(FaceError::MixedInputSizes);
    }
    lbs.iter()
        .enumerate()
        .map(|(i, lb)| {
            let dets = decode_yunet(out, lbs.len(), i, net_w, net_h, score_threshold)?;
            let mut kept = face_nms(dets, iou_threshold);
            for d in kept.iter_mut() {
                face_to_frame(d, lb);
            }
            Ok(kept)
        })
        .collect()
}

/// Writes `frame`, scaled and padded by `lb`, into `out` (one image of the face model's input:
/// `3 * lb.net_h * lb.net_w` values, [`YUNET_INPUT`]). Keep one [`Preprocessor`] for the face
/// input apart from the pose model's, so that neither recomputes its resize taps every frame.
pub fn fill_face_tensor(
    pre: &mut Preprocessor,
    frame: &FrameRef<'_>,
    lb: &Letterbox,
    out: &mut [f32],
) {
    pre.fill_tensor_as(frame, lb, &YUNET_INPUT, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::PixelFormat;
    use crate::preprocess::tests::{make_frame, strides};

    /// Owned output tensors for a batch, all zero except what a test sets; cls and obj start at
    /// 0 so that no anchor scores.
    struct Outputs {
        t: Vec<Vec<f32>>,
        net_w: usize,
        net_h: usize,
    }

    impl Outputs {
        fn new(batch: usize, net_w: usize, net_h: usize) -> Self {
            let mut t = Vec::new();
            for c in [1, 1, 4, 10] {
                for s in YUNET_STRIDES {
                    t.push(vec![0f32; batch * (net_w / s) * (net_h / s) * c]);
                }
            }
            Self { t, net_w, net_h }
        }

        /// Sets anchor (row, col) of level `l` in image `b`: cls, obj, bbox, and landmark j's
        /// offsets (0.1 j, -0.1 j).
        #[allow(clippy::too_many_arguments)]
        fn set(
            &mut self,
            b: usize,
            l: usize,
            row: usize,
            col: usize,
            cls: f32,
            obj: f32,
            bbox: [f32; 4],
        ) {
            let cols = self.net_w / YUNET_STRIDES[l];
            let n = cols * (self.net_h / YUNET_STRIDES[l]);
            let a = b * n + row * cols + col;
            self.t[l][a] = cls;
            self.t[3 + l][a] = obj;
            self.t[6 + l][a * 4..a * 4 + 4].copy_from_slice(&bbox);
            for j in 0..5 {
                self.t[9 + l][a * 10 + 2 * j] = 0.1 * j as f32;
                self.t[9 + l][a * 10 + 2 * j + 1] = -0.1 * j as f32;
            }
        }

        fn view(&self) -> YunetOutputs<'_> {
            let r: Vec<&[f32]> = self.t.iter().map(|v| v.as_slice()).collect();
            YunetOutputs::from_ordered(r.try_into().unwrap())
        }
    }

    fn close(a: f32, b: f32, tol: f32) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn decodes_hand_built_tensors() {
        let mut o = Outputs::new(1, 64, 64);
        // Stride 8, row 2, col 3: score sqrt(0.81 * 1) = 0.9; centre (28, 18), size 32 x 16.
        o.set(0, 0, 2, 3, 0.81, 1.0, [0.5, 0.25, 4f32.ln(), 2f32.ln()]);
        // Stride 32, row 1, col 0: score sqrt(0.64 * 0.64) = 0.64; centre (16, 48), size 32 x 32.
        o.set(0, 2, 1, 0, 0.64, 0.64, [0.5, 0.5, 0.0, 0.0]);
        // Stride 16: score 0.3, below the threshold.
        o.set(0, 1, 0, 0, 0.3, 0.3, [0.0; 4]);
        let dets = decode_yunet(&o.view(), 1, 0, 64, 64, 0.5).unwrap();
        assert_eq!(dets.len(), 2);
        let d = dets[0];
        assert!(close(d.score, 0.9, 1e-6));
        assert!(close(d.bbox.x0, 12.0, 1e-4) && close(d.bbox.y0, 10.0, 1e-4));
        assert!(close(d.bbox.x1, 44.0, 1e-4) && close(d.bbox.y1, 26.0, 1e-4));
        // Landmark j at ((0.1 j + col) * 8, (-0.1 j + row) * 8).
        for (j, k) in d.landmarks.iter().enumerate() {
            assert!(close(k.x, (0.1 * j as f32 + 3.0) * 8.0, 1e-4), "{j}: {k:?}");
            assert!(
                close(k.y, (-0.1 * j as f32 + 2.0) * 8.0, 1e-4),
                "{j}: {k:?}"
            );
            assert_eq!(k.conf, d.score);
        }
        assert!(close(d.eye_distance(), (0.8f32.powi(2) * 2.0).sqrt(), 1e-4));
        let d = dets[1];
        assert!(close(d.score, 0.64, 1e-6));
        assert_eq!(d.bbox, Rect::new(0.0, 32.0, 32.0, 64.0));
        // Scores above 1 and below 0 are clamped as OpenCV does.
        let mut o = Outputs::new(1, 32, 32);
        o.set(0, 0, 0, 0, 1.7, 1.0, [0.0; 4]);
        o.set(0, 0, 1, 1, -0.2, 1.0, [0.0; 4]);
        let dets = decode_yunet(&o.view(), 1, 0, 32, 32, 0.0).unwrap();
        assert_eq!(dets.iter().filter(|d| d.score == 1.0).count(), 1);
        assert!(dets.iter().all(|d| (0.0..=1.0).contains(&d.score)));
    }

    #[test]
    fn batch_images_are_decoded_apart_and_moved_to_frame_pixels() {
        let mut o = Outputs::new(2, 64, 32);
        o.set(0, 0, 1, 1, 1.0, 1.0, [0.5, 0.5, 4f32.ln(), 4f32.ln()]); // centre (12, 12), 32 x 32
        o.set(1, 1, 0, 2, 1.0, 0.81, [0.0, 0.0, 0.0, 0.0]); // centre (32, 0), 16 x 16
        // Frame 128x48 at scale 0.5: inner 64x24 in 64x32, pad_y 4.
        let lb = Letterbox::with_scale(128, 48, 0.5);
        assert_eq!((lb.net_w, lb.net_h, lb.pad_x, lb.pad_y), (64, 32, 0, 4));
        let dets = decode_yunet_batch(&o.view(), &[lb, lb], 0.5, 0.3).unwrap();
        assert_eq!(dets.len(), 2);
        assert_eq!(dets[0].len(), 1);
        assert_eq!(dets[1].len(), 1);
        let b = dets[0][0].bbox;
        assert!(close(b.x0, -8.0, 1e-3) && close(b.y0, -16.0, 1e-3), "{b:?}");
        assert!(close(b.x1, 56.0, 1e-3) && close(b.y1, 48.0, 1e-3), "{b:?}");
        let k = dets[0][0].landmarks[crate::detection::landmark::RIGHT_EYE];
        assert!(
            close(k.x, 16.0, 1e-3) && close(k.y, 8.0 / 0.5 - 8.0, 1e-3),
            "{k:?}"
        );
        let b = dets[1][0].bbox;
        assert!(close(b.center().0, 64.0, 1e-3) && close(b.center().1, -8.0, 1e-3));
        assert!(close(dets[1][0].score, 0.9, 1e-6));
        // Mixed network sizes are refused, an empty batch gives nothing.
        let other = Letterbox::with_scale(64, 64, 1.0);
        assert_eq!(
            decode_yunet_batch(&o.view(), &[lb, other], 0.5, 0.3),
            Err(FaceError::MixedInputSizes)
        );
        assert_eq!(decode_yunet_batch(&o.view(), &[], 0.5, 0.3), Ok(vec![]));
    }

    #[test]
    fn wrong_output_lengths_are_errors() {
        let o = Outputs::new(1, 64, 64);
        let err = decode_yunet(&o.view(), 2, 0, 64, 64, 0.5).unwrap_err();
        assert_eq!(
            err,
            FaceError::OutputLength {
                output: "cls_8",
                len: 64,
                expected: 128
            }
        );
        assert!(err.to_string().contains("cls_8"));
        let mut o = Outputs::new(1, 64, 64);
        o.t[11].pop(); // kps_32
        let err = decode_yunet(&o.view(), 1, 0, 64, 64, 0.5).unwrap_err();
        assert!(
            matches!(
                err,
                FaceError::OutputLength {
                    output: "kps_32",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            decode_yunet(&o.view(), 1, 0, 64, 48, 0.5),
            Err(FaceError::InputSize {
                net_w: 64,
                net_h: 48
            })
        );
    }

    #[test]
    fn nan_outputs_do_not_panic() {
        let mut o = Outputs::new(1, 64, 64);
        o.set(0, 0, 0, 0, f32::NAN, 1.0, [0.0; 4]); // NaN score: skipped
        o.set(0, 0, 0, 1, 1.0, f32::NAN, [0.0; 4]); // NaN score: skipped
        // A NaN box (kept, overlapping nothing) beside a real face that it must not suppress.
        o.set(0, 0, 4, 4, 1.0, 1.0, [f32::NAN, 0.0, f32::NAN, 0.0]);
        o.set(0, 0, 4, 5, 0.9, 0.9, [0.0, 0.0, 1.0, 1.0]);
        let dets = decode_yunet(&o.view(), 1, 0, 64, 64, 0.5).unwrap();
        assert_eq!(dets.len(), 2);
        let kept = face_nms(dets, 0.3);
        assert_eq!(kept.len(), 2, "a NaN box overlaps nothing");
        // NaN scores handed to NMS sort without panicking.
        let mut dets = decode_yunet(&o.view(), 1, 0, 64, 64, 0.5).unwrap();
        dets[1].score = f32::NAN;
        dets.push(dets[1]);
        assert_eq!(face_nms(dets, 0.3).len(), 2);
        let lb = Letterbox::with_scale(64, 64, 1.0);
        assert_eq!(
            decode_yunet_batch(&o.view(), &[lb], 0.5, 0.3).unwrap()[0].len(),
            2
        );
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_faces() {
        let mut o = Outputs::new(1, 64, 64);
        o.set(0, 0, 3, 3, 0.64, 1.0, [0.0, 0.0, 2f32.ln(), 2f32.ln()]); // 0.8 at (24, 24), 16 x 16
        o.set(0, 1, 1, 1, 0.81, 1.0, [0.5, 0.5, 0.0, 0.0]); // 0.9 at (24, 24), 16 x 16
        o.set(0, 0, 6, 6, 0.49, 1.0, [0.0, 0.0, 2f32.ln(), 2f32.ln()]); // 0.7 at (48, 48)
        let dets = decode_yunet(&o.view(), 1, 0, 64, 64, 0.5).unwrap();
        assert_eq!(dets.len(), 3);
        let kept = face_nms(dets, 0.3);
        assert_eq!(kept.len(), 2);
        assert!(close(kept[0].score, 0.9, 1e-6) && close(kept[1].score, 0.7, 1e-6));
        assert_eq!(kept[0].bbox, Rect::new(16.0, 16.0, 32.0, 32.0));
    }

    #[test]
    fn face_letterbox_round_trip() {
        for &(w, h, s) in &[
            (1920, 1080, 1.0),
            (960, 544, 1.0),
            (1920, 1080, 0.5),
            (1280, 720, 1.5),
            (333, 101, 2.0),
            (7, 5, 1.0),
        ] {
            let lb = Letterbox::with_scale(w, h, s);
            assert_eq!((lb.net_w % 32, lb.net_h % 32), (0, 0));
            assert!(lb.net_w >= lb.inner_w && lb.net_w < lb.inner_w + 32);
            assert!(lb.net_h >= lb.inner_h && lb.net_h < lb.inner_h + 32);
            assert_eq!(lb.inner_w, (w as f32 * s).round() as usize);
            let mut d = FaceDetection {
                bbox: Rect::new(w as f32 * 0.25, h as f32 * 0.5, w as f32, h as f32),
                score: 0.8,
                landmarks: [Keypoint {
                    x: 1.5,
                    y: h as f32 - 1.0,
                    conf: 0.8,
                }; NUM_LANDMARKS],
            };
            let orig = d;
            let (x0, y0) = lb.to_network(d.bbox.x0, d.bbox.y0);
            let (x1, y1) = lb.to_network(d.bbox.x1, d.bbox.y1);
            d.bbox = Rect::new(x0, y0, x1, y1);
            for k in d.landmarks.iter_mut() {
                (k.x, k.y) = lb.to_network(k.x, k.y);
            }
            face_to_frame(&mut d, &lb);
            for (a, b) in [
                (d.bbox.x0, orig.bbox.x0),
                (d.bbox.y0, orig.bbox.y0),
                (d.bbox.x1, orig.bbox.x1),
                (d.bbox.y1, orig.bbox.y1),
                (d.landmarks[4].x, orig.landmarks[4].x),
                (d.landmarks[4].y, orig.landmarks[4].y),
            ] {
                assert!(close(a, b, 1e-2), "{w}x{h} x{s}: {a} vs {b}");
            }
        }
        let lb = Letterbox::with_scale(1920, 1080, 1.0);
        assert_eq!((lb.net_w, lb.net_h, lb.pad_x, lb.pad_y), (1920, 1088, 0, 4));
    }

    #[test]
    fn tensor_fill_is_bgr_0_255_padded_with_0_in_every_format() {
        let (w, h) = (40, 30);
        let lb = Letterbox::with_scale(w, h, 1.0); // 40x30 in 64x32: pad_x 12, pad_y 1
        assert_eq!((lb.net_w, lb.net_h, lb.pad_x, lb.pad_y), (64, 32, 12, 1));
        let (red, blue) = ((220u8, 20u8, 20u8), (20u8, 20u8, 220u8));
        for format in PixelFormat::ALL {
            let planes = make_frame(format, w, h, |x, _| if x < w / 2 { red } else { blue });
            let frame = FrameRef {
                format,
                width: w,
                height: h,
                planes: [&planes[0], &planes[1], &planes[2]],
                strides: strides(format, w),
            };
            let mut out = vec![f32::NAN; lb.tensor_len()];
            let mut pre = Preprocessor::default();
            fill_face_tensor(&mut pre, &frame, &lb, &mut out);
            let plane = lb.net_w * lb.net_h;
            // Channel 0 is blue, channel 2 red, in 0..255.
            let at = |c: usize, x: usize, y: usize| out[c * plane + (y + 1) * lb.net_w + x + 12];
            let (left, right) = ((5, 15), (34, 15));
            for (c, want_left, want_right) in [(0, 20.0, 220.0), (1, 20.0, 20.0), (2, 220.0, 20.0)]
            {
                let (l, r) = (at(c, left.0, left.1), at(c, right.0, right.1));
                assert!(close(l, want_left, 6.0), "{format:?} channel {c} left {l}");
                assert!(
                    close(r, want_right, 6.0),
                    "{format:?} channel {c} right {r}"
                );
            }
            // Padding: 0 in every channel; nothing left unwritten.
            for c in 0..3 {
                assert_eq!(out[c * plane], 0.0, "{format:?}");
                assert_eq!(out[c * plane + 11 + 5 * lb.net_w], 0.0, "{format:?}");
                assert_eq!(out[c * plane + 52 + 5 * lb.net_w], 0.0, "{format:?}");
                assert_eq!(out[c * plane + 31 * lb.net_w + 20], 0.0, "{format:?}");
            }
            assert!(out.iter().all(|v| v.is_finite()), "{format:?}");
            // The pose fill of the same frame is unchanged: RGB in 0..1.
            let plb = Letterbox::new(w, h, 64);
            let mut pose = vec![0f32; plb.tensor_len()];
            pre.fill_tensor(&frame, &plb, &mut pose);
            let pplane = plb.net_w * plb.net_h;
            let centre_left = (plb.pad_y + 15) * plb.net_w + 8;
            assert!(
                pose[centre_left] > 0.7 && pose[2 * pplane + centre_left] < 0.25,
                "{format:?}"
            );
        }
    }

    /// The Rust decoder against the Python reference (models/face_models.py) on YuNet's real
    /// outputs for a 120x100 crop of NASA's astronaut photo (tests/data/faces/reference/, made
    /// by tests/data/faces/make.py): same input tensor, same faces.
    #[test]
    fn agrees_with_the_python_reference() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/faces/reference");
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{dir}/yunet.json")).unwrap())
                .unwrap();
        let num = |v: &serde_json::Value| v.as_f64().unwrap() as f32;
        let (w, h) = (
            meta["frame_w"].as_u64().unwrap() as usize,
            meta["frame_h"].as_u64().unwrap() as usize,
        );
        let scale = num(&meta["scale"]);
        let rgb = std::fs::read(format!("{dir}/frame-{w}x{h}.rgb")).unwrap();
        assert_eq!(rgb.len(), w * h * 3);
        let lb = Letterbox::with_scale(w, h, scale);
        assert_eq!(
            (lb.net_w, lb.net_h),
            (
                meta["net_w"].as_u64().unwrap() as usize,
                meta["net_h"].as_u64().unwrap() as usize
            )
        );
        // The tensor: per-channel sums and sampled values.
        let frame = FrameRef {
            format: PixelFormat::Rgb,
            width: w,
            height: h,
            planes: [&rgb, &[], &[]],
            strides: [w * 3, 0, 0],
        };
        let mut tensor = vec![0f32; lb.tensor_len()];
        fill_face_tensor(&mut Preprocessor::default(), &frame, &lb, &mut tensor);
        let plane = lb.net_w * lb.net_h;
        for (c, want) in meta["tensor_channel_sums"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let got: f64 = tensor[c * plane..(c + 1) * plane]
                .iter()
                .map(|&v| v as f64)
                .sum();
            let want = want.as_f64().unwrap();
            assert!(
                (got - want).abs() < 1e-3 * want.abs().max(1.0),
                "channel {c}: {got} vs {want}"
            );
        }
        for s in meta["tensor_samples"].as_array().unwrap() {
            let (i, want) = (s[0].as_u64().unwrap() as usize, num(&s[1]));
            assert!(
                close(tensor[i], want, 1e-3),
                "tensor[{i}] = {} vs {want}",
                tensor[i]
            );
        }
        // The outputs: little-endian f32, the 12 tensors in YUNET_OUTPUTS order.
        let raw = std::fs::read(format!("{dir}/yunet-outputs.f32")).unwrap();
        let vals: Vec<f32> = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let mut parts: Vec<&[f32]> = Vec::new();
        let mut rest = vals.as_slice();
        for (k, name) in YUNET_OUTPUTS.iter().enumerate() {
            let s = YUNET_STRIDES[k % 3];
            let c = [1, 1, 4, 10][k / 3];
            let n = (lb.net_w / s) * (lb.net_h / s) * c;
            let (a, b) = rest.split_at(n);
            assert_eq!(a.len(), n, "{name}");
            parts.push(a);
            rest = b;
        }
        assert!(rest.is_empty());
        let out = YunetOutputs::from_ordered(parts.try_into().unwrap());
        let thr = num(&meta["threshold"]);
        let iou = num(&meta["iou"]);
        let got = &decode_yunet_batch(&out, &[lb], thr, iou).unwrap()[0];
        let want = meta["faces"].as_array().unwrap();
        assert!(!want.is_empty());
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (g, w) in got.iter().zip(want) {
            let w: Vec<f32> = w.as_array().unwrap().iter().map(num).collect();
            let mut v = vec![g.bbox.x0, g.bbox.y0, g.bbox.x1, g.bbox.y1, g.score];
            for k in g.landmarks {
                v.extend([k.x, k.y]);
            }
            for (i, (a, b)) in v.iter().zip(&w).enumerate() {
                assert!(
                    close(*a, *b, 1e-3),
                    "value {i}: {a} vs {b} ({v:?} vs {w:?})"
                );
            }
        }
        // On this frontal face the person's right eye is on the image's left.
        assert!(got[0].right_eye().x < got[0].left_eye().x);
        assert!(got[0].eye_distance() > 10.0);
    }
}
