#!/usr/bin/env bash
# bench/shard_run.sh: 20,000 files of 16 KiB to one nginx, by one process and
# by 4 shard processes at once, then report merge; checks from nginx's
# access log that every file was PUT exactly once (bench/RESULTS.md).
# B=path/to/bulkup (default build/bulkup).
set -euo pipefail
B=${B:-$(cd "$(dirname "$0")/.." && pwd)/build/bulkup}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=/dev/shm/bkshard
N=20000
rm -rf $W; mkdir -p $W
python3 - $W/data $N <<'PY'
import os, sys, random
root, n = sys.argv[1], int(sys.argv[2]); r = random.Random(7)
for i in range(n):
    d = os.path.join(root, "d%02d" % (i % 50)); os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "f%05d.bin" % i), "wb").write(r.randbytes(16384))
PY
eval "$($ROOT/scripts/nginx-webdav start $W/ngx --store $W/store --count-connections)"
t0=$(date +%s.%N)
$B upload -q --no-progress --to $NGINX_URL/one $W/data --report $W/one.json
t1=$(date +%s.%N)
for k in 0 1 2 3; do
  $B upload -q --no-progress --shard $k/4 --journal $W/j$k --to $NGINX_URL/four $W/data --report $W/r$k.json &
done
wait
t2=$(date +%s.%N)
$B report merge -o $W/merged.json $W/r0.json $W/r1.json $W/r2.json $W/r3.json
python3 - $W $N "$t0" "$t1" "$t2" <<'PY'
import json, sys, collections, os
w, n, t0, t1, t2 = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:])
per = [json.load(open(f"{w}/r{k}.json"))["summary"]["succeeded"] for k in range(4)]
m = json.load(open(f"{w}/merged.json"))["summary"]
puts = collections.Counter()
for line in open(f"{w}/ngx/access.log"):
    f = line.split()
    if f[2] == "PUT" and f[3].startswith("/four/"): puts[f[3]] += 1
stored = sum(len(fs) for _, _, fs in os.walk(f"{w}/store/four"))
same = all(open(f"{w}/store/four/{os.path.relpath(os.path.join(d, f), w + '/data')}", "rb").read() == open(os.path.join(d, f), "rb").read()
           for d, _, fs in os.walk(f"{w}/data") for f in fs)
print(f"one process: {n} files in {t1-t0:.2f} s = {n/(t1-t0):,.0f} files/s")
print(f"4 shards at once: {t2-t1:.2f} s = {n/(t2-t1):,.0f} files/s; per shard {per} (sum {sum(per)})")
print(f"merged report: submitted {m['submitted']} succeeded {m['succeeded']} failed {m['failed']}")
print(f"PUTs to /four: {sum(puts.values())} for {len(puts)} distinct paths, max per path {max(puts.values())}; stored {stored}; byte-identical: {same}")
PY
$ROOT/scripts/nginx-webdav stop $W/ngx
rm -rf $W
