//! Credentials in URLs, masked before any text that may hold one is printed or posted.
//!
//! `rtsp://user:secret@camera/stream` becomes `rtsp://user:***@camera/stream`, and a user name
//! alone (`rtsp://token@camera/`, which is often a secret too) becomes `rtsp://***@camera/`.
//! Plain Rust, no GStreamer: the element and the command-line tool both use it.

use std::borrow::Cow;

/// What replaces a password (or a user name given without one).
pub const MASK: &str = "***";

/// `text` with the credentials of every `scheme://user:password@host` URL in it masked.
///
/// A URL is recognised by its scheme (a letter, then letters, digits, `+`, `-` or `.`) followed
/// by `://`; its authority ends at the first `/`, `?`, `#` or white space, and the user
/// information is everything before the *last* `@` in it (so an unescaped `@` in a password is
/// masked too). Text without a scheme (`user@example.com`, `user:pass@host`) is left as it is:
/// it cannot be told from other text. Returns the text unchanged (borrowed) when there is
/// nothing to mask.
pub fn mask_credentials(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    // Bytes of `text` already copied to `out`.
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let sep = from + found;
        let authority_start = sep + 3;
        from = authority_start;
        if !has_scheme_before(&text[..sep]) {
            continue;
        }
        let authority_len = text[authority_start..]
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(text.len() - authority_start);
        let authority = &text[authority_start..authority_start + authority_len];
        let Some(at) = authority.rfind('@') else {
            continue;
        };
        let userinfo = &authority[..at];
        let masked = match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{MASK}"),
            None => MASK.to_owned(),
        };
        if masked != userinfo {
            out.push_str(&text[copied..authority_start]);
            out.push_str(&masked);
            copied = authority_start + at;
        }
        from = authority_start + at;
    }
    if copied == 0 {
        Cow::Borrowed(text)
    } else {
        out.push_str(&text[copied..]);
        Cow::Owned(out)
    }
}

/// Whether `before` (the text up to a `://`) ends with a URL scheme.
fn has_scheme_before(before: &str) -> bool {
    let start = before
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .map_or(0, |i| i + 1);
    before[start..]
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(s: &str) -> String {
        mask_credentials(s).into_owned()
    }

    #[test]
    fn user_and_password() {
        assert_eq!(
            masked("rtsp://user:secret@192.168.1.20:554/stream"),
            "rtsp://user:***@192.168.1.20:554/stream"
        );
        assert_eq!(masked("rtsp://:secret@host/"), "rtsp://:***@host/");
    }

    #[test]
    fn user_only_is_masked_whole() {
        assert_eq!(masked("rtsp://token@host/x"), "rtsp://***@host/x");
    }

    #[test]
    fn percent_encoded_and_unescaped_at() {
        assert_eq!(
            masked("rtsp://us%40er:p%40ss%3Aword@host/x"),
            "rtsp://us%40er:***@host/x"
        );
        assert_eq!(
            masked("rtsp://user:p@ss@host:554/x"),
            "rtsp://user:***@host:554/x"
        );
    }

    #[test]
    fn no_scheme_or_no_credentials_is_unchanged() {
        for s in [
            "",
            "user:pass@host",
            "mail user@example.com",
            "rtsp://host:554/stream",
            "rtsp://host/path@v2",
            "://user:pass@host",
            "1x://user:pass@host",
            "rtsp://user:***@host/",
        ] {
            assert!(
                matches!(mask_credentials(s), Cow::Borrowed(b) if b == s),
                "{s}"
            );
        }
    }

    #[test]
    fn several_uris_in_one_message() {
        assert_eq!(
            masked(
                "Could not open \"rtsp://a:one@cam1/s\" (tried rtsp://b:two@cam2:8554/t, then http://c@cam3?x=1)"
            ),
            "Could not open \"rtsp://a:***@cam1/s\" (tried rtsp://b:***@cam2:8554/t, then http://***@cam3?x=1)"
        );
    }

    #[test]
    fn ipv6_hosts() {
        assert_eq!(
            masked("rtsp://user:secret@[fe80::1%25eth0]:554/stream"),
            "rtsp://user:***@[fe80::1%25eth0]:554/stream"
        );
        assert_eq!(masked("rtsp://[::1]:8554/x"), "rtsp://[::1]:8554/x");
    }

    #[test]
    fn authority_at_the_end_of_the_text_and_odd_schemes() {
        assert_eq!(masked("rtspt://u:p@h"), "rtspt://u:***@h");
        assert_eq!(masked("url=RTSP+TLS://u:p@h"), "url=RTSP+TLS://u:***@h");
        assert_eq!(masked("rtsp://u:p@h\nnext"), "rtsp://u:***@h\nnext");
        assert_eq!(masked("é rtsp://u:pé@h é"), "é rtsp://u:***@h é");
    }
}
