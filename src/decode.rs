//! Decoding of the YOLO pose output tensor and non-maximum suppression.
//!
//! The output of one image is `[56, anchors]`, channel-major: rows 0..4 box centre x, centre y,
//! width, height in network pixels; row 4 the person score (a probability); rows 5..56 the 17 COCO
//! keypoints as (x, y, visibility). Decoding maps every coordinate into frame pixels through the
//! [`Letterbox`] at once, so no network-pixel [`Rect`] ever leaves this module.

use crate::detection::{Detection, Keypoint, NUM_KEYPOINTS, Rect};
use crate::preprocess::Letterbox;

/// Channels per anchor: 4 box values, 1 score, 3 per keypoint.
pub const POSE_CHANNELS: usize = 5 + 3 * NUM_KEYPOINTS;

/// Decodes the anchors of one image whose score is at least `conf_threshold`, in frame pixels.
/// `output` is that image's `[56, anchors]` slice. Non-finite scores are skipped.
pub fn decode_pose(
    output: &[f32],
    anchors: usize,
    conf_threshold: f32,
    lb: &Letterbox,
) -> Vec<Detection> {
    assert_eq!(
        output.len(),
        POSE_CHANNELS * anchors,
        "output slice is not [56, anchors]"
    );
    let row = |c: usize| &output[c * anchors..(c + 1) * anchors];
    let scores = row(4);
    let mut dets = Vec::new();
    for (a, &score) in scores.iter().enumerate() {
        if !score.is_finite() || score < conf_threshold {
            continue;
        }
        let (cx, cy, w, h) = (row(0)[a], row(1)[a], row(2)[a], row(3)[a]);
        let (x0, y0) = lb.to_frame(cx - w / 2.0, cy - h / 2.0);
        let (x1, y1) = lb.to_frame(cx + w / 2.0, cy + h / 2.0);
        let mut keypoints = [Keypoint::default(); NUM_KEYPOINTS];
        for (k, kp) in keypoints.iter_mut().enumerate() {
            let base = 5 + 3 * k;
            let (x, y) = lb.to_frame(row(base)[a], row(base + 1)[a]);
            *kp = Keypoint {
                x,
                y,
                conf: row(base + 2)[a],
            };
        }
        dets.push(Detection::from_pose(
            Rect::new(x0, y0, x1, y1),
            score,
            keypoints,
        ));
    }
    dets
}

/// Greedy non-maximum suppression: keeps the best-scored detection of every group whose boxes
/// overlap by more than `iou_threshold`. Scores are ordered with `total_cmp`, so a NaN never
/// panics (NaN sorts above every number and is then kept or suppressed like any other box).
/// The letterbox is a uniform scale and shift, so suppressing in frame pixels is the same as in
/// network pixels.
pub fn nms(dets: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    nms_by(dets, iou_threshold, |d| (d.bbox, d.score))
}

/// [`nms`] for any kind of detection: `key` gives its box and score. A box with a non-finite
/// coordinate neither suppresses nor is suppressed (its IoU is not meaningful, and it must not
/// remove a box that can be drawn).
pub fn nms_by<T>(mut dets: Vec<T>, iou_threshold: f32, key: impl Fn(&T) -> (Rect, f32)) -> Vec<T> {
    let finite = |r: &Rect| [r.x0, r.y0, r.x1, r.y1].iter().all(|v| v.is_finite());
    dets.sort_by(|a, b| key(b).1.total_cmp(&key(a).1));
    let mut kept: Vec<T> = Vec::with_capacity(dets.len().min(64));
    for d in dets {
        let bbox = key(&d).0;
        if !finite(&bbox)
            || kept.iter().all(|k| {
                let other = key(k).0;
                !finite(&other) || other.iou(&bbox) <= iou_threshold
            })
        {
            kept.push(d);
        }
    }
    kept
}

