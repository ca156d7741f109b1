#!/usr/bin/python3
"""mp_proxy.py - a reverse proxy for the multipart tests
(tests/test_multipart.sh): it forwards HTTP/1.1 requests to a real server
(s3rver, Azurite) over keep-alive connections, counts them, and injects the
faults it is told to, each once:

  mp_proxy.py UPSTREAM_PORT STATS_FILE [--fail503 SUBSTR] [--cut SUBSTR]
              [--hold-after N] [--barrier N]

  --fail503 SUBSTR  the first request whose target contains SUBSTR gets a
                    503 (its body read, nothing forwarded)
  --cut SUBSTR      the first request whose target contains SUBSTR has its
                    connection closed after half of its body was read
                    (nothing forwarded)
  --refuse SUBSTR   every request whose target contains SUBSTR gets a 403
                    (its body read, nothing forwarded)
  --hold-after N    after N part requests were answered, later part
                    requests are read and never answered
  --check-signed    every request must carry "x-bk-signed: METHOD LEN
                    SHA256 KIND" (mp_upload --sign-check) matching what
                    arrived, KIND the bulkup_request_kind the request is
                    (1 create, 2 part, 3 complete, 4 abort, 0 a single
                    PUT): SIGNED_OK and SIGNED_BAD count them
  --barrier N       a part request is not forwarded until N part requests
                    have been in flight at once (or 20 s passed): proof that
                    parts travel side by side

A part request is one whose target has "partNumber=" (S3 UploadPart) or
"comp=block&" (Azure Put Block). Prints its port on the first line of
stdout. After every request it rewrites STATS_FILE (shell assignments):
REQUESTS, PARTS_RECEIVED, PARTS_FORWARDED, PARTS_ANSWERED, FAILED503, CUT,
REFUSED, DELETES (forwarded), COMPLETES (forwarded S3 POST ?uploadId= or
Azure comp=blocklist), MAX_PARTS_IN_FLIGHT, CONNECTIONS,
MAX_CONNECTIONS."""
import hashlib
import http.client
import http.server
import os
import socket
import socketserver
import sys
import threading
import time

UP = int(sys.argv[1])
STATS = sys.argv[2]
args = sys.argv[3:]
opts = {}
while args:
    if args[0] == "--check-signed":
        opts[args[0]] = "1"
        args = args[1:]
        continue
    opts[args[0]] = args[1]
    args = args[2:]
CHECK_SIGNED = "--check-signed" in opts
FAIL503 = opts.get("--fail503")
CUT = opts.get("--cut")
REFUSE = opts.get("--refuse")
HOLD_AFTER = int(opts["--hold-after"]) if "--hold-after" in opts else None
BARRIER = int(opts.get("--barrier", "0"))

lock = threading.Condition()
st = dict(REQUESTS=0, PARTS_RECEIVED=0, PARTS_FORWARDED=0, PARTS_ANSWERED=0,
          FAILED503=0, CUT=0, REFUSED=0, SIGNED_OK=0, SIGNED_BAD=0, DELETES=0, COMPLETES=0,
          MAX_PARTS_IN_FLIGHT=0, CONNECTIONS=0,
          MAX_CONNECTIONS=0)
live = {"conns": 0, "parts": 0}
fired = {"503": False, "cut": False}


def request_kind(method, target):
    """The bulkup_request_kind of a request, from what the server sees."""
    q = target.partition("?")[2]
    names = [p.partition("=")[0] for p in q.split("&")] if q else []
    if "partNumber" in names or ("comp" in names and "blockid" in names):
        return 2
    if method == "POST" and "uploads" in names:
        return 1
    if (method == "POST" and "uploadId" in names) or "comp=blocklist" in q:
        return 3
    if method == "DELETE" and "uploadId" in names:
        return 4
    return 0


def write_stats():
    tmp = STATS + ".tmp"
    with open(tmp, "w") as f:
        for k, v in st.items():
            f.write("%s=%d\n" % (k, v))
    os.replace(tmp, STATS)


