//! A real RTSP round trip on loopback: an in-process RTSP server (gst-rtsp-server) plays
//! `samples/vtest-short.mp4` as a live camera on 127.0.0.1 (a free port), and
//! `rtspsrc ! rtph264depay ! h264parse ! avdec_h264 ! yoloanonymize ! appsink` anonymizes it.
//! Checks that every frame comes out, anonymized (the audit file, the region metas and the
//! pixels agree, against a copy of each frame taken before the element), on time (the
//! element's `max-latency` is part of the latency the pipeline reports, and no frame stays in
//! the element longer than that), and that a camera that stops ends the pipeline within a
//! bounded time with a message that says why: at the end of its stream (EOS), by closing its
//! connection mid-stream (rtspsrc's warning, then EOS), or by going silent with the connection
//! open (the watchdog that the RTSP pipelines in `pipelines/` have: an error).
//!
//! Every wait has a timeout, so a broken server or element fails the test instead of hanging.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst_base::prelude::BaseSinkExt;
use gst_rtsp_server::prelude::*;
use gst_video::prelude::*;
use gstyoloanonymize::stats::{STATS_MESSAGE, field};

use common::{init, sample, timing};

// The tests stream in real time and measure delays: running them at once on a small machine
// would make each late because of the others. Each holds `common::timing()` (see
// tests/common/mod.rs), so they run one at a time.

/// An RTSP server on 127.0.0.1 (a port the system picks) serving `launch` at `/cam`, with its
/// own main loop on its own thread. Each client gets its own media, started from the beginning.
struct Camera {
    server: gst_rtsp_server::RTSPServer,
    /// The media pipelines made for clients.
    media: Arc<Mutex<Vec<gst_rtsp_server::RTSPMedia>>>,
    context: glib::MainContext,
    main_loop: glib::MainLoop,
    listening: Mutex<Option<glib::SourceId>>,
    thread: Option<std::thread::JoinHandle<()>>,
    port: i32,
}

impl Camera {
    fn start(launch: &str) -> Camera {
        let server = gst_rtsp_server::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service("0");
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_launch(launch);
        let media = Arc::new(Mutex::new(Vec::new()));
        let m = media.clone();
        factory.connect_media_configure(move |_, media| m.lock().unwrap().push(media.clone()));
        server.mount_points().unwrap().add_factory("/cam", factory);
        let context = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let listening = server.attach(Some(&context)).expect("RTSP server listens");
        let port = server.bound_port();
        assert!(port > 0, "the RTSP server is bound to a port");
        let thread = {
            let (context, main_loop) = (context.clone(), main_loop.clone());
            std::thread::spawn(move || {
                // Client connections are attached to the thread-default context.
                context.with_thread_default(|| main_loop.run()).unwrap();
            })
        };
        Camera {
            server,
            media,
            context,
            main_loop,
            listening: Mutex::new(Some(listening)),
            thread: Some(thread),
            port,
        }
    }

    fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }

    /// The camera goes away: it stops listening and closes every client connection.
    fn stop(&self) {
        let server = self.server.clone();
        let listening = self.listening.lock().unwrap().take();
        let (tx, rx) = std::sync::mpsc::channel();
        let context = self.context.clone();
        self.context.invoke(move || {
            if let Some(source) = listening.and_then(|id| context.find_source_by_id(&id)) {
                source.destroy();
            }
            let mut closed = 0;
            server.client_filter(Some(&mut |_, _| {
                closed += 1;
                gst_rtsp_server::RTSPFilterResult::Remove
            }));
            let _ = tx.send(closed);
        });
        let closed = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the server's main loop answers");
        println!("camera stopped: {closed} client connection(s) closed");
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Camera {
    /// The camera goes silent: it stops sending video but keeps its connection open (a frozen
    /// camera, a cable pulled somewhere between), through the `valve` of its launch line.
    fn go_silent(&self) {
        for media in self.media.lock().unwrap().iter() {
            let bin = media.element().downcast::<gst::Bin>().unwrap();
            bin.by_name("valve")
                .expect("the camera's launch line has a valve")
                .set_property("drop", true);
        }
    }
}

/// A camera launch line: the sample clip's H.264 (10 frames per second), paced in real time by
/// the server's sinks, ending after `frames` frames (`None`: the whole clip, 100 frames); a
/// `valve` lets the test silence it.
fn camera_launch(frames: Option<u32>) -> String {
    // identity lets `n` buffers through and ends the stream in place of the next one.
    let cut = frames.map_or(String::new(), |n| {
        format!("identity eos-after={} ! ", n + 1)
    });
    format!(
        "( filesrc location={} ! qtdemux ! h264parse config-interval=-1 ! {cut}valve name=valve ! rtph264pay name=pay0 pt=96 config-interval=-1 )",
        sample().display()
    )
}

/// What the probes around `yoloanonymize` and at the sink saw.
#[derive(Default)]
struct Seen {
    /// Copies of the input frames (the plain decode) by PTS, and when each arrived.
    input: HashMap<gst::ClockTime, (gst::Buffer, Instant)>,
    /// Output frames in order, with the time each spent in the element.
    output: Vec<(gst::Buffer, Duration)>,
    caps: Option<gst::Caps>,
    /// Frames taken from the appsink.
    at_sink: usize,
    /// Frames that reached the sink after their render time, and by how much at worst.
    late_at_sink: usize,
    worst_lateness: Duration,
}

/// What the bus said.
#[derive(Default)]
struct BusLog {
    eos: bool,
    error: Option<String>,
    warnings: Vec<String>,
    stats: Vec<gst::Structure>,
}

struct Run {
    pipeline: gst::Pipeline,
    anon: gst::Element,
    sink: gst_app::AppSink,
    seen: Arc<Mutex<Seen>>,
    log: BusLog,
}

/// The sample is 10 frames per second.
const FRAME: Duration = Duration::from_millis(100);

impl Run {
    /// Starts anonymizing the RTSP stream at `url` into an appsink that syncs on the clock,
    /// with probes before and after the element and at the sink. batch-size=2 and
    /// input-size=320 let a busy 2-core machine analyse most frames of a 10 fps stream in time;
    /// the checks hold whatever the load (late frames are pixelated whole and checked as such).
    /// `watchdog`: after rtspsrc, a watchdog that stops the pipeline after that long without
    /// data, as the RTSP pipelines in `pipelines/` have.
    fn start(url: &str, max_latency: Duration, audit: &Path, watchdog: Option<Duration>) -> Run {
        init();
        let watchdog = watchdog.map_or(String::new(), |t| {
            format!("! watchdog name=watchdog timeout={} ", t.as_millis())
        });
        // TCP interleaved: no packet loss on a loaded machine, and a camera that closes its
        // connection is noticed at once.
        let desc = format!(
            "rtspsrc location={url} protocols=tcp latency=200 {watchdog}! rtph264depay ! h264parse ! avdec_h264 \
             ! yoloanonymize name=anon batch-size=2 input-size=320 max-latency={} detections-file={} \
             ! appsink name=sink sync=true",
            max_latency.as_nanos(),
            audit.display()
        );
        let pipeline = gst::parse::launch(&desc)
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        let anon = pipeline.by_name("anon").unwrap();
        let sink = common::appsink(&pipeline, "sink");
        let seen = Arc::new(Mutex::new(Seen::default()));

        // Into the element: a copy of each frame, and when it came.
        let s = seen.clone();
        anon.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(b) = info.buffer() {
                    let copy = b.copy_deep().unwrap();
                    let mut s = s.lock().unwrap();
                    s.input.insert(b.pts().unwrap(), (copy, Instant::now()));
                }
                gst::PadProbeReturn::Ok
            });
        // Out of the element: the frame, and how long it stayed.
        let s = seen.clone();
        anon.static_pad("src").unwrap().add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                let mut s = s.lock().unwrap();
                if let Some(b) = info.buffer() {
                    let delay = s.input.get(&b.pts().unwrap()).map(|(_, t)| t.elapsed());
                    s.output.push((b.clone(), delay.unwrap_or(Duration::MAX)));
                } else if let Some(gst::EventView::Caps(e)) = info.event().map(|e| e.view()) {
                    s.caps = Some(e.caps_owned());
                }
                gst::PadProbeReturn::Ok
            },
        );
        // At the sink: is each frame there before its render time (running time + latency)?
        let s = seen.clone();
        let weak = sink.downgrade();
        sink.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                let (Some(b), Some(sink)) = (info.buffer(), weak.upgrade()) else {
                    return gst::PadProbeReturn::Ok;
                };
                let running = pad.sticky_event::<gst::event::Segment>(0).and_then(|e| {
                    e.segment()
                        .downcast_ref::<gst::ClockTime>()
                        .and_then(|seg| seg.to_running_time(b.pts()))
                });
                if let (Some(running), Some(clock), Some(base)) =
                    (running, sink.clock(), sink.base_time())
                {
                    let render = base + running + configured_latency(&sink);
                    let now = clock.time();
                    if now > render {
                        let late = Duration::from_nanos((now - render).nseconds());
                        let mut s = s.lock().unwrap();
                        s.late_at_sink += 1;
                        s.worst_lateness = s.worst_lateness.max(late);
                    }
                }
                gst::PadProbeReturn::Ok
            });
        let s = seen.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    s.lock().unwrap().at_sink += 1;
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline.set_state(gst::State::Playing).unwrap();
        Run {
            pipeline,
            anon,
            sink,
            seen,
            log: BusLog::default(),
        }
    }

    /// Handles bus messages until `done` holds (true), or EOS, an error or `timeout` (false).
    fn pump(&mut self, timeout: Duration, done: impl Fn(&Seen) -> bool) -> bool {
        let bus = self.pipeline.bus().unwrap();
        let t0 = Instant::now();
        loop {
            if done(&self.seen.lock().unwrap()) {
                return true;
            }
            if self.log.eos || self.log.error.is_some() || t0.elapsed() > timeout {
                return false;
            }
            if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(20)) {
                self.record(&msg);
            }
        }
    }

    /// Notes what a bus message says in the log (and does what gst-launch-1.0 does on a
    /// latency message).
    fn record(&mut self, msg: &gst::Message) {
        let from = msg.src().map(|s| s.path_string()).unwrap_or_default();
        match msg.view() {
            // What gst-launch-1.0 does: elements found their latency changed.
            gst::MessageView::Latency(_) => {
                let _ = self.pipeline.recalculate_latency();
            }
            gst::MessageView::Eos(_) => self.log.eos = true,
            gst::MessageView::Error(e) => {
                self.log.error = Some(format!("{from}: {} ({:?})", e.error(), e.debug()))
            }
            gst::MessageView::Warning(w) => {
                self.log
                    .warnings
                    .push(format!("{from}: {} ({:?})", w.error(), w.debug()))
            }
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == STATS_MESSAGE) {
                    self.log.stats.push(s.to_owned());
                }
            }
            _ => {}
        }
    }

    /// Waits (at most `timeout`) for EOS, also after an error: rtspsrc posts its error first
    /// and then sends EOS downstream. Returns whether EOS came.
    fn wait_eos(&mut self, timeout: Duration) -> bool {
        let bus = self.pipeline.bus().unwrap();
        let t0 = Instant::now();
        while !self.log.eos && t0.elapsed() < timeout {
            if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(20)) {
                self.record(&msg);
            }
        }
        self.log.eos
    }

    /// Waits (at most `timeout`) for EOS or an error; returns how long it took.
    fn wait_end(&mut self, timeout: Duration) -> Duration {
        let t0 = Instant::now();
        self.pump(timeout, |_| false);
        t0.elapsed()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The latency the sink was given by the pipeline (the minimum its latency query found).
fn configured_latency(sink: &gst_app::AppSink) -> gst::ClockTime {
    sink.dynamic_cast_ref::<gst_base::BaseSink>()
        .expect("appsink is a GstBaseSink")
        .latency()
}

/// A file in the temporary directory, removed when dropped (also when a test fails).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp(name: &str) -> TempFile {
    TempFile(std::env::temp_dir().join(format!("yoloanonymize-{}-{name}", std::process::id())))
}

