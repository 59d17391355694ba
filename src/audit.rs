//! The audit trail written by the `detections-file` property: one JSON object per output frame.
//!
//! `{"frame": N, "pts": ns|null, "redacted_whole": bool, "reason": str|null,
//!   "regions": [{"kind", "x0", "y0", "x1", "y1", "score"}],
//!   "people": [{"box": [x0,y0,x1,y1], "score", "track", "source", "keypoints": [[x,y,conf] x17],
//!               "detectors": "pose"|"face"|"pose+face",
//!               "face": {"box": [x0,y0,x1,y1], "score", "landmarks": [[x,y] x5]}|null}]}`
//!
//! A person found by the face detector alone has the face box as `box` and its eyes and nose as
//! keypoints (the others at confidence 0). Landmarks: right eye, left eye, nose, right and left
//! mouth corner (the person's own right and left).
//!
//! `track` numbers a person across frames; `source` says why a person is covered in that frame: `detected`, `interpolated` (between two
//! detections), `held` (after the last one) or `look-ahead` (before the first one).
//!
//! Regions are the pixel rectangles that were redacted (frame pixels, end exclusive); people are
//! the detections in frame pixels. Written by hand (no serde) since the shape is fixed.

use std::fmt::Write;
use std::path::{Path, PathBuf};

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
        o.push_str("{\"box\":");
        json_rect(&mut o, &d.bbox);
        o.push_str(",\"score\":");
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
        o.push_str("],\"detectors\":");
        json_str(&mut o, d.sources());
        o.push_str(",\"face\":");
        match &d.face {
            None => o.push_str("null"),
            Some(f) => {
                o.push_str("{\"box\":");
                json_rect(&mut o, &f.bbox);
                o.push_str(",\"score\":");
                json_num(&mut o, f.score);
                o.push_str(",\"landmarks\":[");
                for (j, k) in f.landmarks.iter().enumerate() {
                    if j > 0 {
                        o.push(',');
                    }
                    o.push('[');
                    json_num(&mut o, k.x);
                    o.push(',');
                    json_num(&mut o, k.y);
                    o.push(']');
                }
                o.push_str("]}");
            }
        }
        o.push('}');
    }
    o.push_str("]}");
    o
}

/// `[x0,y0,x1,y1]` of a rectangle (each number as [`json_num`] writes it).
fn json_rect(o: &mut String, r: &crate::detection::Rect) {
    o.push('[');
    for (j, v) in [r.x0, r.y0, r.x1, r.y1].into_iter().enumerate() {
        if j > 0 {
            o.push(',');
        }
        json_num(o, v);
    }
    o.push(']');
}

/// Records buffered before they are written out.
const FLUSH_BYTES: usize = 64 * 1024;

/// Records that could not be written, and why.
#[derive(Debug)]
pub struct WriteError {
    /// Records lost by this failure (those that were waiting in the buffer).
    pub lost: u64,
    pub error: std::io::Error,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} records lost: {}", self.lost, self.error)
    }
}

/// The `detections-file`: written under a temporary name in the destination folder, renamed to
/// its name when the stream is complete (EOS), so that a crashed or interrupted run never leaves
/// a truncated file under the final name, and a file that existed before is only replaced by a
/// complete one. Write errors are returned with the number of records they lost, never hidden.
#[derive(Debug)]
pub struct AuditFile {
    /// The name it gets when complete (a symlink given as the path is resolved: its target is
    /// replaced, the link kept).
    path: PathBuf,
    temp: PathBuf,
    file: std::fs::File,
    buf: Vec<u8>,
    buffered: u64,
    written: u64,
    /// Bytes written so far: after a failed write the file is cut back to them, so that no
    /// partial record stays in the middle of the file.
    bytes: u64,
    renamed: bool,
}

