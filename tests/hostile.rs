//! The tool and the element used as a hostile (or careless) user would, one test per defect
//! found (issue #12), each with the exact command. What they assert: the input's bytes are
//! unchanged, a file that existed before is untouched, no partial or temporary file is left, a
//! device stays a device, the error is one line that names the thing, no panic, no credential
//! printed.
//!
//! The cases that need root powers (`mknod`, `mount`) skip themselves, saying so, where these
//! are not permitted.

mod common;

/// `yoloanonymize-cli` as a user runs it.
mod cli {
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};
    use std::time::{Duration, Instant};

    use super::common::{cli, cli_binary, count_frames, listing, make_clip, run_launch, text};

    /// Flags that make the runs that reach the model quick (the checks under test do not depend
    /// on them): ONNX Runtime's CPU provider (no OpenVINO compilation) and a small network input.
    const QUICK: &[&str] = &["--device", "cpu", "--input-size", "160"];

    /// Frames of the clip [`clip`] writes.
    const FRAMES: u64 = 10;

    fn s(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    /// Runs the tool with `args` and [`QUICK`].
    fn cli_quick(args: &[&str]) -> Output {
        cli(&[args, QUICK].concat())
    }

    /// A 10-frame 160x120 H.264 MP4 at `dir/name`.
    fn clip(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        make_clip(&path, FRAMES as u32, 160, 120);
        path
    }

    /// Asserts that the run failed with one line on stderr that contains every one of `words`,
    /// and no panic; returns the line.
    fn refused(out: &Output, words: &[&str]) -> String {
        let stderr = text(&out.stderr);
        assert!(
            !out.status.success(),
            "expected a failure; stderr: {stderr}"
        );
        // Where the GPU build is installed on a machine without a GPU, device=auto warns first.
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.starts_with("warning: device=auto: using the CPU"))
            .collect();
        assert_eq!(lines.len(), 1, "not one line: {stderr:?}");
        assert!(lines[0].starts_with("error: "), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        for w in words {
            assert!(lines[0].contains(w), "'{w}' not in: {}", lines[0]);
        }
        lines[0].to_owned()
    }

    /// Asserts that the run succeeded.
    fn succeeded(out: &Output) {
        assert!(
            out.status.success(),
            "status {:?}, stderr: {}",
            out.status,
            text(&out.stderr)
        );
    }

    /// Whether the folder holds a temporary file of the tool.
    fn temporaries(dir: &Path) -> Vec<String> {
        listing(dir)
            .into_iter()
            .filter(|n| n.contains("yoloanonymize-partial"))
            .collect()
    }

    /// The first third of a good clip: its index (written last) is missing.
    fn broken(dir: &Path) -> PathBuf {
        let good = clip(dir, "good-for-broken.mp4");
        let bytes = fs::read(&good).unwrap();
        fs::remove_file(&good).unwrap();
        let path = dir.join("broken.mp4");
        fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
        path
    }

    /// `mknod <dir>/devnull c 1 3`: a /dev/null of our own, or None (with a message) where
    /// making device nodes is not permitted.
    fn devnull(dir: &Path) -> Option<PathBuf> {
        let node = dir.join("devnull");
        let made = Command::new("mknod")
            .args([s(&node), "c", "1", "3"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if made && fs::OpenOptions::new().write(true).open(&node).is_ok() {
            Some(node)
        } else {
            eprintln!("SKIPPED: mknod of a character device is not permitted here");
            let _ = fs::remove_file(&node);
            None
        }
    }

    fn assert_still_devnull(node: &Path) {
        let meta = fs::symlink_metadata(node).expect("the device node is still there");
        assert!(
            meta.file_type().is_char_device(),
            "{node:?} is no longer a device"
        );
        assert_eq!(meta.rdev(), fs::metadata("/dev/null").unwrap().rdev());
    }

    /// A tmpfs mounted on a new folder, unmounted when dropped.
    struct Mount(PathBuf);

    impl Mount {
        /// `mount -t tmpfs -o <options> tmpfs <dir>`, or None (with a message) where mounting
        /// is not permitted.
        fn tmpfs(dir: &Path, options: &str) -> Option<Mount> {
            fs::create_dir(dir).unwrap();
            let ok = Command::new("mount")
                .args(["-t", "tmpfs", "-o", options, "tmpfs", s(dir)])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                Some(Mount(dir.to_owned()))
            } else {
                eprintln!("SKIPPED: mounting a tmpfs is not permitted here");
                None
            }
        }
    }

    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }

    /// `yoloanonymize-cli broken.mp4 <dir>/devnull` used to delete the device node on its error
    /// path. Now a device is written as it is, and never removed, by a failed or a good run.
    #[test]
    fn a_device_given_as_output_stays_a_device() {
        let dir = tempfile::tempdir().unwrap();
        let Some(node) = devnull(dir.path()) else {
            return;
        };
        let broken = broken(dir.path());
        let out = cli_quick(&[s(&broken), s(&node)]);
        refused(&out, &[s(&broken)]);
        assert_still_devnull(&node);
        let good = clip(dir.path(), "good.mp4");
        let out = cli_quick(&[s(&good), s(&node)]);
        succeeded(&out);
        assert_still_devnull(&node);
        assert_eq!(listing(dir.path()), ["broken.mp4", "devnull", "good.mp4"]);
    }

    /// `yoloanonymize-cli in.mp4 out.mp4 --detections-file in.mp4` used to truncate in.mp4.
    #[test]
    fn a_detections_file_that_is_the_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = clip(dir.path(), "in.mp4");
        let before = fs::read(&input).unwrap();
        let output = dir.path().join("out.mp4");
        let hard = dir.path().join("hard.jsonl");
        fs::hard_link(&input, &hard).unwrap();
        for detections in [&input, &hard] {
            for extra in [&[][..], &["--overwrite"][..]] {
                let args = [
                    &[s(&input), s(&output), "--detections-file", s(detections)],
                    extra,
                ];
                let line = refused(&cli(&args.concat()), &[s(detections), "is an input"]);
                assert!(line.contains("detections file"), "{line}");
            }
        }
        let line = refused(
            &cli(&[s(&input), s(&output), "--detections-file", s(&output)]),
            &["is the video output"],
        );
        assert!(line.contains(s(&output)), "{line}");
        assert_eq!(fs::read(&input).unwrap(), before, "the input changed");
        assert_eq!(listing(dir.path()), ["hard.jsonl", "in.mp4"]);
    }

    /// `yoloanonymize-cli in.mp4 link.mp4` with link.mp4 a hard link (or a symbolic link) to
    /// in.mp4 used to leave in.mp4 empty.
    #[test]
    fn an_output_that_links_to_the_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = clip(dir.path(), "in.mp4");
        let before = fs::read(&input).unwrap();
        let hard = dir.path().join("link.mp4");
        fs::hard_link(&input, &hard).unwrap();
        let soft = dir.path().join("symlink.mp4");
        std::os::unix::fs::symlink(&input, &soft).unwrap();
        for output in [&hard, &soft, &input] {
            for extra in [&[][..], &["--overwrite"][..]] {
                let args = [&[s(&input), s(output)][..], extra].concat();
                refused(&cli(&args), &[s(output), "is an input"]);
            }
        }
        // By a file:// URI too.
        let uri = format!("file://{}", s(&input));
        refused(&cli(&[&uri, s(&hard)]), &["is an input"]);
        assert_eq!(fs::read(&input).unwrap(), before, "the input changed");
        assert!(
            fs::symlink_metadata(&soft)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(listing(dir.path()), ["in.mp4", "link.mp4", "symlink.mp4"]);
    }

    /// `echo precious > out.mp4; yoloanonymize-cli not-a-video.mp4 out.mp4` used to delete
    /// out.mp4; a good run overwrote it without a word.
    #[test]
    fn an_existing_output_is_replaced_only_with_overwrite_and_only_by_a_good_run() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("out.mp4");
        fs::write(&output, "precious\n").unwrap();
        fs::set_permissions(&output, fs::Permissions::from_mode(0o640)).unwrap();
        let not_video = dir.path().join("not-a-video.mp4");
        fs::write(&not_video, "hello").unwrap();
        let good = clip(dir.path(), "in.mp4");
        let precious = || fs::read_to_string(&output).unwrap() == "precious\n";

        refused(
            &cli(&[s(&not_video), s(&output)]),
            &[s(&output), "--overwrite"],
        );
        assert!(precious());
        refused(
            &cli(&[s(&good), s(&output)]),
            &[s(&output), "exists", "--overwrite"],
        );
        assert!(precious());
        // Allowed to replace it, but the run fails: it is kept as it was.
        refused(
            &cli_quick(&[s(&not_video), s(&output), "--overwrite"]),
            &[s(&not_video)],
        );
        assert!(precious());
        let broken = broken(dir.path());
        refused(
            &cli_quick(&[s(&broken), s(&output), "--overwrite"]),
            &[s(&broken)],
        );
        assert!(precious());
        assert!(
            temporaries(dir.path()).is_empty(),
            "{:?}",
            listing(dir.path())
        );

        let out = cli_quick(&[s(&good), s(&output), "--overwrite"]);
        succeeded(&out);
        assert_eq!(count_frames(&output), FRAMES);
        let mode = fs::metadata(&output).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "the replaced file's permissions are kept");
        assert_eq!(
            listing(dir.path()),
            ["broken.mp4", "in.mp4", "not-a-video.mp4", "out.mp4"]
        );
    }

    /// A new output appears only when the run succeeded, as a normal file (0666 less the umask).
    #[test]
    fn a_new_output_appears_only_when_complete() {
        let dir = tempfile::tempdir().unwrap();
        let good = clip(dir.path(), "in.mp4");
        let not_video = dir.path().join("not-a-video.mp4");
        fs::write(&not_video, "hello").unwrap();
        let output = dir.path().join("out.mp4");
        refused(&cli_quick(&[s(&not_video), s(&output)]), &[s(&not_video)]);
        assert_eq!(listing(dir.path()), ["in.mp4", "not-a-video.mp4"]);
        succeeded(&cli_quick(&[s(&good), s(&output)]));
        assert_eq!(count_frames(&output), FRAMES);
        let umask = fs::read_to_string("/proc/self/status").ok().and_then(|st| {
            st.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        });
        if let Some(umask) = umask {
            let mode = fs::metadata(&output).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o666 & !umask);
        }
        assert_eq!(
            listing(dir.path()),
            ["in.mp4", "not-a-video.mp4", "out.mp4"]
        );
    }

    /// Ctrl-C (SIGINT) or SIGTERM in the middle of a file: the pipeline is drained, the MP4
    /// finalised and renamed; it holds the frames so far, and no temporary file is left.
    #[test]
    fn a_signal_mid_run_gives_a_playable_mp4_of_the_frames_so_far() {
        let dir = tempfile::tempdir().unwrap();
        // Long: the signal comes early. Noise, which does not compress: the file sink's 64 KiB
        // buffer is flushed to the file after a few frames, which tells the test that frames are
        // being written.
        let input = dir.path().join("long.mp4");
        run_launch(&format!(
            "videotestsrc num-buffers=1500 pattern=snow ! video/x-raw,width=160,height=120,framerate=25/1 \
             ! x264enc speed-preset=ultrafast ! mp4mux ! filesink location={}",
            input.display()
        ));
        for signal in ["INT", "TERM"] {
            let output = dir.path().join(format!("out-{signal}.mp4"));
            let mut child = Command::new(cli_binary())
                .args([s(&input), s(&output)])
                .args(QUICK)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // Frames are being written once the temporary file has grown.
            let started = Instant::now();
            loop {
                let grown = temporaries(dir.path())
                    .iter()
                    .any(|t| fs::metadata(dir.path().join(t)).is_ok_and(|m| m.len() > 4096));
                if grown {
                    break;
                }
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "finished before the signal"
                );
                assert!(
                    started.elapsed() < Duration::from_secs(180),
                    "no frame written"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            let sent = Command::new("kill")
                .args([&format!("-{signal}"), &child.id().to_string()])
                .status()
                .unwrap();
            assert!(sent.success());
            let out = child.wait_with_output().unwrap();
            let stdout = text(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(130),
                "stderr: {}",
                text(&out.stderr)
            );
            assert!(stdout.contains("(stopped by Ctrl-C)"), "{stdout}");
            let frames = count_frames(&output);
            assert!(frames > 0 && frames < 1500, "{frames} frames");
            assert!(
                stdout.contains(&format!("Anonymized {frames} frames in")),
                "the summary does not say {frames} frames: {stdout}"
            );
            assert!(
                temporaries(dir.path()).is_empty(),
                "{:?}",
                listing(dir.path())
            );
        }
    }

    /// A camera URL with credentials that fails: they appear nowhere in what the tool prints.
    #[test]
    fn credentials_in_a_failing_url_are_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        // A port nothing listens on: connection refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // A server that answers every request with 401, then 404.
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server_port = server.local_addr().unwrap().port();
        std::thread::spawn(move || fake_rtsp_server(server));
        let output = dir.path().join("out.mp4");
        let urls = [
            format!("rtsp://user:secret@127.0.0.1:{port}/stream"),
            format!("rtsp://user:secret@127.0.0.1:{server_port}/stream"),
            format!("rtsp://secret@127.0.0.1:{server_port}/stream"),
            format!("rtsp://user:secret@[::1]:{port}/stream"),
        ];
        for url in &urls {
            for output in [output.as_path(), dir.path()] {
                let out = cli(&[url, s(output)]);
                let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
                assert!(!out.status.success(), "{url}: {all}");
                assert!(!all.contains("secret"), "{url}: {all}");
                assert!(all.contains("127.0.0.1") || all.contains("[::1]"), "{all}");
            }
        }
        // In an argument error too.
        let out = cli(&[&urls[0], s(&output), "--device", &urls[0]]);
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(2), "{all}");
        assert!(!all.contains("secret"), "{all}");
        assert_eq!(listing(dir.path()), Vec::<String>::new());
    }

    /// Answers RTSP requests: 401 with a Basic challenge, then 404 (rtspsrc retries with the
    /// URL's credentials, and the error then quotes the URL).
    fn fake_rtsp_server(listener: std::net::TcpListener) {
        use std::io::{BufRead, BufReader, Write};
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                let mut answered = 0;
                loop {
                    let mut cseq = String::from("1");
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = line.strip_prefix("CSeq:") {
                            cseq = v.trim().to_owned();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let reply = if answered == 0 {
                        format!(
                            "RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\r\n"
                        )
                    } else {
                        format!("RTSP/1.0 404 Not Found\r\nCSeq: {cseq}\r\n\r\n")
                    };
                    answered += 1;
                    if writer.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    }

    /// A full disk: a clear error, and nothing left in the folder. With /dev/full as the
    /// output (a device: written as it is) the device stays.
    #[test]
    fn a_full_disk_is_a_clear_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let input = super::common::sample();
        let out = cli_quick(&[s(&input), "/dev/full"]);
        refused(&out, &["space"]);
        assert!(
            fs::metadata("/dev/full")
                .unwrap()
                .file_type()
                .is_char_device()
        );
        let Some(full) = Mount::tmpfs(&dir.path().join("full"), "size=64k") else {
            return;
        };
        let output = full.0.join("out.mp4");
        let out = cli_quick(&[s(&input), s(&output)]);
        refused(&out, &["space"]);
        assert_eq!(listing(&full.0), Vec::<String>::new());
    }

    /// An output in a folder that does not exist, or that cannot be written: a clear error.
    #[test]
    fn an_output_folder_that_is_missing_or_read_only_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let input = clip(dir.path(), "in.mp4");
        let missing = dir.path().join("no-such-folder");
        let output = missing.join("out.mp4");
        refused(
            &cli(&[s(&input), s(&output)]),
            &[s(&missing), "does not exist"],
        );
        refused(
            &cli(&[
                s(&input),
                s(&dir.path().join("out.mp4")),
                "--detections-file",
                s(&output),
            ]),
            &[s(&missing), "does not exist"],
        );
        assert!(!missing.exists());
        // Read-only: by its mode (not for root, who writes anyway), else a read-only mount.
        let locked = dir.path().join("locked");
        fs::create_dir(&locked).unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).unwrap();
        let root_writes = fs::write(locked.join("probe"), "").is_ok();
        let _ = fs::remove_file(locked.join("probe"));
        let _mount;
        if root_writes {
            fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
            fs::remove_dir(&locked).unwrap();
            let Some(m) = Mount::tmpfs(&locked, "ro,size=64k") else {
                return;
            };
            _mount = m;
        }
        let out = cli(&[s(&input), s(&locked.join("out.mp4"))]);
        let line = refused(&out, &[s(&locked)]);
        assert!(
            line.contains("read-only") || line.contains("permission denied"),
            "{line}"
        );
        assert_eq!(listing(&locked), Vec::<String>::new());
    }

    /// videos/ -> videos/anonymized/: the outputs are never taken as inputs, run after run; the
    /// second run needs --overwrite; the input folder as its own output folder is refused where
    /// an output would be an input.
    #[test]
    fn an_output_folder_inside_the_input_folder_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let videos = dir.path().join("videos");
        fs::create_dir(&videos).unwrap();
        clip(&videos, "a.mp4");
        clip(&videos, "b.mkv");
        let anonymized = videos.join("anonymized");
        let args = [s(&videos), s(&anonymized)];
        let out = cli_quick(&args);
        succeeded(&out);
        assert!(text(&out.stdout).contains("[2/2]"), "{}", text(&out.stdout));
        assert_eq!(listing(&anonymized), ["a.mp4", "b.mp4"]);
        let before = fs::read(anonymized.join("a.mp4")).unwrap();
        refused(&cli(&args), &["exists", "--overwrite"]);
        assert_eq!(fs::read(anonymized.join("a.mp4")).unwrap(), before);
        let out = cli_quick(&[&args[..], &["--overwrite"]].concat());
        succeeded(&out);
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("[2/2]") && !stdout.contains("[1/3]"),
            "{stdout}"
        );
        assert_eq!(listing(&anonymized), ["a.mp4", "b.mp4"]);
        assert_eq!(count_frames(&anonymized.join("b.mp4")), FRAMES);
        assert_eq!(listing(&videos), ["a.mp4", "anonymized", "b.mkv"]);
        // videos/ -> videos/: b.mkv -> b.mp4 is new, but a.mp4 -> a.mp4 is an input.
        refused(
            &cli(&[s(&videos), s(&videos), "--overwrite"]),
            &["a.mp4", "is an input"],
        );
        assert_eq!(listing(&videos), ["a.mp4", "anonymized", "b.mkv"]);
    }
}

