//! # yoloanonymize
//!
//! Finds people with YOLO pose inference (ONNX Runtime, on its own thread) and redacts their eyes,
//! faces or bodies in place.
//!
//! ```text
//! gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! yoloanonymize targets=eyes+face method=blur ! x264enc ! mp4mux ! filesink location=out.mp4
//! ```
//!
//! Frames are held until `batch-size` of them have arrived (or EOS, a caps change, a segment or a
//! discontinuity forces the partial batch out), preprocessed as they arrive, and analysed by the
//! worker while the next batch is collected. Every frame leaves, in order, with its timestamps. A
//! frame that could not be analysed leaves fully pixelated and the element posts a warning.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::base_transform::GenerateOutputSuccess;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use once_cell::sync::OnceCell;
use parking_lot::Mutex;

use super::{Method, OnFailure, Targets};
use crate::audit;
use crate::decode::Detection;
use crate::engine::{Device, Engine, EngineConfig, EngineError};
use crate::frame::{FrameMut, FrameRef, PixelFormat, PixelRect};
use crate::preprocess::{Letterbox, Preprocessor};
use crate::redact::{self, RedactParams, Scratch};
use crate::regions::{Region, RegionKind, RegionParams, regions_for};
use crate::temporal::{TemporalParams, Tracker};
use crate::worker::{Fault, Faulty, Job, JobResult, Server, ServerInfo, Worker};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "yoloanonymize",
        gst::DebugColorFlags::empty(),
        Some("YOLO pose anonymizer"),
    )
});

/// Directory of the loaded plugin file, searched first for `libonnxruntime.so`.
pub(crate) static PLUGIN_DIR: OnceCell<PathBuf> = OnceCell::new();

const DEFAULT_BATCH_SIZE: u32 = 4;
const DEFAULT_DEVICE: &str = "auto";
const DEFAULT_THREADS: u32 = 0;
const DEFAULT_CONF_THRESHOLD: f64 = 0.25;
const DEFAULT_IOU_THRESHOLD: f64 = 0.7;
const DEFAULT_KEYPOINT_THRESHOLD: f64 = 0.5;
const DEFAULT_INPUT_SIZE: u32 = 640;
const DEFAULT_MARGIN: f64 = 0.15;
const DEFAULT_PIXEL_SIZE: u32 = 0;
const DEFAULT_FILL_COLOR: u32 = 0x000000;
const DEFAULT_HOLD_FRAMES: u32 = 8;
const DEFAULT_DETECT_INTERVAL: u32 = 1;
const DEFAULT_SHARED_WORKER: &str = "auto";
const DEFAULT_OPENVINO_BF16: bool = true;
/// Network pixels added around every region when the model runs in reduced precision.
const REDUCED_PRECISION_PAD: f32 = 2.0;
/// Batches handed to the worker and not yet returned, beyond the one being collected.
const MAX_IN_FLIGHT: usize = 1;

#[derive(Debug, Clone)]
struct Settings {
    model: PathBuf,
    batch_size: u32,
    device: String,
    threads: u32,
    conf_threshold: f64,
    iou_threshold: f64,
    keypoint_threshold: f64,
    input_size: u32,
    targets: Targets,
    method: Method,
    margin: f64,
    pixel_size: u32,
    fill_color: u32,
    detections_file: Option<PathBuf>,
    hold_frames: u32,
    detect_interval: u32,
    on_failure: OnFailure,
    /// Nanoseconds; 0 = automatic.
    max_latency: u64,
    /// `auto`, `none` or a name (see the property).
    shared_worker: String,
    half_precision: bool,
    openvino_bf16: bool,
    fault: Option<Fault>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model: crate::default_model_path(),
            batch_size: DEFAULT_BATCH_SIZE,
            device: DEFAULT_DEVICE.into(),
            threads: DEFAULT_THREADS,
            conf_threshold: DEFAULT_CONF_THRESHOLD,
            iou_threshold: DEFAULT_IOU_THRESHOLD,
            keypoint_threshold: DEFAULT_KEYPOINT_THRESHOLD,
            input_size: DEFAULT_INPUT_SIZE,
            targets: Targets::EYES,
            method: Method::Blur,
            margin: DEFAULT_MARGIN,
            pixel_size: DEFAULT_PIXEL_SIZE,
            fill_color: DEFAULT_FILL_COLOR,
            detections_file: None,
            hold_frames: DEFAULT_HOLD_FRAMES,
            detect_interval: DEFAULT_DETECT_INTERVAL,
            on_failure: OnFailure::RedactFrame,
            max_latency: 0,
            shared_worker: DEFAULT_SHARED_WORKER.into(),
            half_precision: false,
            openvino_bf16: DEFAULT_OPENVINO_BF16,
            fault: None,
        }
    }
}

impl Settings {
    fn region_params(&self) -> RegionParams {
        RegionParams {
            targets: self.targets.bits(),
            margin: self.margin as f32,
            keypoint_threshold: self.keypoint_threshold as f32,
            pad: 0.0,
        }
    }

    fn temporal_params(&self) -> TemporalParams {
        TemporalParams {
            hold_frames: self.hold_frames,
            ..TemporalParams::default()
        }
    }

    fn redact_params(&self) -> RedactParams {
        let c = self.fill_color;
        RedactParams {
            method: self.method.into(),
            pixel_size: self.pixel_size,
            fill_rgb: [(c >> 16) as u8, (c >> 8) as u8, c as u8],
        }
    }
}

/// A frame the element holds.
struct Held {
    buffer: gst::Buffer,
    /// Whether the model analyses it (`detect-interval`).
    analyse: bool,
    arrived: Instant,
}

/// A batch handed to the worker, waiting for its detections. Batches leave strictly in order:
/// one whose outcome is known waits for the older ones.
struct Pending {
    id: u64,
    frames: Vec<Held>,
    /// The detections, or why the batch could not be analysed; `None` while the worker has it.
    outcome: Option<Result<Vec<Vec<Detection>>, String>>,
}

