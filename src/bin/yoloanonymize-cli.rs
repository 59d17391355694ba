//! `yoloanonymize-cli`: work in progress.
fn main() {}