/// Why a path cannot be a detections file, if it cannot: it must be a regular file (or a symlink
/// to one) or not exist yet, in a folder that exists.
fn check_destination(path: &Path) -> Result<PathBuf, String> {
    let shown = path.display();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot use detections-file '{shown}': {e}")),
    };
    let target = match meta {
        Some(m) if m.file_type().is_symlink() => {
            let target = std::fs::canonicalize(path).map_err(|e| {
                format!("detections-file '{shown}' is a symlink to nothing usable: {e}")
            })?;
            let tm = std::fs::metadata(&target)
                .map_err(|e| format!("cannot use detections-file '{shown}': {e}"))?;
            if !tm.is_file() {
                return Err(format!(
                    "detections-file '{shown}' is a symlink to {}, which is not a regular file; give the path of a regular file (a FIFO, a device or a folder cannot hold an audit trail that is written to a temporary name and renamed)",
                    target.display()
                ));
            }
            target
        }
        Some(m) if !m.is_file() => {
            let what = if m.is_dir() {
                "a folder"
            } else {
                "a FIFO, a socket or a device"
            };
            return Err(format!(
                "detections-file '{shown}' is {what}, not a regular file; give the path of a regular file (the audit trail is written to a temporary name in its folder and renamed when complete)"
            ));
        }
        _ => path.to_path_buf(),
    };
    Ok(target)
}

