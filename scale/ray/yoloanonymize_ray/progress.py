"""The driver's progress display: files and frames done, frames/s over the cluster, ETA.

On a terminal it is one line redrawn in place on stderr; otherwise (a log, `ray job submit`) a
status line is printed every `LOG_EVERY` seconds between the per-file lines. The ETA comes from
the bytes of input done so far (tasks report a file when it is finished, not while it runs)."""

from __future__ import annotations

import sys
import time

LOG_EVERY = 30.0
REDRAW_EVERY = 0.25


def hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, files: int, total_bytes: int, quiet: bool = False, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.quiet = quiet
        self.files = files
        self.total_bytes = max(total_bytes, 1)
        self.start = time.monotonic()
        self.done = self.failed = self.frames = self.bytes = 0
        self._drawn = False
        self._last_draw = self._last_log = self.start

    def status(self) -> str:
        elapsed = time.monotonic() - self.start
        fps = self.frames / elapsed if elapsed > 0 else 0.0
        if self.bytes and self.done + self.failed < self.files:
            eta = hms(elapsed * (self.total_bytes - self.bytes) / self.bytes)
        elif self.done + self.failed >= self.files:
            eta = "0:00:00"
        else:
            eta = "?"
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"{self.done + self.failed}/{self.files} files{failed} | {self.frames} frames | "
            f"{fps:.1f} frames/s | {hms(elapsed)} elapsed | ETA {eta}"
        )

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False

    def println(self, text: str, always: bool = False) -> None:
        """A line above the bar (`always`: even with --quiet, for failures)."""
        if self.quiet and not always:
            return
        self._clear()
        self.stream.write(text + "\n")
        self.stream.flush()
        self.tick(force=True)

    def finished(self, record: dict, size: int) -> None:
        if record.get("status") == "done":
            self.done += 1
            self.frames += record.get("frames_out") or 0
        else:
            self.failed += 1
        self.bytes += size

    def tick(self, force: bool = False) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if self.tty:
            if force or now - self._last_draw >= REDRAW_EVERY:
                self._clear()
                self.stream.write("yoloanonymize-ray: " + self.status())
                self.stream.flush()
                self._drawn = True
                self._last_draw = now
        elif now - self._last_log >= LOG_EVERY:
            self.stream.write("progress: " + self.status() + "\n")
            self.stream.flush()
            self._last_log = now

    def close(self) -> None:
        self._clear()
        self.stream.flush()
