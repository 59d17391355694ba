//! What a path names, and how an output is written so that nothing is lost.
//!
//! - [`Identity`]: a file as the kernel knows it (device and inode) and as the user named it
//!   (the path with symbolic links resolved), so that a hard link or a symbolic link to an input
//!   is recognised as that input.
//! - [`classify`]: whether an output path is new, an existing file (replaced only with
//!   `--overwrite`), or a device or FIFO (written as it is, never replaced or removed).
//! - [`Staged`]: a regular output is written to a temporary file created in its folder (same
//!   filesystem, a name no other file has, `O_EXCL`), which is renamed to the final name only when
//!   the run succeeded and the output checks out. The tool removes nothing but these temporary
//!   files, and [`remove_temporaries`] lets the signal handler remove them before it exits.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::{Error, Result};

/// A file, by device and inode when it exists, and by its absolute path with symbolic links
/// resolved as far as they exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    path: PathBuf,
    inode: Option<(u64, u64)>,
}

impl Identity {
    /// The identity of whatever `path` names (following symbolic links), or of the file it
    /// would create.
    pub fn of(path: &Path) -> Identity {
        let inode = fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        Identity {
            path: resolved(path),
            inode,
        }
    }

    /// Whether both name the same file: the same device and inode, or the same resolved path.
    pub fn same(&self, other: &Identity) -> bool {
        matches!((self.inode, other.inode), (Some(a), Some(b)) if a == b) || self.path == other.path
    }
}

/// `path` made absolute with its symbolic links resolved: all of it when it exists, else its
/// folder (the part that exists) joined with the rest.
fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => resolved(parent).join(name),
        _ => absolute,
    }
}

/// What an output path names before the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Nothing: the output is created.
    New,
    /// A regular file (or a symbolic link to one): replaced only with `--overwrite`.
    Existing,
    /// A character or block device or a FIFO (such as `/dev/null`): written as it is.
    Special,
    /// A folder.
    Folder,
}

/// What `path` names, following symbolic links. A symbolic link to nothing, and a socket, are
/// errors (neither can be written as an output); `what` names the path in them (`output`,
/// `detections file`).
pub fn classify(path: &Path, what: &str) -> Result<Kind> {
    let link = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Kind::New),
        Err(e) => return Err(io_error(&format!("cannot read {what}"), path, &e)),
    };
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if link.file_type().is_symlink() => {
            return Err(Error::new(format!(
                "{what} {} is a symbolic link to {}, which cannot be opened ({}); remove the link or choose another {what}",
                path.display(),
                fs::read_link(path).unwrap_or_default().display(),
                io_reason(&e)
            )));
        }
        Err(e) => return Err(io_error(&format!("cannot read {what}"), path, &e)),
    };
    let t = meta.file_type();
    if t.is_file() {
        Ok(Kind::Existing)
    } else if t.is_dir() {
        Ok(Kind::Folder)
    } else if t.is_char_device() || t.is_block_device() || t.is_fifo() {
        Ok(Kind::Special)
    } else {
        Err(Error::new(format!(
            "{what} {} is not a file, a device or a FIFO; choose another {what}",
            path.display()
        )))
    }
}

/// The temporary files this process created and has not yet renamed or removed.
static TEMPORARIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes every temporary file this process created and still holds (for the signal handler,
/// before it exits). Nothing else is ever removed.
pub fn remove_temporaries() {
    let mut held = TEMPORARIES.lock().unwrap_or_else(|e| e.into_inner());
    for path in held.drain(..) {
        let _ = fs::remove_file(path);
    }
}

/// Tells temporary names of one process apart.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A regular output being written: a temporary file in the output's folder, renamed to the final
/// name by [`Staged::commit`], removed when dropped before that.
#[derive(Debug)]
pub struct Staged {
    temporary: PathBuf,
    target: PathBuf,
}

impl Staged {
    /// Creates an empty temporary file beside `target` (mode 0666 less the umask, as any new
    /// file), with a name that no file had: `.<name>.<pid>-<n>.yoloanonymize-partial`.
    pub fn create(target: &Path) -> Result<Staged> {
        let folder = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        // Keep the temporary name within NAME_MAX (255 bytes) whatever the final name.
        let short: String = name
            .char_indices()
            .take_while(|(i, c)| i + c.len_utf8() <= 180)
            .map(|(_, c)| c)
            .collect();
        let mut held = TEMPORARIES.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let temporary = folder.join(format!(
                ".{short}.{}-{n}.yoloanonymize-partial",
                std::process::id()
            ));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o666)
                .open(&temporary)
            {
                Ok(_) => {
                    held.push(temporary.clone());
                    return Ok(Staged {
                        temporary,
                        target: target.to_owned(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(io_error("cannot write into folder", folder, &e));
                }
            }
        }
    }

    /// The temporary file to write.
    pub fn path(&self) -> &Path {
        &self.temporary
    }

    /// Gives the written file its final name. Without `overwrite`, a file that appeared under
    /// that name during the run is kept and this fails; with it, the file there is replaced at
    /// once (its permissions are kept).
    pub fn commit(self, overwrite: bool) -> Result<()> {
        let result = {
            // Held across the rename: the signal handler cannot remove the file meanwhile.
            let mut held = TEMPORARIES.lock().unwrap_or_else(|e| e.into_inner());
            let result = if overwrite {
                if let Ok(old) = fs::metadata(&self.target) {
                    let mode = old.permissions().mode() & 0o7777;
                    let _ = fs::set_permissions(&self.temporary, fs::Permissions::from_mode(mode));
                }
                fs::rename(&self.temporary, &self.target)
            } else {
                rename_no_replace(&self.temporary, &self.target)
            };
            if result.is_ok() {
                held.retain(|p| p != &self.temporary);
            }
            result
        };
        // On error `self` is dropped on return, which removes the temporary file.
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(Error::new(format!(
                "output {} appeared while it was written; it is kept (give --overwrite to replace it)",
                self.target.display()
            ))),
            Err(e) => Err(io_error("cannot rename the output to", &self.target, &e)),
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let mut held = TEMPORARIES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = held.iter().position(|p| p == &self.temporary) {
            held.swap_remove(i);
            let _ = fs::remove_file(&self.temporary);
        }
    }
}

/// Renames `from` to `to` unless `to` exists (`AlreadyExists` then): a hard link, which fails on
/// an existing name, then the removal of the temporary name. Where the filesystem has no hard
/// links, a plain rename after checking that `to` does not exist.
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => fs::remove_file(from),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) if fs::symlink_metadata(to).is_ok() => Err(io::ErrorKind::AlreadyExists.into()),
        Err(_) => fs::rename(from, to),
    }
}