def is_part(target):
    return "partNumber=" in target or "comp=block&" in target


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def setup(self):
        super().setup()
        with lock:
            st["CONNECTIONS"] += 1
            live["conns"] += 1
            st["MAX_CONNECTIONS"] = max(st["MAX_CONNECTIONS"], live["conns"])
            write_stats()
        self.up = None

    def finish(self):
        try:
            super().finish()
        finally:
            with lock:
                live["conns"] -= 1
            if self.up:
                self.up.close()

    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def answer(self, status, body=b"", headers=()):
        self.send_response_only(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def handle_any(self):
        target = self.path
        part = is_part(target)
        with lock:
            st["REQUESTS"] += 1
            if part:
                st["PARTS_RECEIVED"] += 1
            cut = CUT and CUT in target and not fired["cut"]
            f503 = (not cut) and FAIL503 and FAIL503 in target and \
                not fired["503"]
            if cut:
                fired["cut"] = True
            if f503:
                fired["503"] = True
            hold = part and HOLD_AFTER is not None and \
                st["PARTS_ANSWERED"] >= HOLD_AFTER
            write_stats()
        if cut:
            n = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(n // 2)
            with lock:
                st["CUT"] += 1
                write_stats()
            self.close_connection = True
            try:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER,
                    b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
            return
        data = self.body()
        if CHECK_SIGNED:
            want = "%s %d %s %d" % (self.command, len(data),
                                    hashlib.sha256(data).hexdigest(),
                                    request_kind(self.command, target))
            good = self.headers.get("x-bk-signed") == want
            with lock:
                st["SIGNED_OK" if good else "SIGNED_BAD"] += 1
                write_stats()
            del self.headers["x-bk-signed"]
        if REFUSE and REFUSE in target:
            with lock:
                st["REFUSED"] += 1
                write_stats()
            self.answer(403, b"<Error><Code>AccessDenied</Code></Error>")
            return
        with lock:
            if self.command == "DELETE":
                st["DELETES"] += 1
            if "comp=blocklist" in target or (
                    self.command == "POST" and "uploadId=" in target):
                st["COMPLETES"] += 1
            write_stats()
        if f503:
            with lock:
                st["FAILED503"] += 1
                write_stats()
            self.answer(503, b"<Error><Code>ServerBusy</Code></Error>",
                        [("x-ms-error-code", "ServerBusy")])
            return
        if hold:
            time.sleep(3600)
            return
        if part:
            with lock:
                live["parts"] += 1
                st["MAX_PARTS_IN_FLIGHT"] = max(st["MAX_PARTS_IN_FLIGHT"],
                                                live["parts"])
                lock.notify_all()
                end = time.monotonic() + 20
                while BARRIER and st["MAX_PARTS_IN_FLIGHT"] < BARRIER and \
                        time.monotonic() < end:
                    lock.wait(end - time.monotonic())
                st["PARTS_FORWARDED"] += 1
                write_stats()
        try:
            if self.up is None:
                self.up = http.client.HTTPConnection("127.0.0.1", UP,
                                                     timeout=60)
            hdrs = {k: v for k, v in self.headers.items()
                    if k.lower() not in ("connection", "keep-alive")}
            self.up.request(self.command, target, body=data, headers=hdrs)
            r = self.up.getresponse()
            rb = r.read()
            rh = [(k, v) for k, v in r.getheaders()
                  if k.lower() not in ("content-length", "connection",
                                       "transfer-encoding", "keep-alive")]
            status = r.status
        except Exception:
            if self.up:
                self.up.close()
            self.up = None
            status, rb, rh = 502, b"upstream failed", []
        finally:
            if part:
                with lock:
                    live["parts"] -= 1
        if part:
            with lock:
                if 200 <= status < 300:
                    st["PARTS_ANSWERED"] += 1
                write_stats()
        self.answer(status, rb, rh)

    do_PUT = do_POST = do_GET = do_DELETE = do_HEAD = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = Server(("127.0.0.1", 0), Handler)
with lock:
    write_stats()
print(srv.server_address[1], flush=True)
srv.serve_forever()
