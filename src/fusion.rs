//! Putting the two detectors together: each face the face detector found is given to the person
//! of the pose model whose head it is, and a face that is nobody's head (a person whose body the
//! pose model did not find: hidden in a crowd, out of the frame, too small) becomes a person of
//! its own ([`Detection::from_face`]). The tracker then carries both kinds alike.
//!
//! A face belongs to a person when it overlaps the head the person's keypoints place
//! ([`regions::face_rect`]) and its centre lies in the person box; the best pairs are taken
//! first, each face and each person at most once.

use crate::detection::{Detection, FaceDetection};
use crate::regions;

/// Least overlap (intersection over the face box's area) of a face with a person's head for the
/// face to be that person's.
pub const MIN_HEAD_OVERLAP: f32 = 0.3;

/// Intersection of `face` with `head`, as a share of the face box's area.
fn overlap(face: &FaceDetection, head: &crate::detection::Rect) -> f32 {
    let f = &face.bbox;
    let w = (f.x1.min(head.x1) - f.x0.max(head.x0)).max(0.0);
    let h = (f.y1.min(head.y1) - f.y0.max(head.y0)).max(0.0);
    let a = f.area();
    if a > 0.0 { w * h / a } else { 0.0 }
}

/// The people of one frame from both detectors: `people` (pose model), each with the face that is
/// its head when there is one, then a person for every face that is nobody's head.
pub fn associate(
    mut people: Vec<Detection>,
    faces: &[FaceDetection],
    keypoint_threshold: f32,
) -> Vec<Detection> {
    if faces.is_empty() {
        return people;
    }
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (pi, p) in people.iter().enumerate() {
        let head = regions::face_rect(p, keypoint_threshold);
        for (fi, f) in faces.iter().enumerate() {
            let (cx, cy) = f.bbox.center();
            let b = &p.bbox;
            if cx < b.x0 || cx > b.x1 || cy < b.y0 || cy > b.y1 {
                continue;
            }
            let o = overlap(f, &head);
            if o >= MIN_HEAD_OVERLAP {
                // The better overlap first; between equals, the closer head centre.
                let (hx, hy) = head.center();
                let d = ((hx - cx).powi(2) + (hy - cy).powi(2)).sqrt() / head.width().max(1.0);
                pairs.push((o - 0.01 * d.min(1.0), pi, fi));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut face_used = vec![false; faces.len()];
    for (_, pi, fi) in pairs {
        if face_used[fi] || people[pi].face.is_some() {
            continue;
        }
        face_used[fi] = true;
        people[pi].face = Some(faces[fi]);
    }
    people.extend(
        faces
            .iter()
            .zip(&face_used)
            .filter(|(_, used)| !**used)
            .map(|(f, _)| Detection::from_face(*f)),
    );
    people
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::coco::{LEFT_EAR, LEFT_EYE, NOSE, RIGHT_EAR, RIGHT_EYE};
    use crate::detection::{Keypoint, Rect};

    fn kp(x: f32, y: f32) -> Keypoint {
        Keypoint { x, y, conf: 0.9 }
    }

    /// A person 200 px tall at x 100..160, head at the top.
    fn person(x: f32) -> Detection {
        let mut k = [Keypoint::default(); 17];
        k[NOSE] = kp(x + 30.0, 120.0);
        k[LEFT_EYE] = kp(x + 34.0, 116.0);
        k[RIGHT_EYE] = kp(x + 26.0, 116.0);
        k[LEFT_EAR] = kp(x + 40.0, 118.0);
        k[RIGHT_EAR] = kp(x + 20.0, 118.0);
        Detection::from_pose(Rect::new(x, 100.0, x + 60.0, 300.0), 0.9, k)
    }

    fn face(cx: f32, cy: f32, w: f32) -> FaceDetection {
        let mut landmarks = [Keypoint::default(); 5];
        landmarks[0] = kp(cx - w * 0.2, cy - w * 0.1);
        landmarks[1] = kp(cx + w * 0.2, cy - w * 0.1);
        landmarks[2] = kp(cx, cy);
        landmarks[3] = kp(cx - w * 0.15, cy + w * 0.25);
        landmarks[4] = kp(cx + w * 0.15, cy + w * 0.25);
        FaceDetection {
            bbox: Rect::from_center(cx, cy, w, w * 1.2),
            score: 0.8,
            landmarks,
        }
    }

    #[test]
    fn a_face_on_a_persons_head_is_theirs() {
        let out = associate(
            vec![person(100.0), person(300.0)],
            &[face(330.0, 118.0, 22.0)],
            0.5,
        );
        assert_eq!(out.len(), 2);
        assert!(out[0].face.is_none());
        assert_eq!(out[1].face, Some(face(330.0, 118.0, 22.0)));
        assert_eq!(out[1].sources(), "pose+face");
    }

    #[test]
    fn a_face_that_is_nobodys_head_is_a_person_of_its_own() {
        // On the person's belly (a face behind them, or a print on a shirt) and outside anyone.
        let faces = [face(130.0, 220.0, 20.0), face(500.0, 50.0, 12.0)];
        let out = associate(vec![person(100.0)], &faces, 0.5);
        assert_eq!(out.len(), 3);
        assert!(out[0].face.is_none());
        for (d, f) in out[1..].iter().zip(&faces) {
            assert!(!d.pose);
            assert_eq!(d.bbox, f.bbox);
            assert_eq!(d.sources(), "face");
            assert_eq!(d.keypoints[LEFT_EYE], f.left_eye());
        }
    }

    #[test]
    fn each_person_takes_one_face_the_best() {
        let close = face(130.0, 118.0, 22.0);
        let off = face(138.0, 124.0, 22.0);
        let out = associate(vec![person(100.0)], &[off, close], 0.5);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].face, Some(close));
        assert_eq!(out[1].face, Some(off));
        assert!(!out[1].pose);
    }
}
