"""`yoloanonymize-ray INPUT... --output DIR [flags]`: the driver.

It expands the inputs, reads the manifest, starts (or joins) Ray, submits one task per file that
is not done yet, appends each task's record to the manifest as it finishes, draws the progress
line, and prints a summary. Exit status: 0 when every file is done (now or by an earlier run),
1 when any failed, 2 for bad arguments, 130 when stopped by Ctrl-C.

The element and encoder flags (`--targets`, `--method`, `--device`, ...) are those of
`yoloanonymize-cli`: they are read from its `--help`, checked by the CLI itself before anything
starts, and passed to it for every file.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

from . import __version__
from .inputs import InputError, expand
from .manifest import Manifest, ManifestError
from .media import ToolError, count_frames, find_cli, one_line
from .progress import Progress, hms
from .task import RECORDS_DIR, anonymize, clear_attempts, pending_records, record_path, work_dir

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
MANIFEST_NAME = "yoloanonymize-ray.jsonl"

# CLI flags the runner handles itself: never passed through as they are.
OWN_FLAGS = {"help", "version", "quiet", "detections-file", "overwrite"}

DESCRIPTION = """\
Anonymize every video of INPUT (files, folders searched recursively, glob patterns) into DIR,
one Ray task per file, each running yoloanonymize-cli. Without --address (or RAY_ADDRESS) a
local Ray instance is started on this machine. Every output is written under a temporary name
in DIR, checked (it must decode to as many frames as went in) and only then renamed; the
manifest (JSON lines) records every file, and a rerun skips what is done and checked."""

EPILOG = """\
examples:
  yoloanonymize-ray /archive/videos --output /archive/anonymized --targets face
  yoloanonymize-ray '/archive/**/*.mkv' --output /archive/anon --address ray-head:6379
  ray job submit -- yoloanonymize-ray /shared/in --output /shared/out --device cuda
