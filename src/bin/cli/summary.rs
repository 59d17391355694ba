//! The element's `yoloanonymize-stats` counts, and the summary printed at the end.

use std::path::Path;
use std::time::Duration;

/// Name of the element message that carries the statistics (the element's own constant).
pub use gstyoloanonymize::stats::STATS_MESSAGE;
use gstyoloanonymize::stats::field;

/// The counts of one `yoloanonymize-stats` message (totals since the start), or their sum over
/// several inputs.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Stats {
    pub frames: u64,
    /// People found, summed over frames (a person seen in 10 frames counts 10).
    pub people: u64,
    pub regions: u64,
    /// Frames the model could not analyse, pixelated whole.
    pub redacted_whole: u64,
    /// Frames the model could not analyse, let out untouched (`--on-failure passthrough`).
    pub passed_unanalysed: u64,
    /// Live only: frames that left at their deadline before being analysed.
    pub late: u64,
}

impl Stats {
    /// The counts of a `yoloanonymize-stats` structure; missing fields count 0.
    pub fn from_structure(s: &gst::StructureRef) -> Self {
        let count = |name: &str| s.get::<u64>(name).unwrap_or(0);
        Stats {
            frames: count(field::FRAMES),
            people: count(field::PEOPLE),
            regions: count(field::REGIONS),
            redacted_whole: count(field::FRAMES_REDACTED_WHOLE),
            passed_unanalysed: count(field::FRAMES_PASSED_UNANALYSED),
            late: count(field::FRAMES_LATE),
        }
    }

    /// Adds another input's counts.
    pub fn add(&mut self, o: &Stats) {
        self.frames += o.frames;
        self.people += o.people;
        self.regions += o.regions;
        self.redacted_whole += o.redacted_whole;
        self.passed_unanalysed += o.passed_unanalysed;
        self.late += o.late;
    }
}

/// `frames in time (rate)`, the rate over wall-clock time.
pub fn rate_line(frames: u64, wall: Duration) -> String {
    let secs = wall.as_secs_f64();
    let fps = if secs > 0.0 {
        frames as f64 / secs
    } else {
        0.0
    };
    format!("{frames} frames in {secs:.1} s ({fps:.1} frames/s)")
}

/// The summary block: the rate line, the counts, and where the output went.
pub fn block(stats: &Stats, wall: Duration, output: &str, interrupted: bool) -> String {
    let mut lines = vec![format!(
        "Anonymized {}{}",
        rate_line(stats.frames, wall),
        if interrupted {
            " (stopped by Ctrl-C)"
        } else {
            ""
        }
    )];
    let mut row = |label: &str, value: String| lines.push(format!("  {label:<24}{value}"));
    row(
        "people detected:",
        format!("{} (summed over frames)", stats.people),
    );
    row("regions redacted:", stats.regions.to_string());
    row(
        "frames redacted whole:",
        format!("{} (could not be analysed)", stats.redacted_whole),
    );
    if stats.passed_unanalysed > 0 {
        row(
            "frames NOT redacted:",
            format!("{} (--on-failure passthrough)", stats.passed_unanalysed),
        );
    }
    if stats.late > 0 {
        row("frames late (live):", stats.late.to_string());
    }
    row("output:", output.to_owned());
    lines.join("\n")
}

/// One input of a folder: `[i/n] input -> output: counts`.
pub fn file_line(
    index: usize,
    total: usize,
    input: &str,
    output: &Path,
    stats: &Stats,
    wall: Duration,
) -> String {
    format!(
        "[{index}/{total}] {input} -> {}: {}, {} people, {} regions, {} redacted whole",
        output.display(),
        rate_line(stats.frames, wall),
        stats.people,
        stats.regions,
        stats.redacted_whole
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_element_message() {
        gst::init().unwrap();
        let s = gst::Structure::builder(STATS_MESSAGE)
            .field(field::EOS, true)
            .field(field::FRAMES, 100u64)
            .field(field::PEOPLE, 7u64)
            .field(field::REGIONS, 6u64)
            .field(field::FRAMES_REDACTED_WHOLE, 1u64)
            .build();
        let stats = Stats::from_structure(&s);
        assert_eq!(stats.frames, 100);
        assert_eq!(stats.people, 7);
        assert_eq!(stats.redacted_whole, 1);
        assert_eq!(stats.late, 0);
    }

    #[test]
    fn summary_names_frames_and_output() {
        let stats = Stats {
            frames: 100,
            ..Stats::default()
        };
        let text = block(&stats, Duration::from_secs(10), "out.mp4", false);
        assert!(
            text.contains("100 frames in 10.0 s (10.0 frames/s)"),
            "{text}"
        );
        assert!(text.contains("out.mp4"));
        assert!(!text.contains("NOT redacted"));
    }
}
