//! Temporal safety: people are tracked from frame to frame so that a region keeps being covered
//! when the detector misses a person for a few frames, follows their motion, covers the frames of
//! a batch before the one where a person was first found, and is carried through the frames the
//! model does not run on (`detect-interval`).
//!
//! Works on one batch at a time, in frame order: the element holds every frame of a batch, so the
//! look-ahead and interpolation only ever use frames that have not left yet.

use crate::detection::{Detection, FaceDetection, Keypoint, Rect};

/// How detections are carried over time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TemporalParams {
    /// Frames a person stays covered after the detector last reported them (on frames it ran on).
    pub hold_frames: u32,
    /// Growth per frame of a region that is not backed by a detection in that frame, as a
    /// fraction of its longer side, on each side (covers motion the prediction gets wrong).
    pub grow_per_frame: f32,
    /// Minimum similarity ([`Detection::similarity`]: person-box or head IoU) for a detection to
    /// continue a track.
    pub match_iou: f32,
    /// Visibility above which a keypoint places the head, for matching a face to a person.
    pub keypoint_threshold: f32,
}

/// Frames a person stays covered after their last detection, by default: closes 36 of the 41
/// flicker gaps measured on `vtest.avi` (README, Temporal safety).
pub const DEFAULT_HOLD_FRAMES: u32 = 8;

impl Default for TemporalParams {
    fn default() -> Self {
        Self {
            hold_frames: DEFAULT_HOLD_FRAMES,
            grow_per_frame: 0.1,
            match_iou: 0.2,
            keypoint_threshold: 0.5,
        }
    }
}

/// Why a person is covered in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The detector found them in this frame.
    Detected,
    /// Between two detections of the same person (missed or not analysed frames).
    Interpolated,
    /// After the last detection: predicted from their motion, within `hold_frames`.
    Held,
    /// Before their first detection in this batch (look-ahead).
    LookAhead,
}

/// A person to cover in one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tracked {
    pub det: Detection,
    /// Extra growth of the regions, as a fraction of their size on each side.
    pub grow: f32,
    pub source: Source,
    pub track: u64,
}

#[derive(Debug, Clone)]
struct Track {
    id: u64,
    /// Last detection and the (global) frame it was made in.
    last: Detection,
    last_frame: u64,
    /// Centre velocity in pixels per frame.
    vx: f32,
    vy: f32,
    /// Frames analysed by the model since `last_frame` in which the person was not found.
    misses: u32,
    /// Frame of the pose model's last detection of the person (see [`carry_pose`]).
    pose_frame: u64,
}

/// How far `b`'s centre is from `a`'s: the person boxes' centres when both detections are of one
/// kind, else the heads' (a person box's centre is not a face box's).
fn centre_delta(a: &Detection, b: &Detection, kp_thr: f32) -> (f32, f32) {
    let centres = if a.pose == b.pose {
        Some((a.bbox.center(), b.bbox.center()))
    } else {
        a.head_hint(kp_thr)
            .zip(b.head_hint(kp_thr))
            .map(|(ha, hb)| (ha.center(), hb.center()))
    };
    centres.map_or((0.0, 0.0), |((ax, ay), (bx, by))| (bx - ax, by - ay))
}

/// A person the pose model found and the face detector alone finds next (the pose model missed
/// the body): the pose detection is carried along with the face, which becomes its face, so the
/// body, head and eye regions stay as they would be held without the face; the face detector's
/// regions are added to them. `None` when there is nothing to carry: `face_only` is not a
/// face-only detection or `last` is not the pose model's.
fn carry_pose(last: &Detection, face_only: &Detection, kp_thr: f32) -> Option<Detection> {
    if face_only.pose || !last.pose {
        return None;
    }
    let (dx, dy) = centre_delta(last, face_only, kp_thr);
    let mut d = last.shifted(dx, dy);
    d.face = face_only.face;
    Some(d)
}

fn centre_shift(d: &Detection, dx: f32, dy: f32) -> Detection {
    d.shifted(dx, dy)
}

fn lerp_rect(a: &Rect, b: &Rect, t: f32) -> Rect {
    let l = |x: f32, y: f32| x + (y - x) * t;
    Rect::new(l(a.x0, b.x0), l(a.y0, b.y0), l(a.x1, b.x1), l(a.y1, b.y1))
}

fn lerp_keypoints<const N: usize>(a: &[Keypoint; N], b: &[Keypoint; N], t: f32) -> [Keypoint; N] {
    let l = |x: f32, y: f32| x + (y - x) * t;
    let mut out = [Keypoint::default(); N];
    for (k, (ka, kb)) in out.iter_mut().zip(a.iter().zip(b)) {
        *k = Keypoint {
            x: l(ka.x, kb.x),
            y: l(ka.y, kb.y),
            conf: ka.conf.min(kb.conf),
        };
    }
    out
}

