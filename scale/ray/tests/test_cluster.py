"""yoloanonymize-ray on a real Ray cluster on this machine: `ray.cluster_utils.Cluster` with a head
(no CPUs, so that no task runs on the node the driver is attached to) and two worker nodes of one
CPU each, started once for the module. The inputs are 8 short clips cut from
samples/vtest-short.mp4 without re-encoding (4 of 10 frames, 3 of 20), one of them corrupt (cut
short: no moov atom).

The runner is run as a command (`python -m yoloanonymize_ray ... --address <the cluster>`), with
yoloanonymize-cli from $YOLOANONYMIZE_CLI (scripts/test-ray.sh sets it to target/release) and
`--device cpu --input-size 320`, which keep the model's start-up and work small: these tests are
about the runner, not about the model.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from ray.cluster_utils import Cluster

from yoloanonymize_ray.cli import MANIFEST_NAME
from yoloanonymize_ray.inputs import WORK_DIR_NAME
from yoloanonymize_ray.media import count_frames

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SAMPLE = os.path.join(REPO, "samples", "vtest-short.mp4")
FLAGS = ["--device", "cpu", "--input-size", "320"]
CORRUPT = "corrupt-07.mp4"
RUN_TIMEOUT = 600

TMP = CLIPS = CLUSTER = None
WORKERS = []
EXPECTED = {}  # good clip -> frames it decodes to


def log(text):
    print(text, file=sys.stderr, flush=True)


def split(folder, seconds):
    """The sample cut at its keyframes into clips of about `seconds` (H.264 copied as it is)."""
    # Making the fixture is GStreamer's work, not the runner's: splitmuxsink hung once (2026-12-01,
    # load 0, after 4 minutes), so a run that takes over a minute is retried once, from scratch.
    for attempt in (1, 2):
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        try:
            _split_once(folder, seconds)
            return folder
        except subprocess.TimeoutExpired:
            if attempt == 2:
                raise
    return folder


def _split_once(folder, seconds):
    subprocess.run(
        [
            "gst-launch-1.0",
            "-q",
            "filesrc",
            f"location={SAMPLE}",
            "!",
            "qtdemux",
            "!",
            "h264parse",
            "!",
            "splitmuxsink",
            f"location={folder}/%02d.mp4",
            f"max-size-time={int(seconds * 1e9)}",
            "muxer-factory=mp4mux",
        ],
        check=True,
        timeout=60,
    )


def setUpModule():
    global TMP, CLIPS, CLUSTER
    TMP = tempfile.mkdtemp(prefix="yoloanonymize-ray-test-")
    short = split(os.path.join(TMP, "split-1s"), 1.0)  # 10 clips of 10 frames
    long = split(os.path.join(TMP, "split-2.5s"), 2.5)  # 5 clips of 20 frames
    CLIPS = os.path.join(TMP, "clips")
    os.makedirs(CLIPS)
    picks = [(short, i) for i in range(4)] + [(long, i) for i in (2, 3, 4)]
    for n, (folder, i) in enumerate(picks):
        shutil.copy(f"{folder}/{i:02d}.mp4", f"{CLIPS}/good-{n:02d}.mp4")
    with open(f"{short}/05.mp4", "rb") as f:
        data = f.read()
    with open(f"{CLIPS}/{CORRUPT}", "wb") as f:
        f.write(data[: len(data) // 2])
    for name in sorted(os.listdir(CLIPS)):
        if name != CORRUPT:
            EXPECTED[name] = count_frames(f"{CLIPS}/{name}")
    log(f"clips: {EXPECTED} and {CORRUPT} (cut short)")
    started = time.monotonic()
    CLUSTER = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    WORKERS.extend(CLUSTER.add_node(num_cpus=1) for _ in range(2))
    CLUSTER.wait_for_nodes()
    log(
        f"cluster at {CLUSTER.address}: head (0 CPUs) + workers "
        + ", ".join(w.node_id[:12] for w in WORKERS)
        + f" (1 CPU each), up in {time.monotonic() - started:.1f} s"
    )


def tearDownModule():
    if CLUSTER is not None:
        CLUSTER.shutdown()
    if TMP:
        shutil.rmtree(TMP, ignore_errors=True)


def runner(*args):
    return [
        sys.executable,
        "-m",
        "yoloanonymize_ray",
        *args,
        "--address",
        CLUSTER.address,
        *FLAGS,
    ]


def run(*args):
    started = time.monotonic()
    proc = subprocess.run(runner(*args), capture_output=True, text=True, timeout=RUN_TIMEOUT)
    log(f"$ yoloanonymize-ray {' '.join(args)}  (exit {proc.returncode}, {time.monotonic() - started:.1f} s)")
    log(proc.stderr + proc.stdout)
    return proc


def processes_using(path):
    """Command lines of the processes whose arguments name `path` (a CLI left running)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if path + "/" in cmd and "yoloanonymize-cli" in cmd:
            found.append(f"{pid}: {cmd}")
    return found


def records(out):
    with open(os.path.join(out, MANIFEST_NAME)) as f:
        return [json.loads(line) for line in f if line.strip()]


