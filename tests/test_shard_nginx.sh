#!/usr/bin/env bash
# test_shard_nginx.sh - `bulkup upload --shard K/N`, `--results`, `--dry-run` and
# `bulkup report merge`, against one nginx WebDAV server (scripts/nginx-webdav,
# access log on).
#
#   1. N = 4 shard processes run at the same time over a few thousand files
#      (--to): every file stored byte-identical (sha256 lists), each URI PUT
#      exactly once (access log), shards disjoint, roughly balanced, and
#      equal to the partition computed independently in Python from the
#      documented hash (first 8 bytes of SHA-256 of the relative path,
#      big-endian, mod N); --dry-run counts match; the merged report is
#      exact; a shard rerun with its journal sends nothing.
#   2. --results: one JSON Lines record per item, each index once, also
#      when the run is interrupted (SIGTERM: lines = submitted).
#   3. Manifests: 3 concurrent shards keyed by URL without the query (the
#      same path may appear on many lines), each URI PUT once.
#   4. The workflow's shards (--dry-run) follow the same keys.
#   5. report merge: conflicts (the same item succeeded in one report and
#      failed in another; the same shard twice) exit 1 and are listed;
#      --allow-conflicts exits 0; a missing shard is a warning; malformed
#      reports exit 2 naming the file, and nothing is written.
#   6. Usage errors of --shard and report merge.
#
# Prints "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail

SRC=${BULKUP_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BULKUP_TEST_BINARY_DIR:-$SRC/build}
TOOL=$BIN/bulkup
NGINX_WEBDAV=$SRC/scripts/nginx-webdav
FILES=${BULKUP_SHARD_FILES:-3000}
SHARDS=4

[ -x "$TOOL" ] || { echo "test_shard_nginx: $TOOL not built" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulkup-shard.XXXXXX")
STATE=$WORK/nginx
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  "$NGINX_WEBDAV" stop "$STATE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL - $1"
  [ -s "$WORK/err" ] && sed 's/^/    stderr: /' "$WORK/err" | head -20
  return 0
}
check() { if eval "$2"; then pass "$1"; else fail "$1"; fi; }

run_tool() {
  "$TOOL" "$@" >"$WORK/out" 2>"$WORK/err" </dev/null
  RC=$?
}

# The documented shard of a key, computed without bulkup.
cat >"$WORK/shardof.py" <<'PY'
import hashlib, sys
def shard(key: bytes, n: int) -> int:
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % n
PY

# ---- the data -----------------------------------------------------------------
python3 - "$WORK/data" "$FILES" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
r = random.Random(4242)
odd = ["with space", "caf\u00e9", "per%cent", "what?mark", "hash#tag"]
for i in range(n):
    d = os.path.join(root, "d%02d" % (i % 17), "s%d" % (i % 3))
    os.makedirs(d, exist_ok=True)
    name = ("%s %05d.bin" % (odd[i % len(odd)], i)) if i < 50 else "f%05d.bin" % i
    with open(os.path.join(d, name), "wb") as f:
        f.write(r.randbytes(r.randint(0, 8 * 1024)))
PY
check "generated $FILES files" '[ "$(find "$WORK/data" -type f | wc -l)" -eq "$FILES" ]'

