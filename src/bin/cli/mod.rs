//! The parts of `yoloanonymize-cli`: arguments, jobs (and the files they name), pipeline,
//! progress, run (and the MP4 check of what it wrote) and summary.

pub mod args;
pub mod error;
pub mod files;
pub mod jobs;
pub mod mp4;
pub mod pipeline;
pub mod progress;
pub mod run;
pub mod summary;
