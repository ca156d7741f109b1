#!/usr/bin/env bash
# test_azure_azurite.sh - `bulkup upload` against Azurite 3.35.0, Microsoft's
# Azure Storage emulator, which checks SAS signatures, Content-MD5 and the
# headers of a Put Blob. SAS tokens are made here from the documented
# string-to-sign and the emulator's published development key
# (tests/support/azure_sas.py); faults come from a small proxy in front of
# Azurite (tests/support/azure_fault_proxy.py).
#
#   1. 1,000 small blobs by --manifest sas.csv with no header given: bulkup
#      sends x-ms-blob-type and x-ms-version by itself; every blob read back
#      (GET with the SAS) byte-identical; the report's counts exact.
#   2. A wrong SAS (signed with another key), another blob's SAS, an
#      expired SAS: 403, exactly 1 attempt each, not retried.
#   3. Through the proxy: ServerBusy (503) and OperationTimedOut (500) once,
#      then success (2 attempts each, counted by the proxy too);
#      AuthenticationFailed on a 500: 1 attempt, not retried; the code in
#      the report's message. The headers sent (x-ms-blob-type, x-ms-version,
#      Content-MD5 with --content-md5) as the proxy saw them.
#   4. --metadata and --header (and a JSON Lines line's "headers") land as
#      blob metadata; az:// with --azure-sas / AZURE_STORAGE_SAS_TOKEN and
#      --azure-endpoint; a user's Content-MD5 that is wrong is refused by
#      the server (the user's header wins); bulkup's Cache-Control kept as
#      x-ms-blob-cache-control.
#   5. Usage: bad --header / --metadata / manifest headers, az:// without a
#      SAS, --header in the workflow: exit 2, nothing uploaded.
#   6. No SAS sig anywhere in the reports, results or stderr.
#
# Skips (77) when Azurite or node is missing. Run by ctest with
# BULKUP_TEST_SOURCE_DIR and BULKUP_TEST_BINARY_DIR.
set -uo pipefail

SRC=${BULKUP_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BULKUP_TEST_BINARY_DIR:-$SRC/build}
TOOL=$BIN/bulkup
PY=/usr/bin/python3
SAS=$SRC/tests/support/azure_sas.py
PROXY=$SRC/tests/support/azure_fault_proxy.py
NPM_DIR=${BULKUP_NPM_DIR:-$SRC/build/npm}
AZURITE=$NPM_DIR/node_modules/.bin/azurite-blob

if [ ! -x "$TOOL" ]; then
  echo "test_azure_azurite: $TOOL not built" >&2
  exit 1
