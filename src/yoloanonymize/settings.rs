//! The element's properties: their specs (blurbs, ranges, defaults), the settings they set, and
//! which of them may change while the element runs.
//!
//! [`Settings`] is what the properties say. Those that need a restart (`mutable_ready`) are frozen
//! into the element's state at `start()`; the few that may change while playing are copied once
//! per buffer as a [`Live`] value.

use std::path::PathBuf;
use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;

use super::{Detectors, Method, OnFailure, Precision, Targets};
use crate::engine::Device;
use crate::redact::RedactParams;
use crate::regions::RegionParams;
use crate::temporal::TemporalParams;
use crate::worker::Fault;

pub const DEFAULT_BATCH_SIZE: u32 = 4;
pub const DEFAULT_DEVICE: &str = "auto";
pub const DEFAULT_THREADS: u32 = 0;
pub const DEFAULT_CONF_THRESHOLD: f64 = 0.25;
pub const DEFAULT_IOU_THRESHOLD: f64 = 0.7;
pub const DEFAULT_KEYPOINT_THRESHOLD: f64 = 0.5;
pub const DEFAULT_INPUT_SIZE: u32 = 640;
pub const DEFAULT_MARGIN: f64 = 0.15;
pub const DEFAULT_PIXEL_SIZE: u32 = 0;
pub const DEFAULT_FILL_COLOR: u32 = 0x000000;
/// Chosen by measurement (README, Temporal safety).
pub const DEFAULT_HOLD_FRAMES: u32 = crate::temporal::DEFAULT_HOLD_FRAMES;
pub const DEFAULT_DETECT_INTERVAL: u32 = 1;
pub const DEFAULT_SHARED_WORKER: &str = "auto";
pub const DEFAULT_OPENVINO_BF16: bool = true;
/// Both detectors, by default: the face detector covers the faces the pose model misses (hidden
/// bodies in crowds, tiny faces; README, Coverage).
pub const DEFAULT_DETECTORS: Detectors = Detectors::POSE.union(Detectors::FACE);
pub const DEFAULT_FACE_THRESHOLD: f64 = crate::face::DEFAULT_FACE_THRESHOLD as f64;
/// 0 = automatic ([`AUTO_FACE_INPUT`], [`AUTO_FACE_SCALE_MAX`]). Measured (README, Face coverage):
/// on 960x544 frames x1.5 covers 99.8 % of the judges' eyes (13 frames with an uncovered eye) where
/// x1 covers 99.3 % (50 frames), at 0.82x the speed end to end on `vtest.avi`.
pub const DEFAULT_FACE_SCALE: f64 = 0.0;
/// The smallest explicit `face-scale` (smaller non-zero values are raised to it).
pub const MIN_FACE_SCALE: f64 = 0.25;
/// `face-scale=0` upscales a frame to this many pixels on its long side (never down)...
pub const AUTO_FACE_INPUT: u32 = 1440;
/// ... by at most this factor.
pub const AUTO_FACE_SCALE_MAX: f64 = 1.5;
/// The face detector's input is at most this many pixels on its long side (the scale is lowered
/// to fit): a 4K frame at scale 1 is 3840 wide, and larger inputs would take gigabytes.
pub const MAX_FACE_INPUT: u32 = 3840;
pub const DEFAULT_SCENE_CUTS: bool = true;
/// Chosen by measurement (README, Face coverage and Performance): every 3rd analysed frame covers
/// the same faces as every frame (50 frames with an uncovered eye in both, none of a face >= 6
/// px) at 1.30x the speed on `vtest.avi`; every 4th starts to lose (54).
pub const DEFAULT_FACE_INTERVAL: u32 = 3;
/// The longest `max-latency` taken (larger values are clamped, with a warning): ten minutes.
pub const MAX_LATENCY_LIMIT_NS: u64 = 600 * 1_000_000_000;

/// What the properties say.
#[derive(Debug, Clone)]
pub struct Settings {
    pub model: PathBuf,
    pub batch_size: u32,
    pub device: String,
    pub threads: u32,
    pub input_size: u32,
    pub detections_file: Option<PathBuf>,
    pub detect_interval: u32,
    pub on_failure: OnFailure,
    /// Nanoseconds; 0 = automatic; at most [`MAX_LATENCY_LIMIT_NS`].
    pub max_latency: u64,
    /// `auto`, `none` or a name (see the property).
    pub shared_worker: String,
    pub half_precision: bool,
    pub openvino_bf16: bool,
    pub precision: Precision,
    pub detectors: Detectors,
    pub face_model: PathBuf,
    pub face_scale: f64,
    pub face_interval: u32,
    pub fault: Option<Fault>,
    pub live: Live,
}

