//! What the element holds between `start` and `stop`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::loading::{Loaded, MAX_IN_FLIGHT};
use super::settings::Settings;
use super::video::Video;
use gst::prelude::*;

use crate::audit::{self, AuditFile, WriteError};
use crate::batcher::{Batcher, Plan};
use crate::detection::Detection;
use crate::frame::PixelRect;
use crate::preprocess::Preprocessor;
use crate::redact::Scratch;
use crate::regions::{REDUCED_PRECISION_PAD, Region, RegionKind};
use crate::scene::CutDetector;
use crate::stats::{Reporter, Stats, Throttle};
use crate::temporal::{Tracked, Tracker};
use crate::worker::Worker;

/// A frame held by the element: its buffer, and whether it starts a new shot (a scene cut).
#[derive(Debug)]
pub(super) struct InFrame {
    pub buffer: gst::Buffer,
    pub cut: bool,
}

/// The inputs of one batch: the pose model's tensor and the face detector's (each empty when its
/// detector is off).
#[derive(Debug, Default)]
pub(super) struct Inputs {
    pub pose: Vec<f32>,
    pub face: Vec<f32>,
    /// The analysed slots whose frame is in `face` (`face-interval`), in order.
    pub face_slots: Vec<usize>,
}

/// The batching state machine over the element's frames: the people of both detectors per
/// analysed frame ([`crate::fusion::associate`]), and both tensors as its input.
pub(super) type FrameBatcher = Batcher<InFrame, Vec<Detection>, Inputs>;

/// What exists between `start` and `stop`.
pub(super) struct State {
    /// The settings as they were at start (the live ones are read per buffer).
    pub frozen: Settings,
    /// The inference thread; `None` when the model could not be loaded and on-failure let the
    /// element start anyway (`failure` says why).
    pub worker: Option<Arc<Worker>>,
    pub failure: Option<String>,
    /// Whether upstream is live, asked on the first buffer.
    pub live: Option<bool>,
    /// Network pixels added around every region (reduced precision).
    pub pad_net: f32,
    pub fixed_hw: Option<(usize, usize)>,
    pub video: Option<Video>,
    pub batcher: FrameBatcher,
    pub tracker: Tracker,
    pub preprocessor: Preprocessor,
    /// The face input's own preprocessor (its resize taps differ from the pose input's).
    pub face_preprocessor: Preprocessor,
    pub cuts: CutDetector,
    /// Analysed frames since the face detector last ran (it runs at 0; `face-interval`).
    pub face_phase: u32,
    /// How much lower the confidence threshold is for the precision in effect.
    pub conf_offset: f32,
    /// How much lower `face-threshold` is for the face detector's precision.
    pub face_conf_offset: f32,
    pub scratch: Scratch,
    pub regions: Vec<Region>,
    pub stats: Stats,
    pub reporter: Reporter,
    pub failures: Throttle,
    pub audit: Option<AuditFile>,
    /// Index of the next frame to leave (the audit trail's frame number).
    pub out_frames: u64,
    /// Processed frames waiting to leave through `generate_output`.
    pub ready: VecDeque<gst::Buffer>,
    pub started: Instant,
}

impl State {
    /// The state of a started element: its frozen settings, its worker (or why it has none) and
    /// its audit file.
    pub fn new(frozen: Settings, loaded: Loaded, audit: Option<AuditFile>) -> Self {
        let info = &loaded.info;
        let batch_size = frozen.batch_size as usize;
        // A model with a fixed batch takes no more than that at once.
        let batch_size = info.fixed_batch.map_or(batch_size, |b| b.min(batch_size));
        Self {
            batcher: FrameBatcher::new(batch_size, frozen.detect_interval),
            pad_net: if info.region_pad > 0.0 {
                info.region_pad
            } else if info.reduced_precision {
                REDUCED_PRECISION_PAD
            } else {
                0.0
            },
            conf_offset: info.conf_offset,
            face_conf_offset: info.face_conf_offset,
            face_preprocessor: Preprocessor::default(),
            cuts: CutDetector::default(),
            face_phase: 0,
            fixed_hw: info.fixed_hw,
            worker: loaded.worker,
            failure: loaded.failure,
            live: None,
            video: None,
            tracker: Tracker::default(),
            preprocessor: Preprocessor::default(),
            scratch: Scratch::default(),
            regions: Vec::new(),
            stats: Stats::default(),
            reporter: Reporter::default(),
            failures: Throttle::new(Duration::from_secs(1)),
            audit,
            out_frames: 0,
            ready: VecDeque::new(),
            started: Instant::now(),
            frozen,
        }
    }

    /// The longest a frame may be held on a live stream.
    pub fn max_latency(&self) -> Duration {
        if self.frozen.max_latency > 0 {
            return Duration::from_nanos(self.frozen.max_latency);
        }
        self.frame_duration() * (2 * self.frozen.batch_size).max(4)
    }

