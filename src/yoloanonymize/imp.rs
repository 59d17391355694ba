//! # yoloanonymize
//!
//! Finds people with YOLO pose inference (ONNX Runtime, on its own thread) and redacts their eyes,
//! faces or bodies in place.
//!
//! ```text
//! gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! yoloanonymize targets=eyes+face method=blur ! x264enc ! mp4mux ! filesink location=out.mp4
//! ```
//!
//! This file is the GStreamer glue only: properties (`settings.rs`), caps, events and queries,
//! mapping buffers, handing batches to the inference worker and back, redacting, metas, pushing.
//! What to do with frames is decided by the pure modules: the batch state machine and the failure
//! policy ([`crate::batcher`]), tracking ([`crate::temporal`]), regions ([`crate::regions`]),
//! redaction ([`crate::redact`]), statistics ([`crate::stats`]) and the audit trail
//! ([`crate::audit`]).
//!
//! Lock discipline: the state lock is never held while a message is posted (an application's
//! synchronous bus handler runs on the streaming thread and may read any property): messages are
//! collected in an [`Outbox`] and posted after the guard is dropped. The `provider` property has a
//! lock of its own.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::base_transform::GenerateOutputSuccess;
use gst_base::subclass::prelude::*;
use once_cell::sync::OnceCell;
use parking_lot::Mutex;

use super::input;
use super::loading::{self, MAX_IN_FLIGHT};
use super::outbox::{Outbox, stats_structure};
use super::settings::{self, Applied, Live, Settings};
use super::state::{InFrame, State};
use super::video::{
    self, Video, add_metas, caps_advice, frame_mut, is_raw_system, pixel_format, template_caps,
};
use super::{CAT, Detectors, OnFailure};
use crate::audit::AuditFile;
use crate::batcher::{Completion, Held, Plan, Resolved};
use crate::detection::Detection;
use crate::engine::Provider;
use crate::frame::PixelRect;
use crate::preprocess::Letterbox;
use crate::redact::{self};
use crate::regions::{self, RegionKind};
use crate::temporal::Tracked;
use crate::worker::{Fault, JobResult, Worker};

/// Directory of the loaded plugin file, searched first for `libonnxruntime.so`.
pub(crate) static PLUGIN_DIR: OnceCell<PathBuf> = OnceCell::new();

/// What the results loop does next.
enum Step {
    Done,
    /// Wait for the worker (until the deadline, on a live stream).
    Wait(Arc<Worker>, Option<Instant>),
}

#[derive(Default)]
pub struct YoloAnonymize {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// The execution provider in use: readable from any thread, never held while posting.
    provider: Mutex<Option<Provider>>,
}

#[glib::object_subclass]
impl ObjectSubclass for YoloAnonymize {
    const NAME: &'static str = "GstYoloAnonymize";
    type Type = super::YoloAnonymize;
    type ParentType = gst_base::BaseTransform;
}

impl YoloAnonymize {
    /// Runs `f` on the state with its lock held, then posts what it queued.
    fn with_state<T>(
        &self,
        f: impl FnOnce(&mut State, &mut Outbox) -> Result<T, gst::FlowError>,
    ) -> Result<T, gst::FlowError> {
        let mut out = Outbox::new(&*self.obj());
        let r = match self.state.lock().as_mut() {
            Some(state) => f(state, &mut out),
            None => Err(gst::FlowError::Flushing),
        };
        out.post();
        r
    }

    /// Test hook: makes the inference thread fail, panic or stall (see [`Fault`]).
    pub(super) fn set_fault(&self, fault: Option<Fault>) {
        self.settings.lock().fault = fault;
    }

