//! The element's statistics and the names of the element messages it posts.
//!
//! The message names and field names are the public contract of the `yoloanonymize-stats` and
//! `yoloanonymize-provider` element messages: the element, the command-line tool, the examples and
//! the tests all import them from here. No GStreamer: [`Stats::fields`] lists (name, value) pairs
//! that the element turns into a `gst::Structure`.

use std::time::{Duration, Instant};

/// Name of the statistics element message (periodically, about once a second of stream time,
/// and at EOS with `eos` = true).
pub const STATS_MESSAGE: &str = "yoloanonymize-stats";
/// Name of the element message posted at start: which execution provider runs the model.
pub const PROVIDER_MESSAGE: &str = "yoloanonymize-provider";

/// Field names of [`STATS_MESSAGE`].
pub mod field {
    /// bool: the message is the final one, at EOS.
    pub const EOS: &str = "eos";
    /// f64: frames per second over the interval the message covers.
    pub const FPS: &str = "fps";
    /// f64: mean inference time per batch over the interval, ms.
    pub const INFERENCE_MS_PER_BATCH: &str = "inference-ms-per-batch";
    /// f64: analysed frames per batch over the interval.
    pub const FRAMES_PER_BATCH: &str = "frames-per-batch";
    /// u64 totals since start:
    pub const FRAMES: &str = "frames";
    pub const ANALYSED: &str = "analysed";
    pub const BATCHES: &str = "batches";
    pub const PEOPLE: &str = "people";
    pub const REGIONS: &str = "regions";
    pub const FRAMES_REDACTED_WHOLE: &str = "frames-redacted-whole";
    pub const FRAMES_PASSED_UNANALYSED: &str = "frames-passed-unanalysed";
    pub const FRAMES_LATE: &str = "frames-late";
    pub const BATCHES_MERGED: &str = "batches-merged";
    /// f64 totals since start, ms:
    pub const PREPROCESS_MS: &str = "preprocess-ms";
    pub const INFERENCE_MS: &str = "inference-ms";
    pub const DECODE_MS: &str = "decode-ms";
    pub const REDACT_MS: &str = "redact-ms";
    pub const WAIT_MS: &str = "wait-ms";
    /// u64: detections-file records that could not be written (lost).
    pub const AUDIT_RECORDS_LOST: &str = "audit-records-lost";
    /// u64: faces the face detector found, since start.
    pub const FACES: &str = "faces";
    /// u64: frames the face detector ran on (`face-interval`), since start.
    pub const FACE_FRAMES: &str = "face-frames";
    /// f64: the face detector's share of `inference-ms`, ms.
    pub const FACE_INFERENCE_MS: &str = "face-inference-ms";
    /// u64: scene cuts detected, since start.
    pub const SCENE_CUTS: &str = "scene-cuts";
}

/// Field names of [`PROVIDER_MESSAGE`] (all strings but `streams`, a u32).
pub mod provider_field {
    pub const REQUESTED: &str = "requested";
    pub const PROVIDER: &str = "provider";
    pub const SHARED_WORKER: &str = "shared-worker";
    pub const STREAMS: &str = "streams";
    pub const NOTE: &str = "note";
}

/// A field value of a statistics message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Bool(bool),
    U64(u64),
    F64(f64),
}

/// Totals since start.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stats {
    pub frames: u64,
    pub batches: u64,
    /// Frames the model ran on.
    pub analysed: u64,
    pub people: u64,
    pub regions: u64,
    pub frames_whole: u64,
    /// Frames let out untouched under on-failure=passthrough.
    pub frames_passed_unanalysed: u64,
    /// Frames let out at their live deadline before the model had analysed them.
    pub frames_late: u64,
    pub preprocess: Duration,
    pub inference: Duration,
    /// The face detector's share of `inference`.
    pub face_inference: Duration,
    /// Faces found by the face detector (with or without a person of the pose model).
    pub faces: u64,
    /// Frames the face detector ran on.
    pub face_frames: u64,
    /// Scene cuts detected.
    pub scene_cuts: u64,
    pub decode: Duration,
    pub redact: Duration,
    /// Time the streaming thread spent waiting for the inference thread.
    pub wait: Duration,
    /// Batches that ran together with other streams' batches (shared worker).
    pub batches_merged: u64,
    /// detections-file records lost to write errors.
    pub audit_records_lost: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 { num / den } else { 0.0 }
}

