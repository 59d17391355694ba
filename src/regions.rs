//! Region geometry: which part of a detected person is redacted for each target.
//!
//! Everything is in frame pixels (`f32`, after the letterbox has been undone). Clipping to the
//! frame happens in one place, [`Rect::to_pixels`].

use crate::decode::{Detection, Keypoint};
use crate::frame::PixelRect;

/// Axis-aligned rectangle in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rect {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl Rect {
    pub fn new(x0: f32, y0: f32, x1: f32, y1: f32) -> Self {
        Self { x0, y0, x1, y1 }
    }

    pub fn from_center(cx: f32, cy: f32, w: f32, h: f32) -> Self {
        Self::new(cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)
    }

    pub fn width(&self) -> f32 {
        (self.x1 - self.x0).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.y1 - self.y0).max(0.0)
    }

    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    pub fn center(&self) -> (f32, f32) {
        ((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0)
    }

    /// Intersection over union; 0 for empty or disjoint rectangles.
    pub fn iou(&self, other: &Rect) -> f32 {
        let inter = Rect::new(
            self.x0.max(other.x0),
            self.y0.max(other.y0),
            self.x1.min(other.x1),
            self.y1.min(other.y1),
        )
        .area();
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }

    /// Grows each side by `fraction` of the rectangle's width (left/right) or height (top/bottom).
    pub fn expand(&self, fraction: f32) -> Rect {
        let dx = self.width() * fraction;
        let dy = self.height() * fraction;
        Rect::new(self.x0 - dx, self.y0 - dy, self.x1 + dx, self.y1 + dy)
    }

    /// Grows each side by `fraction` of the rectangle's longer side (so a thin band grows in
    /// both directions alike).
    pub fn grow(&self, fraction: f32) -> Rect {
        let d = self.width().max(self.height()) * fraction;
        Rect::new(self.x0 - d, self.y0 - d, self.x1 + d, self.y1 + d)
    }

    /// The integer pixels the rectangle touches, clipped to a `width` x `height` frame. Rounds
    /// outwards so that a region never covers less than its geometry. NaN gives an empty rect.
    pub fn to_pixels(&self, width: usize, height: usize) -> PixelRect {
        let clip = |v: f32, max: usize| -> usize {
            if v.is_nan() {
                0
            } else {
                v.clamp(0.0, max as f32) as usize
            }
        };
        let x0 = clip(self.x0.floor(), width);
        let y0 = clip(self.y0.floor(), height);
        let x1 = clip(self.x1.ceil(), width).max(x0);
        let y1 = clip(self.y1.ceil(), height).max(y0);
        PixelRect::new(x0, y0, x1, y1)
    }
}

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

const NOSE: usize = 0;
const LEFT_EYE: usize = 1;
const RIGHT_EYE: usize = 2;
const LEFT_EAR: usize = 3;
const RIGHT_EAR: usize = 4;

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

/// Regions to redact for one detection, in frame pixels (not yet clipped).
pub fn regions_for(det: &Detection, params: &RegionParams, out: &mut Vec<Region>) {
    let margin = params.margin.max(0.0);
    let pad = params.pad.max(0.0);
    let mut push = |kind: RegionKind, rect: Rect| {
        let r = rect.expand(margin);
        out.push(Region {
            kind,
            rect: Rect::new(r.x0 - pad, r.y0 - pad, r.x1 + pad, r.y1 + pad),
            score: det.score,
        });
    };
    if params.targets & TARGET_BODY != 0 {
        push(RegionKind::Body, det.bbox);
    }
    if params.targets & TARGET_FACE != 0 {
        push(RegionKind::Face, face_rect(det, params.keypoint_threshold));
    }
    if params.targets & TARGET_EYES != 0 {
        push(RegionKind::Eyes, eye_rect(det, params.keypoint_threshold));
    }
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
        Detection {
            bbox: Rect::new(100.0, 100.0, 160.0, 300.0),
            score: 0.9,
            keypoints,
        }
    }

    fn contains(r: &Rect, x: f32, y: f32) -> bool {
        x >= r.x0 && x <= r.x1 && y >= r.y0 && y <= r.y1
    }

    #[test]
    fn grow_uses_the_longer_side() {
        let r = Rect::new(0.0, 0.0, 40.0, 10.0).grow(0.1);
        assert_eq!(r, Rect::new(-4.0, -4.0, 44.0, 14.0));
        assert_eq!(
            Rect::new(0.0, 0.0, 40.0, 10.0).grow(0.0),
            Rect::new(0.0, 0.0, 40.0, 10.0)
        );
    }

    #[test]
    fn iou_basics() {
        let a = Rect::new(0.0, 0.0, 10.0, 10.0);
        assert_eq!(a.iou(&a), 1.0);
        assert!((a.iou(&Rect::new(5.0, 0.0, 15.0, 10.0)) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(a.iou(&Rect::new(20.0, 20.0, 30.0, 30.0)), 0.0);
        assert_eq!(Rect::default().iou(&Rect::default()), 0.0);
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

    #[test]
    fn pixels_are_clipped_at_frame_edges() {
        let r = Rect::new(-5.5, 10.2, 50.1, 700.0).to_pixels(40, 480);
        assert_eq!(r, PixelRect::new(0, 10, 40, 480));
        let r = Rect::new(f32::NAN, 1.0, 5.0, 2.0).to_pixels(40, 40);
        assert_eq!((r.x0, r.x1), (0, 5));
        assert!(
            Rect::new(50.0, 50.0, 60.0, 60.0)
                .to_pixels(40, 40)
                .is_empty()
        );
        assert!(Rect::new(10.0, 10.0, 5.0, 5.0).to_pixels(40, 40).is_empty());
    }
}
