#!/usr/bin/env bash
# test_workflow_cli.sh - `bulkup upload` speaking the Encord API
# (ENCORD_WIRE.md) from the command line, against tests/support/
# mock_encord.py (a small stand-in for the API that checks the v2 signature
# of each presign and the v1 Authorization of each POST /public, and logs
# every request):
#
#   1. The four kinds: --image-group, --dicom-series, --video, --image:
#      exit 0, stdout exactly one "DATA_HASH  TITLE" line per data unit the
#      API reported (two for a group the API splits), objects stored
#      byte-identical, the get_dataset preamble first, no request refused,
#      the presign's uploadItemType, --folder and --no-create-video in the
#      job's payload, --files-per-job.
#   2. The key: $ENCORD_SSH_KEY_FILE, $ENCORD_SSH_KEY, an OpenSSH key from
#      ssh-keygen; --key-id the derived id passes, another is exit 2; a key
#      file readable by others: exit 2 "too open".
#   3. The API's refusal (AUTHENTICATION_ERROR): exit 1 with the code in
#      words, nothing uploaded.
#   4. Issue 13 item 14: a silent API with --max-retries 0 --read-timeout 1
#      gets exactly 1 request and the run ends (exit 1) bounded; with
#      --max-retries 2, exactly 3.
#   5. Usage errors exit 2; --help shows the real usage.
#   6. SIGTERM during a run: exit 143 at once, nothing on stdout.
# The embedded default (`bulkup upload PATH...`) and `bulkup serve` are
# tested in test_workflow_e2e.sh.
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
PY=/usr/bin/python3
for cmd in openssl $PY sha256sum timeout; do
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
printf '%s\n' "${NAMES[@]}" >"$WORK/names"

# ---- the mock API ---------------------------------------------------------------
MOCK=$SRC/tests/support/mock_encord.py
DATASET=6a8f3c2e-1d4b-4e59-9a7c-0b1e2f3a4d5c
# start_mock NAME MODE: a mock API; sets URL, MLOG (its request log), MSTORE
start_mock() {
  local name=$1 mode=$2
  MSTORE=$WORK/$name-store
  MLOG=$WORK/$name.log
  mkdir -p "$MSTORE"
  : >"$MLOG"
  rm -f "$WORK/$name.port"
  $PY "$MOCK" "$WORK/$name.port" "$MSTORE" "$MLOG" "$mode" 2>"$WORK/$name.err" &
  PIDS+=($!)
  for _ in $(seq 1 200); do
    [ -s "$WORK/$name.port" ] && break
    sleep 0.05
  done
  URL=http://127.0.0.1:$(cat "$WORK/$name.port")
}
# mlog EXPR: a Python expression over the log's records r (and the job
# POST payloads jobs), true or false
mlog() {
  $PY - "$MLOG" "$1" <<'EOF'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(x["body"]) if x["body"] else {} for x in r]
jobs = [q["values"]["payload"] for q in b
        if q.get("query_type") == "datasetdatalongpolling" and q.get("query_method") == "POST"]