exit status: 0 every file done, 1 some failed, 2 bad arguments, 130 interrupted"""


class UsageError(Exception):
    pass


# --- the CLI's own flags --------------------------------------------------------------------

_OPTION = re.compile(r"^\s*(?:-(\w), )?--([a-z][a-z0-9-]*)(?:[ =]<([^>]+)>)?(?:\s|$)")


def cli_flags(cli: str) -> list[tuple[str, str | None, str | None]]:
    """(name, short letter, METAVAR or None for a switch) of each flag in `cli --help`."""
    try:
        out = subprocess.run(
            [cli, "--help"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ToolError(f"cannot run {cli} --help: {e}") from e
    if out.returncode != 0:
        raise ToolError(f"{cli} --help failed: {one_line(out.stderr)[-300:]}")
    flags, seen = [], set()
    for line in out.stdout.splitlines():
        m = _OPTION.match(line)
        if m and m.group(2) not in seen:
            seen.add(m.group(2))
            flags.append((m.group(2), m.group(1), m.group(3)))
    if not any(name == "targets" for name, _, _ in flags):
        raise ToolError(f"{cli} --help lists no --targets flag: is it yoloanonymize-cli?")
    return flags


def check_cli_args(cli: str, args: list[str]) -> None:
    """Lets the CLI itself judge the flags (their ranges are its own): it is run on an input that
    does not exist, so it exits 2 for a bad flag and 1 for the input, having opened nothing."""
    with tempfile.TemporaryDirectory(prefix="yoloanonymize-ray-check-") as tmp:
        probe = subprocess.run(
            [cli, os.path.join(tmp, "no-such-input.mp4"), os.path.join(tmp, "out.mp4"), *args],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    if probe.returncode == 2:
        message = one_line(probe.stderr)
        message = message[len("error: ") :] if message.startswith("error: ") else message
        raise UsageError(f"yoloanonymize-cli refuses the flags: {message}")


def parser(flags: list[tuple[str, str | None, str | None]] | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="yoloanonymize-ray",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, folders, globs")
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="folder to write into")
    p.add_argument("--manifest", metavar="PATH", help=f"manifest file [DIR/{MANIFEST_NAME}]")
    p.add_argument(
        "--address",
        metavar="ADDR",
        help="Ray cluster to join (host:port, ray://..., auto) [RAY_ADDRESS; else a local instance]",
    )
    p.add_argument(
        "--num-cpus", type=int, metavar="N", help="CPUs of the local instance [all of this machine]"
    )
    p.add_argument("--cli", metavar="PATH", help="yoloanonymize-cli to run [$YOLOANONYMIZE_CLI, PATH]")
    p.add_argument(
        "--cpus-per-file",
        type=float,
        default=1.0,
        metavar="N",
        help="CPUs reserved per file; the CLI gets --threads N unless --threads is given [1]",
    )
    p.add_argument(
        "--files-per-gpu",
        type=int,
        default=2,
        metavar="K",
        help="with --device cuda: files one GPU runs at once (num_gpus=1/K per task) [2]",
    )
    p.add_argument(
        "--max-concurrent",
        type=int,
        default=0,
        metavar="N",
        help="at most N files in flight over the cluster (0: as resources allow) [0]",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=3,
        metavar="N",
        help="Ray retries of a task lost with its node or worker [3]",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace outputs that exist but are not recorded as done in the manifest",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="before skipping a file done earlier, decode its output and recount its frames",
    )
    p.add_argument(
        "--detections-file",
        metavar="DIR",
        help="write each file's detections (JSON lines) to DIR/<name>.jsonl",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would be done, and stop")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress and no summary")
    p.add_argument("--version", action="version", version=f"yoloanonymize-ray {__version__}")
    if flags:
        g = p.add_argument_group(
            "element and encoder flags",
            "passed to yoloanonymize-cli for every file (see yoloanonymize-cli --help)",
        )
        for name, short, metavar in flags:
            if name in OWN_FLAGS:
                continue
            names = [f"--{name}"]
            if short and short not in ("q", "o", "h", "V"):
                names.insert(0, f"-{short}")
            if metavar:
                g.add_argument(*names, dest=f"cli:{name}", action="append", metavar=metavar)
            else:
                g.add_argument(*names, dest=f"cli:{name}", action="count")
    return p


def passthrough(ns: argparse.Namespace, flags) -> list[str]:
    args = []
    for name, _, metavar in flags:
        value = getattr(ns, f"cli:{name}", None)
        if not value:
            continue
        if metavar:
            for v in value:
                args += [f"--{name}", v]
        else:
            args += [f"--{name}"] * value
    return args


# --- the run --------------------------------------------------------------------------------


def _short(node: str | None) -> str:
    return (node or "?")[:12]


def _record_line(i: int, n: int, rec: dict) -> str:
    where = f"node {_short(rec.get('node'))} ({rec.get('host')})"
    lost = [e for e in rec.get("lost_attempts") or [] if e.get("run") == rec.get("run")]
    retry = ""
    if lost:
        retry = "; retried after " + ", ".join(
            f"attempt {k + 1} lost on node {_short(e.get('node'))} (started "
            f"{time.strftime('%H:%M:%S', time.localtime(e.get('started') or 0))})"
            for k, e in enumerate(lost)
        )
    if rec["status"] == "done":
        return (
            f"[{i}/{n}] done {rec['name']}: {rec.get('frames_in')} frames in, "
            f"{rec.get('frames_out')} out, {rec.get('seconds')} s, attempt {rec.get('attempts')} "
            f"on {where}{retry}"
        )
    return f"[{i}/{n}] FAILED {rec['name']}: {rec.get('error')} ({where}{retry})"


def _lost_record(job, settings: dict, error: BaseException, retries: int) -> dict:
    """The record of a task Ray gave up on (retries spent: node or worker lost every time)."""
    reason = one_line(str(error)).split(". ")[0][:300]
    cleaned = clear_attempts(settings["output_dir"], job.name)
    return {
        "input": job.input,
        "output": job.output,
        "name": job.name,
        "status": "failed",
        "error": f"the task was lost {retries + 1} times ({type(error).__name__}: {reason})",
        "attempts": retries + 1,
        "lost_attempts": [
            {k: e.get(k) for k in ("node", "host", "started", "run")} for e in cleaned
        ],
        "input_bytes": job.size,
        "run": settings["run"],
        "seconds": None,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _refused_record(job, run: str, error: str) -> dict:
    return {
        "input": job.input,
        "output": job.output,
        "name": job.name,
        "status": "failed",
        "error": error,
        "attempts": 0,
        "input_bytes": job.size,
        "run": run,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def recover(manifest: Manifest, output_dir: str) -> int:
    """Appends the records tasks left for a driver that stopped before it appended them (their
    outputs are in place and were checked); returns how many."""
    count = 0
    for path, rec in pending_records(output_dir):
        last = manifest.latest().get((rec.get("name"), rec.get("input")))
        if not last or (last.get("run"), last.get("finished")) != (rec.get("run"), rec.get("finished")):
            manifest.append(dict(rec, recovered=True))
            count += 1
        os.unlink(path)
    return count


def _forget_kept(output_dir: str, rec: dict) -> None:
    """The task's own copy of a record, once the manifest has it."""
    if rec.get("status") == "done":
        try:
            os.unlink(record_path(output_dir, rec["name"]))
        except FileNotFoundError:
            pass