/// `examples/rtsp-serve.rs`: loopback by default, and basic authentication when asked for.
mod rtsp_serve {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::OnceLock;
    use std::time::Duration;

    use super::common::{build_example, repo, text};

    /// Builds `examples/rtsp-serve.rs` with the profile of this test (a no-op when it is up to
    /// date, as under `cargo test --all-targets`) and returns its path.
    fn example() -> &'static PathBuf {
        static BINARY: OnceLock<PathBuf> = OnceLock::new();
        BINARY.get_or_init(|| build_example("rtsp-serve"))
    }

    /// A running server, killed when dropped, and the URL it printed.
    struct Server(Child, String);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn serve(extra: &[&str], launch: &std::path::Path) -> Server {
        let mut child = Command::new(example())
            .args(["--port", "0"])
            .args(extra)
            .arg(launch)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .strip_prefix("serving ")
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| {
                let mut err = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                panic!("rtsp-serve did not start: {line}{err}")
            })
            .to_owned();
        Server(child, url)
    }

    /// Sends one DESCRIBE to `url`, with a Basic `Authorization` of `credentials` if given, and
    /// returns the status line of the answer.
    fn describe(url: &str, credentials: Option<&str>) -> String {
        let host = url.trim_start_matches("rtsp://").split('/').next().unwrap();
        let mut stream = TcpStream::connect(host).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let auth = credentials
            .map(|c| format!("Authorization: Basic {}\r\n", base64(c.as_bytes())))
            .unwrap_or_default();
        write!(
            stream,
            "DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n{auth}\r\n"
        )
        .unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    fn base64(bytes: &[u8]) -> String {
        const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn base64_is_right() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }

    /// Loopback by default; with --user and --password-file a client without the credentials
    /// (or with wrong ones) is refused with 401, one with them is served.
    #[test]
    fn clients_without_credentials_are_refused_when_auth_is_on() {
        let dir = tempfile::tempdir().unwrap();
        let launch = dir.path().join("test.pipeline");
        std::fs::write(
            &launch,
            "# test stream\n( videotestsrc is-live=true ! x264enc tune=zerolatency speed-preset=ultrafast ! rtph264pay name=pay0 )\n",
        )
        .unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "s3cret\n").unwrap();

        let open = serve(&[], &launch);
        assert!(open.1.starts_with("rtsp://127.0.0.1:"), "{}", open.1);
        assert!(describe(&open.1, None).contains(" 200 "));
        drop(open);

        let pw = password.to_str().unwrap();
        let guarded = serve(&["--user", "viewer", "--password-file", pw], &launch);
        assert!(describe(&guarded.1, None).contains(" 401 "));
        assert!(describe(&guarded.1, Some("viewer:wrong")).contains(" 401 "));
        assert!(describe(&guarded.1, Some("viewer:s3cret")).contains(" 200 "));
    }

    /// Half of the authentication options is an error, not an open server.
    #[test]
    fn a_user_without_a_password_file_is_an_error() {
        let out = Command::new(example())
            .args(["--user", "viewer", "pipelines/rtsp-to-rtsp.pipeline"])
            .current_dir(repo(""))
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("--password-file"),
            "{}",
            text(&out.stderr)
        );
    }
}