/// The settings that may change while the element plays, copied once per buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Live {
    pub conf_threshold: f64,
    pub iou_threshold: f64,
    pub keypoint_threshold: f64,
    pub targets: Targets,
    pub method: Method,
    pub margin: f64,
    pub pixel_size: u32,
    pub fill_color: u32,
    pub hold_frames: u32,
    pub face_threshold: f64,
    pub scene_cuts: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model: crate::default_model_path(),
            batch_size: DEFAULT_BATCH_SIZE,
            device: DEFAULT_DEVICE.into(),
            threads: DEFAULT_THREADS,
            input_size: DEFAULT_INPUT_SIZE,
            detections_file: None,
            detect_interval: DEFAULT_DETECT_INTERVAL,
            on_failure: OnFailure::RedactFrame,
            max_latency: 0,
            shared_worker: DEFAULT_SHARED_WORKER.into(),
            half_precision: false,
            openvino_bf16: DEFAULT_OPENVINO_BF16,
            precision: Precision::Auto,
            detectors: DEFAULT_DETECTORS,
            face_model: crate::default_face_model_path(),
            face_scale: DEFAULT_FACE_SCALE,
            face_interval: DEFAULT_FACE_INTERVAL,
            fault: None,
            live: Live {
                conf_threshold: DEFAULT_CONF_THRESHOLD,
                iou_threshold: DEFAULT_IOU_THRESHOLD,
                keypoint_threshold: DEFAULT_KEYPOINT_THRESHOLD,
                targets: Targets::EYES,
                method: Method::Blur,
                margin: DEFAULT_MARGIN,
                pixel_size: DEFAULT_PIXEL_SIZE,
                fill_color: DEFAULT_FILL_COLOR,
                hold_frames: DEFAULT_HOLD_FRAMES,
                face_threshold: DEFAULT_FACE_THRESHOLD,
                scene_cuts: DEFAULT_SCENE_CUTS,
            },
        }
    }
}

impl Live {
    /// Region parameters; `pad` = frame pixels added on each side (reduced precision).
    pub fn region_params(&self, pad: f32) -> RegionParams {
        RegionParams {
            targets: self.targets.bits(),
            margin: self.margin as f32,
            keypoint_threshold: self.keypoint_threshold as f32,
            pad,
        }
    }

    pub fn temporal_params(&self) -> TemporalParams {
        TemporalParams {
            hold_frames: self.hold_frames,
            keypoint_threshold: self.keypoint_threshold as f32,
            ..TemporalParams::default()
        }
    }

    pub fn redact_params(&self) -> RedactParams {
        let c = self.fill_color;
        RedactParams {
            method: self.method.into(),
            pixel_size: self.pixel_size,
            fill_rgb: [(c >> 16) as u8, (c >> 8) as u8, c as u8],
        }
    }
}

