#!/usr/bin/env bash
# test_multipart.sh - parallel multipart uploads against real servers:
# Azurite 3.35.0 (Azure blocks, SAS verified by the emulator) and s3rver
# 3.7.1 (S3 multipart), each behind tests/tools/mp_proxy.py, which counts
# the requests and injects one fault at a time. For each protocol:
#   - 2 files of 8 parts sent at once: the proxy holds the first part until
#     a second one is in flight (proof of parallel parts), >1 connection;
#   - the same with a thread per transfer and a Content-MD5 per part;
#   - every request (create, parts, complete) passed to the signing hook
#     with its own method, body length and payload SHA-256;
#   - a 503 on one part: that part is retried alone (attempts 2, the server
#     got each part once);
#   - a part cut mid-body: the same;
#   - a part refused (403): the item fails once, not retried, nothing
#     completed, and S3's upload is aborted (one DELETE);
#   - a run cancelled while parts hang: the item ends cancelled, nothing
#     completed or aborted;
#   - a run (one transfer) killed (SIGKILL) after 3 parts were answered
#     and journalled,
#     then rerun with the journal: the rerun sends exactly the 5 parts not
#     recorded, and completes;
# and every object read back from the server is byte-identical to its
# file. The bulkup CLI's --multipart-threshold/--part-size send a manifest
# of Azure SAS URLs in blocks, and files to s3:// (SigV4-signed) in parts. Without BULKUP_TEST_NO_HUGE, 2 x 200 MiB go
# to Azurite and 2 x 64 MiB to s3rver in 8 MiB parts as well.
# Exits 77 when node or the pinned npm servers are missing.
set -uo pipefail

SRC=${BULKUP_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BULKUP_TEST_BINARY_DIR:-$SRC/build}
NPM=${BULKUP_NPM_DIR:-$SRC/build/npm}
AZURITE=$NPM/node_modules/.bin/azurite-blob
S3RVER=$NPM/node_modules/.bin/s3rver
UP=$BIN/tests/mp_upload
TOOL=$BIN/bulkup
PY=/usr/bin/python3
PROXY=$SRC/tests/tools/mp_proxy.py
SAS=$SRC/tests/support/azure_sas.py

for t in "$AZURITE" "$S3RVER"; do
  [ -x "$t" ] || { echo "skip: $t missing"; exit 77; }
