#!/usr/bin/python3
"""verify.py: the server-side checks of the engine tests.

  verify.py stored --store DIR --log FILE [--since N] (--manifest FILE
            [--shard K/N] | --data DIR --url URL)
      The PUTs in nginx's access log (scripts/nginx-webdav
      --count-connections; from line N+1 on with --since) are exactly one
      per expected item, each answered 2xx, nothing else PUT; each
      item's object in the store (nginx's root DIR) is byte-identical to
      its file. Expected items: the manifest's 'path,url' lines (only
      shard K of N with --shard, computed here from the documented hash,
      not by bulkup), or every file under DATA going to URL/REL.
  verify.py merged FILE --total T --shards N
      `bulkup report merge`'s output: T submitted and succeeded, nothing
      failed or cancelled, no conflict, N shards and none missing.
  verify.py puts --log FILE [--since N]
      Print the number of PUTs logged (after line N).
  verify.py count --manifest FILE [--shard K/N]
      Print the number of the manifest's items (in shard K of N).

Exits 0 when every check holds; else prints why and exits 1.
"""
import argparse
import csv
import filecmp
import hashlib
import json
import os
import sys
from urllib.parse import quote, unquote, urlsplit


def shard_of(key: bytes, n: int) -> int:
    """README's definition, independently of bulkup."""
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % n


def log_puts(path, since):
    """[(uri, status)] of the PUT lines of the access log after line `since`.
    Format: $connection $connection_requests $request_method $uri $status
    $request_length $ssl_protocol $ssl_session_reused (a URI may hold
    spaces: split from both ends)."""
    out = []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for i, line in enumerate(f):
            if i < since:
                continue
            head = line.rstrip("\n").split(" ", 3)
            if len(head) < 4 or head[2] != "PUT":
                continue
            rest = head[3].rsplit(" ", 4)
            out.append((rest[0], int(rest[1])))
    return out


def expected_items(a):
    """[(file, url)] the run should have stored."""
    if a.manifest:
        with open(a.manifest, newline="", encoding="utf-8") as f:
            rows = [(r[0], r[1]) for r in csv.reader(f) if r]
        if a.shard:
            k, n = (int(x) for x in a.shard.split("/"))
            rows = [(p, u) for p, u in rows
                    if shard_of(u.split("?")[0].split("#")[0].encode(), n) == k]
        return rows
    rows = []
    for d, _, files in os.walk(a.data):
        for name in files:
            p = os.path.join(d, name)
            rel = os.path.relpath(p, a.data)
            rows.append((p, a.url.rstrip("/") + "/" + quote(rel)))
    return rows


def cmd_stored(a):
    why = []
    items = expected_items(a)
    want = {}
    for path, url in items:
        want[unquote(urlsplit(url).path)] = path
    if len(want) != len(items):
        why.append("the expected items do not have distinct URLs")
    puts = log_puts(a.log, a.since)
    count = {}
    for uri, status in puts:
        count[uri] = count.get(uri, 0) + 1
        if not 200 <= status < 300:
            why.append(f"PUT {uri} answered {status}")
    for uri in want:
        if count.get(uri, 0) != 1:
            why.append(f"{uri}: PUT {count.get(uri, 0)} times, want 1")
    for uri in count:
        if uri not in want:
            why.append(f"{uri}: PUT but not expected")
    for uri, path in want.items():
        obj = os.path.join(a.store, uri.lstrip("/"))
        if not os.path.isfile(obj) or not filecmp.cmp(path, obj, shallow=False):
            why.append(f"{obj}: not byte-identical to {path}")
    if why:
        print(f"{len(why)} problems; first ones:")
        print("\n".join(why[:20]))
        return 1
    print(f"{len(want)} items, each PUT once and byte-identical ({len(puts)} PUTs)")
    return 0


def cmd_merged(a):
    with open(a.file, encoding="utf-8") as f:
        m = json.load(f)
    s = m["summary"]
    got = {"submitted": s["submitted"], "succeeded": s["succeeded"],
           "failed": s["failed"], "cancelled": s["cancelled"],
           "failures": len(m["failures"]), "conflicts": len(m.get("conflicts", [])),
           "shards": m.get("shards")}
    want = {"submitted": a.total, "succeeded": a.total, "failed": 0, "cancelled": 0,
            "failures": 0, "conflicts": 0,
            "shards": {"count": a.shards, "missing": []}}
    if got != want:
        print("merged report:", json.dumps(got), "want", json.dumps(want))
        return 1
    print("merged report:", json.dumps(got))
    return 0


def cmd_puts(a):
    print(len(log_puts(a.log, a.since)))
    return 0


def cmd_count(a):
    print(len(expected_items(a)))
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("stored")
    st.add_argument("--store", required=True)
    st.add_argument("--log", required=True)
    st.add_argument("--since", type=int, default=0)
    st.add_argument("--manifest")
    st.add_argument("--shard")
    st.add_argument("--data")
    st.add_argument("--url")
    me = sub.add_parser("merged")
    me.add_argument("file")
    me.add_argument("--total", type=int, required=True)
    me.add_argument("--shards", type=int, required=True)
    pu = sub.add_parser("puts")
    pu.add_argument("--log", required=True)
    pu.add_argument("--since", type=int, default=0)
    co = sub.add_parser("count")
    co.add_argument("--manifest", required=True)
    co.add_argument("--shard")
    a = ap.parse_args()
    if a.cmd == "stored" and not (a.manifest or (a.data and a.url)):
        ap.error("stored needs --manifest, or --data and --url")
    return {"stored": cmd_stored, "merged": cmd_merged, "puts": cmd_puts,
            "count": cmd_count}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
