//! The element under hostile input: paths that are not files, an audit trail that cannot be
//! written, the extremes of every property range, formats it does not take. Each case asserts
//! the error text, that nothing was lost or left behind, and that nothing panicked or hung.
//!
//! The FIFO test measures how long the refusal takes: it holds `common::timing()`, the other
//! tests `common::shared()` (see tests/common/mod.rs).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use gst::prelude::*;

use common::{appsink, init, listing, plugin_dir, pull_ready, shared, timing};

/// A folder of its own for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("ya-hostile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }

    fn entries(&self) -> Vec<String> {
        listing(&self.0)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a pipeline did: frames out, errors and warnings on the bus, whether it started.
struct Run {
    frames: usize,
    errors: Vec<String>,
    warnings: Vec<String>,
    started: bool,
}

/// Runs `videotestsrc num-buffers=N ! 64x48 I420 ! yoloanonymize PROPS ! appsink` to EOS (or an
/// error), at most `limit`.
fn run(props: &str, n: u32, limit: Duration) -> Run {
    init();
    let desc = format!(
        "videotestsrc num-buffers={n} pattern=ball ! video/x-raw,format=I420,width=64,height=48,framerate=10/1 \
         ! yoloanonymize input-size=64 {props} ! appsink name=sink sync=false"
    );
    let pipeline = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = appsink(&pipeline, "sink");
    let started = pipeline.set_state(gst::State::Playing).is_ok();
    let bus = pipeline.bus().unwrap();
    let mut r = Run {
        frames: 0,
        errors: Vec::new(),
        warnings: Vec::new(),
        started,
    };
    let deadline = Instant::now() + limit;
    loop {
        r.frames += pull_ready(&sink, gst::ClockTime::ZERO).len();
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(20)) else {
            assert!(
                Instant::now() < deadline,
                "no EOS or error within {limit:?}"
            );
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(e) => {
                r.errors.push(format!("{} | {:?}", e.error(), e.debug()));
                break;
            }
            gst::MessageView::Warning(w) => r.warnings.push(w.error().to_string()),
            gst::MessageView::Eos(_) => {
                r.frames += pull_ready(&sink, gst::ClockTime::from_mseconds(10)).len();
                break;
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    r
}

#[test]
fn a_fifo_as_model_is_refused_without_waiting_for_a_writer() {
    let _timing = timing();
    let d = Scratch::new("fifo");
    let fifo = d.0.join("model.onnx");
    let ok = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo");
    let t0 = Instant::now();
    let r = run(
        &format!("model={} on-failure=error", fifo.display()),
        3,
        Duration::from_secs(30),
    );
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t0.elapsed()
    );
    let e = r.errors.join("\n");
    assert!(
        e.contains(&fifo.display().to_string()) && e.contains("not a regular file"),
        "{e}"
    );
    assert_eq!(r.frames, 0);
    // The default policy starts without a model and redacts every frame whole, saying why.
    let r = run(
        &format!("model={}", fifo.display()),
        3,
        Duration::from_secs(30),
    );
    assert_eq!(r.frames, 3);
    assert!(
        r.warnings.iter().any(|w| w.contains("not a regular file")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn a_detections_file_that_is_a_device_or_a_folder_is_refused_at_start() {
    let _shared = shared();
    let d = Scratch::new("devices");
    for (path, what) in [
        (PathBuf::from("/dev/full"), "a FIFO, a socket or a device"),
        (PathBuf::from("/dev/null"), "a FIFO, a socket or a device"),
        (d.0.clone(), "a folder"),
        (d.0.join("no/such/folder/audit.jsonl"), "No such file"),
    ] {
        let r = run(
            &format!("detections-file={}", path.display()),
            3,
            Duration::from_secs(30),
        );
        assert!(!r.started || !r.errors.is_empty(), "{path:?} was accepted");
        let e = r.errors.join("\n");
        assert!(
            e.contains(&path.display().to_string()) && e.contains(what),
            "{path:?}: {e}"
        );
        assert_eq!(
            r.frames, 0,
            "{path:?}: no frame leaves without its audit trail"
        );
    }
    assert_eq!(d.entries(), Vec::<String>::new(), "nothing created");
}

#[test]
fn the_detections_file_is_renamed_into_place_only_at_eos() {
    let _shared = shared();
    let d = Scratch::new("rename");
    let audit = d.0.join("audit.jsonl");
    std::fs::write(&audit, "an older trail\n").unwrap();
    let r = run(
        &format!("detections-file={}", audit.display()),
        12,
        Duration::from_secs(60),
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.frames, 12);
    let text = std::fs::read_to_string(&audit).unwrap();
    assert_eq!(text.lines().count(), 12, "{text}");
    assert!(text.lines().all(|l| l.starts_with("{\"frame\":")));
    assert_eq!(d.entries(), vec!["audit.jsonl"], "no temporary file left");

    // Stopped before EOS: the older file is untouched, and the records are kept (and named).
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=64,height=48,framerate=30/1 \
         ! yoloanonymize input-size=64 batch-size=1 detections-file={} ! fakesink",
        audit.display()
    ))
    .unwrap();
    std::fs::write(&audit, "an older trail\n").unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // READY first: going to NULL flushes the bus.
    pipeline.set_state(gst::State::Ready).unwrap();
    let bus = pipeline.bus().unwrap();
    let mut warnings = Vec::new();
    while let Some(m) = bus.pop() {
        if let gst::MessageView::Warning(w) = m.view() {
            warnings.push(w.error().to_string());
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(std::fs::read_to_string(&audit).unwrap(), "an older trail\n");
    let entries = d.entries();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let temp = entries.iter().find(|e| e.ends_with(".part")).unwrap();
    let kept = std::fs::read_to_string(d.0.join(temp)).unwrap();
    assert!(kept.lines().count() > 0, "the records are kept");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("before EOS") && w.contains(temp.as_str())),
        "{warnings:?}"
    );
}

/// gst-launch-1.0 in a child process whose files may not grow beyond `fsize` bytes (SIGXFSZ
/// ignored, so a write past it fails with EFBIG instead of killing the process).
fn launch_limited(fsize: u64, pipeline: &str) -> (bool, String) {
    let plugin = plugin_dir();
    // The registry is brought up to date first, without the limit (writing it would fail).
    let ok = Command::new("gst-inspect-1.0")
        .arg("yoloanonymize")
        .env("GST_PLUGIN_PATH", &plugin)
        .output()
        .expect("gst-inspect-1.0")
        .status
        .success();
    assert!(ok, "gst-inspect-1.0 yoloanonymize");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; exec prlimit --fsize={fsize} gst-launch-1.0 {pipeline}"
        ))
        .env("GST_PLUGIN_PATH", &plugin)
        .output()
        .expect("bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn an_audit_trail_that_cannot_be_written_is_heard() {
    let _shared = shared();
    if Command::new("prlimit").arg("--version").output().is_err() {
        println!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    let d = Scratch::new("full");
    let audit = d.0.join("audit.jsonl");
    let pipeline = |extra: &str| {
        format!(
            "videotestsrc num-buffers=300 pattern=ball ! video/x-raw,format=I420,width=64,height=48 \
             ! yoloanonymize input-size=64 {extra} detections-file={} ! fakesink",
            audit.display()
        )
    };
    // Default policy: the video goes on, and the loss is said (with the count).
    let (ok, text) = launch_limited(4096, &pipeline(""));
    assert!(ok, "{text}");
    assert!(
        text.contains("WARNING: from element")
            && text.contains("detections-file")
            && text.contains("records lost"),
        "{text}"
    );
    assert!(text.contains(&audit.display().to_string()), "{text}");
    // More records than the write buffer holds: lost while the video runs, said each time.
    let (ok, text) = launch_limited(
        4096,
        &pipeline("").replace("num-buffers=300", "num-buffers=1500"),
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("Cannot write to detections-file") && text.contains("records lost so far"),
        "{text}"
    );
    // on-failure=error: the pipeline stops with an error.
    let (ok, text) = launch_limited(4096, &pipeline("on-failure=error"));
    assert!(!ok, "{text}");
    assert!(
        text.contains("ERROR: from element") && text.contains("detections-file"),
        "{text}"
    );
}

#[test]
fn an_unsupported_format_in_gst_launch_gets_the_advice() {
    let _shared = shared();
    let plugin = plugin_dir();
    // Bounded: gst-launch-1.0 1.22 itself hangs now and then after an error posted this early.
    // Its bus sync handler prints the error and calls g_main_loop_quit() (tools/gst-launch.c
    // 1.22.0, line 997), and when that happens while main() is still in
    // gst_element_set_state(PAUSED), before g_main_loop_run(), the quit is lost and the loop
    // runs for ever. Stock elements do the same: `videotestsrc ! identity error-after=1 !
    // fakesink` hung 5 of 40 runs with both cores busy (2026-12-02), this pipeline 10 of 30.
    // The error and its advice are printed before the hang, so a run that hangs after
    // printing them passes too, with a note.
    let out = Command::new("timeout")
        .args([
            "30",
            "gst-launch-1.0",
            "videotestsrc",
            "num-buffers=3",
            "!",
            "video/x-raw,format=GRAY8,width=64,height=48",
            "!",
            "yoloanonymize",
            "!",
            "fakesink",
        ])
        .env("GST_PLUGIN_PATH", &plugin)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.code() == Some(124) {
        assert!(
            text.contains("ERROR: pipeline doesn't want to preroll."),
            "gst-launch hung without having printed the error: {text}"
        );
        eprintln!("gst-launch-1.0 hung after printing the error (its own race, see above)");
    }
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("cannot handle caps")
            && text.contains("put videoconvert before yoloanonymize"),
        "{text}"
    );
    assert!(!text.contains("could not link"), "{text}");
}

/// The extreme values of the property ranges, together: no panic, no hang, every frame out.
#[test]
fn the_extremes_of_the_property_ranges_are_safe() {
    let _shared = shared();
    for props in [
        "batch-size=32 conf-threshold=0 iou-threshold=0 keypoint-threshold=0 margin=2 pixel-size=1024 hold-frames=1000 detect-interval=100 fill-color=16777215 method=fill targets=eyes+face+body threads=256",
        "batch-size=1 conf-threshold=1 iou-threshold=1 keypoint-threshold=1 margin=0 pixel-size=0 hold-frames=0 detect-interval=1 method=pixelate max-latency=18446744073709551615",
        "input-size=32 method=blur",
    ] {
        let r = run(props, 40, Duration::from_secs(120));
        assert!(r.errors.is_empty(), "{props}: {:?}", r.errors);
        assert_eq!(r.frames, 40, "{props}");
    }
}