impl AuditFile {
    /// Creates the temporary file beside `path`; an error names the path and the reason.
    pub fn create(path: &Path) -> Result<Self, String> {
        let target = check_destination(path)?;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .ok_or_else(|| format!("detections-file '{}' has no file name", path.display()))?
            .to_string_lossy()
            .into_owned();
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut last_err = None;
        for _ in 0..16 {
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let temp = dir.join(format!(".{name}.{}-{n}.part", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)
            {
                Ok(file) => {
                    return Ok(Self {
                        path: target,
                        temp,
                        file,
                        buf: Vec::with_capacity(FLUSH_BYTES + 4096),
                        buffered: 0,
                        written: 0,
                        bytes: 0,
                        renamed: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_err = Some(e),
                Err(e) => {
                    return Err(format!(
                        "cannot create detections-file '{}' (temporary file {}): {e}",
                        path.display(),
                        temp.display()
                    ));
                }
            }
        }
        Err(format!(
            "cannot create a temporary file for detections-file '{}': {}",
            path.display(),
            last_err.map(|e| e.to_string()).unwrap_or_default()
        ))
    }

    /// The final path (a symlink resolved).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file the records go to until [`complete`](Self::complete).
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Records written to the file so far (not counting those still buffered).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends one record (a line without its newline); written out in blocks.
    pub fn record(&mut self, line: &str) -> Result<(), WriteError> {
        self.buf.extend_from_slice(line.as_bytes());
        self.buf.push(b'\n');
        self.buffered += 1;
        if self.buf.len() >= FLUSH_BYTES {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Writes out the buffered records. On an error they are dropped and counted in the error.
    pub fn flush(&mut self) -> Result<(), WriteError> {
        use std::io::Write as _;
        if self.buf.is_empty() {
            return Ok(());
        }
        use std::io::Seek as _;
        let r = self.file.write_all(&self.buf);
        let n = std::mem::take(&mut self.buffered);
        let len = self.buf.len() as u64;
        self.buf.clear();
        match r {
            Ok(()) => {
                self.written += n;
                self.bytes += len;
                Ok(())
            }
            Err(error) => {
                let _ = self.file.set_len(self.bytes);
                let _ = self.file.seek(std::io::SeekFrom::Start(self.bytes));
                Err(WriteError { lost: n, error })
            }
        }
    }

    /// The stream is complete: writes out what is buffered, syncs, and renames the file to its
    /// name (once; records of a later stream, after a seek, go on into the same file).
    pub fn complete(&mut self) -> Result<(), String> {
        self.flush().map_err(|e| e.to_string())?;
        if self.renamed {
            return Ok(());
        }
        self.file
            .sync_all()
            .map_err(|e| format!("cannot sync {}: {e}", self.temp.display()))?;
        std::fs::rename(&self.temp, &self.path).map_err(|e| {
            format!(
                "cannot rename {} to {}: {e}",
                self.temp.display(),
                self.path.display()
            )
        })?;
        self.renamed = true;
        Ok(())
    }

    /// Whether [`complete`](Self::complete) has renamed it.
    pub fn is_complete(&self) -> bool {
        self.renamed
    }
}

impl Drop for AuditFile {
    /// An incomplete file that holds no record is removed (this run created it and nothing would
    /// be lost); one that holds records stays under its temporary name, so that no record is
    /// destroyed and no file under the final name is replaced by an incomplete one.
    fn drop(&mut self) {
        let _ = self.flush();
        if !self.renamed && self.written == 0 {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::{Detection, Keypoint, Rect};

    #[test]
    fn record_shape() {
        let d = Detection::from_pose(
            Rect::new(1.0, 2.0, 3.5, f32::NAN),
            0.875,
            [Keypoint {
                x: 1.0,
                y: 2.0,
                conf: 0.5,
            }; 17],
        );
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
        assert!(
            r.ends_with(r#"]],"detectors":"pose","face":null}]}"#),
            "{r}"
        );
        let w = frame_record(0, None, true, Some("model said \"no\"\n"), &[], &[]);
        assert_eq!(
            w,
            r#"{"frame":0,"pts":null,"redacted_whole":true,"reason":"model said \"no\"\n","regions":[],"people":[]}"#
        );
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ya-audit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn written_under_a_temporary_name_and_renamed_when_complete() {
        let d = scratch("rename");
        let p = d.join("audit.jsonl");
        std::fs::write(&p, "precious\n").unwrap();
        let mut a = AuditFile::create(&p).unwrap();
        a.record("{\"frame\":0}").unwrap();
        a.flush().unwrap();
        // Until complete, the old file is untouched and the records are in the temporary file.
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "precious\n");
        assert_eq!(entries(&d).len(), 2);
        a.record("{\"frame\":1}").unwrap();
        a.complete().unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"frame\":0}\n{\"frame\":1}\n"
        );
        assert_eq!(entries(&d), vec!["audit.jsonl"]);
        // After the rename, later records go on into the same file.
        a.record("{\"frame\":2}").unwrap();
        a.complete().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap().lines().count(), 3);
        assert_eq!(a.written(), 3);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_what_is_not_a_regular_file() {
        let d = scratch("refuse");
        let e = AuditFile::create(&d).unwrap_err();
        assert!(e.contains("a folder"), "{e}");
        let e = AuditFile::create(Path::new("/dev/full")).unwrap_err();
        assert!(e.contains("/dev/full") && e.contains("device"), "{e}");
        let e = AuditFile::create(&d.join("missing-folder/audit.jsonl")).unwrap_err();
        assert!(e.contains("missing-folder"), "{e}");
        let dangling = d.join("dangling");
        std::os::unix::fs::symlink(d.join("nowhere"), &dangling).unwrap();
        let e = AuditFile::create(&dangling).unwrap_err();
        assert!(e.contains("symlink"), "{e}");
        let to_dev = d.join("to-dev");
        std::os::unix::fs::symlink("/dev/null", &to_dev).unwrap();
        let e = AuditFile::create(&to_dev).unwrap_err();
        assert!(
            e.contains("/dev/null") && e.contains("not a regular file"),
            "{e}"
        );
        // Nothing was created.
        assert_eq!(entries(&d), vec!["dangling", "to-dev"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_symlink_to_a_file_replaces_the_target_and_keeps_the_link() {
        let d = scratch("symlink");
        let target = d.join("real.jsonl");
        std::fs::write(&target, "old\n").unwrap();
        let link = d.join("link.jsonl");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut a = AuditFile::create(&link).unwrap();
        a.record("new").unwrap();
        a.complete().unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new\n");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