    /// Holds `buffer`, preprocessing it into the batch input when the model analyses it; hands
    /// the batch to the worker when full (or, live, when its oldest frame waited half the
    /// latency budget).
    fn collect(
        &self,
        st: &mut State,
        buffer: gst::Buffer,
        live: &Live,
        out: &mut Outbox,
    ) -> Result<(), gst::FlowError> {
        let Some(video) = st.video.as_ref() else {
            let text = "Received a buffer before caps were negotiated";
            let _ = out.error(gst::CoreError::Negotiation, text, None);
            return Err(gst::FlowError::NotNegotiated);
        };
        let now = Instant::now();
        if st.worker.is_none() {
            // No model: every frame is a failure, handled at once under the on-failure policy.
            let why = st.failure.clone().unwrap_or_default();
            let frames = vec![Held {
                frame: InFrame { buffer, cut: false },
                analyse: false,
                arrived: now,
            }];
            let outcome = Err(why);
            return self.apply(
                st,
                Resolved {
                    frames,
                    outcome,
                    late: false,
                },
                live,
                out,
            );
        }
        let (width, height) = (video.info.width(), video.info.height());
        let full = st.hold(buffer, now, live).map_err(|()| {
            let text = format!("Failed to map a {width}x{height} frame for reading");
            out.error(gst::StreamError::Failed, &text, None)
        })?;
        let overdue = st.is_live()
            && st
                .batcher
                .collecting_since()
                .is_some_and(|t| now.saturating_duration_since(t) >= st.max_latency() / 2);
        if full || overdue {
            if overdue {
                gst::debug!(
                    CAT,
                    imp = self,
                    "Batch timeout: {}",
                    st.batcher.collecting()
                );
            }
            self.dispatch(st, live, out)?;
        }
        Ok(())
    }

    /// Sends the collected frames to the worker. On a live stream the worker's queue is never
    /// waited on: a batch it cannot take now would be late, so it is handled as a failure.
    fn dispatch(
        &self,
        st: &mut State,
        live: &Live,
        out: &mut Outbox,
    ) -> Result<(), gst::FlowError> {
        let (Some(worker), Some(_)) = (st.worker.clone(), st.video.as_ref()) else {
            return Ok(());
        };
        let Some(batch) = st.batcher.take_batch() else {
            return Ok(());
        };
        let id = batch.id;
        let job = st
            .job(batch, live)
            .expect("a batch is only held with negotiated caps");
        let sent = if st.is_live() {
            worker.try_submit(job)
        } else {
            worker.submit(job).map(|()| true)
        };
        match sent {
            Ok(true) => Ok(()),
            Ok(false) => {
                let why = "inference fell behind the live stream".to_string();
                st.batcher.refuse(id, why);
                self.resolve(st, live, out)
            }
            Err(e) => Err(out.error(gst::LibraryError::Failed, &e, None)),
        }
    }

    /// Records a worker result on its batch, then lets out every batch that can leave.
    fn finish(
        &self,
        st: &mut State,
        result: JobResult,
        live: &Live,
        out: &mut Outbox,
    ) -> Result<(), gst::FlowError> {
        let (id, detections) = st.take_result(result, live);
        if st.batcher.complete(id, detections) == Completion::Dropped {
            gst::debug!(CAT, imp = self, "Dropping the result of batch {id}");
        }
        self.resolve(st, live, out)
    }

    /// Applies, in order, every batch whose outcome is known.
    fn resolve(&self, st: &mut State, live: &Live, out: &mut Outbox) -> Result<(), gst::FlowError> {
        while let Some(r) = st.batcher.pop_resolved() {
            self.apply(st, r, live, out)?;
        }
        Ok(())
    }

