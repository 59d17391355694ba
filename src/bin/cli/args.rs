//! Command-line arguments, and how they become properties of the `yoloanonymize` and `x264enc`
//! elements.
//!
//! The element is the one source of truth for the flags that are its properties
//! ([`ELEMENT_FLAGS`]): [`Cli::command`] reads each one's `glib::ParamSpec` from the registered
//! element and takes its default, its range (so a value clap accepts is a value the property
//! accepts, and setting it can never fail: GLib aborts on an out-of-range value), the nicks of
//! its enum or flags values, and its default spelling. `--device` is parsed by the engine's own
//! [`Device::parse`].

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Arg, ArgMatches, Command, CommandFactory, FromArgMatches, Parser, ValueEnum};
use gst::glib;
use gst::prelude::*;
use gstyoloanonymize::engine::Device;
use gstyoloanonymize::yoloanonymize::{
    Detectors, Method, OnFailure, Precision, Targets, YoloAnonymize,
};

/// Anonymize people in video: blur, pixelate or fill their eyes, faces or bodies, found with
/// YOLO11n-pose, and write the result as H.264 in MP4 (audio is kept, as AAC).
//
// The flags that are properties of the `yoloanonymize` element (ELEMENT_FLAGS) get their default,
// their range and their values from the element at run time (Cli::command).
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// A video file (any container GStreamer reads), a folder (every video file in it, not
    /// recursive) or a stream URL (rtsp://..., recorded until Ctrl-C or the end of the stream)
    pub input: String,

    /// The MP4 file to write; for a folder INPUT, the folder to write into (created if missing;
    /// same base names with .mp4). A device or FIFO (such as /dev/null) is written as it is
    pub output: PathBuf,

    /// Replace outputs (and detections files) that exist already; they are replaced only when the
    /// run succeeds
    #[arg(long)]
    pub overwrite: bool,

    /// Parts of each person to redact, combined with + (e.g. eyes+face)
    #[arg(long, value_parser = parse_targets)]
    pub targets: Targets,

    /// How regions are redacted
    #[arg(long, value_parser = parse_nick::<Method>)]
    pub method: Method,

    /// Which detectors find people, combined with +: pose (the YOLO pose model), face (the face
    /// detector beside it, for faces whose body is hidden or too small)
    #[arg(long, value_parser = parse_detectors)]
    pub detectors: Detectors,

    /// The face detector sees the frame scaled by this factor (1 = full resolution)
    #[arg(long)]
    pub face_scale: f64,

    /// Run the face detector on every Nth analysed frame (and after every scene cut); faces are
    /// tracked in between
    #[arg(long)]
    pub face_interval: u32,

    /// What the pose model computes in (auto = the fastest precision measured to keep the
    /// coverage bar on the provider in use)
    #[arg(long, value_parser = parse_nick::<Precision>)]
    pub precision: Precision,

    /// Extra size added on each side of every region, as a fraction of its size
    #[arg(long)]
    pub margin: f64,

    /// Block size in pixels for --method pixelate (0 = scaled to each region)
    #[arg(long)]
    pub pixel_size: u32,

    /// Colour for --method fill, as RRGGBB in hex (e.g. 000000 for black)
    #[arg(long, value_parser = parse_color)]
    pub fill_color: u32,

    /// Minimum person score for a detection to be redacted
    #[arg(long)]
    pub conf_threshold: f64,

    /// Frames analysed together in one inference call
    #[arg(long)]
    pub batch_size: u32,

    /// Execution provider: auto (CUDA if available, else OpenVINO on the CPU if installed, else
    /// CPU), cpu, openvino, cuda or cuda:N
    #[arg(long, value_parser = Device::parse)]
    pub device: Device,

    /// ONNX Runtime threads (0 = one per core)
    #[arg(long)]
    pub threads: u32,

    /// Long side of the network input in pixels (rounded up to a multiple of 32)
    #[arg(long)]
    pub input_size: u32,

    /// Frames a person stays redacted after the model last found them
    #[arg(long)]
    pub hold_frames: u32,

    /// On CUDA, run the float16 variant of the model (<model>-fp16.onnx); ignored on the CPU
    #[arg(long)]
    pub half_precision: bool,

    /// Run the model on every Nth frame only; regions are carried in between
    #[arg(long)]
    pub detect_interval: u32,

    /// What happens to frames the model could not analyse
    #[arg(long, value_parser = parse_nick::<OnFailure>)]
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

