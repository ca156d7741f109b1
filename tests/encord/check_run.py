#!/usr/bin/python3
"""check_run.py - judge one client run against strict_api.py's records.

  check_run.py --dir RUN --kind imageGroups|dicomSeries|videos|images
               --stdout FILE [--expect-units N] [--presign-counts 200,200,50]
               [--create-video true|false] [--group-title T | --no-group-title]
               [--folder UUID | --no-folder] SOURCE...

RUN holds the server's violations.jsonl, log.jsonl, units.txt and store/.
Checks: no violation; the client's standard output is exactly the server's
DONE data units, one "DATA_HASH  TITLE" line each (compared as sorted sets of
lines, so that jobs ending in any order pass); the accepted job POSTs of KIND
hold every SOURCE exactly once (by title = base name) and its stored object
is byte-identical to it; every stored object was submitted; the presign
batch sizes, createVideo, group title and folder when asked; the dataset GET
(the SDK's preamble, §1) came before the first job. Prints the deviations
the server tolerated ("info:"), then one line per problem; exits 1 on any.
"""

import argparse
import collections
import json
import os
import re
import sys


def load(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--kind", required=True,
                   choices=("imageGroups", "dicomSeries", "videos", "images"))
    p.add_argument("--stdout", required=True)
    p.add_argument("--expect-units", type=int)
    p.add_argument("--presign-counts")
    p.add_argument("--create-video", choices=("true", "false"))
    p.add_argument("--group-title")
    p.add_argument("--no-group-title", action="store_true")
    p.add_argument("--folder")
    p.add_argument("--no-folder", action="store_true")
    p.add_argument("sources", nargs="+")
    a = p.parse_args()

    problems = []
    violations = load(os.path.join(a.dir, "violations.jsonl"))
    for v in violations:
        problems.append(f"refused {v['method']} {v['target'][:90]}: {v['rule']}")
    log = load(os.path.join(a.dir, "log.jsonl"))

    deviations = collections.Counter(d for e in log for d in e.get("deviations", []))
    for d, n in sorted(deviations.items()):
        print(f"info: tolerated deviation ({n}x): {d}")

    with open(os.path.join(a.dir, "units.txt"), encoding="utf-8") as f:
        units = f.read().splitlines()
    with open(a.stdout, encoding="utf-8", errors="replace") as f:
        out = f.read().splitlines()
    for line in out:
        if not re.fullmatch(r"\S+  .+", line):
            problems.append(f"stdout line is not 'DATA_HASH  TITLE': {line!r}")
    if sorted(out) != sorted(units):
        problems.append(f"stdout ({len(out)} lines) is not the {len(units)} data units the "
                        f"server reported: missing {sorted(set(units) - set(out))[:5]}, "
                        f"extra {sorted(set(out) - set(units))[:5]}")
    if not units:
        problems.append("the server reported no data unit")
    if a.expect_units is not None and len(units) != a.expect_units:
        problems.append(f"{len(units)} data units, expected {a.expect_units}")

    jobs = [e for e in log if e.get("query_type") == "datasetdatalongpolling"
            and e.get("query_method") == "POST" and "injected" not in e]
    first_job = next((i for i, e in enumerate(log) if e.get("query_type") ==
                      "datasetdatalongpolling"), None)
    first_ds = next((i for i, e in enumerate(log) if e.get("query_type") == "dataset"), None)
    if first_ds is None or (first_job is not None and first_ds > first_job):
        problems.append("no dataset GET before the first job (the SDK's preamble, §1)")
    if not jobs:
        problems.append("no job POST accepted")
    items = []
    for j in jobs:
        if j["job_kind"] != a.kind:
            problems.append(f"a job of {j['job_kind']}, expected {a.kind}")
        items += j["items"]
        for el in j["elements"]:
            if a.create_video is not None and \
                    el.get("createVideo") is not (a.create_video == "true"):
                problems.append(f"createVideo {el.get('createVideo')}, expected {a.create_video}")
            if a.group_title is not None and el.get("title") != a.group_title:
                problems.append(f"group title {el.get('title')!r}, expected {a.group_title!r}")
            if a.no_group_title and "title" in el:
                problems.append(f"group title {el['title']!r} sent, expected none")
        if a.folder is not None and j["folder"] != a.folder:
            problems.append(f"folderUuid {j['folder']!r}, expected {a.folder}")
        if a.no_folder and j["folder"] is not None:
            problems.append(f"folderUuid {j['folder']!r} sent, expected none")
    by_title = collections.defaultdict(list)
    for it in items:
        by_title[it["title"]].append(it["url"])
    names = [os.path.basename(s) for s in a.sources]
    for src, name in zip(a.sources, names):
        urls = by_title.get(name, [])
        if len(urls) != 1:
            problems.append(f"{name!r} submitted {len(urls)} times, expected once")
            continue
        stored = os.path.join(a.dir, "store", urls[0])
        try:
            with open(src, "rb") as f1, open(stored, "rb") as f2:
                same = f1.read() == f2.read()
        except OSError as e:
            problems.append(f"{name!r}: {e}")
            continue
        if not same:
            problems.append(f"{name!r}: the stored object {urls[0]} differs from the source")
    extra = set(by_title) - set(names)
    if extra:
        problems.append(f"submitted titles that are no source: {sorted(extra)[:5]}")
    submitted = {it["url"] for it in items}
    stored_keys = {e["object_key"] for e in log if e["kind"] == "put" and "injected" not in e}
    if stored_keys - submitted:
        print(f"info: {len(stored_keys - submitted)} stored objects never submitted in a job")
    presigned = sum(e.get("count", 0) for e in log if e["kind"] == "presign" and "injected" not in e)
    if presigned != len(stored_keys):
        print(f"info: {presigned} URLs presigned, {len(stored_keys)} objects stored")
    counts = sorted(e["count"] for e in log if e["kind"] == "presign" and "injected" not in e)
    if a.presign_counts is not None:
        want = sorted(int(x) for x in a.presign_counts.split(","))
        if counts != want:
            problems.append(f"presign batches {counts}, expected {want}")
    polls = [e.get("timeout_seconds") for e in log if e.get("query_type") ==
             "datasetdatalongpolling" and e.get("query_method") == "GET" and "injected" not in e]
    print(f"info: {len(log)} requests accepted: {len(jobs)} jobs, {len(polls)} polls "
          f"(timeout_seconds {sorted(set(polls))}), presign batches {counts}")
    for pr in problems:
        print("problem: " + pr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
