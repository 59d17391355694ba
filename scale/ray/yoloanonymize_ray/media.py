"""What the tasks ask of the tools on a node: where `yoloanonymize-cli` is, what its summary says,
and how many frames a file decodes to (with GStreamer's `gst-launch-1.0`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

CLI_NAME = "yoloanonymize-cli"
CLI_ENV = "YOLOANONYMIZE_CLI"


class ToolError(Exception):
    """A tool is missing or did not do its job; the message is one line."""


def one_line(text: str) -> str:
    """`text` with its lines trimmed, the empty ones dropped and the rest joined by spaces."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _repo_cli() -> str | None:
    """`target/release/yoloanonymize-cli` of the repository this package lies in, when it is run
    from a checkout (`pip install -e`, or PYTHONPATH=scale/ray)."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidate = os.path.join(here, "..", "..", "..", "target", "release", CLI_NAME)
    return os.path.normpath(candidate) if os.access(candidate, os.X_OK) else None


def find_cli(given: str | None = None) -> str:
    """The CLI to run: `given` (--cli), else $YOLOANONYMIZE_CLI, else `yoloanonymize-cli` on
    PATH, else this checkout's target/release build."""
    if given:
        path = shutil.which(given) if os.sep not in given else given
        if not path or not os.access(path, os.X_OK):
            raise ToolError(f"--cli {given} is not an executable file")
        return os.path.abspath(path)
    env = os.environ.get(CLI_ENV)
    if env:
        if not os.access(env, os.X_OK):
            raise ToolError(f"{CLI_ENV}={env} is not an executable file")
        return os.path.abspath(env)
    on_path = shutil.which(CLI_NAME)
    if on_path:
        return os.path.abspath(on_path)
    repo = _repo_cli()
    if repo:
        return repo
    raise ToolError(
        f"{CLI_NAME} not found: give --cli PATH, set {CLI_ENV}, put it on PATH, or build it "
        "with `cargo build --release` in the repository"
    )


def cli_on_node(hint: str) -> str:
    """On a worker node: the driver's CLI path when it exists here too, else the usual search."""
    if hint and os.access(hint, os.X_OK):
        return hint
    return find_cli()


@dataclass
class Summary:
    """The counts of the summary `yoloanonymize-cli` prints at the end of a file."""

    frames: int
    people: int
    regions: int
    redacted_whole: int
    not_redacted: int  # --on-failure passthrough only


_SUMMARY = {
    "frames": re.compile(r"^Anonymized (\d+) frames in ", re.M),
    "people": re.compile(r"^\s*people detected:\s*(\d+)", re.M),
    "regions": re.compile(r"^\s*regions redacted:\s*(\d+)", re.M),
    "redacted_whole": re.compile(r"^\s*frames redacted whole:\s*(\d+)", re.M),
    "not_redacted": re.compile(r"^\s*frames NOT redacted:\s*(\d+)", re.M),
}


def parse_summary(stdout: str) -> Summary:
    """Reads the CLI's closing summary (see src/bin/cli/summary.rs); fails if it is not there."""
    values = {}
    for key, pattern in _SUMMARY.items():
        m = pattern.search(stdout)
        if m:
            values[key] = int(m.group(1))
        elif key == "not_redacted":
            values[key] = 0
        else:
            raise ToolError(
                f"{CLI_NAME} printed no summary line for {key.replace('_', ' ')} "
                f"(its output: {one_line(stdout)[-300:] or 'nothing'})"
            )
    return Summary(**values)


def count_frames(path: str, timeout: float | None = None) -> int:
    """Number of video frames `path` decodes to. Each frame is scaled to 4x1 GRAY8 (4 bytes) and
    the bytes coming out are counted, as scripts/quickstart.sh does."""
    launch = shutil.which("gst-launch-1.0")
    if not launch:
        raise ToolError("gst-launch-1.0 not found (Debian: apt-get install gstreamer1.0-tools)")
    cmd = [
        launch,
        "-q",
        "filesrc",
        # One argument: gst-launch-1.0 escapes each (gst_parse_launchv), spaces and all.
        f"location={path}",
        "!",
        "decodebin",
        "!",
        "videoconvert",
        "!",
        "videoscale",
        "!",
        "video/x-raw,format=GRAY8,width=4,height=1",
        "!",
        "fdsink",
        "fd=1",
    ]
    # 4 bytes a frame: even a day of video at 30 frames/s is only 10 MB of stdout.
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise ToolError(f"decoding {path} took more than {timeout:.0f} s") from e
    rc, total, err = proc.returncode, len(proc.stdout), proc.stderr.decode(errors="replace")
    if rc != 0:
        raise ToolError(f"cannot decode {path}: {one_line(err)[-300:] or f'gst-launch-1.0 exit {rc}'}")
    if total % 4:
        raise ToolError(f"counting the frames of {path} gave {total} bytes, not a multiple of 4")
    return total // 4
