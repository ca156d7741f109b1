#!/usr/bin/env python3
"""Tables from bench/run's results: report.py OUT_DIR > report.md

Reads OUT_DIR/results.jsonl (one line per run, from measure.py) and
OUT_DIR/machine.txt; prints Markdown: per work and nginx setting, the medians
per tool and setting, then bulkup/peer ratios. Writes OUT_DIR/plot.dat and
OUT_DIR/plot.gp (gnuplot: files/s against workers). Only valid runs count;
invalid ones are listed.
Runs of WAN mode (bench/run --rtt; they carry rtt_ms) are grouped per RTT
too, with the delay proxy's CPU, and summed up in a table of files/s by RTT
and the issue's ratios; OUT_DIR/wan_plot.dat and wan_plot.gp plot files/s
against RTT (files_per_rtt.png).
"""
import json
import math
import os
import re
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
        # WAN mode: the delay proxy's CPU, as a share of the wall time (100%
        # = one core) and per file
        "proxy_pct": 100 * r["proxy_cpu_s"] / r["wall_s"] if r.get("proxy_cpu_s") is not None else float("nan"),
        "proxy_us": 1e6 * r["proxy_cpu_s"] / n if r.get("proxy_cpu_s") is not None else float("nan"),
    }


SETTING_RE = re.compile(r"^(base|basem|m|imm|h1e|h2e|e|h1|h2)?(d|\d*)(t\d+)?$")


def setting_key(s):
    # "8", "8t1" (bulkup --threads 1), "base8t1" (the --bulkup-base binary),
    # "imm8" (curl --parallel-immediate), "d" (bulkup's default, no
    # --workers), "e16" (curl -H 'Expect:'), "h1e64"/"h2e64" (curl
    # --http1.1/--http2, -H 'Expect:'): the default first, then plain, then
    # by prefix and worker count.
    s = str(s)
    m = SETTING_RE.match(s)
    if not m:
        return (3, "", 0, s)
    prefix, num, _t = m.groups()
    if num == "d":
        return (0, prefix or "", 0, s)
    return (1 if s.isdigit() else 2, prefix or "", int(num) if num else 0, s)


