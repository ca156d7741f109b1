#!/usr/bin/python3
"""Functional test of bench/delay_proxy (ctest: delay_proxy).

    test_delay_proxy.py PATH/TO/delay_proxy

No timing is asserted (ctest must not assert speed): only that bytes arrive
intact and in order in both directions, that FIN crosses each way, and that
many connections are carried at once.

1. 600 connections held open at the same time through a proxy with 20 ms
   of RTT and --connect-rtt (the upstream counts them; only when all 600
   are connected does any client send). Each connection runs one of:
   - "req": the client sends a payload and shuts down its write side; the
     upstream reads to EOF (so the client's FIN arrived), answers with the
     SHA-256 and length of what it got plus a reply derived from the
     connection's id, then closes; the client reads to EOF (the upstream's
     FIN arrived) and checks the whole reply.
   - "srv": the reverse half-close: the upstream sends its reply and shuts
     down first while the client is still sending; the client reads to EOF,
     then sends its payload and FIN; the upstream records what it got.
   Payloads are 0 bytes to 256 KiB, a few of them 6 MiB (beyond the
   proxy's --buffer 1 MiB, so reading must stop and resume).
2. The proxy's counters on SIGTERM: exit status 0, 600+ connections, the
   maximum at once >= 600, no aborts.
3. An unreachable upstream (a port bound but not listening): the client's
   connection is closed without a byte.
4. With --rtt 0: one more round of 50 "req" connections (the no-delay path).
"""
import asyncio
import hashlib
import os
import random
import resource
import signal
import socket
import subprocess
import sys

N_CONN = 600
BIG = 6 << 20
PASSED = 0
FAILED = 0


def check(name, ok, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"ok - {name}")
    else:
        FAILED += 1
        print(f"FAIL - {name} {detail}")


def payload(i):
    rng = random.Random(f"req-{i}")
    if i % 97 == 5:
        size = BIG
    elif i % 13 == 0:
        size = 0
    else:
        size = rng.randrange(1, 256 * 1024)
    return rng.randbytes(size)


def reply(i):
    rng = random.Random(f"rep-{i}")
    size = BIG if i % 89 == 7 else rng.randrange(0, 128 * 1024)
    return rng.randbytes(size)


class Upstream:
    def __init__(self, expect):
        self.expect = expect
        self.accepted = 0
        self.all_in = asyncio.Event()
        self.received = {}  # id -> (len, sha) of what the upstream read
        self.errors = []
        self.finished = 0
        self.all_done = asyncio.Event()

    async def handle(self, reader, writer):
        self.accepted += 1
        if self.accepted >= self.expect:
            self.all_in.set()
        try:
            line = await reader.readline()
            cid, mode = line.decode().split()
            cid = int(cid)
            if mode == "req":
                body = await reader.read(-1)  # to EOF: the client's FIN
                self.received[cid] = (len(body), hashlib.sha256(body).hexdigest())
                writer.write(f"{len(body)} {hashlib.sha256(body).hexdigest()}\n".encode())
                writer.write(reply(cid))
                await writer.drain()
                writer.close()
            else:  # srv: reply and FIN first, then read the client's data
                writer.write(reply(cid))
                await writer.drain()
                writer.write_eof()
                body = await reader.read(-1)
                self.received[cid] = (len(body), hashlib.sha256(body).hexdigest())
                writer.close()
        except Exception as e:  # noqa: BLE001 - reported as a failure
            self.errors.append(repr(e))
            writer.close()
        self.finished += 1
        if self.finished >= self.expect:
            self.all_done.set()


async def client(port, cid, mode, start, errors):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await start.wait()
    body = payload(cid)
    writer.write(f"{cid} {mode}\n".encode())
    if mode == "req":
        writer.write(body)
        await writer.drain()
        writer.write_eof()
        header = await reader.readline()
        rest = await reader.read(-1)
        want = f"{len(body)} {hashlib.sha256(body).hexdigest()}\n".encode()
        if header != want:
            errors.append(f"{cid}: upstream saw {header!r}, sent {want!r}")
        elif rest != reply(cid):
            errors.append(f"{cid}: reply of {len(rest)} bytes differs (want {len(reply(cid))})")
    else:
        await writer.drain()
        got = await reader.read(-1)  # the upstream's FIN, our side still open
        if got != reply(cid):
            errors.append(f"{cid}: early reply of {len(got)} bytes differs")
        writer.write(body)
        await writer.drain()
        writer.write_eof()
    writer.close()


