//! What to anonymize: turns INPUT and OUTPUT into a list of jobs, one per video, checking the
//! paths before any pipeline starts.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use gstyoloanonymize::uri::mask_credentials;

use super::error::{Error, Result};
use super::files::{Identity, Kind, classify, io_reason};

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
    /// How the input is named to the user (credentials masked).
    pub name: String,
    /// The MP4 file to write (symbolic links resolved when it exists).
    pub output: PathBuf,
    /// The output is a device or FIFO: written as it is, never staged, renamed or removed.
    pub direct: bool,
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

/// What the output paths may replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// `--overwrite`: existing outputs and detections files may be replaced.
    pub overwrite: bool,
}

/// Resolves INPUT (file, folder or stream URL), OUTPUT and `--detections-file` into jobs. Every
/// check (no output is an input, no two outputs are one file, no existing output without
/// `--overwrite`) is done before anything is created.
pub fn plan(
    input: &str,
    output: &Path,
    detections: Option<&Path>,
    options: Options,
) -> Result<Plan> {
    let local = if is_uri(input) {
        match file_uri_path(input) {
            Some(path) => path,
            None => {
                return Ok(Plan {
                    jobs: vec![stream_job(input, output, detections, options)?],
                    folder: None,
                });
            }
        }
    } else {
        PathBuf::from(input)
    };
    let meta = fs::metadata(&local).map_err(|e| {
        Error::new(format!(
            "cannot read input {}: {}",
            local.display(),
            io_reason(&e)
        ))
    })?;
    if meta.is_dir() {
        Ok(Plan {
            jobs: folder_jobs(&local, output, detections, options)?,
            folder: Some(output.to_owned()),
        })
    } else {
        Ok(Plan {
            jobs: vec![file_job(&local, output, detections, options)?],
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

/// The local path of a `file://` URI, which is then checked as any input file.
fn file_uri_path(uri: &str) -> Option<PathBuf> {
    let (scheme, _) = uri.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("file") {
        return None;
    }
    gst::glib::filename_from_uri(uri).ok().map(|(path, _)| path)
}

/// A job reading a URL; RTSP URLs are live.
fn stream_job(
    uri: &str,
    output: &Path,
    detections: Option<&Path>,
    options: Options,
) -> Result<Job> {
    let name = mask_credentials(uri).into_owned();
    let (output, direct) = match classify(output, "output")? {
        Kind::Folder => {
            return Err(Error::new(format!(
                "output {} is a folder; give the MP4 file to record {name} into",
                output.display()
            )));
        }
        kind => check_output(output, kind, options)?,
    };
    let detections = check_detections(detections, &[], &output, options)?;
    check_parents(&output, detections.as_deref())?;
    let scheme = uri
        .split_once("://")
        .map_or("", |(s, _)| s)
        .to_ascii_lowercase();
    Ok(Job {
        uri: uri.to_owned(),
        name,
        output,
        direct,
        detections_file: detections,
        live: scheme.starts_with("rtsp"),
    })
}

/// A job for one file. OUTPUT may be an existing folder: the output is then `<stem>.mp4` in it.
fn file_job(
    input: &Path,
    output: &Path,
    detections: Option<&Path>,
    options: Options,
) -> Result<Job> {
    let inputs = [Identity::of(input)];
    let mut kind = classify(output, "output")?;
    let mut output = output.to_owned();
    if kind == Kind::Folder {
        output = output.join(output_name(input));
        kind = classify(&output, "output")?;
    }
    check_not_input(&output, &inputs, "output")?;
    let (output, direct) = check_output(&output, kind, options)?;
    let detections = check_detections(detections, &inputs, &output, options)?;
    check_parents(&output, detections.as_deref())?;
    Ok(Job {
        uri: file_uri(input)?,
        name: input.display().to_string(),
        output,
        direct,
        detections_file: detections,
        live: false,
    })
}

/// One job per video file in `dir` (not recursive), sorted by name, written into `out_dir`.
/// The folder is listed once, before anything is written: an output folder inside it is never
/// read as input.
fn folder_jobs(
    dir: &Path,
    out_dir: &Path,
    detections: Option<&Path>,
    options: Options,
) -> Result<Vec<Job>> {
    let videos = videos_in(dir)?;
    if videos.is_empty() {
        return Err(Error::new(format!(
            "no video files in folder {} (looked for .{})",
            dir.display(),
            VIDEO_EXTENSIONS.join(", .")
        )));
    }
    check_unique_outputs(&videos)?;
    check_folder(out_dir, "output folder")?;
    if let Some(d) = detections {
        check_folder(d, "detections folder")?;
    }
    let inputs: Vec<Identity> = videos.iter().map(|v| Identity::of(v)).collect();
    let mut jobs = Vec::with_capacity(videos.len());
    let mut outputs: Vec<(Identity, PathBuf)> = Vec::new();
    for video in &videos {
        let output = out_dir.join(output_name(video));
        check_not_input(&output, &inputs, "output")?;
        let kind = classify(&output, "output")?;
        if kind == Kind::Folder {
            return Err(Error::new(format!(
                "{} is a folder; it cannot be the output of {}",
                output.display(),
                video.display()
            )));
        }
        let (output, direct) = check_output(&output, kind, options)?;
        let detections_file =
            detections.map(|d| d.join(output_name(video)).with_extension("jsonl"));
        let detections_file =
            check_detections(detections_file.as_deref(), &inputs, &output, options)?;
        for path in std::iter::once(&output).chain(detections_file.as_ref()) {
            let id = Identity::of(path);
            if !direct && let Some((_, first)) = outputs.iter().find(|(o, _)| o.same(&id)) {
                return Err(Error::new(format!(
                    "{} and {} are the same file; choose other folders",
                    first.display(),
                    path.display()
                )));
            }
            outputs.push((id, path.clone()));
        }
        jobs.push(Job {
            uri: file_uri(video)?,
            name: video.display().to_string(),
            output,
            direct,
            detections_file,
            live: false,
        });
    }
    create_folder(out_dir)?;
    if let Some(d) = detections {
        create_folder(d)?;
    }
    Ok(jobs)
}

/// Fails when `output` is one of `inputs` (the same path, a symbolic link to it or a hard link of
/// it: the same device and inode).
fn check_not_input(output: &Path, inputs: &[Identity], what: &str) -> Result<()> {
    let id = Identity::of(output);
    if inputs.iter().any(|i| i.same(&id)) {
        Err(Error::new(format!(
            "{what} {} is an input (the same file); choose another {what}",
            output.display()
        )))
    } else {
        Ok(())
    }
}

/// Checks an output path of `kind` against `--overwrite` (its folder is the caller's to check),
/// and returns the path to write (a symbolic link to an existing file resolved, so that the file it names is replaced
/// and the link kept) and whether it is written directly (a device or FIFO).
fn check_output(output: &Path, kind: Kind, options: Options) -> Result<(PathBuf, bool)> {
    match kind {
        Kind::Special => Ok((output.to_owned(), true)),
        Kind::Existing if !options.overwrite => Err(Error::new(format!(
            "output {} exists; give --overwrite to replace it (it is replaced only when the run succeeds)",
            output.display()
        ))),
        Kind::Existing => Ok((
            output.canonicalize().unwrap_or_else(|_| output.to_owned()),
            false,
        )),
        Kind::New => Ok((output.to_owned(), false)),
        Kind::Folder => Err(Error::new(format!(
            "output {} is a folder; give a file name",
            output.display()
        ))),
    }
}

/// Checks `--detections-file` (the element writes it to a temporary name and renames it at EOS):
/// not an input, not the video output, not an existing file without `--overwrite`, a regular
/// file (its folder is the caller's to check).
fn check_detections(
    detections: Option<&Path>,
    inputs: &[Identity],
    output: &Path,
    options: Options,
) -> Result<Option<PathBuf>> {
    let Some(path) = detections else {
        return Ok(None);
    };
    check_not_input(path, inputs, "detections file")?;
    if Identity::of(path).same(&Identity::of(output)) {
        return Err(Error::new(format!(
            "detections file {} is the video output; choose another detections file",
            path.display()
        )));
    }
    match classify(path, "detections file")? {
        Kind::New => {}
        Kind::Existing if !options.overwrite => {
            return Err(Error::new(format!(
                "detections file {} exists; give --overwrite to replace it",
                path.display()
            )));
        }
        Kind::Existing => {}
        Kind::Special => {
            return Err(Error::new(format!(
                "detections file {} is a device or FIFO; give a file (it is written under a temporary name and renamed when complete)",
                path.display()
            )));
        }
        Kind::Folder => {
            return Err(Error::new(format!(
                "detections file {} is a folder; give a file name",
                path.display()
            )));
        }
    }
    Ok(Some(path.to_owned()))
}

/// The video files directly in `dir`, sorted; hidden files (names starting with `.`, such as
/// this tool's temporary files or macOS's `._clip.mp4`) are left out.
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
        .filter(|p| p.is_file() && is_video(p) && !is_hidden(p))
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

/// Whether the file name starts with a dot.
fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
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

/// Fails when the folder of the output or of the detections file does not exist.
fn check_parents(output: &Path, detections: Option<&Path>) -> Result<()> {
    check_parent(output, "output")?;
    match detections {
        Some(d) => check_parent(d, "detections file"),
        None => Ok(()),
    }
}

/// Fails when the folder `path` would be written into does not exist.
fn check_parent(path: &Path, what: &str) -> Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => Err(Error::new(
            format!("{what} folder {} does not exist", parent.display()),
        )),
        _ => Ok(()),
    }
}

/// Fails when `dir` exists and is not a folder.
fn check_folder(dir: &Path, what: &str) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::new(format!(
            "{what} {} exists and is not a folder",
            dir.display()
        )));
    }
    Ok(())
}