def setting_label(s):
    s = str(s)
    if s == "d":
        return "default"
    if s.startswith("imm"):
        return f"{s[3:]} (--parallel-immediate)"
    if s.startswith("h1e") or s.startswith("h2e"):
        return f"{s[3:]}, --http{'1.1' if s[1] == '1' else '2'}, -H 'Expect:'"
    if s.startswith("h1") or s.startswith("h2"):  # bulkup --http1.1/--http2
        return f"{setting_label(s[2:])}, --http{'1.1' if s[1] == '1' else '2'}"
    if s.startswith("e") and s[1:].isdigit():
        return f"{s[1:]}, -H 'Expect:'"
    if s.startswith("m") and SETTING_RE.match(s[1:]):  # bulkup --manifest
        return f"{setting_label(s[1:])}, --manifest"
    return s


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
        rtt = r.get("rtt_ms", -1)  # -1: not WAN mode
        groups[(r["work"], r["server_workers"], rtt)][(r["tool"], str(r["setting"]))].append(r)

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
        base = ["small", "tls-small", "tls-h2", "large", "mixed"]
        if work in base:
            return (base.index(work), 0)
        if work.startswith("scale-"):
            return (10, int(work.split("-", 1)[1]))
        return (20, 0)

    plot_blocks = []
    wan = defaultdict(dict)  # (work, sw) -> rtt -> cells
    for (work, sw, rtt) in sorted(groups, key=lambda k: (order(k[0]), k[1], k[2])):
        cells = {k: Cell(v) for k, v in groups[(work, sw, rtt)].items()}
        title = f"{work}, {sw} nginx worker{'s' if sw > 1 else ''}"
        if rtt > 0:
            title += f", {rtt} ms RTT"
        elif rtt == 0:
            title += ", 0 ms RTT (direct)"
        if rtt >= 0:
            wan[(work, sw)][rtt] = cells
        p(f"\n## {title}\n")
        proxy_cols = rtt > 0
        p(
            "| tool | workers | runs | files | files/s | MB/s | client µs/file | server µs/file "
            "| limit files/s | of limit | of CPU-bound | ctx sw/file | conns/run | peak RSS MB |"
            + (" proxy CPU % | proxy µs/file |" if proxy_cols else "")
        )
        p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if proxy_cols else ""))
        for (tool, setting) in sorted(
            cells, key=lambda k: (TOOLS.index(k[0]) if k[0] in TOOLS else 9, setting_key(k[1]))
        ):
            c = cells[(tool, setting)]
            fps, srv, cpu = c.m("fps"), c.m("srv_us"), c.m("cpu_us")
            limit = sw * 1e6 / srv if srv > 0 else float("nan")
            cpub = NPROC * 1e6 / (cpu + srv) if cpu + srv > 0 else float("nan")
            label = setting_label(setting)
            p(
                f"| {tool} | {label} | {len(c.runs)} | {c.runs[0]['files']:,} | {fmt(fps, 1 if fps < 100 else 0)} | {fmt(c.m('mbps'), 1)} "
                f"| {fmt(cpu)} | {fmt(srv)} | {fmt(limit)} | {fmt(100 * fps / limit)}% "
                f"| {fmt(100 * fps / cpub)}% | {fmt(c.m('ctx'), 2)} | {fmt(c.m('conns'))} | {fmt(c.m('rss_mb'), 1)} |"
                + (f" {fmt(c.m('proxy_pct'))} | {fmt(c.m('proxy_us'))} |" if proxy_cols else "")
            )

        # Ratios. bulkup's default (machine.txt, from its --help; 4 in
        # `large`, where there are 4 files).
        def pick(tool, setting):
            return cells.get((tool, setting))

        bul_settings = sorted([s for (t, s) in cells if t == "bulkup"], key=setting_key)
        if not bul_settings:
            continue
        if "d" in bul_settings:
            default = "d"
        else:
            default = DEFAULT_WORKERS if DEFAULT_WORKERS in bul_settings else bul_settings[0]
        b = pick("bulkup", default)
        b_best_s = max(bul_settings, key=lambda s: cells[("bulkup", s)].m("fps"))
        b_best = cells[("bulkup", b_best_s)]
        fixed = [s for s in bul_settings if s.isdigit()]
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
        if rtt >= 0 and fixed:
            f_best_s = max(fixed, key=lambda s: cells[("bulkup", s)].m("fps"))
            if f_best_s != default:
                rows.append((f"bulkup {default} / bulkup at its best fixed setting ({f_best_s})", b, cells[("bulkup", f_best_s)]))
        # The two input forms side by side: the manifest (mW) over the
        # directory walk (W).
        for s in bul_settings:
            if s.startswith("m") and pick("bulkup", s[1:]):
                rows.append((f"bulkup {s} / bulkup {s[1:]} (manifest / directory)", cells[("bulkup", s)], cells[("bulkup", s[1:])]))
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

        # plot data (works with a worker sweep, not WAN mode)
        if work in ("small", "tls-small") and rtt < 0:
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
    if wan:
        wan_summary(p, wan)
    print("\n".join(out))
    write_plot(plot_blocks)