    /// Redacts a batch's frames from its detections, or under the on-failure policy when it
    /// could not be analysed, and moves them to `ready`.
    fn apply(
        &self,
        st: &mut State,
        batch: Resolved<InFrame, Vec<Detection>>,
        live: &Live,
        out: &mut Outbox,
    ) -> Result<(), gst::FlowError> {
        let plan = Plan::for_outcome(&batch.outcome, st.frozen.on_failure.into());
        let n = batch.frames.len() as u64;
        if batch.late {
            st.stats.frames_late += n;
        }
        match &plan {
            Plan::Error(why) => {
                let text = format!("Could not analyse {n} frames: {why}");
                let debug = "on-failure=error stops the pipeline; on-failure=redact-frame pixelates such frames instead";
                return Err(out.error(gst::LibraryError::Failed, &text, Some(debug)));
            }
            Plan::WholeFrame(_) | Plan::Passthrough(_) => {
                if let Some(text) = st.count_failure(&plan, n) {
                    out.warning(gst::LibraryError::Failed, &text);
                }
            }
            Plan::Regions => {}
        }
        let t0 = Instant::now();
        // What the model saw, per frame: its detections, or None where it did not run (or could
        // not: then every frame follows the plan).
        let observations = match batch.outcome {
            Ok(o) => o,
            Err(_) => vec![None; batch.frames.len()],
        };
        let cuts: Vec<bool> = batch.frames.iter().map(|h| h.frame.cut).collect();
        st.stats.scene_cuts += cuts.iter().filter(|c| **c).count() as u64;
        let tracked = st
            .tracker
            .process_batch(&observations, &cuts, &live.temporal_params());
        for ((held, people), seen) in batch.frames.into_iter().zip(&tracked).zip(&observations) {
            st.stats.frames += 1;
            st.stats.people += seen.as_ref().map_or(0, Vec::len) as u64;
            let buffer = self.redact_frame(st, held.frame.buffer, people, &plan, live, out)?;
            if let Some(pts) = buffer.pts()
                && let Some(fields) = st.reporter.frame(pts.nseconds(), Instant::now(), &st.stats)
            {
                out.stats(fields);
            }
            st.ready.push_back(buffer);
        }
        st.stats.redact += t0.elapsed();
        Ok(())
    }