/// What exists between `start` and `stop`.
struct State {
    /// The inference thread; `None` when the model could not be loaded and on-failure let the
    /// element start anyway (`failure` says why).
    worker: Option<Arc<Worker>>,
    failure: Option<String>,
    /// Whether upstream is live, asked on the first buffer.
    live: Option<bool>,
    last_warning: Option<Instant>,
    /// Failed frames not yet reported in a warning.
    unwarned: u64,
    /// Fixed network size, when the model has one.
    fixed_hw: Option<(usize, usize)>,
    /// The most images the model takes at once, when fixed.
    fixed_batch: Option<usize>,
    provider: String,
    /// The model runs in reduced precision (bfloat16 on OpenVINO, float16 on CUDA): regions are
    /// padded (see `REDUCED_PRECISION_PAD`).
    reduced_precision: bool,
    /// Negotiated input, set by `set_caps`.
    video: Option<(gst_video::VideoInfo, PixelFormat, Letterbox)>,
    /// Frames of the batch being collected; those to analyse are already written into `tensor`.
    collecting: Vec<Held>,
    /// Frames seen since start or the last flush (for `detect-interval`).
    seen: u64,
    tracker: Tracker,
    tensor: Vec<f32>,
    spare_tensors: Vec<Vec<f32>>,
    pending: VecDeque<Pending>,
    /// Processed frames waiting to leave through `generate_output`.
    ready: VecDeque<gst::Buffer>,
    next_id: u64,
    preprocessor: Preprocessor,
    scratch: Scratch,
    regions: Vec<Region>,
    stats: Stats,
    /// The `detections-file` audit trail, and the index of the next frame to leave.
    audit: Option<std::io::BufWriter<std::fs::File>>,
    out_frames: u64,
    /// Periodic statistics: stream time of the last report, and the totals and time then.
    last_report_pts: Option<gst::ClockTime>,
    report_start: Instant,
    report_base: Option<Stats>,
    started: Instant,
}

/// Totals since start, posted as the `yoloanonymize-stats` element message at EOS.
#[derive(Debug, Default, Clone)]
struct Stats {
    frames: u64,
    batches: u64,
    /// Frames the model ran on.
    analysed: u64,
    people: u64,
    regions: u64,
    frames_whole: u64,
    /// Frames let out untouched under on-failure=passthrough.
    frames_passed_unanalysed: u64,
    /// Frames let out at their live deadline before the model had analysed them.
    frames_late: u64,
    preprocess: Duration,
    inference: Duration,
    decode: Duration,
    redact: Duration,
    /// Time the streaming thread spent waiting for the inference thread.
    wait: Duration,
    /// Batches that ran together with other streams' batches (shared worker).
    batches_merged: u64,
}

impl Stats {
    /// The totals, plus rates over the interval since `base` was taken `elapsed` ago.
    fn structure(&self, eos: bool, elapsed: Duration, base: Option<&Stats>) -> gst::Structure {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let zero = Stats::default();
        let base = base.unwrap_or(&zero);
        let frames = self.frames - base.frames;
        let batches = self.batches - base.batches;
        let secs = elapsed.as_secs_f64();
        gst::Structure::builder("yoloanonymize-stats")
            .field("eos", eos)
            .field(
                "fps",
                if secs > 0.0 {
                    frames as f64 / secs
                } else {
                    0.0
                },
            )
            .field(
                "inference-ms-per-batch",
                if batches > 0 {
                    ms(self.inference - base.inference) / batches as f64
                } else {
                    0.0
                },
            )
            .field(
                "frames-per-batch",
                if batches > 0 {
                    (self.analysed - base.analysed) as f64 / batches as f64
                } else {
                    0.0
                },
            )
            .field("frames", self.frames)
            .field("analysed", self.analysed)
            .field("batches", self.batches)
            .field("people", self.people)
            .field("regions", self.regions)
            .field("frames-redacted-whole", self.frames_whole)
            .field("frames-passed-unanalysed", self.frames_passed_unanalysed)
            .field("frames-late", self.frames_late)
            .field("preprocess-ms", ms(self.preprocess))
            .field("inference-ms", ms(self.inference))
            .field("decode-ms", ms(self.decode))
            .field("redact-ms", ms(self.redact))
            .field("wait-ms", ms(self.wait))
            .field("batches-merged", self.batches_merged)
            .build()
    }
}

#[derive(Default)]
pub struct YoloAnonymize {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for YoloAnonymize {
    const NAME: &'static str = "GstYoloAnonymize";
    type Type = super::YoloAnonymize;
    type ParentType = gst_base::BaseTransform;
}

fn pixel_format(f: gst_video::VideoFormat) -> Option<PixelFormat> {
    use gst_video::VideoFormat as V;
    Some(match f {
        V::I420 => PixelFormat::I420,
        V::Nv12 => PixelFormat::Nv12,
        V::Rgb => PixelFormat::Rgb,
        V::Bgr => PixelFormat::Bgr,
        V::Rgba => PixelFormat::Rgba,
        V::Bgra => PixelFormat::Bgra,
        V::Rgbx => PixelFormat::Rgbx,
        V::Bgrx => PixelFormat::Bgrx,
        _ => return None,
    })
}

const FORMATS: [gst_video::VideoFormat; 8] = [
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Nv12,
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Bgr,
    gst_video::VideoFormat::Rgba,
    gst_video::VideoFormat::Bgra,
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Bgrx,
];

fn template_caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format_list(FORMATS)
        .build()
}

fn frame_ref<'a>(
    f: &'a gst_video::VideoFrameRef<&gst::BufferRef>,
    format: PixelFormat,
) -> FrameRef<'a> {
    let mut planes: [&[u8]; 3] = [&[], &[], &[]];
    let mut strides = [0usize; 3];
    for p in 0..(f.n_planes() as usize).min(3) {
        planes[p] = f.plane_data(p as u32).unwrap_or(&[]);
        strides[p] = f.plane_stride()[p] as usize;
    }
    FrameRef {
        format,
        width: f.width() as usize,
        height: f.height() as usize,
        planes,
        strides,
    }
}

fn frame_mut<'a>(
    f: &'a mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    format: PixelFormat,
) -> FrameMut<'a> {
    let (width, height) = (f.width() as usize, f.height() as usize);
    let s = f.plane_stride();
    let strides = [
        s[0] as usize,
        s.get(1).copied().unwrap_or(0) as usize,
        s.get(2).copied().unwrap_or(0) as usize,
    ];
    let [p0, p1, p2, _] = f.planes_data_mut();
    FrameMut {
        format,
        width,
        height,
        planes: [p0, p1, p2],
        strides,
    }
}

impl YoloAnonymize {
    fn engine_config(&self, s: &Settings) -> Result<EngineConfig, EngineError> {
        let device = Device::parse(&s.device).map_err(EngineError::Provider)?;
        Ok(EngineConfig {
            model: s.model.clone(),
            device,
            threads: s.threads as usize,
            library_dirs: PLUGIN_DIR.get().cloned().into_iter().collect(),
            half_precision: s.half_precision,
            openvino_bf16: s.openvino_bf16,
        })
    }

    /// Test hook: makes the inference thread fail, panic or stall (see [`Fault`]).
    pub(super) fn set_fault(&self, fault: Option<Fault>) {
        self.settings.lock().fault = fault;
    }

