//! The shared types of detections: rectangles, keypoints and people, in frame pixels.
//!
//! A leaf module: every other module imports these types from here, and this one imports only
//! [`PixelRect`](crate::frame::PixelRect) from the frame views. Every [`Rect`], [`Keypoint`] and
//! [`Detection`] is in frame pixels (`f32`, the letterbox undone): the decoders map network
//! coordinates to frame pixels before anything else sees them.

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
    /// The rectangle moved by `(dx, dy)`.
    pub fn shifted(&self, dx: f32, dy: f32) -> Rect {
        Rect::new(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)
    }

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

/// Keypoints per person (COCO order, see [`coco`]).
pub const NUM_KEYPOINTS: usize = 17;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Keypoint {
    pub x: f32,
    pub y: f32,
    /// Visibility probability.
    pub conf: f32,
}

/// One person: found by the pose model (`pose`), by the face detector (`face`), or by both (the
/// face associated with the person, see `crate::fusion`).
///
/// A person found by the face detector alone has the face's box as `bbox`, its eye and nose
/// landmarks as keypoints (with the face's score as their confidence) and no other keypoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub bbox: Rect,
    pub score: f32,
    pub keypoints: [Keypoint; NUM_KEYPOINTS],
    /// The pose model found this person (false: the face detector alone did).
    pub pose: bool,
    /// The face the face detector found for this person, if it found one.
    pub face: Option<FaceDetection>,
}

impl Detection {
    /// A person found by the pose model alone.
    pub fn from_pose(bbox: Rect, score: f32, keypoints: [Keypoint; NUM_KEYPOINTS]) -> Self {
        Self {
            bbox,
            score,
            keypoints,
            pose: true,
            face: None,
        }
    }

    /// A person found by the face detector alone: the face's box, its eyes and nose as keypoints.
    pub fn from_face(face: FaceDetection) -> Self {
        let mut keypoints = [Keypoint::default(); NUM_KEYPOINTS];
        keypoints[coco::NOSE] = face.landmarks[landmark::NOSE];
        keypoints[coco::LEFT_EYE] = face.landmarks[landmark::LEFT_EYE];
        keypoints[coco::RIGHT_EYE] = face.landmarks[landmark::RIGHT_EYE];
        Self {
            bbox: face.bbox,
            score: face.score,
            keypoints,
            pose: false,
            face: Some(face),
        }
    }

    /// Which detectors found this person: `"pose"`, `"face"` or `"pose+face"`.
    pub fn sources(&self) -> &'static str {
        match (self.pose, self.face.is_some()) {
            (true, true) => "pose+face",
            (false, _) => "face",
            (true, false) => "pose",
        }
    }

    /// Moves the detection (box, keypoints and face) by `(dx, dy)`.
    pub fn shifted(&self, dx: f32, dy: f32) -> Detection {
        let mut d = *self;
        d.bbox = d.bbox.shifted(dx, dy);
        for k in d.keypoints.iter_mut() {
            k.x += dx;
            k.y += dy;
        }
        d.face = d.face.map(|f| f.shifted(dx, dy));
        d
    }

    /// Where the head is, as far as the detection alone says: the face box when there is a
    /// face, else a square around the confident nose, eyes and ears of the pose (side 1.5 times
    /// their spread, at least a quarter of the box width), else `None`.
    pub fn head_hint(&self, kp_thr: f32) -> Option<Rect> {
        if let Some(f) = &self.face {
            return Some(f.bbox);
        }
        let pts: Vec<&Keypoint> = [
            coco::NOSE,
            coco::LEFT_EYE,
            coco::RIGHT_EYE,
            coco::LEFT_EAR,
            coco::RIGHT_EAR,
        ]
        .iter()
        .map(|&i| &self.keypoints[i])
        .filter(|k| k.conf >= kp_thr)
        .collect();
        if pts.is_empty() {
            return None;
        }
        let x0 = pts.iter().map(|k| k.x).fold(f32::INFINITY, f32::min);
        let x1 = pts.iter().map(|k| k.x).fold(f32::NEG_INFINITY, f32::max);
        let y0 = pts.iter().map(|k| k.y).fold(f32::INFINITY, f32::min);
        let y1 = pts.iter().map(|k| k.y).fold(f32::NEG_INFINITY, f32::max);
        let side = ((x1 - x0).max(y1 - y0) * 1.5).max(self.bbox.width() * 0.25);
        Some(Rect::from_center(
            (x0 + x1) / 2.0,
            (y0 + y1) / 2.0,
            side,
            side,
        ))
    }

    /// How well `other` continues this detection, for tracking: the IoU of the person boxes
    /// when both come from the pose model, and of the heads ([`Detection::head_hint`]) when
    /// either was found by the face detector alone or both have a face; the larger.
    pub fn similarity(&self, other: &Detection, kp_thr: f32) -> f32 {
        let mut s = if self.pose && other.pose {
            self.bbox.iou(&other.bbox)
        } else {
            0.0
        };
        let faces = self.face.is_some() && other.face.is_some();
        if (!self.pose || !other.pose || faces)
            && let (Some(a), Some(b)) = (self.head_hint(kp_thr), other.head_hint(kp_thr))
        {
            s = s.max(a.iou(&b));
        }
        s
    }
}

/// COCO keypoint indices of YOLO pose models (the person's own left and right).
pub mod coco {
    pub const NOSE: usize = 0;
    pub const LEFT_EYE: usize = 1;
    pub const RIGHT_EYE: usize = 2;
    pub const LEFT_EAR: usize = 3;
    pub const RIGHT_EAR: usize = 4;
}

/// Face landmark indices of [`FaceDetection::landmarks`]. Right and left are the person's own:
/// on a frontal face the person's right eye and right mouth corner are on the image's left.
pub mod landmark {
    /// Landmarks per face.
    pub const NUM_LANDMARKS: usize = 5;
    pub const RIGHT_EYE: usize = 0;
    pub const LEFT_EYE: usize = 1;
    pub const NOSE: usize = 2;
    pub const MOUTH_RIGHT: usize = 3;
    pub const MOUTH_LEFT: usize = 4;
}

/// One face found by the face detector, in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceDetection {
    pub bbox: Rect,
    pub score: f32,
    /// Indexed by the [`landmark`] constants; `conf`
    /// is the face's score (YuNet gives no per-landmark confidence).
    pub landmarks: [Keypoint; landmark::NUM_LANDMARKS],
}

impl FaceDetection {
    /// Moves the face (box and landmarks) by `(dx, dy)`.
    pub fn shifted(&self, dx: f32, dy: f32) -> FaceDetection {
        let mut f = *self;
        f.bbox = f.bbox.shifted(dx, dy);
        for k in f.landmarks.iter_mut() {
            k.x += dx;
            k.y += dy;
        }
        f
    }

    /// The person's right eye (on the image's left for a frontal face).
    pub fn right_eye(&self) -> Keypoint {
        self.landmarks[landmark::RIGHT_EYE]
    }

    /// The person's left eye.
    pub fn left_eye(&self) -> Keypoint {
        self.landmarks[landmark::LEFT_EYE]
    }

    /// Distance between the two eye landmarks.
    pub fn eye_distance(&self) -> f32 {
        let (r, l) = (self.right_eye(), self.left_eye());
        ((r.x - l.x).powi(2) + (r.y - l.y).powi(2)).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
