//! Pipeline tests on the bundled cut of `vtest.avi` (`samples/vtest-short.mp4`, 100 frames):
//! people's eyes are covered in the output, and frame count and timestamps match the input.
//! Also parses and runs every pipeline description in `pipelines/`.

use std::path::{Path, PathBuf};
use std::sync::Once;

use gst::prelude::*;
use gst_video::prelude::*;
use gstyoloanonymize::decode::{Detection, decode_batch};
use gstyoloanonymize::engine::{Device, Engine, EngineConfig};
use gstyoloanonymize::frame::{FrameRef, PixelFormat};
use gstyoloanonymize::preprocess::{Letterbox, Preprocessor};

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstyoloanonymize::plugin_register_static().expect("register plugin");
    });
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

struct Frame {
    pts: gst::ClockTime,
    info: gst_video::VideoInfo,
    buffer: gst::Buffer,
}

/// Runs `desc` (which ends in `appsink name=sink`) to EOS and returns every frame.
fn frames_of(desc: &str) -> Vec<Frame> {
    init();
    let pipeline = gst::parse::launch(desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    sink.set_sync(false);
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut out = Vec::new();
    while let Ok(s) = sink.pull_sample() {
        let info = gst_video::VideoInfo::from_caps(s.caps().unwrap()).unwrap();
        let buffer = s.buffer_owned().unwrap();
        out.push(Frame {
            pts: buffer.pts().unwrap(),
            info,
            buffer,
        });
    }
    let bus = pipeline.bus().unwrap();
    while let Some(m) = bus.pop() {
        if let gst::MessageView::Error(e) = m.view() {
            panic!("{desc}: {} {:?}", e.error(), e.debug());
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

fn frame_ref<'a>(vf: &'a gst_video::VideoFrameRef<&gst::BufferRef>) -> FrameRef<'a> {
    assert_eq!(
        vf.format(),
        gst_video::VideoFormat::I420,
        "the decoder gives I420"
    );
    FrameRef {
        format: PixelFormat::I420,
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

/// The detections a per-frame reference run of the default model reports (input-size 640,
/// confidence 0.25, IoU 0.7), computed with the library directly rather than the element.
fn reference_detections(frames: &[Frame]) -> Vec<Vec<Detection>> {
    let mut engine = Engine::load(&EngineConfig {
        model: gstyoloanonymize::default_model_path(),
        device: Device::Cpu,
        threads: 0,
        library_dirs: Vec::new(),
    })
    .unwrap();
    let mut pre = Preprocessor::default();
    let mut out = Vec::new();
    frames
        .iter()
        .map(|f| {
            let vf = gst_video::VideoFrameRef::from_buffer_ref_readable(f.buffer.as_ref(), &f.info)
                .unwrap();
            let fr = frame_ref(&vf);
            let lb = Letterbox::new(fr.width, fr.height, 640);
            let mut input = vec![0f32; lb.tensor_len()];
            pre.fill_tensor(&fr, &lb, &mut input);
            let anchors = engine
                .run(&input, [1, 3, lb.net_h, lb.net_w], &mut out)
                .unwrap();
            decode_batch(&out, 1, anchors, 0.25, 0.7, &lb).remove(0)
        })
        .collect()
}

#[test]
fn eyes_are_covered_on_the_sample_clip_and_frames_match() {
    let sample = repo("samples/vtest-short.mp4");
    let src = format!("filesrc location={} ! decodebin", sample.display());
    let input = frames_of(&format!("{src} ! appsink name=sink"));
    // No videoconvert: the element takes the decoder's I420 as it is.
    let audit =
        std::env::temp_dir().join(format!("yoloanonymize-{}-audit.jsonl", std::process::id()));
    let output = frames_of(&format!(
        "{src} ! yoloanonymize detections-file={} ! appsink name=sink",
        audit.display()
    ));
    assert_eq!(input.len(), 100, "the sample clip has 100 frames");
    assert_eq!(output.len(), input.len(), "one frame out per frame in");
    let pts_in: Vec<_> = input.iter().map(|f| f.pts).collect();
    let pts_out: Vec<_> = output.iter().map(|f| f.pts).collect();
    assert_eq!(pts_out, pts_in, "timestamps and order are kept");

    let detections = reference_detections(&input);
    let (mut eyes, mut people) = (0, 0);
    for (i, ((inp, outp), dets)) in input.iter().zip(&output).zip(&detections).enumerate() {
        let a = gst_video::VideoFrameRef::from_buffer_ref_readable(inp.buffer.as_ref(), &inp.info)
            .unwrap();
        let b =
            gst_video::VideoFrameRef::from_buffer_ref_readable(outp.buffer.as_ref(), &outp.info)
                .unwrap();
        let (fa, fb) = (frame_ref(&a), frame_ref(&b));
        people += dets.len();
        for d in dets {
            for kp in [d.keypoints[1], d.keypoints[2]] {
                if kp.conf < 0.5 {
                    continue;
                }
                eyes += 1;
                // The 5x5 luma patch around the eye: most of it must have changed.
                let (cx, cy) = (kp.x.round() as i64, kp.y.round() as i64);
                let (mut changed, mut total) = (0, 0);
                for y in (cy - 2).max(0)..=(cy + 2).min(fa.height as i64 - 1) {
                    for x in (cx - 2).max(0)..=(cx + 2).min(fa.width as i64 - 1) {
                        let o = y as usize * fa.strides[0] + x as usize;
                        total += 1;
                        changed += (fa.planes[0][o] != fb.planes[0][o]) as usize;
                    }
                }
                assert!(
                    changed * 2 > total,
                    "frame {i} ({}): eye at ({:.0},{:.0}) of a person scored {:.2} is not covered ({changed}/{total} pixels changed)",
                    inp.pts,
                    kp.x,
                    kp.y,
                    d.score
                );
            }
        }
    }
    println!(
        "{people} people, {eyes} confident eyes checked over {} frames",
        input.len()
    );
    assert!(
        eyes > 150,
        "the sample has people with visible eyes ({eyes} found)"
    );

    // The audit trail has one line per output frame with its timestamp; every region it lists
    // was changed in the output and is attached to the buffer as a region-of-interest meta.
    let text = std::fs::read_to_string(&audit).unwrap();
    let _ = std::fs::remove_file(&audit);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), output.len());
    let mut listed = 0;
    for (i, (rec, (inp, outp))) in lines.iter().zip(input.iter().zip(&output)).enumerate() {
        assert_eq!(rec["frame"], i);
        assert_eq!(rec["pts"], outp.pts.nseconds());
        assert_eq!(rec["redacted_whole"], false);
        let a = gst_video::VideoFrameRef::from_buffer_ref_readable(inp.buffer.as_ref(), &inp.info)
            .unwrap();
        let b =
            gst_video::VideoFrameRef::from_buffer_ref_readable(outp.buffer.as_ref(), &outp.info)
                .unwrap();
        let (fa, fb) = (frame_ref(&a), frame_ref(&b));
        let mut from_file = Vec::new();
        for r in rec["regions"].as_array().unwrap() {
            let n = |k: &str| r[k].as_u64().unwrap() as usize;
            let (x0, y0, x1, y1) = (n("x0"), n("y0"), n("x1"), n("y1"));
            let offsets: Vec<usize> = (y0..y1)
                .flat_map(|y| (x0..x1).map(move |x| y * fa.strides[0] + x))
                .collect();
            let changed = offsets
                .iter()
                .filter(|&&o| fa.planes[0][o] != fb.planes[0][o])
                .count();
            // Blur leaves a flat patch (a wall, the sky at the frame edge) almost as it was:
            // such a region hides nothing, so only textured ones must have changed.
            let mean =
                offsets.iter().map(|&o| fa.planes[0][o] as f64).sum::<f64>() / offsets.len() as f64;
            let var = offsets
                .iter()
                .map(|&o| (fa.planes[0][o] as f64 - mean).powi(2))
                .sum::<f64>()
                / offsets.len() as f64;
            assert!(
                changed * 2 > offsets.len() || var < 25.0,
                "frame {i}: region {r} not redacted ({changed}/{} changed, variance {var:.1})",
                offsets.len()
            );
            let kind = r["kind"].as_str().unwrap().to_string();
            from_file.push((
                kind,
                (x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32),
            ));
            listed += 1;
        }
        let mut metas: Vec<(String, (u32, u32, u32, u32))> = outp
            .buffer
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .map(|m| (m.roi_type().to_string(), m.rect()))
            .collect();
        metas.sort();
        from_file.sort();
        assert_eq!(
            metas, from_file,
            "frame {i}: region metadata and detections-file disagree"
        );
    }
    assert!(listed >= eyes / 2, "the audit lists the regions ({listed})");
}

/// Every file in `pipelines/` parses, and the file-based ones run on the sample clip.
#[test]
fn pipelines_directory_parses_and_runs() {
    init();
    let dir = repo("pipelines");
    let mut ran = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("pipeline") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let desc: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join(" ");
        let out = std::env::temp_dir().join(format!(
            "yoloanonymize-{}-{}.mp4",
            std::process::id(),
            path.file_stem().unwrap().to_string_lossy()
        ));
        let desc = desc
            .replace(
                "${INPUT}",
                repo("samples/vtest-short.mp4").to_str().unwrap(),
            )
            .replace("${OUTPUT}", out.to_str().unwrap());
        let pipeline =
            gst::parse::launch(&desc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        let msg = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(300),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .expect("pipeline finished");
        if let gst::MessageView::Error(e) = msg.view() {
            panic!("{}: {} {:?}", path.display(), e.error(), e.debug());
        }
        pipeline.set_state(gst::State::Null).unwrap();
        // The written file decodes to as many frames as the sample has.
        let n = frames_of(&format!(
            "filesrc location={} ! decodebin ! appsink name=sink",
            out.display()
        ))
        .len();
        assert_eq!(n, 100, "{}", path.display());
        let _ = std::fs::remove_file(&out);
        ran += 1;
    }
    assert!(ran >= 1, "pipelines/ has at least one runnable pipeline");
}