def plan(jobs, manifest: Manifest, overwrite: bool, verify: bool, run: str):
    """(to do, done earlier, refused records) from the manifest and what is on disk."""
    latest = manifest.latest()
    todo, earlier, refused = [], [], []
    for job in jobs:
        last = latest.get((job.name, job.input))
        exists = os.path.lexists(job.output)
        if last and last.get("status") == "done" and exists:
            size = os.path.getsize(job.output)
            if size == last.get("output_bytes"):
                if not verify:
                    earlier.append(job)
                    continue
                try:
                    frames = count_frames(job.output)
                except ToolError as e:
                    frames, why = None, str(e)
                else:
                    why = f"it decodes to {frames} frames, {last.get('frames_out')} were recorded"
                if frames == last.get("frames_out"):
                    earlier.append(job)
                    continue
            else:
                why = f"it is {size} bytes, {last.get('output_bytes')} were recorded"
            if not overwrite:
                refused.append(
                    _refused_record(
                        job,
                        run,
                        f"output {job.output} changed since it was recorded as done ({why}); "
                        "it was left as it is: remove it, or pass --overwrite to redo it",
                    )
                )
                continue
        elif exists and not overwrite:
            refused.append(
                _refused_record(
                    job,
                    run,
                    f"output {job.output} exists and is not recorded as done in the manifest; "
                    "it was left as it is: remove it, or pass --overwrite to replace it",
                )
            )
            continue
        todo.append(job)
    return todo, earlier, refused


def summary(jobs, manifest: Manifest, run: str, wall: float, earlier: int) -> tuple[str, bool]:
    """The closing summary, from the manifest's last record of each file; and whether all done."""
    latest = manifest.latest()
    recs = [latest.get((j.name, j.input)) for j in jobs]
    done = [r for r in recs if r and r.get("status") == "done"]
    now = [r for r in done if r.get("run") == run]
    failed = [r for r in recs if r and r.get("status") != "done"]
    missing = sum(1 for r in recs if r is None)
    frames = sum(r.get("frames_out") or 0 for r in now)
    lines = [
        f"yoloanonymize-ray: {len(jobs)} files, {len(done)} done ({len(now)} now, "
        f"{earlier} earlier), {len(failed)} failed"
        + (f", {missing} not started" if missing else "")
    ]
    if now:
        fps = frames / wall if wall > 0 else 0.0
        lines.append(
            f"  {frames} frames in {wall:.1f} s over the cluster ({fps:.1f} frames/s), "
            f"{sum(r.get('seconds') or 0 for r in now):.1f} s of task time"
        )
        lines.append(
            f"  people detected: {sum(r.get('people') or 0 for r in now)} (summed over frames), "
            f"regions redacted: {sum(r.get('regions') or 0 for r in now)}, frames redacted whole: "
            f"{sum(r.get('frames_redacted_whole') or 0 for r in now)}"
        )
        retried = [r for r in now if (r.get("attempts") or 1) > 1]
        if retried:
            lines.append(f"  retried after a lost node or worker: {len(retried)} files")
    elif not failed and not missing:
        lines.append("  nothing to do: every file is done and checked")
    for r in failed[:20]:
        lines.append(f"  failed: {r['input']}: {r.get('error')}")
    if len(failed) > 20:
        lines.append(f"  ... and {len(failed) - 20} more failed (see the manifest)")
    lines.append(f"  manifest: {manifest.path}")
    return "\n".join(lines), not failed and not missing


