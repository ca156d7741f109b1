#!/usr/bin/env python3
"""Tables from bench/run's results: report.py OUT_DIR > report.md

Reads OUT_DIR/results.jsonl (one line per run, from measure.py) and
OUT_DIR/machine.txt; prints Markdown: per work and nginx setting, the medians
per tool and setting, then bulkup/peer ratios. Writes OUT_DIR/plot.dat and
OUT_DIR/plot.gp (gnuplot: files/s against workers). Only valid runs count;
invalid ones are listed.
"""
import json
import math
import os
import statistics
import sys
from collections import defaultdict

OUT = sys.argv[1] if len(sys.argv) > 1 else "."
DEFAULT_WORKERS = "8"  # bulkup's default before machine.txt recorded it
NPROC = os.cpu_count() or 1
TOOLS = ["bulkup", "curl", "sdk", "rclone"]


def load():
    runs = []
    with open(os.path.join(OUT, "results.jsonl")) as f:
        for line in f:
            line = line.strip()
            if line:
                runs.append(json.loads(line))
    return runs


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def derived(r):
    n = r["files"]
    return {
        "fps": n / r["wall_s"],
        "mbps": r["bytes"] / r["wall_s"] / 1e6,
        "cpu_us": 1e6 * (r["user_s"] + r["sys_s"]) / n,
        "srv_us": 1e6 * r["server_cpu_s"] / n,
        "conns": r["connections"],
        # None: measured without GNU time (see measure.py)
        "rss_mb": r["maxrss_kb"] / 1024 if r.get("maxrss_kb") is not None else float("nan"),
        # older results have no context switch count
        "ctx": r["ctx_switches"] / n if "ctx_switches" in r else float("nan"),
    }


def setting_key(s):
    # "8", "8t1" (bulkup --threads 1), "base8t1" (the --bulkup-base binary),
    # "imm8" (curl --parallel-immediate): plain first, then by worker count.
    s = str(s)
    rest = s[4:] if s.startswith("base") else s[3:] if s.startswith("imm") else s
    digits = ""
    for c in rest:
        if not c.isdigit():
            break
        digits += c
    return (not s.isdigit(), s.startswith("base"), int(digits) if digits else 0, s)


def fmt(x, nd=0):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if nd == 0:
        return f"{x:,.0f}"
    return f"{x:,.{nd}f}"


class Cell:
    """The valid runs of one tool at one setting, in one work and nginx setting."""

    def __init__(self, runs):
        self.runs = runs
        self.d = [derived(r) for r in runs]
        self.by_rep = {r["rep"]: d for r, d in zip(runs, self.d)}

    def m(self, key):
        return med([d[key] for d in self.d])