fi
if [ ! -x "$AZURITE" ] || ! command -v node >/dev/null; then
  echo "test_azure_azurite: skipped: no Azurite at $AZURITE (scripts/setup installs it)"
  exit 77
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulkup-azurite.XXXXXX")
AZ_PID=
PX_PID=
cleanup() {
  [ -n "$PX_PID" ] && kill "$PX_PID" 2>/dev/null && wait "$PX_PID" 2>/dev/null
  [ -n "$AZ_PID" ] && kill "$AZ_PID" 2>/dev/null && wait "$AZ_PID" 2>/dev/null
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
    sed 's/^/    stderr: /' "$WORK/err" | head -20
  fi
}
check() { # check DESC CMD...
  local d=$1
  shift
  if "$@"; then pass "$d"; else fail "$d"; fi
}
# run_tool ARGS...: bulkup with stderr to $WORK/err (appended to all.err),
# status in $RC.
run_tool() {
  (cd "$WORK" && "$TOOL" "$@" >"$WORK/out" 2>"$WORK/err" </dev/null)
  RC=$?
  cat "$WORK/err" "$WORK/out" >>"$WORK/all.err"
}
# jq-less report queries: rq FILE EXPR (a Python expression over r).
rq() {
  $PY -c 'import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# ---- Azurite ------------------------------------------------------------
# In memory (its store on disk slows it as it grows), its working directory
# a temporary one; a port the OS picks, read from its log.
mkdir -p "$WORK/azurite"
(cd "$WORK/azurite" && exec "$AZURITE" --inMemoryPersistence --blobHost 127.0.0.1 \
  --blobPort 0 --disableTelemetry --silent) >"$WORK/azurite.log" 2>&1 &
AZ_PID=$!
PORT=
for _ in $(seq 1 300); do
  PORT=$(sed -n 's|.*listens on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$WORK/azurite.log")
  [ -n "$PORT" ] && break
  kill -0 "$AZ_PID" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$PORT" ]; then
  echo "test_azure_azurite: Azurite did not start:" >&2
  cat "$WORK/azurite.log" >&2
  exit 1
fi
EP=http://127.0.0.1:$PORT/devstoreaccount1
CONT=bulk
ACCOUNT_SAS=$($PY "$SAS" --account)
TOKEN=$($PY "$SAS" $CONT)
# the container, by an account SAS
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'x-ms-version: 2021-12-02' \
  "$EP/$CONT?restype=container&$ACCOUNT_SAS")
check "container created (201)" [ "$code" = 201 ]

# sigs of every token used, to look for later
sigs_of() { $PY -c 'import sys,urllib.parse; q=urllib.parse.parse_qs(sys.argv[1]); s=q["sig"][0]; print(s); print(urllib.parse.quote(s, safe=""))' "$1"; }
sigs_of "$TOKEN" >"$WORK/sigs"

# ---- 1. 1,000 small blobs -------------------------------------------------
$PY - "$WORK/small" 1000 "$EP/$CONT/small" "$TOKEN" "$WORK/sas.csv" <<'PY'
import os, random, sys
root, n, prefix, token, manifest = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
rnd = random.Random(17)
os.makedirs(root)
with open(manifest, "w") as m:
    for i in range(n):
        size = rnd.choice([0, 1, 100, rnd.randrange(1, 8192)])
        name = "f%04d.bin" % i
        with open(os.path.join(root, name), "wb") as f:
            f.write(rnd.randbytes(size))
        m.write("small/%s,%s/%s?%s\n" % (name, prefix, name, token))
PY
run_tool upload --manifest sas.csv --workers 16 --report r1.json --results res1.jsonl
check "1,000 blobs: exit 0" [ "$RC" = 0 ]
check "1,000 blobs: report 1000 succeeded, 0 failed, 0 retries" \
  [ "$(rq "$WORK/r1.json" '(r["summary"]["succeeded"], r["summary"]["failed"], r["summary"]["retries"])')" = "(1000, 0, 0)" ]
verify() { # verify DIR PREFIX TOKEN COUNT: GET each blob, compare bytes
  $PY - "$@" <<'PY'
import http.client, os, sys, urllib.parse
d, prefix, tok, want = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
u = urllib.parse.urlsplit(prefix)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)  # kept alive
ok = 0
for name in sorted(os.listdir(d)):
    c.request("GET", "%s/%s?%s" % (u.path, name, tok))
    r = c.getresponse()
    body = r.read()
    if r.status == 200 and body == open(os.path.join(d, name), "rb").read():
        ok += 1
    else:
        print("differs:", name, r.status)
print(ok)
sys.exit(0 if ok == want else 1)
PY
}
check "1,000 blobs: every blob read back byte-identical" \
  verify "$WORK/small" "$EP/$CONT/small" "$TOKEN" 1000 >/dev/null