/// The face between two faces of a person; where only one end has a face, that face moved
/// with the person box (so the face detector's coverage is not lost between its detections).
fn lerp_face(a: &Detection, b: &Detection, bbox: &Rect, t: f32) -> Option<FaceDetection> {
    match (&a.face, &b.face) {
        (Some(fa), Some(fb)) => Some(FaceDetection {
            bbox: lerp_rect(&fa.bbox, &fb.bbox, t),
            score: fa.score.min(fb.score),
            landmarks: lerp_keypoints(&fa.landmarks, &fb.landmarks, t),
        }),
        (Some(f), None) | (None, Some(f)) => {
            let from = if a.face.is_some() { a } else { b };
            let (cx, cy) = from.bbox.center();
            let (nx, ny) = bbox.center();
            Some(f.shifted(nx - cx, ny - cy))
        }
        (None, None) => None,
    }
}

/// Linear interpolation between two detections of the same person, `t` in 0..1.
///
/// A track can be found by the pose model in one frame and by the face detector alone in
/// another: between a person box and a face box the box would be meaningless, so the
/// interpolated detection is then the nearer end, moved along the line between the two heads.
pub fn lerp(a: &Detection, b: &Detection, t: f32) -> Detection {
    if a.pose != b.pose {
        let near = if t < 0.5 { a } else { b };
        let (Some(ha), Some(hb)) = (a.head_hint(0.0), b.head_hint(0.0)) else {
            return *near;
        };
        let ((ax, ay), (bx, by)) = (ha.center(), hb.center());
        let (hx, hy) = if t < 0.5 { (ax, ay) } else { (bx, by) };
        let (x, y) = (ax + (bx - ax) * t, ay + (by - ay) * t);
        let mut d = near.shifted(x - hx, y - hy);
        if d.face.is_none() {
            d.face = a.face.or(b.face).map(|f| {
                let (fx, fy) = f.bbox.center();
                f.shifted(x - fx, y - fy)
            });
        }
        return d;
    }
    let bbox = lerp_rect(&a.bbox, &b.bbox, t);
    Detection {
        face: lerp_face(a, b, &bbox, t),
        bbox,
        score: a.score.min(b.score),
        keypoints: lerp_keypoints(&a.keypoints, &b.keypoints, t),
        pose: a.pose,
    }
}

/// Carries people across frames. One per stream; reset on flush and caps changes.
#[derive(Debug, Default)]
pub struct Tracker {
    tracks: Vec<Track>,
    next_id: u64,
    /// Global index of the next frame.
    frame: u64,
}

impl Tracker {
    pub fn reset(&mut self) {
        self.tracks.clear();
        self.frame = 0;
    }

