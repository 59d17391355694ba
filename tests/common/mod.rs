//! Helpers shared by the integration tests: paths, GStreamer set-up, the built plugin, test
//! clips, frame counts, appsink pull loops and the timing lock.
//! Each test binary includes this with `mod common;` and uses part of it.
//!
//! # Timing-sensitive tests
//!
//! cargo runs the tests of one binary on several threads at once. A test that measures wall-clock
//! time (a live deadline, a latency, "within N seconds") would then be late because of the
//! others, on a small machine especially. Such a test holds [`timing()`] (the write side of
//! [`TIMING`]) for its whole run; every other test of the same binary that loads the CPU holds
//! [`shared()`] (the read side). Timing tests thus run alone, one at a time, and the other tests
//! still run in parallel with each other. Binaries without timing tests need neither.
//!
//! ```ignore
//! #[test]
//! fn live_deadline_is_kept() {
//!     let _timing = common::timing();
//!     // ...
//! }
//!
//! #[test]
//! fn frames_come_out_in_order() {
//!     let _shared = common::shared();
//!     // ...
//! }
//! ```
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once, RwLock, RwLockReadGuard, RwLockWriteGuard};

use gst::prelude::*;

/// Serialises the timing-sensitive tests of a binary against each other and against its other
/// tests; see the module documentation. Take it through [`timing()`] and [`shared()`].
pub static TIMING: RwLock<()> = RwLock::new(());

/// For a test that measures wall-clock time: runs alone among the tests of its binary that take
/// [`TIMING`]. A test that failed while holding it does not poison it for the others.
pub fn timing() -> RwLockWriteGuard<'static, ()> {
    TIMING.write().unwrap_or_else(|e| e.into_inner())
}

/// For any other test of a binary that has timing tests: runs in parallel with the other
/// `shared()` tests, never with a [`timing()`] one.
pub fn shared() -> RwLockReadGuard<'static, ()> {
    TIMING.read().unwrap_or_else(|e| e.into_inner())
}

/// A path in the source tree.
pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A file of `tests/data/`.
pub fn data(name: &str) -> PathBuf {
    repo("tests/data").join(name)
}

/// The sample clip: 100 frames of 768x576, no audio (the bundled cut of `vtest.avi`).
pub fn sample() -> PathBuf {
    repo("samples/vtest-short.mp4")
}

/// `target/<profile>`, where cargo put this test (in `deps/`), the plugin
/// (`libgstyoloanonymize.so`), the command-line tool and the examples, whatever the target
/// directory (`CARGO_TARGET_DIR`) is.
pub fn plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Builds `examples/NAME.rs` with the cargo and profile running this test (a no-op when it is up
/// to date, as under `cargo test --all-targets`; `cargo test --test X` works too) and returns
/// the binary's path, as cargo reports it (whatever the target directory).
pub fn build_example(name: &str) -> PathBuf {
    let profile = plugin_dir();
    let profile_args: &[&str] = match profile.file_name().unwrap().to_str().unwrap() {
        "debug" => &[],
        "release" => &["--release"],
        other => &["--profile", other],
    };
    let out = std::process::Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "--example",
            name,
            "--message-format=json-render-diagnostics",
        ])
        .args(profile_args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run cargo");
    assert!(out.status.success(), "cargo build --example {name} failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reports the example's executable")
}

/// Initialises GStreamer and registers the element in-process, once (more calls are free).
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstyoloanonymize::plugin_register_static().expect("register plugin");
    });
}

/// Runs a `gst-launch` style description to EOS, panicking with the error otherwise.
pub fn run_launch(description: &str) {
    init();
    let pipeline = gst::parse::launch(description).expect("parse pipeline");
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("pipeline finished");
    pipeline.set_state(gst::State::Null).unwrap();
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("{description}: {}", e.error());
    }
}

/// Writes an H.264 MP4 of `frames` frames of `width`x`height` at 25 frames/s (videotestsrc's
/// moving ball; no audio).
pub fn make_clip(path: &Path, frames: u32, width: u32, height: u32) {
    make_clip_with_audio(path, frames, width, height, 0);
}

/// [`make_clip`], with `audio_seconds` of AAC audio if `audio_seconds > 0`.
pub fn make_clip_with_audio(path: &Path, frames: u32, width: u32, height: u32, audio_seconds: u32) {
    let mut description = format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width={width},height={height},framerate=25/1 \
         ! x264enc speed-preset=ultrafast ! mux. mp4mux name=mux ! filesink location={}",
        path.display()
    );
    if audio_seconds > 0 {
        // audiotestsrc: 1024 samples a buffer at 44.1 kHz.
        let buffers = audio_seconds * 44_100 / 1024;
        description.push_str(&format!(
            " audiotestsrc num-buffers={buffers} ! audioconvert ! avenc_aac ! mux."
        ));
    }
    run_launch(&description);
}

/// What a file decodes to.
#[derive(Debug, Default)]
pub struct Streams {
    pub video_frames: u64,
    pub audio_buffers: u64,
}

/// The number of video frames `path` decodes to (`decodebin`, every frame counted at the sink);
/// panics when the file does not decode to the end.
pub fn count_frames(path: &Path) -> u64 {
    decode(path).video_frames
}

