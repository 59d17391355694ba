//! The face detector beside the pose model, on the fixtures of `tests/data/faces/` (one
//! public-domain photograph, see its README): a face with no body, a face whose body is hidden,
//! a face 6 px between the eyes; a scene cut; one track with both detectors as its sources.
//!
//! Regions are filled with magenta (`method=fill fill-color=0xff00ff`, which the photograph never
//! has), so coverage is read from the output pixels.

use std::path::PathBuf;
use std::sync::Once;

use gst::prelude::*;
use gst_video::prelude::*;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstyoloanonymize::plugin_register_static().expect("register plugin");
    });
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/faces")
        .join(name)
}

const MAGENTA: [u8; 3] = [255, 0, 255];

/// An RGB picture.
#[derive(Clone)]
struct Picture {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
}

impl Picture {
    fn at(&self, x: f32, y: f32) -> [u8; 3] {
        let (x, y) = (x.round() as usize, y.round() as usize);
        let i = (y * self.w + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Share of magenta pixels in the box (x0, y0)-(x1, y1).
    fn magenta_share(&self, b: [f32; 4]) -> f64 {
        let (x0, y0) = (b[0].max(0.0) as usize, b[1].max(0.0) as usize);
        let (x1, y1) = (
            (b[2] as usize).min(self.w - 1),
            (b[3] as usize).min(self.h - 1),
        );
        let mut n = 0;
        let mut m = 0;
        for y in y0..=y1 {
            for x in x0..=x1 {
                n += 1;
                let i = (y * self.w + x) * 3;
                m += usize::from(self.rgb[i..i + 3] == MAGENTA);
            }
        }
        m as f64 / n.max(1) as f64
    }

    fn magenta_pixels(&self) -> usize {
        self.rgb.chunks(3).filter(|p| *p == MAGENTA).count()
    }
}

fn caps(w: usize, h: usize) -> gst::Caps {
    gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, w as u32, h as u32)
        .fps(gst::Fraction::new(10, 1))
        .build()
        .unwrap()
        .to_caps()
        .unwrap()
}

/// Tightly packed RGB of a video frame buffer.
fn unpack(buffer: &gst::Buffer, w: usize, h: usize) -> Vec<u8> {
    let info = gst_video::VideoInfo::from_caps(&caps(w, h)).unwrap();
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).unwrap();
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data(0).unwrap();
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        out.extend_from_slice(&data[y * stride..y * stride + w * 3]);
    }
    out
}

/// Decodes a PNG fixture to RGB.
fn load(name: &str) -> Picture {
    init();
    let desc = format!(
        "filesrc location={} ! pngdec ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false",
        fixture(name).display()
    );
    let p = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = p
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let sample = sink.pull_sample().expect("a decoded picture");
    let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    let (w, h) = (info.width() as usize, info.height() as usize);
    let rgb = unpack(sample.buffer_owned().as_ref().unwrap(), w, h);
    p.set_state(gst::State::Null).unwrap();
    Picture { w, h, rgb }
}

/// Runs `frames` through `yoloanonymize` with `props` (plus magenta fill) and returns the output
/// frames, checking one out per frame in, in order, with its timestamp.
fn anonymize(frames: &[Picture], props: &str) -> Vec<Picture> {
    init();
    let (w, h) = (frames[0].w, frames[0].h);
    let desc = format!(
        "appsrc name=src format=time ! yoloanonymize method=fill fill-color=0xff00ff {props} ! appsink name=sink sync=false"
    );
    let p = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let src = p
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let sink = p
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    src.set_caps(Some(&caps(w, h)));
    p.set_state(gst::State::Playing).unwrap();
    let step = gst::ClockTime::from_mseconds(100);
    for (i, f) in frames.iter().enumerate() {
        let mut b = gst::Buffer::from_slice(f.rgb.clone());
        {
            let b = b.get_mut().unwrap();
            b.set_pts(step * i as u64);
            b.set_duration(step);
        }
        src.push_buffer(b).unwrap();
    }
    src.end_of_stream().unwrap();
    let mut out = Vec::new();
    while let Ok(s) = sink.pull_sample() {
        let b = s.buffer_owned().unwrap();
        assert_eq!(
            b.pts(),
            Some(step * out.len() as u64),
            "order and timestamps"
        );
        out.push(Picture {
            w,
            h,
            rgb: unpack(&b, w, h),
        });
    }
    let bus = p.bus().unwrap();
    if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
        panic!("pipeline error: {m:?}");
    }
    p.set_state(gst::State::Null).unwrap();
    assert_eq!(out.len(), frames.len(), "one frame out per frame in");
    out
}

/// The fixture's face (its box and eyes, in frame pixels) from findings.json.
struct Face {
    bbox: [f32; 4],
    eyes: [[f32; 2]; 2],
}

