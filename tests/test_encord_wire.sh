#!/usr/bin/env bash
# test_encord_wire.sh - the bulkup CLI against the strict Encord API
# (tests/encord/strict_api.py, written from ../shared/spec/ENCORD_WIRE.md
# only), every upload kind, with the usage of issue 14:
#
#   bulkup upload --api URL --key-file FILE --dataset HASH [--folder UUID]
#     (--image-group TITLE [--create-video|--no-create-video]
#      | --dicom-series TITLE | --video | --image) PATH...
#
# Each run gets a fresh server. For both answer casings (camelCase plain;
# snake_case with gzip-encoded v1 answers, as the client asks for with
# Accept-Encoding: gzip):
#   1. an image group of 452 files (3 presign batches: 200, 200, 52; a file
#      with a space and non-ASCII in its name; a title with non-ASCII and a
#      quote), createVideo true by default, a folder the server requires;
#      snake: the files given as their directory;
#   2. a group the server splits into 3 data units (by PNG resolution, as
#      clusterByResolution asks; snake: with --create-video), and
#      --no-create-video (no split);
#   3. a DICOM series (camel: with a PENDING poll held the whole 10 s);
#   4. 3 videos (camel: one of 65 MiB, above the resumable threshold: a plain
#      PUT all the same), one data unit each;
#   5. 3 images (.png, .jpg, an unknown extension: no Content-Type).
# Every run: exit 0; standard output exactly one "DATA_HASH  TITLE" line per
# data unit the server reported; zero refused requests; each source stored
# byte-identical (check_run.py). Then each error shape: v1 AUTHENTICATION_ERROR
# (HTTP 401, and HTTP 200 with the error envelope), v2 401 {"message"} and
# 403 {"detail"}, the job POST's INVALID_ARGUMENTS_ERROR, a job ending ERROR
# and one CANCELLED, a key the server does not know: exit non-zero, nothing
# on standard output, the server's words on standard error, and the refused
# request neither retried nor followed by more (the SDK retries none of
# them, §10); a job POST answered 502 (HTML) is not retried either, nor a
# poll answered with a v1 error (server-reported, §10); a presign
# answering fewer URLs than asked fails the run before any job. Presign 503
# and 429, storage 503 and poll 503 are retried to success; a presign or a
# PUT answered 503 four times fails the run after exactly 4 attempts (§10). The key
# from ENCORD_SSH_KEY_FILE, from ENCORD_SSH_KEY, and a PEM PKCS#8 key. An
# image group over HTTPS (a throwaway certificate, --cacert).
#
# Until the client of issue 14 lands (bulkup upload --help without
# --dataset) this exits 77: skipped, and says so. Key: ssh-keygen -t
# ed25519 (OpenSSH), chmod 600. Every command is bounded by `timeout`; the
# whole test takes about 90 s (a 10 s long poll, 65 MiB once, 900 small
# PUTs, 40 runs of the client each with its own server).
set -uo pipefail

SRC=${BULKUP_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BULKUP_TEST_BINARY_DIR:-$SRC/build}
TOOL=$BIN/bulkup
PY=/usr/bin/python3
STRICT=$SRC/tests/encord/strict_api.py
CHECK=$SRC/tests/encord/check_run.py
LIMIT=${BULKUP_TEST_CMD_TIMEOUT:-180}

# BULKUP_ENCORD_CLI=tests/encord/spec_cli.py runs the same checks on the
# specification's stand-in client instead of bulkup: that proves the harness
# (ctest encord_wire_harness).
if [ -n "${BULKUP_ENCORD_CLI:-}" ]; then
  CLI=("$PY" "$BULKUP_ENCORD_CLI" upload)
else
  CLI=("$TOOL" upload)
  if [ ! -x "$TOOL" ]; then
    echo "test_encord_wire: $TOOL not built" >&2
    exit 1
  fi