/// Creates `dir` (and its parents) unless it exists.
fn create_folder(dir: &Path) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const NO_OVERWRITE: Options = Options { overwrite: false };
    const OVERWRITE: Options = Options { overwrite: true };

    fn error(input: &Path, output: &Path, detections: Option<&Path>, options: Options) -> String {
        gst::init().unwrap();
        plan(input.to_str().unwrap(), output, detections, options)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn an_output_that_is_an_input_is_refused_by_any_name() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.mp4");
        fs::write(&input, "video").unwrap();
        let hard = dir.path().join("hard.mp4");
        fs::hard_link(&input, &hard).unwrap();
        let soft = dir.path().join("soft.mp4");
        std::os::unix::fs::symlink(&input, &soft).unwrap();
        let out = dir.path().join("out.mp4");
        for options in [NO_OVERWRITE, OVERWRITE] {
            for output in [&input, &hard, &soft] {
                let e = error(&input, output, None, options);
                assert!(e.contains("is an input"), "{e}");
                let e = error(&input, &out, Some(output), options);
                assert!(
                    e.contains("detections file") && e.contains("is an input"),
                    "{e}"
                );
            }
            let e = error(&input, &out, Some(&out), options);
            assert!(e.contains("is the video output"), "{e}");
        }
        assert_eq!(fs::read_to_string(&input).unwrap(), "video");
        assert!(!out.exists());
    }

    #[test]
    fn existing_outputs_need_overwrite_devices_do_not() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.mp4");
        fs::write(&input, "video").unwrap();
        let out = dir.path().join("out.mp4");
        fs::write(&out, "precious").unwrap();
        let e = error(&input, &out, None, NO_OVERWRITE);
        assert!(e.contains("exists") && e.contains("--overwrite"), "{e}");
        let input = input.to_str().unwrap();
        let plan_ = plan(input, &out, None, OVERWRITE).unwrap();
        assert!(!plan_.jobs[0].direct);
        let plan_ = plan(input, Path::new("/dev/null"), None, NO_OVERWRITE).unwrap();
        assert!(plan_.jobs[0].direct);
        assert_eq!(plan_.jobs[0].output, Path::new("/dev/null"));
        let e = error(
            Path::new(input),
            &dir.path().join("o.mp4"),
            Some(Path::new("/dev/null")),
            NO_OVERWRITE,
        );
        assert!(e.contains("device or FIFO"), "{e}");
    }

    #[test]
    fn folder_outputs_inside_the_input_folder_are_not_inputs() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.mkv"), "video").unwrap();
        fs::write(
            dir.path().join(".a.mp4.1-0.yoloanonymize-partial.mp4"),
            "temp",
        )
        .unwrap();
        let out = dir.path().join("anonymized");
        fs::create_dir(&out).unwrap();
        fs::write(out.join("b.mp4"), "an earlier output").unwrap();
        let p = plan(dir.path().to_str().unwrap(), &out, None, NO_OVERWRITE).unwrap();
        let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, [dir.path().join("a.mkv").to_str().unwrap()]);
        // The input folder as its own output folder: a.mp4 would be the input a.mp4.
        fs::write(dir.path().join("c.mp4"), "video").unwrap();
        let e = error(dir.path(), dir.path(), None, OVERWRITE);
        assert!(e.contains("c.mp4") && e.contains("is an input"), "{e}");
    }

    #[test]
    fn stream_credentials_are_masked_in_the_name() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = plan(
            "rtsp://user:secret@cam/x",
            &dir.path().join("o.mp4"),
            None,
            NO_OVERWRITE,
        )
        .unwrap();
        assert_eq!(p.jobs[0].name, "rtsp://user:***@cam/x");
        assert_eq!(p.jobs[0].uri, "rtsp://user:secret@cam/x");
        assert!(p.jobs[0].live);
    }

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
        let err = plan(
            "/no/such/clip.mp4",
            Path::new("out.mp4"),
            None,
            NO_OVERWRITE,
        )
        .unwrap_err();
        assert!(err.to_string().contains("/no/such/clip.mp4"), "{err}");
    }
}