def _init_ray(ns) -> bool:
    """Starts or joins Ray; True when a local instance was started here."""
    import logging

    import ray

    address = ns.address or os.environ.get("RAY_ADDRESS") or "local"
    kwargs = dict(address=address, log_to_driver=False, logging_level=logging.WARNING)
    if address == "local":
        kwargs.update(include_dashboard=False)
        if ns.num_cpus:
            kwargs["num_cpus"] = ns.num_cpus
    elif ns.num_cpus:
        raise UsageError("--num-cpus is for a local instance; a cluster has the CPUs it has")
    try:
        ray.init(**kwargs)
    except Exception as e:  # noqa: BLE001 - Ray raises many kinds; all mean the same here
        what = "start a local Ray instance" if address == "local" else f"join the Ray cluster at {address}"
        raise ToolError(f"cannot {what}: {type(e).__name__}: {one_line(str(e))[:300]}") from e
    return address == "local"


def run(ns, flags, cli: str) -> int:
    args = passthrough(ns, flags)
    device = (getattr(ns, "cli:device", None) or ["auto"])[-1]
    if device.startswith("cuda:"):
        raise UsageError(
            f"--device {device}: Ray gives each task its GPU (CUDA_VISIBLE_DEVICES); use "
            "--device cuda, with --files-per-gpu for how many files share one GPU"
        )
    if ns.files_per_gpu < 1 or ns.cpus_per_file <= 0 or ns.retries < 0 or ns.max_concurrent < 0:
        raise UsageError(
            "--files-per-gpu must be >= 1, --cpus-per-file > 0, --retries and --max-concurrent >= 0"
        )
    check_cli_args(cli, args)
    output_dir = os.path.abspath(ns.output)
    os.makedirs(output_dir, exist_ok=True)
    detections_dir = None
    if ns.detections_file:
        detections_dir = os.path.abspath(ns.detections_file)
        os.makedirs(detections_dir, exist_ok=True)
    jobs = expand(ns.inputs, output_dir)
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    manifest = Manifest(os.path.abspath(ns.manifest or os.path.join(output_dir, MANIFEST_NAME)))
    try:
        if manifest.skipped_lines:
            print(
                f"yoloanonymize-ray: warning: {manifest.skipped_lines} unreadable line(s) in "
                f"{manifest.path} skipped (a record cut short by a crash?)",
                file=sys.stderr,
            )
        recovered = 0 if ns.dry_run else recover(manifest, output_dir)
        if recovered:
            print(
                f"yoloanonymize-ray: {recovered} record(s) of files a previous run finished but "
                "did not get to write in the manifest (its driver stopped) were added to it",
                file=sys.stderr,
            )
        todo, earlier, refused = plan(jobs, manifest, ns.overwrite, ns.verify, run_id)
        if ns.dry_run:  # writes nothing
            for job in todo:
                print(f"would anonymize {job.input} -> {job.output}")
            for rec in refused:
                print(f"would refuse {rec['input']}: {rec['error']}")
            print(
                f"{len(todo)} to do, {len(earlier)} done earlier, {len(refused)} refused "
                "(existing outputs)"
            )
            return 0
        for rec in refused:
            manifest.append(rec)
        started = time.monotonic()
        interrupted = False
        if todo:
            settings = {
                "cli": cli,
                "args": args,
                "threads_given": bool(getattr(ns, "cli:threads", None)),
                "detections_dir": detections_dir,
                "overwrite": ns.overwrite,
                "run": run_id,
                "output_dir": output_dir,
                "hide_gpus": device != "cuda",
            }
            interrupted = _schedule(ns, todo, refused, settings, manifest)
        text, all_done = summary(jobs, manifest, run_id, time.monotonic() - started, len(earlier))
        if not ns.quiet:
            print(text, flush=True)
        for folder in (os.path.join(work_dir(output_dir), RECORDS_DIR), work_dir(output_dir)):
            try:
                os.rmdir(folder)  # only when empty
            except OSError:
                pass
        if interrupted:
            return EXIT_INTERRUPTED
        return 0 if all_done else EXIT_FAILED
    finally:
        manifest.close()


