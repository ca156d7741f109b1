#!/usr/bin/env bash
# bench/scale_1m.sh: 100,000 unique uploads, 1,000,000 overwriting 1,000
# objects, 1,000,000 unique, against one nginx (1 worker, store in /dev/shm):
# does the client keep its rate at a million? (bench/RESULTS.md, "Scale").
# B=path/to/bulkup (default build/bulkup); needs ~1.5 GB of /dev/shm.
set -euo pipefail
B=${B:-$(cd "$(dirname "$0")/.." && pwd)/build/bulkup}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=/dev/shm/bkscale
rm -rf $W; mkdir -p $W/files
for i in $(seq 0 9); do printf x > $W/files/f$i; done
eval "$($ROOT/scripts/nginx-webdav start $W/ngx --store $W/store)"
python3 - $W "$NGINX_URL" <<'PY'
import sys
w, url = sys.argv[1], sys.argv[2]
def gen(name, n, mod):
    with open(f"{w}/{name}", "w") as f:
        f.write("path,url\n")
        for i in range(n):
            k = i % mod
            f.write(f"{w}/files/f{i%10},{url}/{name}/{k//1000}/{k}.bin\n")
gen("u100k.csv", 100000, 10**9)
gen("u1m.csv", 1000000, 10**9)
gen("o1m.csv", 1000000, 1000)
PY
for m in u100k o1m u1m; do
  /usr/bin/time -f "$m %M kB %e s %U user %S sys" $B upload --manifest $W/$m.csv -q --no-progress --report $W/$m.json 2>&1 | tail -1
  python3 -c "import json;s=json.load(open('$W/$m.json'))['summary'];print('  ',s['succeeded'],'succeeded',s['failed'],'failed', round(s['succeeded']/s['elapsed_s']),'files/s')"
done
$ROOT/scripts/nginx-webdav workers-cpu $W/ngx || true
$ROOT/scripts/nginx-webdav stop $W/ngx
rm -rf $W
