//! Region geometry: which part of a detected person is redacted for each target.
//!
//! Everything is in frame pixels (`f32`, after the letterbox has been undone). Clipping to the
//! frame happens in one place, [`Rect::to_pixels`].

use crate::detection::coco::{LEFT_EAR, LEFT_EYE, NOSE, RIGHT_EAR, RIGHT_EYE};
use crate::detection::{Detection, FaceDetection, Keypoint, Rect};
use crate::temporal::Tracked;

/// What part of a person a region covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    Eyes,
    Face,
    Body,
}

impl RegionKind {
    pub fn name(self) -> &'static str {
        match self {
            RegionKind::Eyes => "eyes",
            RegionKind::Face => "face",
            RegionKind::Body => "body",
        }
    }
}

/// One region to redact, in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    pub kind: RegionKind,
    pub rect: Rect,
    pub score: f32,
}

/// Bit values of the `targets` flags.
pub const TARGET_EYES: u32 = 1;
pub const TARGET_FACE: u32 = 2;
pub const TARGET_BODY: u32 = 4;

/// How regions are derived from a detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegionParams {
    /// `TARGET_*` bits.
    pub targets: u32,
    /// Extra size on each side, as a fraction of the region's size.
    pub margin: f32,
    /// Visibility above which a keypoint is trusted.
    pub keypoint_threshold: f32,
    /// Frame pixels added on each side after the margin (the element sets it when the model
    /// runs in reduced precision, to absorb its sub-pixel keypoint jitter).
    pub pad: f32,
}

fn dist(a: &Keypoint, b: &Keypoint) -> f32 {
    ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt()
}

/// Estimated head width in pixels from the confident face keypoints and the person box.
///
/// Keypoint cues: eye distance (about 0.4 of the head width), ear distance (about 0.9), nose to
/// eye line (about 0.25). Box cues: a standing adult's head is about 1/7 of their height, and a
/// person box is rarely narrower than the head. The largest cue wins, so an occluded keypoint
/// makes the region bigger, never smaller.
pub fn head_size(det: &Detection, kp_thr: f32) -> f32 {
    let k = &det.keypoints;
    let ok = |i: usize| k[i].conf >= kp_thr;
    let mut s: f32 = 0.0;
    if ok(LEFT_EYE) && ok(RIGHT_EYE) {
        s = s.max(dist(&k[LEFT_EYE], &k[RIGHT_EYE]) * 2.5);
    }
    if ok(LEFT_EAR) && ok(RIGHT_EAR) {
        s = s.max(dist(&k[LEFT_EAR], &k[RIGHT_EAR]) * 1.1);
    }
    if ok(NOSE) {
        for e in [LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR] {
            if ok(e) {
                let f = if e <= RIGHT_EYE { 3.0 } else { 1.5 };
                s = s.max(dist(&k[NOSE], &k[e]) * f);
            }
        }
    }
    let bw = det.bbox.width();
    let bh = det.bbox.height();
    let from_box = (bh / 7.0).max(bw * 0.3).min(bw.max(1.0));
    s.max(from_box).max(4.0)
}

/// Network pixels added on each side of every region when the model runs in reduced precision
/// (bfloat16 on OpenVINO, float16 on CUDA): measured with OpenVINO's bfloat16 against float32 on
/// `vtest.avi`, keypoints move by up to about a network pixel.
pub const REDUCED_PRECISION_PAD: f32 = 2.0;

/// The padding in frame pixels of `pad_net` network pixels, for a network input that is the
/// frame scaled by `scale` (network pixels per frame pixel).
pub fn network_pad(pad_net: f32, scale: f32) -> f32 {
    if pad_net > 0.0 {
        pad_net / scale.max(f32::EPSILON)
    } else {
        0.0
    }
}

/// The regions of one frame: those of every person to cover, each grown by its tracking
/// uncertainty (see [`Tracked::grow`]). Appended to `out`, in frame pixels, not yet clipped.
pub fn frame_regions(people: &[Tracked], params: &RegionParams, out: &mut Vec<Region>) {
    for t in people {
        let from = out.len();
        regions_for(&t.det, params, out);
        for r in &mut out[from..] {
            r.rect = r.rect.grow(t.grow);
        }
    }
}