/// The flags that are the `yoloanonymize` element's properties of the same name: their default
/// and range (numbers), values (enums and flags) and default spelling (device) are the element's.
pub const ELEMENT_FLAGS: &[&str] = &[
    "targets",
    "method",
    "detectors",
    "face-scale",
    "face-interval",
    "precision",
    "margin",
    "pixel-size",
    "fill-color",
    "conf-threshold",
    "batch-size",
    "device",
    "threads",
    "input-size",
    "hold-frames",
    "half-precision",
    "detect-interval",
    "on-failure",
];

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
    /// The command line's definition, with the defaults, ranges and values of the flags in
    /// [`ELEMENT_FLAGS`] read from the `yoloanonymize` element's properties. GStreamer must be
    /// initialised.
    pub fn command() -> Command {
        let class = glib::Class::<glib::Object>::from_type(YoloAnonymize::static_type())
            .expect("the yoloanonymize element type is registered");
        ELEMENT_FLAGS
            .iter()
            .fold(<Self as CommandFactory>::command(), |cmd, &name| {
                let pspec = class
                    .find_property(name)
                    .unwrap_or_else(|| panic!("yoloanonymize has no property {name}"));
                cmd.mut_arg(name.replace('-', "_"), |arg| match name {
                    "method" => enum_arg::<Method>(arg, &pspec),
                    "precision" => enum_arg::<Precision>(arg, &pspec),
                    "on-failure" => enum_arg::<OnFailure>(arg, &pspec),
                    _ => from_property(arg, &pspec),
                })
            })
    }

    /// Parses `args` (the program name first) against [`Cli::command`].
    pub fn try_parse_with_element<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut matches: ArgMatches = Self::command().try_get_matches_from(args)?;
        Cli::from_arg_matches_mut(&mut matches)
    }

    /// Sets the `yoloanonymize` element's properties from the flags. `detections_file` is the
    /// audit file for this input (see [`crate::cli::jobs`]), if any.
    pub fn configure_anonymizer(&self, element: &gst::Element, detections_file: Option<&PathBuf>) {
        element.set_property("targets", self.targets);
        element.set_property("method", self.method);
        element.set_property("detectors", self.detectors);
        element.set_property("face-scale", self.face_scale);
        element.set_property("face-interval", self.face_interval);
        element.set_property("precision", self.precision);
        element.set_property("margin", self.margin);
        element.set_property("pixel-size", self.pixel_size);
        element.set_property("fill-color", self.fill_color);
        element.set_property("conf-threshold", self.conf_threshold);
        element.set_property("batch-size", self.batch_size);
        element.set_property("device", self.device.to_string());
        element.set_property("threads", self.threads);
        element.set_property("input-size", self.input_size);
        element.set_property("hold-frames", self.hold_frames);
        element.set_property("half-precision", self.half_precision);
        element.set_property("detect-interval", self.detect_interval);
        element.set_property("on-failure", self.on_failure);
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

/// `arg` with the default, range or values of the element property `pspec`.
fn from_property(arg: Arg, pspec: &glib::ParamSpec) -> Arg {
    let arg = arg.required(false);
    if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt>() {
        let (min, max, default) = (p.minimum(), p.maximum(), p.default_value());
        if pspec.name() == "fill-color" {
            // Written as RRGGBB; parse_color keeps it within 0xFFFFFF, the property's maximum.
            assert_eq!(max, 0xFF_FF_FF, "fill-color's range");
            return arg.default_value(leak(format!("{default:06x}")));
        }
        let arg = with_range(arg, min, max);
        arg.value_parser(clap::value_parser!(u32).range(i64::from(min)..=i64::from(max)))
            .default_value(leak(default.to_string()))
    } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecDouble>() {
        let (min, max, default) = (p.minimum(), p.maximum(), p.default_value());
        with_range(arg, min, max)
            .value_parser(move |s: &str| match s.trim().parse::<f64>() {
                Ok(v) if (min..=max).contains(&v) => Ok(v),
                _ => Err(format!("expected a number from {min} to {max}")),
            })
            .default_value(leak(default.to_string()))
    } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecFlags>() {
        let class = p.flags_class();
        let default = p.default_value_as_u32();
        let nicks: Vec<&str> = class.values().iter().map(|v| v.nick()).collect();
        let default: Vec<&str> = class
            .values()
            .iter()
            .filter(|v| v.value() & default != 0)
            .map(|v| v.nick())
            .collect();
        let help = format!(
            "{}: {}",
            arg.get_help().map(ToString::to_string).unwrap_or_default(),
            nicks.join(", ")
        );
        arg.help(help).default_value(leak(default.join("+")))
    } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecString>() {
        arg.default_value(leak(p.default_value().unwrap_or("").to_owned()))
    } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecBoolean>() {
        // A switch: it can only turn on what is off by default.
        assert!(!p.default_value(), "{} is on by default", pspec.name());
        arg
    } else {
        panic!("{}: no flag for a {} property", pspec.name(), pspec.type_())
    }
}

/// `arg` taking the nicks of the element's enum property `pspec` (each described by its value's
/// name), the default's nick by default.
fn enum_arg<E>(arg: Arg, pspec: &glib::ParamSpec) -> Arg
where
    E: StaticType + for<'a> glib::value::FromValue<'a> + Clone + Send + Sync + 'static,
{
    let p = pspec
        .downcast_ref::<glib::ParamSpecEnum>()
        .unwrap_or_else(|| panic!("{} is not an enum property", pspec.name()));
    let class = p.enum_class();
    assert_eq!(class.type_(), E::static_type(), "{}'s type", pspec.name());
    let default = class
        .value(p.default_value_as_i32())
        .expect("the default is one of the values")
        .nick();
    let values: Vec<PossibleValue> = class
        .values()
        .iter()
        .map(|v| PossibleValue::new(v.nick()).help(description(v.name()).to_owned()))
        .collect();
    arg.required(false)
        .value_parser(
            PossibleValuesParser::new(values).try_map(|nick: String| parse_nick::<E>(&nick)),
        )
        .default_value(default)
}

/// `arg` with `(min to max)` at the end of its help (inside its closing parenthesis if it has
/// one).
fn with_range(arg: Arg, min: impl std::fmt::Display, max: impl std::fmt::Display) -> Arg {
    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
    let help = match help.strip_suffix(')') {
        Some(head) => format!("{head}; {min} to {max})"),
        None => format!("{help} ({min} to {max})"),
    };
    arg.help(help)
}

/// An enum value's description without its `Name: ` lead (`Blur: strong box blur` → `strong box
/// blur`).
fn description(name: &str) -> &str {
    name.split_once(": ").map_or(name, |(_, d)| d)
}

/// A string that lives as long as the program (clap takes `&'static str` defaults; the command
/// is built once).
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Parses an enum flag by the nick of the element's value (`blur`, `redact-frame`).
fn parse_nick<E>(s: &str) -> Result<E, String>
where
    E: StaticType + for<'a> glib::value::FromValue<'a>,
{
    let class = glib::EnumClass::with_type(E::static_type()).expect("an enum type");
    class
        .to_value_by_nick(s)
        .and_then(|v| v.get::<E>().ok())
        .ok_or_else(|| {
            let nicks: Vec<&str> = class.values().iter().map(|v| v.nick()).collect();
            format!("expected one of {}", nicks.join(", "))
        })
}

/// The bits of `s`: nicks of the flags type `t` joined by `+` (or `,`); `what` names one flag in
/// the error.
fn parse_flag_bits(s: &str, t: glib::Type, what: &str) -> Result<u32, String> {
    let class = glib::FlagsClass::with_type(t).expect("a flags type");
    let mut bits = 0;
    for part in s.split(['+', ',']).map(str::trim) {
        match class.value_by_nick(part) {
            Some(v) => bits |= v.value(),
            None => {
                let nicks: Vec<&str> = class.values().iter().map(|v| v.nick()).collect();
                return Err(format!(
                    "unknown {what} '{part}' (expected {}, joined by +)",
                    nicks.join(", ")
                ));
            }
        }
    }
    Ok(bits)
}

/// Parses `--detectors`: `pose`, `face` or both, joined by `+`.
fn parse_detectors(s: &str) -> Result<Detectors, String> {
    let bits = parse_flag_bits(s, Detectors::static_type(), "detector")?;
    Detectors::from_bits(bits)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| format!("unknown detectors '{s}'"))
}

