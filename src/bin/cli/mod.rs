//! The parts of `yoloanonymize-cli`: arguments, jobs, pipeline, progress, run and summary.

pub mod args;
pub mod error;
pub mod jobs;
pub mod pipeline;
pub mod progress;
pub mod run;
pub mod summary;
