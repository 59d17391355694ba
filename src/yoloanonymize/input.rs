//! What goes to the worker and what comes back: a frame's scene-cut check and its two network
//! inputs (pose model and face detector) written into the batch, the job of a batch, and a
//! result's people of both detectors put together ([`fusion::associate`]).

use std::time::Instant;

use super::settings::{self, Live};
use super::state::{InFrame, Inputs, State};
use super::video::{Video, frame_ref};
use super::{CAT, Detectors};
use crate::batcher::Batch;
use crate::detection::Detection;
use crate::face::fill_face_tensor;
use crate::fusion;
use crate::preprocess::Letterbox;
use crate::scene::{self, CutDetector, Thumbnail};
use crate::worker::{FaceJob, Job, JobResult};

/// The scale `face-scale=0` (automatic) gives a frame whose long side is `long` pixels: the
/// frame upscaled to [`settings::AUTO_FACE_INPUT`] pixels on its long side, by at most
/// [`settings::AUTO_FACE_SCALE_MAX`], and never scaled down (1.5 for 960x544 and 768x576, 1.125
/// for 1280x720, 1 for 1920x1080 and larger).
fn auto_face_scale(long: usize) -> f64 {
    (settings::AUTO_FACE_INPUT as f64 / long.max(1) as f64)
        .clamp(1.0, settings::AUTO_FACE_SCALE_MAX)
}

/// The face detector's input geometry for a `w` x `h` frame at `scale` (0 = automatic,
/// [`auto_face_scale`]), its long side at most [`settings::MAX_FACE_INPUT`].
pub(super) fn face_letterbox(w: usize, h: usize, scale: f64) -> Letterbox {
    let long = w.max(h).max(1);
    let scale = if scale > 0.0 {
        scale
    } else {
        auto_face_scale(long)
    };
    let scale = scale.min(settings::MAX_FACE_INPUT as f64 / long as f64);
    Letterbox::with_scale(w, h, scale as f32)
}

/// Writes slot `slot` (of `per` values) of a batch tensor with `fill`, growing the tensor first.
fn fill_slot(tensor: &mut Vec<f32>, slot: usize, per: usize, fill: impl FnOnce(&mut [f32])) {
    if tensor.len() < (slot + 1) * per {
        tensor.resize((slot + 1) * per, 0.0);
    }
    fill(&mut tensor[slot * per..(slot + 1) * per]);
}

/// Whether `buffer` starts a new shot (scene cut), from a thumbnail of the frame.
fn scene_cut(cuts: &mut CutDetector, buffer: &gst::Buffer, video: &Video) -> bool {
    if !scene::supports(video.format) {
        return false;
    }
    let Ok(frame) = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &video.info) else {
        return false;
    };
    let cut = cuts.push(Thumbnail::of(&frame_ref(&frame, video.format)));
    if cut {
        gst::debug!(CAT, "Scene cut at {:?}", buffer.pts());
    }
    cut
}

impl State {
    /// Holds `buffer` in the batch being collected, writing its network inputs when it is
    /// analysed; returns whether the batch is full, or `Err` when the frame cannot be mapped.
    pub(super) fn hold(
        &mut self,
        buffer: gst::Buffer,
        now: Instant,
        live: &Live,
    ) -> Result<bool, ()> {
        let video = self.video.as_ref().ok_or(())?;
        let per = video.lb.tensor_len();
        let pose = self.frozen.detectors.contains(Detectors::POSE);
        let (pre, face_pre) = (&mut self.preprocessor, &mut self.face_preprocessor);
        let (phase, interval) = (&mut self.face_phase, self.frozen.face_interval.max(1));
        let mut face_frames = 0;
        let t0 = Instant::now();
        let cut = live.scene_cuts && scene_cut(&mut self.cuts, &buffer, video);
        let frame = InFrame { buffer, cut };
        let full = self.batcher.push(frame, now, |f, slot, inputs| {
            let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(&f.buffer, &video.info)
                .map_err(|_| ())?;
            let frame = frame_ref(&frame, video.format);
            if pose {
                fill_slot(&mut inputs.pose, slot, per, |dst| {
                    pre.fill_tensor(&frame, &video.lb, dst)
                });
            }
            if let Some(flb) = &video.face_lb {
                // A reused input may hold the slots of an earlier batch.
                inputs.face_slots.retain(|&s| s < slot);
                // Every `interval`-th analysed frame, and the first of every shot.
                if f.cut || *phase == 0 {
                    *phase = 0;
                    let face_slot = inputs.face_slots.len();
                    fill_slot(&mut inputs.face, face_slot, flb.tensor_len(), |dst| {
                        fill_face_tensor(face_pre, &frame, flb, dst)
                    });
                    inputs.face_slots.push(slot);
                    face_frames += 1;
                }
                *phase = (*phase + 1) % interval;
            }
            Ok(())
        });
        self.stats.preprocess += t0.elapsed();
        self.stats.face_frames += face_frames;
        full
    }