# ---- 2. SAS refused: 403, one attempt ------------------------------------
echo "x" >"$WORK/one.txt"
BAD=$($PY "$SAS" $CONT --bad)
OTHER=$($PY "$SAS" $CONT other.txt)
EXPIRED=$($PY "$SAS" $CONT --expiry 2001-01-01T00:00:00Z)
for t in "$BAD" "$OTHER" "$EXPIRED"; do sigs_of "$t" >>"$WORK/sigs"; done
refused() { # refused DESC TOKEN
  echo "one.txt,$EP/$CONT/target.txt?$2" >"$WORK/m.csv"
  run_tool upload --manifest m.csv --backoff-factor 0.01 --report r2.json
  check "$1: exit 1" [ "$RC" = 1 ]
  check "$1: 403, exactly 1 attempt, 0 retries" \
    [ "$(rq "$WORK/r2.json" '(r["failures"][0]["http_status"], r["failures"][0]["attempts"], r["summary"]["retries"])')" = "(403, 1, 0)" ]
  check "$1: the error code in the message" \
    grep -q '"message": "HTTP 403 Authentication\|"message": "HTTP 403 Authorization' "$WORK/r2.json"
}
refused "wrong key" "$BAD"
refused "another blob's SAS" "$OTHER"
refused "expired SAS" "$EXPIRED"
code=$(curl -s -o /dev/null -w '%{http_code}' "$EP/$CONT/target.txt?$TOKEN")
check "refused SAS: nothing stored (404)" [ "$code" = 404 ]

# ---- 3. through the fault proxy ------------------------------------------
$PY "$PROXY" "$PORT" "$WORK/proxy.log" "$WORK/proxy.port" &
PX_PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/proxy.port" ] && break; sleep 0.1; done
PXP=$(cat "$WORK/proxy.port" 2>/dev/null)
check "proxy started" [ -n "$PXP" ]
PEP=http://127.0.0.1:$PXP/devstoreaccount1
mkdir -p "$WORK/faults"
for n in busy-1 busy-2 busy-3 timedout-1 plain-1; do
  head -c 3000 /dev/urandom >"$WORK/faults/$n"
  echo "faults/$n,$PEP/$CONT/faults/$n?$TOKEN"
done >"$WORK/f.csv"
run_tool upload --manifest f.csv --backoff-factor 0.01 --content-md5 --report r3.json
check "ServerBusy/OperationTimedOut once: exit 0" [ "$RC" = 0 ]
check "ServerBusy/OperationTimedOut once: 5 succeeded, 4 retries" \
  [ "$(rq "$WORK/r3.json" '(r["summary"]["succeeded"], r["summary"]["retries"])')" = "(5, 4)" ]
count_puts() { # count_puts NAME: PUTs the proxy saw for it
  grep -c "\"method\": \"PUT\", \"path\": \"/devstoreaccount1/$CONT/faults/$1\"" "$WORK/proxy.log"
}
check "proxy: 2 PUTs for each faulted blob, 1 for the plain one" \
  [ "$(count_puts busy-1)$(count_puts busy-2)$(count_puts busy-3)$(count_puts timedout-1)$(count_puts plain-1)" = 22221 ]
rm -f "$WORK/small2" && mkdir -p "$WORK/small2"
check "faulted blobs read back byte-identical" \
  verify "$WORK/faults" "$EP/$CONT/faults" "$TOKEN" 5 >/dev/null
$PY - "$WORK/proxy.log" "$WORK/faults" <<'PY' >"$WORK/hdrcheck"
import base64, hashlib, json, os, sys
bad = 0
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["method"] != "PUT":
        continue
    n += 1
    h = r["headers"]
    name = r["path"].rsplit("/", 1)[-1]
    md5 = base64.b64encode(hashlib.md5(open(os.path.join(sys.argv[2], name), "rb").read()).digest()).decode()
    if (h.get("x-ms-blob-type") != "BlockBlob" or h.get("x-ms-version") != "2023-11-03"
            or h.get("content-md5") != md5):
        bad += 1
print(n, bad)
PY
check "every PUT carried x-ms-blob-type, x-ms-version and the right Content-MD5" \
  [ "$(cat "$WORK/hdrcheck")" = "9 0" ]