done
command -v node >/dev/null || { echo "skip: node missing"; exit 77; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulkup-mp.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  [ -n "${BK_KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $1"; }
check() { if eval "$2"; then pass "$1"; else fail "$1 ($2)"; fi; }

# Wait (10 s at most) for a line matching $2 in file $1; print its match.
wait_line() {
  local i
  for ((i = 0; i < 100; i++)); do
    if grep -q "$2" "$1" 2>/dev/null; then
      grep -o "$2" "$1" | head -1
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# ---- the servers -----------------------------------------------------------
"$AZURITE" --blobHost 127.0.0.1 --blobPort 0 --location "$WORK/azurite" \
  --skipApiVersionCheck --disableTelemetry --silent >"$WORK/azurite.log" 2>&1 &
PIDS+=($!)
"$S3RVER" -d "$WORK/s3rver" -a 127.0.0.1 -p 0 --configure-bucket bkt \
  --silent >"$WORK/s3rver.log" 2>&1 &
PIDS+=($!)
AZ_PORT=$(wait_line "$WORK/azurite.log" 'listens on http://127.0.0.1:[0-9]*' | sed 's/.*://') ||
  { echo "Azurite did not start"; cat "$WORK/azurite.log"; exit 1; }
S3_PORT=$(wait_line "$WORK/s3rver.log" 'listening on 127.0.0.1:[0-9]*' | sed 's/.*://')
if [ -z "$S3_PORT" ]; then
  # s3rver --silent prints nothing: ask it again, without --silent.
  kill "${PIDS[1]}"; wait "${PIDS[1]}" 2>/dev/null
  "$S3RVER" -d "$WORK/s3rver" -a 127.0.0.1 -p 0 --configure-bucket bkt \
    >"$WORK/s3rver.log" 2>&1 &
  PIDS[1]=$!
  S3_PORT=$(wait_line "$WORK/s3rver.log" 'listening on 127.0.0.1:[0-9]*' | sed 's/.*://') ||
    { echo "s3rver did not start"; cat "$WORK/s3rver.log"; exit 1; }
fi
ACCOUNT_SAS=$($PY "$SAS" --account)
CONT_SAS=$($PY "$SAS" mpcont --perm racwd)
code=$(curl -s -o "$WORK/mk.out" -w '%{http_code}' -X PUT -H 'x-ms-version: 2023-11-03' \
  -H 'Content-Length: 0' "http://127.0.0.1:$AZ_PORT/devstoreaccount1/mpcont?restype=container&$ACCOUNT_SAS")
[ "$code" = 201 ] || { echo "cannot create the container: $code"; cat "$WORK/mk.out"; exit 1; }

# ---- helpers ---------------------------------------------------------------
PROXY_PID=""
# start_proxy UPSTREAM_PORT [proxy options]: sets PPORT, PSTATS.
start_proxy() {
  local up=$1
  shift
  PSTATS=$WORK/proxy.$RANDOM.stats
  $PY "$PROXY" "$up" "$PSTATS" "$@" >"$PSTATS.port" 2>"$PSTATS.err" &
  PROXY_PID=$!
  PIDS+=($PROXY_PID)
  PPORT=$(wait_line "$PSTATS.port" '^[0-9][0-9]*') || { echo "proxy did not start"; exit 1; }
}
stop_proxy() {
  kill "$PROXY_PID" 2>/dev/null
  wait "$PROXY_PID" 2>/dev/null
  PROXY_PID=""
}
stat_of() { sed -n "s/^$1=//p" "$PSTATS"; }

# url PROTO NAME PORT: the object's URL through port PORT.
url() {
  if [ "$1" = azure ]; then
    echo "http://127.0.0.1:$3/devstoreaccount1/mpcont/$2?$CONT_SAS"
  else
    echo "http://127.0.0.1:$3/bkt/$2"
  fi
}
# same PROTO NAME FILE: the stored object is the file, byte for byte.
same() {
  local port=$AZ_PORT
  [ "$1" = s3 ] && port=$S3_PORT
  curl -sf -H 'x-ms-version: 2023-11-03' "$(url "$1" "$2" "$port")" -o "$WORK/back" &&
    cmp -s "$WORK/back" "$3"
}

PART=$((512 * 1024))
head -c $((8 * PART)) /dev/urandom >"$WORK/a.bin"                 # 8 parts
head -c $((7 * PART + 1000)) /dev/urandom >"$WORK/b.bin"          # 8 parts, the last short
MP=(--threshold $PART --part-size $PART --workers 8 --max-retries 3)

for proto in azure s3; do
  upstream=$AZ_PORT
  [ $proto = s3 ] && upstream=$S3_PORT
  if [ $proto = azure ]; then part2='blockid=MDAwMDAx'; part5='blockid=MDAwMDA0'; else part2='partNumber=2&'; part5='partNumber=5&'; fi

  # -- two files, parts side by side
  start_proxy $upstream --barrier 2
  "$UP" --storage $proto "${MP[@]}" "$WORK/a.bin" "$(url $proto par-a $PPORT)" \
    "$WORK/b.bin" "$(url $proto par-b $PPORT)" >"$WORK/out" 2>&1
  rc=$?
  check "$proto parallel: both succeed" "[ $rc = 0 ] && grep -q 'SUCCEEDED=2 FAILED=0' '$WORK/out'"
  check "$proto parallel: 16 part requests, each once" "[ $(stat_of PARTS_FORWARDED) = 16 ] && [ $(stat_of PARTS_RECEIVED) = 16 ]"
  check "$proto parallel: 2+ parts in flight at once" "[ $(stat_of MAX_PARTS_IN_FLIGHT) -ge 2 ]"
  check "$proto parallel: more than one connection at once" "[ $(stat_of MAX_CONNECTIONS) -gt 1 ]"
  check "$proto parallel: attempts 1 each" "[ \$(grep -c 'succeeded attempts=1 ' '$WORK/out') = 2 ]"
  check "$proto parallel: a.bin byte-identical" "same $proto par-a '$WORK/a.bin'"
  check "$proto parallel: b.bin byte-identical" "same $proto par-b '$WORK/b.bin'"
  stop_proxy

  # -- the same with a thread per transfer (parts shared across threads),
  # and a Content-MD5 on each part (Azurite checks it)
  start_proxy $upstream
  "$UP" --storage $proto "${MP[@]}" --threads 0 --md5 1 "$WORK/a.bin" "$(url $proto thr-a $PPORT)" \
    "$WORK/b.bin" "$(url $proto thr-b $PPORT)" >"$WORK/out" 2>&1
  rc=$?
  check "$proto threads: both succeed" "[ $rc = 0 ] && grep -q 'SUCCEEDED=2 FAILED=0' '$WORK/out'"
  check "$proto threads: 16 part requests" "[ $(stat_of PARTS_FORWARDED) = 16 ] && [ $(stat_of PARTS_RECEIVED) = 16 ]"
  check "$proto threads: a.bin byte-identical" "same $proto thr-a '$WORK/a.bin'"
  check "$proto threads: b.bin byte-identical" "same $proto thr-b '$WORK/b.bin'"
  stop_proxy

  # -- every request goes through options.sign_request, with its own
  # method, body and payload hash (checked by the proxy)
  start_proxy $upstream --check-signed
  "$UP" --storage $proto "${MP[@]}" --sign-check 1 "$WORK/b.bin" "$(url $proto signed $PPORT)" >"$WORK/out" 2>&1
  rc=$?
  n=$([ $proto = s3 ] && echo 10 || echo 9) # create, 8 parts, complete / 8 blocks, block list
  check "$proto signed: succeeds" "[ $rc = 0 ]"
  check "$proto signed: all $n requests signed as sent" "[ $(stat_of SIGNED_OK) = $n ] && [ $(stat_of SIGNED_BAD) = 0 ] && [ $(stat_of REQUESTS) = $n ]"
  check "$proto signed: byte-identical" "same $proto signed '$WORK/b.bin'"
  stop_proxy

  # -- a 503 on part 2
  start_proxy $upstream --fail503 "$part2"
  "$UP" --storage $proto "${MP[@]}" "$WORK/a.bin" "$(url $proto f503 $PPORT)" >"$WORK/out" 2>&1
  rc=$?
  check "$proto 503: succeeds" "[ $rc = 0 ]"
  check "$proto 503: one 503 answered" "[ $(stat_of FAILED503) = 1 ]"
  check "$proto 503: 9 part requests, 8 forwarded" "[ $(stat_of PARTS_RECEIVED) = 9 ] && [ $(stat_of PARTS_FORWARDED) = 8 ]"
  check "$proto 503: attempts 2 (the one part retried)" "grep -q 'succeeded attempts=2 ' '$WORK/out'"
  check "$proto 503: byte-identical" "same $proto f503 '$WORK/a.bin'"
  stop_proxy

  # -- part 5 cut mid-body
  start_proxy $upstream --cut "$part5"
  "$UP" --storage $proto "${MP[@]}" "$WORK/b.bin" "$(url $proto cut $PPORT)" >"$WORK/out" 2>&1
  rc=$?
  check "$proto cut: succeeds" "[ $rc = 0 ]"
  check "$proto cut: one part cut" "[ $(stat_of CUT) = 1 ]"
  check "$proto cut: 9 part requests, 8 forwarded" "[ $(stat_of PARTS_RECEIVED) = 9 ] && [ $(stat_of PARTS_FORWARDED) = 8 ]"
  check "$proto cut: attempts 2" "grep -q 'succeeded attempts=2 ' '$WORK/out'"
  check "$proto cut: byte-identical" "same $proto cut '$WORK/b.bin'"
  stop_proxy

  # -- part 2 refused for good (403): the item fails once, S3 aborts
  start_proxy $upstream --refuse "$part2"
  "$UP" --storage $proto "${MP[@]}" "$WORK/a.bin" "$(url $proto refused $PPORT)" >"$WORK/out" 2>&1
  rc=$?
  check "$proto refused: the item fails, once" "[ $rc = 1 ] && grep -q 'SUCCEEDED=0 FAILED=1' '$WORK/out' && [ \$(grep -c '^item ' '$WORK/out') = 1 ]"
  check "$proto refused: the message names the part" "grep -q 'failed .*message=part 2 of 8: HTTP 403 after 1 attempt' '$WORK/out'"
  check "$proto refused: 403 not retried" "[ $(stat_of REFUSED) = 1 ]"
  check "$proto refused: nothing completed" "[ $(stat_of COMPLETES) = 0 ]"
  if [ $proto = s3 ]; then
    # s3rver 3.7.1 has no AbortMultipartUpload: it answers 405, which the
    # message reports (AWS answers 204: "the multipart upload was aborted").
    check "s3 refused: AbortMultipartUpload sent once" "[ $(stat_of DELETES) = 1 ] && grep -q 'AbortMultipartUpload failed too: HTTP 405 after 1 attempt' '$WORK/out'"
  else
    check "azure refused: nothing deleted" "[ $(stat_of DELETES) = 0 ]"
  fi
  check "$proto refused: no object stored" "! same $proto refused '$WORK/a.bin'"
  stop_proxy

  # -- cancelled while parts hang (after 3 were answered): the item ends
  # cancelled, promptly, nothing completed or aborted
  start_proxy $upstream --hold-after 3
  timeout 30 "$UP" --storage $proto "${MP[@]}" --workers 1 --cancel-after-ms 1500 "$WORK/a.bin" \
    "$(url $proto cancelled $PPORT)" >"$WORK/out" 2>&1
  rc=$?
  check "$proto cancel: the item ends cancelled" "[ $rc = 1 ] && grep -q 'SUCCEEDED=0 FAILED=0 CANCELLED=1' '$WORK/out' && grep -q '^item 0 cancelled ' '$WORK/out'"
  check "$proto cancel: nothing completed or aborted" "[ $(stat_of COMPLETES) = 0 ] && [ $(stat_of DELETES) = 0 ]"
  stop_proxy

  # -- killed after 3 parts, rerun with the journal
  J=$WORK/$proto.journal
  start_proxy $upstream --hold-after 3
  "$UP" --storage $proto "${MP[@]}" --workers 1 --journal "$J" "$WORK/a.bin" \
    "$(url $proto killed $PPORT)" >"$WORK/out" 2>&1 &
  UPID=$!
  PIDS+=($UPID)
  # Until the journal's latest multipart record names 3 parts.
  ok=0
  for ((i = 0; i < 200; i++)); do
    n=$(grep -a '^S1 ' "$J" 2>/dev/null | tail -1 | $PY -c '
import sys, urllib.parse
line = sys.stdin.read().split(" ")
rec = urllib.parse.unquote(line[5]) if len(line) > 5 else ""
print(len(rec.split()) - 4 if rec.startswith("mp1 ") else 0)')
    [ "${n:-0}" -ge 3 ] && { ok=1; break; }
    sleep 0.05
  done
  kill -9 $UPID 2>/dev/null
  wait $UPID 2>/dev/null
  check "$proto kill: 3 parts journalled before the kill" "[ $ok = 1 ] && [ $n = 3 ]"
  stop_proxy
  start_proxy $upstream
  "$UP" --storage $proto "${MP[@]}" --journal "$J" "$WORK/a.bin" "$(url $proto killed $PPORT)" >"$WORK/out" 2>&1
  rc=$?
  check "$proto rerun: succeeds" "[ $rc = 0 ] && grep -q 'SUCCEEDED=1 FAILED=0' '$WORK/out'"
  check "$proto rerun: sent exactly the 5 parts not journalled" "[ $(stat_of PARTS_RECEIVED) = 5 ]"
  if [ $proto = s3 ]; then
    check "s3 rerun: no new CreateMultipartUpload" "[ $(stat_of REQUESTS) = 6 ]"
  else
    check "azure rerun: 5 blocks and the block list" "[ $(stat_of REQUESTS) = 6 ]"
  fi
  check "$proto rerun: byte-identical" "same $proto killed '$WORK/a.bin'"
  "$UP" --storage $proto "${MP[@]}" --journal "$J" "$WORK/a.bin" "$(url $proto killed $PPORT)" >"$WORK/out" 2>&1
  check "$proto second rerun: nothing sent" "[ $(stat_of REQUESTS) = 6 ]"
  stop_proxy
done

# ---- the CLI: a manifest of Azure SAS URLs, in blocks ------------------------
start_proxy $AZ_PORT
printf 'path,url\n%s,%s\n%s,%s\n' "$WORK/a.bin" "$(url azure cli-a $PPORT)" \
  "$WORK/b.bin" "$(url azure cli-b $PPORT)" >"$WORK/m.csv"
"$TOOL" upload --manifest "$WORK/m.csv" --multipart-threshold 512K --part-size 512K \
  --workers 8 >"$WORK/cli.out" 2>&1
rc=$?
check "cli: succeeds" "[ $rc = 0 ]"
check "cli: 16 blocks" "[ $(stat_of PARTS_RECEIVED) = 16 ]"
check "cli: a.bin byte-identical" "same azure cli-a '$WORK/a.bin'"
check "cli: b.bin byte-identical" "same azure cli-b '$WORK/b.bin'"
stop_proxy
"$TOOL" upload --manifest "$WORK/m.csv" --part-size 1 >"$WORK/cli.out" 2>&1
check "cli: --part-size 1 is refused (usage, exit 2)" "[ $? = 2 ]"

# ---- the CLI: s3:// with SigV4 (s3rver checks the access key), in parts ----
start_proxy $S3_PORT
AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_SHARED_CREDENTIALS_FILE=/dev/null \
  AWS_CONFIG_FILE=/dev/null "$TOOL" upload --to s3://bkt/cli "$WORK/a.bin" "$WORK/b.bin" \
  --endpoint-url "http://127.0.0.1:$PPORT" --region us-east-1 --addressing path \
  --multipart-threshold 512K --part-size 512K --workers 8 >"$WORK/cli.out" 2>&1
rc=$?
check "cli s3://: succeeds" "[ $rc = 0 ]"
check "cli s3://: 16 parts, 2 creates, 2 completes" "[ $(stat_of PARTS_RECEIVED) = 16 ] && [ $(stat_of COMPLETES) = 2 ] && [ $(stat_of REQUESTS) = 20 ]"
check "cli s3://: a.bin byte-identical" "same s3 cli/a.bin '$WORK/a.bin'"
check "cli s3://: b.bin byte-identical" "same s3 cli/b.bin '$WORK/b.bin'"
stop_proxy

# ---- large: 8 MiB parts straight to the servers: 2 x 200 MiB to Azurite
# (issue 17's case), 2 x 64 MiB to s3rver ---------------------------------------
if [ -z "${BULKUP_TEST_NO_HUGE:-}" ]; then
  for proto in azure s3; do
    port=$AZ_PORT mib=200 requests=26 # 25 blocks, the block list
    [ $proto = s3 ] && port=$S3_PORT mib=64 requests=10 # create, 8 parts, complete
    head -c $((mib << 20)) /dev/urandom >"$WORK/h1.bin"
    head -c $((mib << 20)) /dev/urandom >"$WORK/h2.bin"
    "$UP" --storage $proto --threshold $((8 << 20)) --part-size $((8 << 20)) --workers 8 \
      "$WORK/h1.bin" "$(url $proto huge1 $port)" "$WORK/h2.bin" "$(url $proto huge2 $port)" >"$WORK/out" 2>&1
    rc=$?
    check "$proto huge: 2 x $mib MiB succeed, $requests requests each" "[ $rc = 0 ] && [ \$(grep -c 'succeeded attempts=1 requests=$requests ' '$WORK/out') = 2 ]"
    check "$proto huge: h1 byte-identical" "same $proto huge1 '$WORK/h1.bin'"
    check "$proto huge: h2 byte-identical" "same $proto huge2 '$WORK/h2.bin'"
    rm -f "$WORK/h1.bin" "$WORK/h2.bin" "$WORK/back"
  done
fi

echo "$PASSED passed, $FAILED failed"
[ $FAILED = 0 ]
