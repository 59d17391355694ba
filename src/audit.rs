//! The audit trail written by the `detections-file` property: one JSON object per output frame.
//!
//! `{"frame": N, "pts": ns|null, "redacted_whole": bool, "reason": str|null,
//!   "regions": [{"kind", "x0", "y0", "x1", "y1", "score"}],
//!   "people": [{"box": [x0,y0,x1,y1], "score", "track", "source", "keypoints": [[x,y,conf] x17]}]}`
//!
//! `track` numbers a person across frames; `source` says why a person is covered in that frame: `detected`, `interpolated` (between two
//! detections), `held` (after the last one) or `look-ahead` (before the first one).
//!
//! Regions are the pixel rectangles that were redacted (frame pixels, end exclusive); people are
//! the detections in frame pixels. Written by hand (no serde) since the shape is fixed.

use std::fmt::Write;

use crate::frame::PixelRect;
use crate::regions::RegionKind;
use crate::temporal::{Source, Tracked};

/// Appends `s` as a JSON string literal.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A finite number, or `null` (JSON has no NaN).
fn json_num(out: &mut String, v: f32) {
    if v.is_finite() {
        let _ = write!(out, "{}", (v * 100.0).round() / 100.0);
    } else {
        out.push_str("null");
    }
}

/// One frame's record, without the trailing newline.
pub fn frame_record(
    frame: u64,
    pts_ns: Option<u64>,
    redacted_whole: bool,
    reason: Option<&str>,
    regions: &[(RegionKind, PixelRect, f32)],
    people: &[Tracked],
) -> String {
    let mut o = String::with_capacity(128 + 64 * regions.len() + 400 * people.len());
    let _ = write!(o, "{{\"frame\":{frame},\"pts\":");
    match pts_ns {
        Some(p) => {
            let _ = write!(o, "{p}");
        }
        None => o.push_str("null"),
    }
    let _ = write!(o, ",\"redacted_whole\":{redacted_whole},\"reason\":");
    match reason {
        Some(r) => json_str(&mut o, r),
        None => o.push_str("null"),
    }
    o.push_str(",\"regions\":[");
    for (i, (kind, r, score)) in regions.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"kind\":");
        json_str(&mut o, kind.name());
        let _ = write!(
            o,
            ",\"x0\":{},\"y0\":{},\"x1\":{},\"y1\":{},\"score\":",
            r.x0, r.y0, r.x1, r.y1
        );
        json_num(&mut o, *score);
        o.push('}');
    }
    o.push_str("],\"people\":[");
    for (i, t) in people.iter().enumerate() {
        let d = &t.det;
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"box\":[");
        for (j, v) in [d.bbox.x0, d.bbox.y0, d.bbox.x1, d.bbox.y1]
            .into_iter()
            .enumerate()
        {
            if j > 0 {
                o.push(',');
            }
            json_num(&mut o, v);
        }
        o.push_str("],\"score\":");
        json_num(&mut o, d.score);
        let _ = write!(o, ",\"track\":{}", t.track);
        o.push_str(",\"source\":");
        json_str(
            &mut o,
            match t.source {
                Source::Detected => "detected",
                Source::Interpolated => "interpolated",
                Source::Held => "held",
                Source::LookAhead => "look-ahead",
            },
        );
        o.push_str(",\"keypoints\":[");
        for (j, k) in d.keypoints.iter().enumerate() {
            if j > 0 {
                o.push(',');
            }
            o.push('[');
            json_num(&mut o, k.x);
            o.push(',');
            json_num(&mut o, k.y);
            o.push(',');
            json_num(&mut o, k.conf);
            o.push(']');
        }
        o.push_str("]}");
    }
    o.push_str("]}");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Detection, Keypoint};
    use crate::regions::Rect;

    #[test]
    fn record_shape() {
        let d = Detection {
            bbox: Rect::new(1.0, 2.0, 3.5, f32::NAN),
            score: 0.875,
            keypoints: [Keypoint {
                x: 1.0,
                y: 2.0,
                conf: 0.5,
            }; 17],
        };
        let r = frame_record(
            3,
            Some(300_000_000),
            false,
            None,
            &[(RegionKind::Eyes, PixelRect::new(1, 2, 3, 4), 0.875)],
            &[Tracked {
                det: d,
                grow: 0.0,
                source: Source::Held,
                track: 1,
            }],
        );
        assert!(r.starts_with(r#"{"frame":3,"pts":300000000,"redacted_whole":false,"reason":null,"regions":[{"kind":"eyes","x0":1,"y0":2,"x1":3,"y1":4,"score":0.88}],"people":[{"box":[1,2,3.5,null],"score":0.88,"track":1,"source":"held","keypoints":[[1,2,0.5],"#), "{r}");
        assert!(r.ends_with("]]}]}"));
        let w = frame_record(0, None, true, Some("model said \"no\"\n"), &[], &[]);
        assert_eq!(
            w,
            r#"{"frame":0,"pts":null,"redacted_whole":true,"reason":"model said \"no\"\n","regions":[],"people":[]}"#
        );
    }
}