#[test]
fn live_rtsp_camera_is_anonymized_on_time() {
    let _timing = timing();
    const FRAMES: u32 = 40;
    init();
    let camera = Camera::start(&camera_launch(Some(FRAMES)));
    let audit = temp("rtsp.jsonl");
    let max_latency = Duration::from_millis(600);
    let mut run = Run::start(&camera.url(), max_latency, &audit.0, None);

    // Once frames flow, the latency the pipeline reports includes the element's max-latency.
    assert!(
        run.pump(Duration::from_secs(20), |s| s.at_sink >= 5),
        "frames come out of the anonymizer ({:?})",
        run.log.error
    );
    let latency_of = |pad: &gst::Pad| {
        let mut q = gst::query::Latency::new();
        assert!(pad.peer_query(&mut q), "latency query answered");
        q.result()
    };
    let (live_up, min_up, _) = latency_of(&run.anon.static_pad("sink").unwrap());
    let (live, min, max) = latency_of(&run.sink.static_pad("sink").unwrap());
    let configured = configured_latency(&run.sink);
    println!(
        "latency: upstream of yoloanonymize {min_up}, at the sink {min} / {max:?}, configured {configured}"
    );
    assert!(live && live_up, "an RTSP source is live");
    assert_eq!(
        min - min_up,
        gst::ClockTime::from_nseconds(max_latency.as_nanos() as u64),
        "yoloanonymize adds its max-latency to the latency query"
    );
    assert!(
        configured >= min,
        "the pipeline runs with the latency it reports"
    );

    // The clip ends: the camera sends BYE, rtspsrc goes EOS, every held frame leaves.
    run.wait_end(Duration::from_secs(40));
    assert!(run.log.error.is_none(), "{:?}", run.log.error);
    assert!(run.log.eos, "EOS when the camera's stream ends");
    drop(camera);

    let seen = run.seen.lock().unwrap();
    let info = gst_video::VideoInfo::from_caps(seen.caps.as_ref().unwrap()).unwrap();
    let (n_in, n_out) = (seen.input.len(), seen.output.len());
    println!(
        "{n_in} frames in, {n_out} out, {} at the sink, {} of them late (worst by {:?})",
        seen.at_sink, seen.late_at_sink, seen.worst_lateness
    );
    assert_eq!(n_out, n_in, "one frame out per frame in");
    assert_eq!(seen.at_sink, n_out, "every frame reaches the sink");
    assert_eq!(
        n_in as u32, FRAMES,
        "every frame the camera sent arrives (over TCP)"
    );

    // On time: no frame stays in the element longer than max-latency. The element checks its
    // deadlines when a frame arrives, so one frame interval and some scheduling slack are added.
    let mut delays: Vec<Duration> = seen.output.iter().map(|(_, d)| *d).collect();
    delays.sort();
    let worst = *delays.last().unwrap();
    println!(
        "time in yoloanonymize: median {:?}, worst {worst:?}",
        delays[delays.len() / 2]
    );
    assert!(
        worst <= max_latency + FRAME + Duration::from_millis(150),
        "a frame stayed {worst:?} in yoloanonymize (max-latency {max_latency:?})"
    );

    // Anonymized: the audit file, the region metas and the pixels agree; frames the model could
    // not analyse in time are pixelated whole.
    let text = std::fs::read_to_string(&audit.0).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), n_out, "one audit line per frame");
    let (mut with_regions, mut whole) = (0, 0);
    for (i, (rec, (out, _))) in lines.iter().zip(&seen.output).enumerate() {
        let pts = out.pts().unwrap();
        assert_eq!(rec["pts"], pts.nseconds(), "frame {i}");
        let plain = &seen.input[&pts].0;
        let a = gst_video::VideoFrameRef::from_buffer_ref_readable(plain.as_ref(), &info).unwrap();
        let b = gst_video::VideoFrameRef::from_buffer_ref_readable(out.as_ref(), &info).unwrap();
        let (ya, yb) = (a.plane_data(0).unwrap(), b.plane_data(0).unwrap());
        let stride = a.plane_stride()[0] as usize;
        // Luma samples changed in a rectangle, and how many it has.
        let changed = |x0: usize, y0: usize, x1: usize, y1: usize| {
            let n = (y0..y1)
                .flat_map(|y| (x0..x1).map(move |x| y * stride + x))
                .filter(|&o| ya[o] != yb[o])
                .count();
            (n, (x1 - x0) * (y1 - y0))
        };
        // Variance of the input's luma in a rectangle.
        let variance = |x0: usize, y0: usize, x1: usize, y1: usize| {
            let v: Vec<f64> = (y0..y1)
                .flat_map(|y| (x0..x1).map(move |x| ya[y * stride + x] as f64))
                .collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            v.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / v.len() as f64
        };
        if rec["redacted_whole"] == true {
            whole += 1;
            let (n, total) = changed(0, 0, info.width() as usize, info.height() as usize);
            assert!(
                n * 2 > total,
                "frame {i} is said pixelated whole but {n}/{total} pixels changed"
            );
            continue;
        }
        let mut listed = Vec::new();
        for r in rec["regions"].as_array().unwrap() {
            let v = |k: &str| r[k].as_u64().unwrap() as usize;
            let (x0, y0, x1, y1) = (v("x0"), v("y0"), v("x1"), v("y1"));
            let (n, total) = changed(x0, y0, x1, y1);
            // A blur leaves a flat patch (a wall) almost as it was: such a region hides
            // nothing, so only textured ones must have changed.
            let var = variance(x0, y0, x1, y1);
            assert!(
                n * 2 > total || var < 25.0,
                "frame {i}: region {r} not redacted ({n}/{total} pixels changed, variance {var:.1})"
            );
            let rect = (x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32);
            listed.push((r["kind"].as_str().unwrap().to_string(), rect));
        }
        with_regions += !listed.is_empty() as usize;
        let mut metas: Vec<_> = out
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .map(|m| (m.roi_type().to_string(), m.rect()))
            .collect();
        metas.sort();
        listed.sort();
        assert_eq!(
            metas, listed,
            "frame {i}: region metas and audit file disagree"
        );
    }
    println!("{with_regions} frames with redacted regions, {whole} pixelated whole");
    assert!(
        with_regions * 2 >= n_out - whole,
        "people are found and covered in most analysed frames ({with_regions} of {})",
        n_out - whole
    );
    let last = run.log.stats.last().expect("statistics posted");
    assert!(last.get::<bool>(field::EOS).unwrap(), "statistics at EOS");
    assert_eq!(last.get::<u64>(field::FRAMES).unwrap(), n_out as u64);
    assert_eq!(
        last.get::<u64>(field::FRAMES_REDACTED_WHOLE).unwrap(),
        whole as u64
    );
}