class Archive(unittest.TestCase):
    def assert_outputs(self, out):
        """Exactly the 7 good outputs and the manifest, each output with its input's frames."""
        names = sorted(os.listdir(out))
        self.assertEqual(names, sorted(list(EXPECTED) + [MANIFEST_NAME]), "stray or missing files")
        self.assertFalse(os.path.exists(os.path.join(out, WORK_DIR_NAME)))
        for name, frames in EXPECTED.items():
            self.assertEqual(count_frames(os.path.join(out, name)), frames, name)

    def assert_corrupt_failed(self, rec):
        self.assertEqual(rec["status"], "failed")
        self.assertIn("no playable streams", rec["error"])
        self.assertNotIn("\n", rec["error"])

    def test_1_folder_with_a_corrupt_file(self):
        out = os.path.join(TMP, "out")
        proc = run(CLIPS, "--output", out)
        self.assertEqual(proc.returncode, 1, "exit status must say a file failed")
        self.assert_outputs(out)
        recs = records(out)
        self.assertEqual(sorted(r["name"] for r in recs), sorted(list(EXPECTED) + [CORRUPT]))
        for r in recs:
            if r["name"] == CORRUPT:
                self.assert_corrupt_failed(r)
                continue
            self.assertEqual(r["status"], "done", r)
            self.assertEqual((r["frames_in"], r["frames_out"]), (EXPECTED[r["name"]],) * 2)
            self.assertEqual(r["attempts"], 1)
            self.assertIn(r["node"], [w.node_id for w in WORKERS])
            self.assertGreater(r["people"], 0)
            self.assertEqual(r["output_bytes"], os.path.getsize(r["output"]))
        self.assertIn("7 done (7 now, 0 earlier), 1 failed", proc.stdout)
        self.assertIn(f"failed: {CLIPS}/{CORRUPT}: This file contains no playable streams", proc.stdout)

    def test_2_rerun_does_no_work(self):
        out = os.path.join(TMP, "out")
        manifest = os.path.join(out, MANIFEST_NAME)
        with open(manifest, "rb") as f:
            before = f.read()
        mtimes = {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in EXPECTED}
        proc = run(os.path.join(CLIPS, "good-*.mp4"), "--output", out)
        self.assertEqual(proc.returncode, 0)
        self.assertIn("7 done (0 now, 7 earlier), 0 failed", proc.stdout)
        self.assertIn("nothing to do: every file is done and checked", proc.stdout)
        with open(manifest, "rb") as f:
            self.assertEqual(f.read(), before, "a rerun with nothing to do changed the manifest")
        self.assertEqual(mtimes, {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in EXPECTED})
        # Over the whole folder: only the file that failed is tried again (and fails again).
        proc = run(CLIPS, "--output", out)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("7 done (0 now, 7 earlier), 1 failed", proc.stdout)
        recs = records(out)
        self.assertEqual(len(recs), 9)
        self.assertEqual(recs[-1]["name"], CORRUPT)
        self.assert_corrupt_failed(recs[-1])
        self.assert_outputs(out)

    def test_3_node_lost_while_running(self):
        out = os.path.join(TMP, "out-node-lost")
        victim, survivor = WORKERS
        proc = subprocess.Popen(
            runner(CLIPS, "--output", out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            seen, folder = self.wait_for_attempt_on(victim.node_id, out, proc)
            # Frozen, so that it cannot finish before the node is gone (a 10-frame clip took 0.9 s
            # on a fast host, less than the removal); the node's death still kills it (the CLI
            # gets SIGKILL with PR_SET_PDEATHSIG, which a stopped process cannot hold off).
            frozen = [int(c.split(":", 1)[0]) for c in processes_using(folder)]
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            log(f"{seen} is being written on node {victim.node_id[:12]} (CLI {frozen} stopped); removing that node")
            CLUSTER.remove_node(victim, allow_graceful=False)
            WORKERS.remove(victim)
            log(f"node {victim.node_id[:12]} removed at {time.strftime('%H:%M:%S')}")
            stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        log(f"$ yoloanonymize-ray {CLIPS} --output {out}  (exit {proc.returncode})")
        log(stderr + stdout)
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(processes_using(out), [], "a CLI outlived its node")
        self.assert_outputs(out)
        recs = records(out)
        done = [r for r in recs if r["status"] == "done"]
        self.assertEqual(sorted(r["name"] for r in done), sorted(EXPECTED), "each good file once")
        self.assertEqual(len(recs), 8)
        retried = [r for r in recs if r.get("attempts", 1) > 1]
        self.assertTrue(retried, "no record shows a retry")
        for r in retried:
            log("manifest record of a retried file: " + json.dumps(r))
        for r in retried:
            self.assertEqual(r["status"], "failed" if r["name"] == CORRUPT else "done", r)
            self.assertEqual(r["node"], survivor.node_id)
            self.assertEqual(r["lost_attempts"][0]["node"], victim.node_id)
        self.assertIn(seen, [r["name"] for r in retried], "the file lost with the node was not retried")
        self.assertIn("retried after attempt 1 lost on node " + victim.node_id[:12], stderr)
        for r in recs:
            if r["name"] == CORRUPT:
                self.assert_corrupt_failed(r)

    def wait_for_attempt_on(self, node_id, out, proc, timeout=300):
        """The name and attempt folder of a good file being written on `node_id` (its attempt
        folder holds a partial output, beside attempt.json, and its CLI runs), once there is one."""
        work = os.path.join(out, WORK_DIR_NAME)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.assertIsNone(proc.poll(), "the run ended before a file was seen on the node")
            try:
                entries = os.listdir(work)
            except FileNotFoundError:
                entries = []
            for entry in entries:
                folder = os.path.join(work, entry)
                try:
                    with open(os.path.join(folder, "attempt.json")) as f:
                        info = json.load(f)
                    partial = [
                        (n, os.path.getsize(os.path.join(folder, n)))
                        for n in os.listdir(folder)
                        if n != "attempt.json"
                    ]
                except (OSError, ValueError):
                    continue
                if (
                    info.get("node") == node_id
                    and info["name"] != CORRUPT
                    and partial
                    and processes_using(folder)
                ):
                    log(f"partial files of {info['name']} on that node: {partial}")
                    return info["name"], folder
            time.sleep(0.02)
        self.fail(f"no good file was being written on node {node_id} within {timeout} s")


if __name__ == "__main__":
    unittest.main()