async def start_proxy(exe, upstream_port, *opts):
    proc = await asyncio.create_subprocess_exec(
        exe, "--upstream", f"127.0.0.1:{upstream_port}", *opts,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    line = await proc.stdout.readline()
    return proc, int(line)


async def stop_proxy(proc):
    proc.send_signal(signal.SIGTERM)
    err = await proc.stderr.read()
    rc = await proc.wait()
    return rc, err.decode()


def counter(text, pattern):
    import re
    m = re.search(pattern, text)
    return int(m.group(1)) if m else -1


async def round_trip(exe, n, opts, label):
    up = Upstream(n)
    server = await asyncio.start_server(up.handle, "127.0.0.1", 0, backlog=4096)
    uport = server.sockets[0].getsockname()[1]
    proc, port = await start_proxy(exe, uport, *opts)
    errors = []
    tasks = [asyncio.create_task(client(port, i, "req" if i % 3 else "srv", up.all_in, errors))
             for i in range(n)]
    # every client is connected through the proxy before any sends a byte
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for t in done:
        if t.exception():
            errors.append(repr(t.exception()))
    # and every upstream handler has read its payload to EOF
    await up.all_done.wait()
    check(f"{label}: {n} connections, bytes intact both ways", not errors and not up.errors,
          "; ".join((errors + up.errors)[:5]))
    bad = [i for i in range(n)
           if up.received.get(i) != (len(payload(i)), hashlib.sha256(payload(i)).hexdigest())]
    check(f"{label}: the upstream read every payload to its FIN", not bad,
          f"first bad: {[(i, up.received.get(i), len(payload(i))) for i in bad[:5]]}")
    rc, err = await stop_proxy(proc)
    check(f"{label}: SIGTERM stops the proxy with status 0", rc == 0, f"rc {rc}: {err}")
    check(f"{label}: proxy counted {n} connections",
          counter(err, r"(\d+) connections") == n, err)
    check(f"{label}: proxy carried all {n} at once",
          counter(err, r"max (\d+) at once") == n, err)
    check(f"{label}: no connection aborted", counter(err, r"(\d+) aborted") == 0, err)
    server.close()
    await server.wait_closed()


async def unreachable(exe):
    hold = socket.socket()
    hold.bind(("127.0.0.1", 0))  # bound, not listening: connect is refused
    proc, port = await start_proxy(exe, hold.getsockname()[1], "--rtt", "10")
    # The proxy accepts, its connect is refused, it resets the client's
    # connection: seen as a reset (maybe already at connect) or an EOF.
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello")
        got = await reader.read(-1)
        writer.close()
    except ConnectionResetError:
        got = b""
    check("unreachable upstream: the client's connection is closed, no bytes", got == b"")
    rc, err = await stop_proxy(proc)
    check("unreachable upstream: counted as an upstream failure",
          rc == 0 and counter(err, r"(\d+) upstream failures") == 1, err)
    hold.close()


async def main(exe):
    await round_trip(exe, N_CONN, ["--rtt", "20", "--connect-rtt", "--buffer", str(1 << 20)],
                     "rtt 20 ms, connect-rtt")
    await unreachable(exe)
    await round_trip(exe, 50, ["--rtt", "0"], "rtt 0")


if __name__ == "__main__":
    if len(sys.argv) != 2 or not os.access(sys.argv[1], os.X_OK):
        sys.exit("usage: test_delay_proxy.py PATH/TO/delay_proxy")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * N_CONN + 64  # this process holds both ends' client and server sockets
    if hard != resource.RLIM_INFINITY and hard < need:
        print(f"skip: RLIMIT_NOFILE hard limit {hard} < {need}")
        sys.exit(77)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    # A bound on the whole test (no timing is asserted; this only stops a hang).
    try:
        asyncio.run(asyncio.wait_for(main(sys.argv[1]), 240))
    except asyncio.TimeoutError:
        check("finished within 240 s", False)
    print(f"{PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED or not PASSED else 0)
