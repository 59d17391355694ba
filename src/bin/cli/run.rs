//! Runs one job: starts its pipeline, follows the bus until EOS or an error, drives the progress
//! bar, and turns Ctrl-C into an EOS so that the MP4 is finalised.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;

use super::args::Cli;
use super::error::{Error, Result, one_line};
use super::jobs::Job;
use super::pipeline::{self, Anonymizer};
use super::progress::Progress;
use super::summary::{STATS_MESSAGE, Stats};

/// How often the bus wait returns to poll the position.
const POLL: Duration = Duration::from_millis(200);

/// How long to wait for the pipeline to finish after Ctrl-C before giving up.
const EOS_TIMEOUT: Duration = Duration::from_secs(20);

/// Exit status when the tool is stopped by a second Ctrl-C.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Counts Ctrl-C (and SIGTERM): the first asks for a clean stop, the second exits at once.
#[derive(Clone, Default)]
pub struct Interrupt(Arc<AtomicUsize>);

impl Interrupt {
    /// Installs the signal handler.
    pub fn install() -> Result<Self> {
        let interrupt = Interrupt::default();
        let count = interrupt.0.clone();
        ctrlc::set_handler(move || {
            if count.fetch_add(1, Ordering::SeqCst) > 0 {
                eprintln!("\nerror: interrupted again; the output is incomplete");
                std::process::exit(EXIT_INTERRUPTED);
            }
        })
        .map_err(|e| Error::new(format!("cannot install the Ctrl-C handler: {e}")))?;
        Ok(interrupt)
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 0
    }
}

/// How one job ended.
#[derive(Debug)]
pub struct Outcome {
    /// The counts of the element's EOS statistics.
    pub stats: Stats,
    /// Wall-clock time from start to EOS.
    pub wall: Duration,
    /// Stopped by Ctrl-C (the output is complete up to there).
    pub interrupted: bool,
}

/// Anonymizes `job`, the `place`-th of several inputs if given (`(i, n)`, for the progress
/// bar). On error the partial output is removed.
pub fn run(
    job: &Job,
    place: Option<(usize, usize)>,
    cli: &Cli,
    interrupt: &Interrupt,
) -> Result<Outcome> {
    let anonymizer = pipeline::build(job, cli)?;
    let mut progress = Progress::new(&job.name, place, cli.quiet);
    let result = play(&anonymizer, &mut progress, interrupt);
    progress.finish();
    // Stopping cannot fail in a way the user could act on; the result above says what happened.
    let _ = anonymizer.pipeline.set_state(gst::State::Null);
    if result.is_err() {
        let _ = std::fs::remove_file(&job.output);
    }
    result
}

/// What a bus message means for the run.
enum Step {
    Continue,
    Done,
}

/// Plays the pipeline and follows its bus to the end.
fn play(
    anonymizer: &Anonymizer,
    progress: &mut Progress,
    interrupt: &Interrupt,
) -> Result<Outcome> {
    let pipeline = &anonymizer.pipeline;
    let bus = pipeline
        .bus()
        .ok_or_else(|| Error::new("the pipeline has no bus"))?;
    let started = Instant::now();
    if pipeline.set_state(gst::State::Playing).is_err() {
        return Err(
            first_error(&bus).unwrap_or_else(|| Error::new("the pipeline could not be started"))
        );
    }
    let mut final_stats = None;
    let mut eos_sent: Option<Instant> = None;
    loop {
        if interrupt.requested() && eos_sent.is_none() {
            progress.println("Stopping: finishing the output (Ctrl-C again to abort)");
            pipeline.send_event(gst::event::Eos::new());
            eos_sent = Some(Instant::now());
        }
        if eos_sent.is_some_and(|t| t.elapsed() > EOS_TIMEOUT) {
            return Err(Error::new(format!(
                "the pipeline did not finish within {} s of Ctrl-C; the output is incomplete",
                EOS_TIMEOUT.as_secs()
            )));
        }
        let timeout = gst::ClockTime::from_mseconds(POLL.as_millis() as u64);
        if let Some(msg) = bus.timed_pop(timeout)
            && let Step::Done = handle(&msg, progress, &mut final_stats)?
        {
            break;
        }
        progress.poll(pipeline, &anonymizer.anonymize);
    }
    let stats = final_stats.ok_or_else(|| Error::new("no video frame reached the anonymizer"))?;
    Ok(Outcome {
        stats,
        wall: started.elapsed(),
        interrupted: eos_sent.is_some(),
    })
}

/// Acts on one bus message: statistics, warnings, errors and EOS.
fn handle(
    msg: &gst::Message,
    progress: &mut Progress,
    final_stats: &mut Option<Stats>,
) -> Result<Step> {
    use gst::MessageView;
    match msg.view() {
        MessageView::Eos(_) => return Ok(Step::Done),
        MessageView::Error(e) => return Err(bus_error(e.error(), e.debug().as_deref())),
        MessageView::Warning(w) => {
            progress.println(&format!("warning: {}", one_line(&w.error().to_string())))
        }
        MessageView::Element(e) => {
            if let Some(s) = e.structure().filter(|s| s.name() == STATS_MESSAGE) {
                let stats = Stats::from_structure(s);
                progress.stats(&stats);
                if s.get::<bool>("eos").unwrap_or(false) {
                    *final_stats = Some(stats);
                }
            }
        }
        _ => {}
    }
    Ok(Step::Continue)
}

/// The first error message waiting on the bus, if any.
fn first_error(bus: &gst::Bus) -> Option<Error> {
    while let Some(msg) = bus.pop() {
        if let gst::MessageView::Error(e) = msg.view() {
            return Some(bus_error(e.error(), e.debug().as_deref()));
        }
    }
    None
}

/// One line from an error message: its text, and the reason from the debug details when they
/// add one (GStreamer puts the source location on their first line, the reason after it).
fn bus_error(error: gst::glib::Error, debug: Option<&str>) -> Error {
    let message = error.to_string();
    let reason = debug
        .map(|d| {
            d.lines()
                .filter(|l| !is_source_location(l))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .map(|r| one_line(&r))
        .filter(|r| !r.is_empty() && !message.contains(r.as_str()));
    match reason {
        Some(r) => Error::new(format!("{message} ({r})")),
        None => Error::new(message),
    }
}

/// Whether a debug line is GStreamer's `file.c(123): function (): /GstPipeline:...` header.
fn is_source_location(line: &str) -> bool {
    line.contains("): ") && line.contains("/Gst")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_line_keeps_the_reason_only() {
        let error = gst::glib::Error::new(gst::ResourceError::NotFound, "Resource not found.");
        let debug = "../gstfilesrc.c(557): gst_file_src_start (): /GstPipeline:p/GstFileSrc:f:\nNo such file \"x\"";
        assert_eq!(
            bus_error(error.clone(), Some(debug)).to_string(),
            "Resource not found. (No such file \"x\")"
        );
        let location_only =
            "../gsttypefindelement.c(1186): loop (): /GstPipeline:p/GstTypeFindElement:t";
        assert_eq!(
            bus_error(error, Some(location_only)).to_string(),
            "Resource not found."
        );
    }
}