fn face_of(name: &str) -> Face {
    let text = std::fs::read_to_string(fixture("findings.json")).unwrap();
    // A small reader for this file's known shape: "<name>": { ... "face_box": [..], "eyes": [[..],[..]]
    let at = text
        .find(&format!("\"{name}\""))
        .expect("fixture in findings.json");
    let rest = &text[at..];
    let numbers = |key: &str, n: usize| -> Vec<f32> {
        let k = rest.find(key).expect(key);
        rest[k + key.len()..]
            .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .filter(|s| !s.is_empty())
            .take(n)
            .map(|s| s.parse().unwrap())
            .collect()
    };
    let b = numbers("\"face_box\"", 4);
    let e = numbers("\"eyes\"", 4);
    Face {
        bbox: [b[0], b[1], b[2], b[3]],
        eyes: [[e[0], e[1]], [e[2], e[3]]],
    }
}

fn eyes_covered(p: &Picture, f: &Face) -> bool {
    f.eyes.iter().all(|e| p.at(e[0], e[1]) == MAGENTA)
}

/// The inner part of the face box (10 % in from each side), which `targets=face` must cover.
fn inner(f: &Face) -> [f32; 4] {
    let [x0, y0, x1, y1] = f.bbox;
    let (dx, dy) = ((x1 - x0) * 0.1, (y1 - y0) * 0.1);
    [x0 + dx, y0 + dy, x1 - dx, y1 - dy]
}

const FRAMES: usize = 4;

#[test]
fn a_face_with_no_body_is_covered_by_both_detectors() {
    let pic = load("face-alone.png");
    let face = face_of("face-alone.png");
    for detectors in ["pose", "face", "pose+face"] {
        let out = anonymize(
            &vec![pic.clone(); FRAMES],
            &format!("detectors={detectors}"),
        );
        for (i, o) in out.iter().enumerate() {
            assert!(eyes_covered(o, &face), "detectors={detectors}, frame {i}");
        }
        let out = anonymize(
            &vec![pic.clone(); FRAMES],
            &format!("detectors={detectors} targets=face"),
        );
        for (i, o) in out.iter().enumerate() {
            let share = o.magenta_share(inner(&face));
            assert!(
                share > 0.99,
                "detectors={detectors} targets=face, frame {i}: {share}"
            );
        }
    }
}

#[test]
fn a_face_whose_body_is_hidden_is_covered_only_with_the_face_detector() {
    let pic = load("face-hidden-body.png");
    let face = face_of("face-hidden-body.png");
    // The pose model alone does not find this person: their eyes stay as they were.
    let out = anonymize(&vec![pic.clone(); FRAMES], "detectors=pose hold-frames=0");
    assert!(
        out.iter().all(|o| !eyes_covered(o, &face)),
        "the pose model was expected to miss this face (tests/data/faces/README.md)"
    );
    // The default (both detectors) covers them, eyes and face; so does the face detector in
    // float32 (where bfloat16 is fast on the CPU, the default computes it in bfloat16).
    for props in ["", "precision=fp32"] {
        for o in anonymize(&vec![pic.clone(); FRAMES], props) {
            assert!(eyes_covered(&o, &face), "{props}");
        }
    }
    for o in anonymize(&vec![pic.clone(); FRAMES], "targets=face") {
        let share = o.magenta_share(inner(&face));
        assert!(share > 0.99, "{share}");
    }
}

#[test]
fn a_face_six_pixels_between_the_eyes_is_covered_by_default() {
    let pic = load("face-small.png");
    let face = face_of("face-small.png");
    let out = anonymize(&vec![pic.clone(); FRAMES], "detectors=pose hold-frames=0");
    assert!(
        out.iter().all(|o| o.magenta_pixels() == 0),
        "pose finds nothing here"
    );
    for o in anonymize(&vec![pic.clone(); FRAMES], "") {
        assert!(eyes_covered(&o, &face));
    }
}

#[test]
fn a_scene_cut_drops_the_regions_of_the_previous_shot() {
    let pic = load("face-alone.png");
    // The second shot: an empty grey picture of the same size (nobody in it).
    let grey = Picture {
        rgb: vec![128; pic.rgb.len()],
        ..pic.clone()
    };
    let mut frames = vec![pic.clone(); 4];
    frames.extend(vec![grey; 8]);
    let props = "hold-frames=8 batch-size=4";
    let out = anonymize(&frames, props);
    for (i, o) in out[..4].iter().enumerate() {
        assert!(
            o.magenta_pixels() > 0,
            "frame {i} of the first shot is redacted"
        );
    }
    for (i, o) in out[4..].iter().enumerate() {
        assert_eq!(o.magenta_pixels(), 0, "frame {} after the cut", i + 4);
    }
    // Without cut detection the held regions of the first shot are drawn into the second.
    let out = anonymize(&frames, &format!("{props} scene-cuts=false"));
    assert!(out[4].magenta_pixels() > 0, "held without scene-cuts");
}