/// The property specs, in the order `gst-inspect-1.0` shows them.
pub fn properties() -> &'static [glib::ParamSpec] {
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
            glib::ParamSpecEnum::builder_with_default("precision", Precision::Auto)
                .nick("Precision")
                .blurb("What the models compute in: auto = the fastest precision measured to keep the coverage bar on this provider (on OpenVINO the int8 model <model>-int8.onnx when it is there, else bfloat16 where the CPU has it, else float32; float32 on ONNX Runtime's CPU provider and CUDA); fp32, bf16 or int8 as asked (int8 lowers conf-threshold by 0.05 and pads regions by 8 network pixels, measured: models/README-int8.md). The face detector follows on OpenVINO: int8 (its variant <face-model>-int8.onnx) where the pose model runs int8, else bfloat16 where that is faster than float32 on this CPU and the pose model does not compute in float32, else float32. The yoloanonymize-provider message says what is in effect and why. With openvino-bf16=false, auto means fp32")
                .mutable_ready()
                .build(),
            glib::ParamSpecFlags::builder::<Detectors>("detectors")
                .nick("Detectors")
                .blurb("Which detectors find people (combine with +): pose = the YOLO pose model, face = the face detector beside it (same provider, same worker), which finds the faces of people whose body is hidden or too small. A face found by either is covered, tracked, held and looked ahead")
                .default_value(DEFAULT_DETECTORS)
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("face-model")
                .nick("Face model")
                .blurb("Path of the face detector's ONNX model (YuNet 2023mar with dynamic input: input `input` [batch,3,H,W], outputs cls/obj/bbox/kps_8/16/32); defaults to the bundled one. Its int8 variant <stem>-int8.onnx beside it is run where precision says; a file named *-int8.onnx is run as int8")
                .default_value(crate::default_face_model_path().to_str())
                .mutable_ready()
                .build(),
            glib::ParamSpecDouble::builder("face-scale")
                .nick("Face scale")
                .blurb("The face detector sees the frame scaled by this factor: 0 = automatic (frames are upscaled to 1440 px on their long side, by at most 1.5, never scaled down: x1.5 for 960x544 and 768x576, x1 for 1080p and larger; measured to cover faces under 6 px between the eyes that x1 misses), 1 = full resolution, 0.25 to 4 as given; its input is at most 3840 px on its long side")
                .minimum(0.0)
                .maximum(4.0)
                .default_value(DEFAULT_FACE_SCALE)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("face-interval")
                .nick("Face interval")
                .blurb("Run the face detector on every Nth analysed frame, and on the first frame after every scene cut; the tracker interpolates and holds the faces in between (the pose model still runs on every analysed frame). 1 = every analysed frame; the default 3 was measured to cover the same faces as 1 (README, Face coverage)")
                .minimum(1)
                .maximum(30)
                .default_value(DEFAULT_FACE_INTERVAL)
                .mutable_ready()
                .build(),
            glib::ParamSpecDouble::builder("face-threshold")
                .nick("Face threshold")
                .blurb("Minimum face detector score (0..1) for a face to be covered; lowered by 0.1 while the face detector runs its int8 variant (measured: models/README-face.md)")
                .minimum(0.0)
                .maximum(1.0)
                .default_value(DEFAULT_FACE_THRESHOLD)
                .mutable_playing()
                .build(),
            glib::ParamSpecBoolean::builder("scene-cuts")
                .nick("Scene cuts")
                .blurb("Detect scene cuts (from a 16x9 thumbnail of each frame) and carry no held, grown or looked-ahead region of one shot into the other; people found after the cut are covered as usual")
                .default_value(DEFAULT_SCENE_CUTS)
                .mutable_playing()
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
                .blurb("Live streams only: nanoseconds after its arrival by which every frame leaves, analysed or not (then under on-failure); a partial batch is sent after half of it. 0 = automatic: 2 x batch-size frame durations, at least 4. Values above 600 s are taken as 600 s")
                .default_value(0)
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("detections-file")
                .nick("Detections file")
                .blurb("If set, write one JSON line per output frame to this file: timestamp, frame number, redacted regions, people with keypoints, and whether the frame was redacted whole and why (an audit trail). Written under a temporary name in the same folder and renamed at EOS; must be a regular file or a new path")
                .mutable_ready()
                .build(),
        ]
    });
    PROPERTIES.as_ref()
}

/// Why a value cannot be taken now, or a note about how it was taken.
pub enum Applied {
    Ok,
    /// Taken, with a note for the log (e.g. rounded or clamped).
    Adjusted(String),
}

fn string(value: &glib::Value) -> Option<String> {
    value
        .get::<Option<String>>()
        .expect("type checked upstream")
}

