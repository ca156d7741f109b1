#!/usr/bin/python3
"""The SDK's upload loop against bulkup's Python call, same files, same nginx,
same run (issue 19's figure; method: /work/shared/BENCH.md).

    sdk_vs_python.py [--files N] [--reps R] [--server-workers 1|2|both]
                     [--library PATH] [--workers W] [--out DIR] [--timeout S]

Generates N files of 16 KiB (bench/gen_data.py small, seeded) under a fresh
/dev/shm/bulkup-bench.* folder, starts nginx WebDAV (scripts/nginx-webdav,
store in /dev/shm) per server setting, makes one uncounted warm-up run of
each client, then R repetitions of both clients, alternated (rep 0: sdk,
bulkup; rep 1: bulkup, sdk; ...), each run to a fresh prefix, timed and
verified by bench/measure.py (one JSON line each in OUT/results.jsonl).
  sdk     /usr/bin/python3 bench/sdk_upload.py: the SDK v0.1.190 loop (4
          threads, a requests.Session per file), as bench/run runs it;
  bulkup  /usr/bin/python3 bench/bulkup_py_upload.py: one call of
          bulkup.upload_files (python/ on PYTHONPATH, the library from
          --library, default BUILD/libbulkup.so of a Release build made by
          bench/run's rule into /tmp/bulkup-bench-build).
Both are whole Python processes (interpreter start and imports included).
Writes OUT/report.md (medians, bulkup/sdk ratios of the medians and the
range of the per-repetition ratios) and prints it. Every exit path stops
nginx (by its state dir, through nginx-webdav stop) and removes the data.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NW = os.path.join(ROOT, "scripts", "nginx-webdav")
PY = "/usr/bin/python3"


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--server-workers", default="1", choices=["1", "2", "both"])
    ap.add_argument("--library")
    ap.add_argument("--workers", type=int, help="bulkup's workers (default: upload_files' own)")
    ap.add_argument("--out")
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()

    lib = a.library
    if not lib:
        build = os.environ.get("BULKUP_BENCH_BUILD", "/tmp/bulkup-bench-build")
        print(f"sdk_vs_python: building libbulkup (Release) into {build}", file=sys.stderr)
        sh(["cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release"])
        sh(["cmake", "--build", build, "-j", str(os.cpu_count() or 2), "--target", "bulkup"])
        lib = os.path.join(build, "libbulkup.so")
    lib = os.path.realpath(lib)
    if not os.path.exists(lib):
        sys.exit(f"sdk_vs_python: no library at {lib}")
    out = a.out or os.path.join(HERE, "out", "sdk-vs-python-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    results = os.path.join(out, "results.jsonl")
    warm = os.path.join(out, "warmup.jsonl")
    sws = ["1", "2"] if a.server_workers == "both" else [a.server_workers]

    tmp = tempfile.mkdtemp(prefix="bulkup-bench.", dir="/dev/shm")
    states = []

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"), BULKUP_LIBRARY=lib)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    head = [
        f"date: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
        f"command: bench/sdk_vs_python.py {' '.join(sys.argv[1:])}",
        f"commit: {commit}",
        f"library: {lib}",
        f"nproc: {os.cpu_count()}",
        f"load before: {open('/proc/loadavg').read().split()[:3]}",
        "python: " + sh([PY, "-c", "import sys, requests, urllib3; print(sys.version.split()[0],"
                         " 'requests', requests.__version__, 'urllib3', urllib3.__version__)"]).strip(),
        "nginx: " + subprocess.run(["/usr/sbin/nginx", "-v"], capture_output=True,
                                   text=True).stderr.strip(),
    ]
    print("\n".join(head), file=sys.stderr)
    seq = 0
    try:
        data = os.path.join(tmp, "small")
        sh([PY, os.path.join(HERE, "gen_data.py"), "small", data, "--count", str(a.files)])
        listing = data + ".files.tsv"
        for sw in sws:
            state = os.path.join(tmp, f"nginx-{sw}")
            os.makedirs(state)
            states.append(state)
            nv = {}
            for line in sh(["timeout", "60", NW, "start", state, "--workers", sw]).splitlines():
                k, _, v = line.partition("=")
                nv[k] = v
            url, store = nv["NGINX_URL"], nv["NGINX_STORE"]

            def run(tool, rep, res_file):
                nonlocal seq
                seq += 1
                prefix = f"r{seq}-{tool}-{sw}-{int(time.time())}"
                script = "sdk_upload.py" if tool == "sdk" else "bulkup_py_upload.py"
                cmd = [PY, os.path.join(HERE, script), "--to", f"{url}/{prefix}", "."]
                if tool == "bulkup" and a.workers:
                    cmd += ["--workers", str(a.workers)]
                subprocess.run(
                    [PY, os.path.join(HERE, "measure.py"), "--results", res_file,
                     "--nginx-state", state, "--store", store, "--prefix", prefix,
                     "--listing", listing, "--src", data, "--limit", str(a.files),
                     "--timeout", str(a.timeout),
                     "--meta", "work=small", "--meta", f"server_workers={sw}",
                     "--meta", f"rep={rep}", "--meta", f"tool={tool}",
                     "--meta", f"files={a.files}", "--", *cmd],
                    cwd=data, env=env, check=True)

            print(f"nginx workers {sw}: warm-up", file=sys.stderr)
            for tool in ("sdk", "bulkup"):
                run(tool, -1, warm)
            for rep in range(a.reps):
                order = ("sdk", "bulkup") if rep % 2 == 0 else ("bulkup", "sdk")
                print(f"nginx workers {sw}: rep {rep + 1}/{a.reps}", file=sys.stderr)
                for tool in order:
                    run(tool, rep, results)
            sh([NW, "stop", state])
            states.remove(state)
    finally:
        for s in states:
            subprocess.run([NW, "stop", s], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    head.append(f"load after: {open('/proc/loadavg').read().split()[:3]}")
    report = make_report(results, head)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(report)
    print(report)
    print(f"sdk_vs_python: {out}/report.md", file=sys.stderr)


def make_report(results, head):
    recs = [json.loads(line) for line in open(results)]
    lines = ["# sdk_vs_python", "", "```", *head, "```", ""]
    bad = [r for r in recs if not r["valid"]]
    for sw in sorted({r["server_workers"] for r in recs}):
        rs = [r for r in recs if r["server_workers"] == sw and r["valid"]]
        lines += [f"## nginx workers {sw}", "",
                  "| client | runs | files | files/s | MB/s | client µs/file | server µs/file | conns/run | peak RSS MB |",
                  "|---|---|---|---|---|---|---|---|---|"]
        med = {}
        per = {}
        for tool in ("sdk", "bulkup"):
            t = [r for r in rs if r["tool"] == tool]
            if not t:
                continue
            n = int(t[0]["files"])
            fps = [n / r["wall_s"] for r in t]
            cpu = [1e6 * (r["user_s"] + r["sys_s"]) / n for r in t]
            srv = [1e6 * r["server_cpu_s"] / n for r in t]
            per[tool] = {int(r["rep"]): (n / r["wall_s"], 1e6 * (r["user_s"] + r["sys_s"]) / n) for r in t}
            med[tool] = (statistics.median(fps), statistics.median(cpu))
            rss = [r["maxrss_kb"] / 1024 for r in t if r.get("maxrss_kb")]
            lines.append(
                f"| {tool} | {len(t)} | {n} | {statistics.median(fps):,.0f} | "
                f"{statistics.median(fps) * t[0]['bytes'] / n / 1e6:.1f} | {statistics.median(cpu):,.0f} | "
                f"{statistics.median(srv):,.0f} | {statistics.median([r['connections'] for r in t]):,.0f} | "
                f"{statistics.median(rss) if rss else float('nan'):.1f} |")
        if "sdk" in med and "bulkup" in med:
            reps = sorted(set(per["sdk"]) & set(per["bulkup"]))
            rf = [per["bulkup"][k][0] / per["sdk"][k][0] for k in reps]
            rc = [per["bulkup"][k][1] / per["sdk"][k][1] for k in reps]
            lines += ["", f"bulkup/sdk files/s: **{med['bulkup'][0] / med['sdk'][0]:.1f}x** "
                      f"[{min(rf):.1f}–{max(rf):.1f}]; client CPU per file: "
                      f"**{med['bulkup'][1] / med['sdk'][1]:.3f}x** [{min(rc):.3f}–{max(rc):.3f}] "
                      "(ratio of the medians; in brackets the per-repetition ratios)"]
        lines.append("")
    if bad:
        lines += ["## Invalid runs", ""] + [f"- {r['tool']} rep {r['rep']}: {r['errors']}" for r in bad] + [""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