    /// Redacts one frame (its people's regions, or all of it), tags it and writes its audit
    /// record.
    fn redact_frame(
        &self,
        st: &mut State,
        mut buffer: gst::Buffer,
        people: &[Tracked],
        plan: &Plan,
        live: &Live,
        out: &mut Outbox,
    ) -> Result<gst::Buffer, gst::FlowError> {
        let video = st.video.as_ref().ok_or(gst::FlowError::NotNegotiated)?;
        let (width, height) = (video.info.width(), video.info.height());
        st.regions.clear();
        if *plan == Plan::Regions {
            let pad = regions::network_pad(st.pad_net, video.lb.scale);
            regions::frame_regions(people, &live.region_params(pad), &mut st.regions);
        }
        let pixels: Vec<(RegionKind, PixelRect, f32)> = st
            .regions
            .iter()
            .map(|r| {
                (
                    r.kind,
                    r.rect.to_pixels(width as usize, height as usize),
                    r.score,
                )
            })
            .filter(|(_, px, _)| !px.is_empty())
            .collect();
        let whole = match plan {
            Plan::WholeFrame(why) => Some(why.as_str()),
            _ => None,
        };
        if whole.is_some() || !pixels.is_empty() {
            let buf = buffer.make_mut();
            let Ok(mut vf) = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &video.info)
            else {
                let text = "Failed to map a frame for writing";
                return Err(out.error(gst::StreamError::Failed, text, None));
            };
            let mut frame = frame_mut(&mut vf, video.format);
            if whole.is_some() {
                redact::redact_whole_frame(&mut frame, &mut st.scratch);
            } else {
                let xp = live.redact_params();
                for (_, px, _) in &pixels {
                    redact::redact_region(&mut frame, *px, &xp, &mut st.scratch);
                }
            }
            drop(vf);
            add_metas(buffer.make_mut(), whole, &pixels, width, height);
        }
        st.stats.regions += pixels.len() as u64;
        gst::trace!(
            CAT,
            imp = self,
            "Frame {:?}: {} covered, {} regions",
            buffer.pts(),
            people.len(),
            pixels.len()
        );
        self.audit_frame(st, &buffer, plan, &pixels, people, out)?;
        st.out_frames += 1;
        Ok(buffer)
    }

    /// Writes the frame's audit record; a write error loses records, which is an error under
    /// on-failure=error and a warning (every time, with the count) otherwise.
    fn audit_frame(
        &self,
        st: &mut State,
        buffer: &gst::Buffer,
        plan: &Plan,
        pixels: &[(RegionKind, PixelRect, f32)],
        people: &[Tracked],
        out: &mut Outbox,
    ) -> Result<(), gst::FlowError> {
        match st.audit_record(buffer.pts().map(|t| t.nseconds()), plan, pixels, people) {
            Ok(()) => Ok(()),
            Err((path, e)) => self.audit_lost(st, &path, &e.to_string(), e.lost, out),
        }
    }

    fn audit_lost(
        &self,
        st: &mut State,
        path: &str,
        what: &str,
        lost: u64,
        out: &mut Outbox,
    ) -> Result<(), gst::FlowError> {
        st.stats.audit_records_lost += lost;
        let text = format!("Cannot write to detections-file '{path}': {what}");
        if st.frozen.on_failure == OnFailure::Error {
            return Err(out.error(gst::ResourceError::Write, &text, None));
        }
        let total = st.stats.audit_records_lost;
        let text = format!("{text} ({total} records lost so far; the video goes on)");
        out.warning(gst::ResourceError::Write, &text);
        Ok(())
    }

    /// Takes finished results without waiting; on a live stream, lets out every batch whose
    /// oldest frame reached its deadline; then waits while more than `keep` batches are in
    /// flight. The state lock is released while waiting.
    fn collect_results(&self, keep: usize, live: &Live) -> Result<(), gst::FlowError> {
        loop {
            let (worker, deadline) =
                match self.with_state(|st, out| self.results(st, keep, live, out))? {
                    Step::Done => return Ok(()),
                    Step::Wait(w, d) => (w, d),
                };
            let t0 = Instant::now();
            let received = match deadline {
                Some(d) => match worker.recv_timeout(d.saturating_duration_since(t0)) {
                    Ok(r) => r,
                    Err(true) => continue,
                    Err(false) => None,
                },
                None => worker.recv(),
            };
            let waited = t0.elapsed();
            self.with_state(|st, out| {
                st.stats.wait += waited;
                match received {
                    Some(r) => self.finish(st, r, live, out),
                    None => {
                        let text = "The inference thread stopped";
                        Err(out.error(gst::LibraryError::Failed, text, None))
                    }
                }
            })?;
        }
    }

    /// One step of [`collect_results`](Self::collect_results), with the lock held.
    fn results(
        &self,
        st: &mut State,
        keep: usize,
        live: &Live,
        out: &mut Outbox,
    ) -> Result<Step, gst::FlowError> {
        let Some(worker) = st.worker.clone() else {
            return Ok(Step::Done);
        };
        loop {
            match worker.try_recv() {
                Ok(Some(r)) => self.finish(st, r, live, out)?,
                Ok(None) => break,
                Err(e) => return Err(out.error(gst::LibraryError::Failed, &e, None)),
            }
        }
        let max_latency = st.max_latency();
        // Deadlines are checked when frames arrive (and while waiting for the worker), so a
        // batch leaves one frame early rather than up to one frame late.
        let cutoff = max_latency.saturating_sub(st.frame_duration());
        if st.is_live() {
            let why = format!(
                "inference did not finish within max-latency ({} ms) on a live stream",
                max_latency.as_millis()
            );
            if st.batcher.expire(Instant::now(), cutoff, &why) > 0 {
                self.resolve(st, live, out)?;
            }
        }
        let limit = if st.is_live() && keep > 0 {
            usize::MAX
        } else {
            keep
        };
        if st.batcher.pending() <= limit {
            return Ok(Step::Done);
        }
        let deadline = st.is_live().then(|| st.batcher.next_deadline(cutoff));
        Ok(Step::Wait(worker, deadline.flatten()))
    }

    /// Sends the partial batch to the worker and waits for every batch to come back (on a live
    /// stream, at most until their deadlines).
    fn drain(&self, live: &Live) -> Result<(), gst::FlowError> {
        let busy = self.with_state(|st, out| {
            if st.batcher.is_empty() {
                return Ok(false);
            }
            gst::debug!(
                CAT,
                imp = self,
                "Draining {} collected frames and {} batches",
                st.batcher.collecting(),
                st.batcher.pending()
            );
            self.dispatch(st, live, out)?;
            Ok(true)
        });
        match busy {
            Ok(true) => self.collect_results(0, live),
            Ok(false) | Err(gst::FlowError::Flushing) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Drains and pushes every held frame downstream (before a serialized event passes).
    fn drain_and_push(&self) -> Result<(), gst::FlowError> {
        let live = self.settings.lock().live;
        self.drain(&live)?;
        let ready: Vec<gst::Buffer> = match self.state.lock().as_mut() {
            Some(s) => s.ready.drain(..).collect(),
            None => return Ok(()),
        };
        let src = self.obj().static_pad("src").expect("src pad");
        for b in ready {
            src.push(b)?;
        }
        Ok(())
    }

    /// Asks upstream whether the stream is live (once per stream).
    fn query_live(&self) -> bool {
        let mut q = gst::query::Latency::new();
        let sink = self.obj().static_pad("sink").expect("sink pad");
        sink.peer_query(&mut q) && q.result().0
    }

    /// At EOS: completes the audit trail and queues the final statistics.
    fn at_eos(&self, st: &mut State, out: &mut Outbox) {
        for (fatal, text) in st.complete_audit() {
            if fatal && st.frozen.on_failure == OnFailure::Error {
                let _ = out.error(gst::ResourceError::Write, &text, None);
            } else {
                out.warning(gst::ResourceError::Write, &text);
            }
        }
        let fields = st.stats.fields(true, st.started.elapsed(), None);
        let structure = stats_structure(fields);
        gst::info!(CAT, imp = self, "At EOS: {structure}");
        out.element(structure);
    }
}

impl ObjectImpl for YoloAnonymize {
    fn properties() -> &'static [glib::ParamSpec] {
        settings::properties()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let name = pspec.name();
        let restart_only = !pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_PLAYING);
        if restart_only && self.state.lock().is_some() {
            // GStreamer's mutable-ready semantics, enforced: the running element keeps the value
            // it started with, so taking a new one now would be a lie.
            let text = format!(
                "{name} can only be changed in the NULL or READY state: it is read when the element starts; the new value is ignored (set it before starting, or set the element to READY first)"
            );
            let mut out = Outbox::new(&*self.obj());
            out.warning(gst::LibraryError::Settings, &text);
            out.post();
            return;
        }
        let applied = self.settings.lock().set(name, value);
        if let Applied::Adjusted(note) = applied {
            gst::warning!(CAT, imp = self, "{note}");
        }
        gst::debug!(CAT, imp = self, "Set {name} to {value:?}");
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "provider" {
            let provider = *self.provider.lock();
            return provider
                .map(|p| p.to_string())
                .unwrap_or_default()
                .to_value();
        }
        self.settings.lock().get(pspec.name())
    }
}

