//! `yoloanonymize-cli INPUT OUTPUT [options]`: anonymizes people in a video file, every video in
//! a folder, or an RTSP stream, with the `yoloanonymize` element, into H.264 MP4 (audio kept).
//!
//! ```text
//! yoloanonymize-cli in.mp4 out.mp4 --targets face --method pixelate
//! yoloanonymize-cli videos/ anonymized/
//! yoloanonymize-cli rtsp://camera/stream recording.mp4     # until Ctrl-C
//! ```
//!
//! Everything about *what* is anonymized is the element's; this tool only builds the pipeline
//! (`pipeline`), follows it (`run`), and reports (`progress`, `summary`). Errors are printed as
//! one line and the exit status is non-zero: 1 for a failed run, 2 for bad arguments, 130 when
//! interrupted. Nothing is lost: an output is written under a temporary name and renamed when
//! complete (`files`), no output may be an input, an existing output is replaced only with
//! `--overwrite`, and credentials in URLs are masked in every line printed.

mod cli;

use std::process::ExitCode;

use clap::error::ErrorKind;

use cli::args::Cli;
use cli::error::{Error, Result, print_err, print_out, printable};
use cli::jobs::{self, Options, Plan};
use cli::run::{self, EXIT_INTERRUPTED, Interrupt, Outcome};
use cli::summary::{self, Stats};

fn main() -> ExitCode {
    install_panic_hook();
    if let Err(e) = init() {
        print_err(&format!("error: {e}"));
        return ExitCode::FAILURE;
    }
    // After init: the element's properties give the defaults and ranges of its flags.
    let cli = match Cli::try_parse_with_element(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match anonymize(&cli) {
        Ok(code) => code,
        Err(e) => {
            print_err(&format!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Initialises GStreamer and registers the element built into this program.
fn init() -> Result<()> {
    gst::init().map_err(|e| Error::new(format!("cannot initialise GStreamer: {e}")))?;
    gstyoloanonymize::plugin_register_static()
        .map_err(|e| Error::new(format!("cannot register the yoloanonymize element: {e}")))
}

/// Prints clap's help or version as is, and an argument error as one line (status 2).
fn usage_error(e: &clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            let text = e.render().to_string();
            let lines: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .filter(|l| !l.trim_start().starts_with("tip:"))
                .collect();
            print_err(&format!("{} (see --help)", printable(&lines.join("\n"))));
            ExitCode::from(2)
        }
    }
}

/// Makes an unexpected panic one line on stderr rather than a backtrace (unless
/// `RUST_BACKTRACE` asks for one).
fn install_panic_hook() {
    if std::env::var_os("RUST_BACKTRACE").is_none() {
        std::panic::set_hook(Box::new(|info| {
            print_err(&format!(
                "error: internal error: {}",
                printable(&info.to_string())
            ));
        }));
    }
}

/// Plans the jobs (every path checked before anything is created), runs them and prints the
/// summary.
fn anonymize(cli: &Cli) -> Result<ExitCode> {
    let options = Options {
        overwrite: cli.overwrite,
    };
    let plan = jobs::plan(
        &cli.input,
        &cli.output,
        cli.detections_file.as_deref(),
        options,
    )?;
    let interrupt = Interrupt::install()?;
    match &plan.folder {
        None => run_single(cli, &plan, &interrupt),
        Some(folder) => run_folder(cli, &plan, folder, &interrupt),
    }
}

/// One input: its summary, or its error.
fn run_single(cli: &Cli, plan: &Plan, interrupt: &Interrupt) -> Result<ExitCode> {
    let Some(job) = plan.jobs.first() else {
        return Err(Error::new("nothing to do"));
    };
    let outcome = run::run(job, None, cli, interrupt)
        .map_err(|e| Error::new(format!("{}: {e}", job.name)))?;
    if !cli.quiet {
        let output = job.output.display().to_string();
        print_out(&summary::block(
            &outcome.stats,
            outcome.wall,
            &output,
            outcome.interrupted,
        ));
    }
    Ok(exit_code(&outcome, job.live))
}

/// Every input of a folder, one after the other: a line for each, the totals at the end. An
/// input that fails is reported and the others still run; Ctrl-C stops after the current one.
fn run_folder(
    cli: &Cli,
    plan: &Plan,
    folder: &std::path::Path,
    interrupt: &Interrupt,
) -> Result<ExitCode> {
    let total_jobs = plan.jobs.len();
    let mut total = Stats::default();
    let mut wall = std::time::Duration::ZERO;
    let (mut done, mut failed) = (0, 0);
    for (i, job) in plan.jobs.iter().enumerate() {
        if interrupt.requested() {
            break;
        }
        match run::run(job, Some((i + 1, total_jobs)), cli, interrupt) {
            Ok(outcome) => {
                done += 1;
                total.add(&outcome.stats);
                wall += outcome.wall;
                if !cli.quiet {
                    print_out(&summary::file_line(
                        i + 1,
                        total_jobs,
                        &job.name,
                        &job.output,
                        &outcome.stats,
                        outcome.wall,
                    ));
                }
            }
            Err(e) => {
                failed += 1;
                print_err(&format!("error: {}: {e}", job.name));
            }
        }
    }
    if !cli.quiet {
        let output = format!("{} ({done} of {total_jobs} files)", folder.display());
        print_out(&summary::block(
            &total,
            wall,
            &output,
            interrupt.requested(),
        ));
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else if interrupt.requested() {
        ExitCode::from(EXIT_INTERRUPTED as u8)
    } else {
        ExitCode::SUCCESS
    })
}

/// Success, or 130 when a file was cut short by Ctrl-C (stopping a live stream is its normal end).
fn exit_code(outcome: &Outcome, live: bool) -> ExitCode {
    if outcome.interrupted && !live {
        ExitCode::from(EXIT_INTERRUPTED as u8)
    } else {
        ExitCode::SUCCESS
    }
}
