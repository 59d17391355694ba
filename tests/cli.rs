//! Tests of `yoloanonymize-cli`: they run the built binary and decode what it wrote.

mod common;

use std::process::Output;

use common::{cli, decode, make_clip_with_audio, sample, text};

/// 320x240 frames for the clips the tests make.
const CLIP_W: u32 = 320;
const CLIP_H: u32 = 240;

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
    make_clip_with_audio(&input, 75, CLIP_W, CLIP_H, 3);
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
    make_clip_with_audio(&input.join("a.mp4"), 10, CLIP_W, CLIP_H, 0);
    make_clip_with_audio(&input.join("b.mov"), 12, CLIP_W, CLIP_H, 0);
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
