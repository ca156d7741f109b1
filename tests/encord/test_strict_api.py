#!/usr/bin/python3
"""test_strict_api.py - proves the strict Encord API (strict_api.py) right.

A tiny client written from ENCORD_WIRE.md (its own signing and serialising
code, nothing taken from strict_api.py) first reproduces the specification's
test vectors exactly (§2 key id, §4 v2 Signature, §6 v1 Authorization, §6/§11
body bytes); the server then accepts the vectors' literal bytes, runs a full
flow of each upload kind, and refuses tampered requests with the real error
shapes, recording each as exactly one violation.

Run: /usr/bin/python3 tests/encord/test_strict_api.py  (exit 77 without
python3-cryptography). About 7 seconds. The client is spec_client.py.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid
import zlib

try:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
except ImportError:
    print("test_strict_api: SKIP: python3-cryptography is not installed (apt-get install "
          "python3-cryptography)")
    sys.exit(77)

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import strict_api  # noqa: E402  (after the skip check)

SEED = bytes(range(32))
VECTOR_KEYID = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
VECTOR_V2_TARGET = "/v2/public/presigned-urls?count=2&uploadItemType=image"
VECTOR_V2_SIGNATURE = ("encord-sig=:h5Pj1/FCSL1yHfCbmnfLv22uvD88RYZut/dXGqmrAaYZe2JCqeXN9BXFY6WM0dUjk0P0"
                       "/X9kdtu3N8C4lDupDA==:")
VECTOR_V1_BODY = ('{"query_type": "datasetdatalongpolling", "query_method": "GET", "values": '
                  '{"uid": "00000000-0000-0000-0000-000000000001", "payload": {"process_hash": '
                  '"p-1", "timeout_seconds": 10}}}')
VECTOR_V1_AUTH = (VECTOR_KEYID + ":d95b93e25d246d4eeb0fa1329c06679833032c50365a532d96451ccb79b2d7b8"
                  "ad6e5bcbd57c0695d0c9e9ef93cfc42a10b21ba9979891ec79693c74ca3a0d0e")
# §11 as printed, with its elisions "…" written "..." (ASCII, so that the
# bytes are what json.dumps gives for the same values).
S11_JOB = ('{"query_type": "datasetdatalongpolling", "query_method": "POST", "values": {"uid": '
           '"6a8f3c2e-1d4b-4e59-9a7c-0b1e2f3a4d5c", "payload": {"dataItems": {"videos": [], '
           '"imageGroups": [{"images": [{"url": "<bucket>/image/049d69c9-...", "title": '
           '"checkerboard.png"}, {"url": "...", "title": "dots.png"}, {"url": "...", "title": '
           '"gradient.png"}], "clientMetadata": {}, "createVideo": true, "externalFileType": '
           '"IMG_GROUP", "clusterByResolution": true}], "dicomSeries": [], "images": [], '
           '"imageGroupsFromItems": [], "audio": [], "nifti": [], "text": [], "pdf": [], '
           '"skipDuplicateUrls": false, "upsertMetadata": false}, "ignoreErrors": false}}}')
S11_POLL = ('{"query_type": "datasetdatalongpolling", "query_method": "GET", "values": {"uid": '
            '"6a8f3c2e-...", "payload": {"process_hash": "29249581-...", "timeout_seconds": 10}}}')
S11_DATASET = ('{"query_type": "dataset", "query_method": "GET", "values": {"uid": null, '
               '"payload": {"dataset_access_settings": {"fetch_client_metadata": false}}}}')
DATASET = "6a8f3c2e-1d4b-4e59-9a7c-0b1e2f3a4d5c"
FOLDER = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


def png(width, height, seed):
    """A small valid PNG of the given size (distinct bytes per seed)."""
    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff))
    rows = b"".join(b"\x00" + bytes((seed + x + y) & 0xff for x in range(width * 3))
                    for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


from spec_client import (  # noqa: E402
    UA, SpecClient, auth_v1, group_element, keyid_of, raw, sign_v2, trace, v1_body)


# ---- the tests --------------------------------------------------------------

class Vectors(unittest.TestCase):
    """The tiny client reproduces ENCORD_WIRE.md's vectors exactly."""

    def setUp(self):
        self.key = Ed25519PrivateKey.from_private_bytes(SEED)

    def test_keyid(self):
        self.assertEqual(keyid_of(self.key), VECTOR_KEYID)

    def test_v2_signature(self):
        h = sign_v2(self.key, "GET", VECTOR_V2_TARGET, b"", 1700000000)
        self.assertEqual(h["Signature"], VECTOR_V2_SIGNATURE)
        self.assertEqual(h["Content-Digest"], "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:")
        self.assertEqual(h["Signature-Input"],
                         'encord-sig=("@method" "@request-target" "content-digest");created=1700000000'
                         f';keyid="{VECTOR_KEYID}";alg="ed25519"')

    def test_v1_authorization(self):
        body = v1_body("datasetdatalongpolling", "GET", "00000000-0000-0000-0000-000000000001",
                       {"process_hash": "p-1", "timeout_seconds": 10})
        self.assertEqual(body, VECTOR_V1_BODY)
        self.assertEqual(auth_v1(self.key, body.encode()), VECTOR_V1_AUTH)

    def test_s11_bodies(self):
        urls = [("<bucket>/image/049d69c9-...", "checkerboard.png"), ("...", "dots.png"),
                ("...", "gradient.png")]
        client = SpecClient(0, self.key, DATASET)
        body = v1_body("datasetdatalongpolling", "POST", DATASET,
                       {"dataItems": client.data_items(imageGroups=[group_element(urls)]),
                        "ignoreErrors": False})
        self.assertEqual(body, S11_JOB)
        self.assertEqual(v1_body("datasetdatalongpolling", "GET", "6a8f3c2e-...",
                                 {"process_hash": "29249581-...", "timeout_seconds": 10}), S11_POLL)
        self.assertEqual(v1_body("dataset", "GET", None,
                                 {"dataset_access_settings": {"fetch_client_metadata": False}}),
                         S11_DATASET)
        # The server's canonical-bytes rule holds for the captured bodies.
        for text in (S11_JOB, S11_POLL, S11_DATASET, VECTOR_V1_BODY):
            self.assertEqual(json.dumps(json.loads(text)), text)


