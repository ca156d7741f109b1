#!/usr/bin/env bash
# test_workflow_cli.sh - `bulkup upload` running the whole workflow (signed
# URLs from the API, PUTs, an image group, its job):
#
#   1. The embedded default: `bulkup upload --store DIR examples/images`
#      from an empty directory: exit 0, one "DATA_HASH  TITLE" line per
#      image, titles the images' base names in sorted order, every stored
#      object byte-identical to a source image (sha256 sets), the report
#      counts; the default store ./bulkup-store; --image-group; a file PATH.
#   2. Against `bulkup serve` (a separate process) with a key made by
#      `openssl genpkey -algorithm ed25519` (and one by ssh-keygen):
#      --api/--key-file/--key-id/--image-group: exit 0 and the hashes; a
#      wrong key id: exit 1, 401 reported; a key file readable by others:
#      exit 2 "too open"; a missing PATH: exit 2 naming it, no connection
#      made; plain mode (no --image-group): object keys printed, objects
#      stored byte-identical.
#   3. Failures: `bulkup serve --fault-rate 1.0`: exit 1 without
#      --allow-failures, exit 1 and "All image uploads failed. Image group
#      was not created." with it; --fault-rate 0.5 with --allow-failures:
#      exit 0, a group of exactly the uploaded files.
#   4. Usage: option conflicts exit 2; --help documents the new options.
#   5. SIGTERM: during an --api run (exit 143 at once) and during an
#      embedded run (exit 143, report written).
#
# Run by ctest with BULKUP_TEST_SOURCE_DIR and BULKUP_TEST_BINARY_DIR; prints
# "N passed, N failed" and exits non-zero on any failure. Every command is
# bounded by `timeout`.
set -uo pipefail

SRC=${BULKUP_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BULKUP_TEST_BINARY_DIR:-$SRC/build}
TOOL=$BIN/bulkup
IMAGES=$SRC/examples/images
LIMIT=${BULKUP_TEST_CMD_TIMEOUT:-120}

if [ ! -x "$TOOL" ]; then
  echo "test_workflow_cli: $TOOL not built" >&2
  exit 1