def main():
    runs = load()
    groups = defaultdict(lambda: defaultdict(list))
    invalid = []
    for r in runs:
        if not r.get("valid"):
            invalid.append(r)
            continue
        groups[(r["work"], r["server_workers"])][(r["tool"], str(r["setting"]))].append(r)

    out = []
    p = out.append
    machine = ""
    mpath = os.path.join(OUT, "machine.txt")
    if os.path.exists(mpath):
        machine = open(mpath).read().strip()
    global DEFAULT_WORKERS
    for line in machine.splitlines():
        if line.startswith("bulkup default workers:") and line.split(":")[1].strip():
            DEFAULT_WORKERS = line.split(":")[1].strip()
    p("# bench/run report\n")
    if machine:
        p("```\n" + machine + "\n```\n")
    p(
        "Medians over the valid runs. files/s and MB/s: wall time of the client. "
        "client µs/file: user+sys CPU of the client process / files. server µs/file: "
        "nginx workers' CPU / files. limit: server-bound rate = nginx workers / "
        "(server CPU per file), what nginx could serve with a free client. "
        f"CPU-bound: {NPROC} cores / (client + server CPU per file). conns: TCP connections "
        "(= TLS handshakes over HTTPS) the server accepted during the run. "
        "sdk and rclone run on the first files of the set only (files column).\n"
    )

    def order(work):
        base = ["small", "tls-small", "large", "mixed"]
        if work in base:
            return (base.index(work), 0)
        if work.startswith("scale-"):
            return (10, int(work.split("-", 1)[1]))
        return (20, 0)

    plot_blocks = []
    for (work, sw) in sorted(groups, key=lambda k: (order(k[0]), k[1])):
        cells = {k: Cell(v) for k, v in groups[(work, sw)].items()}
        title = f"{work}, {sw} nginx worker{'s' if sw > 1 else ''}"
        p(f"\n## {title}\n")
        p(
            "| tool | workers | runs | files | files/s | MB/s | client µs/file | server µs/file "
            "| limit files/s | of limit | of CPU-bound | ctx sw/file | conns/run | peak RSS MB |"
        )
        p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for (tool, setting) in sorted(
            cells, key=lambda k: (TOOLS.index(k[0]) if k[0] in TOOLS else 9, setting_key(k[1]))
        ):
            c = cells[(tool, setting)]
            fps, srv, cpu = c.m("fps"), c.m("srv_us"), c.m("cpu_us")
            limit = sw * 1e6 / srv if srv > 0 else float("nan")
            cpub = NPROC * 1e6 / (cpu + srv) if cpu + srv > 0 else float("nan")
            label = setting if not setting.startswith("imm") else f"{setting[3:]} (--parallel-immediate)"
            p(
                f"| {tool} | {label} | {len(c.runs)} | {c.runs[0]['files']:,} | {fmt(fps, 1 if fps < 100 else 0)} | {fmt(c.m('mbps'), 1)} "
                f"| {fmt(cpu)} | {fmt(srv)} | {fmt(limit)} | {fmt(100 * fps / limit)}% "
                f"| {fmt(100 * fps / cpub)}% | {fmt(c.m('ctx'), 2)} | {fmt(c.m('conns'))} | {fmt(c.m('rss_mb'), 1)} |"
            )

        # Ratios. bulkup's default (machine.txt, from its --help; 4 in
        # `large`, where there are 4 files).
        def pick(tool, setting):
            return cells.get((tool, setting))

        bul_settings = sorted([s for (t, s) in cells if t == "bulkup"], key=setting_key)
        if not bul_settings:
            continue
        default = DEFAULT_WORKERS if DEFAULT_WORKERS in bul_settings else bul_settings[0]
        b = pick("bulkup", default)
        b_best_s = max(bul_settings, key=lambda s: cells[("bulkup", s)].m("fps"))
        b_best = cells[("bulkup", b_best_s)]
        curl_settings = [s for (t, s) in cells if t == "curl"]
        rows = []
        if curl_settings:
            c_best_s = max(curl_settings, key=lambda s: cells[("curl", s)].m("fps"))
            c_best = cells[("curl", c_best_s)]
            c_same = pick("curl", default)
            if c_same:
                rows.append((f"bulkup {default} / curl {default}", b, c_same))
            rows.append((f"bulkup {default} / curl at its best ({c_best_s})", b, c_best))
            rows.append((f"bulkup at its best ({b_best_s}) / curl at its best ({c_best_s})", b_best, c_best))
        for peer in ("sdk", "rclone"):
            for (t, s) in cells:
                if t == peer:
                    rows.append((f"bulkup {default} / {peer} {s} (on its first {cells[(t, s)].runs[0]['files']:,} files)", b, cells[(t, s)]))
        if rows:
            p(f"\n**Ratios, {title}** (ratio of medians; in brackets the min–max of the per-repetition ratios)\n")
            p("| comparison | files/s | MB/s | client CPU per file | server CPU per file |")
            p("|---|---|---|---|---|")
            for label, x, y in rows:
                cols = []
                for key in ("fps", "mbps", "cpu_us", "srv_us"):
                    if not (x.m(key) > 0 and y.m(key) > 0):
                        cols.append("–")  # e.g. server CPU below the 10 ms tick
                        continue
                    r = x.m(key) / y.m(key)
                    reps = [x.by_rep[k][key] / y.by_rep[k][key] for k in x.by_rep
                            if k in y.by_rep and y.by_rep[k][key] > 0]
                    rng = f" [{min(reps):.2f}–{max(reps):.2f}]" if len(reps) > 1 else ""
                    cols.append(f"{r:.2f}x{rng}")
                p(f"| {label} | " + " | ".join(cols) + " |")
        srv = b.m("srv_us")
        if srv > 0:
            limit = sw * 1e6 / srv
            p(
                f"\nbulkup {default}: {fmt(b.m('fps'))} files/s = {100 * b.m('fps') / limit:.0f}% of the "
                f"server-bound limit ({fmt(limit)} files/s = {sw} / {srv:.1f} µs); "
                f"{b.m('conns'):.0f} connections per run."
            )

        # plot data (works with a worker sweep)
        if work in ("small", "tls-small"):
            for tool in TOOLS:
                pts = sorted(
                    [(int(s), cells[(t, s)].m("fps")) for (t, s) in cells if t == tool and s.isdigit()]
                )
                if pts:
                    plot_blocks.append((work, sw, tool, pts))

    if invalid:
        p("\n## Invalid runs\n")
        for r in invalid:
            p(f"- {r['work']} / {r['server_workers']} workers / {r['tool']} {r['setting']} rep {r['rep']}: {'; '.join(r['errors'])}")
    print("\n".join(out))
    write_plot(plot_blocks)


def write_plot(blocks):
    if not blocks:
        return
    with open(os.path.join(OUT, "plot.dat"), "w") as f:
        for work, sw, tool, pts in blocks:
            f.write(f"# {work} {sw} {tool}\n")
            for x, y in pts:
                f.write(f"{x} {y:.1f}\n")
            f.write("\n\n")
    works = sorted({b[0] for b in blocks}, key=lambda w: ["small", "tls-small"].index(w))
    color = {"bulkup": "#1f77b4", "curl": "#d62728", "sdk": "#2ca02c", "rclone": "#9467bd"}
    lines = [
        "set terminal pngcairo size %d,520 font 'sans,10'" % (560 * len(works)),
        "set output 'files_per_s.png'",
        "set logscale xy 2",
        "set logscale y 10",
        "set xrange [3:40]",
        "set xtics (4, 8, 16, 32)",
        "set xlabel 'workers (--workers, --parallel-max, --transfers; SDK: 4)'",
        "set ylabel 'files/s (median)'",
        "set grid",
        "set key bottom right",
        f"set multiplot layout 1,{len(works)}",
    ]
    for work in works:
        proto = "HTTPS" if work == "tls-small" else "HTTP"
        lines.append(f"set title '{work}: 16 KiB files to nginx WebDAV over {proto}'")
        plots = []
        for i, (w, sw, tool, pts) in enumerate(blocks):
            if w != work:
                continue
            dt = 1 if sw == 1 else 2
            style = "linespoints" if len(pts) > 1 else "points"
            pt = 7 if sw == 1 else 5
            plots.append(
                f"'plot.dat' index {i} using 1:2 with {style} lw 2 dt {dt} pt {pt} ps 1.2 "
                f"lc rgb '{color.get(tool, 'black')}' title '{tool}, {sw} nginx worker{'s' if sw > 1 else ''}'"
            )
        lines.append("plot " + ", \\\n     ".join(plots))
    lines.append("unset multiplot")
    with open(os.path.join(OUT, "plot.gp"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