class ServerCase(unittest.TestCase):
    """An in-process strict server per test, with its files in a temp dir."""

    options = []

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="strict-api-test.")
        self.key = Ed25519PrivateKey.from_private_bytes(SEED)
        self.other = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
        self.start(self.options)

    def start(self, options):
        if getattr(self, "srv", None):
            self.stop()
        self.files = {n: os.path.join(self.dir, n + ".jsonl") for n in ("violations", "log", "units")}
        for f in self.files.values():
            open(f, "w").close()
        args = strict_api.parse_args(
            ["--store", os.path.join(self.dir, "store"), "--keyid", VECTOR_KEYID,
             "--dataset", DATASET, "--dataset", "00000000-0000-0000-0000-000000000001",
             "--pending-hold", "0.05",
             "--violations", self.files["violations"], "--log", self.files["log"],
             "--units", self.files["units"]] + options)
        self.srv = strict_api.make_server(args)
        self.thread = threading.Thread(target=self.srv.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()
        self.port = self.srv.state.port
        self.c = SpecClient(self.port, self.key, DATASET)

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()
        self.thread.join()
        self.srv.state.close()
        self.srv = None

    def tearDown(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def lines(self, name):
        with open(self.files[name]) as f:
            return [json.loads(x) for x in f if x.strip()] if name != "units" else f.read().splitlines()

    def violations(self):
        return self.lines("violations")

    def assert_clean(self):
        self.assertEqual(self.violations(), [])

    def files_of(self, n, prefix, ext, sizes=((32, 16),)):
        paths = []
        for i in range(n):
            w, h = sizes[i % len(sizes)]
            p = os.path.join(self.dir, f"{prefix}{i:03d}{ext}")
            with open(p, "wb") as f:
                f.write(png(w, h, i) if ext == ".png" else os.urandom(100 + i))
            paths.append(p)
        return paths

    def stored(self, object_key):
        with open(os.path.join(self.dir, "store", object_key), "rb") as f:
            return f.read()

    def assert_v1_error(self, r, code, status):
        env = r.json()
        self.assertEqual(env["status"], status)
        self.assertEqual(env["response"], [code])
        self.assertIn("payload", env)
        self.assertEqual(r.status, status)

    def assert_one_violation(self, words):
        v = self.violations()
        self.assertEqual(len(v), 1, v)
        self.assertIn(words, v[0]["rule"])
        for k in ("method", "target", "headers", "body", "rule", "answer_status"):
            self.assertIn(k, v[0])
        return v[0]


class Flows(ServerCase):
    """A full flow of each kind, by the spec client, is accepted."""

    def test_vector_bytes_accepted(self):
        # The §4 vector's literal headers verify (created is old: widen the window).
        self.start(["--created-past", str(10 ** 10)])
        h = [("User-Agent", UA), ("X-Cloud-Trace-Context", trace()),
             ("Content-Digest", "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"),
             ("Signature-Input", 'encord-sig=("@method" "@request-target" "content-digest")'
                                 f';created=1700000000;keyid="{VECTOR_KEYID}";alg="ed25519"'),
             ("Signature", VECTOR_V2_SIGNATURE)]
        r = raw(self.port, "GET", VECTOR_V2_TARGET, h)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(len(r.json()["results"]), 2)
        # The §6 vector's Authorization verifies: the refusal is for the unknown
        # process hash, not the signature.
        h = [("Accept", "application/json"), ("Content-Type", "application/json"),
             ("Accept-Encoding", "gzip"), ("ResourceType", "dataset"),
             ("ResourceID", "00000000-0000-0000-0000-000000000001"),
             ("Authorization", VECTOR_V1_AUTH), ("User-Agent", UA),
             ("X-Cloud-Trace-Context", trace())]
        r = raw(self.port, "POST", "/public", h, VECTOR_V1_BODY.encode())
        self.assert_v1_error(r, "RESOURCE_NOT_FOUND_ERROR", 404)
        self.assert_one_violation("process_hash 'p-1'")

    def test_dataset_get(self):
        r = self.c.v1(S11_DATASET)
        self.assertEqual(r.status, 200)
        resp = r.json()["response"]
        for k in ("title", "description", "dataset_type", "dataset_hash"):
            self.assertIn(k, resp)
        self.assertEqual(resp["dataset_hash"], DATASET)
        self.assert_clean()

    def run_group(self, n, title, create_video=True):
        paths = self.files_of(n, "img", ".png", sizes=((32, 16), (16, 16)))
        objs = self.c.upload(paths, "image", lambda p: "image/png")
        r = self.c.job(self.c.data_items(imageGroups=[group_element(objs, title, create_video)]))
        self.assertEqual(r.status, 200, r.body)
        ph = r.json()["response"]["process_hash"]
        answers = self.c.wait(ph)
        for (key, _), path in zip(objs, paths):
            with open(path, "rb") as f:
                self.assertEqual(self.stored(key), f.read())
        return answers

    def test_image_group_450(self):
        answers = self.run_group(450, "Gruppe \u00c4 \"q\"")
        self.assertEqual([a["status"] for a in answers], ["PENDING", "DONE"])
        final = answers[-1]
        units = final["dataHashesWithTitles"]
        self.assertEqual(len(units), 1)
        self.assertEqual(units[0]["title"], "Gruppe \u00c4 \"q\"")
        self.assertEqual(final["unitsDoneCount"], 1)
        counts = [e["count"] for e in self.lines("log") if e["kind"] == "presign"]
        self.assertEqual(counts, [200, 200, 50])
        self.assertEqual(self.lines("units"), [f"{units[0]['dataHash']}  {units[0]['title']}"])
        self.assert_clean()

    def test_group_split_by_resolution(self):
        self.start(["--split-by-resolution", "--casing", "snake"])
        units = self.run_group(6, None)[-1]["data_hashes_with_titles"]
        self.assertEqual(len(units), 2)
        self.assertEqual(sorted(u["title"].rsplit(" ", 1)[1] for u in units), ["16x16", "32x16"])
        self.assertEqual(len(self.lines("units")), 2)
        # No clustering when createVideo is false.
        units = self.run_group(4, "flat", create_video=False)[-1]["data_hashes_with_titles"]
        self.assertEqual([u["title"] for u in units], ["flat"])
        self.assert_clean()

    def test_group_split_n(self):
        self.start(["--split-groups", "3"])
        units = self.run_group(7, "g")[-1]["dataHashesWithTitles"]
        self.assertEqual([u["title"] for u in units], ["g (1/3)", "g (2/3)", "g (3/3)"])
        self.assert_clean()

    def test_dicom_series(self):
        paths = self.files_of(3, "slice", ".dcm")
        objs = self.c.upload(paths, "dicomFile", lambda p: "application/dicom")
        el = {"dicomFiles": [{"url": k, "title": t} for k, t in objs], "title": "series",
              "clientMetadata": {}, "externalFileType": "DICOM"}
        r = self.c.job(self.c.data_items(dicomSeries=[el]), folder=None)
        answers = self.c.wait(r.json()["response"]["process_hash"])
        self.assertEqual([u["title"] for u in answers[-1]["dataHashesWithTitles"]], ["series"])
        self.assert_clean()

    def test_videos_and_images(self):
        self.start(["--folder", FOLDER, "--require-folder", "--gzip"])
        for kind, item_type, ext, ctype, eft in (
                ("videos", "video", ".mp4", lambda p: "application/octet-stream", "VIDEO"),
                ("images", "image", ".png", lambda p: "image/png", "IMAGE"),
                ("images", "image", ".weirdext", lambda p: None, "IMAGE")):
            paths = self.files_of(2, "one" + kind, ext)
            for path in paths:
                (key, title), = self.c.upload([path], item_type, ctype)
                el = {"objectUrl": key, "title": title, "clientMetadata": {}, "externalFileType": eft}
                r = self.c.job(self.c.data_items(**{kind: [el]}), folder=FOLDER)
                self.assertEqual(r.status, 200, r.body)
                final = self.c.wait(r.json()["response"]["process_hash"])[-1]
                self.assertEqual([u["title"] for u in final["dataHashesWithTitles"]], [title])
        self.assertEqual(len(self.lines("units")), 6)
        self.assert_clean()

    def test_subprocess_port_file(self):
        pf = os.path.join(self.dir, "port")
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "strict_api.py"), "--port-file",
                                 pf, "--store", os.path.join(self.dir, "s2"), "--keyid",
                                 VECTOR_KEYID, "--dataset", DATASET],
                                stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                if os.path.exists(pf):
                    break
                time.sleep(0.05)
            with open(pf) as f:
                port = int(f.read())
            r = SpecClient(port, self.key, DATASET).v1(S11_DATASET)
            self.assertEqual(r.status, 200)
        finally:
            proc.terminate()
            proc.wait(10)


