#!/usr/bin/python3
"""gate.py: an HTTP/1.1 proxy for PUTs that lets the first PASS requests
through to the upstream server and holds every later one until released,
so that a test can kill an upload mid-run at a known point: exactly PASS
objects stored, the client busy with more.

  gate.py --upstream PORT (--pass PASS | --pass-file FILE) --dir DIR

With --pass-file, PASS is read from FILE at the first PUT (so that it
may depend on the port). Listens on a free 127.0.0.1 port, written to
DIR/port. DIR/status holds
"passed=P held=H dropped=D" (rewritten at each change): P requests
forwarded and answered, H waiting at the gate, D dropped because their
client went away while held (they never reach the upstream). SIGUSR1
opens the gate: held requests whose client is still there, and all
later ones, are forwarded. SIGTERM stops it.
"""
import argparse
import http.client
import os
import select
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
opened = threading.Event()
state = {"admitted": 0, "passed": 0, "held": 0, "dropped": 0}
args = None


def write_status():
    """Called with lock held."""
    tmp = os.path.join(args.dir, "status.tmp")
    with open(tmp, "w") as f:
        f.write("passed=%d held=%d dropped=%d\n"
                % (state["passed"], state["held"], state["dropped"]))
    os.replace(tmp, os.path.join(args.dir, "status"))


def client_gone(sock) -> bool:
    try:
        r, _, _ = select.select([sock], [], [], 0)
        return bool(r) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = None

    def log_message(self, *a):
        pass

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            if args.passes is None:
                with open(args.pass_file) as f:
                    args.passes = int(f.read())
            go = opened.is_set() or state["admitted"] < args.passes
            if go:
                state["admitted"] += 1
            else:
                state["held"] += 1
                write_status()
        if not go:
            while not opened.wait(0.02):
                if client_gone(self.connection):
                    with lock:
                        state["held"] -= 1
                        state["dropped"] += 1
                        write_status()
                    self.close_connection = True
                    return
            with lock:
                state["held"] -= 1
        if self.upstream is None:
            self.upstream = http.client.HTTPConnection("127.0.0.1", args.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "connection", "expect")}
        self.upstream.request("PUT", self.path, body=body, headers=headers)
        resp = self.upstream.getresponse()
        data = resp.read()
        self.send_response(resp.status, resp.reason)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        with lock:
            state["passed"] += 1
            write_status()


def main():
    global args
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", type=int, required=True)
    ap.add_argument("--pass", dest="passes", type=int)
    ap.add_argument("--pass-file")
    ap.add_argument("--dir", required=True)
    args = ap.parse_args()
    if (args.passes is None) == (args.pass_file is None):
        ap.error("give one of --pass and --pass-file")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    signal.signal(signal.SIGUSR1, lambda *_: opened.set())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with lock:
        write_status()
    tmp = os.path.join(args.dir, "port.tmp")
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, os.path.join(args.dir, "port"))
    srv.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