def wan_summary(p, wan):
    """The WAN table: median files/s by RTT, per tool and setting; the
    issue's ratios per RTT; the proxy's CPU; and the plot's data."""
    p("\n## WAN: files/s by added round-trip time\n")
    p(
        "Medians of the valid runs (runs per cell in brackets when fewer than the "
        "most). 0 ms: direct to nginx, no proxy; otherwise through bench/delay_proxy, "
        "which also charges one RTT per new connection when run with --connect-rtt "
        "(see machine.txt). Blank: not run at that RTT.\n"
    )
    blocks = []
    for (work, sw) in sorted(wan, key=lambda k: (["small", "tls-small", "tls-h2"].index(k[0])
                                                 if k[0] in ("small", "tls-small", "tls-h2") else 9, k[1])):
        by_rtt = wan[(work, sw)]
        rtts = sorted(by_rtt)
        keys = sorted({k for cells in by_rtt.values() for k in cells},
                      key=lambda k: (TOOLS.index(k[0]) if k[0] in TOOLS else 9, setting_key(k[1])))
        most = max(len(c.runs) for cells in by_rtt.values() for c in cells.values())
        p(f"\n### {work}, {sw} nginx worker{'s' if sw > 1 else ''}\n")
        p("| tool | setting | " + " | ".join(f"{r} ms" for r in rtts) + " | conns/run |")
        p("|---|---|" + "---|" * len(rtts) + "---|")
        for key in keys:
            vals = []
            conns = ""
            pts = []
            for r in rtts:
                c = by_rtt[r].get(key)
                if not c:
                    vals.append("")
                    continue
                fps = c.m("fps")
                pts.append((r, fps))
                n = f" ({len(c.runs)})" if len(c.runs) < most else ""
                files = c.runs[0]["files"]
                vals.append(fmt(fps, 1 if fps < 100 else 0) + n + (f" on {files:,}" if key[0] == "sdk" else ""))
                conns = fmt(c.m("conns"))
            lab = setting_label(key[1])
            if key[0] == "bulkup" and key[1] == DEFAULT_WORKERS and not any(
                    ("bulkup", "d") in cells for cells in by_rtt.values()):
                lab += " (its default)"
            p(f"| {key[0]} | {lab} | " + " | ".join(vals) + f" | {conns} |")
            if pts:
                blocks.append((work, sw, key, pts))

        # the targets, per RTT
        p(f"\n**Ratios, {work}, {sw} nginx worker{'s' if sw > 1 else ''}** (ratio of medians; "
          "in brackets the min–max of the per-repetition ratios)\n")
        p("| RTT | comparison | files/s |")
        p("|---|---|---|")
        for r in rtts:
            cells = by_rtt[r]

            def best(tool, pred=lambda s: True):
                ss = [s for (t, s) in cells if t == tool and pred(s)]
                return max(ss, key=lambda s: cells[(tool, s)].m("fps")) if ss else None

            bs = [s for (t, s) in cells if t == "bulkup"]
            if not bs:
                continue
            d = "d" if "d" in bs else (DEFAULT_WORKERS if DEFAULT_WORKERS in bs else None)
            comps = []
            cb = best("curl")
            fb = best("bulkup", lambda s: s.isdigit())
            bb = best("bulkup")
            if d and cb:
                comps.append((f"bulkup default ({d if d != 'd' else 'no --workers'}) / curl at its best ({setting_label(cb)})", ("bulkup", d), ("curl", cb)))
            if d and fb and fb != d:
                comps.append((f"bulkup default / bulkup at its best fixed ({fb})", ("bulkup", d), ("bulkup", fb)))
            if bb and cb:
                comps.append((f"bulkup at its best ({bb}) / curl at its best ({setting_label(cb)})", ("bulkup", bb), ("curl", cb)))
            for (t, s) in sorted(cells, key=lambda k: setting_key(k[1])):
                if t == "bulkup" and s.startswith("h2") and ("bulkup", s[2:]) in cells:
                    comps.append((f"bulkup --http2 / bulkup at {setting_label(s[2:])} (h2 by ALPN, a connection per transfer)", (t, s), (t, s[2:])))
                if t == "bulkup" and s.startswith("h1") and ("bulkup", s[2:]) in cells:
                    comps.append((f"bulkup {setting_label(s[2:])} (h2 multiplexed) / the same with --http1.1", (t, s[2:]), (t, s)))
                if t == "curl" and s.startswith("h2e") and ("curl", "h1e" + s[3:]) in cells:
                    comps.append((f"curl --http2 / curl --http1.1 at {s[3:]} (both -H 'Expect:')", (t, s), (t, "h1e" + s[3:])))
            for (t, s) in cells:
                if t == "sdk" and d:
                    comps.append((f"bulkup default / the SDK's loop ({cells[(t, s)].runs[0]['files']:,} files)", ("bulkup", d), (t, s)))
            for label, xk, yk in comps:
                x, y = cells[xk], cells[yk]
                ratio = x.m("fps") / y.m("fps")
                reps = [x.by_rep[k]["fps"] / y.by_rep[k]["fps"] for k in x.by_rep if k in y.by_rep]
                rng = f" [{min(reps):.2f}–{max(reps):.2f}]" if len(reps) > 1 else ""
                p(f"| {r} ms | {label} | {ratio:.2f}x{rng} |")

    # the proxy's CPU: the highest share of a core it took, per RTT
    rows = []
    for (work, sw), by_rtt in wan.items():
        for r, cells in by_rtt.items():
            if r <= 0:
                continue
            for (t, s), c in cells.items():
                pct = c.m("proxy_pct")
                if not math.isnan(pct):
                    mx = max(d["proxy_pct"] for d in c.d)
                    rows.append((pct, mx, work, sw, r, t, s, c.m("fps"), c.m("proxy_us")))
    if rows:
        rows.sort(reverse=True)
        p("\n### The delay proxy's CPU (highest first)\n")
        p("User+sys CPU of bench/delay_proxy during each run / the run's wall time "
          "(100% = one core busy), median (and max) over the repetitions; its CPU per file.\n")
        p("| work | RTT | tool | setting | files/s | proxy CPU % (max) | proxy µs/file |")
        p("|---|---|---|---|---|---|---|")
        for pct, mx, work, sw, r, t, s, fps, us in rows[:8]:
            p(f"| {work}/{sw} | {r} ms | {t} | {setting_label(s)} | {fmt(fps)} | {fmt(pct)} ({fmt(mx)}) | {fmt(us)} |")
    write_wan_plot(blocks)


