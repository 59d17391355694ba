"""The manifest: one JSON object per line, one line per file and run, appended by the driver only.

It is never truncated or rewritten. Each record is written with one `write` on a file opened with
O_APPEND and flushed to disk (`fsync`) before the driver goes on, so a crash can at worst leave
the last line cut short; such a line is skipped (and counted) when the manifest is read, and the
next record starts on a new line. An exclusive `flock` held for the whole run keeps a second
driver from writing the same manifest at the same time.

The last record of a file (by output name and input) says where it stands; a file whose last
record is `done`, and whose output is still there with the recorded size, is skipped by a rerun.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os

# Fields of a record, in the order they are written (documented in README.md, "Many files, many
# machines"). Records may carry more (such as `warnings`); readers ignore what they do not know.
FIELDS = (
    "input",
    "output",
    "name",
    "status",  # "done" or "failed"
    "error",  # one line, or null
    "frames_in",
    "frames_out",
    "people",
    "regions",
    "frames_redacted_whole",
    "seconds",
    "node",
    "host",
    "attempts",
    "lost_attempts",
    "input_bytes",
    "output_bytes",
    "run",
    "finished",
)


class ManifestError(Exception):
    """The manifest cannot be opened, locked or written."""


def order(record: dict) -> dict:
    """The record with the known fields first, in FIELDS order."""
    out = {k: record.get(k) for k in FIELDS}
    out.update((k, v) for k, v in record.items() if k not in out)
    return out


class Manifest:
    """An open, locked manifest file."""

    def __init__(self, path: str):
        self.path = path
        self.skipped_lines = 0
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise ManifestError(f"cannot open manifest {path}: {e.strerror}") from e
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self.fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise ManifestError(
                    f"manifest {path} is locked: another yoloanonymize-ray is writing it; wait "
                    "for it to finish, or give this run its own --output/--manifest"
                ) from e
            raise ManifestError(f"cannot lock manifest {path}: {e.strerror}") from e
        self.records = self._read()

    def _read(self) -> list[dict]:
        records = []
        with open(self.path, "rb") as f:
            data = f.read()
        self._ends_with_newline = not data or data.endswith(b"\n")
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                self.skipped_lines += 1
                continue
            if isinstance(rec, dict) and "name" in rec and "status" in rec:
                records.append(rec)
            else:
                self.skipped_lines += 1
        return records

    def latest(self) -> dict[tuple[str, str], dict]:
        """The last record of each (name, input)."""
        last = {}
        for rec in self.records:
            last[(rec.get("name"), rec.get("input"))] = rec
        return last

    def append(self, record: dict) -> None:
        """Writes one record as one line, and syncs it to disk."""
        line = json.dumps(order(record), separators=(", ", ": ")) + "\n"
        data = line.encode()
        if not self._ends_with_newline:
            data = b"\n" + data  # after a line cut short by a crash
        try:
            written = 0
            while written < len(data):
                written += os.write(self.fd, data[written:])
            os.fsync(self.fd)
        except OSError as e:
            if written:
                self._ends_with_newline = False  # a part of the line went out
            raise ManifestError(f"cannot write manifest {self.path}: {e.strerror}") from e
        self._ends_with_newline = True
        self.records.append(record)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the lock
            self.fd = -1