head -c 100 /dev/urandom >"$WORK/faults/authfail-1"
echo "faults/authfail-1,$PEP/$CONT/faults/authfail-1?$TOKEN" >"$WORK/a.csv"
run_tool upload --manifest a.csv --backoff-factor 0.01 --report r4.json
check "AuthenticationFailed on a 500: exit 1" [ "$RC" = 1 ]
check "AuthenticationFailed on a 500: 1 attempt, not retried, code in the message" \
  [ "$(rq "$WORK/r4.json" '(r["failures"][0]["http_status"], r["failures"][0]["attempts"], r["summary"]["retries"], r["failures"][0]["message"])')" = "(500, 1, 0, 'HTTP 500 AuthenticationFailed after 1 attempt')" ]
check "proxy: authfail PUT once" [ "$(count_puts authfail-1)" = 1 ]

# ---- 4. metadata, headers, az:// -----------------------------------------
mkdir -p "$WORK/meta"
echo "meta one" >"$WORK/meta/a.txt"
echo "meta two" >"$WORK/meta/b.txt"
run_tool upload --azure-sas "$TOKEN" --azure-endpoint "$EP" --to "az://devstoreaccount1/$CONT/m" \
  --metadata owner=ana --metadata Project_2=x1 --header 'x-ms-meta-team: blue' \
  --header 'x-ms-blob-cache-control: no-store' meta
check "az:// --to with --metadata: exit 0" [ "$RC" = 0 ]
props() { # props BLOB: the blob's x-ms-meta-* and Cache-Control, sorted
  curl -s -I "$EP/$CONT/$1?$TOKEN" | tr -d '\r' | grep -i '^x-ms-meta-\|^cache-control' | tr 'A-Z' 'a-z' | sort | tr '\n' ' '
}
check "metadata and headers landed" \
  [ "$(props m/a.txt)" = "cache-control: no-store x-ms-meta-owner: ana x-ms-meta-project_2: x1 x-ms-meta-team: blue " ]
check "az:// blobs read back byte-identical" verify "$WORK/meta" "$EP/$CONT/m" "$TOKEN" 2 >/dev/null

printf '%s\n' \
  "{\"path\": \"meta/a.txt\", \"url\": \"az://devstoreaccount1/$CONT/j/a.txt\", \"headers\": {\"x-ms-meta-line\": \"one\", \"x-ms-meta-owner\": \"bo\"}}" \
  "{\"path\": \"meta/b.txt\", \"url\": \"$EP/$CONT/j/b.txt?$TOKEN\"}" >"$WORK/m.jsonl"
AZURE_STORAGE_SAS_TOKEN=$TOKEN run_tool upload --azure-endpoint "$EP" --metadata owner=ana --manifest m.jsonl
check "JSON Lines headers, AZURE_STORAGE_SAS_TOKEN: exit 0" [ "$RC" = 0 ]
check "a line's headers win over --metadata" \
  [ "$(props j/a.txt)" = "cache-control: max-age=86400 x-ms-meta-line: one x-ms-meta-owner: bo " ]
check "--metadata on a line without headers" [ "$(props j/b.txt)" = "cache-control: max-age=86400 x-ms-meta-owner: ana " ]

echo "meta/a.txt,$EP/$CONT/md5.txt?$TOKEN" >"$WORK/md5.csv"
run_tool upload --manifest md5.csv --header 'Content-MD5: 1B2M2Y8AsgTpgAmY7PhCfg==' --report r5.json
check "a wrong Content-MD5 of the user's: refused by Azurite (400, 1 attempt)" \
  [ "$(rq "$WORK/r5.json" '(r["failures"][0]["http_status"], r["failures"][0]["attempts"], r["failures"][0]["message"], "contentMD5" in r["failures"][0]["response_excerpt"])')" = "(400, 1, 'HTTP 400 InvalidOperation after 1 attempt', True)" ]
# bulkup's own Cache-Control (the default max-age=86400) goes as Azure's
# x-ms-blob-cache-control, which Azure keeps
check "the default Cache-Control kept by Azure" \
  [ "$(curl -s -I "$EP/$CONT/j/b.txt?$TOKEN" | tr -d '\r' | grep -i '^cache-control')" = "cache-control: max-age=86400" ]

