//! What to anonymize: turns INPUT and OUTPUT into a list of jobs, one per video, checking the
//! paths before any pipeline starts.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::error::{Error, Result};

/// File name extensions taken as videos when INPUT is a folder (compared case-insensitively).
const VIDEO_EXTENSIONS: &[&str] = &[
    "3gp", "avi", "flv", "m2ts", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "mts", "mxf", "ogv",
    "ts", "webm", "wmv",
];

/// One video to anonymize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// URI given to `uridecodebin`.
    pub uri: String,
    /// How the input is named to the user.
    pub name: String,
    /// The MP4 file to write.
    pub output: PathBuf,
    /// The element's audit trail for this input, if asked for.
    pub detections_file: Option<PathBuf>,
    /// A live stream (RTSP): recorded until Ctrl-C or its end, with no known duration.
    pub live: bool,
}

/// The jobs for one run, and the output folder when INPUT is a folder.
#[derive(Debug)]
pub struct Plan {
    pub jobs: Vec<Job>,
    pub folder: Option<PathBuf>,
}

/// Resolves INPUT (file, folder or stream URL), OUTPUT and `--detections-file` into jobs.
pub fn plan(input: &str, output: &Path, detections: Option<&Path>) -> Result<Plan> {
    if is_uri(input) {
        return Ok(Plan {
            jobs: vec![stream_job(input, output, detections)?],
            folder: None,
        });
    }
    let path = Path::new(input);
    let meta = fs::metadata(path)
        .map_err(|e| Error::new(format!("cannot read input {input}: {}", io_reason(&e))))?;
    if meta.is_dir() {
        Ok(Plan {
            jobs: folder_jobs(path, output, detections)?,
            folder: Some(output.to_owned()),
        })
    } else {
        Ok(Plan {
            jobs: vec![file_job(path, output, detections)?],
            folder: None,
        })
    }
}

/// Whether `s` looks like `scheme://...`.
fn is_uri(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// A job reading a URL; RTSP URLs are live.
fn stream_job(uri: &str, output: &Path, detections: Option<&Path>) -> Result<Job> {
    if output.is_dir() {
        return Err(Error::new(format!(
            "output {} is a folder; give the MP4 file to record {uri} into",
            output.display()
        )));
    }
    check_parent(output)?;
    let scheme = uri
        .split_once("://")
        .map_or("", |(s, _)| s)
        .to_ascii_lowercase();
    Ok(Job {
        uri: uri.to_owned(),
        name: uri.to_owned(),
        output: output.to_owned(),
        detections_file: detections.map(Path::to_owned),
        live: scheme.starts_with("rtsp"),
    })
}

/// A job for one file. OUTPUT may be an existing folder: the output is then `<stem>.mp4` in it.
fn file_job(input: &Path, output: &Path, detections: Option<&Path>) -> Result<Job> {
    let output = if output.is_dir() {
        output.join(output_name(input))
    } else {
        output.to_owned()
    };
    check_parent(&output)?;
    check_not_same(input, &output)?;
    Ok(Job {
        uri: file_uri(input)?,
        name: input.display().to_string(),
        output,
        detections_file: detections.map(Path::to_owned),
        live: false,
    })
}

/// One job per video file in `dir` (not recursive), sorted by name, written into `out_dir`.
fn folder_jobs(dir: &Path, out_dir: &Path, detections: Option<&Path>) -> Result<Vec<Job>> {
    let videos = videos_in(dir)?;
    if videos.is_empty() {
        return Err(Error::new(format!(
            "no video files in folder {} (looked for .{})",
            dir.display(),
            VIDEO_EXTENSIONS.join(", .")
        )));
    }
    check_unique_outputs(&videos)?;
    create_folder(out_dir)?;
    if let Some(d) = detections {
        create_folder(d)?;
    }
    videos
        .iter()
        .map(|video| {
            let output = out_dir.join(output_name(video));
            check_not_same(video, &output)?;
            Ok(Job {
                uri: file_uri(video)?,
                name: video.display().to_string(),
                output,
                detections_file: detections
                    .map(|d| d.join(output_name(video)).with_extension("jsonl")),
                live: false,
            })
        })
        .collect()
}

/// The video files directly in `dir`, sorted.
fn videos_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = fs::read_dir(dir).map_err(|e| {
        Error::new(format!(
            "cannot list folder {}: {}",
            dir.display(),
            io_reason(&e)
        ))
    })?;
    let mut videos: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_video(p))
        .collect();
    videos.sort();
    Ok(videos)
}

