//! The CLI's error: one line a user can act on.

use std::fmt;

/// A failure, as the one line printed before the tool exits non-zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    /// An error with this message; line breaks are folded so it stays on one line.
    pub fn new(message: impl AsRef<str>) -> Self {
        Error(one_line(message.as_ref()))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<gst::glib::BoolError> for Error {
    fn from(e: gst::glib::BoolError) -> Self {
        Error::new(e.message)
    }
}

impl From<gst::StateChangeError> for Error {
    fn from(_: gst::StateChangeError) -> Self {
        Error::new("the pipeline could not be started")
    }
}

/// `s` with its lines trimmed, the empty ones dropped and the rest joined by spaces.
pub fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

pub type Result<T> = std::result::Result<T, Error>;
