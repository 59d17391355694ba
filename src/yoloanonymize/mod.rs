//! The `yoloanonymize` element: public types and registration.

use gst::glib;
use gst::prelude::*;

mod imp;
mod input;
mod loading;
mod outbox;
mod settings;
mod state;
mod video;

pub(crate) static CAT: std::sync::LazyLock<gst::DebugCategory> = std::sync::LazyLock::new(|| {
    gst::DebugCategory::new(
        "yoloanonymize",
        gst::DebugColorFlags::empty(),
        Some("YOLO pose anonymizer"),
    )
});

pub use settings::MAX_LATENCY_LIMIT_NS;

glib::wrapper! {
    pub struct YoloAnonymize(ObjectSubclass<imp::YoloAnonymize>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Which parts of each person are redacted (`targets` property).
#[glib::flags(name = "GstYoloAnonymizeTargets")]
pub enum Targets {
    #[flags_value(name = "Eyes: one band over both eyes", nick = "eyes")]
    EYES = crate::regions::TARGET_EYES,
    #[flags_value(name = "Face: the whole head", nick = "face")]
    FACE = crate::regions::TARGET_FACE,
    #[flags_value(name = "Body: the whole person box", nick = "body")]
    BODY = crate::regions::TARGET_BODY,
}

/// Which detectors find people (`detectors` property).
#[glib::flags(name = "GstYoloAnonymizeDetectors")]
pub enum Detectors {
    #[flags_value(
        name = "Pose: the YOLO pose model (people, their keypoints)",
        nick = "pose"
    )]
    POSE = 1,
    #[flags_value(
        name = "Face: the face detector (faces whose body is hidden or too small for the pose model)",
        nick = "face"
    )]
    FACE = 2,
}

/// What the pose model computes in on the CPU (`precision` property).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstYoloAnonymizePrecision")]
pub enum Precision {
    #[enum_value(
        name = "Auto: on OpenVINO the int8 model where it is installed, else bfloat16 where the CPU has it, else float32; float32 elsewhere",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(name = "Float32", nick = "fp32")]
    Fp32 = 1,
    #[enum_value(
        name = "bfloat16 (OpenVINO on a CPU with AVX512-BF16 or AMX; else float32, said)",
        nick = "bf16"
    )]
    Bf16 = 2,
    #[enum_value(
        name = "int8: the model's int8 variant (<model>-int8.onnx), regions padded for its jitter",
        nick = "int8"
    )]
    Int8 = 3,
}

impl From<Precision> for crate::engine::Precision {
    fn from(p: Precision) -> Self {
        match p {
            Precision::Auto => Self::Auto,
            Precision::Fp32 => Self::Fp32,
            Precision::Bf16 => Self::Bf16,
            Precision::Int8 => Self::Int8,
        }
    }
}

/// How regions are redacted (`method` property).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstYoloAnonymizeMethod")]
pub enum Method {
    #[enum_value(name = "Blur: strong box blur scaled to the region", nick = "blur")]
    Blur = 0,
    #[enum_value(
        name = "Pixelate: block means, block size scaled to the region or pixel-size",
        nick = "pixelate"
    )]
    Pixelate = 1,
    #[enum_value(name = "Fill: solid fill-color", nick = "fill")]
    Fill = 2,
}

/// What happens to frames the model could not analyse (`on-failure` property).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstYoloAnonymizeOnFailure")]
pub enum OnFailure {
    #[enum_value(
        name = "Redact frame: pixelate the whole frame and post a warning",
        nick = "redact-frame"
    )]
    RedactFrame = 0,
    #[enum_value(name = "Error: stop the pipeline with an error", nick = "error")]
    Error = 1,
    #[enum_value(
        name = "Passthrough: let the frame out untouched (UNSAFE, faces leak)",
        nick = "passthrough"
    )]
    Passthrough = 2,
}

pub use crate::worker::Fault;

impl YoloAnonymize {
    /// Test hook: makes the inference thread of the next start fail, panic or stall, to check
    /// the fail-closed behaviour. Not a property, so `gst-inspect-1.0` does not show it.
    #[doc(hidden)]
    pub fn inject_fault(&self, fault: Option<Fault>) {
        use gst::subclass::prelude::ObjectSubclassIsExt;
        self.imp().set_fault(fault);
    }
}

// The GStreamer enums mirror the pure ones one to one: both conversions are exhaustive, so a
// variant added on one side only does not compile.
impl From<Method> for crate::redact::Method {
    fn from(m: Method) -> Self {
        match m {
            Method::Blur => Self::Blur,
            Method::Pixelate => Self::Pixelate,
            Method::Fill => Self::Fill,
        }
    }
}

impl From<crate::redact::Method> for Method {
    fn from(m: crate::redact::Method) -> Self {
        match m {
            crate::redact::Method::Blur => Self::Blur,
            crate::redact::Method::Pixelate => Self::Pixelate,
            crate::redact::Method::Fill => Self::Fill,
        }
    }
}

impl From<OnFailure> for crate::batcher::OnFailure {
    fn from(m: OnFailure) -> Self {
        match m {
            OnFailure::RedactFrame => Self::RedactFrame,
            OnFailure::Error => Self::Error,
            OnFailure::Passthrough => Self::Passthrough,
        }
    }
}

impl From<crate::batcher::OnFailure> for OnFailure {
    fn from(m: crate::batcher::OnFailure) -> Self {
        match m {
            crate::batcher::OnFailure::RedactFrame => Self::RedactFrame,
            crate::batcher::OnFailure::Error => Self::Error,
            crate::batcher::OnFailure::Passthrough => Self::Passthrough,
        }
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    if let Some(dir) = plugin
        .filename()
        .and_then(|f| f.parent().map(|p| p.to_path_buf()))
    {
        let _ = imp::PLUGIN_DIR.set(dir);
    }
    gst::Element::register(
        Some(plugin),
        "yoloanonymize",
        gst::Rank::NONE,
        YoloAnonymize::static_type(),
    )
}