/// Whether the file name has one of [`VIDEO_EXTENSIONS`].
fn is_video(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// `<stem>.mp4` for an input file.
fn output_name(input: &Path) -> PathBuf {
    let stem = input.file_stem().unwrap_or(input.as_os_str());
    PathBuf::from(stem).with_extension("mp4")
}

/// Fails when two inputs (`a.avi`, `a.mkv`) would be written to the same output.
fn check_unique_outputs(videos: &[PathBuf]) -> Result<()> {
    let mut seen: HashMap<PathBuf, &PathBuf> = HashMap::new();
    for video in videos {
        if let Some(first) = seen.insert(output_name(video), video) {
            return Err(Error::new(format!(
                "{} and {} would both be written to {}; rename one of them",
                first.display(),
                video.display(),
                output_name(video).display()
            )));
        }
    }
    Ok(())
}

/// Fails when the folder `output` would be written into does not exist.
fn check_parent(output: &Path) -> Result<()> {
    match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => Err(Error::new(
            format!("output folder {} does not exist", parent.display()),
        )),
        _ => Ok(()),
    }
}

/// Fails when `output` is the input file itself.
fn check_not_same(input: &Path, output: &Path) -> Result<()> {
    let same = match (input.canonicalize(), output.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        Err(Error::new(format!(
            "output {} would overwrite its input; choose another output",
            output.display()
        )))
    } else {
        Ok(())
    }
}

/// Creates `dir` (and its parents) unless it exists.
fn create_folder(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::new(format!(
            "{} exists and is not a folder",
            dir.display()
        )));
    }
    fs::create_dir_all(dir).map_err(|e| {
        Error::new(format!(
            "cannot create folder {}: {}",
            dir.display(),
            io_reason(&e)
        ))
    })
}

/// The `file://` URI of a local file.
fn file_uri(path: &Path) -> Result<String> {
    let absolute = path.canonicalize().map_err(|e| {
        Error::new(format!(
            "cannot read input {}: {}",
            path.display(),
            io_reason(&e)
        ))
    })?;
    gst::glib::filename_to_uri(&absolute, None)
        .map(|u| u.to_string())
        .map_err(|e| Error::new(format!("cannot make a URI of {}: {e}", path.display())))
}

/// An I/O error's reason, without Rust's `(os error N)` suffix.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        assert!(is_uri("rtsp://camera/stream"));
        assert!(is_uri("file:///tmp/a.mp4"));
        assert!(!is_uri("/tmp/a.mp4"));
        assert!(!is_uri("://x"));
    }

    #[test]
    fn output_names() {
        assert_eq!(
            output_name(Path::new("/a/b/clip.avi")),
            PathBuf::from("clip.mp4")
        );
        assert!(is_video(Path::new("x.MKV")));
        assert!(!is_video(Path::new("notes.txt")));
    }

    #[test]
    fn duplicate_stems() {
        let videos = [PathBuf::from("a.avi"), PathBuf::from("a.mkv")];
        assert!(check_unique_outputs(&videos).is_err());
    }

    #[test]
    fn missing_input() {
        let err = plan("/no/such/clip.mp4", Path::new("out.mp4"), None).unwrap_err();
        assert!(err.to_string().contains("/no/such/clip.mp4"), "{err}");
    }
}