impl Settings {
    /// Sets the property `name` from `value` (already type- and range-checked by GObject).
    pub fn set(&mut self, name: &str, value: &glib::Value) -> Applied {
        let v = value;
        let get_u32 = || v.get::<u32>().expect("type checked upstream");
        let get_f64 = || v.get::<f64>().expect("type checked upstream");
        match name {
            "model" => {
                self.model = string(v)
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .unwrap_or_else(crate::default_model_path);
            }
            "batch-size" => self.batch_size = get_u32(),
            "device" => {
                self.device = string(v).unwrap_or_else(|| DEFAULT_DEVICE.into());
                if let Err(e) = Device::parse(&self.device) {
                    return Applied::Adjusted(format!("{e}; starting will fail"));
                }
            }
            "threads" => self.threads = get_u32(),
            "half-precision" => self.half_precision = v.get().expect("type checked upstream"),
            "openvino-bf16" => self.openvino_bf16 = v.get().expect("type checked upstream"),
            "precision" => self.precision = v.get().expect("type checked upstream"),
            "detectors" => {
                let d: Detectors = v.get().expect("type checked upstream");
                if d.is_empty() {
                    self.detectors = DEFAULT_DETECTORS;
                    return Applied::Adjusted(
                        "detectors needs at least one of pose and face; using pose+face".into(),
                    );
                }
                self.detectors = d;
            }
            "face-model" => {
                self.face_model = string(v)
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .unwrap_or_else(crate::default_face_model_path);
            }
            "face-scale" => {
                let want = get_f64();
                self.face_scale = if want > 0.0 && want < MIN_FACE_SCALE {
                    MIN_FACE_SCALE
                } else {
                    want
                };
                if self.face_scale != want {
                    return Applied::Adjusted(format!(
                        "face-scale {want} is below {MIN_FACE_SCALE}; using {MIN_FACE_SCALE} (0 = automatic)"
                    ));
                }
            }
            "face-interval" => self.face_interval = get_u32(),
            "face-threshold" => self.live.face_threshold = get_f64(),
            "scene-cuts" => self.live.scene_cuts = v.get().expect("type checked upstream"),
            "shared-worker" => {
                self.shared_worker = string(v)
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| DEFAULT_SHARED_WORKER.into())
            }
            "conf-threshold" => self.live.conf_threshold = get_f64(),
            "iou-threshold" => self.live.iou_threshold = get_f64(),
            "keypoint-threshold" => self.live.keypoint_threshold = get_f64(),
            "input-size" => {
                let want = get_u32();
                let rounded = want.div_ceil(32) * 32;
                self.input_size = rounded;
                if rounded != want {
                    return Applied::Adjusted(format!(
                        "input-size {want} is not a multiple of 32; using {rounded}"
                    ));
                }
            }
            "targets" => self.live.targets = v.get().expect("type checked upstream"),
            "method" => self.live.method = v.get().expect("type checked upstream"),
            "margin" => self.live.margin = get_f64(),
            "pixel-size" => self.live.pixel_size = get_u32(),
            "fill-color" => self.live.fill_color = get_u32(),
            "hold-frames" => self.live.hold_frames = get_u32(),
            "on-failure" => self.on_failure = v.get().expect("type checked upstream"),
            "max-latency" => {
                let want: u64 = v.get().expect("type checked upstream");
                self.max_latency = want.min(MAX_LATENCY_LIMIT_NS);
                if want > MAX_LATENCY_LIMIT_NS {
                    return Applied::Adjusted(format!(
                        "max-latency {want} ns is more than {} s; using {} s",
                        MAX_LATENCY_LIMIT_NS / 1_000_000_000,
                        MAX_LATENCY_LIMIT_NS / 1_000_000_000
                    ));
                }
            }
            "detect-interval" => self.detect_interval = get_u32(),
            "detections-file" => {
                self.detections_file = string(v).filter(|p| !p.is_empty()).map(PathBuf::from)
            }
            other => unreachable!("unknown property {other}"),
        }
        Applied::Ok
    }

    /// The value of the property `name` (`provider` is the element's, not a setting).
    pub fn get(&self, name: &str) -> glib::Value {
        let l = &self.live;
        match name {
            "model" => self.model.display().to_string().to_value(),
            "batch-size" => self.batch_size.to_value(),
            "device" => self.device.to_value(),
            "threads" => self.threads.to_value(),
            "half-precision" => self.half_precision.to_value(),
            "openvino-bf16" => self.openvino_bf16.to_value(),
            "precision" => self.precision.to_value(),
            "detectors" => self.detectors.to_value(),
            "face-model" => self.face_model.display().to_string().to_value(),
            "face-scale" => self.face_scale.to_value(),
            "face-interval" => self.face_interval.to_value(),
            "face-threshold" => l.face_threshold.to_value(),
            "scene-cuts" => l.scene_cuts.to_value(),
            "shared-worker" => self.shared_worker.to_value(),
            "conf-threshold" => l.conf_threshold.to_value(),
            "iou-threshold" => l.iou_threshold.to_value(),
            "keypoint-threshold" => l.keypoint_threshold.to_value(),
            "input-size" => self.input_size.to_value(),
            "targets" => l.targets.to_value(),
            "method" => l.method.to_value(),
            "margin" => l.margin.to_value(),
            "pixel-size" => l.pixel_size.to_value(),
            "fill-color" => l.fill_color.to_value(),
            "hold-frames" => l.hold_frames.to_value(),
            "on-failure" => self.on_failure.to_value(),
            "max-latency" => self.max_latency.to_value(),
            "detect-interval" => self.detect_interval.to_value(),
            "detections-file" => self
                .detections_file
                .as_ref()
                .map(|p| p.display().to_string())
                .to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}
