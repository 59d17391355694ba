//! The progress bar: position against duration from the pipeline's queries, counts from the
//! element's statistics. Drawn on stderr, and only when stderr is a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use gst::prelude::*;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::error::{print_err, printable};
use super::summary::Stats;

/// Longest input name shown before the bar.
const NAME_WIDTH: usize = 28;

/// What the bar counts once the duration is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Frames: the frame rate is known.
    Frames,
    /// Milliseconds of the input: variable frame rate.
    Millis,
}

/// The bar for one input.
pub struct Progress {
    bar: ProgressBar,
    /// Frames per second of the input, once negotiated.
    framerate: Option<f64>,
    /// Set once the duration is known; `None` while a spinner (or for live streams).
    unit: Option<Unit>,
    stats: Stats,
}

impl Progress {
    /// A spinner labelled `name` (and `[i/n]`, its place among several inputs), hidden when
    /// `quiet` or when stderr is not a terminal.
    pub fn new(name: &str, place: Option<(usize, usize)>, quiet: bool) -> Self {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        let label = match place {
            Some((i, n)) => format!("[{i}/{n}] {}", short_name(name)),
            None => short_name(name),
        };
        bar.set_prefix(label);
        bar.set_style(style(
            "{prefix} {spinner:.green} {elapsed_precise} {pos} frames · {fps}{msg}",
        ));
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress {
            bar,
            framerate: None,
            unit: None,
            stats: Stats::default(),
        }
    }

    /// Polls the pipeline's position and duration and moves the bar. The bar starts once the
    /// anonymizer's caps (and so the frame rate) are known.
    pub fn poll(&mut self, pipeline: &gst::Pipeline, anonymize: &gst::Element) {
        if self.unit.is_none()
            && let Some(caps) = anonymize.static_pad("sink").and_then(|p| p.current_caps())
        {
            self.framerate = framerate(&caps);
            self.start_bar(pipeline.query_duration::<gst::ClockTime>());
        }
        let position = pipeline.query_position::<gst::ClockTime>();
        let done = match (self.unit, position, self.framerate) {
            (Some(Unit::Millis), Some(p), _) => p.mseconds(),
            (_, Some(p), Some(fps)) => (p.seconds_f64() * fps).round() as u64,
            _ => self.stats.frames,
        };
        if done > self.bar.position() {
            self.bar.set_position(done);
        }
    }

    /// Takes the counts of a `yoloanonymize-stats` message into the bar's message.
    pub fn stats(&mut self, stats: &Stats) {
        self.stats = *stats;
        let frames = match self.unit {
            // The bar counts milliseconds: the frames come from the statistics.
            Some(Unit::Millis) => format!(" · {} frames", stats.frames),
            _ => String::new(),
        };
        self.bar
            .set_message(format!("{frames} · {} regions", stats.regions));
        if self.unit.is_none() && self.framerate.is_none() && stats.frames > self.bar.position() {
            self.bar.set_position(stats.frames);
        }
    }

    /// Prints a line above the bar (on stderr, even when the bar is hidden), on one line and
    /// with the credentials of URLs masked.
    pub fn println(&self, line: &str) {
        self.bar.suspend(|| print_err(&printable(line)));
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Turns the spinner into a bar once the duration is known.
    fn start_bar(&mut self, duration: Option<gst::ClockTime>) {
        let Some(duration) = duration.filter(|d| !d.is_zero()) else {
            return;
        };
        let (unit, len, template) = match self.framerate {
            Some(fps) => (
                Unit::Frames,
                (duration.seconds_f64() * fps).round() as u64,
                "{prefix} {spinner:.green} {elapsed_precise} [{wide_bar:.cyan/blue}] {pos}/{len} frames · {fps} · ETA {eta}{msg}",
            ),
            None => (
                Unit::Millis,
                duration.mseconds(),
                "{prefix} {spinner:.green} {elapsed_precise} [{wide_bar:.cyan/blue}] {percent}% · ETA {eta}{msg}",
            ),
        };
        self.unit = Some(unit);
        self.bar.set_length(len);
        self.bar.set_style(style(template));
    }
}

/// A style from one of this module's templates, with the `{fps}` key.
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("fps", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.1} frames/s", s.per_sec());
        })
        .progress_chars("=> ")
}

/// The frame rate of the anonymizer's input caps, if fixed and non-zero.
fn framerate(caps: &gst::Caps) -> Option<f64> {
    let rate = caps.structure(0)?.get::<gst::Fraction>("framerate").ok()?;
    (rate.numer() > 0 && rate.denom() > 0).then(|| rate.numer() as f64 / rate.denom() as f64)
}

/// The file name of an input (or the URL), cut to [`NAME_WIDTH`] characters.
fn short_name(name: &str) -> String {
    let base = std::path::Path::new(name)
        .file_name()
        .filter(|_| !name.contains("://"))
        .map_or_else(|| name.to_owned(), |n| n.to_string_lossy().into_owned());
    if base.chars().count() > NAME_WIDTH {
        let head: String = base.chars().take(NAME_WIDTH - 1).collect();
        format!("{head}…")
    } else {
        base
    }
}
