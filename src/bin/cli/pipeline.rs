//! The GStreamer pipeline for one job:
//!
//! ```text
//! uridecodebin ─video→ queue ! videoconvert ! yoloanonymize ! queue ! videoconvert ! I420 ! x264enc ─┐
//!              ─audio→ queue ! audioconvert ! audioresample ! <AAC encoder> ──────────────────────── mp4mux ! filesink
//! ```
//!
//! The video branch is built up front; `uridecodebin`'s pads are linked as they appear: the first
//! video stream to the video branch, the first audio stream to a new audio branch, anything else to
//! a `fakesink`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use gst::prelude::*;

use super::args::Cli;
use super::error::{Error, Result};
use super::jobs::Job;

/// AAC encoders, in order of preference.
const AAC_ENCODERS: &[&str] = &["avenc_aac", "fdkaacenc", "voaacenc"];

/// Audio held before the muxer, so that the frames the anonymizer and encoder hold never block
/// the demuxer.
const AUDIO_QUEUE_TIME: gst::ClockTime = gst::ClockTime::from_seconds(10);

/// A built pipeline and the elements the runner looks at.
pub struct Anonymizer {
    pub pipeline: gst::Pipeline,
    /// The `yoloanonymize` element (its sink pad's caps give the frame rate).
    pub anonymize: gst::Element,
    /// Buffers that left the anonymizer or the encoder so far: whether the pipeline is moving
    /// (while it drains after Ctrl-C).
    pub moved: Arc<AtomicU64>,
    /// The file sink: its errors are about writing the output.
    pub sink: gst::Element,
    /// Buffers that came out of the decoder so far: whether the input gives any video.
    pub decoded: Arc<AtomicU64>,
}

/// Builds the pipeline that anonymizes `job` with the settings in `cli`, writing the MP4 to
/// `location` (the job's temporary file, or its output when that is a device or FIFO).
pub fn build(job: &Job, location: &Path, cli: &Cli) -> Result<Anonymizer> {
    let pipeline = gst::Pipeline::with_name("yoloanonymize-cli");
    let source = make("uridecodebin")?;
    source.set_property("uri", &job.uri);
    source.set_property("expose-all-streams", false);
    source.set_property("force-sw-decoders", true);

    let decoded = make("queue")?;
    let convert_in = make("videoconvert")?;
    let anonymize = make("yoloanonymize")?;
    cli.configure_anonymizer(&anonymize, job.detections_file.as_ref());
    let anonymized = make("queue")?;
    let convert_out = make("videoconvert")?;
    let i420 = make("capsfilter")?;
    i420.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .build(),
    );
    let encoder = make("x264enc")?;
    cli.configure_encoder(&encoder);
    let mux = make("mp4mux")?;
    let sink = make("filesink")?;
    sink.set_property("location", location.to_string_lossy().as_ref());
    sink.set_property("sync", false);

    let video = [
        &decoded,
        &convert_in,
        &anonymize,
        &anonymized,
        &convert_out,
        &i420,
        &encoder,
        &mux,
        &sink,
    ];
    let sink = sink.clone();
    pipeline.add(&source)?;
    pipeline.add_many(video)?;
    gst::Element::link_many(video)?;

    let video_sink = decoded
        .static_pad("sink")
        .ok_or_else(|| Error::new("queue has no sink pad"))?;
    connect_pads(&source, video_sink.clone(), mux);
    let moved = Arc::new(AtomicU64::new(0));
    for element in [&anonymize, &encoder] {
        let pad = element
            .static_pad("src")
            .ok_or_else(|| Error::new("an element has no src pad"))?;
        count_buffers(&pad, &moved);
    }
    let frames_decoded = Arc::new(AtomicU64::new(0));
    count_buffers(&video_sink, &frames_decoded);
    Ok(Anonymizer {
        pipeline,
        anonymize,
        moved,
        sink,
        decoded: frames_decoded,
    })
}

/// Adds one to `counter` for each buffer that passes `pad`.
fn count_buffers(pad: &gst::Pad, counter: &Arc<AtomicU64>) {
    let counter = counter.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        counter.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
}

/// Links `uridecodebin`'s pads as they appear, and fails the pipeline when the input turns out
/// to have no video.
fn connect_pads(source: &gst::Element, video_sink: gst::Pad, mux: gst::Element) {
    let has_video = Arc::new(AtomicBool::new(false));
    let has_audio = Arc::new(AtomicBool::new(false));
    let video_seen = has_video.clone();
    source.connect_pad_added(move |source, pad| {
        let result = match media_kind(pad).as_str() {
            "video" if !has_video.swap(true, Ordering::SeqCst) => link(pad, &video_sink),
            "audio" if !has_audio.swap(true, Ordering::SeqCst) => add_audio(source, pad, &mux),
            _ => discard(source, pad),
        };
        if let Err(e) = result {
            gst::element_error!(source, gst::CoreError::Negotiation, ("{}", e));
        }
    });
    source.connect_no_more_pads(move |source| {
        if !video_seen.load(Ordering::SeqCst) {
            gst::element_error!(
                source,
                gst::StreamError::WrongType,
                ("the input has no video stream GStreamer can decode")
            );
        }
    });
}