# The expected partition: one file of relative paths per shard.
python3 - "$WORK/data" "$SHARDS" "$WORK/expect" <<'PY'
import os, sys
sys.path.insert(0, os.path.dirname(sys.argv[3]))
from shardof import shard
root, n, out = os.fsencode(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
parts = [[] for _ in range(n)]
for d, _, files in os.walk(root):
    for f in files:
        rel = os.path.relpath(os.path.join(d, f), root)
        parts[shard(rel, n)].append(rel)
for k in range(n):
    with open("%s.%d" % (out, k), "wb") as fh:
        fh.write(b"".join(p + b"\n" for p in sorted(parts[k])))
PY

eval "$("$NGINX_WEBDAV" start "$STATE" --count-connections)" || { echo "nginx did not start"; exit 1; }
LOG=$STATE/access.log
log_lines() { wc -l <"$LOG"; }
# "STATUS URI" for every PUT in the access log (URIs may hold spaces).
puts() {
  sed -n 's/^[0-9]* [0-9]* PUT \(.*\) \([0-9][0-9][0-9]\) [0-9]* [^ ]* [^ ]*$/\2 \1/p' "$LOG"
}

# ---- 1. four shards at once ------------------------------------------------------
for k in $(seq 0 $((SHARDS - 1))); do
  run_tool upload --dry-run --shard "$k/$SHARDS" --to "$NGINX_URL/store" "$WORK/data"
  want=$(wc -l <"$WORK/expect.$k")
  check "dry run shard $k/$SHARDS: exit 0, $want of $FILES items (the Python partition)" \
    '[ "$RC" -eq 0 ] && grep -q "^dry run: $FILES items in the input, $want in shard $k/$SHARDS " "$WORK/out"'
done
check "dry runs sent nothing" '[ "$(log_lines)" -eq 0 ]'

start=$(date +%s.%N)
for k in $(seq 0 $((SHARDS - 1))); do
  "$TOOL" upload --shard "$k/$SHARDS" --to "$NGINX_URL/store" "$WORK/data" \
    --journal "$WORK/run.$k.journal" --report "$WORK/r.$k.json" \
    --results "$WORK/res.$k.jsonl" --workers 4 --no-progress \
    >"$WORK/out.$k" 2>"$WORK/err.$k" </dev/null &
  PIDS+=($!)
done
rcs=""
for p in "${PIDS[@]}"; do wait "$p"; rcs="$rcs $?"; done
PIDS=()
echo "# $SHARDS shards of $FILES files in $(python3 -c "import time; print(round(time.time() - $start, 2))") s; exit statuses:$rcs"
check "every shard exits 0" '[ "$rcs" = "$(printf " 0%.0s" $(seq 1 $SHARDS))" ]'
check "each shard names its share on stderr" \
  'grep -q "shard 2/4: $(wc -l <"$WORK/expect.2") of the $FILES items in the input" "$WORK/err.2"'

(cd "$WORK/data" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$WORK/src.sums"
(cd "$NGINX_STORE/store" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$WORK/dst.sums"
check "the union of the shards is the whole input, byte-identical ($FILES sha256 sums)" \
  'cmp -s "$WORK/src.sums" "$WORK/dst.sums"'
puts | cut -d' ' -f2- | sort | uniq -c | awk '{ print $1 }' | sort | uniq -c >"$WORK/put-counts"
check "every URI was PUT exactly once ($FILES PUTs)" \
  '[ "$(cat "$WORK/put-counts" | awk "{print \$1, \$2}")" = "$FILES 1" ]'
check "every PUT answered 2xx" '[ "$(puts | wc -l)" -eq "$(grep -c " PUT " "$LOG")" ] && [ "$(puts | grep -vc "^2")" -eq 0 ]'

# Each shard's files, from its --results, against the Python partition.
python3 - "$WORK" "$SHARDS" "$FILES" <<'PY' >"$WORK/partition.txt" 2>&1
import json, os, sys
work, n, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
root = os.fsencode(os.path.join(work, "data"))
sets, ok = [], True
for k in range(n):
    got = set()
    for line in open(os.path.join(work, "res.%d.jsonl" % k), "rb"):
        rec = json.loads(line)
        got.add(os.path.relpath(os.fsencode(rec["path"]), root))
    want = set(l.rstrip(b"\n") for l in open(os.path.join(work, "expect.%d" % k), "rb"))
    if got != want:
        print("shard %d: %d files, expected %d (%d missing, %d extra)"
              % (k, len(got), len(want), len(want - got), len(got - want)))
        ok = False
    sets.append(got)
for a in range(n):
    for b in range(a + 1, n):
        if sets[a] & sets[b]:
            print("shards %d and %d overlap" % (a, b)); ok = False
sizes = [len(s) for s in sets]
print("sizes", sizes)
if sum(sizes) != total:
    print("union holds", sum(sizes), "of", total); ok = False
if min(sizes) < 0.85 * total / n or max(sizes) > 1.15 * total / n:
    print("unbalanced"); ok = False
sys.exit(0 if ok else 1)
PY
prc=$?
echo "# shard $(tail -1 "$WORK/partition.txt")"
check "shards are disjoint, cover the input, match the documented hash and are within 15% of $((FILES / SHARDS))" \
  '[ "$prc" -eq 0 ] || { cat "$WORK/partition.txt"; false; }'

check "each shard report carries its shard" \
  'python3 -c "import json,sys; sys.exit(0 if all(json.load(open(\"$WORK/r.%d.json\" % k))[\"shard\"] == {\"index\": k, \"count\": $SHARDS, \"key\": \"path\"} for k in range($SHARDS)) else 1)"'

run_tool report merge -o "$WORK/merged.json" "$WORK"/r.*.json
check "report merge: exit 0" '[ "$RC" -eq 0 ]'
check "merged report exact: submitted = succeeded = $FILES, nothing failed, no conflicts, no shard missing" \
  'python3 - "$WORK/merged.json" "$FILES" "$WORK" <<"PY"
import json, sys
m = json.load(open(sys.argv[1])); total = int(sys.argv[2])
s = m["summary"]
parts = [json.load(open("%s/r.%d.json" % (sys.argv[3], k)))["summary"] for k in range(4)]
ok = (s["submitted"] == total and s["succeeded"] == total and s["failed"] == 0
      and s["cancelled"] == 0 and m["conflicts"] == [] and m["failures"] == []
      and m["shards"] == {"count": 4, "missing": []} and s["reports"] == 4
      and s["bytes_succeeded"] == sum(p["bytes_succeeded"] for p in parts)
      and s["bytes_sent"] == sum(p["bytes_sent"] for p in parts)
      and s["elapsed_s"] == max(p["elapsed_s"] for p in parts))
if not ok: print(json.dumps(s), m["conflicts"][:3], m.get("shards"))
sys.exit(0 if ok else 1)
PY'
check "report merge: summary on stderr" 'grep -q "merged 4 reports: $FILES submitted, $FILES succeeded, 0 failed" "$WORK/err"'

# ---- 2. --results ------------------------------------------------------------------
check "results: one line per item, each index once, all succeeded, valid JSON" \
  'python3 - "$WORK" "$SHARDS" <<"PY"
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
for k in range(n):
    sub = json.load(open("%s/r.%d.json" % (work, k)))["summary"]["submitted"]
    recs = [json.loads(l) for l in open("%s/res.%d.jsonl" % (work, k), "rb")]
    idx = sorted(r["index"] for r in recs)
    keys = ["index", "path", "title", "url", "status", "error", "http_status",
            "attempts", "size", "bytes_sent", "elapsed_s"]
    if (len(recs) != sub or idx != list(range(sub))
            or any(list(r) != keys for r in recs)
            or any(r["status"] != "succeeded" or r["http_status"] != 201
                   or r["attempts"] != 1 or r["bytes_sent"] != r["size"] for r in recs)):
        print("shard", k, len(recs), sub); sys.exit(1)
PY'

# A rerun of one shard with its journal sends nothing.
before=$(log_lines)
run_tool upload --shard 2/$SHARDS --to "$NGINX_URL/store" "$WORK/data" \
  --journal "$WORK/run.2.journal" --report "$WORK/r.2.rerun.json" --no-progress
check "shard 2 rerun with its journal: exit 0" '[ "$RC" -eq 0 ]'
check "shard 2 rerun sends nothing" '[ "$(log_lines)" -eq "$before" ]'
check "shard 2 rerun: skips all its files" \
  'grep -q "skipped $(wc -l <"$WORK/expect.2") files recorded as uploaded" "$WORK/err"'

# Interrupted: the results file still has one line per submitted item.
"$TOOL" upload --to "$NGINX_URL/slow" "$WORK/data" --workers 1 \
  --results "$WORK/res.int.jsonl" --report "$WORK/r.int.json" --no-progress \
  >/dev/null 2>"$WORK/err" </dev/null &
pid=$!
PIDS=("$pid")
for _ in $(seq 1 500); do
  [ "$(awk '$4 ~ /^\/slow\// && $3 == "PUT"' "$LOG" | wc -l)" -ge 100 ] && break
  sleep 0.01
done
kill -TERM "$pid"
wait "$pid"
rc=$?
PIDS=()
check "interrupted run: exit 143" '[ "$rc" -eq 143 ]'
check "interrupted run: one results line per submitted item, each index once" \
  'python3 - "$WORK/r.int.json" "$WORK/res.int.jsonl" <<"PY"
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
recs = [json.loads(l) for l in open(sys.argv[2], "rb")]
st = {x: sum(1 for r in recs if r["status"] == x) for x in ("succeeded", "failed", "cancelled")}
ok = (len(recs) == s["submitted"] and sorted(r["index"] for r in recs) == list(range(s["submitted"]))
      and st["succeeded"] == s["succeeded"] and st["cancelled"] == s["cancelled"] and s["succeeded"] < 3000)
if not ok: print(s, len(recs), st)
sys.exit(0 if ok else 1)
PY'

# ---- 3. manifests: keyed by the URL without its query ------------------------------------
MAN_N=600
python3 - "$WORK" "$NGINX_URL" "$MAN_N" <<'PY'
import os, sys
work, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, work)
from shardof import shard
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(work, "data")) for f in fs)[:7]
with open(os.path.join(work, "m.csv"), "w") as m:
    m.write("path,url\n")
    for i in range(n):
        u = "%s/man/%06d.bin" % (url, i)
        m.write('"%s",%s?X-Amz-Signature=sig%d&X-Amz-Date=%d\n' % (files[i % 7], u, i, i))