# ---- 5. usage --------------------------------------------------------------
usage() { # usage DESC WANT_IN_STDERR ARGS...
  local d=$1 want=$2
  shift 2
  run_tool upload "$@"
  if [ "$RC" = 2 ] && grep -q -- "$want" "$WORK/err"; then pass "$d"; else
    fail "$d (exit $RC)"; fi
}
usage "--header Host refused" "cannot be overridden" --header 'Host: evil' --manifest sas.csv
usage "--header Content-Length refused" "cannot be overridden" --header 'content-length: 1' --manifest sas.csv
usage "--header with a bad name" "not a token" --header 'Bad Name: x' --manifest sas.csv
usage "--header without a value" "value is empty" --header 'X-A:' --manifest sas.csv
usage "--metadata without =" "expected KEY=VALUE" --metadata owner --manifest sas.csv
usage "--metadata with a bad key" "expected KEY=VALUE" --metadata 'a b=1' --manifest sas.csv
printf '%s\n' '{"path": "one.txt", "url": "'"$EP/$CONT/u.txt?$TOKEN"'"}' \
  '{"path": "one.txt", "url": "'"$EP/$CONT/v.txt?$TOKEN"'", "headers": {"x-a": "1\r\nHost: evil"}}' >"$WORK/bad.jsonl"
usage "a manifest header with CR LF: the line named" "bad.jsonl line 2: header \"x-a\": the value holds a line break" --manifest bad.jsonl
printf '%s\n' '{"path": "one.txt", "url": "'"$EP/$CONT/u.txt?$TOKEN"'", "headers": {"Transfer-Encoding": "chunked"}}' >"$WORK/bad2.jsonl"
usage "a manifest Transfer-Encoding: the line named" "bad2.jsonl line 1: header \"Transfer-Encoding\"" --manifest bad2.jsonl
printf '%s\n' '{"path": "one.txt", "url": "'"$EP/$CONT/u.txt?$TOKEN"'", "headers": ["x: 1"]}' >"$WORK/bad3.jsonl"
usage "manifest headers not an object" "must be an object" --manifest bad3.jsonl
usage "az:// without a SAS" "needs a SAS token" --to "az://devstoreaccount1/$CONT/x" meta
usage "az:// without a container" "needs an account and a container" --azure-sas "$TOKEN" --to "az://devstoreaccount1" meta
usage "--header in the workflow" "is for --to and --manifest" --header 'x-a: 1' meta
code=$(curl -s -o /dev/null -w '%{http_code}' "$EP/$CONT/u.txt?$TOKEN")
check "usage errors: nothing uploaded (404)" [ "$code" = 404 ]

run_tool upload --help
missing=""
for o in "--header 'NAME: VALUE'" "--metadata KEY=VALUE" "--azure-sas TOKEN" \
  "--azure-endpoint URL" "x-ms-blob-type: BlockBlob" "AZURE_STORAGE_SAS_TOKEN" "headers"; do
  grep -qF -- "$o" "$WORK/out" || missing="$missing [$o]"
done
check "upload --help documents the Azure and header options${missing:+ (missing:$missing)}" [ -z "$missing" ]

# ---- 6. no sig anywhere -----------------------------------------------------
leaks=0
while read -r s; do
  [ -n "$s" ] || continue
  if grep -rqF -- "$s" "$WORK"/r*.json "$WORK"/res1.jsonl "$WORK/all.err"; then leaks=$((leaks + 1)); fi
done <"$WORK/sigs"
check "no SAS sig in reports, results or stderr" [ "$leaks" = 0 ]
check "redacted URLs are there (sig=REDACTED)" grep -q 'sig=REDACTED' "$WORK/r2.json"

echo "$PASSED passed, $FAILED failed in ${SECONDS}s"
[ "$FAILED" = 0 ]
