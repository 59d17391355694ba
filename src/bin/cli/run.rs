//! Runs one job: starts its pipeline, follows the bus until EOS or an error, drives the progress
//! bar, and turns Ctrl-C into an EOS so that the MP4 is finalised. A regular output is written
//! to a temporary file beside it ([`Staged`]) and given its name only when the run succeeded and
//! the file holds as many frames as left the anonymizer; a device or FIFO is written as it is.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstyoloanonymize::stats::field;

use super::args::Cli;
use super::error::{Error, Result, one_line};
use super::files::{self, Staged};
use super::jobs::Job;
use super::mp4;
use super::pipeline::{self, Anonymizer};
use super::progress::Progress;
use super::summary::{STATS_MESSAGE, Stats};

/// How often the bus wait returns to poll the position.
const POLL: Duration = Duration::from_millis(200);

/// After Ctrl-C, how long the pipeline may go without a frame leaving the anonymizer or the
/// encoder before the tool gives up (draining the frames it holds takes as long as it takes).
const STALL_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the pipeline may run, once the model is loaded, without a single frame coming out of
/// the decoder before the tool gives up. Seen under load (3 runs at once on 2 cores, 2 in 45): on a
/// damaged MP4 (an `mdat` without `moov`) qtdemux's "no known streams found" error was posted
/// but never reached the pipeline's bus, and the run waited forever.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(60);

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
                files::remove_temporaries();
                eprintln!("\nerror: interrupted again; the output was not written");
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
/// bar). On error nothing is left: the temporary file is removed, and a file that was at the
/// output's name before is untouched.
pub fn run(
    job: &Job,
    place: Option<(usize, usize)>,
    cli: &Cli,
    interrupt: &Interrupt,
) -> Result<Outcome> {
    let staged = if job.direct {
        None
    } else {
        Some(Staged::create(&job.output)?)
    };
    let location = staged.as_ref().map_or(job.output.as_path(), Staged::path);
    let anonymizer = pipeline::build(job, location, cli)?;
    let mut progress = Progress::new(&job.name, place, cli.quiet);
    let result = play(&anonymizer, &mut progress, interrupt).map_err(|e| match e {
        Failure::Writing(e) => Error::new(format!("cannot write {}: {e}", job.output.display())),
        Failure::Other(e) => e,
    });
    progress.finish();
    // Stopping cannot fail in a way the user could act on; the result above says what happened.
    // In the NULL state the file sink has closed the file.
    let _ = anonymizer.pipeline.set_state(gst::State::Null);
    let outcome = result?;
    if let Some(staged) = staged {
        check_written(staged.path(), outcome.stats.frames)?;
        staged.commit(cli.overwrite)?;
    }
    Ok(outcome)
}

/// Fails unless the MP4 at `path` was finalised and its video track holds `frames` frames.
fn check_written(path: &std::path::Path, frames: u64) -> Result<()> {
    let mut file = files::open(path)?;
    match mp4::video_frames(&mut file) {
        Ok(Some(n)) if n == frames => Ok(()),
        Ok(Some(n)) => Err(Error::new(format!(
            "the MP4 written holds {n} frames but {frames} left the anonymizer; it is not kept"
        ))),
        Ok(None) => Err(Error::new(
            "the MP4 written was not finalised (it has no video track index); it is not kept",
        )),
        Err(e) => Err(Error::new(format!(
            "the MP4 written cannot be read back ({}); it is not kept",
            files::io_reason(&e)
        ))),
    }
}

/// Why a run failed: writing the output (an error of the file sink), or anything else.
enum Failure {
    Writing(Error),
    Other(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Other(e)
    }
}