class Tampered(ServerCase):
    """Each tampered request is refused in the real shape and recorded once."""

    def presign_target(self, count=2, item_type="image"):
        return f"/v2/public/presigned-urls?count={count}&uploadItemType={item_type}"

    def assert_v2_refused(self, r, status, words):
        self.assertEqual(r.status, status, r.body)
        self.assertIn("message", r.json())
        self.assert_one_violation(words)

    def test_wrong_signature(self):
        t = self.presign_target()
        h = self.c.v2_headers(t)
        h = [(k, v[:20] + ("A" if v[20] != "A" else "B") + v[21:]) if k == "Signature" else (k, v)
             for k, v in h]
        self.assert_v2_refused(raw(self.port, "GET", t, h), 401, "does not verify")

    def test_signed_other_target(self):
        h = self.c.v2_headers(self.presign_target(3))
        self.assert_v2_refused(raw(self.port, "GET", self.presign_target(2), h), 401, "does not verify")

    def test_stale_created(self):
        self.assert_v2_refused(self.c.presign(2, "image", created=int(time.time()) - 1000), 401, "old")

    def test_future_created(self):
        self.assert_v2_refused(self.c.presign(2, "image", created=int(time.time()) + 1000), 401,
                               "future")

    def test_wrong_keyid_v2(self):
        self.c.key = self.other
        self.assert_v2_refused(self.c.presign(2, "image"), 401, "not an authorised key")

    def test_signature_input_variant(self):
        t = self.presign_target()
        h = [(k, v.replace(';alg="ed25519"', '')) if k == "Signature-Input" else (k, v)
             for k, v in self.c.v2_headers(t)]
        self.assert_v2_refused(raw(self.port, "GET", t, h), 401, "Signature-Input is not exactly")

    def test_query_order(self):
        t = "/v2/public/presigned-urls?uploadItemType=image&count=2"
        self.assert_v2_refused(raw(self.port, "GET", t, self.c.v2_headers(t)), 400, "in that order")

    def test_snake_query(self):
        t = "/v2/public/presigned-urls?count=2&upload_item_type=IMAGE"
        self.assert_v2_refused(raw(self.port, "GET", t, self.c.v2_headers(t)), 400, "in that order")

    def test_count_201(self):
        self.assert_v2_refused(self.c.presign(201, "image"), 400, "outside 1..200")

    def test_no_trace(self):
        t = self.presign_target()
        h = [(k, v) for k, v in self.c.v2_headers(t) if k != "X-Cloud-Trace-Context"]
        self.assert_v2_refused(raw(self.port, "GET", t, h), 400, "X-Cloud-Trace-Context missing")

    def test_v1_reordered_keys(self):
        body = json.dumps({"query_method": "GET", "query_type": "dataset",
                           "values": {"uid": None, "payload": {"dataset_access_settings":
                                                               {"fetch_client_metadata": False}}}})
        r = self.c.v1(body)
        self.assert_v1_error(r, "INVALID_ARGUMENTS_ERROR", 400)
        self.assert_one_violation("envelope keys")

    def test_v1_compact_separators(self):
        r = self.c.v1(json.dumps(json.loads(S11_DATASET), separators=(",", ":")))
        self.assert_v1_error(r, "INVALID_ARGUMENTS_ERROR", 400)
        self.assert_one_violation("json.dumps")

    def test_v1_not_ascii(self):
        raw_text = json.dumps({"a": "\u00e9"}, ensure_ascii=False)
        r = self.c.v1(raw_text)
        self.assert_v1_error(r, "INVALID_ARGUMENTS_ERROR", 400)
        self.assert_one_violation("json.dumps")

    def test_v1_wrong_header(self):
        body = S11_DATASET.encode()
        h = [(k, "project" if k == "ResourceType" else v) for k, v in self.c.v1_headers(body)]
        r = self.c.v1(S11_DATASET, h)
        self.assert_v1_error(r, "INVALID_ARGUMENTS_ERROR", 400)
        self.assert_one_violation("ResourceType")

    def test_v1_extra_header(self):
        body = S11_DATASET.encode()
        r = self.c.v1(S11_DATASET, self.c.v1_headers(body) + [("Idempotency-Key", "x")])
        self.assert_v1_error(r, "INVALID_ARGUMENTS_ERROR", 400)
        self.assert_one_violation("idempotency-key")

    def test_v1_wrong_signature(self):
        body = S11_DATASET.encode()
        h = [(k, v[:-1] + ("0" if v[-1] != "0" else "1")) if k == "Authorization" else (k, v)
             for k, v in self.c.v1_headers(body)]
        r = self.c.v1(S11_DATASET, h)
        self.assert_v1_error(r, "AUTHENTICATION_ERROR", 401)
        self.assert_one_violation("does not verify")

    def test_v1_wrong_key(self):
        self.c.key = self.other
        r = self.c.v1(S11_DATASET)
        self.assert_v1_error(r, "SSH_KEY_NOT_FOUND_ERROR", 401)
        self.assert_one_violation("not authorised")

    def test_v1_unknown_dataset(self):
        self.c.dataset = str(uuid.uuid4())
        r = self.c.v1(S11_DATASET)
        self.assert_v1_error(r, "RESOURCE_NOT_FOUND_ERROR", 404)
        self.assert_one_violation("ResourceID")

    def test_v1_error_http_200(self):
        self.start(["--v1-error-http", "200"])
        self.c.key = self.other
        r = self.c.v1(S11_DATASET)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["response"], ["SSH_KEY_NOT_FOUND_ERROR"])
        self.assertEqual(r.json()["status"], 401)

    def test_v1_user_path(self):
        body = S11_DATASET.encode()
        r = raw(self.port, "POST", "/public/user", self.c.v1_headers(body), body)
        self.assert_v1_error(r, "INVALID_ARGUMENTS_ERROR", 400)
        self.assert_one_violation("/public/user")

    def test_dataset_uid_not_null(self):
        r = self.c.v1(v1_body("dataset", "GET", DATASET, {"dataset_access_settings":
                                                          {"fetch_client_metadata": False}}))
        self.assert_v1_error(r, "INVALID_ARGUMENTS_ERROR", 400)
        self.assert_one_violation("uid")

    def upload_one(self, item_type="image", ctype="image/png", name="a.png"):
        p = os.path.join(self.dir, name)
        with open(p, "wb") as f:
            f.write(png(8, 8, 1))
        return self.c.upload([p], item_type, lambda _: ctype)[0]

    def test_put_wrong_content_type(self):
        r = self.c.presign(1, "video")
        url = r.json()["results"][0]["signedUrl"]
        p = self.c.put(url, b"video bytes", "video/mp4")
        self.assertEqual(p.status, 403)
        self.assertIn(b"<Error>", p.body)
        self.assert_one_violation("application/octet-stream")

    def test_put_reencoded_query(self):
        r = self.c.presign(1, "image")
        url = r.json()["results"][0]["signedUrl"]
        self.assertIn("%2F", url)
        p = self.c.put(urllib.parse.unquote(url), b"x", "image/png")
        self.assertEqual(p.status, 403)
        self.assert_one_violation("byte for byte")

    def test_put_resumable_post(self):
        r = self.c.presign(1, "image")
        u = urllib.parse.urlsplit(r.json()["results"][0]["signedUrl"])
        p = raw(self.port, "POST", u.path + "?" + u.query, [("x-goog-resumable", "start")], b"")
        self.assertEqual(p.status, 403)
        self.assert_one_violation("never a POST")

    def test_image_content_type_checked_at_job(self):
        key, title = self.upload_one(ctype="image/jpeg")
        el = {"objectUrl": key, "title": title, "clientMetadata": {}, "externalFileType": "IMAGE"}
        r = self.c.job(self.c.data_items(images=[el]))
        self.assert_v1_error(r, "INVALID_ARGUMENTS_ERROR", 400)
        self.assert_one_violation("guess_type")

    def test_image_unknown_ext_needs_no_header(self):
        key, title = self.upload_one(ctype="application/octet-stream", name="a.weirdext")
        el = {"objectUrl": key, "title": title, "clientMetadata": {}, "externalFileType": "IMAGE"}
        r = self.c.job(self.c.data_items(images=[el]))
        self.assert_v1_error(r, "INVALID_ARGUMENTS_ERROR", 400)
        self.assert_one_violation("(so no header)")

    def job_refused(self, data_items, words, folder=None):
        r = self.c.job(data_items, folder)
        self.assert_v1_error(r, "INVALID_ARGUMENTS_ERROR", 400)
        return self.assert_one_violation(words)

    def test_job_signed_url(self):
        r = self.c.presign(1, "image")
        res = r.json()["results"][0]
        el = {"objectUrl": res["signedUrl"], "title": "a.png", "clientMetadata": {},
              "externalFileType": "IMAGE"}
        self.job_refused(self.c.data_items(images=[el]), "a signed URL")

    def test_job_title_null(self):
        objs = [self.upload_one()]
        el = group_element(objs)
        el = {"images": el["images"], "title": None, **{k: v for k, v in el.items() if k != "images"}}
        self.job_refused(self.c.data_items(imageGroups=[el]), "omitted")

    def test_job_cluster_differs(self):
        el = group_element([self.upload_one()])
        el["clusterByResolution"] = False
        self.job_refused(self.c.data_items(imageGroups=[el]), "always equal")

    def test_job_wrong_type(self):
        key, title = self.upload_one()
        el = {"dicomFiles": [{"url": key, "title": title}], "clientMetadata": {},
              "externalFileType": "DICOM"}
        self.job_refused(self.c.data_items(dicomSeries=[el]), "presigned as image")

    def test_job_wrong_eft(self):
        key, title = self.upload_one()
        el = {"objectUrl": key, "title": title, "clientMetadata": {}, "externalFileType": "VIDEO"}
        self.job_refused(self.c.data_items(images=[el]), "externalFileType")

    def test_job_key_order(self):
        key, title = self.upload_one()
        el = {"title": title, "objectUrl": key, "clientMetadata": {}, "externalFileType": "IMAGE"}
        self.job_refused(self.c.data_items(images=[el]), "in that order")

    def test_job_missing_list(self):
        key, title = self.upload_one()
        el = {"objectUrl": key, "title": title, "clientMetadata": {}, "externalFileType": "IMAGE"}
        di = self.c.data_items(images=[el])
        del di["pdf"]
        self.job_refused(di, "dataItems keys")

    def test_job_not_stored(self):
        r = self.c.presign(1, "image")
        key = r.json()["results"][0]["objectKey"]
        el = {"objectUrl": key, "title": "a.png", "clientMetadata": {}, "externalFileType": "IMAGE"}
        self.job_refused(self.c.data_items(images=[el]), "never stored")

    def test_job_replayed(self):
        key, title = self.upload_one()
        el = {"objectUrl": key, "title": title, "clientMetadata": {}, "externalFileType": "IMAGE"}
        self.assertEqual(self.c.job(self.c.data_items(images=[el])).status, 200)
        self.job_refused(self.c.data_items(images=[el]), "already submitted")

    def test_job_folder(self):
        self.start(["--folder", FOLDER, "--require-folder"])
        key, title = self.upload_one()
        el = {"objectUrl": key, "title": title, "clientMetadata": {}, "externalFileType": "IMAGE"}
        self.job_refused(self.c.data_items(images=[el]), "no folderUuid")
        self.start(["--folder", FOLDER])
        key, title = self.upload_one(name="b.png")
        el = {"objectUrl": key, "title": title, "clientMetadata": {}, "externalFileType": "IMAGE"}
        self.job_refused(self.c.data_items(images=[el]), "canonical", folder=FOLDER.upper())

    def test_poll_float_timeout(self):
        key, title = self.upload_one()
        el = {"objectUrl": key, "title": title, "clientMetadata": {}, "externalFileType": "IMAGE"}
        ph = self.c.job(self.c.data_items(images=[el])).json()["response"]["process_hash"]
        r = self.c.v1(v1_body("datasetdatalongpolling", "GET", DATASET,
                              {"process_hash": ph, "timeout_seconds": 10.0}))
        self.assert_v1_error(r, "INVALID_ARGUMENTS_ERROR", 400)
        self.assert_one_violation("timeout_seconds")