fi
if ! "$PY" -c 'import cryptography.hazmat.primitives.asymmetric.ed25519' 2>/dev/null; then
  echo "test_encord_wire: SKIP: $PY with python3-cryptography is needed"
  exit 77
fi
for cmd in ssh-keygen timeout cmp; do
  if ! command -v "$cmd" >/dev/null; then
    echo "test_encord_wire: $cmd is needed" >&2
    exit 1
  fi
done
# (into a variable first: with pipefail, grep -q closing the pipe early
# would fail the pipeline with SIGPIPE)
HELP=$(timeout 20 "${CLI[@]}" --help 2>&1)
if ! grep -q -- '--dataset' <<<"$HELP"; then
  echo "test_encord_wire: SKIP: 'bulkup upload --help' has no --dataset: the Encord"
  echo "  client of issue 14 (branch encord-client) has not landed in this build, so"
  echo "  there is nothing to run against the strict API yet."
  exit 77
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulkup-encord-wire.XXXXXX")
SERVER_PID=
cleanup() {
  stop_server
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
  echo "ok - $1 [${SECONDS}s]"
}
fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL - $1"
  if [ -n "${RUN:-}" ] && [ -s "$RUN/err" ]; then
    sed 's/^/    stderr: /' "$RUN/err" | head -15
  fi
}

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=
  fi
}

DATASET=$("$PY" -c 'import uuid; print(uuid.uuid4())')
FOLDER=$("$PY" -c 'import uuid; print(uuid.uuid4())')

