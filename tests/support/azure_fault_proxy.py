#!/usr/bin/python3
"""A small HTTP proxy in front of Azurite for the Azure tests: it forwards
every request to the upstream and logs each one (method, path, the request
headers bulkup sent, the status answered) as a JSON line, and answers some
itself, by the blob's name:

  .../busy-*       the first PUT: 503 with x-ms-error-code: ServerBusy
                   (then forwarded)
  .../timedout-*   the first PUT: 500 with x-ms-error-code: OperationTimedOut
  .../authfail-*   every PUT: 500 with x-ms-error-code: AuthenticationFailed
                   (a code that must not be retried, whatever the status)

  azure_fault_proxy.py UPSTREAM_PORT LOG PORT_FILE

It listens on 127.0.0.1, on a port the OS picks, written to PORT_FILE.
Deterministic: the faults depend only on the names and the request count."""
import http.client, http.server, json, os, sys, threading

UP = int(sys.argv[1])
LOG = sys.argv[2]
PORT_FILE = sys.argv[3]
lock = threading.Lock()
seen = {}


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _log(self, status):
        rec = {"method": self.command, "path": self.path.split("?")[0],
               "headers": {k.lower(): v for k, v in self.headers.items()},
               "status": status}
        with lock:
            with open(LOG, "a") as f:
                f.write(json.dumps(rec) + "\n")

    def _fault(self, status, code):
        body = ("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s"
                "</Code><Message>injected</Message></Error>" % code).encode()
        self.send_response(status)
        self.send_header("x-ms-error-code", code)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self._log(status)

    def _any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        name = self.path.split("?")[0].rsplit("/", 1)[-1]
        if self.command == "PUT":
            with lock:
                count = seen.get(self.path.split("?")[0], 0) + 1
                seen[self.path.split("?")[0]] = count
            if name.startswith("busy-") and count == 1:
                return self._fault(503, "ServerBusy")
            if name.startswith("timedout-") and count == 1:
                return self._fault(500, "OperationTimedOut")
            if name.startswith("authfail-"):
                return self._fault(500, "AuthenticationFailed")
        c = http.client.HTTPConnection("127.0.0.1", UP, timeout=30)
        hdrs = {k: v for k, v in self.headers.items()
                if k.lower() not in ("connection", "keep-alive")}
        c.request(self.command, self.path, body=body, headers=hdrs)
        r = c.getresponse()
        data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("connection", "keep-alive", "content-length",
                                 "transfer-encoding"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        c.close()
        self._log(r.status)

    do_PUT = do_GET = do_HEAD = do_POST = do_DELETE = _any


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
tmp = PORT_FILE + ".tmp"
with open(tmp, "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(tmp, PORT_FILE)
srv.serve_forever()
