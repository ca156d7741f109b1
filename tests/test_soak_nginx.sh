#!/usr/bin/env bash
# test_soak_nginx.sh - the soak through the fault-injecting proxy to a real,
# independent server: `bulkup upload --to PROXYURL DIR` -> bk_proxy_main
# (tests/tools/, random faults per request/response exchange, seeded) ->
# nginx WebDAV (scripts/nginx-webdav).
#
#   - BULKUP_SOAK_NGINX_N files (default 500; seeded; sizes log-uniform
#     1 B .. 256 KiB, one in 100 of 2 MiB), faults with probability
#     BULKUP_SOAK_NGINX_P (default 0.15) per exchange, all kinds;
#   - exit 0, or 1 with only network-kind failures (send, recv,
#     timeout_read, timeout_write) after 6 attempts;
#   - the report is consistent (succeeded + failed + cancelled ==
#     submitted == N, every failure listed);
#   - every stored file is byte-identical to its source, every file not in
#     the report's failures is stored, and the store holds nothing else;
#   - faults really fired (>= 8% of exchanges) and some cost retries.
#
# Run by ctest with BULKUP_TEST_SOURCE_DIR and BULKUP_TEST_BINARY_DIR; prints
# "N passed, N failed" and exits non-zero on any failure.
set -uo pipefail

SRC=${BULKUP_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BULKUP_TEST_BINARY_DIR:-$SRC/build}
TOOL=$BIN/bulkup
PROXY=$BIN/tests/bk_proxy_main
NGINX_WEBDAV=$SRC/scripts/nginx-webdav
N=${BULKUP_SOAK_NGINX_N:-500}
P=${BULKUP_SOAK_NGINX_P:-0.15}
SEED=${BULKUP_SOAK_NGINX_SEED:-20240601}

for x in "$TOOL" "$PROXY" "$NGINX_WEBDAV"; do
  if [ ! -x "$x" ]; then
    echo "test_soak_nginx: $x not built" >&2
    exit 1
  fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulkup-soak-nginx.XXXXXX")
STATE=$WORK/nginx
PROXY_PID=

cleanup() {
  if [ -n "$PROXY_PID" ]; then
    kill -TERM "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
  fi
  "$NGINX_WEBDAV" stop "$STATE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PASSED=0
FAILED=0
pass() {
  PASSED=$((PASSED + 1))
  echo "ok - $1"
}
fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL - $1"
  if [ -s "$WORK/err" ]; then
    sed 's/^/    stderr: /' "$WORK/err" | tail -20
  fi
}
expect() {
  local desc=$1
  shift
  if "$@"; then pass "$desc"; else fail "$desc"; fi
}
finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
  exit $?
}

# ---- servers ----------------------------------------------------------------
if ! "$NGINX_WEBDAV" start "$STATE" >"$WORK/nginx.env" 2>"$WORK/err"; then
  fail "start nginx"
  finish
fi
eval "$(cat "$WORK/nginx.env")"

"$PROXY" 127.0.0.1 "$NGINX_PORT" --per-exchange --p "$P" --seed "$SEED" \
  --stats "$WORK/proxy.stats" >"$WORK/proxy.env" 2>"$WORK/proxy.err" &
PROXY_PID=$!
for _ in $(seq 100); do
  grep -q '^PROXY_URL=' "$WORK/proxy.env" 2>/dev/null && break
  sleep 0.05
done
if ! grep -q '^PROXY_URL=' "$WORK/proxy.env"; then
  fail "start the proxy"
  finish
fi
eval "$(cat "$WORK/proxy.env")"
pass "nginx on $NGINX_PORT, proxy on $PROXY_PORT (p $P, seed $SEED)"

# ---- files --------------------------------------------------------------------
python3 - "$WORK/src" "$N" "$SEED" <<'PY'
import math, os, random, sys
root, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
for i in range(count):
    d = os.path.join(root, "d%02d" % (i % 10))
    os.makedirs(d, exist_ok=True)
    if i % 100 == 50:
        size = 2 << 20
    else:
        size = max(1, int(math.exp(rng.uniform(0, math.log(262144)))))
    with open(os.path.join(d, "f%05d.bin" % i), "wb") as f:
        f.write(rng.randbytes(size))
