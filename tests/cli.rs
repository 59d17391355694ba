//! Tests of `yoloanonymize-cli`: they run the built binary and decode what it wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gst::prelude::*;

/// The sample clip: 100 frames of 768x576, no audio.
fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/vtest-short.mp4")
}

/// Runs the CLI with `args`.
fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yoloanonymize-cli"))
        .args(args)
        .output()
        .expect("run yoloanonymize-cli")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that the CLI failed with exactly one line on stderr and no panic, and returns it.
fn one_line_failure(out: &Output) -> String {
    // Where scripts/setup-gpu.sh ran on a machine without a GPU, device=auto warns first that
    // it runs on the CPU; that line is not the failure's.
    let stderr: String = text(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("warning: device=auto: using the CPU"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!out.status.success(), "expected failure, stderr: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

/// Runs a `gst-launch` style description to EOS (used to make test clips).
fn run_launch(description: &str) {
    gst::init().unwrap();
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

/// Writes an H.264 MP4 of `frames` 320x240 frames at 25 frames/s, with `audio_seconds` of AAC audio if
/// `audio_seconds > 0`.
fn make_clip(path: &Path, frames: u32, audio_seconds: u32) {
    let mut description = format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 \
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
struct Streams {
    video_frames: u64,
    audio_buffers: u64,
}

/// Decodes `path` with `decodebin` and counts video frames and audio buffers.
fn decode(path: &Path) -> Streams {
    gst::init().unwrap();
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

#[test]
fn file_gives_an_mp4_with_every_frame_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.mp4");
    let out = cli(&[sample().to_str().unwrap(), output.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(stdout.contains("100 frames in"), "summary: {stdout}");
    assert!(stdout.contains("people detected:"), "summary: {stdout}");
    assert!(stdout.contains("regions redacted:"), "summary: {stdout}");
    assert!(
        stdout.contains("frames redacted whole:  0"),
        "summary: {stdout}"
    );
    assert!(
        stdout.contains(output.to_str().unwrap()),
        "summary: {stdout}"
    );
    let streams = decode(&output);
    assert_eq!(streams.video_frames, 100);
    assert_eq!(streams.audio_buffers, 0);
}

#[test]
fn audio_track_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("with-audio.mp4");
    make_clip(&input, 75, 3);
    assert!(decode(&input).audio_buffers > 0, "test clip has no audio");
    let output = dir.path().join("out.mp4");
    let out = cli(&[
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--input-size",
        "320",
        "--quiet",
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "--quiet printed a summary");
    let streams = decode(&output);
    assert_eq!(streams.video_frames, 75);
    assert!(streams.audio_buffers > 100, "audio lost: {streams:?}");
}

#[test]
fn folder_gives_one_output_per_video() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    make_clip(&input.join("a.mp4"), 10, 0);
    make_clip(&input.join("b.mov"), 12, 0);
    std::fs::write(input.join("notes.txt"), "not a video").unwrap();
    let output = dir.path().join("out");
    let out = cli(&[
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--input-size",
        "320",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let mut written: Vec<String> = std::fs::read_dir(&output)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["a.mp4", "b.mp4"]);
    assert_eq!(decode(&output.join("a.mp4")).video_frames, 10);
    assert_eq!(decode(&output.join("b.mp4")).video_frames, 12);
    assert!(
        stdout.contains("[1/2]") && stdout.contains("[2/2]"),
        "{stdout}"
    );
    assert!(stdout.contains("22 frames in"), "{stdout}");
}

#[test]
fn missing_input_is_a_one_line_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-clip.mp4");
    let output = dir.path().join("out.mp4");
    let out = cli(&[missing.to_str().unwrap(), output.to_str().unwrap()]);
    let line = one_line_failure(&out);
    assert!(line.contains(missing.to_str().unwrap()), "{line}");
    assert!(!output.exists());
}

#[test]
fn bad_method_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.mp4");
    let out = cli(&[
        sample().to_str().unwrap(),
        output.to_str().unwrap(),
        "--method",
        "sharpen",
    ]);
    let line = one_line_failure(&out);
    assert!(
        line.contains("--method") && line.contains("sharpen"),
        "{line}"
    );
    assert!(!output.exists());
}

#[test]
fn input_that_is_not_a_video_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("not-a-video.mp4");
    std::fs::write(&input, "hello").unwrap();
    let output = dir.path().join("out.mp4");
    let out = cli(&[input.to_str().unwrap(), output.to_str().unwrap()]);
    let line = one_line_failure(&out);
    assert!(line.contains(input.to_str().unwrap()), "{line}");
    assert!(!output.exists(), "partial output left behind");
}
