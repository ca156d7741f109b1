#!/usr/bin/env bash
# test_http2_nginx.sh - HTTP versions against nginx with HTTP/2 on its TLS
# port (bench/nginx-http2 over scripts/nginx-webdav): 40 files with 8
# fixed transfers.
#   1. the default multiplexes: every file stored byte-identical, over
#      exactly 1 TCP connection (nginx's access log: $connection);
#   2. --http2: the same;
#   3. --http1.1: 8 connections (one per transfer);
#   4. the report's concurrency object: fixed, 8.
# Connection counts come from the server's log, not from timing.
set -uo pipefail

SRC=${BULKUP_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BULKUP_TEST_BINARY_DIR:-$SRC/build}
TOOL=$BIN/bulkup
NW=$SRC/scripts/nginx-webdav
PY=/usr/bin/python3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulkup-h2.XXXXXX")
STATE=$WORK/nginx
cleanup() {
  "$NW" stop "$STATE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

pass=0 fail=0
check() { # NAME CONDITION...
  local name=$1
  shift
  if "$@"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL: $name" >&2
  fi
}

if ! env=$(NGINX="$SRC/bench/nginx-http2" timeout 60 "$NW" start "$STATE" --tls --count-connections); then
  echo "test_http2_nginx: nginx did not start" >&2
  exit 1
fi
eval "$env"

mkdir -p "$WORK/data"
$PY - "$WORK/data" <<'EOF'
import os, random, sys
r = random.Random(20261202)
for i in range(40):
    with open(os.path.join(sys.argv[1], f"f{i:02d}.bin"), "wb") as f:
        f.write(bytes(r.getrandbits(8) for _ in range(r.randint(1, 40000))))
EOF

# Distinct connections of the requests under PREFIX in the access log
# ($connection $connection_requests $request_method $uri ...). 8 transfers
# at once over one connection: multiplexed (HTTP/1.1 would need 8).
conns() { grep -F " /$1/" "$STATE/access.log" | awk '{print $1}' | sort -u | wc -l; }

same_files() { # PREFIX
  local f
  for f in "$WORK"/data/*; do
    cmp -s "$f" "$NGINX_STORE/$1/$(basename "$f")" || return 1
  done
}

run() { # PREFIX ARGS...
  local p=$1
  shift
  timeout 120 "$TOOL" upload --to "$NGINX_URL/$p" "$WORK/data" --cacert "$NGINX_CA" \
    --workers 8 --no-progress -q --report "$WORK/$p.json" "$@"
}

run dflt
check "default: exit 0" test $? -eq 0
check "default: stored" same_files dflt
check "default: one connection ($(conns dflt))" test "$(conns dflt)" -eq 1

run h2 --http2
check "--http2: exit 0" test $? -eq 0
check "--http2: stored" same_files h2
check "--http2: one connection ($(conns h2))" test "$(conns h2)" -eq 1

run h1 --http1.1
check "--http1.1: exit 0" test $? -eq 0
check "--http1.1: stored" same_files h1
check "--http1.1: 8 connections ($(conns h1))" test "$(conns h1)" -eq 8

conc=$($PY -c 'import json,sys; c=json.load(open(sys.argv[1]))["concurrency"]; print(c["adaptive"], c["min"], c["max"], c["final"], c["limit"])' "$WORK/h1.json")
check "report concurrency ($conc)" test "$conc" = "False 8 8 8 8"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
