"""The work of one Ray task: one file through `yoloanonymize-cli`, checked, then renamed into place.

Every attempt works in a folder of its own, `<output folder>/.yoloanonymize-ray/<key>.<token>/`,
on the same filesystem as the output: the CLI writes its MP4 (and its own temporary files) there,
the task counts the frames that MP4 decodes to, and only when they match the frames that went in
is the file moved to its final name, with a hard link that cannot replace an existing file (or,
with --overwrite, a rename). The attempt folder, with anything left in it, is then removed.

A node that dies takes its attempts with it: the CLI is started with PR_SET_PDEATHSIG, so it
dies with the Ray worker that runs it, and leaves its attempt folder behind. Ray runs the task
again elsewhere (its retries for system failures); the new attempt finds the folder of the lost
one, reads which node it was on, removes it, and counts it in the record's `lost_attempts`.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import math
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
import uuid

from .inputs import WORK_DIR_NAME
from .media import ToolError, cli_on_node, count_frames, one_line, parse_summary

ATTEMPT_FILE = "attempt.json"
RECORDS_DIR = "records"
_PR_SET_PDEATHSIG = 1


def key_of(name: str) -> str:
    """A short, filesystem-safe key for an output name (the attempt folders' prefix)."""
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def work_dir(output_dir: str) -> str:
    return os.path.join(output_dir, WORK_DIR_NAME)


def record_path(output_dir: str, name: str) -> str:
    """Where a task leaves the record of a file it placed, until the driver has appended it to
    the manifest: a driver that dies in between loses no record (see `pending_records`)."""
    return os.path.join(work_dir(output_dir), RECORDS_DIR, key_of(name) + ".json")


def pending_records(output_dir: str) -> list[tuple[str, dict]]:
    """(path, record) of the records tasks left that no driver appended (it died first)."""
    folder = os.path.join(work_dir(output_dir), RECORDS_DIR)
    found = []
    try:
        entries = sorted(os.listdir(folder))
    except FileNotFoundError:
        return found
    for entry in entries:
        if not entry.endswith(".json"):
            continue
        path = os.path.join(folder, entry)
        try:
            with open(path) as f:
                found.append((path, json.load(f)))
        except (OSError, ValueError):
            continue  # being written, or cut short: the output is checked again by a rerun
    return found


def clear_attempts(output_dir: str, name: str) -> list[dict]:
    """Removes the attempt folders left for `name` by attempts that did not finish (a lost node,
    a killed driver) and returns what their attempt.json said. Only files directly inside them
    are removed: those are the CLI's and this runner's temporary files."""
    work = work_dir(output_dir)
    prefix = key_of(name) + "."
    found = []
    try:
        entries = sorted(os.listdir(work))
    except FileNotFoundError:
        return found
    for entry in entries:
        folder = os.path.join(work, entry)
        if not entry.startswith(prefix) or not os.path.isdir(folder):
            continue
        info = {"folder": entry}
        try:
            with open(os.path.join(folder, ATTEMPT_FILE)) as f:
                info.update(json.load(f))
        except (OSError, ValueError):
            pass
        for leftover in os.listdir(folder):
            path = os.path.join(folder, leftover)
            if not os.path.isdir(path) or os.path.islink(path):
                os.unlink(path)
        os.rmdir(folder)
        found.append(info)
    return found


def _where() -> tuple[str | None, str, int]:
    """(Ray node id, host name, CPUs assigned to this task)."""
    node, cpus = None, 1
    try:
        import ray

        if not ray.is_initialized():  # get_runtime_context() would start a local instance
            raise RuntimeError("not in a Ray task")
        ctx = ray.get_runtime_context()
        node = ctx.get_node_id()
        cpus = max(1, math.floor(ctx.get_assigned_resources().get("CPU", 1)))
    except Exception:  # noqa: BLE001 - outside Ray (unit tests): no node id
        pass
    return node, socket.gethostname(), cpus


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the Ray worker that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec():
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the worker died before prctl took effect
            os._exit(1)

    return preexec


def _cli_error(stderr: str, rc: int) -> str:
    """The CLI's `error: ...` line, or the end of what it printed."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error:"):
            return line[len("error:") :].strip()
    tail = one_line(stderr)[-300:]
    if rc < 0:
        return f"yoloanonymize-cli was killed by signal {-rc}" + (f" ({tail})" if tail else "")
    return tail or f"yoloanonymize-cli failed with exit status {rc} and printed nothing"


def _fsync(path: str, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def place(tmp: str, final: str, overwrite: bool) -> None:
    """Moves the checked file `tmp` to `final` (same filesystem). Without `overwrite` an existing
    `final` is never replaced: a hard link makes the new name, and fails if it exists. With it,
    only a regular file is replaced; a device, FIFO or folder at `final` is an error."""
    os.makedirs(os.path.dirname(final), exist_ok=True)
    _fsync(tmp)
    if os.stat(tmp).st_dev != os.stat(os.path.dirname(final)).st_dev:
        # Another filesystem (a --detections-file folder elsewhere): copy it next to `final`
        # first, so that the last step is still a link or rename.
        near = os.path.join(
            os.path.dirname(final), f".{os.path.basename(final)}.{uuid.uuid4().hex[:12]}.part"
        )
        shutil.copyfile(tmp, near)
        os.unlink(tmp)
        try:
            place(near, final, overwrite)
        finally:
            if os.path.lexists(near):
                os.unlink(near)
        return
    if os.path.lexists(final):
        if not overwrite:
            raise ToolError(
                f"output {final} exists (it appeared while this file was being anonymized); it "
                "was left as it is"
            )
        if not stat.S_ISREG(os.lstat(final).st_mode):
            raise ToolError(f"output {final} exists and is not a regular file; it was left as it is")
        os.replace(tmp, final)
    else:
        try:
            os.link(tmp, final)
        except FileExistsError as e:
            raise ToolError(
                f"output {final} appeared while this file was being anonymized; it was left as it is"
            ) from e
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            os.rename(tmp, final)  # no hard links on this filesystem: checked just above
        else:
            os.unlink(tmp)
    _fsync(os.path.dirname(final), directory=True)


def anonymize(job: dict, settings: dict) -> dict:
    """Anonymizes one file (a Ray task; also callable directly). Never raises for a bad file: the
    returned record says `failed` with a one-line `error`.

    job: input, name, output, size (see inputs.Job). settings: cli (the driver's path to
    yoloanonymize-cli), args (flags for the CLI), threads_given, detections_dir (or None),
    overwrite, run (the run's id), output_dir, hide_gpus."""
    started = time.time()
    node, host, cpus = _where()
    record = {
        "input": job["input"],
        "output": job["output"],
        "name": job["name"],
        "status": "failed",
        "error": None,
        "node": node,
        "host": host,
        "input_bytes": job["size"],
        "run": settings["run"],
    }
    output_dir = settings["output_dir"]
    attempt = None
    try:
        # The attempts lost before this one: the folders they left, and the ones those attempts
        # had found in turn (each attempt.json carries the list).
        lost = []
        for e in clear_attempts(output_dir, job["name"]):
            lost += e.get("lost") or []
            lost.append({k: e.get(k) for k in ("node", "host", "started", "run")})
        lost.sort(key=lambda e: e.get("started") or 0)
        record["lost_attempts"] = lost
        record["attempts"] = 1 + sum(1 for e in lost if e.get("run") == settings["run"])
        os.makedirs(work_dir(output_dir), exist_ok=True)
        attempt = os.path.join(
            work_dir(output_dir), f"{key_of(job['name'])}.{uuid.uuid4().hex[:12]}"
        )
        os.mkdir(attempt)
        with open(os.path.join(attempt, ATTEMPT_FILE), "w") as f:
            json.dump(
                {
                    "name": job["name"],
                    "input": job["input"],
                    "run": settings["run"],
                    "node": node,
                    "host": host,
                    "pid": os.getpid(),
                    "started": round(started, 3),
                    "lost": lost,
                },
                f,
            )
        _run(job, settings, attempt, cpus, record)
    except (ToolError, OSError) as e:
        record["status"] = "failed"
        record["error"] = one_line(str(e)) or type(e).__name__
    except Exception as e:  # noqa: BLE001 - a bug here must fail this file, not look like a lost node
        record["status"] = "failed"
        record["error"] = f"internal error in yoloanonymize-ray: {type(e).__name__}: {one_line(str(e))}"
    finally:
        if attempt is not None:
            try:
                clear_attempts(output_dir, job["name"])
            except OSError:
                pass
        record["seconds"] = round(time.time() - started, 3)
        record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if record["status"] == "done":
        try:
            keep_record(output_dir, record)
        except OSError:
            pass  # the driver appends the record it gets back all the same
    return record


def keep_record(output_dir: str, record: dict) -> None:
    """Writes `record` to its `record_path` (complete, or not at all)."""
    keep = record_path(output_dir, record["name"])
    os.makedirs(os.path.dirname(keep), exist_ok=True)
    part = f"{keep}.{uuid.uuid4().hex[:12]}.part"
    with open(part, "w") as f:
        json.dump(record, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, keep)


def _run(job: dict, settings: dict, attempt: str, cpus: int, record: dict) -> None:
    cli = cli_on_node(settings["cli"])
    base = os.path.basename(job["output"])
    tmp_out = os.path.join(attempt, base)
    cmd = [cli, job["input"], tmp_out, *settings["args"]]
    if not settings["threads_given"]:
        cmd += ["--threads", str(cpus)]
    tmp_det = None
    if settings.get("detections_dir"):
        tmp_det = os.path.join(attempt, os.path.splitext(base)[0] + ".jsonl")
        cmd += ["--detections-file", tmp_det]
    env = dict(os.environ)
    if settings.get("hide_gpus"):
        env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        preexec_fn=_die_with_parent(),
    )
    stdout = proc.stdout.decode(errors="replace")
    stderr = proc.stderr.decode(errors="replace")
    warnings = [
        line.strip()[len("warning:") :].strip()
        for line in stderr.splitlines()
        if line.strip().startswith("warning:")
    ]
    if warnings:
        record["warnings"] = warnings[:5] + ([f"... {len(warnings) - 5} more"] if len(warnings) > 5 else [])
    if proc.returncode != 0:
        error = _cli_error(stderr, proc.returncode)
        prefix = job["input"] + ": "  # the CLI names its input; the record already does
        raise ToolError(error[len(prefix) :] if error.startswith(prefix) else error)
    summary = parse_summary(stdout)
    record.update(
        frames_in=summary.frames,
        people=summary.people,
        regions=summary.regions,
        frames_redacted_whole=summary.redacted_whole,
    )
    if summary.not_redacted:
        record["frames_not_redacted"] = summary.not_redacted
    if not os.path.isfile(tmp_out):
        raise ToolError(f"yoloanonymize-cli exited 0 but wrote no {tmp_out}")
    record["frames_out"] = count_frames(tmp_out)
    if summary.frames == 0:
        raise ToolError("no video frame reached the anonymizer")
    if record["frames_out"] != summary.frames:
        raise ToolError(
            f"the output decodes to {record['frames_out']} frames but {summary.frames} went in; "
            "it was not kept"
        )
    if tmp_det is not None:
        if not os.path.isfile(tmp_det):
            raise ToolError(f"yoloanonymize-cli wrote no detections file {tmp_det}")
        det_final = os.path.join(
            settings["detections_dir"], *(os.path.splitext(job["name"])[0] + ".jsonl").split("/")
        )
        place(tmp_det, det_final, settings["overwrite"])
        record["detections"] = det_final
    place(tmp_out, job["output"], settings["overwrite"])
    record["output_bytes"] = os.path.getsize(job["output"])
    record["status"] = "done"