/// Opens `path` for reading (used to check a finished output).
pub fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| io_error("cannot read back", path, &e))
}

/// `<what> <path>: <reason>`.
pub fn io_error(what: &str, path: &Path, e: &io::Error) -> Error {
    Error::new(format!("{what} {}: {}", path.display(), io_reason(e)))
}

/// An I/O error's reason, without Rust's `(os error N)` suffix.
pub fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or folder".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::ReadOnlyFilesystem => "read-only filesystem".to_owned(),
        io::ErrorKind::StorageFull => "no space left on device".to_owned(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_owned(),
                None => s,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_the_file_they_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("in.mp4");
        fs::write(&file, "x").unwrap();
        let hard = dir.path().join("hard.mp4");
        fs::hard_link(&file, &hard).unwrap();
        let soft = dir.path().join("soft.mp4");
        std::os::unix::fs::symlink(&file, &soft).unwrap();
        let id = Identity::of(&file);
        assert!(id.same(&Identity::of(&hard)));
        assert!(id.same(&Identity::of(&soft)));
        assert!(id.same(&Identity::of(&dir.path().join(".").join("in.mp4"))));
        assert!(!id.same(&Identity::of(&dir.path().join("other.mp4"))));
        // Two names of a file that does not exist yet.
        let new = dir.path().join("new.mp4");
        assert!(Identity::of(&new).same(&Identity::of(&dir.path().join("./new.mp4"))));
    }

    #[test]
    fn kinds() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        assert_eq!(classify(&file, "output"), Ok(Kind::New));
        fs::write(&file, "x").unwrap();
        assert_eq!(classify(&file, "output"), Ok(Kind::Existing));
        assert_eq!(classify(dir.path(), "output"), Ok(Kind::Folder));
        assert_eq!(
            classify(Path::new("/dev/null"), "output"),
            Ok(Kind::Special)
        );
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).unwrap();
        let e = classify(&dangling, "output").unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
    }

    /// The tests that create temporary files: `remove_temporaries` removes all of them.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn staged_file_is_renamed_or_removed_and_nothing_else() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.mp4");
        let listing = || {
            let mut names: Vec<String> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        // Dropped: the temporary file goes, nothing else.
        let staged = Staged::create(&target).unwrap();
        assert!(staged.path().exists());
        drop(staged);
        assert!(listing().is_empty());
        // Committed: the final name only.
        let staged = Staged::create(&target).unwrap();
        fs::write(staged.path(), "new").unwrap();
        staged.commit(false).unwrap();
        assert_eq!(listing(), ["out.mp4"]);
        // A file that appeared meanwhile is kept without overwrite, replaced with it.
        let staged = Staged::create(&target).unwrap();
        fs::write(staged.path(), "newer").unwrap();
        assert!(staged.commit(false).is_err());
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(listing(), ["out.mp4"]);
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        let staged = Staged::create(&target).unwrap();
        fs::write(staged.path(), "newest").unwrap();
        staged.commit(true).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "newest");
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(listing(), ["out.mp4"]);
    }

    #[test]
    fn temporaries_are_removed_by_the_signal_path() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let staged = Staged::create(&dir.path().join("x.mp4")).unwrap();
        let path = staged.path().to_owned();
        remove_temporaries();
        assert!(!path.exists());
        drop(staged);
    }

    #[test]
    fn reasons_have_no_os_error_suffix() {
        let e = io::Error::from_raw_os_error(28);
        assert_eq!(io_reason(&e), "no space left on device");
        let e = io::Error::from_raw_os_error(30);
        assert_eq!(io_reason(&e), "read-only filesystem");
    }
}
