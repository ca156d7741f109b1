#!/usr/bin/env python3
"""Run one benchmark command and record one JSON line.

    measure.py --results FILE --nginx-state DIR --store DIR --prefix P
               --listing TSV --src DIR [--limit N] [--sample K] [--timeout S]
               [--meta KEY=VALUE ...] [--proxy-pid PID] -- COMMAND ARGS...

Around COMMAND (run in its own process group, stdout to /dev/null, stderr to
FILE.log): nginx's workers' CPU seconds and its accepted connections before and
after (scripts/nginx-webdav workers-cpu / connections), the wall time
(perf_counter) and the client's user+sys CPU from wait4()'s rusage: the
client process and every descendant it waited for (curl, bulkup, python and
rclone are single processes). The peak RSS comes from GNU time (%M), which
runs the command: wait4()'s ru_maxrss would not do, because Linux carries a
process's high-water RSS across exec, so a child forked from this script
reports at least this script's own RSS (with a 100,000-line listing loaded,
28 MB, whatever the tool used). Then it checks the store: every one
of the first N files of the listing must be at STORE/P/REL with its size,
nothing else may be there, and K of them (a sample seeded by P) must compare
equal to the source. A run that fails any check, exits non-zero or times out
is recorded with valid=false. Finally STORE/P is removed (the store is emptied
between runs).
With --proxy-pid (WAN mode: bench/delay_proxy between client and nginx),
the proxy's user+sys CPU seconds during the run are recorded too (from
/proc/PID/stat, 10 ms ticks), as proxy_cpu_s.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NGINX_WEBDAV = os.path.join(HERE, "..", "scripts", "nginx-webdav")
GNU_TIME = "/usr/bin/time"  # Debian's package "time"


def nginx(cmd, state):
    out = subprocess.run(
        [NGINX_WEBDAV, cmd, state], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    return float(out.strip())


def proc_cpu(pid):
    """user+sys CPU seconds of process PID so far (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # rest[0] is field 3 (state): utime and stime are fields 14 and 15
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def read_listing(path, limit):
    rows = []
    with open(path) as f:
        for line in f:
            rel, size = line.rstrip("\n").split("\t")
            rows.append((rel, int(size)))
            if limit and len(rows) >= limit:
                break
    return rows


def same_content(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x = fa.read(1 << 20)
            y = fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def verify(store, prefix, src, rows, sample, errors):
    root = os.path.join(store, prefix)
    found = {}
    for d, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(d, name)
            found[os.path.relpath(p, root)] = os.stat(p).st_size
    stored_bytes = sum(found.values())
    missing = [rel for rel, size in rows if found.get(rel) != size]
    extra = len(found) - (len(rows) - len(missing))
    if missing:
        errors.append(f"{len(missing)} files missing or of the wrong size (first: {missing[0]})")
    if extra > 0:
        errors.append(f"{extra} unexpected files in the store")
    if not missing and rows:
        rng = random.Random(prefix)
        for rel, _ in rng.sample(rows, min(sample, len(rows))):
            if not same_content(os.path.join(src, rel), os.path.join(root, rel)):
                errors.append(f"content differs: {rel}")
                break
    return len(found), stored_bytes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--nginx-state", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--listing", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--sample", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--meta", action="append", default=[])
    ap.add_argument("--proxy-pid", type=int)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command and a.command[0] == "--" else a.command
    if not cmd:
        sys.exit("measure: no command")

    rows = read_listing(a.listing, a.limit)
    rec = {}
    for kv in a.meta:
        k, _, v = kv.partition("=")
        try:
            rec[k] = int(v)
        except ValueError:
            rec[k] = v
    rec.update(prefix=a.prefix, files=len(rows), bytes=sum(s for _, s in rows))

    pcpu0 = proc_cpu(a.proxy_pid) if a.proxy_pid else None
    cpu0 = nginx("workers-cpu", a.nginx_state)
    conn0 = nginx("connections", a.nginx_state)
    log = open(a.results + ".log", "a")
    log.write(f"== {a.prefix}: {' '.join(cmd)}\n")
    log.flush()
    timed_out = []
    rss_file = a.results + ".rss"
    run_cmd = cmd
    if os.access(GNU_TIME, os.X_OK):
        run_cmd = [GNU_TIME, "-f", "%M", "-o", rss_file] + cmd
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        run_cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
        start_new_session=True,
    )

    def kill():
        timed_out.append(True)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(a.timeout, kill)
    timer.start()
    try:
        _, status, ru = os.wait4(proc.pid, 0)
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    finally:
        timer.cancel()
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    # Reap any process left in the group (none expected).
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    cpu1 = nginx("workers-cpu", a.nginx_state)
    pcpu1 = proc_cpu(a.proxy_pid) if a.proxy_pid else None
    conn1 = nginx("connections", a.nginx_state)
    maxrss_kb = None  # unknown without GNU time
    if run_cmd is not cmd:
        try:
            with open(rss_file) as f:
                lines = f.read().split()
            maxrss_kb = int(lines[-1]) if lines else None
        except (OSError, ValueError):
            pass
        try:
            os.unlink(rss_file)
        except OSError:
            pass

    errors = []
    if timed_out:
        errors.append(f"timed out after {a.timeout:g} s")
    if proc.returncode != 0:
        errors.append(f"exit status {proc.returncode}")
    stored_files, stored_bytes = verify(a.store, a.prefix, a.src, rows, a.sample, errors)
    shutil.rmtree(os.path.join(a.store, a.prefix), ignore_errors=True)

    rec.update(
        wall_s=round(wall, 4),
        user_s=round(ru.ru_utime, 4),
        sys_s=round(ru.ru_stime, 4),
        maxrss_kb=maxrss_kb,
        # voluntary + involuntary context switches of the client
        ctx_switches=ru.ru_nvcsw + ru.ru_nivcsw,
        server_cpu_s=round(cpu1 - cpu0, 2),
        connections=int(conn1 - conn0),
        proxy_cpu_s=round(pcpu1 - pcpu0, 2) if a.proxy_pid else None,
        exit=proc.returncode,
        stored_files=stored_files,
        stored_bytes=stored_bytes,
        valid=not errors,
        errors=errors,
        time=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    with open(a.results, "a") as f:
        f.write(json.dumps(rec) + "\n")
    n = max(len(rows), 1)
    print(
        f"  {rec.get('tool', '?'):>7} {str(rec.get('setting', '')):>10}: "
        f"{len(rows) / wall:9.0f} files/s {rec['bytes'] / wall / 1e6:8.1f} MB/s  "
        f"client {1e6 * (ru.ru_utime + ru.ru_stime) / n:6.0f} us/file  "
        f"server {1e6 * (cpu1 - cpu0) / n:6.0f} us/file  "
        f"ctxsw {(ru.ru_nvcsw + ru.ru_nivcsw) / n:5.2f}/file  conns {int(conn1 - conn0)}"
        + (f"  proxy {100 * (pcpu1 - pcpu0) / wall:4.0f}% CPU" if a.proxy_pid else "")
        + ("" if not errors else "  INVALID: " + "; ".join(errors)),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
