//! Embedding `yoloanonymize` in a Rust application.
//!
//! ```sh
//! cargo run --release --example embed -- INPUT [OUTPUT]
//! ```
//!
//! Registers the element in-process (no `GST_PLUGIN_PATH` needed), builds
//!
//! ```text
//! filesrc ! decodebin ! yoloanonymize ! appsink
//! ```
//!
//! element by element (with OUTPUT, a `tee` after `yoloanonymize` also feeds
//! `queue ! videoconvert ! x264enc ! mp4mux ! filesink`), and prints one line per frame with the
//! regions the element redacted, read from the `GstVideoRegionOfInterestMeta`s it attaches to
//! every buffer:
//!
//! ```text
//! frame 12 pts 0:00:00.480000000 regions 2: face 639,290 40x37 conf 0.71; face 96,201 25x29 conf 0.42
//! ```
//!
//! At the end it prints a summary from the `yoloanonymize-stats` message the element posts at EOS.
//! Warnings (frames the model could not analyse) go to stderr; an error stops the pipeline and
//! exits with status 1 and the message on stderr.

use std::error::Error;
use std::process::ExitCode;

use gst::prelude::*;
// The names of the element's messages and of their fields.
use gstyoloanonymize::stats::{STATS_MESSAGE, field};

/// What to redact and how (see the Properties section of the README).
const TARGETS: &str = "face";
const METHOD: &str = "pixelate";
const BATCH_SIZE: u32 = 4;
const CONF_THRESHOLD: f64 = 0.25;
/// Frames the model could not analyse leave pixelated whole, with a warning on the bus.
const ON_FAILURE: &str = "redact-frame";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (input, output) = match args.as_slice() {
        [input] => (input.as_str(), None),
        [input, output] => (input.as_str(), Some(output.as_str())),
        _ => {
            eprintln!("usage: embed INPUT [OUTPUT.mp4]");
            return ExitCode::from(2);
        }
    };
    match run(input, output) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(input: &str, output: Option<&str>) -> Result<(), Box<dyn Error>> {
    gst::init()?;
    gstyoloanonymize::plugin_register_static()?;

    let pipeline = build_pipeline(input, output)?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The element that failed (e.g. filesrc on a missing file) has posted the reason.
        let reason = bus
            .timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error])
            .map(|msg| match msg.view() {
                gst::MessageView::Error(e) => error_text(e),
                _ => unreachable!("filtered on errors"),
            })
            .unwrap_or_else(|| "the pipeline could not start".to_string());
        let _ = pipeline.set_state(gst::State::Null);
        return Err(reason.into());
    }

    let mut result = Ok(());
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        use gst::MessageView;
        match msg.view() {
            MessageView::Eos(_) => break,
            MessageView::Error(e) => {
                result = Err(error_text(e).into());
                break;
            }
            MessageView::Warning(w) => {
                let src = msg.src().map(|s| s.path_string()).unwrap_or_default();
                eprintln!("warning from {src}: {}", w.error());
            }
            MessageView::Element(_) => {
                if let Some(s) = msg.structure()
                    && s.name() == STATS_MESSAGE
                {
                    // Posted every second of stream time, and once more at EOS with the totals.
                    if s.get::<bool>(field::EOS).unwrap_or(false) {
                        println!("{}", summary(s));
                    } else {
                        eprintln!(
                            "progress: {} frames, {:.1} fps",
                            s.get::<u64>(field::FRAMES).unwrap_or(0),
                            s.get::<f64>(field::FPS).unwrap_or(0.0)
                        );
                    }
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null)?;
    result
}

/// `filesrc ! decodebin ! yoloanonymize ! appsink`, plus an encoding branch to `output` if given.
fn build_pipeline(input: &str, output: Option<&str>) -> Result<gst::Pipeline, Box<dyn Error>> {
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", input)
        .build()?;
    let decode = gst::ElementFactory::make("decodebin").build()?;
    let anonymize = gst::ElementFactory::make("yoloanonymize")
        .property_from_str("targets", TARGETS)
        .property_from_str("method", METHOD)
        .property("batch-size", BATCH_SIZE)
        .property("conf-threshold", CONF_THRESHOLD)
        .property_from_str("on-failure", ON_FAILURE)
        .build()?;
    let appsink = gst_app::AppSink::builder()
        .sync(false) // as fast as possible, not at the clip's frame rate
        .callbacks(print_regions_callbacks())
        .build();

    pipeline.add_many([&src, &decode, &anonymize, appsink.upcast_ref()])?;
    src.link(&decode)?;
    match output {
        None => anonymize.link(&appsink)?,
        Some(path) => {
            let tee = gst::ElementFactory::make("tee").build()?;
            let to_appsink = gst::ElementFactory::make("queue").build()?;
            let to_file = gst::ElementFactory::make("queue").build()?;
            let convert = gst::ElementFactory::make("videoconvert").build()?;
            // zerolatency: x264enc gives a frame out per frame in. With its default look-ahead it
            // holds more frames than the appsink branch's queue buffers while the appsink waits
            // for the pipeline to reach PLAYING, and the tee would block both branches.
            let encode = gst::ElementFactory::make("x264enc")
                .property_from_str("speed-preset", "veryfast")
                .property_from_str("tune", "zerolatency")
                .build()?;
            let mux = gst::ElementFactory::make("mp4mux").build()?;
            let sink = gst::ElementFactory::make("filesink")
                .property("location", path)
                .build()?;
            pipeline.add_many([&tee, &to_appsink, &to_file, &convert, &encode, &mux, &sink])?;
            gst::Element::link_many([&anonymize, &tee, &to_appsink, appsink.upcast_ref()])?;
            gst::Element::link_many([&tee, &to_file, &convert, &encode, &mux, &sink])?;
        }
    }

    // decodebin creates its source pads once it knows what the file holds: link the first video
    // one to yoloanonymize, and fail clearly if there is none.
    let anonymize_sink = anonymize
        .static_pad("sink")
        .expect("yoloanonymize has a sink pad");
    decode.connect_pad_added(move |decode, pad| {
        let is_video = pad
            .current_caps()
            .and_then(|caps| caps.structure(0).map(|s| s.name().starts_with("video/")))
            .unwrap_or(false);
        if is_video
            && !anonymize_sink.is_linked()
            && let Err(e) = pad.link(&anonymize_sink)
        {
            gst::element_error!(
                decode,
                gst::CoreError::Negotiation,
                ("Cannot link the decoded video to yoloanonymize: {e}")
            );
        }
    });
    let anonymize_sink = anonymize
        .static_pad("sink")
        .expect("yoloanonymize has a sink pad");
    decode.connect_no_more_pads(move |decode| {
        if !anonymize_sink.is_linked() {
            gst::element_error!(
                decode,
                gst::StreamError::WrongType,
                ("The input has no video stream")
            );
        }
    });
    Ok(pipeline)
}

/// Called on the streaming thread for every frame that reaches the appsink.
fn print_regions_callbacks() -> gst_app::AppSinkCallbacks {
    let mut frame = 0u64;
    gst_app::AppSinkCallbacks::builder()
        .new_sample(move |sink| {
            let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
            let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
            println!("{}", describe_frame(frame, buffer));
            frame += 1;
            Ok(gst::FlowSuccess::Ok)
        })
        .build()
}

/// `frame N pts T regions K: kind x,y wxh conf C; ...` from the buffer's region-of-interest metas.
fn describe_frame(frame: u64, buffer: &gst::BufferRef) -> String {
    let regions: Vec<String> = buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|roi| {
            let (x, y, w, h) = roi.rect();
            let detail = if let Some(d) = roi.param("detection") {
                format!("conf {:.2}", d.get::<f64>("confidence").unwrap_or(f64::NAN))
            } else if let Some(why) = roi.param("yoloanonymize") {
                // A whole-frame region: the frame could not be analysed and was pixelated whole.
                format!("reason {:?}", why.get::<&str>("reason").unwrap_or_default())
            } else {
                String::new()
            };
            format!("{} {x},{y} {w}x{h} {detail}", roi.roi_type())
        })
        .collect();
    let pts = buffer.pts().display();
    if regions.is_empty() {
        format!("frame {frame} pts {pts} regions 0")
    } else {
        format!(
            "frame {frame} pts {pts} regions {}: {}",
            regions.len(),
            regions.join("; ")
        )
    }
}

/// One line from the `yoloanonymize-stats` message posted at EOS.
fn summary(s: &gst::StructureRef) -> String {
    let count = |name| s.get::<u64>(name).unwrap_or(0);
    let value = |name| s.get::<f64>(name).unwrap_or(0.0);
    format!(
        "summary: {} frames, {} analysed in {} batches, {} people, {} regions, \
         {} redacted whole, {} late; {:.1} fps, {:.1} ms inference per batch",
        count(field::FRAMES),
        count(field::ANALYSED),
        count(field::BATCHES),
        count(field::PEOPLE),
        count(field::REGIONS),
        count(field::FRAMES_REDACTED_WHOLE),
        count(field::FRAMES_LATE),
        value(field::FPS),
        value(field::INFERENCE_MS_PER_BATCH),
    )
}

/// `from ELEMENT: MESSAGE (DETAILS)` for an error message on the bus.
fn error_text(e: &gst::message::Error) -> String {
    let src = e.src().map(|s| s.path_string()).unwrap_or_default();
    match e.debug() {
        Some(debug) => format!("from {src}: {}\n{debug}", e.error()),
        None => format!("from {src}: {}", e.error()),
    }
}