#[test]
fn the_tracker_merges_pose_and_face_into_one_track_with_both_sources() {
    let pic = load("face-alone.png");
    let dir = std::env::temp_dir().join(format!("ya-faces-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.jsonl");
    anonymize(
        &vec![pic; 6],
        // The face detector on every frame: both sources in every frame's record.
        &format!("face-interval=1 detections-file={}", path.display()),
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6);
    let mut tracks = Vec::new();
    for l in &lines {
        assert_eq!(l.matches("\"track\":").count(), 1, "one person: {l}");
        assert!(
            l.contains("\"detectors\":\"pose+face\""),
            "both sources: {l}"
        );
        assert!(l.contains("\"face\":{\"box\":"), "{l}");
        let t = l.split("\"track\":").nth(1).unwrap();
        tracks.push(t.split(',').next().unwrap().to_string());
    }
    assert!(
        tracks.windows(2).all(|w| w[0] == w[1]),
        "one track: {tracks:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The `source` of each frame's one person in the audit trail at `path` (`None`: nobody).
fn sources(path: &std::path::Path) -> Vec<Option<String>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            l.split("\"source\":\"")
                .nth(1)
                .map(|s| s.split('"').next().unwrap().to_string())
        })
        .collect()
}

#[test]
fn face_interval_runs_the_face_detector_on_every_nth_frame_and_after_a_cut() {
    let pic = load("face-hidden-body.png");
    let face = face_of("face-hidden-body.png");
    let dir = std::env::temp_dir().join(format!("ya-faces-interval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.jsonl");
    // Only the face detector finds this person, so the frames it ran on are the ones where the
    // person is `detected`; between them the tracker interpolates and holds.
    let props = |extra: &str| {
        format!(
            "detectors=face face-interval=3 batch-size=4 detections-file={} {extra}",
            path.display()
        )
    };
    let out = anonymize(&vec![pic.clone(); 12], &props(""));
    for (i, o) in out.iter().enumerate() {
        assert!(eyes_covered(o, &face), "frame {i} covered");
    }
    let detected: Vec<usize> = sources(&path)
        .iter()
        .enumerate()
        .filter(|(_, s)| s.as_deref() == Some("detected"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(detected, [0, 3, 6, 9], "{:?}", sources(&path));
    // A cut (to grey at 5, back to the picture at 7) runs the face detector on the first frame
    // of each shot, and the count starts again from there.
    let grey = Picture {
        rgb: vec![128; pic.rgb.len()],
        ..pic.clone()
    };
    let mut frames = vec![pic.clone(); 5];
    frames.extend(vec![grey; 2]);
    frames.extend(vec![pic.clone(); 5]);
    let out = anonymize(&frames, &props(""));
    let s = sources(&path);
    for i in (0..5).chain(7..12) {
        assert!(eyes_covered(&out[i], &face), "frame {i} covered: {s:?}");
    }
    let detected: Vec<usize> = (0..12)
        .filter(|&i| s[i].as_deref() == Some("detected"))
        .collect();
    assert_eq!(detected, [0, 3, 7, 10], "{s:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The face detector computes in int8 on OpenVINO where the pose model does (its int8 variant is
/// shipped: measured to cover the faces float32 covers, models/README-face.md), else in bfloat16
/// where bfloat16 is faster than float32 on the CPU (`cpu_bf16_is_fast`), in float32 under
/// `precision=fp32` and everywhere else, and the provider note says which.
#[test]
fn the_face_detector_follows_the_pose_model_in_int8_and_computes_in_fp32_when_asked() {
    use gstyoloanonymize::engine::{
        CpuFeatures, Device, Engine, EngineConfig, Precision, Provider, face_precision,
        int8_variant,
    };
    let face_model = gstyoloanonymize::default_face_model_path();
    let int8 = int8_variant(&face_model);
    assert!(
        int8.is_file(),
        "the face model's int8 variant {int8:?} is shipped"
    );
    let config = |precision| EngineConfig {
        model: gstyoloanonymize::default_model_path(),
        device: Device::Auto,
        threads: 0,
        library_dirs: Vec::new(),
        half_precision: false,
        openvino_bf16: true,
        face_model: Some(face_model.clone()),
        precision,
    };
    let cpu = CpuFeatures::detect();
    for asked in [Precision::Auto, Precision::Fp32] {
        let e = Engine::load_config(&config(asked)).unwrap();
        let face = e.face.as_ref().expect("the face detector is loaded");
        let want = face_precision(e.precision, e.provider, cpu, true);
        assert_eq!(face.precision, want, "{asked}: {:?}", e.provider_note);
        let expected = if asked == Precision::Fp32 || e.provider != Provider::OpenVino {
            Precision::Fp32
        } else if e.precision == Precision::Int8 {
            Precision::Int8
        } else if cpu.bf16_fast {
            Precision::Bf16
        } else {
            Precision::Fp32
        };
        assert_eq!(face.precision, expected, "{asked}");
        let file = if expected == Precision::Int8 {
            &int8
        } else {
            &face_model
        };
        assert_eq!(&face.model, file, "{asked}: the file run");
        if e.provider == Provider::OpenVino {
            let note = e.provider_note.clone().unwrap_or_default();
            let said = match want {
                Precision::Int8 => "face detector: int8",
                Precision::Bf16 => "face detector: bfloat16",
                _ => "face detector: float32",
            };
            assert!(note.contains(said), "{asked}: {note}");
        }
    }
}
