#!/usr/bin/python3
"""bench/azure_bench.py - bulkup against curl -Z uploading blobs to
Azurite (Microsoft's Azure Storage emulator, npm azurite@3.35.0) over
loopback, side by side in one run.

  bench/azure_bench.py [--files 1000] [--size 4096] [--reps 5]
                       [--parallel 16,64] [--bulkup build/bulkup]

Each repetition runs every tool once, in a rotated order (A B C D, then
B C D A, ...), after one warm-up round that is not counted; every run
writes fresh blob names (a prefix per run) to a fresh in-memory Azurite
(started for the run, stopped after: the emulator slows down as its store
grows, which would favour whichever tool runs first). The tools:
  bulkup --manifest sas.csv --workers N      (x-ms-blob-type, x-ms-version
                                              sent by itself)
  curl -Z --parallel-max N -K cfg -H 'x-ms-blob-type: BlockBlob'
       -H 'x-ms-version: 2023-11-03'         (one upload-file/url pair per
                                              blob in cfg)
Both send the same SAS URLs (a container SAS made from the documented
string-to-sign with the emulator's published key, tests/support/azure_sas.py)
and the same seeded files. Every run's blobs are counted afterwards (a List
Blobs with the prefix): a run that did not store every blob is invalid.
Prints a Markdown table: median files/s and MB/s (10^6 bytes; for large
blobs, e.g. --files 2 --size 209715200, where bulkup sends parallel blocks and
curl one Put Blob each), client CPU ms per 1,000 files (user+sys of the
tool), and bulkup/curl ratios at each N.

Azurite is one Node.js process: it is the bound here, and on a shared
2-core machine its CPU competes with the client's; what counts is the
ratio in one run."""
import argparse, os, random, re, shutil, signal, statistics, subprocess
import sys, tempfile, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "support"))
import azure_sas  # noqa: E402