impl Stats {
    /// The message's fields: the totals, plus rates over the `elapsed` interval since `base`
    /// was taken (since start when `None`).
    pub fn fields(
        &self,
        eos: bool,
        elapsed: Duration,
        base: Option<&Stats>,
    ) -> Vec<(&'static str, Value)> {
        let zero = Stats::default();
        let base = base.unwrap_or(&zero);
        let frames = self.frames.saturating_sub(base.frames) as f64;
        let batches = self.batches.saturating_sub(base.batches) as f64;
        let analysed = self.analysed.saturating_sub(base.analysed) as f64;
        let inference = ms(self.inference.saturating_sub(base.inference));
        use Value::{Bool, F64, U64};
        vec![
            (field::EOS, Bool(eos)),
            (field::FPS, F64(ratio(frames, elapsed.as_secs_f64()))),
            (
                field::INFERENCE_MS_PER_BATCH,
                F64(ratio(inference, batches)),
            ),
            (field::FRAMES_PER_BATCH, F64(ratio(analysed, batches))),
            (field::FRAMES, U64(self.frames)),
            (field::ANALYSED, U64(self.analysed)),
            (field::BATCHES, U64(self.batches)),
            (field::PEOPLE, U64(self.people)),
            (field::REGIONS, U64(self.regions)),
            (field::FRAMES_REDACTED_WHOLE, U64(self.frames_whole)),
            (
                field::FRAMES_PASSED_UNANALYSED,
                U64(self.frames_passed_unanalysed),
            ),
            (field::FRAMES_LATE, U64(self.frames_late)),
            (field::PREPROCESS_MS, F64(ms(self.preprocess))),
            (field::INFERENCE_MS, F64(ms(self.inference))),
            (field::DECODE_MS, F64(ms(self.decode))),
            (field::REDACT_MS, F64(ms(self.redact))),
            (field::WAIT_MS, F64(ms(self.wait))),
            (field::BATCHES_MERGED, U64(self.batches_merged)),
            (field::AUDIT_RECORDS_LOST, U64(self.audit_records_lost)),
            (field::FACES, U64(self.faces)),
            (field::FACE_FRAMES, U64(self.face_frames)),
            (field::FACE_INFERENCE_MS, F64(ms(self.face_inference))),
            (field::SCENE_CUTS, U64(self.scene_cuts)),
        ]
    }
}

/// When the next periodic statistics message is due: about once a second of stream time.
#[derive(Debug, Default, Clone)]
pub struct Reporter {
    /// Stream time (ns) and wall-clock time of the last report, and the totals then.
    last: Option<(u64, Instant)>,
    base: Stats,
}

impl Reporter {
    /// Called for every frame that leaves, with its timestamp and the totals after it: when a
    /// report is due (a second of stream time since the last one, or time went backwards), the
    /// fields of the periodic message, with rates since the last report. The first frame only
    /// starts the clock.
    pub fn frame(
        &mut self,
        pts_ns: u64,
        now: Instant,
        stats: &Stats,
    ) -> Option<Vec<(&'static str, Value)>> {
        const SECOND: u64 = 1_000_000_000;
        let due = self
            .last
            .is_none_or(|(t, _)| pts_ns >= t.saturating_add(SECOND) || pts_ns < t);
        if !due {
            return None;
        }
        let report = self.last.map(|(_, at)| {
            stats.fields(false, now.saturating_duration_since(at), Some(&self.base))
        });
        self.last = Some((pts_ns, now));
        self.base = stats.clone();
        report
    }
}