/// The failure an error message stands for, by the element that posted it.
fn failure(msg: &gst::Message, error: Error, sink: &gst::Element) -> Failure {
    if msg
        .src()
        .is_some_and(|s| s == sink.upcast_ref::<gst::Object>())
    {
        Failure::Writing(error)
    } else {
        Failure::Other(error)
    }
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
) -> std::result::Result<Outcome, Failure> {
    let pipeline = &anonymizer.pipeline;
    let bus = pipeline
        .bus()
        .ok_or_else(|| Error::new("the pipeline has no bus"))?;
    let started = Instant::now();
    if pipeline.set_state(gst::State::Playing).is_err() {
        return Err(first_error(&bus, &anonymizer.sink)
            .unwrap_or_else(|| Failure::Other(Error::new("the pipeline could not be started"))));
    }
    // From here the model is loaded (the anonymizer's start runs within the state change).
    let playing = Instant::now();
    let mut final_stats = None;
    let mut eos_sent = false;
    // After Ctrl-C: buffers moved so far, and when that count last changed.
    let mut last_move = (0, Instant::now());
    loop {
        if interrupt.requested() && !eos_sent {
            progress.println("Stopping: finishing the output (Ctrl-C again to abort)");
            pipeline.send_event(gst::event::Eos::new());
            eos_sent = true;
            last_move = (anonymizer.moved.load(Ordering::Relaxed), Instant::now());
        }
        if eos_sent {
            let moved = anonymizer.moved.load(Ordering::Relaxed);
            if moved != last_move.0 {
                last_move = (moved, Instant::now());
            } else if last_move.1.elapsed() > STALL_TIMEOUT {
                return Err(Failure::Other(Error::new(format!(
                    "the pipeline stopped moving for {} s after Ctrl-C; the output is not kept",
                    STALL_TIMEOUT.as_secs()
                ))));
            }
        }
        let timeout = gst::ClockTime::from_mseconds(POLL.as_millis() as u64);
        if let Some(msg) = bus.timed_pop(timeout)
            && let Step::Done = handle(&msg, &anonymizer.sink, progress, &mut final_stats)?
        {
            break;
        }
        progress.poll(pipeline, &anonymizer.anonymize);
        if anonymizer.decoded.load(Ordering::Relaxed) == 0
            && playing.elapsed() > FIRST_FRAME_TIMEOUT
        {
            return Err(Failure::Other(Error::new(format!(
                "no video frame came out of the decoder in {} s: the input may be damaged or have no playable streams; the output is not kept",
                FIRST_FRAME_TIMEOUT.as_secs()
            ))));
        }
    }
    let stats = final_stats
        .ok_or_else(|| Failure::Other(Error::new("no video frame reached the anonymizer")))?;
    Ok(Outcome {
        stats,
        wall: started.elapsed(),
        interrupted: eos_sent,
    })
}

/// Acts on one bus message: statistics, warnings, errors (of the file `sink` or another
/// element) and EOS.
fn handle(
    msg: &gst::Message,
    sink: &gst::Element,
    progress: &mut Progress,
    final_stats: &mut Option<Stats>,
) -> std::result::Result<Step, Failure> {
    use gst::MessageView;
    match msg.view() {
        MessageView::Eos(_) => return Ok(Step::Done),
        MessageView::Error(e) => {
            return Err(failure(
                msg,
                bus_error(e.error(), e.debug().as_deref()),
                sink,
            ));
        }
        MessageView::Warning(w) => progress.println(&format!("warning: {}", w.error())),
        MessageView::Element(e) => {
            if let Some(s) = e.structure().filter(|s| s.name() == STATS_MESSAGE) {
                let stats = Stats::from_structure(s);
                progress.stats(&stats);
                if s.get::<bool>(field::EOS).unwrap_or(false) {
                    *final_stats = Some(stats);
                }
            }
        }
        _ => {}
    }
    Ok(Step::Continue)
}

/// The first error message waiting on the bus, if any.
fn first_error(bus: &gst::Bus, sink: &gst::Element) -> Option<Failure> {
    while let Some(msg) = bus.pop() {
        if let gst::MessageView::Error(e) = msg.view() {
            return Some(failure(
                &msg,
                bus_error(e.error(), e.debug().as_deref()),
                sink,
            ));
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
