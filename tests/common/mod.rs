//! Helpers shared by the integration tests: paths, GStreamer set-up, test clips and frame counts.
//! Each test binary includes this with `mod common;` and uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gst::prelude::*;

/// A path in the source tree.
pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The sample clip: 100 frames of 768x576, no audio.
pub fn sample() -> PathBuf {
    repo("samples/vtest-short.mp4")
}

/// Initialises GStreamer (once per process is what it needs; more calls are free).
pub fn init() {
    gst::init().unwrap();
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
    run_launch(&format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width={width},height={height},framerate=25/1 \
         ! x264enc speed-preset=ultrafast ! mp4mux ! filesink location={}",
        path.display()
    ));
}

/// The number of video frames `path` decodes to (`decodebin`, every frame counted at the sink);
/// panics when the file does not decode to the end.
pub fn count_frames(path: &Path) -> u64 {
    init();
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", path.to_str().unwrap())
        .build()
        .unwrap();
    let decodebin = gst::ElementFactory::make("decodebin").build().unwrap();
    pipeline.add_many([&src, &decodebin]).unwrap();
    src.link(&decodebin).unwrap();
    let frames = Arc::new(AtomicU64::new(0));
    let counter = frames.clone();
    decodebin.connect_pad_added(move |dbin, pad| {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let video = caps.structure(0).unwrap().name().starts_with("video/");
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .property("signal-handoffs", video)
            .build()
            .unwrap();
        if video {
            let counter = counter.clone();
            sink.connect("handoff", false, move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
                None
            });
        }
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
    frames.load(Ordering::SeqCst)
}

/// The command-line tool cargo built for this test.
pub fn cli_binary() -> &'static str {
    env!("CARGO_BIN_EXE_yoloanonymize-cli")
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