#[test]
fn camera_going_away_ends_the_pipeline() {
    let _timing = timing();
    init();
    let camera = Camera::start(&camera_launch(None));
    let audit = temp("rtsp-stop.jsonl");
    let mut run = Run::start(&camera.url(), Duration::from_millis(600), &audit.0, None);
    assert!(
        run.pump(Duration::from_secs(30), |s| s.at_sink >= 15),
        "frames come out of the anonymizer ({:?})",
        run.log.error
    );
    camera.stop();
    let took = run.wait_end(Duration::from_secs(15));
    println!(
        "camera gone: {} after {took:?}; error {:?}; warnings {:?}",
        if run.log.eos { "EOS" } else { "no EOS" },
        run.log.error,
        run.log.warnings
    );
    assert!(
        run.log.eos || run.log.error.is_some(),
        "EOS or an error within 15 s of the camera going away"
    );
    // The user is told why.
    assert!(
        run.log
            .error
            .iter()
            .chain(&run.log.warnings)
            .any(|m| m.contains("rtspsrc")),
        "rtspsrc says the stream was lost"
    );
    // An error comes before rtspsrc's EOS; the frames the element holds leave at that EOS.
    assert!(
        run.wait_eos(Duration::from_secs(5)),
        "EOS follows within 5 s (error {:?})",
        run.log.error
    );
    let seen = run.seen.lock().unwrap();
    assert_eq!(
        seen.output.len(),
        seen.input.len(),
        "held frames leave at EOS"
    );
    assert!(
        seen.input.len() < 80,
        "the camera stopped before the end of its clip"
    );
}

#[test]
fn silent_camera_is_caught_by_the_watchdog() {
    let _timing = timing();
    init();
    let camera = Camera::start(&camera_launch(None));
    let audit = temp("rtsp-silent.jsonl");
    let timeout = Duration::from_secs(3);
    let mut run = Run::start(
        &camera.url(),
        Duration::from_millis(600),
        &audit.0,
        Some(timeout),
    );
    assert!(
        run.pump(Duration::from_secs(30), |s| s.at_sink >= 10),
        "frames come out of the anonymizer ({:?})",
        run.log.error
    );
    // The connection stays open and nothing more comes: rtspsrc alone would wait for ever.
    camera.go_silent();
    let took = run.wait_end(Duration::from_secs(15));
    println!("camera silent: {:?} after {took:?}", run.log.error);
    let error = run.log.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("watchdog"),
        "the watchdog stops the pipeline with an error within 15 s (got {:?}, EOS {})",
        run.log.error,
        run.log.eos
    );
    assert!(
        took < timeout + Duration::from_secs(5),
        "the error comes about {timeout:?} after the last frame, not {took:?}"
    );
}
