"""The Encord SDK's calls (EncordUserClient, Dataset) on bulkup's C client:
their signatures against SDK v0.1.190's, the key's sources and the SDK's
messages, then the four upload calls against `bulkup serve` (a real server
on a loopback socket, speaking ENCORD_WIRE.md), with the stored bytes
checked."""

import inspect
import os
import re
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import unittest
from pathlib import Path
from types import SimpleNamespace
from unittest import mock
from uuid import UUID

import _support
import bulkup
from bulkup import (CloudUploadSettings, EncordUserClient, RequestsSettings, exceptions)

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
except ImportError:  # pragma: no cover - Debian: python3-cryptography
    serialization = None

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
NO_KEY_ENV = {"ENCORD_SSH_KEY": None, "ENCORD_SSH_KEY_FILE": None}


def env_without(**changes):
    """mock.patch.dict for os.environ with keys removed (None) or set."""
    env = {k: v for k, v in os.environ.items() if k not in changes}
    env.update({k: v for k, v in changes.items() if v is not None})
    return mock.patch.dict(os.environ, env, clear=True)


def new_key(password=None):
    """(private key text, public key hex, authorized_keys line): OpenSSH
    format, or encrypted PKCS#8 PEM with a password (an encrypted OpenSSH
    key would need the bcrypt module)."""
    k = ed25519.Ed25519PrivateKey.generate()
    if password:
        text = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.BestAvailableEncryption(password.encode())).decode()
    else:
        text = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                               serialization.NoEncryption()).decode()
    pub = k.public_key()
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    line = pub.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode()
    return text, raw.hex(), line + " test-key\n"


@unittest.skipIf(serialization is None, "needs python3-cryptography")
class SignatureTest(unittest.TestCase):
    """Names, order, kinds and defaults of the SDK's parameters
    (encord/user_client.py, encord/dataset.py at v0.1.190); bulkup's extras
    only after them, keyword-only."""

    def params(self, fn):
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    def assertStartsWithSdk(self, fn, sdk):
        got = self.params(fn)
        self.assertEqual([(n, k) for n, k, _ in got[:len(sdk)]], [(n, k) for n, k, _ in sdk])
        for (name, _, default), (_, _, want) in zip(got, sdk):
            self.assertEqual(default, want, name)
        for name, kind, default in got[len(sdk):]:
            self.assertIn(kind, (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD),
                          f"extra parameter {name} must be keyword-only")

    def test_create_with_ssh_private_key(self):
        P, K = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.VAR_KEYWORD
        E = inspect.Parameter.empty
        self.assertStartsWithSdk(EncordUserClient.create_with_ssh_private_key, [
            ("ssh_private_key", P, None), ("password", P, None),
            ("requests_settings", P, RequestsSettings()), ("ssh_private_key_path", P, None),
            ("domain", P, "https://api.encord.com"), ("kwargs", K, E)])

    def test_dataset_calls(self):
        P, KO = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY
        E = inspect.Parameter.empty
        D = bulkup.Dataset
        cus = CloudUploadSettings()
        self.assertStartsWithSdk(D.create_image_group, [
            ("self", P, E), ("file_paths", P, E), ("max_workers", P, None),
            ("cloud_upload_settings", P, cus), ("title", P, None),
            ("create_video", KO, True), ("folder", KO, None)])
        self.assertStartsWithSdk(D.create_dicom_series, [
            ("self", P, E), ("file_paths", P, E), ("cloud_upload_settings", P, cus),
            ("title", P, None), ("folder", P, None)])
        self.assertStartsWithSdk(D.upload_video, [
            ("self", P, E), ("file_path", P, E), ("cloud_upload_settings", P, cus),
            ("title", P, None), ("folder", P, None)])
        self.assertStartsWithSdk(D.upload_image, [
            ("self", P, E), ("file_path", P, E), ("title", P, None),
            ("cloud_upload_settings", P, cus), ("folder", P, None)])

    def test_exceptions_are_the_sdks(self):
        for name in ("EncordException", "AuthenticationError", "AuthorisationError",
                     "ResourceNotFoundError", "CloudUploadError", "InvalidArgumentsError",
                     "UploadOperationNotSupportedError", "SshKeyNotFound", "TimeOutError"):
            cls = getattr(exceptions, name)
            self.assertTrue(issubclass(cls, exceptions.EncordException), name)
        e = exceptions.from_api_refusal("the API refused the request: AUTHENTICATION_ERROR: x")
        self.assertIsInstance(e, exceptions.AuthenticationError)
        self.assertEqual(e.message, "You are not authenticated to access the Encord platform.")
        e = exceptions.from_api_refusal("the API answered HTTP 403: no")
        self.assertIsInstance(e, exceptions.AuthorisationError)
        e = exceptions.from_api_refusal("something odd")
        self.assertIsInstance(e, exceptions.GenericServerError)