/// Regions to redact for one detection, in frame pixels (not yet clipped).
///
/// From the pose (when the pose model found the person): the person box, the head and the eye
/// band of its keypoints. From the face (when the face detector found one): the face box for
/// `face`, the eye band of its own eye landmarks for `eyes`, and the face box for `body` when the
/// pose model did not find the body. A person found by both gets both sets (their union is
/// covered, so neither detector's error uncovers what the other found).
pub fn regions_for(det: &Detection, params: &RegionParams, out: &mut Vec<Region>) {
    let margin = params.margin.max(0.0);
    let pad = params.pad.max(0.0);
    let mut push = |kind: RegionKind, rect: Rect, score: f32| {
        let r = rect.expand(margin);
        out.push(Region {
            kind,
            rect: Rect::new(r.x0 - pad, r.y0 - pad, r.x1 + pad, r.y1 + pad),
            score,
        });
    };
    let t = params.targets;
    if det.pose {
        if t & TARGET_BODY != 0 {
            push(RegionKind::Body, det.bbox, det.score);
        }
        if t & TARGET_FACE != 0 {
            push(
                RegionKind::Face,
                face_rect(det, params.keypoint_threshold),
                det.score,
            );
        }
        if t & TARGET_EYES != 0 {
            push(
                RegionKind::Eyes,
                eye_rect(det, params.keypoint_threshold),
                det.score,
            );
        }
    }
    if let Some(f) = &det.face {
        if t & TARGET_BODY != 0 && !det.pose {
            push(RegionKind::Body, f.bbox, f.score);
        }
        if t & TARGET_FACE != 0 {
            push(RegionKind::Face, f.bbox, f.score);
        }
        if t & TARGET_EYES != 0 {
            push(RegionKind::Eyes, face_eye_rect(f), f.score);
        }
    }
}

/// The eye band of a face from the face detector: centred on its two eye landmarks, as wide and
/// high as the pose eye band of the same head ([`eye_rect`]), the head being the larger of the
/// face box's width and 2.5 eye distances (a profile's eyes are close together).
pub fn face_eye_rect(f: &FaceDetection) -> Rect {
    let (r, l) = (f.right_eye(), f.left_eye());
    let s = f.bbox.width().max(f.eye_distance() * 2.5).max(4.0);
    let cx = (r.x + l.x) / 2.0;
    let cy = (r.y + l.y) / 2.0;
    let tilt = (r.y - l.y).abs();
    let span = (r.x - l.x).abs();
    Rect::from_center(cx, cy, (s * 1.1).max(span + s * 0.5), s * 0.45 + tilt)
}

/// One band over both eyes.
///
/// With both eyes confident: centred between them, 1.1 head widths wide and 0.45 high. With one
/// eye: centred between it and the nose (or on it), wider. With no confident eye: the estimated
/// eye line of the head, found from the nose and ears or else from the top of the person box,
/// 1.6 head widths wide and 0.9 high: generous rather than nothing.
pub fn eye_rect(det: &Detection, kp_thr: f32) -> Rect {
    let k = &det.keypoints;
    let ok = |i: usize| k[i].conf >= kp_thr;
    let s = head_size(det, kp_thr);
    match (ok(LEFT_EYE), ok(RIGHT_EYE)) {
        (true, true) => {
            let cx = (k[LEFT_EYE].x + k[RIGHT_EYE].x) / 2.0;
            let cy = (k[LEFT_EYE].y + k[RIGHT_EYE].y) / 2.0;
            let tilt = (k[LEFT_EYE].y - k[RIGHT_EYE].y).abs();
            let span = (k[LEFT_EYE].x - k[RIGHT_EYE].x).abs();
            Rect::from_center(cx, cy, (s * 1.1).max(span + s * 0.5), s * 0.45 + tilt)
        }
        (true, false) | (false, true) => {
            let e = if ok(LEFT_EYE) {
                &k[LEFT_EYE]
            } else {
                &k[RIGHT_EYE]
            };
            let cx = if ok(NOSE) {
                (e.x + k[NOSE].x) / 2.0
            } else {
                e.x
            };
            Rect::from_center(cx, e.y, s * 1.3, s * 0.6)
        }
        (false, false) => {
            let (cx, cy) = head_anchor(det, kp_thr, s);
            Rect::from_center(cx, cy, s * 1.6, s * 0.9)
        }
    }
}

/// Estimated eye-line centre of a head with no confident eye.
fn head_anchor(det: &Detection, kp_thr: f32, s: f32) -> (f32, f32) {
    let k = &det.keypoints;
    let pts: Vec<&Keypoint> = [NOSE, LEFT_EAR, RIGHT_EAR]
        .iter()
        .filter(|&&i| k[i].conf >= kp_thr)
        .map(|&i| &k[i])
        .collect();
    if pts.is_empty() {
        let (cx, _) = det.bbox.center();
        (cx, det.bbox.y0 + s * 0.5)
    } else {
        let n = pts.len() as f32;
        let cx = pts.iter().map(|p| p.x).sum::<f32>() / n;
        let cy = pts.iter().map(|p| p.y).sum::<f32>() / n;
        (cx, cy - s * 0.1)
    }
}

