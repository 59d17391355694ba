//! Command-line arguments, and how they become properties of the `yoloanonymize` and `x264enc`
//! elements.
//!
//! Every range below is the element's own range: a value clap accepts is a value the property
//! accepts, so setting it can never fail (GLib aborts on an out-of-range property value).

use std::ops::RangeInclusive;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use gst::prelude::*;
use gstyoloanonymize::yoloanonymize::{
    Method as ElementMethod, OnFailure as ElementOnFailure, Targets,
};

/// Anonymize people in video: blur, pixelate or fill their eyes, faces or bodies, found with
/// YOLO11n-pose, and write the result as H.264 in MP4 (audio is kept, as AAC).
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// A video file (any container GStreamer reads), a folder (every video file in it, not
    /// recursive) or a stream URL (rtsp://..., recorded until Ctrl-C or the end of the stream)
    pub input: String,

    /// The MP4 file to write; for a folder INPUT, the folder to write into (created if missing;
    /// same base names with .mp4)
    pub output: PathBuf,

    /// Parts of each person to redact: eyes, face, body, combined with + (e.g. eyes+face)
    #[arg(long, value_parser = parse_targets, default_value = "eyes")]
    pub targets: Targets,

    /// How regions are redacted
    #[arg(long, value_enum, default_value_t = Method::Blur)]
    pub method: Method,

    /// Extra size added on each side of every region, as a fraction of its size (0 to 2)
    #[arg(long, value_parser = fraction(0.0..=2.0), default_value_t = 0.15)]
    pub margin: f64,

    /// Block size in pixels for --method pixelate (0 = scaled to each region)
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=1024), default_value_t = 0)]
    pub pixel_size: u32,

    /// Colour for --method fill, as RRGGBB in hex (e.g. 000000 for black)
    #[arg(long, value_parser = parse_color, default_value = "000000")]
    pub fill_color: u32,

    /// Minimum person score (0 to 1) for a detection to be redacted
    #[arg(long, value_parser = fraction(0.0..=1.0), default_value_t = 0.25)]
    pub conf_threshold: f64,

    /// Frames analysed together in one inference call (1 to 32)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=32), default_value_t = 4)]
    pub batch_size: u32,

    /// Execution provider: auto (CUDA if available, else OpenVINO on the CPU if installed, else CPU), cpu, openvino, cuda or cuda:N
    #[arg(long, value_parser = parse_device, default_value = "auto")]
    pub device: String,

    /// ONNX Runtime threads (0 = one per core)
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=256), default_value_t = 0)]
    pub threads: u32,

    /// Long side of the network input in pixels (32 to 4096, rounded up to a multiple of 32)
    #[arg(long, value_parser = clap::value_parser!(u32).range(32..=4096), default_value_t = 640)]
    pub input_size: u32,

    /// Frames a person stays redacted after the model last found them (0 to 1000)
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=1000), default_value_t = 8)]
    pub hold_frames: u32,

    /// On CUDA, run the float16 variant of the model (<model>-fp16.onnx); ignored on the CPU
    #[arg(long)]
    pub half_precision: bool,

    /// Run the model on every Nth frame only (1 to 100); regions are carried in between
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100), default_value_t = 1)]
    pub detect_interval: u32,

    /// Frames the model could not analyse: pixelated whole (redact-frame), stop with an error
    /// (error), or let out untouched (passthrough: UNSAFE, faces leak)
    #[arg(long, value_enum, default_value_t = OnFailure::RedactFrame)]
    pub on_failure: OnFailure,

    /// YOLO pose ONNX model [default: the bundled YOLO11n-pose]
    #[arg(long, value_parser = parse_model)]
    pub model: Option<PathBuf>,

    /// Write one JSON line per frame (regions, people, keypoints) to this file; for a folder
    /// INPUT, a folder that gets one <name>.jsonl per video
    #[arg(long, value_name = "PATH")]
    pub detections_file: Option<PathBuf>,

    /// x264 speed preset: faster presets encode faster, slower ones give smaller files
    #[arg(long, value_enum, default_value_t = Preset::Veryfast)]
    pub preset: Preset,

    /// Video bitrate in kbit/s [default: constant quality]
    #[arg(long, value_parser = clap::value_parser!(u32).range(16..=2_048_000))]
    pub bitrate: Option<u32>,

    /// No progress bar and no summary; errors and warnings (such as frames that could not be
    /// analysed) are still printed
    #[arg(long, short)]
    pub quiet: bool,
}

/// `--method`: the element's `method` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// Strong box blur scaled to the region
    Blur,
    /// Block means, block size scaled to the region or --pixel-size
    Pixelate,
    /// Solid --fill-color
    Fill,
}

impl From<Method> for ElementMethod {
    fn from(m: Method) -> Self {
        match m {
            Method::Blur => ElementMethod::Blur,
            Method::Pixelate => ElementMethod::Pixelate,
            Method::Fill => ElementMethod::Fill,
        }
    }
}

/// `--on-failure`: the element's `on-failure` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnFailure {
    /// Pixelate the whole frame and print a warning
    RedactFrame,
    /// Stop with an error
    Error,
    /// Let the frame out untouched (UNSAFE: faces leak)
    Passthrough,
}

impl From<OnFailure> for ElementOnFailure {
    fn from(f: OnFailure) -> Self {
        match f {
            OnFailure::RedactFrame => ElementOnFailure::RedactFrame,
            OnFailure::Error => ElementOnFailure::Error,
            OnFailure::Passthrough => ElementOnFailure::Passthrough,
        }
    }
}