    /// The worker's job for `batch`: its pose input (unless the pose model is off) and its face
    /// input (when the face detector runs), with the live thresholds.
    pub(super) fn job(&self, batch: Batch<Inputs>, live: &Live) -> Option<Job> {
        let video = self.video.as_ref()?;
        let lb = video.lb;
        let Inputs {
            pose: mut tensor,
            face: mut face_tensor,
            face_slots,
        } = batch.input;
        let pose = self.frozen.detectors.contains(Detectors::POSE);
        tensor.truncate(if pose {
            batch.analysed * lb.tensor_len()
        } else {
            0
        });
        let face = video.face_lb.map(|flb| {
            face_tensor.truncate(face_slots.len() * flb.tensor_len());
            FaceJob {
                tensor: face_tensor,
                shape: [face_slots.len(), 3, flb.net_h, flb.net_w],
                images: face_slots,
                letterbox: flb,
                score_threshold: (live.face_threshold as f32 - self.face_conf_offset).max(0.0),
                iou_threshold: crate::face::DEFAULT_FACE_IOU,
            }
        });
        gst::debug!(
            CAT,
            "Batch {}: {} frames, {} to analyse at {}x{}",
            batch.id,
            batch.frames,
            batch.analysed,
            lb.net_w,
            lb.net_h
        );
        Some(Job {
            id: batch.id,
            tensor,
            shape: [batch.analysed, 3, lb.net_h, lb.net_w],
            letterbox: lb,
            conf_threshold: (live.conf_threshold as f32 - self.conf_offset).max(0.0),
            iou_threshold: live.iou_threshold as f32,
            batch_size: self.frozen.batch_size as usize,
            pose,
            face,
        })
    }

    /// Takes a worker result: recycles its tensors, counts its times, and returns its batch id
    /// and the people of each analysed frame, from both detectors.
    pub(super) fn take_result(
        &mut self,
        result: JobResult,
        live: &Live,
    ) -> (u64, Result<Vec<Vec<Detection>>, String>) {
        let JobResult {
            id,
            mut tensor,
            detections,
            faces,
            mut face_tensor,
            face_time,
            infer_time,
            decode_time,
            run_clients,
            ..
        } = result;
        tensor.clear();
        face_tensor.clear();
        self.batcher.recycle(Inputs {
            pose: tensor,
            face: face_tensor,
            face_slots: Vec::new(),
        });
        gst::debug!(
            CAT,
            "Batch {id}: inference {infer_time:?} (face detector {face_time:?}), decode {decode_time:?}"
        );
        let s = &mut self.stats;
        s.batches += 1;
        s.inference += infer_time;
        s.face_inference += face_time;
        s.decode += decode_time;
        let kp = live.keypoint_threshold as f32;
        let detections = detections.map(|people| {
            let mut faces = faces.into_iter();
            people
                .into_iter()
                .map(|p| {
                    let f = faces.next().unwrap_or_default();
                    s.faces += f.len() as u64;
                    fusion::associate(p, &f, kp)
                })
                .collect::<Vec<_>>()
        });
        if let Ok(d) = &detections {
            s.analysed += d.len() as u64;
            // Run together with other streams' batches on a shared worker.
            s.batches_merged += u64::from(run_clients > 1);
        }
        (id, detections)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_face_scale_upscales_small_frames_only() {
        for (w, h, net) in [
            (960, 544, (1440, 832)),
            (768, 576, (1152, 864)),
            (1280, 720, (1440, 832)),
            (1920, 1080, (1920, 1088)),
            (3840, 2160, (3840, 2176)),
            (64, 48, (96, 96)),
        ] {
            let lb = face_letterbox(w, h, 0.0);
            assert_eq!((lb.net_w, lb.net_h), net, "{w}x{h}");
        }
        // An explicit scale is taken as it is, within the input's limit.
        let lb = face_letterbox(960, 544, 1.0);
        assert_eq!((lb.net_w, lb.net_h), (960, 544));
        let lb = face_letterbox(1920, 1080, 4.0);
        assert_eq!(lb.net_w, settings::MAX_FACE_INPUT as usize);
    }
}