fi
for cmd in openssl python3 sha256sum timeout; do
  if ! command -v "$cmd" >/dev/null; then
    echo "test_workflow_cli: $cmd is needed" >&2
    exit 1
  fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulkup-workflow-cli.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -KILL "$p" 2>/dev/null
      wait "$p" 2>/dev/null
    fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

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
# expect DESCRIPTION COMMAND...: pass if the command succeeds
expect() {
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

# run_tool ARGS...: the tool, bounded, stdout in $WORK/out, stderr in
# $WORK/err, status in RC.
run_tool() {
  timeout "$LIMIT" "$TOOL" "$@" </dev/null >"$WORK/out" 2>"$WORK/err"
  RC=$?
  cat "$WORK/err" >>"$WORK/all-err"
}
# run_in DIR ARGS...: run_tool from DIR
run_in() {
  local dir=$1
  shift
  pushd "$dir" >/dev/null || return
  run_tool "$@"
  popd >/dev/null || return
}
rc_is() { [ "$RC" -eq "$1" ]; }
err_has() { grep -qF -- "$1" "$WORK/err"; }
out_lines() { [ "$(wc -l <"$WORK/out")" -eq "$1" ]; }

# The images, in the order the tool must take them (byte order).
mapfile -t NAMES < <(cd "$IMAGES" && ls -1 | LC_ALL=C sort)
N=${#NAMES[@]}
if [ "$N" -lt 2 ]; then
  echo "test_workflow_cli: no images in $IMAGES" >&2
  exit 1
fi
printf '%s\n' "${NAMES[@]}" >"$WORK/names"
(cd "$IMAGES" && sha256sum -- * | awk '{print $1}' | LC_ALL=C sort) >"$WORK/image-sums"

# The titles of "DATA_HASH  TITLE" lines, and whether every hash is a
# distinct non-empty word.
titles_are() { # FILE-OF-EXPECTED-TITLES
  sed -n 's/^[^ ][^ ]*  //p' "$WORK/out" | cmp -s - "$1"
}
hashes_distinct() {
  local n
  n=$(awk 'NF >= 2 && $1 != "" {print $1}' "$WORK/out" | sort -u | wc -l)
  [ "$n" -eq "$(wc -l <"$WORK/out")" ]
}
# The sha256 of every object under DIR/uploads, sorted.
store_sums() {
  if [ -d "$1/uploads" ]; then
    find "$1/uploads" -type f ! -name '.bks-tmp*' -exec sha256sum {} + |
      awk '{print $1}' | LC_ALL=C sort
  fi
}
store_count() { store_sums "$1" | wc -l; }
same_as_images() { store_sums "$1" | cmp -s - "$WORK/image-sums"; }
# report_says FILE SUCCEEDED FAILED
report_says() {
  python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
ok = s["succeeded"] == int(sys.argv[2]) and s["failed"] == int(sys.argv[3])
ok = ok and s["submitted"] == s["succeeded"] + s["failed"] + s["cancelled"]
sys.exit(0 if ok else 1)
EOF
}

# ---- 1. the embedded default ---------------------------------------------------
mkdir -p "$WORK/cwd1"
run_in "$WORK/cwd1" upload --store "$WORK/store" \
  --report "$WORK/r1.json" "$IMAGES"
expect "embedded: exit 0" rc_is 0
expect "embedded: $N data-hash lines" out_lines "$N"
expect "embedded: titles are the base names in sorted order" titles_are "$WORK/names"
expect "embedded: data hashes distinct" hashes_distinct
expect "embedded: $N objects under the store's uploads/" \
  test "$(store_count "$WORK/store")" -eq "$N"
expect "embedded: the objects are the images, byte for byte" same_as_images "$WORK/store"
expect "embedded: the report says $N succeeded" report_says "$WORK/r1.json" "$N" 0
expect "embedded: names the store's absolute path" err_has "store $WORK/store (objects under uploads/)"
expect "embedded: says the group was created" err_has "image group 'images' created: $N images"
expect "embedded: names the report" err_has "report: $WORK/r1.json"
expect "embedded: nothing written in the current directory" \
  test -z "$(ls -A "$WORK/cwd1")"

# the default store, ./bulkup-store; a file PATH; --image-group
mkdir -p "$WORK/cwd2"
run_in "$WORK/cwd2" upload --image-group "my pictures" \
  "$IMAGES/${NAMES[1]}" "$IMAGES/${NAMES[0]}"
expect "embedded, two files: exit 0" rc_is 0
printf '%s\n' "${NAMES[1]}" "${NAMES[0]}" >"$WORK/two"
expect "embedded, two files: titles in argument order" titles_are "$WORK/two"
expect "embedded: default store ./bulkup-store holds 2 objects" \
  test "$(store_count "$WORK/cwd2/bulkup-store")" -eq 2
expect "embedded: --image-group names the group" err_has "image group 'my pictures' created: 2 images"

# -q: only the result on stdout, nothing on stderr
run_in "$WORK/cwd2" upload -q "$IMAGES"
expect "embedded -q: exit 0, $N lines, quiet" \
  bash -c "[ $RC -eq 0 ] && [ \$(wc -l <'$WORK/out') -eq $N ] && [ ! -s '$WORK/err' ]"

# a missing PATH: exit 2, named, no store made
mkdir -p "$WORK/cwd3"
run_in "$WORK/cwd3" upload "$IMAGES" "$WORK/no-such-file.png"
expect "embedded, missing PATH: exit 2" rc_is 2
expect "embedded, missing PATH: named" err_has "$WORK/no-such-file.png"
expect "embedded, missing PATH: no server started, no store" \
  test ! -e "$WORK/cwd3/bulkup-store"

# ---- 2. against `bulkup serve` ---------------------------------------------------
openssl genpkey -algorithm ed25519 -out "$WORK/key.pem" 2>/dev/null
chmod 600 "$WORK/key.pem"
openssl pkey -in "$WORK/key.pem" -pubout -outform DER 2>/dev/null |
  tail -c 32 >"$WORK/pub.raw"
python3 - "$WORK/pub.raw" >"$WORK/authorized_keys" <<'EOF'
import base64, struct, sys
key = open(sys.argv[1], "rb").read()
assert len(key) == 32, len(key)
blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + key
print("ssh-ed25519", base64.b64encode(blob).decode(), "test-key")
EOF
HAVE_SSH=0
if command -v ssh-keygen >/dev/null; then
  ssh-keygen -q -t ed25519 -N '' -C ssh-key -f "$WORK/sshkey" </dev/null &&
    cat "$WORK/sshkey.pub" >>"$WORK/authorized_keys" && HAVE_SSH=1
fi

# start_serve NAME ARGS...: `bulkup serve` in the background on
# $WORK/NAME; sets URL. Stopped by pid in the trap.
start_serve() {
  local name=$1
  shift
  "$TOOL" serve --root "$WORK/$name" --listen 127.0.0.1:0 \
    --authorized-keys "$WORK/authorized_keys" --job-delay 0.1 "$@" \
    </dev/null >"$WORK/$name.out" 2>"$WORK/$name.err" &
  local pid=$!
  PIDS+=("$pid")
  URL=
  for _ in $(seq 100); do
    if grep -q '^listening on ' "$WORK/$name.out"; then
      URL=$(sed -n 's/^listening on //p' "$WORK/$name.out" | head -1)
      break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$URL" ]; then
    echo "test_workflow_cli: bulkup serve did not start:" >&2
    cat "$WORK/$name.err" >&2
    exit 1
  fi
}

start_serve srv
SRV=$URL
API=(--api "$SRV" --key-file "$WORK/key.pem" --key-id test-key)

run_tool upload "${API[@]}" --image-group G --report "$WORK/r2.json" "$IMAGES"
expect "--api: exit 0" rc_is 0
expect "--api: $N data-hash lines" out_lines "$N"
expect "--api: titles in sorted order" titles_are "$WORK/names"
expect "--api: data hashes distinct" hashes_distinct
expect "--api: the server stored the images, byte for byte" same_as_images "$WORK/srv"
expect "--api: the report says $N succeeded" report_says "$WORK/r2.json" "$N" 0
expect "--api: says the group was created" err_has "image group 'G' created: $N images"
before=$(store_count "$WORK/srv")

if [ "$HAVE_SSH" = 1 ]; then
  chmod 600 "$WORK/sshkey"
  run_tool upload --api "$SRV" --key-file "$WORK/sshkey" --key-id ssh-key \
    --image-group S --create-video --cluster-by-resolution "$IMAGES"
  expect "--api with an OpenSSH key (ssh-keygen): exit 0, $N lines" \
    bash -c "[ $RC -eq 0 ] && [ \$(wc -l <'$WORK/out') -eq $N ]"
  before=$(store_count "$WORK/srv")
fi

run_tool upload --api "$SRV" --key-file "$WORK/key.pem" --key-id wrong-key \
  --image-group G "$IMAGES"
expect "wrong key id: exit 1" rc_is 1
expect "wrong key id: 401 reported" err_has "401"
expect "wrong key id: nothing on stdout" test ! -s "$WORK/out"
expect "wrong key id: nothing stored" test "$(store_count "$WORK/srv")" -eq "$before"

chmod 644 "$WORK/key.pem"
run_tool upload "${API[@]}" --image-group G "$IMAGES"
expect "key file mode 644: exit 2" rc_is 2
expect "key file mode 644: 'too open'" err_has "too open"
chmod 600 "$WORK/key.pem"

run_tool upload --api "$SRV" --key-file "$WORK/no-key.pem" --key-id test-key \
  --image-group G "$IMAGES"
expect "missing key file: exit 2" rc_is 2

# A missing PATH: exit 2 naming it, before any traffic. The API is a
# listener that records every connection it gets.
python3 - "$WORK/listener.port" "$WORK/listener.log" <<'EOF' &
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.settimeout(0.2)
end = time.time() + 60
while time.time() < end:
    try:
        c, _ = s.accept()
        open(sys.argv[2], "a").write("connection\n")
        c.close()
    except socket.timeout:
        pass
EOF
PIDS+=($!)
for _ in $(seq 50); do
  [ -s "$WORK/listener.port" ] && break
  sleep 0.1
done
LPORT=$(cat "$WORK/listener.port" 2>/dev/null)
run_tool upload --api "http://127.0.0.1:$LPORT" --key-file "$WORK/key.pem" \
  --key-id test-key --image-group G "$IMAGES" "$WORK/missing.png"
expect "missing PATH: exit 2" rc_is 2
expect "missing PATH: named" err_has "$WORK/missing.png"
sleep 0.3
expect "missing PATH: no connection was made" test ! -s "$WORK/listener.log"
run_tool upload "${API[@]}" --image-group G "$WORK/missing.png"
expect "missing PATH against the server: exit 2, nothing stored" \
  bash -c "[ $RC -eq 2 ] && [ \$(find '$WORK/srv/uploads' -type f | wc -l) -eq $before ]"

# plain mode: object keys, no group
run_tool upload "${API[@]}" "$IMAGES/${NAMES[0]}" "$IMAGES/${NAMES[2]}"
expect "plain mode: exit 0, 2 lines" bash -c "[ $RC -eq 0 ] && [ \$(wc -l <'$WORK/out') -eq 2 ]"
plain_ok() {
  local key path
  while read -r key path; do
    [ -f "$WORK/srv/$key" ] || return 1
    [ "$(sha256sum <"$WORK/srv/$key")" = "$(sha256sum <"$path")" ] || return 1
  done <"$WORK/out"
  [ "$(awk '{print $2}' "$WORK/out" | tr '\n' ' ')" = \
    "$IMAGES/${NAMES[0]} $IMAGES/${NAMES[2]} " ]
}
expect "plain mode: 'OBJECT_KEY  PATH' lines, objects stored byte for byte" plain_ok
expect "plain mode: no group" bash -c "! grep -q 'image group' '$WORK/err'"

# resumable: a file above --resumable-threshold goes as a session and
# chunks (the signed URL authorizes the session start), stored byte for
# byte; through a server that resets a quarter of its storage requests
# mid-body, it still arrives whole.
python3 -c "import os,sys; sys.stdout.buffer.write(os.urandom(3*1024*1024+5))" >"$WORK/big.png"
resumable_ok() { # SRVDIR RESULTS: the object is the file; the record says resumable
  local key
  key=$(awk '{print $1}' "$WORK/out")
  [ -n "$key" ] && [ -f "$1/$key" ] &&
    [ "$(sha256sum <"$1/$key")" = "$(sha256sum <"$WORK/big.png")" ] &&
    grep -q '"status": "succeeded".*"resumable": true' "$2"
}
requests_of() { sed -n 's/.*"requests": \([0-9]*\).*/\1/p' "$1"; }
run_tool upload "${API[@]}" --resumable-threshold 1M --chunk-size 256K \
  --results "$WORK/res1.jsonl" "$WORK/big.png"
expect "resumable: exit 0" rc_is 0
expect "resumable: stored byte for byte, the record says resumable" \
  resumable_ok "$WORK/srv" "$WORK/res1.jsonl"
expect "resumable: 1 session start + 13 chunks" test "$(requests_of "$WORK/res1.jsonl")" = 14
# --fault-seed 3: of the first 13 storage PUTs the 2nd, 8th and 13th are
# reset (the server's xorshift; a query draws too), so at least one is.
start_serve resets --fault-reset-rate 0.25 --fault-seed 3
run_tool upload --api "$URL" --key-file "$WORK/key.pem" --key-id test-key \
  --resumable-threshold 1M --chunk-size 256K --max-retries 10 \
  --backoff-factor 0.01 --results "$WORK/res2.jsonl" "$WORK/big.png"
expect "resumable through resets: exit 0" rc_is 0
expect "resumable through resets: stored byte for byte" \
  resumable_ok "$WORK/resets" "$WORK/res2.jsonl"
expect "resumable through resets: more requests than without" \
  test "$(requests_of "$WORK/res2.jsonl")" -gt 14
expect "resumable through resets: the record counts retries" \
  test "$(sed -n 's/.*"attempts": \([0-9]*\).*/\1/p' "$WORK/res2.jsonl")" -gt 1

# ---- 3. failures ------------------------------------------------------------------
start_serve faulty --fault-rate 1.0 --fault-status 500
FAULTY=$URL
FAPI=(--api "$FAULTY" --key-file "$WORK/key.pem" --key-id test-key --max-retries 0)
run_tool upload "${FAPI[@]}" --image-group G --report "$WORK/r3.json" "$IMAGES"
expect "every upload fails: exit 1" rc_is 1
expect "every upload fails: group not created" err_has "image group was not created"
expect "every upload fails: nothing on stdout" test ! -s "$WORK/out"
expect "every upload fails: the report says $N failed" report_says "$WORK/r3.json" 0 "$N"
run_tool upload "${FAPI[@]}" --image-group G --allow-failures "$IMAGES"
expect "--allow-failures, every upload fails: exit 1" rc_is 1
expect "--allow-failures, every upload fails: the exact message" \
  err_has "bulkup: All image uploads failed. Image group was not created."

# half of them fail: the group holds exactly the uploaded ones
mkdir -p "$WORK/many"
for i in $(seq 1 5); do
  for f in "${NAMES[@]}"; do cp "$IMAGES/$f" "$WORK/many/$i-$f"; done
done
M=$((5 * N))
# --fault-seed 1: 23 of the server's first 40 draws fall under 0.5, and
# with --max-retries 0 each file makes one storage PUT, so exactly 17 of
# the 40 files are stored, whatever order the PUTs arrive in (40: the 8
# example images, 5 times).
[ "$M" -eq 40 ] || { echo "test_workflow_cli: expected 8 example images, found $N" >&2; exit 1; }
start_serve half --fault-rate 0.5 --fault-status 500 --fault-seed 1
run_tool upload --api "$URL" --key-file "$WORK/key.pem" --key-id test-key \
  --max-retries 0 --image-group H --allow-failures --report "$WORK/r4.json" "$WORK/many"
ok_lines=$(wc -l <"$WORK/out")
half_ok() {
  python3 - "$WORK/r4.json" "$ok_lines" "$M" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
lines, m = int(sys.argv[2]), int(sys.argv[3])
sys.exit(0 if s["succeeded"] == lines and s["failed"] == m - lines else 1)
EOF
}
expect "--allow-failures, some fail: exit 0" rc_is 0
expect "--allow-failures, some fail: the seeded 17 of $M stored" test "$ok_lines" -eq 17
expect "--allow-failures, some fail: one line per uploaded file" half_ok
expect "--allow-failures, some fail: the group has them" err_has "image group 'H' created: $ok_lines images"

# ---- 4. usage ---------------------------------------------------------------------
usage_case() { # DESCRIPTION ARGS...
  local what=$1
  shift
  run_in "$WORK/cwd3" upload "$@"
  expect "usage: $what: exit 2" \
    bash -c "[ $RC -eq 2 ] && grep -q \"Try 'bulkup upload --help'\" '$WORK/err'"
}
usage_case "no PATH"
usage_case "--api without a PATH" "${API[@]}"
usage_case "--api without --key-file" --api "$SRV" --key-id k "$IMAGES"
usage_case "--api without --key-id" --api "$SRV" --key-file "$WORK/key.pem" "$IMAGES"
usage_case "--api not http" --api ftp://x --key-file "$WORK/key.pem" --key-id k "$IMAGES"
usage_case "--api with --to" "${API[@]}" --to http://127.0.0.1:1/x "$IMAGES"
usage_case "--key-file without --api" --key-file "$WORK/key.pem" "$IMAGES"
usage_case "--store with --api" "${API[@]}" --store "$WORK/s" "$IMAGES"
usage_case "--image-group with --to" --image-group G --to http://127.0.0.1:1/x "$IMAGES"
usage_case "--create-video without --image-group" "${API[@]}" --create-video "$IMAGES"
usage_case "--journal in the workflow" --journal "$WORK/j" "$IMAGES"
usage_case "--content-type in the workflow" --content-type image/png "$IMAGES"
usage_case "bad --data-type" --data-type nope "$IMAGES"
expect "usage errors made no store" test ! -e "$WORK/cwd3/bulkup-store"

run_tool upload --help
missing=""
for o in --api --key-file --key-id --image-group --store --create-video \
  --cluster-by-resolution --allow-failures --data-type "DATA_HASH  TITLE" \
  "OBJECT_KEY  PATH" "embedded"; do
  grep -qF -- "$o" "$WORK/out" || missing="$missing $o"
done
expect "upload --help documents the workflow${missing:+ (missing:$missing)}" \
  test -z "$missing"

# ---- 5. signals ---------------------------------------------------------------------
# --api: a signal cancels the workflow (bulkup_api_cancel): the request in
# flight is aborted at once, and the report is still written.
start_serve slow --latency 2
timeout "$LIMIT" "$TOOL" upload --api "$URL" --key-file "$WORK/key.pem" \
  --key-id test-key --image-group G --report "$WORK/r-api.json" "$IMAGES" \
  </dev/null >"$WORK/out" 2>"$WORK/err" &
pid=$!
# Signal once the workflow has begun (its first line is out), however
# loaded the machine is; the presign request is then in flight.
for _ in $(seq 1 200); do
  grep -q "^bulkup: uploading" "$WORK/err" 2>/dev/null && break
  sleep 0.05
done
sleep 0.3
t0=$(date +%s)
kill -TERM "$pid"
wait "$pid"
RC=$?
t1=$(date +%s)
cat "$WORK/err" >>"$WORK/all-err"
expect "SIGTERM during an --api run: exit 143" rc_is 143
expect "SIGTERM during an --api run: ends within 2 s" test $((t1 - t0)) -le 2
expect "SIGTERM during an --api run: says it cancels" err_has "terminated: cancelling the run"
expect "SIGTERM during an --api run: report written and consistent" \
  python3 -c "
import json, sys
s = json.load(open('$WORK/r-api.json'))['summary']
sys.exit(0 if s['submitted'] == s['succeeded'] + s['failed'] + s['cancelled'] and s['succeeded'] < 8 else 1)"

# embedded: the same cancel; the run ends with its report.
mkdir -p "$WORK/lots"
python3 - "$WORK/lots" <<'EOF'
import os, sys
for i in range(3000):
    with open(os.path.join(sys.argv[1], "f%05d.png" % i), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
EOF
timeout "$LIMIT" "$TOOL" upload --store "$WORK/store5" --workers 2 \
  --report "$WORK/r5.json" "$WORK/lots" </dev/null >"$WORK/out" 2>"$WORK/err" &
pid=$!
# Signal once uploads are under way (not while the input is still being
# listed), however loaded the machine is.
for _ in $(seq 1 200); do
  [ "$(find "$WORK/store5/uploads" -type f 2>/dev/null | head -50 | wc -l)" -ge 50 ] && break
  sleep 0.05
done
kill -TERM "$pid"
wait "$pid"
RC=$?
if [ "$RC" -eq 0 ]; then
  pass "SIGTERM during an embedded run: (the run finished before the signal)"
else
  expect "SIGTERM during an embedded run: exit 143" rc_is 143
  expect "SIGTERM during an embedded run: says it cancels" err_has "terminated: cancelling the run"
  expect "SIGTERM during an embedded run: no group" err_has "no image group was created"
  expect "SIGTERM during an embedded run: report written, not all succeeded" \
    python3 -c "
import json, sys
s = json.load(open('$WORK/r5.json'))['summary']
sys.exit(0 if s['succeeded'] < 3000 and s['submitted'] == s['succeeded'] + s['failed'] + s['cancelled'] else 1)"
  # An upload aborted by the cancel may have reached the store whole just
  # before (the server writes atomically): stored objects number between
  # the succeeded and the succeeded plus cancelled, and each is a whole
  # copy of a source file.
  (cd "$WORK/lots" && sha256sum -- * | awk '{print $1}' | sort) >"$WORK/lots-sums"
  expect "SIGTERM during an embedded run: every stored object is a whole source file" \
    bash -c "store_sums() { find '$WORK/store5/uploads' -type f -exec sha256sum {} + | awk '{print \$1}' | sort; }; [ -z \"\$(store_sums | comm -23 - '$WORK/lots-sums')\" ]"
  expect "SIGTERM during an embedded run: stored objects match the report" \
    python3 -c "
import json, os, sys
s = json.load(open('$WORK/r5.json'))['summary']
n = len([f for f in os.listdir('$WORK/store5/uploads') if not f.startswith('.bks-tmp')])
sys.exit(0 if s['succeeded'] <= n <= s['succeeded'] + s['cancelled'] else 1)"
fi

cat "$WORK/err" >>"$WORK/all-err"

# Sanitizer builds: no report from the tool or the servers.
expect "no sanitizer report in any stderr" \
  bash -c "! cat '$WORK/all-err' '$WORK'/*.err 2>/dev/null | grep -E 'Sanitizer|runtime error'"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
