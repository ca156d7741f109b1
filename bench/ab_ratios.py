#!/usr/bin/python3
"""Before/after ratios of a `bench/run --bulkup-base` run.

    ab_ratios.py OUT/results.jsonl

For each work, nginx setting and bulkup setting W that has both W (the
--bulkup binary, "after") and baseW (the --bulkup-base binary, "before"):
median files/s and client CPU µs per file of each, and after/before as the
ratio of the medians, with the range of the per-repetition ratios in
brackets (the two builds alternate, so each repetition is a paired
comparison). Valid runs only. Prints a markdown table.
"""
import json
import statistics
import sys


def main():
    recs = [json.loads(line) for line in open(sys.argv[1])]
    recs = [r for r in recs if r.get("valid") and r.get("tool") == "bulkup"]
    rows = {}
    for r in recs:
        s = str(r["setting"])
        which = "before" if s.startswith("base") else "after"
        key = (r["work"], str(r["server_workers"]), s[4:] if which == "before" else s)
        n = r["stored_files"]
        rows.setdefault(key, {}).setdefault(which, {})[int(r["rep"])] = (
            n / r["wall_s"], 1e6 * (r["user_s"] + r["sys_s"]) / n)
    print("| work | nginx workers | bulkup --workers | runs (after, before) | files/s after | files/s before "
          "| after/before files/s | client µs/file after | before | after/before CPU/file |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted(rows, key=lambda k: (k[0], k[1], int(k[2]) if k[2].isdigit() else 0)):
        d = rows[key]
        if "after" not in d or "before" not in d:
            continue
        a, b = d["after"], d["before"]
        fa = statistics.median(v[0] for v in a.values())
        fb = statistics.median(v[0] for v in b.values())
        ca = statistics.median(v[1] for v in a.values())
        cb = statistics.median(v[1] for v in b.values())
        reps = sorted(set(a) & set(b))
        rf = [a[k][0] / b[k][0] for k in reps]
        rc = [a[k][1] / b[k][1] for k in reps]
        print(f"| {key[0]} | {key[1]} | {key[2]} | {len(a)}, {len(b)} | {fa:,.0f} | {fb:,.0f} "
              f"| **{fa / fb:.3f}** [{min(rf):.2f}–{max(rf):.2f}] | {ca:.1f} | {cb:.1f} "
              f"| **{ca / cb:.3f}** [{min(rc):.2f}–{max(rc):.2f}] |")


if __name__ == "__main__":
    main()