    /// One frame's duration from the caps (100 ms when the frame rate is unknown).
    pub fn frame_duration(&self) -> Duration {
        self.video
            .as_ref()
            .map(|v| v.info.fps())
            .filter(|f| f.numer() > 0 && f.denom() > 0)
            .map(|f| Duration::from_secs_f64(f.denom() as f64 / f.numer() as f64))
            .unwrap_or(Duration::from_millis(100))
    }

    pub fn is_live(&self) -> bool {
        self.live == Some(true)
    }

    /// How long frames are held, for the latency query: on a live stream, `max-latency` (a
    /// frame leaves by then, analysed or not); otherwise a full batch in the worker while the
    /// next one is collected. Saturating: no property value wraps around.
    pub fn held(&self, live: bool) -> gst::ClockTime {
        if live {
            let ns = u64::try_from(self.max_latency().as_nanos()).unwrap_or(u64::MAX);
            return gst::ClockTime::from_nseconds(ns.min(gst::ClockTime::MAX.nseconds()));
        }
        let frames = self.frozen.batch_size as u64 * (MAX_IN_FLIGHT as u64 + 1) - 1;
        match self.video.as_ref().map(|v| v.info.fps()) {
            Some(f) if f.numer() > 0 => gst::ClockTime::SECOND
                .mul_div_floor(frames * f.denom() as u64, f.numer() as u64)
                .unwrap_or(gst::ClockTime::ZERO),
            _ => gst::ClockTime::ZERO,
        }
    }

    /// Writes the audit record of the frame that leaves now, if there is an audit file; an error
    /// gives the file's path and the records it lost.
    pub fn audit_record(
        &mut self,
        pts_ns: Option<u64>,
        plan: &Plan,
        pixels: &[(RegionKind, PixelRect, f32)],
        people: &[Tracked],
    ) -> Result<(), (String, WriteError)> {
        let Some(file) = self.audit.as_mut() else {
            return Ok(());
        };
        let reason = match plan {
            Plan::Regions => None,
            Plan::WholeFrame(why) | Plan::Error(why) => Some(why.clone()),
            Plan::Passthrough(why) => {
                Some(format!("{why} (on-failure=passthrough: left untouched)"))
            }
        };
        let line = audit::frame_record(
            self.out_frames,
            pts_ns,
            matches!(plan, Plan::WholeFrame(_)),
            reason.as_deref(),
            pixels,
            people,
        );
        file.record(&line)
            .map_err(|e| (file.path().display().to_string(), e))
    }

    /// Counts `n` frames of a batch that could not be analysed; returns the warning to post: at
    /// the first, then at most once a second with the count since the last one.
    pub fn count_failure(&mut self, plan: &Plan, n: u64) -> Option<String> {
        let passthrough = matches!(plan, Plan::Passthrough(_));
        if passthrough {
            self.stats.frames_passed_unanalysed += n;
        } else {
            self.stats.frames_whole += n;
        }
        let count = self.failures.add(n, Instant::now())?;
        let total = self.stats.frames_whole + self.stats.frames_passed_unanalysed;
        let what = if passthrough {
            "passed through UNREDACTED (on-failure=passthrough)"
        } else {
            "pixelated whole"
        };
        let why = plan.failure().unwrap_or_default();
        Some(format!(
            "Could not analyse {count} frames ({why}); they were {what} ({total} so far)"
        ))
    }

    /// At EOS: writes out and renames the audit file; returns what to tell the user, each
    /// flagged when it is a failure of the audit trail itself (an error under on-failure=error).
    pub fn complete_audit(&mut self) -> Vec<(bool, String)> {
        let mut notes = Vec::new();
        let Some(file) = self.audit.as_mut() else {
            return notes;
        };
        let path = file.path().display().to_string();
        if let Err(e) = file.complete() {
            notes.push((
                true,
                format!("Cannot complete detections-file '{path}': {e}"),
            ));
        }
        if self.stats.audit_records_lost > 0 {
            notes.push((
                false,
                format!(
                    "detections-file '{path}' is missing {} records that could not be written",
                    self.stats.audit_records_lost
                ),
            ));
        }
        notes
    }

    /// At stop without EOS: the records stay in the temporary file (rather than an incomplete
    /// file replacing the one under the final name); returns the warning that names it.
    pub fn abandon_audit(&mut self) -> Option<String> {
        let file = self.audit.as_mut().filter(|f| !f.is_complete())?;
        let flushed = file.flush();
        (file.written() > 0).then(|| {
            format!(
                "The stream stopped before EOS, so detections-file '{}' was not completed: its {} records are in {}{}",
                file.path().display(),
                file.written(),
                file.temp_path().display(),
                flushed.err().map(|e| format!(" ({e})")).unwrap_or_default()
            )
        })
    }
}
