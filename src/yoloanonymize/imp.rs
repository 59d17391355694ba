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

use super::{Method, Targets};
use crate::audit;
use crate::decode::Detection;
use crate::engine::{Device, Engine, EngineConfig, EngineError};
use crate::frame::{FrameMut, FrameRef, PixelFormat, PixelRect};
use crate::preprocess::{Letterbox, Preprocessor};
use crate::redact::{self, RedactParams, Scratch};
use crate::regions::{Region, RegionKind, RegionParams, regions_for};
use crate::temporal::{TemporalParams, Tracker};
use crate::worker::{Job, JobResult, Worker};

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
const DEFAULT_HOLD_FRAMES: u32 = 5;
const DEFAULT_DETECT_INTERVAL: u32 = 1;
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
        }
    }
}

impl Settings {
    fn region_params(&self) -> RegionParams {
        RegionParams {
            targets: self.targets.bits(),
            margin: self.margin as f32,
            keypoint_threshold: self.keypoint_threshold as f32,
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

/// A batch handed to the worker, waiting for its detections.
struct Pending {
    id: u64,
    /// Each frame, and whether the model analyses it (`detect-interval`).
    frames: Vec<(gst::Buffer, bool)>,
}

/// What exists between `start` and `stop`.
struct State {
    worker: Arc<Worker>,
    /// Fixed network size, when the model has one.
    fixed_hw: Option<(usize, usize)>,
    /// The most images the model takes at once, when fixed.
    fixed_batch: Option<usize>,
    provider: String,
    /// Negotiated input, set by `set_caps`.
    video: Option<(gst_video::VideoInfo, PixelFormat, Letterbox)>,
    /// Frames of the batch being collected; those to analyse are already written into `tensor`.
    collecting: Vec<(gst::Buffer, bool)>,
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
}

/// Totals since start, posted as the `yoloanonymize-stats` element message at EOS.
#[derive(Debug, Default, Clone)]
struct Stats {
    frames: u64,
    batches: u64,
    people: u64,
    regions: u64,
    frames_whole: u64,
    preprocess: Duration,
    inference: Duration,
    decode: Duration,
    redact: Duration,
    /// Time the streaming thread spent waiting for the inference thread.
    wait: Duration,
}

impl Stats {
    fn structure(&self) -> gst::Structure {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        gst::Structure::builder("yoloanonymize-stats")
            .field("frames", self.frames)
            .field("batches", self.batches)
            .field("people", self.people)
            .field("regions", self.regions)
            .field("frames-redacted-whole", self.frames_whole)
            .field("preprocess-ms", ms(self.preprocess))
            .field("inference-ms", ms(self.inference))
            .field("decode-ms", ms(self.decode))
            .field("redact-ms", ms(self.redact))
            .field("wait-ms", ms(self.wait))
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
    fn engine_config(&self, s: &Settings) -> Result<EngineConfig, gst::ErrorMessage> {
        let device = Device::parse(&s.device)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        Ok(EngineConfig {
            model: s.model.clone(),
            device,
            threads: s.threads as usize,
            library_dirs: PLUGIN_DIR.get().cloned().into_iter().collect(),
        })
    }

    /// Preprocesses `buffer` into the batch tensor and holds it; hands the batch to the worker
    /// when full.
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
        let analyse = state.seen.is_multiple_of(detect_interval as u64);
        state.seen += 1;
        if !analyse {
            state.collecting.push((buffer, false));
            return Ok(());
        }
        let per = lb.tensor_len();
        let slot = state.collecting.iter().filter(|(_, a)| *a).count();
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
        state.collecting.push((buffer, true));
        if slot + 1 >= batch_size {
            self.dispatch(state)?;
        }
        Ok(())
    }

    /// Sends the collected frames to the worker.
    fn dispatch(&self, state: &mut State) -> Result<(), gst::FlowError> {
        if state.collecting.is_empty() {
            return Ok(());
        }
        let (_, _, lb) = state.video.as_ref().ok_or(gst::FlowError::NotNegotiated)?;
        let lb = *lb;
        let n = state.collecting.iter().filter(|(_, a)| *a).count();
        let (conf, iou) = {
            let s = self.settings.lock();
            (s.conf_threshold as f32, s.iou_threshold as f32)
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
        state.pending.push_back(Pending {
            id,
            frames: std::mem::take(&mut state.collecting),
        });
        let job = Job {
            id,
            tensor,
            shape: [n, 3, lb.net_h, lb.net_w],
            letterbox: lb,
            conf_threshold: conf,
            iou_threshold: iou,
        };
        if let Err(e) = state.worker.submit(job) {
            gst::element_imp_error!(self, gst::LibraryError::Failed, ("{}", e));
            return Err(gst::FlowError::Error);
        }
        Ok(())
    }

    /// Applies a worker result to its batch and moves the frames to `ready`. A result whose batch
    /// was flushed is dropped.
    fn finish(&self, state: &mut State, result: JobResult) -> Result<(), gst::FlowError> {
        let JobResult {
            id,
            mut tensor,
            detections,
            infer_time,
            decode_time,
        } = result;
        tensor.clear();
        state.spare_tensors.push(tensor);
        let Some(pos) = state.pending.iter().position(|p| p.id == id) else {
            gst::debug!(CAT, imp = self, "Dropping the result of flushed batch {id}");
            return Ok(());
        };
        // Results come back in submission order; anything older was flushed.
        state.pending.drain(..pos);
        let batch = state.pending.pop_front().expect("position found");
        gst::debug!(
            CAT,
            imp = self,
            "Batch {id}: inference {infer_time:?}, decode {decode_time:?}"
        );
        let settings = self.settings.lock().clone();
        let (rp, xp, tp) = (
            settings.region_params(),
            settings.redact_params(),
            settings.temporal_params(),
        );
        let (info, format, _) = state.video.clone().ok_or(gst::FlowError::NotNegotiated)?;
        let failure = detections.as_ref().err().cloned();
        let n = batch.frames.len();
        let t0 = Instant::now();
        state.stats.batches += 1;
        state.stats.frames += n as u64;
        state.stats.inference += infer_time;
        state.stats.decode += decode_time;
        let (width, height) = (info.width() as usize, info.height() as usize);
        // What the model saw, per frame: detections of analysed frames in order, None for frames
        // it did not analyse (or could not).
        let mut analysed = detections.as_ref().ok().map(|d| d.iter());
        let observations: Vec<Option<Vec<Detection>>> = batch
            .frames
            .iter()
            .map(|(_, a)| match (&mut analysed, a) {
                (Some(it), true) => Some(it.next().cloned().unwrap_or_default()),
                _ => None,
            })
            .collect();
        let tracked = state.tracker.process_batch(&observations, &tp);
        for ((mut buffer, _), (people, seen)) in batch
            .frames
            .into_iter()
            .zip(tracked.iter().zip(&observations))
        {
            let detected = seen.as_ref().map_or(0, Vec::len);
            state.regions.clear();
            for t in people {
                let from = state.regions.len();
                regions_for(&t.det, &rp, &mut state.regions);
                for r in &mut state.regions[from..] {
                    r.rect = r.rect.expand(t.grow);
                }
            }
            let pixels: Vec<(RegionKind, PixelRect, f32)> = state
                .regions
                .iter()
                .map(|r| (r.kind, r.rect.to_pixels(width, height), r.score))
                .filter(|(_, px, _)| !px.is_empty())
                .collect();
            {
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
                if failure.is_some() {
                    redact::redact_whole_frame(&mut frame, &mut state.scratch);
                } else {
                    for (_, px, _) in &pixels {
                        redact::redact_region(&mut frame, *px, &xp, &mut state.scratch);
                    }
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
                let line = audit::frame_record(
                    state.out_frames,
                    buffer.pts().map(|t| t.nseconds()),
                    failure.as_deref(),
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
            state.ready.push_back(buffer);
        }
        state.stats.redact += t0.elapsed();
        if let Some(why) = failure {
            state.stats.frames_whole += n as u64;
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Failed,
                (
                    "Could not analyse {} frames ({}); they were pixelated whole ({} so far)",
                    n,
                    why,
                    state.stats.frames_whole
                )
            );
        }
        Ok(())
    }

    /// Takes finished results without waiting; then waits while more than `keep` batches are in
    /// flight. The state lock is released while waiting.
    fn collect_results(&self, keep: usize) -> Result<(), gst::FlowError> {
        loop {
            let worker = {
                let mut guard = self.state.lock();
                let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
                while let Some(r) = state.worker.try_recv().map_err(|e| {
                    gst::element_imp_error!(self, gst::LibraryError::Failed, ("{}", e));
                    gst::FlowError::Error
                })? {
                    self.finish(state, r)?;
                }
                if state.pending.len() <= keep {
                    return Ok(());
                }
                state.worker.clone()
            };
            let t0 = Instant::now();
            let received = worker.recv();
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

    /// Sends the partial batch to the worker and waits for every batch to come back.
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
                    .blurb("Execution provider: auto (CUDA if available, else CPU), cpu, cuda or cuda:N")
                    .default_value(Some(DEFAULT_DEVICE))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("provider")
                    .nick("Provider")
                    .blurb("Execution provider in use after start (cpu or cuda:N); empty before")
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
        let s = self.settings.lock();
        match pspec.name() {
            "model" => s.model.display().to_string().to_value(),
            "batch-size" => s.batch_size.to_value(),
            "device" => s.device.to_value(),
            "provider" => self
                .state
                .lock()
                .as_ref()
                .map(|st| st.provider.clone())
                .unwrap_or_default()
                .to_value(),
            "threads" => s.threads.to_value(),
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
        let cfg = self.engine_config(&settings)?;
        gst::info!(
            CAT,
            imp = self,
            "Loading {} on {}",
            cfg.model.display(),
            cfg.device
        );
        let engine = Engine::load(&cfg).map_err(|e| match &e {
            EngineError::ModelFile { .. } => {
                gst::error_msg!(gst::ResourceError::NotFound, ("{}", e))
            }
            EngineError::ModelLoad { .. } => {
                gst::error_msg!(gst::ResourceError::OpenRead, ("{}", e))
            }
            EngineError::Library(_) => gst::error_msg!(gst::LibraryError::Init, ("{}", e)),
            _ => gst::error_msg!(gst::LibraryError::Settings, ("{}", e)),
        })?;
        if let Some(note) = &engine.provider_note {
            gst::info!(CAT, imp = self, "{note}");
        }
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
        let provider = engine.provider.clone();
        let shape = engine.input_shape;
        gst::info!(
            CAT,
            imp = self,
            "Model loaded on {provider}, input {shape:?}"
        );
        let worker = Worker::spawn(engine, MAX_IN_FLIGHT + 1).map_err(|e| {
            gst::error_msg!(
                gst::CoreError::Thread,
                ("Cannot start the inference thread: {}", e)
            )
        })?;
        *self.state.lock() = Some(State {
            worker: Arc::new(worker),
            fixed_hw: shape.height.zip(shape.width),
            fixed_batch: shape.batch,
            provider,
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
        if is_discont || inbuf.flags().contains(gst::BufferFlags::DISCONT) {
            self.drain()?;
        }
        {
            let mut guard = self.state.lock();
            let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
            let batch_size = state.fixed_batch.map_or(batch_size, |b| b.min(batch_size));
            gst::trace!(CAT, imp = self, "Frame {:?} in", inbuf.pts());
            self.collect(state, inbuf, batch_size, detect_interval)?;
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
                        s.stats.structure()
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
            let fps = self
                .state
                .lock()
                .as_ref()
                .and_then(|s| s.video.as_ref().map(|(i, _, _)| i.fps()))
                .unwrap_or(gst::Fraction::new(0, 1));
            let held = if fps.numer() > 0 {
                gst::ClockTime::SECOND
                    .mul_div_floor(self.held_frames() * fps.denom() as u64, fps.numer() as u64)
                    .unwrap_or(gst::ClockTime::ZERO)
            } else {
                gst::ClockTime::ZERO
            };
            gst::debug!(
                CAT,
                imp = self,
                "Latency: upstream {min} / {max:?}, holding up to {held}"
            );
            q.set(live, min + held, max.map(|m| m + held));
            return true;
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }
}
