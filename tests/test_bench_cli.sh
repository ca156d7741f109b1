#!/usr/bin/env bash
# test_bench_cli.sh - `bulkup bench` against nginx: the objects arrive with
# the sizes asked for, the figures are reported (text and JSON), failures
# are counted by kind, bad usage exits 2.
set -uo pipefail
SRC=${BULKUP_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BULKUP_TEST_BINARY_DIR:-$SRC/build}
TOOL=$BIN/bulkup
NGINX_WEBDAV=$SRC/scripts/nginx-webdav
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulkup-bench-cli.XXXXXX")
STATE=$WORK/nginx
cleanup() {
  "$NGINX_WEBDAV" stop "$STATE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
PASSED=0
FAILED=0
check() {
  if eval "$2"; then PASSED=$((PASSED + 1)); echo "ok - $1"; else
    FAILED=$((FAILED + 1)); echo "FAIL - $1"; sed 's/^/    /' "$WORK/out" "$WORK/err" 2>/dev/null | head -10; fi
}
eval "$("$NGINX_WEBDAV" start "$STATE")" || { echo "nginx did not start"; exit 1; }

"$TOOL" bench --to "$NGINX_URL/b1" -n 500 --size 4K --workers 4 >"$WORK/out" 2>"$WORK/err"
rc=$?
check "fixed size: exit 0" '[ "$rc" -eq 0 ]'
check "fixed size: says 500 of 500" 'grep -q "500 of 500 succeeded" "$WORK/out"'
check "fixed size: latency percentiles printed" 'grep -qE "p50 .* p90 .* p99 .* max" "$WORK/out"'
check "fixed size: 500 objects of 4096 bytes stored" \
  '[ "$(find "$NGINX_STORE/b1" -type f -size 4096c | wc -l)" -eq 500 ] && [ "$(find "$NGINX_STORE/b1" -type f | wc -l)" -eq 500 ]'

"$TOOL" bench --to "$NGINX_URL/b2/" -n 200 --sizes 1K-64K --json --seed 7 >"$WORK/out" 2>"$WORK/err"
rc=$?
check "size range, JSON: exit 0" '[ "$rc" -eq 0 ]'
check "size range, JSON: fields and counts" "python3 -c \"
import json, sys
j = json.load(open('$WORK/out'))
ok = (j['objects'] == 200 and j['succeeded'] == 200 and j['failed'] == 0
      and j['files_per_s'] > 0 and 0 < j['latency_s']['p50'] <= j['latency_s']['p90']
      <= j['latency_s']['p99'] <= j['latency_s']['max'] and j['errors'] == {})
sys.exit(0 if ok else 1)\""
check "size range: every object between 1 KiB and 64 KiB, bytes add up" "python3 -c \"
import json, os, sys
j = json.load(open('$WORK/out'))
sizes = [os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk('$NGINX_STORE/b2') for f in fs]
sys.exit(0 if len(sizes) == 200 and min(sizes) >= 1024 and max(sizes) <= 65536 and sum(sizes) == j['bytes'] else 1)\""

# A closed port: a socket bound to it, not listening (a connect is
# refused), held for the run so no other listener can take the port. The
# holder exits when its stdin (the coprocess pipe) is closed.
coproc HOLDER { python3 -c 'import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True); sys.stdin.read()'; }
holder_pid=$HOLDER_PID
read -r port <&"${HOLDER[0]}"
"$TOOL" bench --to "http://127.0.0.1:$port/x" -n 20 --max-retries 0 --json >"$WORK/out" 2>"$WORK/err"
rc=$?
exec {HOLDER[1]}>&-
wait "$holder_pid"
check "closed port: exit 1, errors counted by kind" "[ $rc -eq 1 ] && python3 -c \"
import json, sys
j = json.load(open('$WORK/out'))
sys.exit(0 if j['failed'] == 20 and j['errors'].get('connect') == 20 else 1)\""

for bad in "" "--to ftp://x" "--to $NGINX_URL -n 0" "--to $NGINX_URL --size 12Q" "--to $NGINX_URL --sizes 9K-1K" "--to $NGINX_URL --workers 0" "--to $NGINX_URL extra"; do
  eval "\"$TOOL\" bench $bad" >"$WORK/out" 2>"$WORK/err"
  rc=$?
  check "bad usage '$bad': exit 2" '[ "$rc" -eq 2 ]'
done
"$TOOL" bench --help >"$WORK/out" 2>&1
check "--help documents the options" 'grep -q -- "--sizes MIN-MAX" "$WORK/out" && grep -q -- "--json" "$WORK/out"'

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
