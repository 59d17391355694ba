//! # yoloanonymize
//!
//! A GStreamer element that anonymizes people in video: it batches frames, runs YOLO pose
//! inference through ONNX Runtime on its own thread and blurs, pixelates or fills the eyes, faces
//! or bodies it finds, in place, in the frame's own format.
//!
//! ```text
//! gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! yoloanonymize ! x264enc ! mp4mux ! filesink location=out.mp4
//! ```
//!
//! The modules below are plain Rust (no GStreamer) and can be used on their own: [`preprocess`]
//! (letterbox and tensor fill), [`decode`] (pose output decoding and NMS), [`regions`] (what to
//! redact), [`redact`] (how), [`engine`] (ONNX Runtime session) and [`worker`] (inference thread).

use gst::glib;

pub mod audit;
pub mod batcher;
pub mod decode;
pub mod detection;
pub mod engine;
pub mod face;
pub mod frame;
pub mod fusion;
pub mod preprocess;
pub mod redact;
pub mod regions;
pub mod scene;
pub mod stats;
pub mod temporal;
pub mod uri;
pub mod worker;
pub mod yoloanonymize;

/// Path of the bundled YOLO11n-pose model: the installed data directory when built by meson
/// (`YOLOANONYMIZE_MODEL_DIR`), else the source tree's `models/`.
pub fn default_model_path() -> std::path::PathBuf {
    bundled_model("yolo11n-pose-dynamic.onnx")
}

/// Path of the bundled face detector (YuNet, [`face::FACE_MODEL_FILE`]), found as
/// [`default_model_path`] is.
pub fn default_face_model_path() -> std::path::PathBuf {
    bundled_model(face::FACE_MODEL_FILE)
}

fn bundled_model(file: &str) -> std::path::PathBuf {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(file);
    match option_env!("YOLOANONYMIZE_MODEL_DIR") {
        Some(dir) if std::path::Path::new(dir).join(file).exists() || !source.exists() => {
            std::path::Path::new(dir).join(file)
        }
        _ => source,
    }
}

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    yoloanonymize::register(plugin)
}

gst::plugin_define!(
    yoloanonymize,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    "yoloanonymize",
    env!("BUILD_REL_DATE")
);
