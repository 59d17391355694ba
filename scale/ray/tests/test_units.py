"""Tests of the parts that need no Ray: inputs, manifest, the CLI's summary, the rename."""

import json
import os
import tempfile
import unittest

from yoloanonymize_ray.inputs import InputError, expand
from yoloanonymize_ray.manifest import Manifest, ManifestError
from yoloanonymize_ray.media import ToolError, parse_summary
from yoloanonymize_ray.cli import recover
from yoloanonymize_ray.task import clear_attempts, keep_record, key_of, place, record_path, work_dir

SUMMARY = """Anonymized 10 frames in 7.8 s (1.3 frames/s)
  people detected:        17 (summed over frames)
  regions redacted:       26
  frames redacted whole:  1 (could not be analysed)
  output:                 /tmp/c0.mp4
"""


def touch(path, data=b"x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Inputs(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name
        touch(f"{self.root}/in/a.mp4")
        touch(f"{self.root}/in/sub/b.mkv")
        touch(f"{self.root}/in/notes.txt")
        touch(f"{self.root}/in/.hidden/c.mp4")
        touch(f"{self.root}/other/a.avi")

    def tearDown(self):
        self.tmp.cleanup()

    def test_folder_is_walked_recursively_with_relative_names(self):
        jobs = expand([f"{self.root}/in"], f"{self.root}/out")
        self.assertEqual([j.name for j in jobs], ["a.mp4", "sub/b.mp4"])
        self.assertEqual(jobs[1].output, f"{self.root}/out/sub/b.mp4")
        self.assertEqual(jobs[0].size, 1)

    def test_output_folder_inside_the_input_is_not_an_input(self):
        touch(f"{self.root}/in/anon/a.mp4")
        jobs = expand([f"{self.root}/in"], f"{self.root}/in/anon")
        self.assertEqual([j.name for j in jobs], ["a.mp4", "sub/b.mp4"])

    def test_glob_and_collisions(self):
        jobs = expand([f"{self.root}/in/**/*.mkv"], f"{self.root}/out")
        self.assertEqual([j.name for j in jobs], ["b.mp4"])
        with self.assertRaisesRegex(InputError, "would both be written to .*a.mp4"):
            expand([f"{self.root}/in/a.mp4", f"{self.root}/other/a.avi"], f"{self.root}/out")
        with self.assertRaisesRegex(InputError, "matches no file"):
            expand([f"{self.root}/in/*.webm"], f"{self.root}/out")
        with self.assertRaisesRegex(InputError, "does not exist"):
            expand([f"{self.root}/missing.mp4"], f"{self.root}/out")

    def test_same_input_twice_is_one_job(self):
        jobs = expand([f"{self.root}/in/a.mp4", f"{self.root}/in/../in/a.mp4"], f"{self.root}/o")
        self.assertEqual(len(jobs), 1)


class ManifestFile(unittest.TestCase):
    def test_append_read_and_a_line_cut_short(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/m.jsonl"
            m = Manifest(path)
            m.append({"name": "a.mp4", "input": "/a", "status": "failed"})
            m.append({"name": "a.mp4", "input": "/a", "status": "done"})
            m.close()
            with open(path, "ab") as f:
                f.write(b'{"name": "b.mp4", "inp')  # a crash in the middle of a record
            before = read(path)
            m = Manifest(path)
            self.assertEqual(m.skipped_lines, 1)
            self.assertEqual(m.latest()[("a.mp4", "/a")]["status"], "done")
            m.append({"name": "b.mp4", "input": "/b", "status": "done"})
            m.close()
            after = read(path)
            self.assertTrue(after.startswith(before), "the manifest was rewritten")
            lines = after.decode().splitlines()
            self.assertEqual(json.loads(lines[-1])["name"], "b.mp4")
            self.assertEqual(list(json.loads(lines[0]))[:4], ["input", "output", "name", "status"])

    def test_second_writer_is_refused(self):
        with tempfile.TemporaryDirectory() as tmp:
            first = Manifest(f"{tmp}/m.jsonl")
            with self.assertRaisesRegex(ManifestError, "locked"):
                Manifest(f"{tmp}/m.jsonl")
            first.close()
            Manifest(f"{tmp}/m.jsonl").close()


class DriverLost(unittest.TestCase):
    def test_records_left_by_tasks_are_added_once(self):
        with tempfile.TemporaryDirectory() as tmp:
            rec = {"name": "a.mp4", "input": "/in/a.mp4", "status": "done", "run": "r1",
                   "finished": "t1"}
            keep_record(tmp, rec)
            m = Manifest(f"{tmp}/m.jsonl")
            self.assertEqual(recover(m, tmp), 1)
            self.assertTrue(m.latest()[("a.mp4", "/in/a.mp4")]["recovered"])
            self.assertFalse(os.path.exists(record_path(tmp, "a.mp4")))
            keep_record(tmp, rec)  # the driver appended it, then died before removing the copy
            self.assertEqual(recover(m, tmp), 0)
            self.assertEqual(len(m.records), 1)
            m.close()


class Attempts(unittest.TestCase):
    def test_a_third_attempt_counts_both_lost_ones(self):
        """Attempt 1 and 2 lost (their folders left behind, as by a dead node); attempt 3 runs
        a CLI that fails at once, and its record counts 3 attempts with both lost ones."""
        from yoloanonymize_ray.task import anonymize

        with tempfile.TemporaryDirectory() as tmp:
            first = {"node": "n1", "host": "h", "started": 1.0, "run": "r"}
            second = dict(first, node="n2", started=2.0, lost=[first])
            touch(f"{work_dir(tmp)}/{key_of('a.mp4')}.2222/attempt.json", json.dumps(second).encode())
            job = {"input": f"{tmp}/a.mp4", "name": "a.mp4", "output": f"{tmp}/a.mp4", "size": 1}
            settings = {"cli": "/bin/false", "args": [], "threads_given": True, "overwrite": False,
                        "run": "r", "output_dir": tmp, "hide_gpus": True}
            rec = anonymize(job, settings)
            self.assertEqual(rec["status"], "failed")
            self.assertEqual(rec["attempts"], 3)
            self.assertEqual([e["node"] for e in rec["lost_attempts"]], ["n1", "n2"])
            self.assertEqual(os.listdir(work_dir(tmp)), [], "attempt folders left")


class CliSummary(unittest.TestCase):
    def test_reads_the_counts(self):
        s = parse_summary(SUMMARY)
        self.assertEqual((s.frames, s.people, s.regions, s.redacted_whole), (10, 17, 26, 1))
        self.assertEqual(s.not_redacted, 0)

    def test_missing_summary_is_an_error(self):
        with self.assertRaisesRegex(ToolError, "no summary line"):
            parse_summary("")


class Place(unittest.TestCase):
    def test_never_replaces_an_existing_file_unless_overwrite(self):
        with tempfile.TemporaryDirectory() as tmp:
            touch(f"{tmp}/w/new.mp4", b"new")
            touch(f"{tmp}/out.mp4", b"precious")
            with self.assertRaisesRegex(ToolError, "left as it is"):
                place(f"{tmp}/w/new.mp4", f"{tmp}/out.mp4", overwrite=False)
            self.assertEqual(read(f"{tmp}/out.mp4"), b"precious")
            place(f"{tmp}/w/new.mp4", f"{tmp}/out.mp4", overwrite=True)
            self.assertEqual(read(f"{tmp}/out.mp4"), b"new")
            touch(f"{tmp}/w/b.mp4", b"b")
            place(f"{tmp}/w/b.mp4", f"{tmp}/sub/b.mp4", overwrite=False)
            self.assertEqual(read(f"{tmp}/sub/b.mp4"), b"b")
            self.assertFalse(os.path.exists(f"{tmp}/w/b.mp4"))

    def test_a_fifo_is_not_replaced(self):
        with tempfile.TemporaryDirectory() as tmp:
            touch(f"{tmp}/w/new.mp4", b"new")
            os.mkfifo(f"{tmp}/out.mp4")
            with self.assertRaisesRegex(ToolError, "not a regular file"):
                place(f"{tmp}/w/new.mp4", f"{tmp}/out.mp4", overwrite=True)

    def test_clear_attempts_removes_only_that_files_attempts(self):
        with tempfile.TemporaryDirectory() as tmp:
            mine = f"{work_dir(tmp)}/{key_of('a.mp4')}.0123"
            other = f"{work_dir(tmp)}/{key_of('b.mp4')}.4567"
            touch(f"{mine}/attempt.json", json.dumps({"node": "n1", "run": "r"}).encode())
            touch(f"{mine}/a.mp4", b"partial")
            touch(f"{other}/b.mp4", b"partial")
            found = clear_attempts(tmp, "a.mp4")
            self.assertEqual([f["node"] for f in found], ["n1"])
            self.assertFalse(os.path.exists(mine))
            self.assertTrue(os.path.exists(f"{other}/b.mp4"))


if __name__ == "__main__":
    unittest.main()
