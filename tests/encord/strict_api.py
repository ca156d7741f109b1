#!/usr/bin/python3
"""strict_api.py - a strict Encord API, written from ENCORD_WIRE.md only.

An independent verifier for bulkup's Encord client: it implements the part
of the real API that the SDK v0.1.190's four upload calls use (ENCORD_WIRE.md,
cited as "§N" below), and it refuses whatever that document pins and a request
gets wrong. It was written from the specification alone, not from bulkup's
client or server code, so that the two can disagree.

Served, on 127.0.0.1 (port 0 unless --port; HTTPS with --tls-cert/--tls-key):
  GET  /v2/public/presigned-urls?count=N&uploadItemType=T   (§4, RFC 9421 signed)
  PUT  /storage/<objectKey>?<signed query>                   (§5, the signed URLs)
  POST /public   query_type dataset / GET                    (§6, §11)
                 query_type datasetdatalongpolling / POST    (§7, the job)
                 query_type datasetdatalongpolling / GET     (§8, the long poll)

Every refused request is one JSON line in the violations file (--violations):
the request (method, target, headers, body prefix), the rule it broke (with
its section) and the answer sent. Every accepted request is one JSON line in
the log (--log), with "deviations": the places where it differs from the SDK's
bytes in a way the server tolerates (listed under TOLERATED below). Data units
reported by a DONE answer are appended to --units as "DATA_HASH  TITLE" lines,
once per job, in the order the answer lists them.

Strictness (what is refused; the specification's rule in brackets):
  v2 presign: the path exactly /v2/public/presigned-urls, the raw query exactly
    count=<1..200, no leading zero>&uploadItemType=<image|video|dicomFile> [§4];
    no body; Signature-Input exactly
    encord-sig=("@method" "@request-target" "content-digest");created=T;keyid="HEX";alg="ed25519",
    Content-Digest = sha-256 of the (empty) body, Signature = encord-sig=:<b64 of
    64 bytes>: verifying over the four-line base with @request-target = the raw
    target as received [§4 steps 1-5]; keyid one of the authorised keys [§2];
    created no more than --created-past seconds old (default 300; the SDK sends
    now-30) nor more than --created-future seconds ahead (default 60) [§12 says
    the window is UNKNOWN: this is this server's choice]; User-Agent present and
    non-empty, X-Cloud-Trace-Context present and of the form <32 hex>/<digits>
    optionally followed by ;o=0 or ;o=1 [§4; bulkup is not the SDK, so the
    User-Agent may name bulkup: only its presence is required]; no header
    outside the SDK's set (below). Answers 401 {"message"} for signature and key
    faults, 400 {"message"} for parameter faults, 404/405 for others.
  storage PUT: the exact signed URL as issued (path and raw query, byte for
    byte: a re-encoded query is refused as SignatureDoesNotMatch), method PUT
    (never POST/resumable, no x-goog-resumable, no Content-Range, no
    Authorization) [§5]; Content-Type: video -> application/octet-stream,
    dicomFile -> application/dicom, image -> mimetypes.guess_type(title)[0] or
    no header at all, checked at job time when the title is known [§5]. Answers
    exactly 200 on success, 403 XML otherwise.
  v1 POST /public: the path exactly /public [§2]; headers exactly Accept:
    application/json, Content-Type: application/json, Accept-Encoding: gzip,
    ResourceType: dataset, ResourceID: a known dataset hash, Authorization:
    <64 hex>:<128 hex> verifying (Ed25519 over SHA-256 of the body) with an
    authorised key, User-Agent and X-Cloud-Trace-Context as above, plus Host and
    Content-Length [§6]; the body UTF-8 JSON whose bytes equal
    json.dumps(json.loads(body)) (Python's default separators, ensure_ascii,
    key order) [§3, §6]; envelope keys query_type, query_method, values and
    values' keys uid, payload in that order [§6]; the payloads of §7, §8, §11
    field by field and in order. Answers the v1 error envelope
    {"status": N, "response": ["CODE"], "payload": "<why>"} with HTTP status N
    (or 200 with --v1-error-http 200; §12: UNKNOWN): AUTHENTICATION_ERROR (401)
    for a malformed or wrong Authorization, SSH_KEY_NOT_FOUND_ERROR (401) for a
    well-formed key that is not authorised, RESOURCE_NOT_FOUND_ERROR (404) for
    an unknown dataset, process hash or folder, INVALID_ARGUMENTS_ERROR (400)
    for everything else.
  The job: dataItems' eleven keys in order, nine lists then skipDuplicateUrls
    false and upsertMetadata false; exactly one non-empty list, one of the four
    the upload calls use (several elements are accepted in videos and images:
    the payload's type is a list, §7; the SDK sends one); each element's keys
    in the SDK's order, title omitted rather than null, clientMetadata {},
    createVideo a bool and clusterByResolution equal to it, externalFileType
    IMG_GROUP / DICOM / VIDEO / IMAGE; every url/objectUrl an objectKey this
    server presigned for the matching uploadItemType and that was stored by a
    PUT, never a signed URL, never one submitted in an earlier job POST (the
    SDK never retries the job POST, §10); ignoreErrors false; folderUuid a
    canonical lower-case UUID when present, one of --folder when any is given,
    required with --require-folder [§7, §12].
  The poll: payload exactly {"process_hash": <a job of this dataset>,
    "timeout_seconds": <int 0..10>} in that order [§8].

TOLERATED (accepted, listed as deviations in the log): on v2, Accept: */*
  (an absent Accept means the same, RFC 9110 §12.5.1), Accept-Encoding other
  than identity, Content-Length: 0, Connection; on the PUT, a missing or
  different Cache-Control (the SDK sends max-age=86400; storage does not refuse
  without it), Content-MD5, Expect, unknown extra headers; on v1, Connection and
  Expect: 100-continue (transport), a chunked body.

Injections (--inject NAME=VALUE, repeatable, each used once, in the order
given for its kind), applied to a request that passed every check:
  presign=STATUS         next presign answers STATUS {"message": ...}
  presign-detail=STATUS  next presign answers STATUS {"detail": ...}
  presign-short=K        next presign answers K results, whatever count asked
                         (the SDK asserts exactly count, §4)
  put=STATUS             next PUT answers STATUS (nothing stored)
  v1=CODE                next v1 request answers the v1 error envelope CODE
  job-post=CODE          next job POST answers the v1 error envelope CODE
  job-post-http=STATUS   next job POST answers HTTP STATUS, an HTML body (a
                         gateway error: the SDK does not retry the POST, §10)
  job-end=ERROR|CANCELLED  next job created ends that way
  poll=STATUS            next poll answers HTTP STATUS, a non-JSON body
  poll-v1=CODE           next poll answers the v1 error envelope CODE (a
                         server-reported error: the SDK does not retry it, §10)

Run: /usr/bin/python3 strict_api.py --port-file F --store DIR --violations F
     --log F --units F --pubkey KEY.pub --dataset HASH [options]
Stop it with SIGTERM; the files are written line by line as requests arrive.
"""

