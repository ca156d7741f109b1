"""upload_files against a real server: nginx WebDAV (scripts/nginx-webdav),
which stores every PUT under its root. Skipped without nginx."""

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
from pathlib import Path
from urllib.parse import quote

import _support
from bulkup import (CloudUploadSettings, DataType, RequestsSettings, UploadFailed,
                    upload_files)


def _tqdm_available():
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
SCRIPT = _support.SOURCE_DIR / "scripts" / "nginx-webdav"
REFUSED = "http://127.0.0.1:1"  # nothing listens on port 1


@unittest.skipUnless(os.access(NGINX, os.X_OK) and SCRIPT.exists(),
                     "needs nginx and scripts/nginx-webdav")
class UploadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="bulkup-py-"))
        cls.state = cls.tmp / "nginx"
        out = subprocess.run([str(SCRIPT), "start", str(cls.state), "--store",
                              str(cls.tmp / "store")],
                             check=True, capture_output=True, text=True).stdout
        env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        cls.url = env["NGINX_URL"]
        cls.store = cls.tmp / "store"
        # a tree: sample images, a name that needs quoting, a larger file
        cls.src = cls.tmp / "src"
        (cls.src / "sub dir").mkdir(parents=True)
        images = sorted((_support.SOURCE_DIR / "examples" / "images").glob("*.png"))
        for p in images:
            shutil.copy(p, cls.src / p.name)
        (cls.src / "sub dir" / "naïve #1.bin").write_bytes(os.urandom(70000))
        (cls.src / "large.bin").write_bytes(os.urandom(2_000_000))
        cls.files = sorted(p for p in cls.src.rglob("*") if p.is_file())

    @classmethod
    def tearDownClass(cls):
        subprocess.run([str(SCRIPT), "stop", str(cls.state)], check=False)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def pairs(self, prefix, files=None):
        return [(p, f"{self.url}/{prefix}/{quote(str(p.relative_to(self.src)))}")
                for p in (files or self.files)]

    def test_upload_tree(self):
        progress, items = [], []
        lock = threading.Lock()

        def on_item(r):
            with lock:
                items.append(r.index)

        result = upload_files(self.pairs("tree"), RequestsSettings(), CloudUploadSettings(),
                              workers=4, on_progress=progress.append,
                              progress_interval=0.01, on_item=on_item)
        self.assertTrue(result.ok, result)
        self.assertEqual(result.code, "OK")
        self.assertEqual(result.failures, [])
        self.assertEqual([r.index for r in result.successes], list(range(len(self.files))))
        self.assertEqual(sorted(items), list(range(len(self.files))))
        for r, p in zip(result.successes, self.files):
            self.assertEqual(r.path, str(p))
            self.assertEqual((r.status, r.error, r.attempts, r.message), ("succeeded", "none", 1, ""))
            self.assertIn(r.http_status, (201, 204))
            self.assertEqual(r.size, p.stat().st_size)
            stored = self.store / "tree" / p.relative_to(self.src)
            self.assertEqual(stored.read_bytes(), p.read_bytes(), stored)
        s = result.summary
        self.assertEqual((s.submitted, s.succeeded, s.failed, s.cancelled),
                         (len(self.files), len(self.files), 0, 0))
        self.assertEqual(s.bytes_succeeded, sum(p.stat().st_size for p in self.files))
        self.assertTrue(progress, "no progress callback")
        self.assertEqual(progress[-1].succeeded, len(self.files))
        result.raise_for_failures()  # does not raise

    def test_streamed_generator(self):
        n = 300
        src = self.files[0]

        def gen():
            for i in range(n):
                yield (str(src), f"{self.url}/gen/{i:04d}.png")

        result = upload_files(gen(), workers=3, queue_capacity=2)
        self.assertTrue(result.ok)
        self.assertEqual(len(result.successes), n)
        self.assertEqual(len(list((self.store / "gen").iterdir())), n)

    def test_failures_are_all_reported(self):
        good = self.files[0]
        items = [
            (good, f"{self.url}/mixed/ok.png"),
            (self.src / "no-such-file.png", f"{self.url}/mixed/missing.png"),
            (good, "ftp://127.0.0.1/x.png"),
            (good, f"{REFUSED}/x.png?X-Goog-Signature=s3cr3t&X-Goog-Credential=me"),
        ]
        result = upload_files(items, RequestsSettings(connection_retries=0), workers=2)
        self.assertFalse(result.ok)
        self.assertEqual(result.code, "EUPLOAD")
        self.assertEqual([r.index for r in result.successes], [0])
        f = {r.index: r for r in result.failures}
        self.assertEqual(sorted(f), [1, 2, 3])
        self.assertEqual((f[1].status, f[1].error, f[1].attempts), ("failed", "file", 0))
        self.assertEqual(f[1].path, str(self.src / "no-such-file.png"))
        self.assertEqual((f[2].error, f[2].attempts), ("url", 0))
        self.assertEqual((f[3].error, f[3].attempts, f[3].http_status), ("connect", 1, 0))
        self.assertTrue(f[3].message)
        # signed URLs never appear: not in the result, not in the report
        self.assertNotIn("s3cr3t", f[3].url)
        self.assertIn("REDACTED", f[3].url)
        self.assertNotIn("s3cr3t", result.report_json)
        with self.assertRaises(UploadFailed) as cm:
            result.raise_for_failures()
        self.assertIs(cm.exception.result, result)

    def test_connection_retries(self):
        result = upload_files([(self.files[0], f"{REFUSED}/x")],
                              RequestsSettings(connection_retries=2, backoff_factor=0))
        self.assertEqual(result.failures[0].attempts, 3)
        self.assertEqual(result.summary.retries, 2)

    def test_cloud_settings_override_and_zero_means_zero(self):
        # nginx answers 500 to a PUT below an existing file: transient
        f = self.files[0]
        upload_files([(f, f"{self.url}/blocker")])
        bad = [(f, f"{self.url}/blocker/under")]
        cases = [
            (RequestsSettings(max_retries=2, backoff_factor=0), None, 3),
            (RequestsSettings(max_retries=2, backoff_factor=0), CloudUploadSettings(max_retries=0), 1),
            (RequestsSettings(max_retries=0), CloudUploadSettings(max_retries=1, backoff_factor=0), 2),
        ]
        for req, cloud, attempts in cases:
            with self.subTest(requests=req, cloud=cloud):
                result = upload_files(bad, req, cloud)
                r = result.failures[0]
                self.assertEqual((r.error, r.http_status, r.attempts),
                                 ("http_status", 500, attempts))

    def test_allow_failures(self):
        good = (self.files[0], f"{self.url}/allow/ok.png")
        bad = (self.src / "missing", f"{self.url}/allow/missing.png")
        self.assertEqual(upload_files([good, bad]).code, "EUPLOAD")
        r = upload_files([good, bad], cloud_upload_settings=CloudUploadSettings(allow_failures=True))
        self.assertEqual((r.code, r.ok, len(r.successes), len(r.failures)), ("OK", True, 1, 1))
        r = upload_files([bad], cloud_upload_settings=CloudUploadSettings(allow_failures=True))
        self.assertEqual((r.code, r.ok), ("EALLFAILED", False))
        self.assertEqual(upload_files([]).code, "OK")

    def test_options(self):
        r = upload_files(self.pairs("opts", self.files[:2]), workers=1, data_type=DataType.IMAGE,
                         content_type="application/x-test", content_md5=True,
                         user_agent="bulkup-python-test")
        self.assertTrue(r.ok, r)
        with self.assertRaises(ValueError):
            upload_files([], workers=1025)
        with self.assertRaises(ValueError):
            upload_files([], workers="many")
        with self.assertRaises(ValueError):
            upload_files([], user_agent="two\nlines")

    def test_resumable_options(self):
        # nginx has no resumable protocol: the 2 MB file's session start is
        # refused and it goes with one PUT, stored whole.
        large = self.src / "large.bin"
        r = upload_files(self.pairs("resumable", [large]), workers=1,
                         resumable_threshold=1 << 20, resumable_chunk_size=256 << 10)
        self.assertTrue(r.ok, r)
        item = r.successes[0]
        self.assertEqual((item.resumable, item.attempts, item.requests), (False, 1, 2))
        self.assertEqual((self.store / "resumable" / "large.bin").read_bytes(),
                         large.read_bytes())
        r = upload_files(self.pairs("resumable-off", [large]), workers=1,
                         resumable_threshold=-1)
        self.assertEqual(r.successes[0].requests, 1)
        with self.assertRaises(ValueError):
            upload_files([], resumable_chunk_size=1000)

    def test_callback_exception_is_raised(self):
        def boom(_r):
            raise RuntimeError("from on_item")

        with self.assertRaisesRegex(RuntimeError, "from on_item"):
            upload_files(self.pairs("boom", self.files[:3]), on_item=boom)

    def run_child(self, pairs, progress_bar, tty):
        """upload_files(pairs, progress_bar=...) in a child Python whose
        standard error is a terminal (a pty) or a pipe: (stderr text, result)."""
        code = ("import json, sys, bulkup\n"
                "pairs = json.loads(sys.argv[1])\n"
                "r = bulkup.upload_files(pairs, workers=2, progress_bar=json.loads(sys.argv[2]))\n"
                "print(json.dumps([r.code, r.summary.succeeded]), file=sys.stdout)\n")
        env = dict(os.environ)
        if not _support.INSTALLED:
            env["PYTHONPATH"] = str(_support.PYTHON_DIR)
        argv = [sys.executable, "-c", code, json.dumps([[str(p), u] for p, u in pairs]),
                json.dumps(progress_bar)]
        if not tty:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
            self.assertEqual(done.returncode, 0, done.stderr)
            return done.stderr, json.loads(done.stdout)
        master, slave = pty.openpty()
        try:
            child = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=slave)
        finally:
            os.close(slave)
        chunks = []
        try:
            while True:  # until the child's end closes the pty (EIO)
                ready, _, _ = select.select([master], [], [], 60)
                self.assertTrue(ready, "the child wrote nothing for 60 s")
                try:
                    data = os.read(master, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
        finally:
            os.close(master)
        out = child.stdout.read().decode()
        child.stdout.close()
        self.assertEqual(child.wait(timeout=60), 0, b"".join(chunks).decode(errors="replace"))
        return b"".join(chunks).decode("utf-8", "replace"), json.loads(out)

    @unittest.skipUnless(_tqdm_available(), "needs tqdm (python3-tqdm)")
    def test_progress_bar_on_a_terminal(self):
        pairs = self.pairs("bar", self.files[:3])
        err, res = self.run_child(pairs, None, tty=True)
        self.assertEqual(res, ["OK", 3])
        self.assertIn("upload_files: 100%", err)
        self.assertIn("3/3", err)
        # not a terminal: no bar unless asked for
        err, res = self.run_child(pairs, None, tty=False)
        self.assertEqual((err, res), ("", ["OK", 3]))
        err, _ = self.run_child(pairs, True, tty=False)
        self.assertIn("3/3", err)
        err, _ = self.run_child(pairs, False, tty=True)
        self.assertNotIn("3/3", err)

    @unittest.skipUnless(os.access(_support.cli(), os.X_OK), "needs the bulkup program")
    def test_shards_are_the_clis(self):
        """upload_files(shard=(k, n)) takes exactly the pairs that
        `bulkup upload --manifest --shard k/n` takes from the same pairs."""
        d = self.tmp / "shard-src"
        d.mkdir()
        pairs = []
        for i in range(60):
            p = d / f"f{i:02d}.bin"
            p.write_bytes(b"x" * i)
            # the query (a signature) is not part of the key: it varies here
            pairs.append((p, f"{self.url}/shard/{i:02d}.bin?X-Goog-Signature=s{i}&v={i % 7}"))
        manifest = self.tmp / "shard.jsonl"
        manifest.write_text("".join(json.dumps({"path": str(p), "url": u}) + "\n"
                                    for p, u in pairs))
        n = 4
        seen = set()
        for k in range(n):
            with self.subTest(shard=k):
                r = upload_files(pairs, shard=(k, n), workers=2)
                self.assertTrue(r.ok, r)
                mine = {s.path for s in r.successes}
                self.assertEqual(json.loads(r.report_json)["shard"],
                                 {"index": k, "count": n, "key": "url"})
                results = self.tmp / f"shard-{k}.jsonl"
                done = subprocess.run([str(_support.cli()), "upload", "--manifest", str(manifest),
                                       "--shard", f"{k}/{n}", "--results", str(results)],
                                      capture_output=True, text=True, timeout=120)
                self.assertEqual(done.returncode, 0, done.stderr)
                cli = {json.loads(line)["path"] for line in results.read_text().splitlines()}
                self.assertEqual(mine, cli)
                self.assertTrue(mine, "an empty shard tests nothing")
                self.assertFalse(mine & seen, "a pair in two shards")
                seen |= mine
        self.assertEqual(seen, {str(p) for p, _ in pairs})
        with self.assertRaises(ValueError):
            upload_files(pairs, shard=(4, 4))

    def test_bad_items(self):
        with self.assertRaises(ValueError):
            upload_files([(self.files[0],)])  # not a pair
        # the run before the bad item is cancelled, and nothing leaks or hangs
        with self.assertRaises(TypeError):
            upload_files([(self.files[0], f"{self.url}/x"), (self.files[0], None)])


if __name__ == "__main__":
    unittest.main()
