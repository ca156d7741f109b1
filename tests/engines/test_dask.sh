#!/usr/bin/env bash
# test_dask.sh - README's Dask recipe, taken from README.md and run
# unchanged (its DATA and TARGET come from the environment): a
# distributed.LocalCluster of 2 worker processes, 8 tasks, each uploading
# one shard in-process through the Python binding (upload_files(...,
# shard=(k, 8))), the reports gathered; against nginx on loopback.
#
#   1. 300 files: at nginx every file PUT exactly once and byte-identical;
#      `bulkup report merge` of the 8 reports exact (300 submitted and
#      succeeded, 8 shards, none missing).
#   2. The split is the CLI's: for every k, the files upload_files(...,
#      shard=(k, 8)) uploads are exactly those `bulkup upload --shard k/8
#      --manifest` uploads (its --results) from a manifest of the same
#      pairs, URLs with and without a query; the 8 shards are disjoint
#      and cover the input; a shard that does not exist is a ValueError
#      before anything is sent (nginx sees no more PUTs).
#
# Needs python3-distributed (else exit 77); the binding is found as
# python/tests finds it (PYTHONPATH, BULKUP_LIBRARY: set by ctest, else
# the source tree's python/ and the build's library).
# Prints "N passed, N failed".
set -uo pipefail
/usr/bin/python3 -c 'import distributed' 2>/dev/null || { echo "test_dask: skipped: no python3-distributed"; exit 77; }
source "$(dirname "$0")/lib.sh"
export PYTHONPATH=${PYTHONPATH:-$SRC/python}
export BULKUP_LIBRARY=${BULKUP_LIBRARY:-$BIN/libbulkup.so}
export PYTHONDONTWRITEBYTECODE=1
"$PY" -c 'import bulkup, bulkup._native as n; n.lib()' || { echo "test_dask: the Python binding does not load"; exit 1; }
FILES=300

make_data "$WORK/data" "$FILES" 20
nginx_start dask
recipe dask >"$WORK/upload_shards.py" || { echo "README: no dask block"; exit 1; }
check "the recipe runs 8 shards (N = 8)" grep -qx 'N = 8  # shards (tasks)' "$WORK/upload_shards.py"

mkdir "$WORK/run" && cd "$WORK/run" || exit 1
t0=$EPOCHREALTIME
DATA=$WORK/data TARGET=$NGINX_URL/run1 timeout 120 "$PY" "$WORK/upload_shards.py" >out 2>&1
rc=$?
echo "# the recipe (cluster up, 8 tasks, down): $(elapsed "$t0") s"
check "the recipe: exit 0" bash -c "[ $rc -eq 0 ] || { cat out; false; }"
check "nginx: every file PUT exactly once, byte-identical" \
	verify stored --data "$WORK/data" --url "$NGINX_URL/run1" --store "$NGINX_STORE" --log "$NGINX_LOG"
bulkup report merge -o report.json r.*.json >merge.out 2>&1
check "bulkup report merge r.*.json: exit 0" bash -c "[ $? -eq 0 ] || { cat merge.out; false; }"
check "merged report exact: $FILES submitted and succeeded, 8 shards, none missing" \
	verify merged report.json --total "$FILES" --shards 8

# ---- 2. the split against the CLI's ------------------------------------------------
nginx_start split
cat >"$WORK/split.py" <<'PY'
import json, os, subprocess, sys
from bulkup import upload_files

data, base, work = sys.argv[1:4]
N = 8
pairs = []
for d, _, files in sorted(os.walk(data)):
    for f in sorted(files):
        p = os.path.join(d, f)
        i = len(pairs)
        url = "%s/split/%s" % (base, os.path.relpath(p, data))
        pairs.append((p, url + ("?X-Sig=%d&t=%d" % (i, i * 7) if i % 2 else "")))
with open(os.path.join(work, "pairs.csv"), "w") as f:
    f.write("".join("%s,%s\n" % pu for pu in pairs))
fails, union = 0, []
for k in range(N):
    res = os.path.join(work, "res.%d.jsonl" % k)
    r = subprocess.run(["bulkup", "upload", "--manifest", os.path.join(work, "pairs.csv"),
                        "--shard", "%d/%d" % (k, N), "--results", res, "--workers", "4",
                        "--no-progress", "-q"])
    cli = {json.loads(l)["path"] for l in open(res)}
    py = upload_files(pairs, workers=4, shard=(k, N))
    got = {x.path for x in py.successes}
    ok = r.returncode == 0 and py.ok and got == cli and len(got) == py.summary.submitted
    print("%s - shard %d/%d: upload_files %d files, the CLI %d, %s" % (
        "ok" if ok else "FAIL", k, N, len(got), len(cli), "the same" if got == cli else "DIFFERENT"))
    fails += not ok
    union += sorted(got)
ok = len(union) == len(set(union)) == len(pairs)
print("%s - the %d shards are disjoint and cover the %d pairs" % ("ok" if ok else "FAIL", N, len(pairs)))
refused = 0
for bad in [(8, 8), (-1, 8), (0, 0), (0, 2**32), (1.0, 2), (True, 2), (1,), "0/8", (0, 1, 2)]:
    try:
        upload_files(pairs, shard=bad)
    except ValueError:
        refused += 1
print("%s - shard=(k, n) outside 0 <= k < n < 2**32, or not two whole numbers: ValueError, nothing sent (%d of 9)"
      % ("ok" if refused == 9 else "FAIL", refused))
fails += refused != 9
sys.exit(1 if fails or not ok else 0)
PY
"$PY" "$WORK/split.py" "$WORK/data" "$NGINX_URL" "$WORK" >"$WORK/split.out" 2>&1
cat "$WORK/split.out"
check "nginx: 2 PUTs per pair (the CLI's, then upload_files'), none from the refused calls" \
	test "$(verify puts --log "$NGINX_LOG")" -eq $((2 * FILES))
PASSED=$((PASSED + $(grep -c '^ok - ' "$WORK/split.out")))
FAILED=$((FAILED + $(grep -c '^FAIL - ' "$WORK/split.out")))
check "the split check ran all 8 shards" test "$(grep -c '^ok - shard [0-9]' "$WORK/split.out")" -eq 8
cd "$WORK" || exit 1
finish
