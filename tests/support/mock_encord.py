#!/usr/bin/python3
"""mock_encord.py - a small stand-in for the Encord API for the CLI tests
(tests/test_workflow_cli.sh), written from ../shared/spec/ENCORD_WIRE.md.

It checks what a test needs checked on each request (the v2 signature of
the presign, the v1 Authorization of every POST /public, the headers of
§4 and §6) and answers like the API: presign (camelCase), storage PUTs
(stored under STORE/<uuid>, exactly 200), the dataset GET, the job POST
and the long poll (DONE at once; one unit per image group / DICOM series,
two for an image group titled "split", one per video / image). A refused
request gets 401 and is logged with its reason. Every request is
appended to LOG as one JSON line (method, path, query, headers, body).

The independent strict implementation of the protocol is tests/encord/;
this one only serves the tool's own tests.

usage: mock_encord.py PORTFILE STORE LOG [normal|authfail|silent|slow]
"""
import base64
import hashlib
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

PORTFILE, STORE, LOG = sys.argv[1], sys.argv[2], sys.argv[3]
MODE = sys.argv[4] if len(sys.argv) > 4 else "normal"
DATASET = "6a8f3c2e-1d4b-4e59-9a7c-0b1e2f3a4d5c"
LOCK = threading.Lock()
JOBS = {}


def log(rec):
    with LOCK:
        with open(LOG, "a") as f:
            f.write(json.dumps(rec) + "\n")


def verify(pubhex, sig, data):
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(pubhex)).verify(sig, data)
        return True
    except (ValueError, InvalidSignature):
        return False


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, obj=None, raw=None):
        body = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def record(self, body, why=""):
        log({"method": self.command, "path": urlsplit(self.path).path,
             "query": urlsplit(self.path).query,
             "headers": {k: v for k, v in self.headers.items()},
             "body": body.decode("latin-1"), "refused": why})

    def silent(self):
        self.record(b"")
        time.sleep(30)
        self.close_connection = True

    def do_GET(self):
        if MODE == "silent":
            return self.silent()
        if MODE == "slow":
            time.sleep(2)
        u = urlsplit(self.path)
        if u.path != "/v2/public/presigned-urls":
            self.record(b"", "no route")
            return self.answer(404, {"message": "not found"})
        h = self.headers
        why = ""
        digest = "sha-256=:" + base64.b64encode(hashlib.sha256(b"").digest()).decode() + ":"
        inp = h.get("Signature-Input", "")
        sig = h.get("Signature", "")
        params = inp[len("encord-sig="):] if inp.startswith("encord-sig=") else ""
        keyid = params.split('keyid="')[1].split('"')[0] if 'keyid="' in params else ""
        base = "\n".join(['"@method": GET', '"@request-target": ' + self.path,
                          '"content-digest": ' + h.get("Content-Digest", ""),
                          '"@signature-params": ' + params])
        if h.get("Content-Digest") != digest:
            why = "content-digest"
        elif not (sig.startswith("encord-sig=:") and sig.endswith(":")):
            why = "signature header"
        elif len(keyid) != 64 or not verify(keyid, base64.b64decode(sig[12:-1]), base.encode()):
            why = "v2 signature"
        elif list(dict(parse_qsl(u.query)).keys()) != ["count", "uploadItemType"]:
            why = "query"
        self.record(b"", why)
        if why:
            return self.answer(401, {"message": "refused: " + why})
        q = dict(parse_qsl(u.query))
        n = int(q["count"])
        if not 1 <= n <= 200 or q["uploadItemType"] not in ("image", "video", "dicomFile"):
            return self.answer(400, {"detail": "bad params"})
        host = "http://" + h["Host"]
        res = []
        for _ in range(n):
            i = str(uuid.uuid4())
            res.append({"itemUuid": i, "objectKey": "bkt/" + i,
                        "signedUrl": host + "/storage/" + i + "?sig=x"})
        self.answer(200, {"results": res, "nextPageToken": None})

    def do_PUT(self):
        u = urlsplit(self.path)
        body = self.body()
        self.record(b"")
        if not u.path.startswith("/storage/"):
            return self.answer(404, {})
        with open(os.path.join(STORE, u.path[len("/storage/"):]), "wb") as f:
            f.write(body)
        self.answer(200, raw=b"")

    def do_POST(self):
        if MODE == "silent":
            self.body()
            return self.silent()
        body = self.body()
        h = self.headers
        why = ""
        auth = h.get("Authorization", "")
        pub, _, sighex = auth.partition(":")
        if urlsplit(self.path).path != "/public":
            why = "no route"
        elif h.get("ResourceType") != "dataset" or h.get("ResourceID") != DATASET:
            why = "resource"
        elif h.get("Content-Type") != "application/json" or h.get("Accept") != "application/json":
            why = "content type"
        elif len(pub) != 64 or len(sighex) != 128 or not verify(
                pub, bytes.fromhex(sighex), hashlib.sha256(body).digest()):
            why = "v1 signature"
        self.record(body, why)
        if why or MODE == "authfail":
            return self.answer(200, {"status": 401, "response": ["AUTHENTICATION_ERROR"], "payload": None})
        q = json.loads(body)
        qt, qm, v = q["query_type"], q["query_method"], q["values"]
        if qt == "dataset" and qm == "GET":
            return self.answer(200, {"status": 200, "response": {
                "title": "Mock", "description": "", "dataset_type": "CORD_STORAGE",
                "dataset_hash": DATASET, "backing_folder_uuid": None}})
        if qt == "datasetdatalongpolling" and qm == "POST":
            items = v["payload"]["dataItems"]
            units = []
            for g in items["imageGroups"]:
                t = g.get("title", "generated")
                units.append(t)
                if t == "split":
                    units.append(t + " (2)")
            for s in items["dicomSeries"]:
                units.append(s.get("title", "generated"))
            for x in items["videos"] + items["images"]:
                units.append(x["title"])
            ph = str(uuid.uuid4())
            JOBS[ph] = units
            return self.answer(200, {"status": 200, "response": {"process_hash": ph}})
        if qt == "datasetdatalongpolling" and qm == "GET":
            units = JOBS.get(v["payload"]["process_hash"], [])
            return self.answer(200, {"status": 200, "response": {
                "status": "DONE",
                "data_hashes_with_titles": [
                    {"data_hash": str(uuid.uuid4()), "title": t,
                     "backing_item_uuid": str(uuid.uuid4())} for t in units],
                "errors": [], "data_unit_errors": [], "units_pending_count": 0,
                "units_done_count": len(units), "units_error_count": 0,
                "units_cancelled_count": 0}})
        self.answer(200, {"status": 400, "response": ["INVALID_ARGUMENTS_ERROR"]})


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(PORTFILE + ".tmp", PORTFILE)
srv.serve_forever()