for k in range(3):
    with open(os.path.join(work, "mexpect.%d" % k), "w") as f:
        for i in range(n):
            u = "%s/man/%06d.bin" % (url, i)
            if shard(u.encode(), 3) == k:
                f.write("/man/%06d.bin\n" % i)
PY
for k in 0 1 2; do
  "$TOOL" upload --shard "$k/3" --manifest "$WORK/m.csv" --report "$WORK/m.$k.json" \
    --results "$WORK/mres.$k.jsonl" --workers 4 -q --no-progress 2>"$WORK/merr.$k" </dev/null &
  PIDS+=($!)
done
rcs=""
for p in "${PIDS[@]}"; do wait "$p"; rcs="$rcs $?"; done
PIDS=()
check "manifest shards: every shard exits 0" '[ "$rcs" = " 0 0 0" ]'
check "manifest shards: each /man/ URI PUT exactly once ($MAN_N)" \
  '[ "$(puts | cut -d" " -f2- | grep "^/man/" | sort | uniq -c | awk "\$1 == 1" | wc -l)" -eq "$MAN_N" ] &&
   [ "$(puts | cut -d" " -f2- | grep -c "^/man/")" -eq "$MAN_N" ]'
check "manifest shards: each shard took the URLs the documented hash gives it (query ignored)" \
  'for k in 0 1 2; do python3 -c "