def _schedule(ns, todo, refused, settings, manifest) -> bool:
    """Runs the tasks; True when stopped by Ctrl-C."""
    import ray

    started_local = _init_ray(ns)
    total = len(todo) + len(refused)
    progress = Progress(total, sum(j.size for j in todo), quiet=ns.quiet)
    for rec in refused:
        progress.finished(rec, 0)
        progress.println(f"refused {rec['name']}: {rec['error']}", always=True)
    num_gpus = 1.0 / ns.files_per_gpu if settings["hide_gpus"] is False else 0
    remote = ray.remote(anonymize)
    resources = dict(
        num_cpus=ns.cpus_per_file, num_gpus=num_gpus, max_retries=ns.retries, retry_exceptions=False
    )
    if not ns.quiet:
        res = ray.cluster_resources()
        progress.println(
            f"yoloanonymize-ray: {len(todo)} files to do on {len(ray.nodes())} node(s) "
            f"({res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs); "
            f"{ns.cpus_per_file:g} CPU(s)" + (f" and {num_gpus:g} GPU" if num_gpus else "")
            + " per file"
        )
    queue = list(reversed(todo))
    pending = {}
    window = ns.max_concurrent or len(todo)
    finished = len(refused)
    interrupted = False

    def submit():
        while queue and len(pending) < window:
            job = queue.pop()
            ref = remote.options(name=f"yoloanonymize {job.name}", **resources).remote(dataclasses.asdict(job), settings)
            pending[ref] = job

    try:
        submit()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=REDRAW)
            progress.tick()
            for ref in ready:
                job = pending.pop(ref)
                try:
                    rec = ray.get(ref)
                except ray.exceptions.RayError as e:
                    rec = _lost_record(job, settings, e, ns.retries)
                manifest.append(rec)
                _forget_kept(settings["output_dir"], rec)
                finished += 1
                progress.finished(rec, job.size)
                progress.println(
                    _record_line(finished, total, rec), always=rec["status"] != "done"
                )
            submit()
    except KeyboardInterrupt:
        interrupted = True
        progress.println(
            f"yoloanonymize-ray: interrupted; cancelling {len(pending)} task(s) in flight "
            "(their files are not recorded, a rerun does them)",
            always=True,
        )
        for ref in pending:
            ray.cancel(ref, force=True)
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=1)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    rec = ray.get(ref)
                except ray.exceptions.RayError:
                    clear_attempts(settings["output_dir"], job.name)
                else:
                    manifest.append(rec)  # it had finished: keep what it did
                    _forget_kept(settings["output_dir"], rec)
        for job in pending.values():
            clear_attempts(settings["output_dir"], job.name)
    finally:
        progress.close()
        if started_local:
            ray.shutdown()
    return interrupted


REDRAW = 0.25


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--cli")
    known, _ = pre.parse_known_args(argv)
    try:
        cli = find_cli(known.cli)
        flags = cli_flags(cli)
    except ToolError as e:
        if any(a in ("-h", "--help") for a in argv):
            parser(None).print_help()
            print(f"\n(element flags not listed: {e})")
            return 0
        print(f"yoloanonymize-ray: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    ns = parser(flags).parse_intermixed_args(argv)
    try:
        return run(ns, flags, cli)
    except (UsageError, InputError) as e:
        print(f"yoloanonymize-ray: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (ManifestError, ToolError, OSError) as e:
        print(f"yoloanonymize-ray: error: {one_line(str(e))}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("yoloanonymize-ray: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