/// Parses `--targets`: the nicks of the element's `targets` flags (`eyes`, `face`, `body`),
/// joined by `+` (or `,`).
fn parse_targets(s: &str) -> Result<Targets, String> {
    let bits = parse_flag_bits(s, Targets::static_type(), "target")?;
    Targets::from_bits(bits).ok_or_else(|| format!("unknown targets '{s}'"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn init() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            gst::init().unwrap();
            gstyoloanonymize::plugin_register_static().unwrap();
        });
    }

    fn parse(extra: &[&str]) -> Result<Cli, clap::Error> {
        init();
        let args = ["yoloanonymize-cli", "in.mp4", "out.mp4"];
        Cli::try_parse_with_element(args.iter().chain(extra))
    }

    /// Every flag left out is the element's default: set on a fresh element, no property changes.
    #[test]
    fn defaults_are_the_elements() {
        let cli = parse(&[]).unwrap();
        let fresh = gst::ElementFactory::make("yoloanonymize").build().unwrap();
        let configured = gst::ElementFactory::make("yoloanonymize").build().unwrap();
        cli.configure_anonymizer(&configured, None);
        for name in ELEMENT_FLAGS {
            let (a, b) = (fresh.property_value(name), configured.property_value(name));
            assert_eq!(
                format!("{a:?}"),
                format!("{b:?}"),
                "--{name}: the CLI's default is not the element's"
            );
        }
    }

    /// Each number flag takes exactly its property's range: both ends, and not one step beyond.
    #[test]
    fn ranges_are_the_elements() {
        init();
        let element = gst::ElementFactory::make("yoloanonymize").build().unwrap();
        let mut checked = 0;
        for name in ELEMENT_FLAGS {
            let pspec = element.find_property(name).unwrap();
            let flag = format!("--{name}");
            let (inside, outside): (Vec<String>, Vec<String>) =
                if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt>() {
                    if *name == "fill-color" {
                        continue;
                    }
                    let below = p.minimum().checked_sub(1).map(|v| v.to_string());
                    (
                        vec![p.minimum().to_string(), p.maximum().to_string()],
                        below
                            .into_iter()
                            .chain([(p.maximum() as u64 + 1).to_string()])
                            .collect(),
                    )
                } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecDouble>() {
                    (
                        vec![p.minimum().to_string(), p.maximum().to_string()],
                        vec![
                            (p.minimum() - 0.01).to_string(),
                            (p.maximum() + 0.01).to_string(),
                        ],
                    )
                } else {
                    continue;
                };
            for v in &inside {
                let cli = parse(&[&flag, v]).unwrap_or_else(|e| panic!("{flag} {v}: {e}"));
                cli.configure_anonymizer(&element, None);
            }
            for v in &outside {
                assert!(parse(&[&flag, v]).is_err(), "{flag} {v} accepted");
            }
            checked += 1;
        }
        assert_eq!(checked, 10, "number flags checked");
    }

    #[test]
    fn enums_take_the_elements_nicks() {
        let cli = parse(&["--method", "pixelate", "--on-failure", "error"]).unwrap();
        assert_eq!(cli.method, Method::Pixelate);
        assert_eq!(cli.on_failure, OnFailure::Error);
        assert!(parse(&["--method", "sharpen"]).is_err());
        assert!(parse(&["--on-failure", "redact_frame"]).is_err());
    }

    #[test]
    fn targets_combine() {
        init();
        assert_eq!(
            parse_targets("eyes+face"),
            Ok(Targets::EYES | Targets::FACE)
        );
        assert!(parse_targets("eyes+nose").is_err());
        assert!(parse_targets("").is_err());
    }

    /// `--device` takes what the element takes, spelled as the element spells it.
    #[test]
    fn devices_are_the_engines() {
        for s in ["auto", "cpu", "openvino", "cuda", "cuda:1", "gpu", "CPU"] {
            let cli = parse(&["--device", s]).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(Ok(cli.device), Device::parse(s));
        }
        for s in ["tpu", "cuda:x", "cuda:-1"] {
            assert!(parse(&["--device", s]).is_err(), "{s}");
        }
    }

    #[test]
    fn colors() {
        assert_eq!(parse_color("#ff8800"), Ok(0xff8800));
        assert!(parse_color("fff").is_err());
    }
}