import json, sys
from urllib.parse import urlsplit
got = sorted(urlsplit(json.loads(l)[\"url\"]).path for l in open(\"$WORK/mres.$k.jsonl\"))
want = [l.strip() for l in open(\"$WORK/mexpect.$k\")]
sys.exit(0 if got == want else 1)" || exit 1; done'
run_tool report merge -o "$WORK/mmerged.json" "$WORK"/m.[012].json
check "manifest shards: merged report has $MAN_N succeeded, key url" \
  '[ "$RC" -eq 0 ] && python3 -c "import json,sys; m=json.load(open(\"$WORK/mmerged.json\")); sys.exit(0 if m[\"summary\"][\"succeeded\"] == $MAN_N and m[\"reports\"][0][\"shard\"] == {\"index\": 0, \"count\": 3} else 1)" &&
   python3 -c "import json,sys; sys.exit(0 if json.load(open(\"$WORK/m.1.json\"))[\"shard\"][\"key\"] == \"url\" else 1)"'
run_tool upload --dry-run --shard 1/3 --manifest - <"$WORK/m.csv"
"$TOOL" upload --dry-run --shard 1/3 --manifest - <"$WORK/m.csv" >"$WORK/out" 2>"$WORK/err"
check "manifest dry run from standard input: counts" \
  'grep -q "^dry run: $MAN_N items in the input, $(wc -l <"$WORK/mexpect.1") in shard 1/3 " "$WORK/out"'

# ---- 4. the workflow's shards follow the relative path too ---------------------------------
mkdir -p "$WORK/wf"
for k in 0 1 2 3; do
  (cd "$WORK/wf" && run_tool upload --dry-run --shard "$k/$SHARDS" "$WORK/data"; exit "$RC")
  RC=$?
  check "workflow dry run shard $k: the same $(wc -l <"$WORK/expect.$k") files" \
    '[ "$RC" -eq 0 ] && grep -q "^dry run: $FILES items in the input, $(wc -l <"$WORK/expect.$k") in shard $k/$SHARDS " "$WORK/out"'
done
check "workflow dry runs start no server (no store made)" '[ ! -e "$WORK/wf/bulkup-store" ]'
# Two real workflow shards over the sample images, each with its embedded
# server and store: together they store every image once.
IMAGES=$SRC/examples/images
NIMG=$(find "$IMAGES" -type f | wc -l)
for k in 0 1; do
  (cd "$WORK/wf" && run_tool upload --shard "$k/2" --store "$WORK/wf/store.$k" \
    --image-group "part$k" --no-create-video --results "$WORK/wf/res.$k.jsonl" --report "$WORK/wf/r.$k.json" \
    --no-progress "$IMAGES"; cp "$WORK/out" "$WORK/wf/out.$k"; exit "$RC")
  RC=$?
  check "workflow shard $k/2: exit 0" '[ "$RC" -eq 0 ]'
done
# stdout is one line per data unit (ENCORD_WIRE.md §9): without video nor
# clustering, each shard's group is one unit titled part<k>.
check "workflow shards: $NIMG images stored once in all, one results line each, one group line per shard" \
  '[ "$(find "$WORK"/wf/store.[01]/uploads -type f | wc -l)" -eq "$NIMG" ] &&
   [ "$(cat "$WORK"/wf/res.[01].jsonl | wc -l)" -eq "$NIMG" ] &&
   [ "$(sed -n "s/^[^ ]*  //p" "$WORK"/wf/out.0)" = part0 ] &&
   [ "$(sed -n "s/^[^ ]*  //p" "$WORK"/wf/out.1)" = part1 ]'
run_tool report merge "$WORK"/wf/r.[01].json
check "workflow shards: reports merge to $NIMG succeeded" \
  '[ "$RC" -eq 0 ] && grep -q "$NIMG submitted, $NIMG succeeded" "$WORK/err"'

# ---- 5. report merge: conflicts and malformed input -------------------------------------------
cat >"$WORK/a.json" <<'J'
{"summary": {"submitted": 2, "succeeded": 2, "failed": 0, "cancelled": 0, "retries": 0,
             "bytes_sent": 10, "bytes_succeeded": 10, "elapsed_s": 1.5},
 "failures": [], "cancelled": [],
 "succeeded": [{"index": 0, "path": "x/one.jpg", "url": "https://h/b/one.jpg?X-Amz-Signature=REDACTED"},
               {"index": 1, "path": "x/two.jpg", "url": "https://h/b/two.jpg"}]}
J
cat >"$WORK/b.json" <<'J'
{"summary": {"submitted": 2, "succeeded": 1, "failed": 1, "cancelled": 0, "retries": 3,
             "bytes_sent": 40, "bytes_succeeded": 5, "elapsed_s": 2.5},
 "failures": [{"index": 1, "path": "y/one.jpg", "title": "one.jpg",
               "url": "https://h/b/one.jpg?X-Amz-Signature=REDACTED&X-Amz-Date=2",
               "attempts": 4, "http_status": 503, "error": "http_status",
               "message": "HTTP 503", "response_excerpt": ""}],
 "cancelled": []}
J
run_tool report merge -o "$WORK/c.json" "$WORK/a.json" "$WORK/b.json"
check "conflict (succeeded in a, failed in b): exit 1" '[ "$RC" -eq 1 ]'
check "conflict: named on stderr" \
  'grep -q "succeeded_and_failed: https://h/b/one.jpg: .*a.json (succeeded), .*b.json (failed)" "$WORK/err"'
check "conflict: listed in the merged report, which is still written" \
  'python3 - "$WORK/c.json" <<"PY"
import json, sys
m = json.load(open(sys.argv[1]))
c = m["conflicts"]
ok = (len(c) == 1 and c[0]["kind"] == "succeeded_and_failed" and c[0]["key"] == "https://h/b/one.jpg"
      and [e["status"] for e in c[0]["entries"]] == ["succeeded", "failed"]
      and m["summary"]["submitted"] == 4 and m["summary"]["failed"] == 1
      and m["summary"]["retries"] == 3 and m["summary"]["elapsed_s"] == 2.5
      and m["failures"][0]["report"].endswith("b.json") and m["failures"][0]["index"] == 1
      and len(m["succeeded"]) == 2)
if not ok: print(json.dumps(m)[:600])
sys.exit(0 if ok else 1)
PY'
run_tool report merge --allow-conflicts "$WORK/a.json" "$WORK/b.json"
check "--allow-conflicts: exit 0, merged report on stdout" \
  '[ "$RC" -eq 0 ] && python3 -c "import json,sys; sys.exit(0 if len(json.load(open(\"$WORK/out\"))[\"conflicts\"]) == 1 else 1)"'
run_tool report merge "$WORK/b.json" "$WORK/b.json"
check "the same failure in two reports: a duplicate conflict, exit 1" \
  '[ "$RC" -eq 1 ] && grep -q "duplicate: https://h/b/one.jpg" "$WORK/err"'
run_tool report merge "$WORK/r.1.json" "$WORK/r.2.json" "$WORK/r.2.rerun.json"
check "the same shard twice: duplicate_shard, exit 1" \
  '[ "$RC" -eq 1 ] && grep -q "duplicate_shard: 2/4" "$WORK/err"'
run_tool report merge "$WORK/r.0.json" "$WORK/m.1.json"
check "shards of different counts: shard_count_mismatch, exit 1" \
  '[ "$RC" -eq 1 ] && grep -q "shard_count_mismatch" "$WORK/err"'
run_tool report merge "$WORK/r.0.json" "$WORK/r.1.json" "$WORK/r.3.json"
check "a missing shard: a warning naming it, exit 0" \
  '[ "$RC" -eq 0 ] && grep -q "1 of the 4 shards missing: 2" "$WORK/err" &&
   python3 -c "import json,sys; sys.exit(0 if json.load(open(\"$WORK/out\"))[\"shards\"][\"missing\"] == [2] else 1)"'

printf '{"summary": {"submitted": 1,' >"$WORK/torn.json"
echo 'not json' >"$WORK/text.json"
echo '{"failures": [], "cancelled": []}' >"$WORK/nosummary.json"
python3 -c "
import json; r = json.load(open('$WORK/a.json')); r['summary']['failed'] = 1
json.dump(r, open('$WORK/sum.json', 'w'))
r = json.load(open('$WORK/b.json')); r['failures'][0]['index'] = 'one'
json.dump(r, open('$WORK/index.json', 'w'))"
for bad in torn text nosummary sum index missing; do
  rm -f "$WORK/bad-out.json"
  run_tool report merge -o "$WORK/bad-out.json" "$WORK/a.json" "$WORK/$bad.json"
  check "malformed report ($bad): exit 2 naming the file, nothing written" \
    '[ "$RC" -eq 2 ] && grep -q "$WORK/$bad.json: " "$WORK/err" && [ ! -e "$WORK/bad-out.json" ]'
done
echo "    (e.g. $(head -1 "$WORK/err"))"

# ---- 6. usage ----------------------------------------------------------------------
for bad in 4/4 -1/4 1/0 x/4 1 3/ /4 "1/4 "; do
  run_tool upload --shard "$bad" --to "$NGINX_URL/u" "$WORK/data"
  check "--shard '$bad': exit 2" '[ "$RC" -eq 2 ] && grep -q "^bulkup: --shard" "$WORK/err"'
done
run_tool upload --shard 0/1 --dry-run --to "$NGINX_URL/u" "$WORK/data"
check "--shard 0/1 takes everything" 'grep -q " $FILES in shard 0/1 " "$WORK/out"'
run_tool report merge
check "report merge without REPORT: exit 2" '[ "$RC" -eq 2 ]'
run_tool report frobnicate
check "report with an unknown verb: exit 2" '[ "$RC" -eq 2 ] && grep -q "unknown verb" "$WORK/err"'
run_tool report merge --nope a.json
check "report merge with an unknown option: exit 2" '[ "$RC" -eq 2 ]'
run_tool upload --results - examples/images
check "--results - in the workflow: exit 2" '[ "$RC" -eq 2 ]'
check "no request reached the server from the usage errors" '[ "$(awk "\$4 ~ /^\/u\//" "$LOG" | wc -l)" -eq 0 ]'

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