/// The head: from nose, eyes and ears when any is confident, else the top of the person box.
pub fn face_rect(det: &Detection, kp_thr: f32) -> Rect {
    let k = &det.keypoints;
    let s = head_size(det, kp_thr);
    let pts: Vec<&Keypoint> = [NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR]
        .iter()
        .filter(|&&i| k[i].conf >= kp_thr)
        .map(|&i| &k[i])
        .collect();
    if pts.is_empty() {
        let (cx, _) = det.bbox.center();
        return Rect::new(
            cx - s * 0.7,
            det.bbox.y0,
            cx + s * 0.7,
            det.bbox.y0 + s * 1.4,
        );
    }
    let n = pts.len() as f32;
    let cx = pts.iter().map(|p| p.x).sum::<f32>() / n;
    let cy = pts.iter().map(|p| p.y).sum::<f32>() / n;
    let span_x = pts.iter().map(|p| p.x).fold(f32::MIN, f32::max)
        - pts.iter().map(|p| p.x).fold(f32::MAX, f32::min);
    let w = (span_x * 1.4).max(s * 1.2);
    let h = w * 1.3;
    Rect::from_center(cx, cy + h * 0.1, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kp(x: f32, y: f32, conf: f32) -> Keypoint {
        Keypoint { x, y, conf }
    }

    /// A standing person 200 px tall at x 100..160, head at the top, facing the camera.
    fn person(eyes_conf: f32) -> Detection {
        let mut keypoints = [kp(0.0, 0.0, 0.0); 17];
        keypoints[NOSE] = kp(130.0, 120.0, 0.9);
        keypoints[LEFT_EYE] = kp(134.0, 116.0, eyes_conf);
        keypoints[RIGHT_EYE] = kp(126.0, 116.0, eyes_conf);
        keypoints[LEFT_EAR] = kp(140.0, 118.0, 0.8);
        keypoints[RIGHT_EAR] = kp(120.0, 118.0, 0.8);
        Detection::from_pose(Rect::new(100.0, 100.0, 160.0, 300.0), 0.9, keypoints)
    }

    fn contains(r: &Rect, x: f32, y: f32) -> bool {
        x >= r.x0 && x <= r.x1 && y >= r.y0 && y <= r.y1
    }

    #[test]
    fn eye_band_covers_both_eyes_with_margin() {
        let d = person(0.9);
        let r = eye_rect(&d, 0.5);
        assert!(contains(&r, 134.0, 116.0) && contains(&r, 126.0, 116.0));
        // Wider than the eyes, not taller than the head, not down to the mouth.
        assert!(r.width() >= 20.0, "{r:?}");
        assert!(r.height() < r.width());
        assert!(r.y1 < 126.0, "{r:?}");
        // Eyes at least a few pixels inside the band.
        assert!(r.x0 < 126.0 - 3.0 && r.x1 > 134.0 + 3.0);
    }

    #[test]
    fn unconfident_eyes_still_cover_the_eye_area() {
        let d = person(0.1);
        let r = eye_rect(&d, 0.5);
        assert!(
            contains(&r, 134.0, 116.0) && contains(&r, 126.0, 116.0),
            "{r:?}"
        );
        assert!(r.width() > eye_rect(&person(0.9), 0.5).width());
        // No keypoints at all: the top of the person box.
        let mut d = person(0.0);
        for k in d.keypoints.iter_mut() {
            k.conf = 0.0;
        }
        let r = eye_rect(&d, 0.5);
        assert!(contains(&r, 130.0, 110.0), "{r:?}");
        assert!(r.y0 < 110.0 && r.y1 < 160.0);
    }

    #[test]
    fn face_covers_head_and_falls_back_to_box_top() {
        let d = person(0.9);
        let r = face_rect(&d, 0.5);
        for (x, y) in [
            (130.0, 120.0),
            (120.0, 118.0),
            (140.0, 118.0),
            (130.0, 128.0),
        ] {
            assert!(contains(&r, x, y), "{r:?} misses {x},{y}");
        }
        let mut d = person(0.0);
        for k in d.keypoints.iter_mut() {
            k.conf = 0.0;
        }
        let r = face_rect(&d, 0.5);
        assert_eq!(r.y0, 100.0);
        assert!(contains(&r, 130.0, 110.0));
    }

    #[test]
    fn targets_and_margin() {
        let d = person(0.9);
        let mut out = Vec::new();
        let p = RegionParams {
            targets: TARGET_EYES | TARGET_BODY,
            margin: 0.0,
            keypoint_threshold: 0.5,
            pad: 0.0,
        };
        regions_for(&d, &p, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].kind, RegionKind::Body);
        assert_eq!(out[0].rect, d.bbox);
        assert_eq!(out[1].kind, RegionKind::Eyes);
        out.clear();
        regions_for(&d, &RegionParams { margin: 0.5, ..p }, &mut out);
        assert_eq!(out[0].rect, Rect::new(70.0, 0.0, 190.0, 400.0));
        out.clear();
        regions_for(&d, &RegionParams { pad: 2.0, ..p }, &mut out);
        assert_eq!(out[0].rect, Rect::new(98.0, 98.0, 162.0, 302.0));
    }
}