/// Decodes `path` with `decodebin` and counts video frames and audio buffers (every other
/// stream counts as audio); panics when the file does not decode to the end.
pub fn decode(path: &Path) -> Streams {
    init();
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", path.to_str().unwrap())
        .build()
        .unwrap();
    let decodebin = gst::ElementFactory::make("decodebin").build().unwrap();
    pipeline.add_many([&src, &decodebin]).unwrap();
    src.link(&decodebin).unwrap();
    let video = Arc::new(AtomicU64::new(0));
    let audio = Arc::new(AtomicU64::new(0));
    let (v, a) = (video.clone(), audio.clone());
    decodebin.connect_pad_added(move |dbin, pad| {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let name = caps.structure(0).unwrap().name().to_string();
        let counter = if name.starts_with("video/") {
            v.clone()
        } else {
            a.clone()
        };
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .property("signal-handoffs", true)
            .build()
            .unwrap();
        sink.connect("handoff", false, move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            None
        });
        let bin = dbin.parent().unwrap().downcast::<gst::Bin>().unwrap();
        bin.add(&sink).unwrap();
        sink.sync_state_with_parent().unwrap();
        pad.link(&sink.static_pad("sink").unwrap()).unwrap();
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("decoding finished");
    pipeline.set_state(gst::State::Null).unwrap();
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("decoding {}: {}", path.display(), e.error());
    }
    Streams {
        video_frames: video.load(Ordering::SeqCst),
        audio_buffers: audio.load(Ordering::SeqCst),
    }
}

/// The command-line tool cargo built for this test.
pub fn cli_binary() -> &'static str {
    env!("CARGO_BIN_EXE_yoloanonymize-cli")
}

/// Runs the command-line tool with `args` and waits for it.
pub fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(cli_binary())
        .args(args)
        .output()
        .expect("run yoloanonymize-cli")
}

/// Bytes as text, for messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The names in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every sample `sink` gives until EOS (or an error: `pull_sample` blocks until then).
pub fn pull_all(sink: &gst_app::AppSink) -> Vec<gst::Sample> {
    std::iter::from_fn(|| sink.pull_sample().ok()).collect()
}

/// The samples `sink` has ready within `timeout` each (`ClockTime::ZERO`: those queued now).
pub fn pull_ready(sink: &gst_app::AppSink, timeout: gst::ClockTime) -> Vec<gst::Sample> {
    std::iter::from_fn(|| sink.try_pull_sample(timeout)).collect()
}

/// The appsink named `name` of `pipeline`.
pub fn appsink(pipeline: &gst::Pipeline, name: &str) -> gst_app::AppSink {
    pipeline
        .by_name(name)
        .unwrap_or_else(|| panic!("no element {name}"))
        .downcast::<gst_app::AppSink>()
        .unwrap()
}

/// A decoded video frame: its timestamp, format and buffer.
pub struct Frame {
    pub pts: gst::ClockTime,
    pub info: gst_video::VideoInfo,
    pub buffer: gst::Buffer,
}

/// Runs `desc` (which ends in `appsink name=sink`) to EOS and returns every frame; panics on an
/// error on the bus.
pub fn frames_of(desc: &str) -> Vec<Frame> {
    init();
    let pipeline = gst::parse::launch(desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = appsink(&pipeline, "sink");
    sink.set_sync(false);
    pipeline.set_state(gst::State::Playing).unwrap();
    let out = pull_all(&sink)
        .into_iter()
        .map(|s| {
            let info = gst_video::VideoInfo::from_caps(s.caps().unwrap()).unwrap();
            let buffer = s.buffer_owned().unwrap();
            Frame {
                pts: buffer.pts().unwrap(),
                info,
                buffer,
            }
        })
        .collect();
    let bus = pipeline.bus().unwrap();
    while let Some(m) = bus.pop() {
        if let gst::MessageView::Error(e) = m.view() {
            panic!("{desc}: {} {:?}", e.error(), e.debug());
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

/// Every frame of the video file `path`, decoded to I420.
pub fn i420_frames(path: &Path) -> Vec<Frame> {
    frames_of(&format!(
        "filesrc location={} ! decodebin ! video/x-raw,format=I420 ! appsink name=sink sync=false",
        path.display()
    ))
}

/// The library's view of a mapped I420 frame.
pub fn frame_ref<'a>(
    vf: &'a gst_video::VideoFrameRef<&gst::BufferRef>,
) -> gstyoloanonymize::frame::FrameRef<'a> {
    use gst_video::prelude::*;
    assert_eq!(
        vf.format(),
        gst_video::VideoFormat::I420,
        "the decoder gives I420"
    );
    gstyoloanonymize::frame::FrameRef {
        format: gstyoloanonymize::frame::PixelFormat::I420,
        width: vf.width() as usize,
        height: vf.height() as usize,
        planes: [
            vf.plane_data(0).unwrap(),
            vf.plane_data(1).unwrap(),
            vf.plane_data(2).unwrap(),
        ],
        strides: [
            vf.plane_stride()[0] as usize,
            vf.plane_stride()[1] as usize,
            vf.plane_stride()[2] as usize,
        ],
    }
}