PY
expect "generated $N files" test "$(find "$WORK/src" -type f | wc -l)" -eq "$N"

# ---- the run ----------------------------------------------------------------
T0=$(date +%s.%N)
"$TOOL" upload --to "$PROXY_URL/soak" "$WORK/src" --workers 8 \
  --connect-timeout 2 --read-timeout 2 --write-timeout 2 --max-retries 5 \
  --connection-retries 5 --backoff-factor 0.01 --report "$WORK/report.json" \
  -q >"$WORK/out" 2>"$WORK/err" </dev/null
RC=$?
T1=$(date +%s.%N)
expect "exit 0, or 1 with failures (exit $RC)" test "$RC" -eq 0 -o "$RC" -eq 1

kill -TERM "$PROXY_PID"
wait "$PROXY_PID"
PROXY_PID=
expect "proxy stats written" test -s "$WORK/proxy.stats"
eval "$(cat "$WORK/proxy.stats")"

check_report() {
  python3 - "$WORK/report.json" "$N" "$RC" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
n, rc = int(sys.argv[2]), int(sys.argv[3])
s = r["summary"]
ok = True
def bad(*a):
    global ok
    ok = False
    print("   ", *a)
if s["submitted"] != n: bad("submitted", s["submitted"], "expected", n)
if s["succeeded"] + s["failed"] + s["cancelled"] != s["submitted"]: bad("totals", s)
if s["cancelled"] != 0 or r["cancelled"]: bad("cancelled", s["cancelled"])
if len(r["failures"]) != s["failed"]: bad("failures listed", len(r["failures"]), "of", s["failed"])
if (rc == 0) != (s["failed"] == 0): bad("exit", rc, "with", s["failed"], "failed")
for f in r["failures"]:
    if f["error"] not in ("send", "recv", "timeout_read", "timeout_write") or f["attempts"] != 6:
        bad("failure", f["index"], f["error"], "after", f["attempts"], "attempts:", f["message"])
sys.exit(0 if ok else 1)
PY
}
expect "report consistent; failures are network faults after 6 attempts" check_report

# Every stored file equals its source; every file that did not fail is
# stored; nothing else is stored.
check_store() {
  python3 - "$WORK/src" "$NGINX_STORE/soak" "$WORK/report.json" <<'PY'
import hashlib, json, os, sys
src, dst, rep = sys.argv[1:4]
failed = {f["path"] for f in json.load(open(rep))["failures"]}
def tree(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out
a, b = tree(src), tree(dst)
missing = [k for k in a if k not in b and os.path.join(src, k) not in failed]
extra = [k for k in b if k not in a]
diff = [k for k in b if k in a and a[k] != b[k]]
for k in missing[:5]: print("    missing:", k)
for k in extra[:5]: print("    extra:", k)
for k in diff[:5]: print("    differs:", k)
print("    stored %d of %d files, %d verified by SHA-256" % (len(b), len(a), len(b) - len(diff) - len(extra)))
sys.exit(0 if a and not missing and not extra and not diff else 1)
PY
}
expect "every stored file byte-identical; every success stored" check_store

SUMMARY=$(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
print("succeeded %d, failed %d, retries %d" % (s["succeeded"], s["failed"], s["retries"]))
' "$WORK/report.json")
RETRIES=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["retries"])' "$WORK/report.json")
echo "    $N files in $(python3 -c "print('%.2f' % ($T1 - $T0))") s: $SUMMARY"
echo "    proxy: $PROXY_ACCEPTED connections, $PROXY_EXCHANGES exchanges, $PROXY_FIRED faults fired" \
  "(latency $PROXY_FIRED_LATENCY, bandwidth $PROXY_FIRED_BANDWIDTH, reset $PROXY_FIRED_RESET," \
  "blackhole $PROXY_FIRED_BLACKHOLE, slice $PROXY_FIRED_SLICE, close $PROXY_FIRED_CLOSE)"
if [ "$N" -ge 200 ] && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= 0.1 else 1)" "$P"; then
  expect "faults fired in >= 8% of exchanges" \
    test $((PROXY_FIRED * 100)) -ge $((PROXY_EXCHANGES * 8))
  expect "faults cost retries" test "$RETRIES" -gt 0
fi
finish