def write_wan_plot(blocks):
    works = [w for w in ("small", "tls-small")
             if any(b[0] == w and len(b[3]) > 1 for b in blocks)]
    if not works:
        return
    path = os.path.join(OUT, "wan_plot.dat")
    idx = []
    with open(path, "w") as f:
        i = 0
        for work, sw, key, pts in blocks:
            if work not in works:
                continue
            f.write(f"# {work} {sw} {key[0]} {key[1]}\n")
            for x, y in pts:
                f.write(f"{x} {y:.1f}\n")
            f.write("\n\n")
            idx.append((i, work, sw, key, len(pts)))
            i += 1
    rtts = sorted({x for b in blocks for x, _ in b[3]})
    shades = {
        "bulkup": ["#08306b", "#2171b5", "#6baed6", "#9ecae1"],
        "curl": ["#67000d", "#cb181d", "#fb6a4a", "#fcae91"],
    }
    lines = [
        "set terminal pngcairo size %d,560 font 'sans,10'" % (640 * len(works)),
        "set output 'files_per_rtt.png'",
        "set logscale y 10",
        f"set xrange [{min(rtts) - 5}:{max(rtts) + 5}]",
        "set xtics (" + ", ".join(str(r) for r in rtts) + ")",
        "set xlabel 'added round-trip time, ms (0: direct)'",
        "set ylabel 'files/s (median)'",
        "set grid",
        "set key inside left bottom vertical font ',8' opaque",
        f"set multiplot layout 1,{len(works)}",
    ]
    for work in works:
        proto = "HTTPS" if work == "tls-small" else "HTTP"
        lines.append(f"set title '{work}: 16 KiB files to nginx WebDAV over {proto}, through a delay proxy'")
        plots = []
        counters = defaultdict(int)
        for i, w, sw, key, npts in idx:
            if w != work:
                continue
            tool, setting = key
            if tool in shades:
                # bulkup: default, 16, 64, 256 darkest first; curl: by
                # parallelism, dashed with "Expect: 100-continue", solid without
                num = re.sub(r"\D", "", setting) or "0"
                rank = {"16": 3, "64": 2, "256": 1, "0": 0}.get(num, counters[tool] % 4)
                if tool == "curl":
                    rank = {"16": 3, "64": 2, "256": 1}.get(num, 0)
                color = shades[tool][rank % 4] if tool == "bulkup" else shades[tool][(rank - 1) % 4]
                dt = 2 if tool == "curl" and not setting.startswith("e") else 1
                lw = 3 if setting == "d" else 2
            else:
                color, dt, lw = "#2ca02c", 1, 2
            style = "linespoints" if npts > 1 else "points"
            lab = f"{tool} {setting_label(setting)}" if tool != "sdk" else "the SDK loop (4 threads)"
            if tool == "bulkup" and setting == DEFAULT_WORKERS and not any(
                    k[3] == ("bulkup", "d") for k in idx):
                lab += " (its default)"
            plots.append(
                f"'wan_plot.dat' index {i} using 1:2 with {style} lw {lw} dt {dt} pt 7 ps 1.1 "
                f"lc rgb '{color}' title \"{lab}\""
            )
        lines.append("plot " + ", \\\n     ".join(plots))
    lines.append("unset multiplot")
    with open(os.path.join(OUT, "wan_plot.gp"), "w") as f:
        f.write("\n".join(lines) + "\n")


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