/// Decode and NMS for every image of a batch output `[batch, 56, anchors]`, in frame pixels.
pub fn decode_batch(
    output: &[f32],
    batch: usize,
    anchors: usize,
    conf_threshold: f32,
    iou_threshold: f32,
    lb: &Letterbox,
) -> Vec<Vec<Detection>> {
    let per = POSE_CHANNELS * anchors;
    (0..batch)
        .map(|b| {
            nms(
                decode_pose(&output[b * per..(b + 1) * per], anchors, conf_threshold, lb),
                iou_threshold,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A letterbox that maps network pixels onto frame pixels one to one.
    fn identity() -> Letterbox {
        Letterbox::fixed(640, 640, 640, 640)
    }

    /// Builds a `[56, anchors]` tensor with the given (cx, cy, w, h, score) anchors; keypoint k of
    /// anchor a sits at (cx + k, cy - k) with visibility 0.5 + 0.01 k.
    fn tensor(anchors: &[(f32, f32, f32, f32, f32)]) -> Vec<f32> {
        let n = anchors.len();
        let mut t = vec![0f32; POSE_CHANNELS * n];
        for (a, &(cx, cy, w, h, s)) in anchors.iter().enumerate() {
            for (c, v) in [cx, cy, w, h, s].into_iter().enumerate() {
                t[c * n + a] = v;
            }
            for k in 0..NUM_KEYPOINTS {
                t[(5 + 3 * k) * n + a] = cx + k as f32;
                t[(6 + 3 * k) * n + a] = cy - k as f32;
                t[(7 + 3 * k) * n + a] = 0.5 + 0.01 * k as f32;
            }
        }
        t
    }

    #[test]
    fn decodes_hand_built_tensor() {
        let t = tensor(&[
            (100.0, 50.0, 20.0, 40.0, 0.9),
            (10.0, 10.0, 4.0, 4.0, 0.1),
            (300.0, 200.0, 10.0, 10.0, 0.3),
        ]);
        let d = decode_pose(&t, 3, 0.25, &identity());
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].bbox, Rect::new(90.0, 30.0, 110.0, 70.0));
        assert_eq!(d[0].score, 0.9);
        assert_eq!(
            d[0].keypoints[2],
            Keypoint {
                x: 102.0,
                y: 48.0,
                conf: 0.52
            }
        );
        assert_eq!(d[1].bbox.center(), (300.0, 200.0));
    }

    #[test]
    fn nms_keeps_best_of_overlapping() {
        let t = tensor(&[
            (100.0, 100.0, 50.0, 100.0, 0.6),
            (102.0, 101.0, 50.0, 100.0, 0.95),
            (300.0, 100.0, 50.0, 100.0, 0.5),
        ]);
        let kept = nms(decode_pose(&t, 3, 0.25, &identity()), 0.7);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].score, 0.95);
        assert_eq!(kept[1].score, 0.5);
    }

    #[test]
    fn nan_scores_and_boxes_do_not_panic() {
        let mut t = tensor(&[
            (100.0, 100.0, 50.0, 100.0, 0.9),
            (100.0, 100.0, 50.0, 100.0, 0.8),
            (5.0, 5.0, 2.0, 2.0, 0.7),
        ]);
        t[4 * 3 + 1] = f32::NAN; // score of anchor 1
        t[0] = f32::NAN; // cx of anchor 0
        let d = decode_pose(&t, 3, 0.25, &identity());
        assert_eq!(d.len(), 2, "NaN score skipped");
        let kept = nms(d, 0.5);
        assert_eq!(kept.len(), 2, "a NaN box overlaps nothing");
        // NaN scores handed straight to NMS sort without panicking.
        let mut dets = decode_pose(
            &tensor(&[(1.0, 1.0, 1.0, 1.0, 0.5), (1.0, 1.0, 1.0, 1.0, 0.6)]),
            2,
            0.0,
            &identity(),
        );
        dets[0].score = f32::NAN;
        assert_eq!(nms(dets, 0.5).len(), 1);
    }

    #[test]
    fn batch_decoding_undoes_the_letterbox() {
        let lb = Letterbox::new(1920, 1080, 640); // 640x384, scale 1/3, pad_y 12
        let mut out = tensor(&[(320.0, 192.0, 30.0, 60.0, 0.9)]);
        out.extend(tensor(&[(10.0, 12.0, 2.0, 2.0, 0.1)]));
        let dets = decode_batch(&out, 2, 1, 0.25, 0.7, &lb);
        assert_eq!(dets.len(), 2);
        assert!(dets[1].is_empty());
        let b = dets[0][0].bbox;
        assert!((b.center().0 - 960.0).abs() < 0.01 && (b.center().1 - 540.0).abs() < 0.01);
        assert!((b.width() - 90.0).abs() < 0.01 && (b.height() - 180.0).abs() < 0.01);
        let k = dets[0][0].keypoints[0];
        assert!((k.x - 960.0).abs() < 0.01 && (k.y - 540.0).abs() < 0.01);
    }
}
