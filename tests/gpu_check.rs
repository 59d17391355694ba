//! The CPU-checkable parts of the GPU run (scripts/gpu-check.sh, benches/gpu_check.py): the
//! payload is assembled from parts spread over several folders and calls, every sha256 is checked
//! and a damaged or missing part stops it with its name; the detections comparison and the
//! parsing of `gst-launch-1.0 -m` output give the numbers they should. Needs bash, python3 and
//! coreutils, as the scripts do.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::repo;
use gstyoloanonymize::stats::{PROVIDER_MESSAGE, STATS_MESSAGE, field, provider_field};

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

fn python(args: &[&str]) -> Output {
    Command::new("python3")
        .args(args)
        .output()
        .expect("python3")
}

/// A payload of two files, packed as gpu-pack.sh does (tar.xz, FILES list), cut into 3 parts
/// spread over the call folders 1/ and 2/; returns the pack folder.
fn make_pack(root: &Path) -> PathBuf {
    let payload = root.join("payload");
    std::fs::create_dir_all(payload.join("sub")).unwrap();
    std::fs::write(payload.join("a.txt"), b"first file\n").unwrap();
    // Incompressible bytes, so that the archive has several parts.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let big: Vec<u8> = (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(payload.join("sub/b.bin"), &big).unwrap();
    let files = format!(
        "commit=test\nfile {}  ./a.txt\nfile {}  ./sub/b.bin\n",
        sha256(&payload.join("a.txt")),
        sha256(&payload.join("sub/b.bin"))
    );
    std::fs::write(payload.join("FILES"), &files).unwrap();
    let archive = root.join("payload.tar.xz");
    let out = python(&[
        "-c",
        "import sys, tarfile\nwith tarfile.open(sys.argv[1], 'w:xz') as t: t.add(sys.argv[2], arcname='.')",
        archive.to_str().unwrap(),
        payload.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let bytes = std::fs::read(&archive).unwrap();
    let pack = root.join("pack");
    let mut manifest = format!(
        "archive=payload.tar.xz {} {}\ngroups=2\n",
        bytes.len(),
        sha256(&archive)
    );
    let chunk = bytes.len().div_ceil(3);
    for (i, part) in bytes.chunks(chunk).enumerate() {
        let group = if i < 2 { 1 } else { 2 };
        let name = format!("payload.tar.xz.part-{i:03}");
        let dir = pack.join(group.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(&name), part).unwrap();
        manifest += &format!(
            "part={group}/{name} {} {}\n",
            part.len(),
            sha256(&dir.join(&name))
        );
    }
    manifest += &files;
    for g in ["1", "2"] {
        std::fs::write(pack.join(g).join("MANIFEST"), &manifest).unwrap();
    }
    pack
}

fn gpu_check(pack: &Path, stage: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("bash")
        .arg(repo("scripts/gpu-check.sh"))
        .args(args)
        .env("YA_GPU_PACK", pack)
        .env("STAGE", stage)
        .output()
        .expect("bash");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_payload_is_assembled_from_checked_parts_and_a_bad_part_is_named() {
    let t = tempfile::tempdir().unwrap();
    let pack = make_pack(t.path());
    let stage = t.path().join("stage");
    let dest = t.path().join("out");
    let (ok, text) = gpu_check(&pack, &stage, &["--assemble-only", dest.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert_eq!(
        std::fs::read(dest.join("payload/a.txt")).unwrap(),
        b"first file\n"
    );
    assert_eq!(
        std::fs::read(dest.join("payload/sub/b.bin")).unwrap(),
        std::fs::read(t.path().join("payload/sub/b.bin")).unwrap()
    );
    for i in 0..3 {
        assert!(
            text.contains(&format!("payload.tar.xz.part-00{i}: ")),
            "{text}"
        );
    }
    assert!(
        text.contains("archive payload.tar.xz: sha256")
            && text.contains("2 files unpacked and checked"),
        "{text}"
    );

    // A damaged part: stopped, naming it.
    let part = pack.join("2/payload.tar.xz.part-002");
    let mut bytes = std::fs::read(&part).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&part, &bytes).unwrap();
    let (ok, text) = gpu_check(
        &pack,
        &stage,
        &["--assemble-only", t.path().join("o2").to_str().unwrap()],
    );
    assert!(
        !ok && text.contains("part 2/payload.tar.xz.part-002: sha256"),
        "{text}"
    );
    assert!(!t.path().join("o2/payload").exists());

    // Two calls: the first stages group 1, the second has only group 2 and finds the rest staged.
    bytes[10] ^= 0xff;
    std::fs::write(&part, &bytes).unwrap();
    let group2 = t.path().join("group2");
    std::fs::rename(pack.join("2"), &group2).unwrap();
    let (ok, text) = gpu_check(
        &pack,
        &stage,
        &["--assemble-only", t.path().join("o3").to_str().unwrap()],
    );
    assert!(
        !ok && text.contains("parts missing: 2/payload.tar.xz.part-002"),
        "{text}"
    );
    let (ok, text) = gpu_check(&pack, &stage, &["--stage"]);
    assert!(ok && text.contains("staged 2 part(s)"), "{text}");
    std::fs::rename(pack.join("1"), t.path().join("group1")).unwrap();
    std::fs::rename(&group2, pack.join("2")).unwrap();
    let dest = t.path().join("o4");
    let (ok, text) = gpu_check(&pack, &stage, &["--assemble-only", dest.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert_eq!(
        std::fs::read(dest.join("payload/a.txt")).unwrap(),
        b"first file\n"
    );
}

fn gpu_check_py(args: &[&str]) -> serde_json::Value {
    let script = repo("benches/gpu_check.py");
    let mut all = vec![script.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = python(&all);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn person(x: f64, eye_dx: f64, eye_conf: f64) -> serde_json::Value {
    let mut kp = vec![[x + 10.0, 20.0, 0.9]; 17];
    kp[1] = [x + 8.0 + eye_dx, 18.0, eye_conf];
    kp[2] = [x + 12.0 + eye_dx, 18.0, eye_conf];
    serde_json::json!({"box": [x, 10.0, x + 20.0, 60.0], "score": 0.8, "track": 0,
                       "source": "detected", "keypoints": kp})
}

#[test]
fn detections_are_compared_person_by_person() {
    let t = tempfile::tempdir().unwrap();
    let eyes = |x0: i64| serde_json::json!({"kind": "eyes", "x0": x0, "y0": 15, "x1": x0 + 10, "y1": 21, "score": 0.8});
    let write = |name: &str, frames: &[(Vec<serde_json::Value>, Vec<serde_json::Value>)]| {
        let text: String = frames
            .iter()
            .enumerate()
            .map(|(i, (people, regions))| {
                serde_json::json!({"frame": i, "pts": i * 100, "redacted_whole": false, "reason": null,
                                   "regions": regions, "people": people})
                .to_string()
                    + "\n"
            })
            .collect();
        let p = t.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    // Frame 0: two people in the reference, the candidate finds the first with its eyes 3 px to
    // the side, and one elsewhere; frame 1: the same person, eyes 1 px off.
    let reference = write(
        "ref.jsonl",
        &[
            (
                vec![person(100.0, 0.0, 0.9), person(300.0, 0.0, 0.9)],
                vec![eyes(105), eyes(305)],
            ),
            (vec![person(100.0, 0.0, 0.9)], vec![eyes(105)]),
        ],
    );
    let candidate = write(
        "cand.jsonl",
        &[
            (
                vec![person(100.0, 3.0, 0.9), person(600.0, 0.0, 0.9)],
                vec![eyes(106), eyes(605)],
            ),
            (vec![person(100.0, 1.0, 0.3)], vec![eyes(105)]),
        ],
    );
    let c = gpu_check_py(&[
        "compare",
        reference.to_str().unwrap(),
        candidate.to_str().unwrap(),
    ]);
    assert_eq!(c["people_ref"], 3);
    assert_eq!(c["people_cand"], 3);
    assert_eq!(c["matched"], 2);
    assert_eq!(c["unmatched_cand"], 1);
    assert_eq!(c["eyes_confident"], 4);
    // Frame 1's eyes are below the confidence threshold in the candidate.
    assert_eq!(c["eyes_confident_in_both_pct"], 50.0);
    assert_eq!(c["eye_err_max_px"], 3.0);
    assert_eq!(c["eye_err_mean_px"], 2.0);
    // Eye regions: frame 0's second is not covered, frame 0's first is covered by 9 of 10
    // columns (90 % < 95 %), frame 1's is.
    assert_eq!(c["eye_regions_ref"], 3);
    assert_eq!(c["eye_regions_covered"], 1);
}

#[test]
fn gst_launch_messages_give_steady_frames_per_second_and_totals() {
    let t = tempfile::tempdir().unwrap();
    // The message and field names are the element's (src/stats.rs), as gpu_check.py must read them.
    let stats = |eos: bool, fps: f64, frames: u64| {
        format!(
            "Got message #{frames} from element \"ya{}\" (element): {STATS_MESSAGE}, {}=(boolean){eos}, {}=(double){fps}, {}=(guint64){frames}, {}=(guint64){frames}, {}=(guint64){}, {}=(double)10.5, {}=(guint64)3;\n",
            frames % 2,
            field::EOS,
            field::FPS,
            field::FRAMES,
            field::ANALYSED,
            field::BATCHES,
            frames / 8,
            field::INFERENCE_MS,
            field::BATCHES_MERGED,
        )
    };
    let mut log = format!(
        "Got message #3 from element \"ya0\" (element): {PROVIDER_MESSAGE}, {}=(string)cuda, {}=(string)cuda:0, {}=(string)\"auto:\\ /m/yolo.onnx\\ on\\ cuda:0\", {}=(uint)2, {}=(string)\"\";\n",
        provider_field::REQUESTED,
        provider_field::PROVIDER,
        provider_field::SHARED_WORKER,
        provider_field::STREAMS,
        provider_field::NOTE,
    );
    // ya0: reports 50 (warm-up, left out), 100, 120, 110 -> median 110; ya1: 999 (left out), 40, 60 -> 50.
    for (fps, n) in [(50.0, 100), (100.0, 200), (120.0, 300), (110.0, 400)] {
        log += &stats(false, fps, n);
    }
    for (fps, n) in [(999.0, 101), (40.0, 201), (60.0, 301)] {
        log += &stats(false, fps, n);
    }
    log += &stats(true, 90.0, 800);
    log += &stats(true, 45.0, 401);
    log += "ERROR: from element /GstPipeline:pipeline0/GstFileSrc:filesrc0: No such file\nAdditional debug info:\nsome detail\n";
    let p = t.path().join("run.log");
    std::fs::write(&p, log).unwrap();
    let mem = t.path().join("mem.txt");
    std::fs::write(
        &mem,
        "base 500\ngpu 700\napp 1234, 180\ngpu 900\napp 1234, 350\n",
    )
    .unwrap();
    let r = gpu_check_py(&[
        "record",
        "--id",
        "x",
        "--kind",
        "streams",
        "--desc",
        "d",
        "--log",
        p.to_str().unwrap(),
        "--mem",
        mem.to_str().unwrap(),
        "--rc",
        "0",
        "--wall",
        "2.5",
        "--param",
        "batch=8",
    ]);
    assert_eq!(r["providers"], serde_json::json!(["cuda:0"]));
    assert_eq!(r["streams"], 2);
    assert_eq!(r["steady_fps"], 160.0);
    assert_eq!(r["eos_fps"], 135.0);
    assert_eq!(r["frames"], 1201);
    assert_eq!(r["batches_merged"], 6);
    assert_eq!(r["delta_mib"], 400.0);
    assert_eq!(r["process_mib"], 350.0);
    assert_eq!(r["param"]["batch"], "8");
    assert!(
        r["errors"][0]
            .as_str()
            .unwrap()
            .contains("No such file some detail"),
        "{r}"
    );
}
