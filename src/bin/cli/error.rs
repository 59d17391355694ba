//! The CLI's error: one line a user can act on; and the two ways the tool prints, both with the
//! credentials of any URL masked (`rtsp://user:***@camera/...`).

use std::fmt;

use gstyoloanonymize::uri::mask_credentials;

/// A failure, as the one line printed before the tool exits non-zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    /// An error with this message; line breaks are folded so it stays on one line, and the
    /// credentials of URLs in it (GStreamer's texts often quote the URI) are masked.
    pub fn new(message: impl AsRef<str>) -> Self {
        Error(printable(message.as_ref()))
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

/// `s` on one line ([`one_line`]), with the credentials of URLs masked.
pub fn printable(s: &str) -> String {
    mask_credentials(&one_line(s)).into_owned()
}

/// Prints `text` on stdout, credentials masked.
pub fn print_out(text: &str) {
    println!("{}", mask_credentials(text));
}

/// Prints `text` on stderr, credentials masked.
pub fn print_err(text: &str) {
    eprintln!("{}", mask_credentials(text));
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_mask_credentials() {
        let e = Error::new("Could not open resource (rtsp://user:secret@cam/x):\n  refused");
        assert_eq!(
            e.to_string(),
            "Could not open resource (rtsp://user:***@cam/x): refused"
        );
    }
}