    /// Number of people currently tracked.
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// Processes one batch: `frames[i]` is `Some(detections)` when the model ran on frame `i`,
    /// `None` when it did not (detect-interval); `cuts[i]` says that frame `i` starts a new shot
    /// (a scene cut: nobody of the previous shot is carried into it, and nobody found after it
    /// is looked ahead into the frames before it). Returns, per frame, every person to cover.
    pub fn process_batch(
        &mut self,
        frames: &[Option<Vec<Detection>>],
        cuts: &[bool],
        p: &TemporalParams,
    ) -> Vec<Vec<Tracked>> {
        let base = self.frame;
        let n = frames.len();
        let mut out: Vec<Vec<Tracked>> = vec![Vec::new(); n];
        // Observations per track in this batch: (batch index, detection), for the second pass.
        let mut observed: Vec<(u64, usize, Detection)> = Vec::new();
        let mut born: Vec<(u64, usize)> = Vec::new();
        let mut prev_obs: Vec<(u64, u64, Detection)> = self
            .tracks
            .iter()
            .map(|t| (t.id, t.last_frame, t.last))
            .collect();

        // First frame of the shot each frame belongs to (within this batch).
        let mut shot_start = vec![0usize; n];
        for (i, obs) in frames.iter().enumerate() {
            let g = base + i as u64;
            shot_start[i] = if cuts.get(i).copied().unwrap_or(false) {
                self.tracks.clear();
                i
            } else {
                i.checked_sub(1).map_or(0, |j| shot_start[j])
            };
            if let Some(dets) = obs {
                // Greedy association by IoU with each track's predicted box.
                let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
                for (ti, t) in self.tracks.iter().enumerate() {
                    let dt = (g - t.last_frame) as f32;
                    let pred = centre_shift(&t.last, t.vx * dt, t.vy * dt);
                    for (di, d) in dets.iter().enumerate() {
                        let iou = pred
                            .similarity(d, p.keypoint_threshold)
                            .max(t.last.similarity(d, p.keypoint_threshold));
                        if iou >= p.match_iou {
                            pairs.push((iou, ti, di));
                        }
                    }
                }
                pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
                let mut track_used = vec![false; self.tracks.len()];
                let mut det_used = vec![false; dets.len()];
                for (_, ti, di) in pairs {
                    if track_used[ti] || det_used[di] {
                        continue;
                    }
                    track_used[ti] = true;
                    det_used[di] = true;
                    let t = &mut self.tracks[ti];
                    let mut d = dets[di];
                    if d.pose {
                        t.pose_frame = g;
                    } else if g - t.pose_frame <= u64::from(p.hold_frames)
                        && let Some(carried) = carry_pose(&t.last, &d, p.keypoint_threshold)
                    {
                        d = carried;
                    }
                    let dt = (g - t.last_frame).max(1) as f32;
                    let (mx, my) = centre_delta(&t.last, &d, p.keypoint_threshold);
                    t.vx = 0.5 * t.vx + 0.5 * mx / dt;
                    t.vy = 0.5 * t.vy + 0.5 * my / dt;
                    t.last = d;
                    t.last_frame = g;
                    t.misses = 0;
                    observed.push((t.id, i, d));
                }
                for (ti, used) in track_used.iter().enumerate() {
                    if !used {
                        self.tracks[ti].misses += 1;
                    }
                }
                for (di, d) in dets.iter().enumerate() {
                    if !det_used[di] {
                        let id = self.next_id;
                        self.next_id += 1;
                        self.tracks.push(Track {
                            id,
                            last: *d,
                            last_frame: g,
                            vx: 0.0,
                            vy: 0.0,
                            misses: 0,
                            pose_frame: g,
                        });
                        observed.push((id, i, *d));
                        born.push((id, i));
                    }
                }
                self.tracks.retain(|t| t.misses <= p.hold_frames);
            }
            for t in &self.tracks {
                // A pose detection carried with the face grows as a held one would.
                let since = if t.last.pose {
                    t.last_frame.min(t.pose_frame)
                } else {
                    t.last_frame
                };
                let unseen = (g - since) as f32;
                if t.last_frame == g {
                    out[i].push(Tracked {
                        det: t.last,
                        grow: p.grow_per_frame * unseen,
                        source: Source::Detected,
                        track: t.id,
                    });
                } else {
                    let dt = (g - t.last_frame) as f32;
                    out[i].push(Tracked {
                        det: centre_shift(&t.last, t.vx * dt, t.vy * dt),
                        grow: p.grow_per_frame * unseen,
                        source: Source::Held,
                        track: t.id,
                    });
                }
            }
        }

        // Second pass: frames between two observations of a track (in this batch, or the last
        // one before it) are interpolated rather than predicted.
        prev_obs.extend(observed.iter().map(|&(id, i, d)| (id, base + i as u64, d)));
        for entries in out
            .iter_mut()
            .enumerate()
            .map(|(i, e)| (base + i as u64, e))
        {
            let (g, list) = entries;
            for tr in list.iter_mut().filter(|t| t.source == Source::Held) {
                let before = prev_obs
                    .iter()
                    .filter(|o| o.0 == tr.track && o.1 < g)
                    .max_by_key(|o| o.1);
                let after = prev_obs
                    .iter()
                    .filter(|o| o.0 == tr.track && o.1 > g)
                    .min_by_key(|o| o.1);
                if let (Some(a), Some(b)) = (before, after) {
                    let t = (g - a.1) as f32 / (b.1 - a.1) as f32;
                    tr.det = lerp(&a.2, &b.2, t);
                    tr.grow = p.grow_per_frame * ((g - a.1).min(b.1 - g)) as f32;
                    tr.source = Source::Interpolated;
                }
            }
        }
        // Look-ahead: a person first found in frame k of this batch is covered in the frames of
        // its shot before k.
        for (id, k) in born {
            let d = observed
                .iter()
                .find(|o| o.0 == id && o.1 == k)
                .expect("born is observed")
                .2;
            for (i, list) in out.iter_mut().enumerate().take(k).skip(shot_start[k]) {
                list.push(Tracked {
                    det: d,
                    grow: p.grow_per_frame * (k - i) as f32,
                    source: Source::LookAhead,
                    track: id,
                });
            }
        }
        self.frame = base + n as u64;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(x: f32) -> Detection {
        let mut keypoints = [Keypoint::default(); 17];
        for (i, k) in keypoints.iter_mut().enumerate() {
            *k = Keypoint {
                x: x + 20.0,
                y: 110.0 + i as f32,
                conf: 0.9,
            };
        }
        Detection::from_pose(Rect::new(x, 100.0, x + 40.0, 220.0), 0.9, keypoints)
    }

    fn params(hold: u32) -> TemporalParams {
        TemporalParams {
            hold_frames: hold,
            ..Default::default()
        }
    }

    #[test]
    fn a_missed_frame_is_covered_by_the_held_region() {
        let mut t = Tracker::default();
        let frames = vec![
            Some(vec![person(100.0)]),
            Some(vec![]),
            Some(vec![]),
            Some(vec![]),
        ];
        let out = t.process_batch(&frames, &[], &params(2));
        assert_eq!(out[0].len(), 1);
        assert_eq!(out[1][0].source, Source::Held);
        assert_eq!(out[2][0].source, Source::Held);
        assert!(out[2][0].grow > out[1][0].grow, "held regions grow");
        assert!(out[3].is_empty(), "dropped after hold-frames misses");
        // hold-frames 0: nothing is held.
        let out = Tracker::default().process_batch(&frames, &[], &params(0));
        assert!(out[1].is_empty());
    }

    #[test]
    fn a_gap_between_detections_is_interpolated() {
        let mut t = Tracker::default();
        let frames = vec![
            Some(vec![person(100.0)]),
            Some(vec![]),
            Some(vec![person(110.0)]),
        ];
        let out = t.process_batch(&frames, &[], &params(5));
        assert_eq!(out[1].len(), 1);
        assert_eq!(out[1][0].source, Source::Interpolated);
        assert!((out[1][0].det.bbox.x0 - 105.0).abs() < 1e-3);
        assert_eq!(out[2][0].source, Source::Detected);
        assert_eq!(out[0][0].track, out[2][0].track, "one track");
    }

    #[test]
    fn look_ahead_covers_frames_before_the_first_detection() {
        let mut t = Tracker::default();
        let frames = vec![Some(vec![]), Some(vec![]), Some(vec![person(300.0)])];
        let out = t.process_batch(&frames, &[], &params(5));
        assert_eq!(out[0].len(), 1);
        assert_eq!(out[0][0].source, Source::LookAhead);
        assert!(out[0][0].grow > out[1][0].grow);
        assert_eq!(out[2][0].source, Source::Detected);
    }

    #[test]
    fn held_regions_follow_motion_across_batches() {
        let mut t = Tracker::default();
        let p = params(5);
        t.process_batch(
            &[
                Some(vec![person(100.0)]),
                Some(vec![person(110.0)]),
                Some(vec![person(120.0)]),
            ],
            &[],
            &p,
        );
        let out = t.process_batch(&[Some(vec![]), Some(vec![])], &[], &p);
        let x = out[1][0].det.bbox.x0;
        assert!(x > 125.0, "predicted forward, at {x}");
        // The person is found again: same track.
        let out2 = t.process_batch(&[Some(vec![person(150.0)])], &[], &p);
        assert_eq!(out2[0].len(), 1);
        assert_eq!(out2[0][0].track, out[0][0].track);
    }

    #[test]
    fn frames_not_analysed_carry_and_interpolate() {
        let mut t = Tracker::default();
        // detect-interval 2: the model runs on frames 0 and 2 only.
        let frames = vec![
            Some(vec![person(100.0)]),
            None,
            Some(vec![person(120.0)]),
            None,
        ];
        let out = t.process_batch(&frames, &[], &params(0));
        assert_eq!(out[1][0].source, Source::Interpolated);
        assert!((out[1][0].det.bbox.x0 - 110.0).abs() < 1e-3);
        // Not analysed frames do not use up hold-frames, even at 0.
        assert_eq!(out[3].len(), 1);
        assert_eq!(out[3][0].source, Source::Held);
    }

    #[test]
    fn two_people_keep_their_tracks() {
        let mut t = Tracker::default();
        let out = t.process_batch(
            &[
                Some(vec![person(100.0), person(400.0)]),
                Some(vec![person(405.0), person(104.0)]),
            ],
            &[],
            &params(3),
        );
        let id_at = |f: usize, x: f32| {
            out[f]
                .iter()
                .find(|t| (t.det.bbox.x0 - x).abs() < 1.0)
                .unwrap()
                .track
        };
        assert_eq!(id_at(0, 100.0), id_at(1, 104.0));
        assert_eq!(id_at(0, 400.0), id_at(1, 405.0));
        assert_eq!(t.len(), 2);
    }

    fn face_at(cx: f32, cy: f32) -> Detection {
        use crate::detection::landmark::NUM_LANDMARKS;
        Detection::from_face(FaceDetection {
            bbox: Rect::from_center(cx, cy, 16.0, 16.0),
            score: 0.8,
            landmarks: [Keypoint {
                x: cx,
                y: cy,
                conf: 0.8,
            }; NUM_LANDMARKS],
        })
    }

    #[test]
    fn a_pose_track_continued_by_the_face_alone_keeps_its_body_within_hold_frames() {
        let p = params(2);
        let pose = person(100.0);
        let (hx, hy) = pose.head_hint(p.keypoint_threshold).unwrap().center();
        // The pose model finds the person once; then only the face detector does, 3 px further
        // right each frame.
        let frames: Vec<_> = std::iter::once(Some(vec![pose]))
            .chain((1..=4).map(|k| Some(vec![face_at(hx + 3.0 * k as f32, hy)])))
            .collect();
        let out = Tracker::default().process_batch(&frames, &[], &p);
        for (f, list) in out.iter().enumerate() {
            assert_eq!(list.len(), 1, "frame {f}: one person, one track: {list:?}");
            assert_eq!(list[0].track, out[0][0].track);
        }
        for (f, list) in out.iter().enumerate().take(3).skip(1) {
            let t = &list[0];
            assert!(t.det.pose, "frame {f}: the body is carried");
            assert!(t.det.face.is_some(), "frame {f}: with the face found");
            let dx = t.det.bbox.x0 - pose.bbox.x0;
            assert!(
                (dx - 3.0 * f as f32).abs() < 1e-3,
                "frame {f}: moved with the face: {dx}"
            );
            assert!(
                (t.grow - 0.1 * f as f32).abs() < 1e-6,
                "grows as held: {}",
                t.grow
            );
        }
        // Past hold-frames the body is no longer carried: the face alone.
        for (f, list) in out.iter().enumerate().skip(3) {
            let t = &list[0];
            assert!(!t.det.pose, "frame {f}: {t:?}");
            assert_eq!(t.grow, 0.0);
            assert!((t.det.bbox.center().0 - (hx + 3.0 * f as f32)).abs() < 1e-3);
        }
        // Found again by the pose model: the track goes on.
        let mut t = Tracker::default();
        let mut frames = frames;
        frames.truncate(2);
        frames.push(Some(vec![person(106.0)]));
        let out = t.process_batch(&frames, &[], &p);
        assert_eq!(out[2][0].track, out[0][0].track);
        assert!(out[2][0].det.pose && out[2][0].grow == 0.0);
    }

    #[test]
    fn a_scene_cut_drops_held_people_and_limits_look_ahead() {
        let mut t = Tracker::default();
        let p = params(8);
        // Shot 1: a person at 100; the batch's last frames belong to shot 2, which starts at
        // frame 2 with nobody, and a person at 400 first found in frame 3.
        let out = t.process_batch(
            &[
                Some(vec![person(100.0)]),
                Some(vec![person(100.0)]),
                Some(vec![]),
                Some(vec![person(400.0)]),
            ],
            &[false, false, true, false],
            &p,
        );
        assert_eq!(out[1].len(), 1);
        assert!(
            out[2].iter().all(|t| t.det.bbox.x0 > 300.0),
            "nobody of shot 1 held into shot 2"
        );
        assert_eq!(
            out[2].len(),
            1,
            "the person of shot 2 is looked ahead within shot 2"
        );
        assert_eq!(out[2][0].source, Source::LookAhead);
        assert!(
            out[1].iter().all(|t| t.det.bbox.x0 < 300.0),
            "not looked ahead into shot 1: {:?}",
            out[1]
        );
        // Without the cut, the person of shot 1 is held and the new one looked ahead across.
        let out = Tracker::default().process_batch(
            &[
                Some(vec![person(100.0)]),
                Some(vec![person(100.0)]),
                Some(vec![]),
                Some(vec![person(400.0)]),
            ],
            &[],
            &p,
        );
        assert_eq!(out[2].len(), 2);
        assert_eq!(out[1].len(), 2);
        // A cut in the next batch drops what the previous batch held.
        let mut t = Tracker::default();
        t.process_batch(&[Some(vec![person(100.0)])], &[], &p);
        let out = t.process_batch(&[Some(vec![]), Some(vec![])], &[true, false], &p);
        assert!(out[0].is_empty() && out[1].is_empty());
    }
}