puts = [x for x in r if x["path"].startswith("/storage/")]
ok = eval("(" + sys.argv[2] + "\n)")
if not ok:
    print("    mlog false:", sys.argv[2], file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
}
units_are() { # TITLE...: stdout's titles, in order, and distinct hashes
  local want
  want=$(printf '%s\n' "$@")
  [ "$(sed -n 's/^[^ ][^ ]*  //p' "$WORK/out")" = "$want" ] &&
    [ "$(awk '{print $1}' "$WORK/out" | sort -u | wc -l)" -eq "$#" ] &&
    [ "$(wc -l <"$WORK/out")" -eq "$#" ]
}
stored_same() { # DIR-OF-SOURCES: the mock's store holds exactly their bytes
  [ "$( (cd "$1" && sha256sum -- *) | awk '{print $1}' | LC_ALL=C sort)" = \
    "$( (cd "$MSTORE" && sha256sum -- *) | awk '{print $1}' | LC_ALL=C sort)" ]
}
fresh() { : >"$MLOG"; rm -f "$MSTORE"/*; }

openssl genpkey -algorithm ed25519 -out "$WORK/key.pem" 2>/dev/null
chmod 600 "$WORK/key.pem"
KEYID=$($PY -c "
from cryptography.hazmat.primitives import serialization as s
k = s.load_pem_private_key(open('$WORK/key.pem','rb').read(), None)
print(k.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw).hex())")
mkdir -p "$WORK/cwd" "$WORK/img" "$WORK/dcm" "$WORK/vid"
cp "$IMAGES"/* "$WORK/img/"
$PY - "$WORK" <<'EOF'
import os, sys
w = sys.argv[1]
for i in range(3):
    open(os.path.join(w, "dcm", "s%02d.dcm" % i), "wb").write(os.urandom(3000 + i))
    open(os.path.join(w, "vid", "clip%d.mp4" % i), "wb").write(os.urandom(5000 + i))
EOF

# ---- 1. the four kinds ------------------------------------------------------------
start_mock m normal
API=(--api "$URL" --key-file "$WORK/key.pem" --dataset "$DATASET")
run_in "$WORK/cwd" upload "${API[@]}" --image-group holiday "$WORK/img"
expect "image group: exit 0" rc_is 0
expect "image group: one line, the group" units_are holiday
expect "image group: objects byte-identical" stored_same "$WORK/img"
expect "image group: no request refused" mlog "all(not x['refused'] for x in r)"
expect "image group: get_dataset, presign, PUTs, job POST, poll" mlog "
b[0]['query_type'] == 'dataset' and r[1]['method'] == 'GET' and
r[1]['query'] == 'count=$N&uploadItemType=image' and len(puts) == $N and
len(jobs) == 1 and b[-1]['query_method'] == 'GET' and b[-1]['values']['payload']['timeout_seconds'] == 10"
expect "image group: the payload of the SDK (titled, createVideo and clusterByResolution true, no folder)" mlog "
set(jobs[0]) == {'dataItems', 'ignoreErrors'} and jobs[0]['ignoreErrors'] is False and
[k for k in jobs[0]['dataItems']] == ['videos', 'imageGroups', 'dicomSeries', 'images', 'imageGroupsFromItems', 'audio', 'nifti', 'text', 'pdf', 'skipDuplicateUrls', 'upsertMetadata'] and
list(jobs[0]['dataItems']['imageGroups'][0]) == ['images', 'title', 'clientMetadata', 'createVideo', 'externalFileType', 'clusterByResolution'] and
jobs[0]['dataItems']['imageGroups'][0]['createVideo'] is True and jobs[0]['dataItems']['imageGroups'][0]['clusterByResolution'] is True and
jobs[0]['dataItems']['imageGroups'][0]['title'] == 'holiday'"
expect "image group: titles the base names in sorted order, urls the object keys" mlog "
[i['title'] for i in jobs[0]['dataItems']['imageGroups'][0]['images']] == open('$WORK/names').read().split() and
sorted(i['url'] for i in jobs[0]['dataItems']['imageGroups'][0]['images']) == sorted('bkt/' + x['path'][9:] for x in puts)"
expect "image group: PUTs with image Content-Types, never a POST to storage" mlog "
all(x['method'] == 'PUT' and x['headers'].get('Content-Type', '').startswith('image/') for x in puts)"
expect "image group: stderr names the dataset" err_has "to dataset 'Mock'"

fresh
run_in "$WORK/cwd" upload "${API[@]}" --image-group split --no-create-video \
  --folder 0F0E0D0C-0B0A-4909-8807-060504030201 "$WORK/img"
expect "split group: exit 0, two data units on stdout" units_are split "split (2)"
expect "split group: --no-create-video, folderUuid canonical" mlog "
jobs[0]['folderUuid'] == '0f0e0d0c-0b0a-4909-8807-060504030201' and
jobs[0]['dataItems']['imageGroups'][0]['createVideo'] is False and jobs[0]['dataItems']['imageGroups'][0]['clusterByResolution'] is False"

fresh
run_in "$WORK/cwd" upload "${API[@]}" --dicom-series ct "$WORK/dcm"
expect "DICOM series: exit 0, one unit" units_are ct
expect "DICOM series: dicomFile URLs, application/dicom" mlog "
r[1]['query'] == 'count=3&uploadItemType=dicomFile' and
all(x['headers'].get('Content-Type') == 'application/dicom' for x in puts) and
list(jobs[0]['dataItems']['dicomSeries'][0]) == ['dicomFiles', 'title', 'clientMetadata', 'externalFileType']"
expect "DICOM series: objects byte-identical" stored_same "$WORK/dcm"

fresh
run_in "$WORK/cwd" upload "${API[@]}" --video "$WORK/vid"
expect "videos: exit 0, one unit per file, in order" units_are clip0.mp4 clip1.mp4 clip2.mp4
expect "videos: one presign of 3, one job per file" mlog "
sum(1 for x in r if x['method'] == 'GET') == 1 and r[1]['query'] == 'count=3&uploadItemType=video' and
len(puts) == 3 and
len(jobs) == 3 and all(len(j['dataItems']['videos']) == 1 for j in jobs)"
expect "videos: application/octet-stream" mlog "
all(x['headers'].get('Content-Type') == 'application/octet-stream' for x in puts)"
expect "videos: objects byte-identical" stored_same "$WORK/vid"

fresh
run_in "$WORK/cwd" upload "${API[@]}" --video --files-per-job 2 "$WORK/vid"
expect "videos --files-per-job 2: three units" units_are clip0.mp4 clip1.mp4 clip2.mp4
expect "videos --files-per-job 2: two jobs (2 + 1)" mlog "
[len(j['dataItems']['videos']) for j in jobs] == [2, 1]"

fresh
FIRST=$(head -1 "$WORK/names")
cp "$WORK/vid/clip0.mp4" "$WORK/cwd/picture.unknownext"
run_in "$WORK/cwd" upload "${API[@]}" --image "$WORK/img/$FIRST" picture.unknownext
expect "images: exit 0, one unit per file" units_are "$FIRST" picture.unknownext
expect "images: an unknown type goes with no Content-Type" mlog "
[x['headers'].get('Content-Type') for x in puts].count(None) == 1 and len(puts) == 2"

# ---- 2. the key -----------------------------------------------------------------------
ONE=$WORK/vid/clip1.mp4
fresh
ENCORD_SSH_KEY_FILE=$WORK/key.pem run_in "$WORK/cwd" upload --api "$URL" --dataset "$DATASET" --video "$ONE"
expect "key from \$ENCORD_SSH_KEY_FILE: exit 0" rc_is 0
expect "key id: the public key in hex, in every request" mlog "all(x['headers']['Authorization'].split(':')[0] == '$KEYID' for x in r if x['path'] == '/public') and all('keyid=\"$KEYID\"' in x['headers']['Signature-Input'] for x in r if x['method'] == 'GET')"
ENCORD_SSH_KEY=$(cat "$WORK/key.pem") run_in "$WORK/cwd" upload --api "$URL" --dataset "$DATASET" --video "$ONE"
expect "key text from \$ENCORD_SSH_KEY: exit 0" rc_is 0
if command -v ssh-keygen >/dev/null; then
  ssh-keygen -q -t ed25519 -N '' -f "$WORK/ossh" >/dev/null
  fresh
  run_in "$WORK/cwd" upload --api "$URL" --key-file "$WORK/ossh" --dataset "$DATASET" --video "$ONE"
  expect "OpenSSH key from ssh-keygen: exit 0" rc_is 0
  OSSHID=$($PY -c "import base64; print(base64.b64decode(open('$WORK/ossh.pub').read().split()[1])[-32:].hex())")
  expect "OpenSSH key: its id is its public key" mlog "
r[0]['headers']['Authorization'].split(':')[0] == '$OSSHID'"
fi
run_in "$WORK/cwd" upload "${API[@]}" --key-id "$KEYID" --video "$ONE"
expect "--key-id of the key: exit 0" rc_is 0
fresh
run_in "$WORK/cwd" upload "${API[@]}" --key-id my-key --video "$ONE"
expect "--key-id not the key's: exit 2 naming the derived id, no request" \
  bash -c "[ $RC -eq 2 ] && grep -qF '$KEYID' '$WORK/err' && [ ! -s '$MLOG' ]"
cp "$WORK/key.pem" "$WORK/open.pem"
chmod 644 "$WORK/open.pem"
run_in "$WORK/cwd" upload --api "$URL" --key-file "$WORK/open.pem" --dataset "$DATASET" --video "$ONE"
expect "a key readable by others: exit 2, too open" bash -c "[ $RC -eq 2 ] && grep -q 'too open' '$WORK/err'"
env -u ENCORD_SSH_KEY -u ENCORD_SSH_KEY_FILE timeout "$LIMIT" "$TOOL" upload --api "$URL" \
  --dataset "$DATASET" --video "$ONE" </dev/null >"$WORK/out" 2>"$WORK/err"
RC=$?
expect "no key at all: exit 2 naming the variables" bash -c "[ $RC -eq 2 ] && grep -q ENCORD_SSH_KEY_FILE '$WORK/err'"

# ---- 3. the API refuses ------------------------------------------------------------------
start_mock deny authfail
run_in "$WORK/cwd" upload --api "$URL" --key-file "$WORK/key.pem" --dataset "$DATASET" --image-group g "$WORK/img"
expect "AUTHENTICATION_ERROR: exit 1, in words" bash -c "
[ $RC -eq 1 ] && grep -q 'AUTHENTICATION_ERROR: the key is not registered' '$WORK/err'"
expect "AUTHENTICATION_ERROR: nothing on stdout, nothing uploaded" \
  bash -c "[ ! -s '$WORK/out' ] && [ -z \"\$(ls '$MSTORE')\" ]"

# ---- 4. the requests settings govern API requests (issue 13 item 14) ---------------
start_mock silent silent
t0=$(date +%s)
run_in "$WORK/cwd" upload --api "$URL" --key-file "$WORK/key.pem" --dataset "$DATASET" \
  --image-group g --max-retries 0 --read-timeout 1 "$WORK/img"
t1=$(date +%s)
expect "silent API, --max-retries 0 --read-timeout 1: exit 1, a read timeout" \
  bash -c "[ $RC -eq 1 ] && grep -q 'read timeout' '$WORK/err'"
expect "silent API, --max-retries 0: exactly 1 request" mlog "len(r) == 1"
expect "silent API, --max-retries 0: bounded (far under the 30 s hold)" test $((t1 - t0)) -le 20
: >"$MLOG"
run_in "$WORK/cwd" upload --api "$URL" --key-file "$WORK/key.pem" --dataset "$DATASET" \
  --image-group g --max-retries 2 --backoff-factor 0.1 --read-timeout 1 "$WORK/img"
expect "silent API, --max-retries 2: exit 1 after 3 attempts" \
  bash -c "[ $RC -eq 1 ] && grep -q '3 attempts' '$WORK/err'"
expect "silent API, --max-retries 2: exactly 3 requests" mlog "len(r) == 3"

# ---- 5. usage ---------------------------------------------------------------------
usage_case() { # DESCRIPTION ARGS...
  local what=$1
  shift
  run_in "$WORK/cwd" upload "$@"
  expect "usage: $what: exit 2" \
    bash -c "[ $RC -eq 2 ] && grep -q \"Try 'bulkup upload --help'\" '$WORK/err'"
}
usage_case "no PATH"
usage_case "--dataset without a PATH" --dataset "$DATASET" --image
usage_case "--dataset without a kind" --dataset "$DATASET" "$WORK/img"
usage_case "--api without --dataset" --api "$URL" --image "$WORK/img"
usage_case "two kinds" --dataset "$DATASET" --video --image "$WORK/img"
usage_case "--api not http" --api ftp://x --dataset "$DATASET" --image "$WORK/img"
usage_case "--dataset with --to" --dataset "$DATASET" --image --to http://127.0.0.1:1/x "$WORK/img"
usage_case "--key-file without --dataset" --key-file "$WORK/key.pem" "$WORK/img"
usage_case "--folder without --dataset" --folder 0f0e0d0c-0b0a-4909-8807-060504030201 "$WORK/img"
usage_case "--store with --dataset" --dataset "$DATASET" --image --store "$WORK/s" "$WORK/img"
usage_case "--image-group with --to" --image-group G --to http://127.0.0.1:1/x "$WORK/img"
usage_case "--no-create-video with --video" --dataset "$DATASET" --video --no-create-video "$WORK/img"
usage_case "--files-per-job with --image-group" --dataset "$DATASET" --image-group g --files-per-job 2 "$WORK/img"
usage_case "--files-per-job 0" --dataset "$DATASET" --video --files-per-job 0 "$WORK/img"
usage_case "--data-type in the workflow" --dataset "$DATASET" --video --data-type video "$WORK/img"
usage_case "--journal in the workflow" --journal "$WORK/j" "$WORK/img"
usage_case "--content-type in the workflow" --content-type image/png "$WORK/img"
usage_case "empty --image-group" --image-group "" "$WORK/img"
run_in "$WORK/cwd" upload "${API[@]}" --image "$WORK/nope"
expect "a missing PATH: exit 2 naming it" bash -c "[ $RC -eq 2 ] && grep -q nope '$WORK/err'"
expect "usage errors made no store" test ! -e "$WORK/cwd/bulkup-store"

run_tool upload --help
missing=""
for o in "--dataset HASH" --folder --image-group --dicom-series --video --image \
  --create-video --no-create-video --files-per-job --key-file ENCORD_SSH_KEY_FILE \
  ENCORD_SSH_KEY --key-id https://api.encord.com "DATA_HASH  TITLE" embedded \
  --allow-failures; do
  grep -qF -- "$o" "$WORK/out" || missing="$missing $o"
done
expect "upload --help documents the workflow${missing:+ (missing:$missing)}" test -z "$missing"
expect "upload --help: no invented options left" \
  bash -c "! grep -qE -- '--cluster-by-resolution|OBJECT_KEY  PATH' '$WORK/out'"

# ---- 6. signals ---------------------------------------------------------------------
start_mock slow slow
timeout "$LIMIT" "$TOOL" upload --api "$URL" --key-file "$WORK/key.pem" --dataset "$DATASET" \
  --image-group G "$WORK/img" </dev/null >"$WORK/out" 2>"$WORK/err" &
pid=$!
for _ in $(seq 1 200); do
  grep -q "^bulkup: uploading" "$WORK/err" 2>/dev/null && break
  sleep 0.05
done
t0=$(date +%s)
kill -TERM "$pid"
wait "$pid"
RC=$?
t1=$(date +%s)
cat "$WORK/err" >>"$WORK/all-err"
expect "SIGTERM during a run: exit 143" rc_is 143
expect "SIGTERM during a run: ends within 3 s" test $((t1 - t0)) -le 3
expect "SIGTERM during a run: says it cancels" err_has "terminated: cancelling the run"
expect "SIGTERM during a run: nothing on stdout" test ! -s "$WORK/out"

expect "no sanitizer report in any stderr" \
  bash -c "! cat '$WORK/all-err' 2>/dev/null | grep -E 'Sanitizer|runtime error'"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