@unittest.skipIf(serialization is None, "needs python3-cryptography")
class KeyTest(unittest.TestCase):
    """Where the key comes from, as in the SDK (configs.py:189-222,
    user_client.py:405-415), and the key id derived from it. No network."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="bulkup-key-"))
        cls.key, cls.pubhex, _ = new_key()
        cls.key_file = cls.tmp / "key"
        cls.key_file.write_text(cls.key)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_the_arguments(self):
        with env_without(**NO_KEY_ENV):
            with EncordUserClient.create_with_ssh_private_key(self.key) as c:
                self.assertEqual(c.key_id, self.pubhex)
            c = EncordUserClient.create_with_ssh_private_key(ssh_private_key_path=str(self.key_file))
            self.assertEqual(c.key_id, self.pubhex)
            self.assertEqual(c.domain, "https://api.encord.com")
            c.close()
            with self.assertRaisesRegex(ValueError, "closed"):
                c.key_id

    def test_the_environment(self):
        with env_without(ENCORD_SSH_KEY=self.key, ENCORD_SSH_KEY_FILE=None):
            self.assertEqual(EncordUserClient.create_with_ssh_private_key().key_id, self.pubhex)
        # the file variable wins over the text one, as in the SDK
        other, _, _ = new_key()
        with env_without(ENCORD_SSH_KEY=other, ENCORD_SSH_KEY_FILE=str(self.key_file)):
            self.assertEqual(EncordUserClient.create_with_ssh_private_key().key_id, self.pubhex)

    def test_the_sdks_messages(self):
        with env_without(**NO_KEY_ENV):
            with self.assertRaises(exceptions.ResourceNotFoundError) as cm:
                EncordUserClient.create_with_ssh_private_key()
            self.assertEqual(cm.exception.message,
                             "Neither of the environment variables ENCORD_SSH_KEY_FILE or "
                             "ENCORD_SSH_KEY were found. Failed to load private ssh key.")
        with env_without(ENCORD_SSH_KEY="", ENCORD_SSH_KEY_FILE=None):
            with self.assertRaises(exceptions.ResourceNotFoundError) as cm:
                EncordUserClient.create_with_ssh_private_key()
            self.assertEqual(cm.exception.message, "Environment variable ENCORD_SSH_KEY found "
                             "but is empty. Failed to load private ssh key.")
        missing = self.tmp / "nope"
        with env_without(ENCORD_SSH_KEY=None, ENCORD_SSH_KEY_FILE=str(missing)):
            with self.assertRaises(exceptions.ResourceNotFoundError) as cm:
                EncordUserClient.create_with_ssh_private_key()
            self.assertEqual(cm.exception.message,
                             f"SSH key file `{missing}` which is defined in the "
                             "`ENCORD_SSH_KEY_FILE` environment variable does not seem to "
                             "exist. Failed to load private ssh key.")

    def test_a_password(self):
        text, pubhex, _ = new_key(password="s3cret")
        with env_without(**NO_KEY_ENV):
            c = EncordUserClient.create_with_ssh_private_key(text, password="s3cret")
            self.assertEqual(c.key_id, pubhex)
            with self.assertRaises(ValueError):
                EncordUserClient.create_with_ssh_private_key(text)  # encrypted, no password

    def test_not_an_ed25519_key(self):
        k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode()
        with self.assertRaises(ValueError):
            EncordUserClient.create_with_ssh_private_key(pem)
        with self.assertRaises(ValueError):
            EncordUserClient.create_with_ssh_private_key("not a key at all")
        with self.assertRaises(TypeError):
            EncordUserClient.create_with_ssh_private_key(self.key, no_such_option=1)


@unittest.skipIf(serialization is None, "needs python3-cryptography")
class InterruptTest(unittest.TestCase):
    def test_ctrl_c_cancels_the_call(self):
        """SIGINT while a call waits for the API: KeyboardInterrupt at once
        (bulkup_api_cancel), the client closed, the process intact. The API
        here accepts and reads the request but never answers."""
        image = str(sorted((_support.SOURCE_DIR / "examples" / "images").glob("*.png"))[0])
        cases = [
            ("client.get_dataset('6a8f3c2e-1d4b-4e59-9a7c-0b1e2f3a4d5c')", b"POST /public "),
            # (a Dataset made by hand: its get_dataset would need an answer)
            ("bulkup.Dataset(client, '6a8f3c2e-1d4b-4e59-9a7c-0b1e2f3a4d5c', '', '', '', None)"
             f".create_image_group([{image!r}])", b"GET /v2/public/presigned-urls?"),
        ]
        for call, first_line in cases:
            with self.subTest(call=call):
                self.interrupt(call, first_line)

    def interrupt(self, call, first_line):
        key, _, _ = new_key()
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        code = ("import sys, bulkup\n"
                "client = bulkup.EncordUserClient.create_with_ssh_private_key(sys.argv[1], "
                "domain=sys.argv[2])\n"
                "try:\n"
                f"    {call}\n"
                "    print('returned')\n"
                "except KeyboardInterrupt:\n"
                "    print('interrupted', client)\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENCORD_")}
        if not _support.INSTALLED:
            env["PYTHONPATH"] = str(_support.PYTHON_DIR)
        child = subprocess.Popen([sys.executable, "-c", code, key,
                                  f"http://127.0.0.1:{srv.getsockname()[1]}"],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        conn = None
        try:
            srv.settimeout(60)
            conn, _ = srv.accept()
            conn.settimeout(60)
            got = b""
            while b"\r\n\r\n" not in got:  # the request is in: the call is under way
                data = conn.recv(65536)
                self.assertTrue(data, "the client closed before sending its request")
                got += data
            self.assertTrue(got.startswith(first_line), got[:80])
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
            if conn is not None:
                conn.close()
            srv.close()
        self.assertEqual(child.returncode, 0, err)
        self.assertEqual(out.strip(), "interrupted <EncordUserClient closed>", err)


class Serve:
    """`bulkup serve` on a free loopback port, stopped by pid."""

    def __init__(self, root: Path, authorized_keys: Path, *args: str):
        self.root = root
        log = open(root.parent / "serve.log", "ab")  # the server's stderr
        self.proc = subprocess.Popen(
            [str(_support.cli()), "serve", "--root", str(root), "--authorized-keys",
             str(authorized_keys), "--job-delay", "0.05", *args],
            stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()  # the child has its own copy
        self.url = None
        self.dataset = None
        self.lines = []
        lines: "queue.Queue[str]" = queue.Queue()

        def reader():  # readline() blocks: a thread, so that the wait is bounded
            for line in self.proc.stdout:
                lines.put(line)
            lines.put("")

        threading.Thread(target=reader, daemon=True).start()
        while self.url is None or self.dataset is None:
            try:
                line = lines.get(timeout=30)
            except queue.Empty:
                line = ""
            if not line:
                self.stop()
                raise RuntimeError("bulkup serve did not start: " + "".join(self.lines)
                                   + (root.parent / "serve.log").read_text(errors="replace"))
            self.lines.append(line)
            m = re.match(r"listening on (\S+)", line)
            if m:
                self.url = m.group(1)
            m = re.match(r"dataset: (\S+)", line)
            if m:
                self.dataset = m.group(1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()

    def stored(self):
        """{bytes: count} of every object the server stored."""
        out = {}
        for p in (self.root / "uploads").rglob("*"):
            if p.is_file():
                b = p.read_bytes()
                out[b] = out.get(b, 0) + 1
        return out


@unittest.skipIf(serialization is None, "needs python3-cryptography")
@unittest.skipUnless(os.access(_support.cli(), os.X_OK), "needs the bulkup program")
class ServeTest(unittest.TestCase):
    """The four calls against `bulkup serve`."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="bulkup-encord-"))
        cls.key, cls.pubhex, line = new_key()
        cls.keys = cls.tmp / "authorized_keys"
        cls.keys.write_text(line)
        cls.server = Serve(cls.tmp / "root", cls.keys)
        cls.client = EncordUserClient.create_with_ssh_private_key(
            cls.key, domain=cls.server.url,
            requests_settings=RequestsSettings(max_retries=1, backoff_factor=0))
        cls.images = sorted((_support.SOURCE_DIR / "examples" / "images").glob("*.png"))
        cls.video = cls.tmp / "clip.mp4"
        cls.video.write_bytes(os.urandom(300_000))
        cls.dicoms = []
        for i in range(3):
            p = cls.tmp / f"slice{i}.dcm"
            p.write_bytes(b"\0" * 128 + b"DICM" + os.urandom(1000 + i))
            cls.dicoms.append(p)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def dataset(self):
        return self.client.get_dataset(self.server.dataset)

    def assertStored(self, files):
        stored = self.server.stored()
        for f in files:
            self.assertIn(Path(f).read_bytes(), stored, f"{f} not stored byte for byte")

    def test_get_dataset(self):
        ds = self.dataset()
        self.assertEqual(ds.dataset_hash, self.server.dataset)
        self.assertIsInstance(ds.title, str)
        ds2 = self.client.get_dataset(UUID(self.server.dataset))
        self.assertEqual(ds2.dataset_hash, self.server.dataset)
        with self.assertRaises(exceptions.EncordException) as cm:
            self.client.get_dataset("00000000-0000-4000-8000-000000000000")
        self.assertIsInstance(cm.exception, (exceptions.ResourceNotFoundError,
                                             exceptions.AuthorisationError))

    def test_create_image_group(self):
        progress = []
        groups = self.dataset().create_image_group(
            [str(p) for p in self.images], title="holiday", on_progress=progress.append)
        self.assertIsInstance(groups, list)
        self.assertGreaterEqual(len(groups), 1)
        for g in groups:
            self.assertIsInstance(g, bulkup.ImageGroup)
            self.assertEqual(set(g), {"data_hash", "title"})
            self.assertTrue(g.data_hash)
            self.assertEqual(g["title"], g.title)
        # create_video=True (the default) clusters by resolution: one unit per
        # size, each titled after the group by bulkup serve
        for g in groups:
            self.assertTrue(g.title.startswith("holiday"), g.title)
        self.assertStored(self.images)
        self.assertTrue(progress)
        self.assertEqual(progress[-1].succeeded, len(self.images))
        self.assertEqual(progress[-1].submitted, len(self.images))
        # Path objects, create_video False (one unit), a worker count
        groups = self.dataset().create_image_group(self.images, max_workers=1, create_video=False,
                                                   title="plain")
        self.assertEqual([g.title for g in groups], ["plain"])
        with self.assertRaises(ValueError):
            self.dataset().create_image_group(self.images, max_workers=0)

    def test_create_dicom_series(self):
        s = self.dataset().create_dicom_series([str(p) for p in self.dicoms], title="scan")
        self.assertIsInstance(s, dict)
        self.assertEqual(set(s), {"data_hash", "title"})
        self.assertEqual(s["title"], "scan")
        self.assertStored(self.dicoms)

    def test_upload_video(self):
        v = self.dataset().upload_video(self.video)
        self.assertIsInstance(v, bulkup.Video)
        self.assertEqual(v.title, "clip.mp4")  # the file's name by default
        self.assertTrue(v.data_hash)
        self.assertStored([self.video])
        self.assertEqual(self.dataset().upload_video(str(self.video), title="t.mp4").title, "t.mp4")

    def test_upload_image(self):
        img = self.dataset().upload_image(self.images[0])
        self.assertIsInstance(img, bulkup.Image)
        self.assertEqual(set(img), {"data_hash", "title", "file_link"})
        self.assertEqual(img.title, self.images[0].name)
        # file_link: the object key the presign gave, under which the server stored the file
        self.assertEqual((self.server.root / img.file_link).read_bytes(),
                         self.images[0].read_bytes(), img.file_link)
        self.assertStored(self.images[:1])

    def test_folder(self):
        ds = self.dataset()
        folder = ds.backing_folder_uuid
        self.assertIsInstance(folder, UUID)
        img = self.images[1]
        self.assertEqual(ds.upload_image(img, folder=folder).title, img.name)
        self.assertEqual(ds.upload_image(img, folder=SimpleNamespace(uuid=folder)).title,
                         img.name)  # a storage folder object
        self.assertEqual(ds.upload_image(img, folder=str(folder)).title, img.name)
        with self.assertRaises(ValueError):
            ds.upload_image(img, folder="not a uuid")
        # a folder the server does not know: INVALID_ARGUMENTS_ERROR, the SDK's class
        with self.assertRaises(exceptions.InvalidArgumentsError) as cm:
            ds.upload_image(img, folder=UUID("00000000-0000-4000-8000-000000000000"))
        self.assertEqual(cm.exception.message,
                         "Some of the arguments to the SDK function were invalid.")
        self.assertIn("INVALID_ARGUMENTS_ERROR", cm.exception.detail)

    def test_missing_file_the_sdks_message(self):
        missing = str(self.tmp / "missing.png")
        for call in (lambda ds: ds.create_image_group([str(self.images[0]), missing]),
                     lambda ds: ds.upload_image(missing),
                     lambda ds: ds.upload_video(missing),
                     lambda ds: ds.create_dicom_series([missing])):
            with self.assertRaises(exceptions.EncordException) as cm:
                call(self.dataset())
            self.assertEqual(cm.exception.message, f"{missing} does not point to a file.")
        with self.assertRaises(exceptions.EncordException) as cm:
            self.dataset().create_image_group([])
        self.assertEqual(cm.exception.message,
                         "All image uploads failed. Image group was not created.")

    def test_unknown_key(self):
        other, _, _ = new_key()
        with EncordUserClient.create_with_ssh_private_key(other, domain=self.server.url) as c:
            # bulkup serve answers SSH_KEY_NOT_FOUND_ERROR for a key it does not know
            with self.assertRaises(exceptions.SshKeyNotFound) as cm:
                c.get_dataset(self.server.dataset)
            self.assertEqual(cm.exception.message,
                             "The used SSH key does not exist on the Encord platform. "
                             "Please add this SSH key to your user profile.")
            self.assertEqual(cm.exception.code, "EHTTP")
            self.assertIn("SSH_KEY_NOT_FOUND_ERROR", cm.exception.detail)