/// `video`, `audio` or something else, from a decoded pad's caps.
fn media_kind(pad: &gst::Pad) -> String {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    caps.structure(0)
        .and_then(|s| s.name().split('/').next().map(str::to_owned))
        .unwrap_or_default()
}

/// Links `src` to `sink`, with the reason as the error.
fn link(src: &gst::Pad, sink: &gst::Pad) -> Result<()> {
    src.link(sink).map(|_| ()).map_err(|e| {
        Error::new(format!(
            "cannot link {} to {}: {e:?}",
            src.name(),
            sink.name()
        ))
    })
}

/// Adds `queue ! audioconvert ! audioresample ! <AAC encoder>` into `mux` for an audio pad, or
/// drops the audio with a warning when there is no AAC encoder or the muxer has started.
fn add_audio(source: &gst::Element, pad: &gst::Pad, mux: &gst::Element) -> Result<()> {
    let Some(encoder_name) = aac_encoder() else {
        gst::element_warning!(
            source,
            gst::CoreError::MissingPlugin,
            ("no AAC encoder (install gstreamer1.0-libav for avenc_aac); the audio track is dropped")
        );
        return discard(source, pad);
    };
    let Some(mux_pad) = mux.request_pad_simple("audio_%u") else {
        gst::element_warning!(
            source,
            gst::StreamError::Mux,
            ("the audio track appeared after the video had started; it is dropped")
        );
        return discard(source, pad);
    };
    let queue = make("queue")?;
    queue.set_property("max-size-time", AUDIO_QUEUE_TIME.nseconds());
    queue.set_property("max-size-buffers", 0u32);
    queue.set_property("max-size-bytes", 0u32);
    let chain = [
        queue,
        make("audioconvert")?,
        make("audioresample")?,
        make(encoder_name)?,
    ];
    let bin = parent_bin(source)?;
    bin.add_many(&chain)?;
    gst::Element::link_many(&chain)?;
    let encoder_src = chain[3]
        .static_pad("src")
        .ok_or_else(|| Error::new("the AAC encoder has no src pad"))?;
    link(&encoder_src, &mux_pad)?;
    for element in chain.iter().rev() {
        element.sync_state_with_parent()?;
    }
    let queue_sink = chain[0]
        .static_pad("sink")
        .ok_or_else(|| Error::new("queue has no sink pad"))?;
    link(pad, &queue_sink)
}

/// Links a pad the output does not use to a `fakesink`, so that it cannot stall the decoder.
fn discard(source: &gst::Element, pad: &gst::Pad) -> Result<()> {
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()?;
    parent_bin(source)?.add(&sink)?;
    sink.sync_state_with_parent()?;
    let sink_pad = sink
        .static_pad("sink")
        .ok_or_else(|| Error::new("fakesink has no sink pad"))?;
    link(pad, &sink_pad)
}

/// The bin (the pipeline) that holds `element`.
fn parent_bin(element: &gst::Element) -> Result<gst::Bin> {
    element
        .parent()
        .and_then(|p| p.downcast::<gst::Bin>().ok())
        .ok_or_else(|| Error::new("the decoder is not in a pipeline"))
}

/// The first AAC encoder installed, if any.
fn aac_encoder() -> Option<&'static str> {
    AAC_ENCODERS
        .iter()
        .copied()
        .find(|name| gst::ElementFactory::find(name).is_some())
}

/// Makes an element, or says which package provides it.
fn make(factory: &str) -> Result<gst::Element> {
    gst::ElementFactory::make(factory).build().map_err(|_| {
        Error::new(format!(
            "GStreamer element {factory} is missing; install {}",
            package_of(factory)
        ))
    })
}

/// The Debian package that provides a GStreamer element this tool uses.
fn package_of(factory: &str) -> &'static str {
    match factory {
        "x264enc" => "gstreamer1.0-plugins-ugly",
        "mp4mux" => "gstreamer1.0-plugins-good",
        "avenc_aac" => "gstreamer1.0-libav",
        "fdkaacenc" | "voaacenc" => "gstreamer1.0-plugins-bad",
        "yoloanonymize" => "this project's plugin (build it with cargo build --release)",
        _ => "gstreamer1.0-plugins-base",
    }
}