    /// The longest a frame may be held on a live stream.
    fn max_latency(&self, state: &State) -> Duration {
        let s = self.settings.lock();
        if s.max_latency > 0 {
            return Duration::from_nanos(s.max_latency);
        }
        Self::frame_duration(state) * (2 * s.batch_size).max(4)
    }

    /// One frame's duration from the caps (100 ms when the frame rate is unknown).
    fn frame_duration(state: &State) -> Duration {
        state
            .video
            .as_ref()
            .map(|(i, _, _)| i.fps())
            .filter(|f| f.numer() > 0 && f.denom() > 0)
            .map(|f| Duration::from_secs_f64(f.denom() as f64 / f.numer() as f64))
            .unwrap_or(Duration::from_millis(100))
    }

    /// Preprocesses `buffer` into the batch tensor (if the model analyses it) and holds it; hands
    /// the batch to the worker when full.
    fn collect(
        &self,
        state: &mut State,
        buffer: gst::Buffer,
        batch_size: usize,
        detect_interval: u32,
    ) -> Result<(), gst::FlowError> {
        let Some((info, format, lb)) = state.video.as_ref() else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Received a buffer before caps were negotiated")
            );
            return Err(gst::FlowError::NotNegotiated);
        };
        let arrived = Instant::now();
        if state.worker.is_none() {
            // No model: every frame is a failure, handled at once under the on-failure policy.
            let why = state.failure.clone().unwrap_or_default();
            let held = vec![Held {
                buffer,
                analyse: false,
                arrived,
            }];
            return self.apply(state, held, Err(why));
        }
        let analyse = state.seen.is_multiple_of(detect_interval as u64);
        state.seen += 1;
        if !analyse {
            state.collecting.push(Held {
                buffer,
                analyse,
                arrived,
            });
            return Ok(());
        }
        let per = lb.tensor_len();
        let slot = state.collecting.iter().filter(|h| h.analyse).count();
        if state.tensor.len() < (slot + 1) * per {
            state.tensor.resize((slot + 1) * per, 0.0);
        }
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), info)
            .map_err(|_| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    (
                        "Failed to map a {}x{} frame for reading",
                        info.width(),
                        info.height()
                    )
                );
                gst::FlowError::Error
            })?;
        let t0 = Instant::now();
        state.preprocessor.fill_tensor(
            &frame_ref(&frame, *format),
            lb,
            &mut state.tensor[slot * per..(slot + 1) * per],
        );
        drop(frame);
        state.stats.preprocess += t0.elapsed();
        state.collecting.push(Held {
            buffer,
            analyse,
            arrived,
        });
        if slot + 1 >= batch_size {
            self.dispatch(state)?;
        }
        Ok(())
    }

    /// Sends the collected frames to the worker. On a live stream the worker's queue is never
    /// waited on: a batch it cannot take now would be late, so it is handled as a failure.
    fn dispatch(&self, state: &mut State) -> Result<(), gst::FlowError> {
        if state.collecting.is_empty() {
            return Ok(());
        }
        let Some(worker) = state.worker.clone() else {
            return Ok(());
        };
        let (_, _, lb) = state.video.as_ref().ok_or(gst::FlowError::NotNegotiated)?;
        let lb = *lb;
        let n = state.collecting.iter().filter(|h| h.analyse).count();
        let (conf, iou, batch_size) = {
            let s = self.settings.lock();
            (
                s.conf_threshold as f32,
                s.iou_threshold as f32,
                s.batch_size as usize,
            )
        };
        let spare = state.spare_tensors.pop().unwrap_or_default();
        let mut tensor = std::mem::replace(&mut state.tensor, spare);
        tensor.truncate(n * lb.tensor_len());
        let id = state.next_id;
        state.next_id += 1;
        gst::debug!(
            CAT,
            imp = self,
            "Batch {id}: {} frames, {n} to analyse at {}x{}",
            state.collecting.len(),
            lb.net_w,
            lb.net_h
        );
        let frames = std::mem::take(&mut state.collecting);
        let job = Job {
            id,
            tensor,
            shape: [n, 3, lb.net_h, lb.net_w],
            letterbox: lb,
            conf_threshold: conf,
            iou_threshold: iou,
            batch_size,
        };
        let sent = if state.live == Some(true) {
            worker.try_submit(job)
        } else {
            worker.submit(job).map(|()| true)
        };
        match sent {
            Ok(true) => {
                state.pending.push_back(Pending {
                    id,
                    frames,
                    outcome: None,
                });
                Ok(())
            }
            Ok(false) => {
                state.stats.frames_late += frames.len() as u64;
                state.pending.push_back(Pending {
                    id,
                    frames,
                    outcome: Some(Err("inference fell behind the live stream".into())),
                });
                self.resolve(state)
            }
            Err(e) => {
                gst::element_imp_error!(self, gst::LibraryError::Failed, ("{}", e));
                Err(gst::FlowError::Error)
            }
        }
    }

    /// Records a worker result on its batch, then lets out every batch at the front whose
    /// outcome is known. A result whose batch was flushed, or already let out late, is dropped.
    fn finish(&self, state: &mut State, result: JobResult) -> Result<(), gst::FlowError> {
        let JobResult {
            id,
            mut tensor,
            detections,
            infer_time,
            decode_time,
            run_clients,
            ..
        } = result;
        tensor.clear();
        state.spare_tensors.push(tensor);
        gst::debug!(
            CAT,
            imp = self,
            "Batch {id}: inference {infer_time:?}, decode {decode_time:?}"
        );
        state.stats.batches += 1;
        if let Ok(d) = &detections {
            state.stats.analysed += d.len() as u64;
            if run_clients > 1 {
                // Run together with other streams' batches on a shared worker.
                state.stats.batches_merged += 1;
            }
        }
        state.stats.inference += infer_time;
        state.stats.decode += decode_time;
        match state.pending.iter_mut().find(|p| p.id == id) {
            Some(p) if p.outcome.is_none() => p.outcome = Some(detections),
            _ => gst::debug!(CAT, imp = self, "Dropping the result of batch {id}"),
        }
        self.resolve(state)
    }

    /// Applies, in order, every batch at the front of `pending` whose outcome is known.
    fn resolve(&self, state: &mut State) -> Result<(), gst::FlowError> {
        while state.pending.front().is_some_and(|p| p.outcome.is_some()) {
            let p = state.pending.pop_front().expect("front exists");
            self.apply(state, p.frames, p.outcome.expect("checked"))?;
        }
        Ok(())
    }

    /// Redacts a batch's frames from its detections, or under the on-failure policy when it
    /// could not be analysed, and moves them to `ready`.
    fn apply(
        &self,
        state: &mut State,
        frames: Vec<Held>,
        detections: Result<Vec<Vec<Detection>>, String>,
    ) -> Result<(), gst::FlowError> {
        // Copy out what this batch needs, once, without cloning the paths in the settings.
        let (mut rp, xp, tp, on_failure) = {
            let s = self.settings.lock();
            (
                s.region_params(),
                s.redact_params(),
                s.temporal_params(),
                s.on_failure,
            )
        };
        let (info, format, lb) = state.video.clone().ok_or(gst::FlowError::NotNegotiated)?;
        if state.reduced_precision {
            // Reduced precision moves keypoints by up to about a network pixel (measured with
            // OpenVINO's bfloat16 against float32 on vtest.avi): every region grows by
            // REDUCED_PRECISION_PAD network pixels on each side, in frame pixels.
            rp.pad = REDUCED_PRECISION_PAD / lb.scale.max(f32::EPSILON);
        }
        let failure = detections.as_ref().err().cloned();
        let n = frames.len();
        if let Some(why) = &failure {
            match on_failure {
                OnFailure::Error => {
                    gst::element_imp_error!(
                        self,
                        gst::LibraryError::Failed,
                        ("Could not analyse {} frames: {}", n, why),
                        [
                            "on-failure=error stops the pipeline; on-failure=redact-frame pixelates such frames instead"
                        ]
                    );
                    return Err(gst::FlowError::Error);
                }
                OnFailure::RedactFrame | OnFailure::Passthrough => {
                    self.warn_failure(state, on_failure, n as u64, why)
                }
            }
        }
        let t0 = Instant::now();
        state.stats.frames += n as u64;
        let (width, height) = (info.width() as usize, info.height() as usize);
        // What the model saw, per frame: detections of analysed frames in order, None for frames
        // it did not analyse (or could not).
        let mut analysed = detections.as_ref().ok().map(|d| d.iter());
        let observations: Vec<Option<Vec<Detection>>> = frames
            .iter()
            .map(|h| match (&mut analysed, h.analyse) {
                (Some(it), true) => Some(it.next().cloned().unwrap_or_default()),
                _ => None,
            })
            .collect();
        let tracked = state.tracker.process_batch(&observations, &tp);
        let whole = failure.is_some() && on_failure == OnFailure::RedactFrame;
        for (held, (people, seen)) in frames.into_iter().zip(tracked.iter().zip(&observations)) {
            let mut buffer = held.buffer;
            let detected = seen.as_ref().map_or(0, Vec::len);
            state.regions.clear();
            if failure.is_none() {
                for t in people {
                    let from = state.regions.len();
                    regions_for(&t.det, &rp, &mut state.regions);
                    for r in &mut state.regions[from..] {
                        r.rect = r.rect.grow(t.grow);
                    }
                }
            }
            let pixels: Vec<(RegionKind, PixelRect, f32)> = state
                .regions
                .iter()
                .map(|r| (r.kind, r.rect.to_pixels(width, height), r.score))
                .filter(|(_, px, _)| !px.is_empty())
                .collect();
            if whole || !pixels.is_empty() {
                let buf = buffer.make_mut();
                let mut vf = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &info)
                    .map_err(|_| {
                        gst::element_imp_error!(
                            self,
                            gst::StreamError::Failed,
                            ("Failed to map a frame for writing")
                        );
                        gst::FlowError::Error
                    })?;
                let mut frame = frame_mut(&mut vf, format);
                if whole {
                    redact::redact_whole_frame(&mut frame, &mut state.scratch);
                } else {
                    for (_, px, _) in &pixels {
                        redact::redact_region(&mut frame, *px, &xp, &mut state.scratch);
                    }
                }
                drop(vf);
                // Tell downstream what was redacted.
                let buf = buffer.make_mut();
                if whole {
                    let mut m = gst_video::VideoRegionOfInterestMeta::add(
                        buf,
                        "whole-frame",
                        (0, 0, width as u32, height as u32),
                    );
                    m.add_param(
                        gst::Structure::builder("yoloanonymize")
                            .field("reason", failure.as_deref().unwrap_or_default())
                            .build(),
                    );
                }
                for (id, (kind, px, score)) in pixels.iter().enumerate() {
                    let mut m = gst_video::VideoRegionOfInterestMeta::add(
                        buf,
                        kind.name(),
                        (
                            px.x0 as u32,
                            px.y0 as u32,
                            px.width() as u32,
                            px.height() as u32,
                        ),
                    );
                    // Numbered 0..n per buffer, so bindings can look each one up by id.
                    m.set_id(id as i32);
                    m.add_param(
                        gst::Structure::builder("detection")
                            .field("confidence", *score as f64)
                            .build(),
                    );
                }
            }
            state.stats.people += detected as u64;
            state.stats.regions += pixels.len() as u64;
            gst::trace!(
                CAT,
                imp = self,
                "Frame {:?}: {} detected, {} covered, {} regions",
                buffer.pts(),
                detected,
                people.len(),
                pixels.len()
            );
            if let Some(w) = state.audit.as_mut() {
                let reason = failure.as_deref().map(|why| {
                    if whole {
                        why.to_string()
                    } else {
                        format!("{why} (on-failure=passthrough: left untouched)")
                    }
                });
                let line = audit::frame_record(
                    state.out_frames,
                    buffer.pts().map(|t| t.nseconds()),
                    whole,
                    reason.as_deref(),
                    &pixels,
                    people,
                );
                if let Err(e) = writeln!(w, "{line}") {
                    gst::element_imp_error!(
                        self,
                        gst::ResourceError::Write,
                        ("Cannot write to detections-file: {}", e)
                    );
                    return Err(gst::FlowError::Error);
                }
            }
            state.out_frames += 1;
            if let Some(pts) = buffer.pts() {
                let due = state
                    .last_report_pts
                    .is_none_or(|t| pts >= t + gst::ClockTime::SECOND || pts < t);
                if due {
                    if state.last_report_pts.is_some() {
                        let st = state.stats.structure(
                            false,
                            state.report_start.elapsed(),
                            state.report_base.as_ref(),
                        );
                        let obj = self.obj();
                        let _ =
                            obj.post_message(gst::message::Element::builder(st).src(&*obj).build());
                    }
                    state.last_report_pts = Some(pts);
                    state.report_start = Instant::now();
                    state.report_base = Some(state.stats.clone());
                }
            }
            state.ready.push_back(buffer);
        }
        state.stats.redact += t0.elapsed();
        Ok(())
    }

    /// Counts frames that could not be analysed and posts a warning: at the first, then at most
    /// once a second with the running total.
    fn warn_failure(&self, state: &mut State, on_failure: OnFailure, n: u64, why: &str) {
        if on_failure == OnFailure::Passthrough {
            state.stats.frames_passed_unanalysed += n;
        } else {
            state.stats.frames_whole += n;
        }
        state.unwarned += n;
        let now = Instant::now();
        if state
            .last_warning
            .is_some_and(|t| now - t < Duration::from_secs(1))
        {
            return;
        }
        state.last_warning = Some(now);
        let total = state.stats.frames_whole + state.stats.frames_passed_unanalysed;
        let what = if on_failure == OnFailure::Passthrough {
            "passed through UNREDACTED (on-failure=passthrough)"
        } else {
            "pixelated whole"
        };
        gst::element_imp_warning!(
            self,
            gst::LibraryError::Failed,
            (
                "Could not analyse {} frames ({}); they were {} ({} so far)",
                state.unwarned,
                why,
                what,
                total
            )
        );
        state.unwarned = 0;
    }

    /// Takes finished results without waiting; on a live stream, lets out every batch whose
    /// oldest frame reached its deadline (under the on-failure policy); then waits while more
    /// than `keep` batches are in flight. The state lock is released while waiting.
    fn collect_results(&self, keep: usize) -> Result<(), gst::FlowError> {
        loop {
            let (worker, deadline) = {
                let mut guard = self.state.lock();
                let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
                let Some(worker) = state.worker.clone() else {
                    return Ok(());
                };
                while let Some(r) = worker.try_recv().map_err(|e| {
                    gst::element_imp_error!(self, gst::LibraryError::Failed, ("{}", e));
                    gst::FlowError::Error
                })? {
                    self.finish(state, r)?;
                }
                let live = state.live == Some(true);
                let max_latency = self.max_latency(state);
                // Deadlines are checked when frames arrive (and while waiting for the worker), so
                // a batch leaves one frame early rather than up to one frame late.
                let cutoff = max_latency.saturating_sub(Self::frame_duration(state));
                if live {
                    // Every batch whose oldest frame reached its deadline leaves now.
                    let mut expired = false;
                    for p in state.pending.iter_mut().filter(|p| p.outcome.is_none()) {
                        if p.frames
                            .first()
                            .is_some_and(|h| h.arrived.elapsed() >= cutoff)
                        {
                            p.outcome = Some(Err(format!(
                                "inference did not finish within max-latency ({} ms) on a live stream",
                                max_latency.as_millis()
                            )));
                            state.stats.frames_late += p.frames.len() as u64;
                            expired = true;
                        }
                    }
                    if expired {
                        self.resolve(state)?;
                    }
                }
                let limit = if live && keep > 0 { usize::MAX } else { keep };
                if state.pending.len() <= limit {
                    return Ok(());
                }
                let deadline = live.then(|| {
                    state
                        .pending
                        .front()
                        .and_then(|p| p.frames.first())
                        .map(|h| h.arrived + cutoff)
                });
                (worker, deadline.flatten())
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
            let Some(r) = received else {
                gst::element_imp_error!(
                    self,
                    gst::LibraryError::Failed,
                    ("The inference thread stopped")
                );
                return Err(gst::FlowError::Error);
            };
            let mut guard = self.state.lock();
            let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
            state.stats.wait += waited;
            self.finish(state, r)?;
        }
    }

    /// Sends the partial batch to the worker and waits for every batch to come back (on a live
    /// stream, at most until their deadlines).
    fn drain(&self) -> Result<(), gst::FlowError> {
        {
            let mut guard = self.state.lock();
            let Some(state) = guard.as_mut() else {
                return Ok(());
            };
            if state.collecting.is_empty() && state.pending.is_empty() {
                return Ok(());
            }
            gst::debug!(
                CAT,
                imp = self,
                "Draining {} collected frames and {} batches",
                state.collecting.len(),
                state.pending.len()
            );
            self.dispatch(state)?;
        }
        self.collect_results(0)
    }

    /// Drains and pushes every held frame downstream (before a serialized event passes).
    fn drain_and_push(&self) -> Result<(), gst::FlowError> {
        self.drain()?;
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

    fn held_frames(&self) -> u64 {
        let batch = self.settings.lock().batch_size as u64;
        // A full batch in the worker while the next one is collected.
        batch * (MAX_IN_FLIGHT as u64 + 1) - 1
    }

    /// Asks upstream whether the stream is live (once per stream).
    fn query_live(&self) -> bool {
        let mut q = gst::query::Latency::new();
        let sink = self.obj().static_pad("sink").expect("sink pad");
        sink.peer_query(&mut q) && q.result().0
    }
}

impl ObjectImpl for YoloAnonymize {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb("Path of a YOLO pose ONNX model (input [batch,3,H,W], output [batch,56,anchors]); defaults to the bundled YOLO11n-pose")
                    .default_value(crate::default_model_path().to_str())
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("batch-size")
                    .nick("Batch size")
                    .blurb("Frames analysed together in one inference call (frames are held until a batch is full, EOS or a discontinuity)")
                    .minimum(1)
                    .maximum(32)
                    .default_value(DEFAULT_BATCH_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("device")
                    .nick("Device")
                    .blurb("Execution provider: auto (CUDA if available, else OpenVINO on the CPU if installed, else ONNX Runtime's CPU provider), cpu, openvino, cuda or cuda:N")
                    .default_value(Some(DEFAULT_DEVICE))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("half-precision")
                    .nick("Half precision")
                    .blurb("On CUDA, run the float16 variant of the model (<model>-fp16.onnx beside it, made by models/make-fp16.sh); on the CPU it does not help, so the element says so and keeps float32")
                    .default_value(false)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("openvino-bf16")
                    .nick("OpenVINO bfloat16")
                    .blurb("With the OpenVINO provider (device=auto or openvino on the CPU), let it compute in bfloat16 where the CPU has bfloat16 instructions (AVX512-BF16, AMX); false = float32. Measured speed and coverage: README, Performance")
                    .default_value(DEFAULT_OPENVINO_BF16)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("shared-worker")
                    .nick("Shared worker")
                    .blurb("Inference worker shared by the elements of this process: auto = one per model, device, threads and precision (batches of different streams run together; frames never cross streams); none = this element's own; any other name = the elements with that name share one (they must agree on those settings)")
                    .default_value(Some(DEFAULT_SHARED_WORKER))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("provider")
                    .nick("Provider")
                    .blurb("Execution provider in use after start (cpu, openvino or cuda:N); empty before")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("ONNX Runtime intra-op threads (0 = one per available core)")
                    .maximum(256)
                    .default_value(DEFAULT_THREADS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("conf-threshold")
                    .nick("Confidence threshold")
                    .blurb("Minimum person score (0..1) for a detection to be redacted")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_CONF_THRESHOLD)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("iou-threshold")
                    .nick("IoU threshold")
                    .blurb("Non-maximum suppression: boxes overlapping a better one by more than this intersection-over-union (0..1) are merged")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_IOU_THRESHOLD)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("keypoint-threshold")
                    .nick("Keypoint threshold")
                    .blurb("Minimum visibility (0..1) for an eye, ear or nose keypoint to be trusted; below it the region is estimated from the head and box, larger")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_KEYPOINT_THRESHOLD)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("input-size")
                    .nick("Input size")
                    .blurb("Long side of the network input in pixels, a multiple of 32 (others are rounded up); the short side keeps the frame's aspect ratio")
                    .minimum(32)
                    .maximum(4096)
                    .default_value(DEFAULT_INPUT_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFlags::builder::<Targets>("targets")
                    .nick("Targets")
                    .blurb("Parts of each person to redact (eyes, face, body; combine with +)")
                    .default_value(Targets::EYES)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("method", Method::Blur)
                    .nick("Method")
                    .blurb("How regions are redacted")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("margin")
                    .nick("Margin")
                    .blurb("Extra size added on each side of every region, as a fraction of its width and height")
                    .minimum(0.0)
                    .maximum(2.0)
                    .default_value(DEFAULT_MARGIN)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("pixel-size")
                    .nick("Pixel size")
                    .blurb("Block size in pixels for method=pixelate (0 = scaled to each region: a sixth of its long side, at least 4)")
                    .maximum(1024)
                    .default_value(DEFAULT_PIXEL_SIZE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("fill-color")
                    .nick("Fill color")
                    .blurb("Colour for method=fill as 0xRRGGBB")
                    .maximum(0xFF_FF_FF)
                    .default_value(DEFAULT_FILL_COLOR)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("hold-frames")
                    .nick("Hold frames")
                    .blurb("Frames a person stays redacted after the model last found them (their region follows their motion and grows); 0 = only where detected")
                    .maximum(1000)
                    .default_value(DEFAULT_HOLD_FRAMES)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("detect-interval")
                    .nick("Detect interval")
                    .blurb("Run the model on every Nth frame; regions are carried and interpolated through the frames in between")
                    .minimum(1)
                    .maximum(100)
                    .default_value(DEFAULT_DETECT_INTERVAL)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("on-failure", OnFailure::RedactFrame)
                    .nick("On failure")
                    .blurb("What happens to frames the model could not analyse (model not loaded, inference error, crash, live deadline missed): redact-frame pixelates them whole and warns, error stops the pipeline, passthrough lets them out untouched (UNSAFE: faces leak)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("max-latency")
                    .nick("Max latency")
                    .blurb("Live streams only: nanoseconds after its arrival by which every frame leaves, analysed or not (then under on-failure); a partial batch is sent after half of it. 0 = automatic: 2 x batch-size frame durations, at least 4")
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("detections-file")
                    .nick("Detections file")
                    .blurb("If set, write one JSON line per output frame to this file: timestamp, frame number, redacted regions, people with keypoints, and whether the frame was redacted whole and why (an audit trail)")
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock();
        match pspec.name() {
            "model" => {
                s.model = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .unwrap_or_else(crate::default_model_path);
            }
            "batch-size" => s.batch_size = value.get().expect("type checked upstream"),
            "device" => {
                s.device = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_else(|| DEFAULT_DEVICE.into());
                if let Err(e) = Device::parse(&s.device) {
                    gst::warning!(CAT, imp = self, "{e}; starting will fail");
                }
            }
            "threads" => s.threads = value.get().expect("type checked upstream"),
            "half-precision" => s.half_precision = value.get().expect("type checked upstream"),
            "openvino-bf16" => s.openvino_bf16 = value.get().expect("type checked upstream"),
            "shared-worker" => {
                s.shared_worker = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| DEFAULT_SHARED_WORKER.into())
            }
            "conf-threshold" => s.conf_threshold = value.get().expect("type checked upstream"),
            "iou-threshold" => s.iou_threshold = value.get().expect("type checked upstream"),
            "keypoint-threshold" => {
                s.keypoint_threshold = value.get().expect("type checked upstream")
            }
            "input-size" => {
                let v: u32 = value.get().expect("type checked upstream");
                let rounded = v.div_ceil(32) * 32;
                if rounded != v {
                    gst::warning!(
                        CAT,
                        imp = self,
                        "input-size {v} is not a multiple of 32; using {rounded}"
                    );
                }
                s.input_size = rounded;
            }
            "targets" => s.targets = value.get().expect("type checked upstream"),
            "method" => s.method = value.get().expect("type checked upstream"),
            "margin" => s.margin = value.get().expect("type checked upstream"),
            "pixel-size" => s.pixel_size = value.get().expect("type checked upstream"),
            "fill-color" => s.fill_color = value.get().expect("type checked upstream"),
            "hold-frames" => s.hold_frames = value.get().expect("type checked upstream"),
            "on-failure" => s.on_failure = value.get().expect("type checked upstream"),
            "max-latency" => s.max_latency = value.get().expect("type checked upstream"),
            "detect-interval" => s.detect_interval = value.get().expect("type checked upstream"),
            "detections-file" => {
                s.detections_file = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
            }
            other => unreachable!("unknown property {other}"),
        }
        gst::debug!(CAT, imp = self, "Set {} to {:?}", pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "provider" {
            // State before settings, the order the streaming thread takes them in.
            let state = self.state.lock();
            return state
                .as_ref()
                .map(|st| st.provider.clone())
                .unwrap_or_default()
                .to_value();
        }
        let s = self.settings.lock();
        match pspec.name() {
            "model" => s.model.display().to_string().to_value(),
            "batch-size" => s.batch_size.to_value(),
            "device" => s.device.to_value(),
            "threads" => s.threads.to_value(),
            "half-precision" => s.half_precision.to_value(),
            "openvino-bf16" => s.openvino_bf16.to_value(),
            "shared-worker" => s.shared_worker.to_value(),
            "conf-threshold" => s.conf_threshold.to_value(),
            "iou-threshold" => s.iou_threshold.to_value(),
            "keypoint-threshold" => s.keypoint_threshold.to_value(),
            "input-size" => s.input_size.to_value(),
            "targets" => s.targets.to_value(),
            "method" => s.method.to_value(),
            "margin" => s.margin.to_value(),
            "pixel-size" => s.pixel_size.to_value(),
            "fill-color" => s.fill_color.to_value(),
            "hold-frames" => s.hold_frames.to_value(),
            "on-failure" => s.on_failure.to_value(),
            "max-latency" => s.max_latency.to_value(),
            "detect-interval" => s.detect_interval.to_value(),
            "detections-file" => s
                .detections_file
                .as_ref()
                .map(|p| p.display().to_string())
                .to_value(),
            other => unreachable!("unknown property {other}"),
        }
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
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
            ]
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
            Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).map_err(
                |e| {
                    gst::error_msg!(
                        gst::ResourceError::OpenWrite,
                        ("Cannot create detections-file '{}': {}", p.display(), e)
                    )
                },
            )?)),
            None => None,
        };
        let loaded = self.engine_config(&settings).and_then(|cfg| {
            // What elements must agree on to share a worker.
            let config = format!(
                "{} on {} with {} threads{}{}",
                cfg.model.display(),
                cfg.device,
                cfg.threads,
                if cfg.half_precision {
                    ", half precision"
                } else {
                    ""
                },
                if cfg.openvino_bf16 { "" } else { ", no bf16" }
            );
            let key = match settings.shared_worker.as_str() {
                // Injected faults are this element's alone.
                _ if settings.fault.is_some() => None,
                "none" => None,
                "auto" => Some(format!("auto: {config}")),
                name => Some(name.to_string()),
            };
            let load = |key: String| -> Result<Arc<Server>, EngineError> {
                gst::info!(
                    CAT,
                    imp = self,
                    "Loading {} on {}",
                    cfg.model.display(),
                    cfg.device
                );
                let engine = Engine::load(&cfg)?;
                let info = ServerInfo {
                    provider: engine.provider.clone(),
                    provider_note: engine
                        .provider_note
                        .iter()
                        .chain(engine.precision_note.iter())
                        .cloned()
                        .reduce(|a, b| format!("{a}; {b}")),
                    reduced_precision: engine.reduced_precision,
                    fixed_batch: engine.input_shape.batch,
                    fixed_hw: engine.input_shape.height.zip(engine.input_shape.width),
                };
                if let Some(note) = &engine.precision_note {
                    gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{}", note));
                }
                // With the GPU runtime and a driver installed, running on the CPU is worth a
                // warning.
                if let (Some(note), true) = (&engine.provider_note, engine.cuda_expected) {
                    gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{}", note));
                }
                gst::info!(
                    CAT,
                    imp = self,
                    "Model {} loaded on {}, input {:?}",
                    engine.model.display(),
                    engine.provider,
                    engine.input_shape
                );
                let faulty = Faulty {
                    inner: engine,
                    fault: settings.fault,
                };
                Server::spawn(faulty, key, config.clone(), info).map_err(|e| {
                    EngineError::Library(format!("cannot start the inference thread: {e}"))
                })
            };
            match key {
                Some(key) => crate::worker::shared(&key, &config, || load(key.clone())),
                None => load(String::new()),
            }
        });
        let mut provider_note = None;
        let (worker, failure, provider, shape) = match loaded {
            Ok(server) => {
                if let Some(note) = &server.info.provider_note {
                    gst::info!(CAT, imp = self, "{note}");
                    provider_note = Some(note.clone());
                }
                let info = server.info.clone();
                let worker = Worker::connect(server, MAX_IN_FLIGHT + 1);
                gst::info!(
                    CAT,
                    imp = self,
                    "Inference worker '{}' on {}, {} stream(s)",
                    worker.server().key,
                    info.provider,
                    worker.server().clients()
                );
                (
                    Some(Arc::new(worker)),
                    None,
                    info.provider.clone(),
                    Some(info),
                )
            }
            Err(e) if settings.on_failure == OnFailure::Error => {
                return Err(match &e {
                    EngineError::ModelFile { .. } => {
                        gst::error_msg!(gst::ResourceError::NotFound, ("{}", e))
                    }
                    EngineError::ModelLoad { .. } => {
                        gst::error_msg!(gst::ResourceError::OpenRead, ("{}", e))
                    }
                    EngineError::Library(_) => gst::error_msg!(gst::LibraryError::Init, ("{}", e)),
                    _ => gst::error_msg!(gst::LibraryError::Settings, ("{}", e)),
                });
            }
            // An execution provider asked for by name and not there is a set-up error: the
            // element does not start (nothing leaves unredacted, and nobody runs hours of video
            // pixelated whole because of a typo or a missing driver).
            Err(e @ EngineError::Provider(_)) => {
                return Err(gst::error_msg!(gst::LibraryError::Settings, ("{}", e)));
            }
            Err(e) => {
                let what = if settings.on_failure == OnFailure::Passthrough {
                    "will pass through UNREDACTED (on-failure=passthrough)"
                } else {
                    "will be pixelated whole (on-failure=redact-frame; set on-failure=error to stop instead)"
                };
                gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Init,
                    (
                        "The model could not be loaded, so every frame {}: {}",
                        what,
                        e
                    )
                );
                (
                    None,
                    Some(format!("the model could not be loaded: {e}")),
                    String::new(),
                    None,
                )
            }
        };
        // Which execution provider took the session (or none), for applications and logs.
        let (shared_key, streams) = worker
            .as_ref()
            .map(|w| (w.server().key.clone(), w.server().clients() as u32))
            .unwrap_or_default();
        let msg = gst::Structure::builder("yoloanonymize-provider")
            .field("requested", settings.device.as_str())
            .field("provider", provider.as_str())
            .field(
                "shared-worker",
                if shared_key.is_empty() {
                    "none"
                } else {
                    shared_key.as_str()
                },
            )
            .field("streams", streams)
            .field(
                "note",
                provider_note
                    .as_deref()
                    .or(failure.as_deref())
                    .unwrap_or(""),
            )
            .build();
        let obj = self.obj();
        let _ = obj.post_message(gst::message::Element::builder(msg).src(&*obj).build());
        *self.state.lock() = Some(State {
            worker,
            failure,
            live: None,
            last_warning: None,
            unwarned: 0,
            fixed_hw: shape.as_ref().and_then(|s| s.fixed_hw),
            fixed_batch: shape.as_ref().and_then(|s| s.fixed_batch),
            provider,
            reduced_precision: shape.as_ref().is_some_and(|s| s.reduced_precision),
            video: None,
            collecting: Vec::new(),
            seen: 0,
            tracker: Tracker::default(),
            tensor: Vec::new(),
            spare_tensors: Vec::new(),
            pending: VecDeque::new(),
            ready: VecDeque::new(),
            next_id: 0,
            preprocessor: Preprocessor::default(),
            scratch: Scratch::default(),
            regions: Vec::new(),
            stats: Stats::default(),
            audit,
            out_frames: 0,
            last_report_pts: None,
            report_start: Instant::now(),
            started: Instant::now(),
            report_base: None,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(state) = self.state.lock().take() {
            gst::info!(CAT, imp = self, "Stopped: {:?}", state.stats);
        }
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "Cannot parse video caps {incaps}"))?;
        let format = pixel_format(info.format())
            .ok_or_else(|| gst::loggable_error!(CAT, "Unsupported format {:?}", info.format()))?;
        let input_size = self.settings.lock().input_size as usize;
        let mut guard = self.state.lock();
        let state = guard
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "Caps set before start"))?;
        let (w, h) = (info.width() as usize, info.height() as usize);
        let lb = match state.fixed_hw {
            Some((fh, fw)) => Letterbox::fixed(w, h, fw, fh),
            None => Letterbox::new(w, h, input_size),
        };
        if !state.collecting.is_empty() {
            // Only reachable if caps change without a CAPS event; those frames were preprocessed
            // for the old size, so analyse them as they are.
            gst::warning!(
                CAT,
                imp = self,
                "Caps changed with {} frames held",
                state.collecting.len()
            );
        }
        gst::debug!(
            CAT,
            imp = self,
            "Caps {incaps}: {w}x{h} {format:?}, network input {}x{}",
            lb.net_w,
            lb.net_h
        );
        state.tensor.clear();
        state.tracker.reset();
        state.video = Some((info, format, lb));
        Ok(())
    }

    fn submit_input_buffer(
        &self,
        is_discont: bool,
        inbuf: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (batch_size, detect_interval) = {
            let s = self.settings.lock();
            (s.batch_size as usize, s.detect_interval)
        };
        // Only the buffer's own flag: the base class's `is_discont` stays set after the first
        // DISCONT buffer when generate_output is overridden, and would drain every frame.
        let _ = is_discont;
        if inbuf.flags().contains(gst::BufferFlags::DISCONT) {
            gst::debug!(CAT, imp = self, "Discontinuity at {:?}", inbuf.pts());
            self.drain()?;
        }
        let unknown_live = self.state.lock().as_ref().is_some_and(|s| s.live.is_none());
        if unknown_live {
            let live = self.query_live();
            gst::debug!(CAT, imp = self, "Upstream is live: {live}");
            if let Some(s) = self.state.lock().as_mut() {
                s.live = Some(live);
            }
        }
        {
            let mut guard = self.state.lock();
            let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
            let batch_size = state.fixed_batch.map_or(batch_size, |b| b.min(batch_size));
            gst::trace!(CAT, imp = self, "Frame {:?} in", inbuf.pts());
            self.collect(state, inbuf, batch_size, detect_interval)?;
            // Live: a partial batch is not held for more than half the latency budget.
            if state.live == Some(true)
                && state
                    .collecting
                    .first()
                    .is_some_and(|h| h.arrived.elapsed() >= self.max_latency(state) / 2)
            {
                gst::debug!(
                    CAT,
                    imp = self,
                    "Batch timeout: sending {} frames",
                    state.collecting.len()
                );
                self.dispatch(state)?;
            }
        }
        self.collect_results(MAX_IN_FLIGHT)?;
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
    /// unsupported format with an error that says what to do. The caps query (what negotiation
    /// uses) still offers only the supported formats.
    fn accept_caps(&self, direction: gst::PadDirection, caps: &gst::Caps) -> bool {
        let raw_system = caps.is_fixed()
            && caps.structure(0).is_some_and(|s| s.name() == "video/x-raw")
            && caps
                .features(0)
                .is_none_or(|f| f.contains(gst::CAPS_FEATURE_MEMORY_SYSTEM_MEMORY.as_str()));
        if direction == gst::PadDirection::Sink && raw_system {
            return true;
        }
        self.parent_accept_caps(direction, caps)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        use gst::EventView;
        gst::log!(CAT, imp = self, "Event {:?}", event.type_());
        match event.view() {
            EventView::FlushStop(_) => {
                if let Some(state) = self.state.lock().as_mut() {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "Flush: dropping {} collected, {} pending, {} ready frames",
                        state.collecting.len(),
                        state.pending.iter().map(|p| p.frames.len()).sum::<usize>(),
                        state.ready.len()
                    );
                    state.collecting.clear();
                    state.pending.clear();
                    state.ready.clear();
                    state.tracker.reset();
                    state.seen = 0;
                    state.live = None;
                }
            }
            EventView::Caps(c) => {
                let caps = c.caps();
                if !caps.can_intersect(&template_caps()) {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Negotiation,
                        ("yoloanonymize cannot handle caps {}", caps),
                        [
                            "Supported: raw video in I420, NV12, RGB, BGR, RGBA, BGRA, RGBx or BGRx; put videoconvert before yoloanonymize"
                        ]
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
                    let stats = self.state.lock().as_mut().map(|s| {
                        if let Some(Err(e)) = s.audit.as_mut().map(|w| w.flush()) {
                            gst::warning!(CAT, imp = self, "Flushing detections-file: {e}");
                        }
                        s.stats.structure(true, s.started.elapsed(), None)
                    });
                    if let Some(st) = stats {
                        gst::info!(CAT, imp = self, "At EOS: {st}");
                        let obj = self.obj();
                        let _ =
                            obj.post_message(gst::message::Element::builder(st).src(&*obj).build());
                    }
                }
            }
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if direction == gst::PadDirection::Src
            && let gst::QueryViewMut::Latency(q) = query.view_mut()
        {
            if !BaseTransformImplExt::parent_query(self, direction, q.query_mut()) {
                return false;
            }
            let (live, min, max) = q.result();
            let held = {
                let guard = self.state.lock();
                match guard.as_ref() {
                    // Live: a frame leaves by max-latency after it arrived, analysed or not.
                    Some(state) if live => {
                        gst::ClockTime::from_nseconds(self.max_latency(state).as_nanos() as u64)
                    }
                    Some(state) => {
                        let fps = state.video.as_ref().map(|(i, _, _)| i.fps());
                        match fps {
                            Some(f) if f.numer() > 0 => gst::ClockTime::SECOND
                                .mul_div_floor(
                                    self.held_frames() * f.denom() as u64,
                                    f.numer() as u64,
                                )
                                .unwrap_or(gst::ClockTime::ZERO),
                            _ => gst::ClockTime::ZERO,
                        }
                    }
                    None => gst::ClockTime::ZERO,
                }
            };
            gst::debug!(
                CAT,
                imp = self,
                "Latency: upstream {min} / {max:?} (live {live}), holding up to {held}"
            );
            q.set(live, min + held, max.map(|m| m + held));
            return true;
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }
}