impl GstObjectImpl for YoloAnonymize {}

impl ElementImpl for YoloAnonymize {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "YOLO pose anonymizer",
                "Filter/Effect/Video",
                "Finds people with YOLO pose inference (ONNX Runtime) and blurs, pixelates or fills their eyes, faces or bodies in place",
                "yoloanonymize developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = template_caps();
            [gst::PadDirection::Src, gst::PadDirection::Sink]
                .into_iter()
                .map(|dir| {
                    let name = if dir == gst::PadDirection::Src {
                        "src"
                    } else {
                        "sink"
                    };
                    gst::PadTemplate::new(name, dir, gst::PadPresence::Always, &caps)
                        .expect("valid pad template")
                })
                .collect()
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for YoloAnonymize {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().clone();
        let audit = match &settings.detections_file {
            Some(p) => Some(
                AuditFile::create(p)
                    .map_err(|e| gst::error_msg!(gst::ResourceError::OpenWrite, ("{}", e)))?,
            ),
            None => None,
        };
        let mut out = Outbox::new(&*self.obj());
        let loaded = match loading::load(&self.obj(), &settings, &mut out) {
            Ok(l) => l,
            Err(e) => {
                out.post();
                return Err(e);
            }
        };
        // Which execution provider took the session (or none), for applications and logs: the
        // property first, so that a handler of the message can read it.
        *self.provider.lock() = loaded.info.provider;
        out.element(loading::provider_structure(&settings.device, &loaded));
        *self.state.lock() = Some(State::new(settings, loaded, audit));
        out.post();
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = self.state.lock().take();
        *self.provider.lock() = None;
        let Some(mut st) = state else {
            return Ok(());
        };
        gst::info!(CAT, imp = self, "Stopped: {:?}", st.stats);
        let mut out = Outbox::new(&*self.obj());
        if let Some(text) = st.abandon_audit() {
            out.warning(gst::ResourceError::Write, &text);
        }
        drop(st);
        out.post();
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "Cannot parse video caps {incaps}"))?;
        let format = pixel_format(info.format())
            .ok_or_else(|| gst::loggable_error!(CAT, "Unsupported format {:?}", info.format()))?;
        let mut guard = self.state.lock();
        let st = guard
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "Caps set before start"))?;
        let (w, h) = (info.width() as usize, info.height() as usize);
        let lb = match st.fixed_hw {
            Some((fh, fw)) => Letterbox::fixed(w, h, fw, fh),
            None => Letterbox::new(w, h, st.frozen.input_size as usize),
        };
        if st.batcher.collecting() > 0 {
            // Only reachable if caps change without a CAPS event; those frames were preprocessed
            // for the old size, so analyse them as they are.
            gst::warning!(CAT, imp = self, "Caps changed with frames held");
        }
        gst::debug!(
            CAT,
            imp = self,
            "Caps {incaps}: {w}x{h} {format:?}, network input {}x{}",
            lb.net_w,
            lb.net_h
        );
        let face_lb = st
            .frozen
            .detectors
            .contains(Detectors::FACE)
            .then(|| input::face_letterbox(w, h, st.frozen.face_scale));
        if let Some(f) = &face_lb {
            gst::debug!(CAT, imp = self, "Face input {}x{}", f.net_w, f.net_h);
        }
        st.tracker.reset();
        st.cuts.reset();
        st.face_phase = 0;
        st.video = Some(Video {
            info,
            format,
            lb,
            face_lb,
        });
        Ok(())
    }

    fn submit_input_buffer(
        &self,
        is_discont: bool,
        inbuf: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let live = self.settings.lock().live;
        // Only the buffer's own flag: the base class's `is_discont` stays set after the first
        // DISCONT buffer when generate_output is overridden, and would drain every frame.
        let _ = is_discont;
        if inbuf.flags().contains(gst::BufferFlags::DISCONT) {
            gst::debug!(CAT, imp = self, "Discontinuity at {:?}", inbuf.pts());
            self.drain(&live)?;
        }
        if self.state.lock().as_ref().is_some_and(|s| s.live.is_none()) {
            let is_live = self.query_live();
            gst::debug!(CAT, imp = self, "Upstream is live: {is_live}");
            if let Some(s) = self.state.lock().as_mut() {
                s.live = Some(is_live);
            }
        }
        gst::trace!(CAT, imp = self, "Frame {:?} in", inbuf.pts());
        self.with_state(|st, out| self.collect(st, inbuf, &live, out))?;
        self.collect_results(MAX_IN_FLIGHT, &live)?;
        Ok(gst::FlowSuccess::Ok)
    }

    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        let mut guard = self.state.lock();
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        Ok(match state.ready.pop_front() {
            Some(b) => GenerateOutputSuccess::Buffer(b),
            None => GenerateOutputSuccess::NoOutput,
        })
    }

    /// Lets any fixed raw-video caps in system memory through to `sink_event`, which rejects an
    /// unsupported format with an error that says what to do.
    fn accept_caps(&self, direction: gst::PadDirection, caps: &gst::Caps) -> bool {
        if direction == gst::PadDirection::Sink && caps.is_fixed() && is_raw_system(caps) {
            return true;
        }
        self.parent_accept_caps(direction, caps)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        use gst::EventView;
        gst::log!(CAT, imp = self, "Event {:?}", event.type_());
        match event.view() {
            EventView::FlushStop(_) => {
                if let Some(st) = self.state.lock().as_mut() {
                    let dropped = st.batcher.flush() + st.ready.len();
                    gst::debug!(CAT, imp = self, "Flush: dropping {dropped} held frames");
                    st.ready.clear();
                    st.tracker.reset();
                    st.cuts.reset();
                    st.face_phase = 0;
                    st.live = None;
                }
            }
            EventView::Caps(c) => {
                let caps = c.caps();
                if !caps.can_intersect(&template_caps()) {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Negotiation,
                        ("yoloanonymize cannot handle caps {}", caps),
                        ["{}", caps_advice()]
                    );
                    return false;
                }
                if let Err(e) = self.drain_and_push() {
                    gst::debug!(CAT, imp = self, "Draining before caps: {e:?}");
                }
            }
            EventView::Eos(_)
            | EventView::Segment(_)
            | EventView::Gap(_)
            | EventView::StreamStart(_)
            | EventView::SegmentDone(_) => {
                if let Err(e) = self.drain_and_push() {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "Draining before {:?}: {e:?}",
                        event.type_()
                    );
                    if e == gst::FlowError::Error {
                        return false;
                    }
                }
                if event.type_() == gst::EventType::Eos {
                    let _ = self.with_state(|st, out| {
                        self.at_eos(st, out);
                        Ok(())
                    });
                }
            }
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        match query.view_mut() {
            gst::QueryViewMut::Latency(q) if direction == gst::PadDirection::Src => {
                self.latency_query(q)
            }
            gst::QueryViewMut::Caps(q) => {
                let filter = q.filter_owned();
                if !BaseTransformImplExt::parent_query(self, direction, q.query_mut()) {
                    return false;
                }
                // Raw video in a format the element does not take is answered too, so that
                // linking (gst-launch-1.0 ... ! video/x-raw,format=GRAY8 ! yoloanonymize)
                // succeeds and the caps event then fails with the element's advice, instead of
                // GStreamer's bare "could not link". Negotiation never picks such a format when
                // a supported one fits: without a filter (a link check) the supported formats
                // come first; with a filter (negotiation) the others only when none fits.
                let result = q.result_owned().unwrap_or_else(gst::Caps::new_empty);
                let answer = match filter {
                    None => {
                        let mut all = result;
                        all.make_mut().append(video::other_raw_formats());
                        all
                    }
                    Some(f) if result.is_empty() && is_raw_system(&f) => {
                        gst::warning!(CAT, imp = self, "Cannot take {f}: {}", caps_advice());
                        f
                    }
                    Some(_) => result,
                };
                q.set_result(&answer);
                true
            }
            _ => BaseTransformImplExt::parent_query(self, direction, query),
        }
    }
}

impl YoloAnonymize {
    /// Adds the time frames are held to upstream's latency (saturating: no value wraps).
    fn latency_query(&self, q: &mut gst::query::Latency) -> bool {
        if !BaseTransformImplExt::parent_query(self, gst::PadDirection::Src, q.query_mut()) {
            return false;
        }
        let (live, min, max) = q.result();
        let held = self
            .state
            .lock()
            .as_ref()
            .map_or(gst::ClockTime::ZERO, |st| st.held(live));
        gst::debug!(
            CAT,
            imp = self,
            "Latency: upstream {min} / {max:?} (live {live}), holding up to {held}"
        );
        q.set(
            live,
            min.saturating_add(held),
            max.map(|m| m.saturating_add(held)),
        );
        true
    }
}