import argparse
import base64
import gzip
import hashlib
import hmac
import http.server
import json
import mimetypes
import os
import re
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

mimetypes.init()

PRESIGN_PATH = "/v2/public/presigned-urls"
UPLOAD_ITEM_TYPES = ("image", "video", "dicomFile")
SIG_INPUT_RE = re.compile(
    r'encord-sig=\("@method" "@request-target" "content-digest"\)'
    r';created=(0|[1-9][0-9]*);keyid="([0-9a-f]{64})";alg="ed25519"')
SIG_RE = re.compile(r"encord-sig=:([A-Za-z0-9+/]+={0,2}):")
TRACE_RE = re.compile(r"[0-9a-f]{32}/[0-9]+(;o=[01])?")
AUTH_V1_RE = re.compile(r"([0-9a-f]{64}):([0-9a-f]{128})")
UUID_RE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

DATA_ITEMS_KEYS = ["videos", "imageGroups", "dicomSeries", "images",
                   "imageGroupsFromItems", "audio", "nifti", "text", "pdf",
                   "skipDuplicateUrls", "upsertMetadata"]
DATA_ITEMS_LISTS = DATA_ITEMS_KEYS[:9]

V1_CODE_STATUS = {
    "AUTHENTICATION_ERROR": 401,
    "SSH_KEY_NOT_FOUND_ERROR": 401,
    "AUTHORISATION_ERROR": 403,
    "RESOURCE_NOT_FOUND_ERROR": 404,
    "INVALID_ARGUMENTS_ERROR": 400,
    "UPLOAD_OPERATION_NOT_SUPPORTED_ERROR": 400,
}

# The headers the SDK sends (lower-case names), beside transport ones.
V2_HEADERS = {"host", "user-agent", "x-cloud-trace-context", "content-digest",
              "signature-input", "signature"}
V2_TOLERATED = {"accept", "accept-encoding", "connection", "content-length"}
V1_HEADERS = {"host", "content-length", "accept", "content-type",
              "accept-encoding", "resourcetype", "resourceid", "authorization",
              "user-agent", "x-cloud-trace-context"}
V1_TOLERATED = {"connection", "expect", "transfer-encoding"}
PUT_REFUSED = {"authorization", "x-goog-resumable", "content-range"}


def b64(data):
    return base64.b64encode(data).decode("ascii")


def content_digest(body):
    return "sha-256=:" + b64(hashlib.sha256(body).digest()) + ":"


def v2_signature_base(method, target, digest, sig_params):
    """The RFC 9421 signature base of §4 step 4 (no trailing newline)."""
    return "\n".join([
        '"@method": ' + method.upper(),
        '"@request-target": ' + target,
        '"content-digest": ' + digest,
        '"@signature-params": ' + sig_params,
    ])