def run_timed(cmd, **kw):
    """Run cmd; (wall seconds, user+sys seconds of the child, exit code)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, **kw)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_utime + ru.ru_stime, p.returncode


def count_blobs(ep, cont, prefix, token):
    n, marker = 0, ""
    while True:
        url = "%s/%s?restype=container&comp=list&prefix=%s&%s%s" % (
            ep, cont, prefix, token, "&marker=" + marker if marker else "")
        with urllib.request.urlopen(url, timeout=60) as r:
            body = r.read().decode()
        n += body.count("<Blob>")
        m = re.search(r"<NextMarker>([^<]+)</NextMarker>", body)
        if not m:
            return n
        marker = m.group(1)


def main():
    # SIGTERM ends the run through the finally below (Azurite stopped).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--parallel", default="16,64")
    ap.add_argument("--bulkup", default=os.path.join(SRC, "build", "bulkup"))
    a = ap.parse_args()
    npm = os.environ.get("BULKUP_NPM_DIR", os.path.join(SRC, "build", "npm"))
    azurite = os.path.join(npm, "node_modules", ".bin", "azurite-blob")
    work = tempfile.mkdtemp(prefix="bulkup-azbench.", dir="/dev/shm"
                            if os.path.isdir("/dev/shm") else None)
    cont = "bench"
    state = {"az": None}

    def start_azurite():
        """A fresh emulator, in memory, for each run: every run finds the
        same empty store (Azurite slows down as its store grows)."""
        d = tempfile.mkdtemp(dir=work)
        log = os.path.join(d, "azurite.log")
        with open(log, "w") as lf:
            state["az"] = subprocess.Popen(
                [azurite, "--inMemoryPersistence", "--blobHost", "127.0.0.1",
                 "--blobPort", "0", "--disableTelemetry", "--silent"],
                stdout=lf, stderr=subprocess.STDOUT, cwd=d)
        for _ in range(600):
            m = re.search(r"listens on http://127\.0\.0\.1:(\d+)",
                          open(log).read())
            if m:
                ep = "http://127.0.0.1:%s/devstoreaccount1" % m.group(1)
                req = urllib.request.Request(
                    "%s/%s?restype=container&%s" % (
                        ep, cont, azure_sas.account_sas()),
                    method="PUT", headers={"x-ms-version": "2021-12-02"})
                urllib.request.urlopen(req, timeout=30).read()
                return ep
            time.sleep(0.1)
        sys.exit("Azurite did not start: " + open(log).read())

    def stop_azurite():
        if state["az"]:
            state["az"].terminate()
            state["az"].wait()
            state["az"] = None

    try:
        token = azure_sas.sas(cont, perm="rcwl")
        data = os.path.join(work, "data")
        os.makedirs(data)
        rnd = random.Random(1)
        names = ["f%05d.bin" % i for i in range(a.files)]
        for n in names:
            with open(os.path.join(data, n), "wb") as f:
                f.write(rnd.randbytes(a.size))
        load0 = open("/proc/loadavg").read().split()[:3]

        par = [int(x) for x in a.parallel.split(",")]
        tools = [(t, n) for n in par for t in ("bulkup", "curl")]
        runs = {t: [] for t in tools}
        seq = [0]

        def one(tool, counted):
            t, n = tool
            ep = start_azurite()
            seq[0] += 1
            prefix = "r%03d-%s%d/" % (seq[0], t, n)
            if t == "bulkup":
                man = os.path.join(work, "m.csv")
                with open(man, "w") as f:
                    for nm in names:
                        f.write("%s,%s/%s/%s%s?%s\n" % (
                            os.path.join(data, nm), ep, cont, prefix, nm, token))
                cmd = [a.bulkup, "upload", "-q", "--workers", str(n),
                       "--manifest", man]
            else:
                cfg = os.path.join(work, "curl.cfg")
                with open(cfg, "w") as f:
                    for nm in names:
                        f.write('upload-file = "%s"\nurl = "%s/%s/%s%s?%s"\n'
                                'output = "/dev/null"\n' % (
                                    os.path.join(data, nm), ep, cont, prefix,
                                    nm, token))
                cmd = ["curl", "-sS", "--no-progress-meter", "-Z", "--parallel-max", str(n),
                       "--fail", "-H", "x-ms-blob-type: BlockBlob",
                       "-H", "x-ms-version: 2023-11-03", "-K", cfg]
            with open(os.path.join(work, "tool.err"), "w") as err:
                wall, cpu, rc = run_timed(cmd, stdout=subprocess.DEVNULL,
                                          stderr=err)
            stored = count_blobs(ep, cont, prefix, token)
            stop_azurite()
            ok = rc == 0 and stored == a.files
            if counted:
                runs[tool].append((wall, cpu, ok))
            if not ok:
                print("invalid run: %s %d: exit %d, %d of %d stored" % (
                    t, n, rc, stored, a.files), file=sys.stderr)

        for tool in tools:  # warm-up, not counted
            one(tool, False)
        for r in range(a.reps):
            order = tools[r % len(tools):] + tools[:r % len(tools)]
            for tool in order:
                one(tool, True)

        load = open("/proc/loadavg").read().split()[:3]
        print("%d files of %d B, %d repetitions (medians), a fresh in-memory "
              "Azurite per run; load average (1, 5, 15 min) before %s, after "
              "%s" % (a.files, a.size, a.reps, " ".join(load0),
                      " ".join(load)))
        print()
        print("| tool | N | files/s | MB/s | CPU ms / 1k files | valid runs |")
        print("|---|---|---|---|---|---|")
        med = {}
        for tool in tools:
            rs = [x for x in runs[tool] if x[2]]
            if not rs:
                print("| %s | %d | - | - | - | 0/%d |" % (tool[0], tool[1],
                                                      a.reps))
                continue
            fps = statistics.median(a.files / w for w, _, _ in rs)
            cpu = statistics.median(c / a.files * 1e6 for _, c, _ in rs)
            med[tool] = (fps, cpu)
            mbs = fps * a.size / 1e6
            print("| %s | %d | %.*f | %.1f | %.0f | %d/%d |" % (
                tool[0], tool[1], 0 if fps >= 100 else 2, fps, mbs, cpu,
                len(rs), a.reps))
        print()
        for n in par:
            b, c = med.get(("bulkup", n)), med.get(("curl", n))
            if b and c:
                print("N=%d: bulkup/curl files/s (and MB/s) %.2fx, CPU per "
                      "file %.2fx" % (
                    n, b[0] / c[0], b[1] / c[1]))
    finally:
        stop_azurite()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