@unittest.skipIf(serialization is None, "needs python3-cryptography")
@unittest.skipUnless(os.access(_support.cli(), os.X_OK), "needs the bulkup program")
class FailingStorageTest(unittest.TestCase):
    """Every storage PUT fails (serve --fault-rate 1 --fault-status 500)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="bulkup-encord-fail-"))
        key, _, line = new_key()
        (cls.tmp / "keys").write_text(line)
        cls.server = Serve(cls.tmp / "root", cls.tmp / "keys", "--fault-rate", "1",
                           "--fault-status", "500")
        cls.client = EncordUserClient.create_with_ssh_private_key(
            key, domain=cls.server.url,
            requests_settings=RequestsSettings(max_retries=0, backoff_factor=0))
        cls.images = sorted((_support.SOURCE_DIR / "examples" / "images").glob("*.png"))

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_no_group_and_every_failure_reported(self):
        ds = self.client.get_dataset(self.server.dataset)
        with self.assertRaises(exceptions.CloudUploadError) as cm:
            ds.create_image_group(self.images, cloud_upload_settings=CloudUploadSettings(
                max_retries=0))
        e = cm.exception
        self.assertTrue(e.message.startswith("Error uploading file '"), e.message)
        self.assertNotIn("X-Goog-Signature=", e.message.replace("REDACTED", ""))
        self.assertEqual(len(e.result.failures), len(self.images))
        self.assertEqual({f.http_status for f in e.result.failures}, {500})
        self.assertEqual({f.attempts for f in e.result.failures}, {1})
        with self.assertRaises(exceptions.EncordException) as cm:
            ds.create_image_group(self.images, cloud_upload_settings=CloudUploadSettings(
                max_retries=0, allow_failures=True))
        self.assertEqual(cm.exception.message,
                         "All image uploads failed. Image group was not created.")
        self.assertEqual(cm.exception.code, "EALLFAILED")


if __name__ == "__main__":
    unittest.main()