def png_size(path):
    """(width, height) from a PNG's IHDR, or None if it is not a PNG."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def camel(name):
    first, *rest = name.split("_")
    return first + "".join(p[:1].upper() + p[1:] for p in rest)


def recase(value, casing):
    """Keys of dicts (recursively) in snake_case as written, or camelCase."""
    if casing == "snake":
        return value
    if isinstance(value, dict):
        return {camel(k): recase(v, casing) for k, v in value.items()}
    if isinstance(value, list):
        return [recase(v, casing) for v in value]
    return value


class Refusal(Exception):
    """A request broke a rule: the answer to send and the rule to record."""

    def __init__(self, rule, kind, status=400, code="INVALID_ARGUMENTS_ERROR"):
        super().__init__(rule)
        self.rule = rule
        self.kind = kind        # "v1", "v2" or "storage": the error shape
        self.status = status
        self.code = code


def load_pubkey_hex(path):
    """The raw public key hex of an OpenSSH public key file (ssh-ed25519 ...)."""
    with open(path, "rb") as f:
        key = serialization.load_ssh_public_key(f.read())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(path + ": not an Ed25519 key")
    return key.public_bytes(serialization.Encoding.Raw,
                            serialization.PublicFormat.Raw).hex()


class State:
    """Everything the server knows; every field is guarded by self.lock."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.keys = {}
        for hexkey in args.keyid:
            self.keys[hexkey] = Ed25519PublicKey.from_public_bytes(bytes.fromhex(hexkey))
        for path in args.pubkey:
            hexkey = load_pubkey_hex(path)
            self.keys[hexkey] = Ed25519PublicKey.from_public_bytes(bytes.fromhex(hexkey))
        self.datasets = list(args.dataset)
        self.folders = list(args.folder)
        self.objects = {}       # objectKey -> dict (see presign)
        self.jobs = {}          # process_hash -> dict (see job_post)
        self.injections = []    # [name, value], consumed in order
        for item in args.inject:
            name, _, value = item.partition("=")
            self.injections.append([name, value])
        self.url_secret = os.urandom(16)
        self.port = 0
        self.files = {}
        for name in ("violations", "log", "units"):
            path = getattr(args, name)
            self.files[name] = open(path, "a", encoding="utf-8") if path else None
        self.counts = {"violations": 0, "accepted": 0}

    def close(self):
        with self.lock:
            for f in self.files.values():
                if f is not None:
                    f.close()
            self.files = {}

    def take(self, name):
        """Remove and return the first injection called name, or None."""
        with self.lock:
            for i, (n, value) in enumerate(self.injections):
                if n == name:
                    del self.injections[i]
                    return value
        return None

    def write(self, name, record):
        with self.lock:
            if name == "violations":
                self.counts["violations"] += 1
            elif name == "log":
                self.counts["accepted"] += 1
            f = self.files.get(name)
            if f is None:
                return
            if isinstance(record, str):
                f.write(record)
            else:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "strict-encord-api/1"
    state = None  # set on the subclass made by make_server

    # ---- plumbing -------------------------------------------------------
    def log_message(self, fmt, *args):
        if self.state.args.verbose:
            sys.stderr.write("strict_api: " + (fmt % args) + "\n")

    def header_list(self):
        return [(k, v) for k, v in self.headers.items()]

    def one_header(self, name, kind):
        values = self.headers.get_all(name) or []
        if len(values) > 1:
            raise Refusal(f"header {name} sent {len(values)} times", kind)
        return values[0] if values else None

    def read_body(self):
        self.body_chunked = False
        te = self.headers.get("Transfer-Encoding")
        if te is not None:
            if te.lower() != "chunked":
                self.close_connection = True
                return b""
            self.body_chunked = True
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                out += self.rfile.read(size)
                self.rfile.readline(65537)
            return bytes(out)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        return self.rfile.read(int(length))

    def send(self, status, body=b"", ctype="application/json", extra=()):
        self.send_response(status)
        if body and ctype:
            self.send_header("Content-Type", ctype)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def retry_after(self, status):
        """Retry-After for an injected 413/429/503 when --retry-after is given."""
        if self.state.args.retry_after is not None and int(status) in (413, 429, 503):
            return [("Retry-After", str(self.state.args.retry_after))]
        return []

    def send_json(self, status, obj, allow_gzip=False, extra=()):
        body = json.dumps(obj).encode("utf-8")
        extra = list(extra)
        if allow_gzip and self.state.args.gzip and \
                "gzip" in (self.headers.get("Accept-Encoding") or ""):
            body = gzip.compress(body)
            extra.append(("Content-Encoding", "gzip"))
        self.send(status, body, "application/json", extra)

    def record_request(self, body):
        return {
            "time": round(time.time(), 3),
            "method": self.command,
            "target": self.path,
            "headers": self.header_list(),
            "body": body[:4096].decode("utf-8", "replace"),
            "body_length": len(body),
        }

    def refuse(self, err, body):
        """Answer a Refusal in its kind's error shape and record it."""
        rec = self.record_request(body)
        rec["rule"] = err.rule
        rec["answer_status"] = err.status
        if err.kind == "v1":
            rec["answer_code"] = err.code
        self.state.write("violations", rec)
        sys.stderr.write(f"strict_api: VIOLATION {self.command} {self.path[:120]}: {err.rule}\n")
        if err.kind == "v1":
            self.send_v1_error(err.code, "strict_api: " + err.rule, err.status)
        elif err.kind == "v2":
            self.send_json(err.status, {"message": "strict_api: " + err.rule})
        else:
            xml = ("<?xml version='1.0' encoding='UTF-8'?><Error><Code>"
                   + ("SignatureDoesNotMatch" if err.status == 403 else "InvalidArgument")
                   + "</Code><Message>strict_api: " + err.rule.replace("<", "&lt;")
                   + "</Message></Error>").encode("utf-8")
            self.send(err.status, xml, "application/xml; charset=UTF-8")

    def send_v1_error(self, code, why, status=None):
        if status is None:
            status = V1_CODE_STATUS.get(code, 500)
        http_status = 200 if self.state.args.v1_error_http == "200" else status
        self.send_json(http_status, {"status": status, "response": [code], "payload": why},
                       allow_gzip=True)

    def accept(self, body, kind, deviations, **extra):
        rec = self.record_request(body if kind == "v1" else b"")
        rec["kind"] = kind
        rec["deviations"] = deviations
        rec.update(extra)
        self.state.write("log", rec)

    def dispatch(self):
        body = b""
        try:
            body = self.read_body()
            target = self.path
            path = target.split("?", 1)[0]
            if path.startswith("/v2/"):
                self.do_presign(body)
            elif path.startswith("/storage/"):
                self.do_storage(body)
            elif path.startswith("/public"):
                self.do_v1(body)
            else:
                raise Refusal(f"no such endpoint {path}", "v2", 404)
        except Refusal as err:
            self.refuse(err, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = dispatch

    # ---- shared header checks ------------------------------------------
    def check_ua_trace(self, kind):
        ua = self.one_header("User-Agent", kind)
        if not ua or not ua.strip():
            raise Refusal("User-Agent missing or empty (§4/§6: the SDK always sends one)", kind)
        trace = self.one_header("X-Cloud-Trace-Context", kind)
        if trace is None:
            raise Refusal("X-Cloud-Trace-Context missing (§4/§6: <uuid4 hex>/1;o=1)", kind)
        if not TRACE_RE.fullmatch(trace):
            raise Refusal(f"X-Cloud-Trace-Context {trace!r} is not <32 hex>/<span>;o=1 (§4/§6)", kind)

    # ---- v2: presigned URLs (§4) ----------------------------------------
    def do_presign(self, body):
        st = self.state
        target = self.path
        path, _, query = target.partition("?")
        deviations = []
        if path != PRESIGN_PATH:
            raise Refusal(f"no v2 endpoint {path} (§2: only {PRESIGN_PATH} is used)", "v2", 404)
        if self.command != "GET":
            raise Refusal(f"{self.command} on {PRESIGN_PATH} (§4: GET)", "v2", 405)
        names = {k.lower() for k, _ in self.header_list()}
        extra = names - V2_HEADERS - V2_TOLERATED
        if extra:
            raise Refusal(f"headers the SDK never sends on the presign: {sorted(extra)} (§4)", "v2")
        for name in sorted(names & V2_TOLERATED):
            value = self.headers.get(name)
            if name == "accept" and value != "*/*":
                raise Refusal(f"Accept: {value} on the presign (§4: no Accept)", "v2")
            if name == "accept-encoding" and value == "identity":
                continue
            if name == "content-length" and value != "0":
                raise Refusal(f"Content-Length: {value} on the presign (§4: no body)", "v2")
            deviations.append(f"{name}: {value} (§4: the SDK sends "
                              + ("Accept-Encoding: identity" if name == "accept-encoding" else "none")
                              + ")")
        if body or self.headers.get("Transfer-Encoding"):
            raise Refusal("a body on the presign GET (§4: no body)", "v2")
        self.check_ua_trace("v2")
        # The signature (§4 steps 1-5), checked before the parameters.
        sig_input = self.one_header("Signature-Input", "v2")
        signature = self.one_header("Signature", "v2")
        digest = self.one_header("Content-Digest", "v2")
        if sig_input is None or signature is None or digest is None:
            raise Refusal("Signature-Input, Signature and Content-Digest are all required (§4)",
                          "v2", 401)
        m = SIG_INPUT_RE.fullmatch(sig_input)
        if not m:
            raise Refusal('Signature-Input is not exactly encord-sig=("@method" "@request-target" '
                          f'"content-digest");created=T;keyid="HEX";alg="ed25519": {sig_input!r} (§4)',
                          "v2", 401)
        created, keyid = int(m.group(1)), m.group(2)
        if digest != content_digest(body):
            raise Refusal(f"Content-Digest {digest!r} is not sha-256 of the body (§4 step 1)", "v2", 401)
        now = time.time()
        if created < now - st.args.created_past:
            raise Refusal(f"created={created} is {int(now - created)} s old "
                          f"(this server accepts {st.args.created_past} s)", "v2", 401)
        if created > now + st.args.created_future:
            raise Refusal(f"created={created} is {int(created - now)} s in the future "
                          f"(this server accepts {st.args.created_future} s)", "v2", 401)
        ms = SIG_RE.fullmatch(signature)
        raw = None
        if ms:
            try:
                raw = base64.b64decode(ms.group(1), validate=True)
            except ValueError:
                raw = None
        if raw is None or len(raw) != 64 or b64(raw) != ms.group(1):
            raise Refusal(f"Signature is not encord-sig=:<base64 of 64 bytes>: {signature!r} (§4 step 5)",
                          "v2", 401)
        key = st.keys.get(keyid)
        if key is None:
            raise Refusal(f"keyid {keyid} is not an authorised key (§2: the raw public key hex)", "v2", 401)
        sig_params = sig_input[len("encord-sig="):]
        base = v2_signature_base(self.command, target, digest, sig_params)
        try:
            key.verify(raw, base.encode("utf-8"))
        except InvalidSignature:
            raise Refusal("Signature does not verify over the signature base of §4 step 4 "
                          f"(@request-target {target!r})", "v2", 401) from None
        # The parameters, exactly count then uploadItemType (§4).
        mq = re.fullmatch(r"count=([1-9][0-9]*)&uploadItemType=([A-Za-z]+)", query)
        if not mq:
            raise Refusal(f"query {query!r} is not count=<N>&uploadItemType=<type> in that order (§4)",
                          "v2")
        count, item_type = int(mq.group(1)), mq.group(2)
        if not 1 <= count <= 200:
            raise Refusal(f"count={count} outside 1..200 (§4: batches of at most 200)", "v2")
        if item_type not in UPLOAD_ITEM_TYPES:
            raise Refusal(f"uploadItemType={item_type} is not image, video or dicomFile (§3)", "v2")
        status = st.take("presign")
        if status is not None:
            self.accept(body, "presign", deviations, injected=f"presign={status}")
            self.send_json(int(status), {"message": f"strict_api: injected presign failure {status}"},
                           extra=self.retry_after(status))
            return
        status = st.take("presign-detail")
        if status is not None:
            self.accept(body, "presign", deviations, injected=f"presign-detail={status}")
            self.send_json(int(status), {"detail": f"strict_api: injected presign failure {status}"})
            return
        short = st.take("presign-short")
        if short is not None:
            count = int(short)
        results = []
        host = f"127.0.0.1:{st.port}"
        with st.lock:
            for _ in range(count):
                item = str(uuid.uuid4())
                key_name = f"cord-strict-bucket/{item_type}/{item}"
                expires = int(now) + 7 * 86400
                q = ("X-Goog-Algorithm=GOOG4-HMAC-SHA256"
                     "&X-Goog-Credential=strict%40encord-test.iam.gserviceaccount.com"
                     "%2F20261201%2Fauto%2Fstorage%2Fgoog4_request"
                     f"&X-Goog-Date=20261201T000000Z&X-Goog-Expires=604800"
                     f"&X-Goog-SignedHeaders=host&X-Strict-Expiry={expires}")
                mac = hmac.new(st.url_secret, f"PUT\n/storage/{key_name}\n{q}".encode(),
                               hashlib.sha256).hexdigest()
                q += "&X-Goog-Signature=" + mac
                st.objects[key_name] = {"item_uuid": item, "type": item_type, "query": q,
                                        "expires": expires, "stored": False,
                                        "content_type": None, "size": None, "submitted": None}
                scheme = "https" if st.args.tls_cert else "http"
                results.append({"item_uuid": item, "object_key": key_name,
                                "signed_url": f"{scheme}://{host}/storage/{key_name}?{q}"})
        answer = {"results": results, "next_page_token": None}
        self.accept(body, "presign", deviations, count=int(mq.group(1)), upload_item_type=item_type,
                    object_keys=[r["object_key"] for r in results],
                    **({"injected": f"presign-short={short}"} if short is not None else {}))
        self.send_json(200, recase(answer, st.args.casing))

    # ---- storage PUT (§5) -----------------------------------------------
    def do_storage(self, body):
        st = self.state
        target = self.path
        path, _, query = target.partition("?")
        key_name = urllib.parse.unquote(path[len("/storage/"):])
        with st.lock:
            obj = st.objects.get(key_name)
        if obj is None:
            raise Refusal(f"no presigned object {key_name}", "storage", 403)
        if query != obj["query"]:
            raise Refusal("the query is not the signed URL's, byte for byte (§5: PUT to the signed URL)",
                          "storage", 403)
        if self.command != "PUT":
            raise Refusal(f"{self.command} to a signed URL (§5: a PUT, never a POST/resumable session)",
                          "storage", 403)
        names = {k.lower() for k, _ in self.header_list()}
        bad = names & PUT_REFUSED
        if bad:
            raise Refusal(f"headers {sorted(bad)} on the storage PUT (§5: no Authorization, "
                          "never a resumable session)", "storage", 400)
        if time.time() > obj["expires"]:
            raise Refusal("signed URL expired", "storage", 403)
        deviations = []
        ctype = self.one_header("Content-Type", "storage")
        if obj["type"] == "video" and ctype != "application/octet-stream":
            raise Refusal(f"Content-Type {ctype!r} for a video (§5: application/octet-stream)",
                          "storage", 403)
        if obj["type"] == "dicomFile" and ctype != "application/dicom":
            raise Refusal(f"Content-Type {ctype!r} for a dicomFile (§5: application/dicom)",
                          "storage", 403)
        if obj["type"] == "image" and ctype is not None and \
                ctype not in set(mimetypes.types_map.values()):
            raise Refusal(f"Content-Type {ctype!r} for an image is no mimetypes guess (§5)",
                          "storage", 403)
        cache = self.headers.get("Cache-Control")
        if cache != "max-age=86400":
            deviations.append(f"Cache-Control: {cache} (§5: the SDK sends max-age=86400)")
        for name in sorted(names - {"host", "content-type", "cache-control", "content-length",
                                    "user-agent", "accept", "accept-encoding", "connection"}):
            deviations.append(f"{name}: {self.headers.get(name)} (§5: not an SDK header)")
        length = self.headers.get("Content-Length")
        if length is None and not self.body_chunked:
            raise Refusal("a PUT with neither Content-Length nor a chunked body (§5)", "storage", 400)
        status = st.take("put")
        if status is not None:
            self.accept(body, "put", deviations, object_key=key_name, injected=f"put={status}")
            self.send(int(status), b"<Error><Code>ServiceUnavailable</Code></Error>",
                      "application/xml", self.retry_after(status))
            return
        dest = os.path.join(st.args.store, key_name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = dest + f".tmp{threading.get_ident()}"
        with open(tmp, "wb") as f:
            f.write(body)
        os.replace(tmp, dest)
        with st.lock:
            again = obj["stored"]
            obj.update(stored=True, content_type=ctype, size=len(body))
        if again:
            deviations.append("a second PUT of a stored object")
        self.accept(body, "put", deviations, object_key=key_name, content_type=ctype,
                    size=len(body))
        etag = '"' + hashlib.md5(body).hexdigest() + '"'
        self.send(200, b"", None, [("ETag", etag)])

    # ---- v1: POST /public (§6) ------------------------------------------
    def do_v1(self, body):
        st = self.state
        target = self.path
        if target != "/public":
            raise Refusal(f"v1 target {target} (§2: exactly /public, never /public/user)", "v1")
        if self.command != "POST":
            raise Refusal(f"{self.command} /public (§6: always POST)", "v1")
        deviations = []
        names = [k.lower() for k, _ in self.header_list()]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise Refusal(f"headers sent more than once: {dup}", "v1")
        extra = set(names) - V1_HEADERS - V1_TOLERATED
        if extra:
            raise Refusal(f"headers outside §6's exact set: {sorted(extra)}", "v1")
        for name in sorted(set(names) & V1_TOLERATED):
            deviations.append(f"{name}: {self.headers.get(name)} (transport)")
        for name, want in (("Accept", "application/json"), ("Content-Type", "application/json"),
                           ("Accept-Encoding", "gzip"), ("ResourceType", "dataset")):
            got = self.headers.get(name)
            if got != want:
                raise Refusal(f"{name}: {got!r}, §6 says {want!r}", "v1")
        if self.headers.get("Content-Length") is None:
            deviations.append("no Content-Length (chunked body)")
        self.check_ua_trace("v1")
        auth = self.headers.get("Authorization")
        if auth is None:
            raise Refusal("no Authorization (§6)", "v1", 401, "AUTHENTICATION_ERROR")
        m = AUTH_V1_RE.fullmatch(auth)
        if not m:
            raise Refusal(f"Authorization {auth[:40]!r}... is not <64 hex>:<128 hex> (§6)",
                          "v1", 401, "AUTHENTICATION_ERROR")
        key = st.keys.get(m.group(1))
        if key is None:
            raise Refusal(f"Authorization key {m.group(1)} is not authorised (§2)", "v1", 401,
                          "SSH_KEY_NOT_FOUND_ERROR")
        try:
            key.verify(bytes.fromhex(m.group(2)), hashlib.sha256(body).digest())
        except InvalidSignature:
            raise Refusal("Authorization signature does not verify over SHA-256(body) (§6)",
                          "v1", 401, "AUTHENTICATION_ERROR") from None
        resource = self.headers.get("ResourceID")
        if resource not in st.datasets:
            raise Refusal(f"ResourceID {resource!r} is no dataset of this key (§2)", "v1", 404,
                          "RESOURCE_NOT_FOUND_ERROR")
        try:
            text = body.decode("utf-8")
            doc = json.loads(text)
        except (UnicodeDecodeError, ValueError) as e:
            raise Refusal(f"body is not UTF-8 JSON: {e}", "v1") from None
        canonical = json.dumps(doc)
        if canonical != text:
            at = next((i for i, (a, b) in enumerate(zip(canonical, text)) if a != b),
                      min(len(canonical), len(text)))
            raise Refusal("body bytes are not json.dumps(...) with Python's defaults (§3, §6): "
                          f"first difference at byte {at}: sent {text[max(0, at - 20):at + 20]!r}, "
                          f"json.dumps gives {canonical[max(0, at - 20):at + 20]!r}", "v1")
        if not isinstance(doc, dict) or list(doc) != ["query_type", "query_method", "values"]:
            raise Refusal("envelope keys are not query_type, query_method, values in order (§6)", "v1")
        values = doc["values"]
        if not isinstance(values, dict) or list(values) != ["uid", "payload"]:
            raise Refusal("values' keys are not uid, payload in order (§6)", "v1")
        qtype, qmethod = doc["query_type"], doc["query_method"]
        injected = st.take("v1")
        if injected is not None:
            self.accept(body, "v1", deviations, query_type=qtype, query_method=qmethod,
                        injected=f"v1={injected}")
            self.send_v1_error(injected, "strict_api: injected v1 error " + injected)
            return
        if (qtype, qmethod) == ("dataset", "GET"):
            self.v1_dataset(body, values, resource, deviations)
        elif (qtype, qmethod) == ("datasetdatalongpolling", "POST"):
            self.v1_job_post(body, values, resource, deviations)
        elif (qtype, qmethod) == ("datasetdatalongpolling", "GET"):
            self.v1_poll(body, values, resource, deviations)
        else:
            raise Refusal(f"query {qtype!r}/{qmethod!r} is none of the upload path's (§1)", "v1")

    def v1_dataset(self, body, values, resource, deviations):
        # §11: get_dataset sends uid null and the access settings.
        if values["uid"] is not None:
            raise Refusal(f"dataset GET uid {values['uid']!r}: §11 sends null (the hash is ResourceID)",
                          "v1")
        payload = values["payload"]
        if not (isinstance(payload, dict) and list(payload) == ["dataset_access_settings"]
                and isinstance(payload["dataset_access_settings"], dict)
                and list(payload["dataset_access_settings"]) == ["fetch_client_metadata"]
                and isinstance(payload["dataset_access_settings"]["fetch_client_metadata"], bool)):
            raise Refusal("dataset GET payload is not {\"dataset_access_settings\": "
                          "{\"fetch_client_metadata\": <bool>}} (§11)", "v1")
        folder = self.state.folders[0] if self.state.folders else None
        answer = {"dataset_hash": resource, "title": f"strict dataset {resource[:8]}",
                  "description": "strict_api test dataset", "dataset_type": "CORD_STORAGE",
                  "backing_folder_uuid": folder, "data_rows": []}
        self.accept(body, "v1", deviations, query_type="dataset", query_method="GET")
        self.send_json(200, {"status": 200, "response": answer}, allow_gzip=True)

    def check_items(self, items, item_type, where, url_key="url"):
        """Validate a list of {url, title} (or one objectUrl element) and return the objects."""
        st = self.state
        out = []
        for i, it in enumerate(items):
            loc = where if url_key == "objectUrl" else f"{where}[{i}]"
            if not isinstance(it, dict):
                raise Refusal(f"{loc} is not an object (§7)", "v1")
            url = it.get(url_key)
            if not isinstance(url, str):
                raise Refusal(f"{loc}.{url_key} missing or not a string (§7)", "v1")
            title = it.get("title")
            if not isinstance(title, str) or not title:
                raise Refusal(f"{loc}.title missing or not a non-empty string (§7)", "v1")
            with st.lock:
                obj = st.objects.get(url)
            if obj is None:
                hint = " (a signed URL: §7 says the objectKey)" if "://" in url else ""
                raise Refusal(f"{loc}.{url_key} {url[:100]!r} is no presigned objectKey{hint}", "v1")
            if obj["type"] != item_type:
                raise Refusal(f"{loc}.{url_key} was presigned as {obj['type']}, "
                              f"this payload needs {item_type} (§1)", "v1")
            if not obj["stored"]:
                raise Refusal(f"{loc}.{url_key} {url} was never stored by a PUT (§1)", "v1")
            if obj["submitted"] is not None:
                raise Refusal(f"{loc}.{url_key} {url} was already submitted in an earlier job POST "
                              "(§10: the SDK never retries the job POST)", "v1")
            if item_type == "image":
                want = mimetypes.guess_type(title)[0]
                if obj["content_type"] != want:
                    raise Refusal(f"{loc} {title!r} was PUT with Content-Type {obj['content_type']!r}; "
                                  f"§5: mimetypes.guess_type gives {want!r}"
                                  + (" (so no header)" if want is None else ""), "v1")
            if any(seen["url"] == url for seen in out):
                raise Refusal(f"{loc}.{url_key} {url} appears twice in the job", "v1")
            out.append({"url": url, "title": title, "obj": obj})
        return out

    def v1_job_post(self, body, values, resource, deviations):
        st = self.state
        if values["uid"] != resource:
            raise Refusal(f"job POST uid {values['uid']!r} is not the ResourceID dataset (§2)", "v1")
        payload = values["payload"]
        if not isinstance(payload, dict):
            raise Refusal("job payload is not an object (§7)", "v1")
        keys = list(payload)
        if keys not in (["dataItems", "ignoreErrors"], ["dataItems", "ignoreErrors", "folderUuid"]):
            raise Refusal(f"job payload keys {keys}: §7 says dataItems, ignoreErrors[, folderUuid] "
                          "in that order (None fields omitted)", "v1")
        if payload["ignoreErrors"] is not False:
            raise Refusal(f"ignoreErrors {payload['ignoreErrors']!r}: §7 says false", "v1")
        folder = payload.get("folderUuid")
        if folder is not None:
            if not isinstance(folder, str) or not UUID_RE.fullmatch(folder):
                raise Refusal(f"folderUuid {folder!r} is not a canonical lower-case UUID (§3)", "v1")
            if st.folders and folder not in st.folders:
                raise Refusal(f"folderUuid {folder} is no folder of this dataset", "v1", 404,
                              "RESOURCE_NOT_FOUND_ERROR")
        elif st.args.require_folder:
            raise Refusal("no folderUuid: this dataset is not a mirror dataset (§12, dataset.py:270)",
                          "v1")
        di = payload["dataItems"]
        if not isinstance(di, dict) or list(di) != DATA_ITEMS_KEYS:
            raise Refusal(f"dataItems keys {list(di) if isinstance(di, dict) else di!r}: §7 says "
                          f"{DATA_ITEMS_KEYS} in that order", "v1")
        for name in DATA_ITEMS_LISTS:
            if not isinstance(di[name], list):
                raise Refusal(f"dataItems.{name} is not a list (§7)", "v1")
        for name in ("skipDuplicateUrls", "upsertMetadata"):
            if di[name] is not False:
                raise Refusal(f"dataItems.{name} {di[name]!r}: §7 says false", "v1")
        full = [n for n in DATA_ITEMS_LISTS if di[n]]
        if len(full) != 1:
            raise Refusal(f"non-empty dataItems lists {full}: §7 says exactly one", "v1")
        kind = full[0]
        if kind not in ("videos", "imageGroups", "dicomSeries", "images"):
            raise Refusal(f"dataItems.{kind} is not one of the four upload calls' (§7)", "v1")
        elements = di[kind]
        if kind in ("imageGroups", "dicomSeries") and len(elements) != 1:
            raise Refusal(f"dataItems.{kind} has {len(elements)} elements (§7: one per call)", "v1")
        units = []      # [title, backing_item_uuid, [objects]]
        all_objs = []
        for n, el in enumerate(elements):
            where = f"dataItems.{kind}[{n}]"
            if not isinstance(el, dict):
                raise Refusal(f"{where} is not an object (§7)", "v1")
            ek = list(el)
            if kind == "imageGroups":
                want = ["images", "title", "clientMetadata", "createVideo", "externalFileType",
                        "clusterByResolution"]
            elif kind == "dicomSeries":
                want = ["dicomFiles", "title", "clientMetadata", "externalFileType"]
            else:
                want = ["objectUrl", "title", "clientMetadata", "externalFileType"]
            if kind in ("imageGroups", "dicomSeries") and "title" not in ek:
                want = [k for k in want if k != "title"]
            if ek != want:
                raise Refusal(f"{where} keys {ek}: §7 says {want} in that order"
                              + (" (title omitted when None)" if "title" in want else ""), "v1")
            if "title" in el and not isinstance(el["title"], str):
                raise Refusal(f"{where}.title {el['title']!r}: a string, or omitted (§7: None is "
                              "omitted)", "v1")
            if el["clientMetadata"] != {}:
                raise Refusal(f"{where}.clientMetadata {el['clientMetadata']!r}: §7 says {{}}", "v1")
            eft = {"imageGroups": "IMG_GROUP", "dicomSeries": "DICOM", "videos": "VIDEO",
                   "images": "IMAGE"}[kind]
            if el["externalFileType"] != eft:
                raise Refusal(f"{where}.externalFileType {el['externalFileType']!r}: §7 says {eft!r}",
                              "v1")
            if kind == "imageGroups":
                if not isinstance(el["createVideo"], bool):
                    raise Refusal(f"{where}.createVideo is not a bool (§7)", "v1")
                if el["clusterByResolution"] is not el["createVideo"]:
                    raise Refusal(f"{where}.clusterByResolution {el['clusterByResolution']!r} != "
                                  f"createVideo {el['createVideo']!r} (§7: always equal)", "v1")
                imgs = el["images"]
                if not isinstance(imgs, list) or not imgs:
                    raise Refusal(f"{where}.images is not a non-empty list (§7)", "v1")
                for i, it in enumerate(imgs):
                    if not isinstance(it, dict) or list(it) != ["url", "title"]:
                        raise Refusal(f"{where}.images[{i}] keys: §7 says url, title", "v1")
                objs = self.check_items(imgs, "image", where + ".images")
                units += self.group_units(el.get("title"), objs, el["clusterByResolution"])
            elif kind == "dicomSeries":
                files = el["dicomFiles"]
                if not isinstance(files, list) or not files:
                    raise Refusal(f"{where}.dicomFiles is not a non-empty list (§7)", "v1")
                for i, it in enumerate(files):
                    if not isinstance(it, dict) or list(it) != ["url", "title"]:
                        raise Refusal(f"{where}.dicomFiles[{i}] keys: §7 says url, title", "v1")
                objs = self.check_items(files, "dicomFile", where + ".dicomFiles")
                title = el.get("title") or f"dicom-series-{uuid.uuid4().hex[:8]}"
                units.append([title, str(uuid.uuid4()), objs])
            else:
                item_type = "video" if kind == "videos" else "image"
                objs = self.check_items([el], item_type, where, "objectUrl")
                units.append([el["title"], objs[0]["obj"]["item_uuid"], objs])
            for o in objs:
                if any(o["url"] == p["url"] for p in all_objs):
                    raise Refusal(f"{o['url']} appears twice in the job", "v1")
            all_objs += objs
        with st.lock:
            for o in all_objs:
                o["obj"]["submitted"] = "refused"
        status = st.take("job-post-http")
        if status is not None:
            self.accept(body, "v1", deviations, query_type="datasetdatalongpolling",
                        query_method="POST", injected=f"job-post-http={status}")
            self.send(int(status), b"<html><body>strict_api: injected gateway error</body></html>",
                      "text/html")
            return
        code = st.take("job-post")
        if code is not None:
            self.accept(body, "v1", deviations, query_type="datasetdatalongpolling",
                        query_method="POST", injected=f"job-post={code}")
            self.send_v1_error(code, "strict_api: injected job POST error " + code)
            return
        end = st.take("job-end") or "DONE"
        process_hash = str(uuid.uuid4())
        job = {"dataset": resource, "kind": kind, "end": end, "polls": 0, "reported": False,
               "units": [{"data_hash": str(uuid.uuid4()), "title": t, "backing_item_uuid": b,
                          "object_urls": [o["url"] for o in objs]} for t, b, objs in units]}
        with st.lock:
            for o in all_objs:
                o["obj"]["submitted"] = process_hash
            st.jobs[process_hash] = job
        flags = [{k: el[k] for k in ("title", "createVideo", "clusterByResolution") if k in el}
                 for el in elements]
        self.accept(body, "v1", deviations, query_type="datasetdatalongpolling", query_method="POST",
                    process_hash=process_hash, job_kind=kind, job_end=end, elements=flags,
                    folder=folder,
                    items=[{"url": o["url"], "title": o["title"]} for o in all_objs])
        self.send_json(200, {"status": 200, "response": {"process_hash": process_hash}},
                       allow_gzip=True)

    def group_units(self, title, objs, cluster):
        """The data units one image group becomes (§9: how many is UNKNOWN)."""
        base = title or f"image-group-{uuid.uuid4().hex[:8]}"
        st = self.state
        n = st.args.split_groups
        if n > 1 and len(objs) >= n:
            per = -(-len(objs) // n)
            chunks = [objs[i:i + per] for i in range(0, len(objs), per)]
            return [[f"{base} ({i + 1}/{len(chunks)})", str(uuid.uuid4()), c]
                    for i, c in enumerate(chunks)]
        if st.args.split_by_resolution and cluster:
            groups = {}
            for o in objs:
                size = png_size(os.path.join(st.args.store, o["url"]))
                groups.setdefault(size, []).append(o)
            if len(groups) > 1:
                return [[f"{base} {s[0]}x{s[1]}" if s else f"{base} other", str(uuid.uuid4()), c]
                        for s, c in groups.items()]
        return [[base, str(uuid.uuid4()), objs]]

    def v1_poll(self, body, values, resource, deviations):
        st = self.state
        if values["uid"] != resource:
            raise Refusal(f"poll uid {values['uid']!r} is not the ResourceID dataset (§8)", "v1")
        payload = values["payload"]
        if not isinstance(payload, dict) or list(payload) != ["process_hash", "timeout_seconds"]:
            raise Refusal("poll payload keys: §8 says process_hash, timeout_seconds in that order "
                          "(a plain dict, snake_case)", "v1")
        ph, timeout = payload["process_hash"], payload["timeout_seconds"]
        if type(timeout) is not int or not 0 <= timeout <= 10:
            raise Refusal(f"timeout_seconds {timeout!r}: §8 says an int, min(remaining, 10)", "v1")
        with st.lock:
            job = st.jobs.get(ph) if isinstance(ph, str) else None
        if job is None or job["dataset"] != resource:
            raise Refusal(f"process_hash {ph!r} is no job of dataset {resource}", "v1", 404,
                          "RESOURCE_NOT_FOUND_ERROR")
        code = st.take("poll-v1")
        if code is not None:
            self.accept(body, "v1", deviations, query_type="datasetdatalongpolling",
                        query_method="GET", process_hash=ph, injected=f"poll-v1={code}")
            self.send_v1_error(code, "strict_api: injected poll error " + code)
            return
        status = st.take("poll")
        if status is not None:
            self.accept(body, "v1", deviations, query_type="datasetdatalongpolling",
                        query_method="GET", process_hash=ph, injected=f"poll={status}")
            self.send(int(status), b"strict_api: injected poll failure", "text/plain")
            return
        with st.lock:
            job["polls"] += 1
            pending = job["polls"] <= st.args.pending_polls
            if job["reported"]:
                deviations.append("a poll after the job's final answer (§8: the SDK's loop ends there)")
        units = job["units"]
        answer = {"status": "PENDING", "data_hashes_with_titles": [], "errors": [],
                  "data_unit_errors": [], "units_pending_count": 0, "units_done_count": 0,
                  "units_error_count": 0, "units_cancelled_count": 0}
        if pending:
            # The long poll: hold the request, as the real server is expected to (§8).
            time.sleep(timeout if st.args.hold_full else min(st.args.pending_hold, timeout))
            answer["units_pending_count"] = len(units)
        elif job["end"] == "DONE":
            answer["status"] = "DONE"
            answer["data_hashes_with_titles"] = [
                {"data_hash": u["data_hash"], "title": u["title"],
                 "backing_item_uuid": u["backing_item_uuid"]} for u in units]
            answer["units_done_count"] = len(units)
        elif job["end"] == "ERROR":
            answer["status"] = "ERROR"
            answer["errors"] = ["strict_api: injected job failure: the data units could not be "
                                "created"]
            answer["data_unit_errors"] = [
                {"object_urls": u["object_urls"], "error": "strict_api: injected unit failure",
                 "subtask_uuid": str(uuid.uuid4()), "action_description": "create data unit"}
                for u in units]
            answer["units_error_count"] = len(units)
        else:
            answer["status"] = "CANCELLED"
            answer["units_cancelled_count"] = len(units)
        final = answer["status"] != "PENDING"
        lines = None
        with st.lock:
            if final and not job["reported"]:
                job["reported"] = True
                if answer["status"] == "DONE":
                    lines = "".join(f"{u['data_hash']}  {u['title']}\n" for u in units)
        if lines:
            st.write("units", lines)
        self.accept(body, "v1", deviations, query_type="datasetdatalongpolling", query_method="GET",
                    process_hash=ph, timeout_seconds=timeout, answer_status=answer["status"])
        self.send_json(200, {"status": 200, "response": recase(answer, st.args.casing)},
                       allow_gzip=True)


def make_server(args):
    """A ThreadingHTTPServer on 127.0.0.1 serving the strict API; state in .state."""
    state = State(args)
    handler = type("BoundHandler", (Handler,), {"state": state})
    server_class = type("StrictServer", (http.server.ThreadingHTTPServer,),
                        {"request_queue_size": 128})  # many transfers connect at once
    srv = server_class(("127.0.0.1", args.port), handler)
    srv.daemon_threads = True
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    state.port = srv.server_address[1]
    srv.state = state
    return srv


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", help="write the port here once listening")
    p.add_argument("--store", required=True, help="directory for PUT objects")
    p.add_argument("--violations", help="JSON lines: refused requests")
    p.add_argument("--log", help="JSON lines: accepted requests")
    p.add_argument("--units", help="DATA_HASH  TITLE lines of the DONE answers")
    p.add_argument("--pubkey", action="append", default=[], help="OpenSSH public key file")
    p.add_argument("--keyid", action="append", default=[], help="raw public key hex")
    p.add_argument("--dataset", action="append", default=[], help="a known dataset hash")
    p.add_argument("--folder", action="append", default=[], help="a known folder UUID")
    p.add_argument("--require-folder", action="store_true")
    p.add_argument("--casing", choices=("camel", "snake"), default="camel",
                   help="keys of v2 and poll answers (§3: both parse)")
    p.add_argument("--split-groups", type=int, default=0,
                   help="split every image group of >= N images into N data units")
    p.add_argument("--split-by-resolution", action="store_true",
                   help="one data unit per PNG resolution when clusterByResolution")
    p.add_argument("--created-past", type=int, default=300)
    p.add_argument("--created-future", type=int, default=60)
    p.add_argument("--pending-polls", type=int, default=1,
                   help="polls of each job answered PENDING before its end")
    p.add_argument("--pending-hold", type=float, default=0.2,
                   help="seconds a PENDING poll is held (capped by timeout_seconds)")
    p.add_argument("--hold-full", action="store_true",
                   help="hold PENDING polls the whole timeout_seconds")
    p.add_argument("--v1-error-http", choices=("same", "200"), default="same",
                   help="HTTP status of v1 error envelopes (§12: UNKNOWN)")
    p.add_argument("--gzip", action="store_true",
                   help="gzip v1 answers (the client sends Accept-Encoding: gzip)")
    p.add_argument("--retry-after", type=int,
                   help="send Retry-After: N with injected presign/PUT 413, 429 and 503 answers")
    p.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (and --tls-key)")
    p.add_argument("--tls-key")
    p.add_argument("--inject", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    if not args.pubkey and not args.keyid:
        p.error("give at least one --pubkey or --keyid")
    if not args.dataset:
        p.error("give at least one --dataset")
    return args


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.store, exist_ok=True)
    srv = make_server(args)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{srv.state.port}\n")
        os.replace(tmp, args.port_file)
    sys.stderr.write(f"strict_api: listening on 127.0.0.1:{srv.state.port}\n")
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