/// Counts events and says when to report them: at the first, then at most once per `every`
/// with the count since the last report (for warnings that must not flood the bus).
#[derive(Debug, Clone)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    unreported: u64,
}

impl Throttle {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            unreported: 0,
        }
    }

    /// Adds `n` events at `now`; returns the count to report when a report is due.
    pub fn add(&mut self, n: u64, now: Instant) -> Option<u64> {
        self.unreported += n;
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < self.every)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unreported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(fields: &[(&str, Value)], name: &str) -> Value {
        fields.iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn rates_are_over_the_interval_and_totals_since_start() {
        let base = Stats {
            frames: 10,
            batches: 2,
            analysed: 8,
            inference: Duration::from_millis(200),
            ..Default::default()
        };
        let now = Stats {
            frames: 30,
            batches: 6,
            analysed: 24,
            inference: Duration::from_millis(600),
            people: 5,
            ..Default::default()
        };
        let f = now.fields(false, Duration::from_secs(2), Some(&base));
        assert_eq!(get(&f, field::FPS), Value::F64(10.0));
        assert_eq!(get(&f, field::INFERENCE_MS_PER_BATCH), Value::F64(100.0));
        assert_eq!(get(&f, field::FRAMES_PER_BATCH), Value::F64(4.0));
        assert_eq!(get(&f, field::FRAMES), Value::U64(30));
        assert_eq!(get(&f, field::PEOPLE), Value::U64(5));
        assert_eq!(get(&f, field::EOS), Value::Bool(false));
        // No time and no batches: zeros, not NaN.
        let f = Stats::default().fields(true, Duration::ZERO, None);
        assert_eq!(get(&f, field::FPS), Value::F64(0.0));
        assert_eq!(get(&f, field::INFERENCE_MS_PER_BATCH), Value::F64(0.0));
        // Every field name once.
        let mut names: Vec<&str> = f.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), f.len());
    }

    #[test]
    fn reports_come_once_a_second_of_stream_time() {
        let mut r = Reporter::default();
        let t = Instant::now();
        let s = |frames| Stats {
            frames,
            ..Default::default()
        };
        let frames_of = |f: Option<Vec<(&str, Value)>>| f.map(|f| get(&f, field::FRAMES));
        let fps_of = |f: Option<Vec<(&str, Value)>>| f.map(|f| get(&f, field::FPS));
        assert_eq!(
            r.frame(0, t, &s(1)),
            None,
            "the first frame starts the clock"
        );
        assert_eq!(r.frame(500_000_000, t, &s(2)), None);
        let sec = Duration::from_secs(1);
        // 2 frames in the second since the first report.
        assert_eq!(
            fps_of(r.frame(1_000_000_000, t + sec, &s(3))),
            Some(Value::F64(2.0))
        );
        assert_eq!(r.frame(1_999_999_999, t + sec, &s(4)), None);
        assert_eq!(
            frames_of(r.frame(2_000_000_000, t + 2 * sec, &s(5))),
            Some(Value::U64(5))
        );
        // Time going backwards (a new segment) reports at once.
        assert!(r.frame(0, t + 2 * sec, &s(6)).is_some());
        // Near the end of the clock's range: no overflow (a second later saturates, so every
        // frame there is due).
        assert!(r.frame(u64::MAX - 1, t + 3 * sec, &s(7)).is_some());
        assert!(r.frame(u64::MAX, t + 3 * sec, &s(8)).is_some());
    }

    #[test]
    fn the_throttle_reports_the_first_then_once_per_interval_with_the_count() {
        let t = Instant::now();
        let sec = Duration::from_secs(1);
        let mut th = Throttle::new(sec);
        assert_eq!(th.add(3, t), Some(3));
        assert_eq!(th.add(2, t + sec / 2), None);
        assert_eq!(th.add(4, t + sec / 2), None);
        assert_eq!(th.add(1, t + sec), Some(7));
        assert_eq!(th.add(1, t + 3 * sec), Some(1));
    }
}