class Injections(ServerCase):
    """Each injected error shape is answered on demand, and is no violation."""

    def image_job(self):
        p = os.path.join(self.dir, "x.png")
        with open(p, "wb") as f:
            f.write(png(4, 4, 2))
        (key, title), = self.c.upload([p], "image", lambda _: "image/png")
        el = {"objectUrl": key, "title": title, "clientMetadata": {}, "externalFileType": "IMAGE"}
        return self.c.job(self.c.data_items(images=[el]))

    def test_presign_401_message(self):
        self.start(["--inject", "presign=401", "--inject", "presign-detail=403"])
        r = self.c.presign(1, "image")
        self.assertEqual(r.status, 401)
        self.assertIn("message", r.json())
        r = self.c.presign(1, "image")
        self.assertEqual(r.status, 403)
        self.assertIn("detail", r.json())
        self.assertEqual(self.c.presign(1, "image").status, 200)
        self.assert_clean()

    def test_v1_auth_error(self):
        self.start(["--inject", "v1=AUTHENTICATION_ERROR"])
        self.assert_v1_error(self.c.v1(S11_DATASET), "AUTHENTICATION_ERROR", 401)
        self.assertEqual(self.c.v1(S11_DATASET).status, 200)
        self.assert_clean()

    def test_job_post_invalid(self):
        self.start(["--inject", "job-post=INVALID_ARGUMENTS_ERROR"])
        self.assert_v1_error(self.image_job(), "INVALID_ARGUMENTS_ERROR", 400)
        self.assert_clean()

    def test_job_error(self):
        self.start(["--inject", "job-end=ERROR"])
        final = self.c.wait(self.image_job().json()["response"]["process_hash"])[-1]
        self.assertEqual(final["status"], "ERROR")
        self.assertTrue(final["errors"])
        self.assertEqual(len(final["dataUnitErrors"]), 1)
        self.assertEqual(final["dataHashesWithTitles"], [])
        self.assertEqual(self.lines("units"), [])
        self.assert_clean()

    def test_job_cancelled(self):
        self.start(["--inject", "job-end=CANCELLED", "--casing", "snake"])
        final = self.c.wait(self.image_job().json()["response"]["process_hash"])[-1]
        self.assertEqual(final["status"], "CANCELLED")
        self.assertEqual(final["units_cancelled_count"], 1)
        self.assert_clean()

    def test_put_and_poll_status(self):
        self.start(["--inject", "put=503", "--inject", "poll=503"])
        r = self.c.presign(1, "image")
        url = r.json()["results"][0]["signedUrl"]
        self.assertEqual(self.c.put(url, png(4, 4, 3), "image/png").status, 503)
        self.assertEqual(self.c.put(url, png(4, 4, 3), "image/png").status, 200)
        key = r.json()["results"][0]["objectKey"]
        el = {"objectUrl": key, "title": "y.png", "clientMetadata": {}, "externalFileType": "IMAGE"}
        ph = self.c.job(self.c.data_items(images=[el])).json()["response"]["process_hash"]
        self.assertEqual(self.c.poll(ph).status, 503)
        self.assertEqual(self.c.wait(ph)[-1]["status"], "DONE")
        self.assert_clean()

    def test_short_presign_gateway_and_poll_errors(self):
        self.start(["--inject", "presign-short=1", "--inject", "job-post-http=502",
                    "--inject", "poll-v1=INVALID_ARGUMENTS_ERROR", "--retry-after", "2",
                    "--inject", "presign=503"])
        r = self.c.presign(3, "image")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.headers.get("Retry-After"), "2")
        self.assertEqual(len(self.c.presign(3, "image").json()["results"]), 1)
        self.assertEqual(len(self.c.presign(3, "image").json()["results"]), 3)
        r = self.image_job()
        self.assertEqual(r.status, 502)
        self.assertIn(b"<html>", r.body)
        ph = self.image_job().json()["response"]["process_hash"]
        self.assert_v1_error(self.c.poll(ph), "INVALID_ARGUMENTS_ERROR", 400)
        self.assertEqual(self.c.wait(ph)[-1]["status"], "DONE")
        self.assert_clean()

    def test_long_poll_holds(self):
        self.start(["--hold-full"])
        ph = self.image_job().json()["response"]["process_hash"]
        t0 = time.monotonic()
        r = self.c.poll(ph, timeout=1)
        self.assertGreaterEqual(time.monotonic() - t0, 1.0)
        self.assertEqual(r.json()["response"]["status"], "PENDING")
        self.assertEqual(self.c.poll(ph, timeout=1).json()["response"]["status"], "DONE")
        self.assert_clean()


if __name__ == "__main__":
    unittest.main(verbosity=2)
