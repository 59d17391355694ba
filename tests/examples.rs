//! Runs the embedding examples on the bundled sample clip (`samples/vtest-short.mp4`, 100 frames)
//! and checks what they print: `examples/embed.rs`, built here with the cargo and profile running
//! this test (so that `cargo test --test examples` works as well as `--all-targets`), and
//! `examples/embed.py`, with `GST_PLUGIN_PATH` pointing at the plugin built beside this test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod common;

use common::{build_example, count_frames, plugin_dir, repo, sample};

const FRAMES: usize = 100;

/// Builds `examples/embed.rs` (a no-op when it is up to date) and returns the binary's path.
fn rust_example() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_example("embed"))
}

/// A Python 3 that has PyGObject's GStreamer bindings: `$PYTHON3`, else `python3` on the PATH,
/// else Debian's `/usr/bin/python3` (a pyenv or venv python3 first on the PATH may lack them).
fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let check = "import gi; gi.require_version('Gst', '1.0'); \
                     gi.require_version('GstVideo', '1.0'); gi.require_version('GstApp', '1.0'); \
                     from gi.repository import Gst, GstVideo, GstApp";
        let candidates: Vec<String> = std::env::var("PYTHON3")
            .into_iter()
            .chain(["python3".to_string(), "/usr/bin/python3".to_string()])
            .collect();
        candidates
            .iter()
            .find(|py| {
                Command::new(py)
                    .args(["-c", check])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .unwrap_or_else(|| {
                panic!(
                    "none of {candidates:?} can import PyGObject's GStreamer bindings: install \
                     python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 \
                     (scripts/setup.sh does)"
                )
            })
            .clone()
    })
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` to completion (killed after five minutes), capturing its output in files so that
/// a full pipe can never block it.
fn run(mut cmd: Command, name: &str) -> Run {
    let dir = std::env::temp_dir();
    let tag = format!("yoloanonymize-{}-{name}", std::process::id());
    let (out_path, err_path) = (
        dir.join(format!("{tag}.out")),
        dir.join(format!("{tag}.err")),
    );
    let mut child = cmd
        .current_dir(repo(""))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: cannot start {cmd:?}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let run = Run {
        code: status.and_then(|s| s.code()),
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
    };
    let _ = std::fs::remove_file(out_path);
    let _ = std::fs::remove_file(err_path);
    assert!(
        status.is_some(),
        "{name}: still running after 5 minutes; stderr:\n{}",
        run.stderr
    );
    run
}

fn rust_command(args: &[&Path]) -> Command {
    let mut cmd = Command::new(rust_example());
    cmd.args(args);
    // The example registers the element in-process: it must not need the plugin path.
    cmd.env_remove("GST_PLUGIN_PATH");
    cmd
}

fn python_command(args: &[&Path]) -> Command {
    // Building the Rust example may rebuild the plugin: let that happen before Python loads it.
    rust_example();
    let plugin_dir = plugin_dir();
    assert!(
        plugin_dir.join("libgstyoloanonymize.so").exists(),
        "{} has no libgstyoloanonymize.so",
        plugin_dir.display()
    );
    let mut cmd = Command::new(python());
    cmd.arg(repo("examples/embed.py")).args(args);
    cmd.env("GST_PLUGIN_PATH", plugin_dir);
    cmd
}

/// Checks the output of a successful run on the sample clip: one line per frame, in order,
/// listing face regions that add up to the EOS summary, and the summary itself.
fn check_sample_run(name: &str, run: &Run) {
    assert_eq!(
        run.code,
        Some(0),
        "{name} failed; stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        !run.stderr.contains("warning"),
        "{name}: unexpected warnings:\n{}",
        run.stderr
    );
    let frames: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("frame "))
        .collect();
    assert_eq!(frames.len(), FRAMES, "{name}: one line per frame");
    let (mut listed, mut with_regions) = (0, 0);
    for (i, line) in frames.iter().enumerate() {
        // frame 3 pts 0:00:00.300000000 regions 2: face 592,281 29x37 conf 0.35; face ...
        let rest = line
            .strip_prefix(&format!(
                "frame {i} pts 0:00:0{}.{}00000000 regions ",
                i / 10,
                i % 10
            ))
            .unwrap_or_else(|| panic!("{name}: frame line {i} out of order: {line}"));
        let (count, regions) = rest.split_once(": ").unwrap_or((rest, ""));
        let count: usize = count.parse().unwrap();
        let regions: Vec<&str> = regions.split("; ").filter(|r| !r.is_empty()).collect();
        assert_eq!(regions.len(), count, "{name}: {line}");
        for r in &regions {
            let fields: Vec<&str> = r.split(' ').collect();
            assert!(
                matches!(fields.as_slice(), ["face", _, _, "conf", _]),
                "{name}: frame {i}: region {r:?} is not a face region with a confidence"
            );
            let (w, h) = fields[2].split_once('x').unwrap();
            assert!(w.parse::<u32>().unwrap() > 0 && h.parse::<u32>().unwrap() > 0);
            let conf: f64 = fields[4].parse().unwrap();
            // conf-threshold is 0.25; the int8 model that precision=auto runs on OpenVINO lowers
            // it by INT8_CONF_OFFSET (it scores people lower than float32).
            let least = 0.25 - gstyoloanonymize::engine::INT8_CONF_OFFSET as f64 - 1e-6;
            assert!((least..=1.0).contains(&conf), "{name}: frame {i}: {r}");
        }
        listed += count;
        with_regions += (count > 0) as usize;
    }
    // The clip has two to four people in view almost all the time (about 240 detections).
    assert!(
        with_regions >= 90,
        "{name}: only {with_regions} frames with regions"
    );
    assert!(listed >= 200, "{name}: only {listed} regions");

    let summary = run
        .stdout
        .lines()
        .find(|l| l.starts_with("summary: "))
        .unwrap_or_else(|| panic!("{name}: no summary line:\n{}", run.stdout));
    let number = |after: &str| -> u64 {
        let i = summary.find(after).unwrap_or_else(|| panic!("{summary}"));
        summary[..i].rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(number(" frames,"), FRAMES as u64, "{summary}");
    assert_eq!(number(" analysed"), FRAMES as u64, "{summary}");
    assert_eq!(number(" redacted whole"), 0, "{summary}");
    assert!(number(" people") >= 200, "{summary}");
    assert_eq!(
        number(" regions"),
        listed as u64,
        "{name}: the regions of the metas add up to the element's count: {summary}"
    );
}

/// A missing input file: exit status 1, the reason on stderr, no frame lines.
fn check_missing_input(name: &str, run: &Run, missing: &Path) {
    assert_eq!(run.code, Some(1), "{name}; stderr:\n{}", run.stderr);
    assert!(
        run.stderr.contains("error") && run.stderr.contains("Resource not found"),
        "{name}: stderr does not say what failed:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(missing.to_str().unwrap()),
        "{name}: stderr does not name the file:\n{}",
        run.stderr
    );
    assert!(!run.stdout.contains("frame "), "{name}: {}", run.stdout);
}

#[test]
fn rust_example_prints_the_regions_of_every_frame_and_writes_the_output() {
    let output = std::env::temp_dir().join(format!(
        "yoloanonymize-{}-embed-out.mp4",
        std::process::id()
    ));
    let run = run(rust_command(&[&sample(), &output]), "embed.rs");
    check_sample_run("embed.rs", &run);
    let written = count_frames(&output);
    let _ = std::fs::remove_file(&output);
    assert_eq!(
        written as usize, FRAMES,
        "the encoded output has every frame"
    );
}

#[test]
fn python_example_prints_the_regions_of_every_frame() {
    let run = run(python_command(&[&sample()]), "embed.py");
    check_sample_run("embed.py", &run);
}

#[test]
fn examples_exit_non_zero_on_a_missing_input() {
    let missing = repo("samples/no-such-file.mp4");
    let rust = run(rust_command(&[&missing]), "embed.rs-missing");
    check_missing_input("embed.rs", &rust, &missing);
    let python = run(python_command(&[&missing]), "embed.py-missing");
    check_missing_input("embed.py", &python, &missing);
}

/// The quoted first arguments of the calls `call(` in `source` (Python: '...' or "..."), where
/// `call` starts a name (`v(` does not match `rv(`).
fn quoted_arguments(source: &str, call: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in source.match_indices(call) {
        let before = source[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &source[at + call.len()..];
        let Some(quote) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') else {
            continue;
        };
        let end = rest[1..].find(quote).expect("closing quote");
        out.push(rest[1..1 + end].to_string());
    }
    out
}

/// `examples/embed.py` cannot import the crate's names of the statistics message and its
/// fields (`gstyoloanonymize::stats`): the ones it reads are checked here against them, and
/// against those `examples/embed.rs` reads (through the constants).
#[test]
fn the_python_example_reads_the_statistics_by_their_names() {
    use gstyoloanonymize::stats::{STATS_MESSAGE, field};
    use std::collections::BTreeSet;
    let py = std::fs::read_to_string(repo("examples/embed.py")).unwrap();
    let messages = quoted_arguments(&py, "get_name() == ");
    assert_eq!(
        messages,
        [STATS_MESSAGE],
        "message names compared in embed.py"
    );
    // `s` is the statistics structure; `v` is its `get_value` in summary_text.
    let read: BTreeSet<String> = quoted_arguments(&py, "s.get_value(")
        .into_iter()
        .chain(quoted_arguments(&py, "v("))
        .collect();
    let expected: BTreeSet<String> = [
        field::EOS,
        field::FRAMES,
        field::FPS,
        field::ANALYSED,
        field::BATCHES,
        field::PEOPLE,
        field::REGIONS,
        field::FRAMES_REDACTED_WHOLE,
        field::FRAMES_LATE,
        field::INFERENCE_MS_PER_BATCH,
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(read, expected, "statistics fields read by embed.py");
    // embed.rs reads the same fields, by the constants.
    let rs = std::fs::read_to_string(repo("examples/embed.rs")).unwrap();
    for name in [
        "EOS",
        "FRAMES",
        "FPS",
        "ANALYSED",
        "BATCHES",
        "PEOPLE",
        "REGIONS",
        "FRAMES_REDACTED_WHOLE",
        "FRAMES_LATE",
        "INFERENCE_MS_PER_BATCH",
    ] {
        assert!(
            rs.contains(&format!("field::{name})")),
            "embed.rs does not read field::{name}"
        );
    }
}
