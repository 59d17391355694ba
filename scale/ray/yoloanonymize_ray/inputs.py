"""What to anonymize: INPUT arguments (files, folders, glob patterns) become jobs, one per video,
each with the name of its output under the output folder. Everything is checked before any task
starts: a missing input, a pattern that matches nothing, two inputs that would be written to the
same output."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

# File name extensions taken as videos inside folders (compared case-insensitively). The same
# list as yoloanonymize-cli's folder mode (VIDEO_EXTENSIONS in src/bin/cli/jobs.rs); files named
# on the command line are taken whatever their extension.
VIDEO_EXTENSIONS = frozenset(
    "3gp avi flv m2ts m4v mkv mov mp4 mpeg mpg mts mxf ogv ts webm wmv".split()
)

# The folder under the output folder that holds the tasks' temporary files (one sub-folder per
# attempt); never walked for inputs.
WORK_DIR_NAME = ".yoloanonymize-ray"


class InputError(Exception):
    """A bad INPUT argument, with a message that names it and says what to do."""


@dataclass(frozen=True)
class Job:
    """One video to anonymize."""

    input: str  # absolute path of the input file
    name: str  # output path relative to the output folder, with '/' separators
    output: str  # absolute path of the output file
    size: int  # input size in bytes (for the ETA)


def is_video(path: str) -> bool:
    ext = os.path.splitext(path)[1][1:].lower()
    return ext in VIDEO_EXTENSIONS


def _has_glob(s: str) -> bool:
    return any(c in s for c in "*?[")


def _mp4_name(rel: str) -> str:
    """`a/b.mkv` -> `a/b.mp4`."""
    return os.path.splitext(rel)[0] + ".mp4"


def _walk(folder: str, skip: set[str]) -> list[str]:
    """Video files under `folder`, recursively, sorted; hidden folders and the folders in `skip`
    (real paths: the output folder when it lies inside an input folder) are left out."""
    found = []
    for root, dirs, files in os.walk(folder, onerror=_raise):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and os.path.realpath(os.path.join(root, d)) not in skip
        )
        for f in sorted(files):
            path = os.path.join(root, f)
            if not f.startswith(".") and is_video(f) and os.path.isfile(path):
                found.append(path)
    return found


def _raise(error: OSError) -> None:
    raise InputError(f"cannot list folder {error.filename}: {error.strerror}")


def expand(inputs: list[str], output_dir: str) -> list[Job]:
    """Jobs for INPUT arguments. A file gives `<stem>.mp4` in the output folder; a folder gives
    every video under it (recursively), at the same relative path in the output folder; a glob
    pattern (`*`, `?`, `[...]`, `**` for any depth) is expanded and its matches taken as files
    or folders. An input given twice is taken once."""
    output_dir = os.path.abspath(output_dir)
    skip = {os.path.realpath(output_dir)}
    pairs: list[tuple[str, str]] = []  # (input path, output name)
    for arg in inputs:
        if os.path.exists(arg):
            matches = [arg]
        elif _has_glob(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                raise InputError(f"pattern {arg} matches no file")
        else:
            raise InputError(f"input {arg} does not exist")
        for m in matches:
            if os.path.isdir(m):
                videos = _walk(m, skip)
                if not videos and not _has_glob(arg):
                    raise InputError(
                        f"no video files under folder {m} (looked for ."
                        + ", .".join(sorted(VIDEO_EXTENSIONS))
                        + ")"
                    )
                for v in videos:
                    rel = os.path.relpath(v, m).replace(os.sep, "/")
                    pairs.append((v, _mp4_name(rel)))
            elif os.path.isfile(m):
                if _has_glob(arg) and not is_video(m):
                    continue
                pairs.append((m, _mp4_name(os.path.basename(m))))
            else:
                raise InputError(f"input {m} is not a regular file or a folder")
    jobs: list[Job] = []
    seen_inputs: set[str] = set()
    by_name: dict[str, str] = {}
    for path, name in pairs:
        real = os.path.realpath(path)
        if real in seen_inputs:
            continue
        seen_inputs.add(real)
        if name in by_name:
            raise InputError(
                f"{by_name[name]} and {path} would both be written to "
                f"{os.path.join(output_dir, name)}; rename one of them or run them separately"
            )
        by_name[name] = path
        if os.path.realpath(os.path.join(output_dir, name)) == real:
            raise InputError(f"the output for {path} would be the input itself")
        jobs.append(
            Job(
                input=os.path.abspath(path),
                name=name,
                output=os.path.join(output_dir, *name.split("/")),
                size=os.path.getsize(path),
            )
        )
    if not jobs:
        raise InputError("no video files to anonymize in " + " ".join(inputs))
    return jobs