/// `--preset`: x264enc's `speed-preset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    Ultrafast,
    Superfast,
    Veryfast,
    Faster,
    Fast,
    Medium,
    Slow,
    Slower,
    Veryslow,
}

impl Preset {
    /// The nick x264enc knows the preset by.
    fn nick(self) -> &'static str {
        match self {
            Preset::Ultrafast => "ultrafast",
            Preset::Superfast => "superfast",
            Preset::Veryfast => "veryfast",
            Preset::Faster => "faster",
            Preset::Fast => "fast",
            Preset::Medium => "medium",
            Preset::Slow => "slow",
            Preset::Slower => "slower",
            Preset::Veryslow => "veryslow",
        }
    }
}

/// Constant-quality factor used when no `--bitrate` is given (x264's CRF scale, lower is better).
const DEFAULT_QUALITY: u32 = 21;

impl Cli {
    /// Sets the `yoloanonymize` element's properties from the flags. `detections_file` is the
    /// audit file for this input (see [`crate::cli::jobs`]), if any.
    pub fn configure_anonymizer(&self, element: &gst::Element, detections_file: Option<&PathBuf>) {
        element.set_property("targets", self.targets);
        element.set_property("method", ElementMethod::from(self.method));
        element.set_property("margin", self.margin);
        element.set_property("pixel-size", self.pixel_size);
        element.set_property("fill-color", self.fill_color);
        element.set_property("conf-threshold", self.conf_threshold);
        element.set_property("batch-size", self.batch_size);
        element.set_property("device", &self.device);
        element.set_property("threads", self.threads);
        element.set_property("input-size", self.input_size);
        element.set_property("hold-frames", self.hold_frames);
        element.set_property("half-precision", self.half_precision);
        element.set_property("detect-interval", self.detect_interval);
        element.set_property("on-failure", ElementOnFailure::from(self.on_failure));
        if let Some(model) = &self.model {
            element.set_property("model", model.to_string_lossy().as_ref());
        }
        if let Some(path) = detections_file {
            element.set_property("detections-file", path.to_string_lossy().as_ref());
        }
    }

    /// Sets x264enc's speed preset and rate control from `--preset` and `--bitrate`.
    pub fn configure_encoder(&self, encoder: &gst::Element) {
        encoder.set_property_from_str("speed-preset", self.preset.nick());
        match self.bitrate {
            Some(kbps) => {
                encoder.set_property_from_str("pass", "cbr");
                encoder.set_property("bitrate", kbps);
            }
            None => {
                encoder.set_property_from_str("pass", "qual");
                encoder.set_property("quantizer", DEFAULT_QUALITY);
            }
        }
    }
}

/// Parses `--targets`: `eyes`, `face`, `body`, joined by `+` (or `,`).
fn parse_targets(s: &str) -> Result<Targets, String> {
    let mut targets = Targets::empty();
    for part in s.split(['+', ',']).map(str::trim) {
        targets |= match part {
            "eyes" => Targets::EYES,
            "face" => Targets::FACE,
            "body" => Targets::BODY,
            _ => {
                return Err(format!(
                    "unknown target '{part}' (expected eyes, face, body, joined by +)"
                ));
            }
        };
    }
    Ok(targets)
}

/// Parses `--model`: an existing file (the element checks that it is a pose model).
fn parse_model(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    if path.is_file() {
        Ok(path)
    } else {
        Err("no such model file".to_owned())
    }
}

/// Parses `--device`: `auto`, `cpu`, `openvino`, `cuda` or `cuda:N`.
fn parse_device(s: &str) -> Result<String, String> {
    let ok = matches!(s, "auto" | "cpu" | "openvino" | "cuda")
        || s.strip_prefix("cuda:")
            .is_some_and(|n| n.parse::<u32>().is_ok());
    if ok {
        Ok(s.to_owned())
    } else {
        Err("expected auto, cpu, openvino, cuda or cuda:N".to_owned())
    }
}

/// Parses `--fill-color`: six hex digits, with an optional `#` or `0x`.
fn parse_color(s: &str) -> Result<u32, String> {
    let hex = s
        .strip_prefix('#')
        .or_else(|| s.strip_prefix("0x"))
        .unwrap_or(s);
    match u32::from_str_radix(hex, 16) {
        Ok(v) if hex.len() == 6 => Ok(v),
        _ => Err("expected a colour as RRGGBB in hex, e.g. 000000 or ff8800".to_owned()),
    }
}

/// A parser for a number within `range`.
fn fraction(range: RangeInclusive<f64>) -> impl Fn(&str) -> Result<f64, String> + Clone {
    move |s: &str| match s.parse::<f64>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(format!(
            "expected a number from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_combine() {
        assert_eq!(
            parse_targets("eyes+face"),
            Ok(Targets::EYES | Targets::FACE)
        );
        assert!(parse_targets("eyes+nose").is_err());
    }

    #[test]
    fn devices() {
        assert!(parse_device("cuda:1").is_ok());
        assert!(parse_device("gpu").is_err());
        assert!(parse_device("cuda:x").is_err());
    }

    #[test]
    fn colors() {
        assert_eq!(parse_color("#ff8800"), Ok(0xff8800));
        assert!(parse_color("fff").is_err());
    }
}