# start_server NAME [strict_api options]: a fresh server; sets RUN and API.
# Jobs end at their first poll unless the options say --pending-polls N (the
# image groups, the DICOM series and the retry runs do).
start_server() {
  stop_server
  RUN=$WORK/run-$1
  shift
  mkdir -p "$RUN"
  : >"$RUN/violations.jsonl"
  : >"$RUN/log.jsonl"
  : >"$RUN/units.txt"
  "$PY" "$STRICT" --port-file "$RUN/port" --store "$RUN/store" \
    --violations "$RUN/violations.jsonl" --log "$RUN/log.jsonl" --units "$RUN/units.txt" \
    --pubkey "$WORK/key.pub" --dataset "$DATASET" --folder "$FOLDER" --pending-polls 0 "$@" \
    2>"$RUN/server.err" &
  SERVER_PID=$!
  local i
  for i in $(seq 1 600); do   # 30 s at most, for a loaded machine
    [ -s "$RUN/port" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  if [ ! -s "$RUN/port" ]; then
    echo "test_encord_wire: strict_api.py did not start:" >&2
    cat "$RUN/server.err" >&2
    exit 1
  fi
  API=http://127.0.0.1:$(cat "$RUN/port")
}

# client [bulkup upload options...]: run the CLI; status in RC.
client() {
  timeout "$LIMIT" "${CLI[@]}" --api "$API" --key-file "$KEY" --dataset "$DATASET" "$@" \
    >"$RUN/out" 2>"$RUN/err"
  RC=$?
}
# client_nokey [bulkup upload options...]: the same without --key-file.
client_nokey() {
  timeout "$LIMIT" "${CLI[@]}" --api "$API" --dataset "$DATASET" "$@" >"$RUN/out" 2>"$RUN/err"
  RC=$?
}

# show_violations: the rules the server's refusals broke, for the log.
show_violations() {
  "$PY" -c 'import json,sys
for line in open(sys.argv[1]):
    v=json.loads(line)
    print("    refused %s %s: %s" % (v["method"], v["target"][:80], v["rule"]))' \
    "$RUN/violations.jsonl" | head -10
}

# judge WHAT check_run options... -- SOURCES: a successful run's checks.
judge() {
  local what=$1
  shift
  if [ "$RC" -ne 0 ]; then
    fail "$what: exit $RC"
    show_violations
    return
  fi
  if grep -Eq 'Sanitizer|runtime error:' "$RUN/err"; then
    fail "$what: a sanitizer report on stderr"
    return
  fi
  if "$PY" "$CHECK" --dir "$RUN" --stdout "$RUN/out" "$@" >"$RUN/check" 2>&1; then
    pass "$what"
    grep '^info:' "$RUN/check" | sed 's/^/    /'
  else
    fail "$what"
    sed 's/^/    /' "$RUN/check" | head -30
  fi
}

# refused WHAT WORDS [VIOLATIONS]: an error run: non-zero exit, empty stdout,
# WORDS (an extended regex, case-insensitive) on stderr, VIOLATIONS (default
# 0; N+ for at least N) refused requests.
refused() {
  local what=$1 words=$2 nviol=${3:-0} ok=1 why=
  if [ "$RC" -eq 0 ]; then ok=0; why="exit 0"; fi
  if [ "$RC" -ge 124 ]; then ok=0; why="exit $RC (timeout or signal)"; fi
  if grep -Eq 'Sanitizer|runtime error:' "$RUN/err"; then ok=0; why="$why; a sanitizer report on stderr"; fi
  if [ -s "$RUN/out" ]; then ok=0; why="$why; stdout not empty: $(head -c 200 "$RUN/out")"; fi
  if ! grep -Eqi -- "$words" "$RUN/err"; then ok=0; why="$why; stderr lacks /$words/"; fi
  local n
  n=$(wc -l <"$RUN/violations.jsonl")
  if { [ "${nviol%+}" != "$nviol" ] && [ "$n" -lt "${nviol%+}" ]; } ||
     { [ "${nviol%+}" = "$nviol" ] && [ "$n" -ne "$nviol" ]; }; then
    ok=0
    why="$why; $n refused requests, expected $nviol: $(head -c 300 "$RUN/violations.jsonl")"
  fi
  if [ "$ok" -eq 1 ]; then
    pass "$what (exit $RC)"
    grep -Ei -- "$words" "$RUN/err" | tail -2 | cut -c1-200 | sed 's/^/    stderr: /'
  else
    fail "$what: $why"
  fi
}

# count_log SELECTOR: how many accepted requests match (a Python expression on e).
count_log() {
  "$PY" -c 'import json,sys
n=0
for line in open(sys.argv[1]):
    e=json.loads(line)
    if eval(sys.argv[2]): n+=1
print(n)' "$RUN/log.jsonl" "$1"
}

# ---- the usage of issue 14 in --help ------------------------------------------------
timeout 20 "${CLI[@]}" --help >"$WORK/help" 2>&1
missing=
for opt in --api --key-file --dataset --folder --image-group --create-video --no-create-video \
  --dicom-series --video --image; do
  grep -Eq -- "$opt([^a-z-]|$)" "$WORK/help" || missing="$missing $opt"
done
if [ -z "$missing" ]; then pass "upload --help shows issue 14's options"
else fail "upload --help lacks:$missing"; fi

# ---- data -------------------------------------------------------------------
KEY=$WORK/key
ssh-keygen -q -t ed25519 -N '' -C strict-test -f "$KEY" >/dev/null || exit 1
chmod 600 "$KEY"
timeout 60 "$PY" - "$WORK" <<'EOF' || exit 1
import os, struct, sys, zlib
work = sys.argv[1]
def png(w, h, seed):
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    rows = b"".join(b"\x00" + bytes((seed * 7 + x * y) & 0xff for x in range(w * 3)) for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
def put(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
for i in range(451):
    put(f"{work}/group/img{i:04d}.png", png(8 + i % 5, 8, i))
put(f"{work}/group/sp\u00e4ce \u00fcber.png", png(9, 9, 999))
sizes = [(16, 16), (32, 16), (16, 32)]
for i in range(9):
    put(f"{work}/split/s{i:02d}.png", png(*sizes[i % 3], i))
for i in range(5):
    put(f"{work}/dicom/slice{i:02d}.dcm", b"DICM" + os.urandom(300 + i))
for i in range(3):
    put(f"{work}/videos/clip{i}.mp4", os.urandom(2000 + i))
put(f"{work}/images/photo.png", png(20, 10, 5))
put(f"{work}/images/photo.jpg", b"\xff\xd8\xff\xe0" + os.urandom(500))
put(f"{work}/images/scan.weirdext", os.urandom(700))
EOF
head -c $((65 * 1024 * 1024)) /dev/urandom >"$WORK/big.mp4"
GROUP=("$WORK"/group/*)
SPLIT=("$WORK"/split/*)
DICOM=("$WORK"/dicom/*)
VIDEOS=("$WORK"/videos/*)
IMAGES=("$WORK"/images/*)
GTITLE=$'Gruppe \xc3\x84 "q" 1'

# ---- every kind, both casings ---------------------------------------------------
for casing in camel snake; do
  extra=()
  [ "$casing" = snake ] && extra=(--gzip)
  tag="$casing${extra[*]:+ ${extra[*]}}"

  start_server "group-$casing" --casing "$casing" --require-folder --pending-polls 1 "${extra[@]}"
  if [ "$casing" = camel ]; then
    client --folder "$FOLDER" --image-group "$GTITLE" "${GROUP[@]}"
  else
    client --folder "$FOLDER" --image-group "$GTITLE" "$WORK/group"  # a directory PATH
  fi
  judge "[$tag] image group of ${#GROUP[@]} files: 1 data unit, 3 presign batches" \
    --kind imageGroups --expect-units 1 --presign-counts 200,200,52 --create-video true \
    --group-title "$GTITLE" --folder "$FOLDER" "${GROUP[@]}"

  start_server "split-$casing" --casing "$casing" --split-by-resolution "${extra[@]}"
  if [ "$casing" = camel ]; then
    client --image-group "split $casing" "${SPLIT[@]}"
  else
    client --image-group "split $casing" --create-video "${SPLIT[@]}"
  fi
  judge "[$tag] a group the server splits by resolution: 3 data units" \
    --kind imageGroups --expect-units 3 --create-video true --no-folder "${SPLIT[@]}"

  start_server "nosplit-$casing" --casing "$casing" --split-by-resolution "${extra[@]}"
  client --image-group "flat $casing" --no-create-video "${SPLIT[@]}"
  judge "[$tag] --no-create-video: createVideo and clusterByResolution false, 1 unit" \
    --kind imageGroups --expect-units 1 --create-video false "${SPLIT[@]}"

  if [ "$casing" = camel ]; then
    start_server "dicom-$casing" --casing "$casing" --pending-polls 1 --hold-full "${extra[@]}"
  else
    start_server "dicom-$casing" --casing "$casing" --pending-polls 3 "${extra[@]}"
  fi
  client --folder "$FOLDER" --dicom-series "series $casing" "${DICOM[@]}"
  judge "[$tag] DICOM series: 1 data unit" \
    --kind dicomSeries --expect-units 1 --group-title "series $casing" "${DICOM[@]}"

  vids=("${VIDEOS[@]}")
  [ "$casing" = camel ] && vids+=("$WORK/big.mp4")
  start_server "videos-$casing" --casing "$casing" "${extra[@]}"
  client --video "${vids[@]}"
  judge "[$tag] ${#vids[@]} videos: one data unit each" \
    --kind videos --expect-units ${#vids[@]} "${vids[@]}"
  if [ "$casing" = camel ]; then
    n=$(count_log 'e["kind"] == "put" and e["object_key"].startswith("cord-strict-bucket/video/") and e["size"] == 65 * 1024 * 1024')
    if [ "$n" = 1 ]; then pass "[$tag] the 65 MiB video went as one plain PUT"
    else fail "[$tag] the 65 MiB video: $n plain PUTs of its size"; fi
  fi

  start_server "images-$casing" --casing "$casing" "${extra[@]}"
  client --image "${IMAGES[@]}"
  judge "[$tag] ${#IMAGES[@]} images (.png, .jpg, unknown extension): one data unit each" \
    --kind images --expect-units ${#IMAGES[@]} "${IMAGES[@]}"
done

# ---- error shapes -------------------------------------------------------------------
start_server err-v1auth --inject v1=AUTHENTICATION_ERROR
client --image-group t "${SPLIT[@]}"
refused "v1 AUTHENTICATION_ERROR (HTTP 401)" 'authenticat'
n=$(count_log '"injected" not in e and e["kind"] == "v1"')
if [ "$n" = 0 ]; then pass "no v1 request after the AUTHENTICATION_ERROR"
else fail "$n v1 requests after the AUTHENTICATION_ERROR"; fi

start_server err-v1auth200 --inject v1=AUTHENTICATION_ERROR --v1-error-http 200
client --image "${IMAGES[0]}"
refused "v1 AUTHENTICATION_ERROR in an HTTP 200 envelope" 'authenticat'

start_server err-v2-401 --inject presign=401
client --image-group t "${SPLIT[@]}"
refused "v2 presign 401 {\"message\"}" 'injected presign failure 401'
n=$(count_log 'e["kind"] == "presign"')
if [ "$n" = 1 ]; then pass "the presign 401 was not retried"
else fail "the presign 401: $n presign requests (the SDK retries no 401, §10)"; fi

start_server err-v2-403 --inject presign-detail=403 --casing snake
client --video "${VIDEOS[0]}"
refused "v2 presign 403 {\"detail\"}" 'injected presign failure 403'

start_server err-jobpost --inject job-post=INVALID_ARGUMENTS_ERROR
client --dicom-series s "${DICOM[@]}"
refused "job POST INVALID_ARGUMENTS_ERROR" 'invalid.?arguments'
n=$(count_log 'e.get("query_type") == "datasetdatalongpolling"')
if [ "$n" = 1 ]; then pass "the refused job POST was neither retried nor polled"
else fail "after the refused job POST: $n job requests in all (the SDK sends 1, §10)"; fi

start_server err-jobpost502 --inject job-post-http=502
client --image "${IMAGES[0]}"
refused "job POST answered HTTP 502 (HTML)" '502'
n=$(count_log 'e.get("query_type") == "datasetdatalongpolling"')
if [ "$n" = 1 ]; then pass "the job POST answered 502 was not retried (§10: r=0)"
else fail "after the job POST's 502: $n job requests in all (the SDK sends 1, §10)"; fi

start_server err-pollv1 --inject poll-v1=INVALID_ARGUMENTS_ERROR
client --video "${VIDEOS[0]}"
refused "poll answered INVALID_ARGUMENTS_ERROR" 'invalid.?arguments'
n=$(count_log 'e.get("query_type") == "datasetdatalongpolling" and e.get("query_method") == "GET"')
if [ "$n" = 1 ]; then pass "the poll's server-reported error was not retried (§10)"
else fail "after the poll's server-reported error: $n polls (the SDK sends 1, §10)"; fi

start_server err-presignshort --inject presign-short=1
client --image-group t "${SPLIT[@]}"
refused "a presign answering 1 URL for 9 asked" '.'
n=$(count_log 'e.get("query_type") == "datasetdatalongpolling"')
if [ "$n" = 0 ]; then pass "no job after the short presign answer"
else fail "$n job requests after the short presign answer"; fi

start_server err-joberror --inject job-end=ERROR
client --image-group t "${SPLIT[@]}"
refused "job ends ERROR with errors" 'injected job failure'

start_server err-jobcancel --inject job-end=CANCELLED --casing snake
client --image "${IMAGES[0]}"
refused "job ends CANCELLED" 'cancel'

ssh-keygen -q -t ed25519 -N '' -f "$WORK/stranger" >/dev/null
chmod 600 "$WORK/stranger"
start_server err-stranger
KEY=$WORK/stranger client --image "${IMAGES[0]}"
KEY=$WORK/key
refused "a key the server does not know" '.' 1+
n=$(count_log 'True')
if [ "$n" = 0 ]; then pass "nothing accepted from the unknown key"
else fail "$n requests accepted from the unknown key"; fi

# ---- the key from the environment, and in PEM ---------------------------------------
start_server key-envfile
ENCORD_SSH_KEY_FILE=$KEY client_nokey --image "${IMAGES[0]}"
judge "the key from ENCORD_SSH_KEY_FILE" --kind images --expect-units 1 "${IMAGES[0]}"

start_server key-env
ENCORD_SSH_KEY=$(cat "$KEY") client_nokey --image "${IMAGES[0]}"
judge "the key from ENCORD_SSH_KEY" --kind images --expect-units 1 "${IMAGES[0]}"

if command -v openssl >/dev/null; then
  openssl genpkey -algorithm ed25519 -out "$WORK/pem.key" 2>/dev/null
  chmod 600 "$WORK/pem.key"
  PEMHEX=$("$PY" -c 'import sys
from cryptography.hazmat.primitives import serialization as s
k = s.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
print(k.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw).hex())' "$WORK/pem.key")
  start_server key-pem --keyid "$PEMHEX"
  KEY=$WORK/pem.key client --image "${IMAGES[0]}"
  KEY=$WORK/key
  judge "a PEM PKCS#8 key (openssl genpkey)" --kind images --expect-units 1 "${IMAGES[0]}"
fi

# ---- over HTTPS (the real API's scheme) ----------------------------------------------
if command -v openssl >/dev/null &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$WORK/tls.key" -out "$WORK/tls.pem" >/dev/null 2>&1; then
  start_server tls --tls-cert "$WORK/tls.pem" --tls-key "$WORK/tls.key"
  API=https://127.0.0.1:$(cat "$RUN/port")
  client --cacert "$WORK/tls.pem" --image-group tls "${SPLIT[@]}"
  judge "over HTTPS (--cacert): image group" --kind imageGroups --expect-units 1 "${SPLIT[@]}"
else
  fail "openssl could not make a test certificate"
fi

# ---- retried failures -----------------------------------------------------------
start_server retry-presign --inject presign=503 --inject presign=429
client --dicom-series retried "${DICOM[@]}"
judge "presign 503 then 429 are retried to success" --kind dicomSeries --expect-units 1 "${DICOM[@]}"

# §10: r = 3 for the presign and the PUT: 4 attempts, then the run fails.
start_server exhaust-presign --retry-after 1 --inject presign=503 --inject presign=503 \
  --inject presign=503 --inject presign=503 --inject presign=503
client --image "${IMAGES[0]}"
refused "presign 503 four times: the run fails" '503'
n=$(count_log 'e["kind"] == "presign"')
if [ "$n" = 4 ]; then pass "the presign was tried 4 times (§10: 3 retries)"
else fail "the presign was tried $n times (§10: 1 + 3 retries)"; fi

start_server exhaust-put --retry-after 1 --inject put=503 --inject put=503 --inject put=503 \
  --inject put=503 --inject put=503
client --image "${IMAGES[0]}"
refused "storage PUT 503 four times: the run fails, no job" '503'
n=$(count_log 'e["kind"] == "put"')
if [ "$n" = 4 ]; then pass "the PUT was tried 4 times (§10: 3 retries)"
else fail "the PUT was tried $n times (§10: 1 + 3 retries)"; fi
n=$(count_log 'e.get("query_type") == "datasetdatalongpolling"')
if [ "$n" = 0 ]; then pass "no job after the failed PUT"
else fail "$n job requests after the failed PUT"; fi

start_server retry-put --inject put=503 --inject poll=503 --pending-polls 1
client --image-group retried "${SPLIT[@]}"
judge "storage 503 and poll 503 are retried to success" \
  --kind imageGroups --expect-units 1 "${SPLIT[@]}"

echo "test_encord_wire: client: ${CLI[*]}"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
