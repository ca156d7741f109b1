#!/usr/bin/env bash
# test_s3rver.sh - `bulkup upload` to s3:// and gs:// against real parts:
# s3rver 3.7.1 (storage) behind tests/support/sigv4_verifier.py, a proxy
# that recomputes each request's SigV4 signature with Debian's botocore and
# refuses (403) any that differs, and checks the payload hash and the
# checksum headers. s3rver checks neither.
#
#   1. A directory (awkward names; sizes 0 B to 300 KiB, streamed ones
#      among them) to s3://bucket/prefix, credentials from ~/.aws/credentials
#      (HOME a temp dir), region from ~/.aws/config: exit 0, every object
#      byte-identical in s3rver's store, every request verified, each with
#      its CRC32C (the default --checksum), the profile's region signed;
#      4 threads share one signer.
#   2. A wrong secret (--profile bad): 403, not retried (one attempt per
#      file, exactly as many refused requests); neither the secret nor the
#      signature nor the echoed canonical request in the report or the log.
#   3. A session token (AWS_SESSION_TOKEN) to a proxy that requires it; the
#      same keys without the token are refused.
#   4. --checksum md5 (Content-MD5, checked) and none; --storage-class,
#      --sse, --cache-control, --metadata (x-amz-meta-) sent and signed.
#   5. gs:// (GOOG_ACCESS_KEY_ID/GOOG_SECRET_ACCESS_KEY, region "auto",
#      x-goog-hash crc32c) and a manifest of s3:// URLs.
#   7. Multipart (three parts): with CRC32C (declared at create, per part,
#      listed in the Complete, all checked by the verifier), gs:// (per-part
#      x-goog-hash only), --checksum md5, and a run killed mid-upload then
#      resumed from the journal (the Complete still names every part's
#      checksum).
#   6. Usage: bad values, S3 options without an S3 destination, no
#      credentials (the message names what was looked for).
#
# s3rver comes from ${BULKUP_NPM_DIR:-$BULKUP_TEST_SOURCE_DIR/build/npm}
# (scripts/setup installs it); without it, or without python3-botocore,
# the test is skipped (exit 77).
set -uo pipefail

SRC=${BULKUP_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BULKUP_TEST_BINARY_DIR:-$SRC/build}
TOOL=$BIN/bulkup
NPM=${BULKUP_NPM_DIR:-$SRC/build/npm}
S3RVER=$NPM/node_modules/.bin/s3rver
VERIFIER=$SRC/tests/support/sigv4_verifier.py
PY=/usr/bin/python3

if [ ! -x "$TOOL" ]; then
  echo "test_s3rver: $TOOL not built" >&2
  exit 1
fi
if [ ! -x "$S3RVER" ]; then
  echo "test_s3rver: skipped: no s3rver at $S3RVER (scripts/setup installs it)"
  exit 77
fi
if ! "$PY" -c 'import botocore.auth' 2>/dev/null; then
  echo "test_s3rver: skipped: no python3-botocore"
  exit 77
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulkup-s3rver.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null
  done
  for p in "${PIDS[@]}"; do
    wait "$p" 2>/dev/null
  done
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
  [ -s "$WORK/err" ] && sed 's/^/    stderr: /' "$WORK/err" | head -20
}
expect() {
  local desc=$1
  shift
  if "$@"; then pass "$desc"; else fail "$desc"; fi
}

# run_tool ENV... -- ARGS...: bulkup with only the given environment (and
# PATH), bounded in time; stderr to $WORK/err, status in $RC.
run_tool() {
  local envs=()
  while [ "$1" != "--" ]; do
    envs+=("$1")
    shift
  done
  shift
  env -i PATH="$PATH" "${envs[@]}" timeout 60 "$TOOL" "$@" \
    >"$WORK/out" 2>"$WORK/err" </dev/null
  RC=$?
}

# ---- servers -------------------------------------------------------------
DATA=$WORK/s3data
mkdir -p "$DATA"
"$S3RVER" -d "$DATA" -a 127.0.0.1 -p 0 --configure-bucket bucket \
  --configure-bucket other >"$WORK/s3rver.log" 2>&1 &
PIDS+=($!)
S3PORT=
for _ in $(seq 1 200); do
  S3PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/s3rver.log" | head -1)
  [ -n "$S3PORT" ] && break
  sleep 0.05
done
if [ -z "$S3PORT" ]; then
  echo "test_s3rver: s3rver did not start:" >&2
  cat "$WORK/s3rver.log" >&2
  exit 1
fi

# start_verifier NAME ARGS...: a proxy; its port in ${NAME}_PORT.
start_verifier() {
  local name=$1
  shift
  "$PY" "$VERIFIER" --upstream "$S3PORT" --port-file "$WORK/$name.port" \
    --log "$WORK/$name.jsonl" "$@" 2>"$WORK/$name.err" &
  PIDS+=($!)
  for _ in $(seq 1 200); do
    [ -s "$WORK/$name.port" ] && break
    sleep 0.05
  done
  if [ ! -s "$WORK/$name.port" ]; then
    echo "test_s3rver: verifier $name did not start" >&2
    cat "$WORK/$name.err" >&2
    exit 1
  fi
  printf -v "${name}_PORT" '%s' "$(cat "$WORK/$name.port")"
}
start_verifier V --key S3RVER:S3RVER
start_verifier T --key S3RVER:S3RVER --token 'FwoGZXIvYXdzEXAMPLE/token+with=chars'
EP=http://127.0.0.1:$V_PORT
EPT=http://127.0.0.1:$T_PORT

# vstat NAME FIELD: the verifier's count; stat_is NAME FIELD VALUE.
vstat() {
  curl -s --max-time 10 "http://127.0.0.1:$(cat "$WORK/$1.port")/__verifier/stats" |
    "$PY" -c "import json,sys; print(json.load(sys.stdin)['$2'])"
}
stat_is() {
  local got
  got=$(vstat "$1" "$2")
  [ "$got" = "$3" ] || {
    echo "    verifier $1 $2: $got, expected $3"
    return 1
  }
}

# ---- data ----------------------------------------------------------------
gen() {
  "$PY" - "$@" <<'PY'
import os, random, sys
root, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
names = ["with space.jpg", "caf\u00e9.png", "plus+sign.bin", "per%cent.bin",
         "tilde~and-dash_.bin", "semi;colon.bin", "eq=uals.bin"]
sizes = [0, 1, 1000, 16384, 300 * 1024 + 7, 70000]
for i in range(count):
    sub = ["", "d1", os.path.join("d1", "d2"), "e"][i % 4]
    name = names[i] if i < len(names) else "f%03d.bin" % i
    d = os.path.join(root, sub)
    os.makedirs(d, exist_ok=True)
    size = sizes[i % len(sizes)] if i < 12 else rng.randrange(0, 40000)
    with open(os.path.join(d, name), "wb") as f:
        f.write(rng.randbytes(size))
PY
}

# stored SRC BUCKET PREFIX: every file under SRC is in s3rver's store under
# BUCKET/PREFIX/REL with the same bytes, and nothing else is there.
stored() {
  "$PY" - "$1" "$DATA/$2/$3" <<'PY'
import hashlib, os, sys
src, dst = sys.argv[1], sys.argv[2]
def tree(root, suffix):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            if not f.endswith(suffix):
                continue
            p = os.path.join(d, f)
            rel = os.path.relpath(p, root)[: len(os.path.relpath(p, root)) - len(suffix)]
            out[rel] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out
a, b = tree(src, ""), tree(dst, "._S3rver_object")
bad = sorted(set(a) ^ set(b)) + sorted(k for k in set(a) & set(b) if a[k] != b[k])
for k in bad[:5]:
    print("    not stored as sent:", k)
sys.exit(0 if a and not bad else 1)
PY
}

# report_is FILE SUBMITTED SUCCEEDED FAILED
report_is() {
  "$PY" - "$@" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
got = [s["submitted"], s["succeeded"], s["failed"]]
want = [int(x) for x in sys.argv[2:5]]
if got != want:
    print("    report", got, "expected", want)
    sys.exit(1)
PY
}

# log_all NAME PYEXPR: every verifier log line (a dict `e`) since line
# FROM (env) satisfies PYEXPR, and there is at least one.
log_all() {
  "$PY" - "$WORK/$1.jsonl" "${FROM:-0}" "$2" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])][int(sys.argv[2]):]
bad = [e for e in lines if not eval(sys.argv[3], {"e": e})]
for e in bad[:3]:
    print("    log entry fails", sys.argv[3], ":", e)
sys.exit(0 if lines and not bad else 1)
PY
}
nlines() { wc -l <"$WORK/$1.jsonl"; }

HOME1=$WORK/home
mkdir -p "$HOME1/.aws"
cat >"$HOME1/.aws/credentials" <<'EOF'
[default]
aws_access_key_id = S3RVER
aws_secret_access_key = S3RVER

[bad]
aws_access_key_id = S3RVER
aws_secret_access_key = WrongSecret/ZZtopSECRET+42
EOF
cat >"$HOME1/.aws/config" <<'EOF'
[default]
region = eu-west-2
[profile bad]
region = us-west-1
EOF

# ---- 1. a directory, credentials from ~/.aws -------------------------------
gen "$WORK/src1" 40 1
FROM=$(nlines V)
run_tool HOME="$HOME1" -- upload --to s3://bucket/run1/ "$WORK/src1" \
  --endpoint-url "$EP" --report "$WORK/r1.json" --workers 8 --threads 4
expect "1: exit 0" [ "$RC" = 0 ]
expect "1: report 40/40/0" report_is "$WORK/r1.json" 40 40 0
expect "1: every object byte-identical in s3rver's store" stored "$WORK/src1" bucket run1
expect "1: 40 requests verified by botocore, none refused" \
  [ "$(vstat V verified) $(vstat V refused)" = "40 0" ]
expect "1: each with a checked x-amz-checksum-crc32c" stat_is V crc32c 40
expect "1: region from the config file, payload hash signed over http" \
  log_all V "e['region'] == 'eu-west-2' and e['headers']['x-amz-content-sha256'] != 'UNSIGNED-PAYLOAD' and 'x-amz-checksum-crc32c' in e['signed'].split(';')"
# a GET through the verifier: what s3rver serves is what was sent
curl -s --max-time 10 -o "$WORK/get1" \
  "http://127.0.0.1:$S3PORT/bucket/run1/d1/d2/f010.bin"
expect "1: GET of an object from s3rver returns the file" \
  cmp -s "$WORK/get1" "$WORK/src1/d1/d2/f010.bin"

# ---- 2. a wrong secret ----------------------------------------------------------
mkdir -p "$WORK/src2"
for i in 1 2 3 4 5; do head -c $((i * 1000)) /dev/zero >"$WORK/src2/w$i.bin"; done
R0=$(vstat V refused)
V0=$(vstat V verified)
FROM=$(nlines V)
run_tool HOME="$HOME1" -- upload --to s3://bucket/bad "$WORK/src2" \
  --endpoint-url "$EP" --profile bad --report "$WORK/r2.json" --max-retries 3 -v
expect "2: exit 1" [ "$RC" = 1 ]
expect "2: report 5/0/5" report_is "$WORK/r2.json" 5 0 5
expect "2: each 403 once, not retried" "$PY" -c "
import json, sys
f = json.load(open('$WORK/r2.json'))['failures']
sys.exit(0 if len(f) == 5 and all(x['http_status'] == 403 and x['attempts'] == 1 for x in f) else 1)"
expect "2: exactly 5 requests refused, none verified" \
  [ "$(($(vstat V refused) - R0)) $(($(vstat V verified) - V0))" = "5 0" ]
expect "2: refused for the signature, in the profile's region" \
  log_all V "e['reason'] == 'signature mismatch' and e['region'] == 'us-west-1'"
expect "2: the report holds the error body, redacted" \
  grep -q 'SignatureDoesNotMatch' "$WORK/r2.json"
no_match() {
  local pat=$1
  shift
  ! grep -q -e "$pat" "$@"
}
no_secret() {
  ! grep -l -e 'ZZtopSECRET' -e 'S3RVER/20' -e '<CanonicalRequest>PUT' \
    -e '<SignatureProvided>[0-9a-f]' "$@"
}
expect "2: no secret, signature or canonical request in report or log" \
  no_secret "$WORK/r2.json" "$WORK/err" "$WORK/out"

# ---- 3. a session token -------------------------------------------------------------
mkdir -p "$WORK/src3"
for i in 1 2 3; do head -c $((i * 777)) /dev/urandom >"$WORK/src3/t$i.bin"; done
TOKEN='FwoGZXIvYXdzEXAMPLE/token+with=chars'
run_tool HOME="$WORK/nohome" AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER \
  AWS_SESSION_TOKEN="$TOKEN" -- upload --to s3://bucket/tok "$WORK/src3" \
  --endpoint-url "$EPT" --report "$WORK/r3.json"
expect "3: with the token: exit 0, 3 verified" \
  [ "$RC $(vstat T verified)" = "0 3" ]
expect "3: stored byte-identical" stored "$WORK/src3" bucket tok
expect "3: the token is not in the report or the log" \
  no_match FwoGZXIv "$WORK/r3.json" "$WORK/err"
run_tool HOME="$WORK/nohome" AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER \
  -- upload --to s3://bucket/tok2 "$WORK/src3" --endpoint-url "$EPT" \
  --report "$WORK/r3b.json"
expect "3: without it: exit 1, 3 refused" \
  [ "$RC $(vstat T refused)" = "1 3" ]

# ---- 4. checksums and headers ------------------------------------------------------------
M0=$(vstat V md5)
C0=$(vstat V crc32c)
FROM=$(nlines V)
run_tool HOME="$HOME1" -- upload --to s3://bucket/md5 "$WORK/src3" \
  --endpoint-url "$EP" --checksum md5 --storage-class STANDARD_IA \
  --sse AES256 --cache-control no-cache --metadata owner=alice
expect "4: --checksum md5: exit 0" [ "$RC" = 0 ]
expect "4: 3 Content-MD5 checked, no CRC32C" \
  [ "$(($(vstat V md5) - M0)) $(($(vstat V crc32c) - C0))" = "3 0" ]
expect "4: storage class, SSE and Cache-Control sent and signed" \
  log_all V "e['headers'].get('x-amz-storage-class') == 'STANDARD_IA' and e['headers'].get('x-amz-server-side-encryption') == 'AES256' and e['headers'].get('cache-control') == 'no-cache' and all(h in e['signed'] for h in ('x-amz-storage-class', 'x-amz-server-side-encryption', 'cache-control', 'content-md5'))"
expect "4: --metadata as x-amz-meta-, signed" \
  log_all V "e['headers'].get('x-amz-meta-owner') == 'alice' and 'x-amz-meta-owner' in e['signed'].split(';')"
expect "4: stored byte-identical" stored "$WORK/src3" bucket md5
FROM=$(nlines V)
run_tool HOME="$HOME1" -- upload --to s3://bucket/none "$WORK/src3" \
  --endpoint-url "$EP" --checksum none
expect "4: --checksum none: exit 0" [ "$RC" = 0 ]
expect "4: --checksum none: no checksum header" \
  log_all V "'x-amz-checksum-crc32c' not in e['headers'] and 'content-md5' not in e['headers']"

# ---- 5. gs:// and a manifest --------------------------------------------------------------
G0=$(vstat V goog_crc32c)
FROM=$(nlines V)
run_tool HOME="$WORK/nohome" GOOG_ACCESS_KEY_ID=S3RVER GOOG_SECRET_ACCESS_KEY=S3RVER \
  -- upload --to gs://other/g "$WORK/src3" --endpoint-url "$EP"
expect "5: gs://: exit 0" [ "$RC" = 0 ]
expect "5: gs://: stored byte-identical" stored "$WORK/src3" other g
expect "5: gs://: x-goog-hash crc32c checked" [ "$(($(vstat V goog_crc32c) - G0))" = 3 ]
expect "5: gs://: region auto" log_all V "e['region'] == 'auto'"
printf 'path,url\n%s,s3://bucket/m/one.bin\n%s,s3://bucket/m/deep/two%%20x.bin\n' \
  "$WORK/src3/t1.bin" "$WORK/src3/t2.bin" >"$WORK/m.csv"
run_tool HOME="$HOME1" -- upload --manifest "$WORK/m.csv" --endpoint-url "$EP"
expect "5: manifest of s3:// URLs: exit 0" [ "$RC" = 0 ]
expect "5: manifest objects at their keys" \
  cmp -s "$WORK/src3/t1.bin" "$DATA/bucket/m/one.bin._S3rver_object"
expect "5: a manifest key is taken as it is written" \
  cmp -s "$WORK/src3/t2.bin" "$DATA/bucket/m/deep/two%20x.bin._S3rver_object"
printf 'path,url\n%s,s3://bucket/stdin/three.bin\n' "$WORK/src3/t3.bin" >"$WORK/m2.csv"
C0=$(vstat V crc32c)
env -i PATH="$PATH" HOME="$HOME1" timeout 60 "$TOOL" upload --manifest - \
  --endpoint-url "$EP" <"$WORK/m2.csv" >"$WORK/out" 2>"$WORK/err"
RC=$?
expect "5: a manifest from standard input: exit 0, stored, CRC-32C sent" \
  [ "$RC $(($(vstat V crc32c) - C0))" = "0 1" ]
expect "5: the standard-input manifest's object" \
  cmp -s "$WORK/src3/t3.bin" "$DATA/bucket/stdin/three.bin._S3rver_object"

# ---- 7. multipart, every request verified ------------------------------------------------
# A file of three 8 MiB parts (the last shorter) and a small one, with the
# default --checksum crc32c: the create declares x-amz-checksum-algorithm:
# CRC32C, each part carries its own x-amz-checksum-crc32c, and the Complete
# lists each part's ChecksumCRC32C; the verifier checks all three against
# the bodies it received (S3's rules; s3rver checks none of them).
mkdir -p "$WORK/src7"
head -c $((20 * 1024 * 1024 + 5)) /dev/urandom >"$WORK/src7/big.bin"
head -c 1234 /dev/urandom >"$WORK/src7/small.bin"
V0=$(vstat V verified)
R0=$(vstat V refused)
C0=$(vstat V crc32c)
MC0=$(vstat V mp_crc_creates)
MP0=$(vstat V mp_crc_parts)
MX0=$(vstat V mp_crc_completes)
FROM=$(nlines V)
run_tool HOME="$HOME1" -- upload --to s3://bucket/mp "$WORK/src7" \
  --endpoint-url "$EP" --multipart-threshold 8MiB --part-size 8MiB \
  --report "$WORK/r7.json"
expect "7: multipart: exit 0, report 2/2/0" \
  [ "$RC $(report_is "$WORK/r7.json" 2 2 0 && echo ok)" = "0 ok" ]
expect "7: 6 requests verified (small PUT, create, 3 parts, complete), none refused" \
  [ "$(($(vstat V verified) - V0)) $(($(vstat V refused) - R0))" = "6 0" ]
expect "7: 2 POSTs and 4 PUTs, all signed over their payload" \
  "$PY" - "$WORK/V.jsonl" "$FROM" <<'PY'
import collections, json, sys
lines = [json.loads(l) for l in open(sys.argv[1])][int(sys.argv[2]):]
m = collections.Counter(e["method"] for e in lines)
ok = m == {"POST": 2, "PUT": 4} and all(
    e["headers"]["x-amz-content-sha256"] != "UNSIGNED-PAYLOAD" for e in lines)
if not ok:
    print("    ", m, [e["headers"].get("x-amz-content-sha256") for e in lines])
sys.exit(0 if ok else 1)
PY
expect "7: the single PUT and the 3 parts carry a checked x-amz-checksum-crc32c" \
  [ "$(($(vstat V crc32c) - C0))" = 4 ]
expect "7: the create declared CRC32C (signed), only the create" \
  "$PY" - "$WORK/V.jsonl" "$FROM" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])][int(sys.argv[2]):]
decl = [e for e in lines if "x-amz-checksum-algorithm" in e["headers"]]
ok = len(decl) == 1 and decl[0]["query"] == "uploads" and \
    decl[0]["headers"]["x-amz-checksum-algorithm"] == "CRC32C" and \
    "x-amz-checksum-algorithm" in decl[0]["signed"].split(";")
sys.exit(0 if ok else 1)
PY
expect "7: verifier: 1 CRC32C create, 3 parts, 1 Complete listing each part's checksum" \
  [ "$(($(vstat V mp_crc_creates) - MC0)) $(($(vstat V mp_crc_parts) - MP0)) $(($(vstat V mp_crc_completes) - MX0))" = "1 3 1" ]
expect "7: stored byte-identical" stored "$WORK/src7" bucket mp
curl -s --max-time 10 -o "$WORK/get7" "http://127.0.0.1:$S3PORT/bucket/mp/big.bin"
expect "7: the object read back from s3rver is the file" \
  cmp -s "$WORK/get7" "$WORK/src7/big.bin"

# 7b. gs:// in parts: each part's x-goog-hash crc32c (GCS's XML API checks
# it); no algorithm declared; a Complete of part numbers and ETags only.
G0=$(vstat V goog_crc32c)
MN0=$(vstat V mp_plain_completes)
MC0=$(vstat V mp_crc_creates)
FROM=$(nlines V)
run_tool HOME="$WORK/nohome" GOOG_ACCESS_KEY_ID=S3RVER GOOG_SECRET_ACCESS_KEY=S3RVER \
  -- upload --to gs://other/mp "$WORK/src7" --endpoint-url "$EP" \
  --multipart-threshold 8MiB --part-size 8MiB
expect "7b: gs:// multipart: exit 0, stored byte-identical" \
  [ "$RC $(stored "$WORK/src7" other mp && echo ok)" = "0 ok" ]
expect "7b: gs:// multipart: x-goog-hash on the small PUT and the 3 parts, no x-amz checksum" \
  [ "$(($(vstat V goog_crc32c) - G0)) $(($(vstat V mp_crc_creates) - MC0))" = "4 0" ]
expect "7b: gs:// multipart: a Complete without ChecksumCRC32C" \
  [ "$(($(vstat V mp_plain_completes) - MN0))" = 1 ]

# 7c. --checksum md5 in parts: Content-MD5 per part, no CRC32C anywhere.
M0=$(vstat V md5)
C0=$(vstat V crc32c)
MN0=$(vstat V mp_plain_completes)
run_tool HOME="$HOME1" -- upload --to s3://bucket/mpmd5 "$WORK/src7" \
  --endpoint-url "$EP" --multipart-threshold 8MiB --part-size 8MiB \
  --checksum md5
expect "7c: --checksum md5 multipart: exit 0, stored byte-identical" \
  [ "$RC $(stored "$WORK/src7" bucket mpmd5 && echo ok)" = "0 ok" ]
expect "7c: 4 Content-MD5 checked, no CRC32C, a plain Complete" \
  [ "$(($(vstat V md5) - M0)) $(($(vstat V crc32c) - C0)) $(($(vstat V mp_plain_completes) - MN0))" = "4 0 1" ]

# 7d. The journal: a run killed (SIGKILL) while part 3 is held unanswered,
# after parts 1 and 2 were journalled with their checksums; the rerun sends
# part 3 alone, and its Complete names all three parts' CRC-32C (1 and 2
# from the journal), checked against the bodies received in the first run.
start_verifier H --key S3RVER:S3RVER --hold-part 3
J7=$WORK/mp.journal
mkdir -p "$WORK/src7d"
cp "$WORK/src7/big.bin" "$WORK/src7d/big.bin"
env -i PATH="$PATH" HOME="$HOME1" timeout 60 "$TOOL" upload \
  --to s3://bucket/mpj "$WORK/src7d" --endpoint-url "http://127.0.0.1:$H_PORT" \
  --multipart-threshold 8MiB --part-size 8MiB --journal "$J7" \
  >"$WORK/out" 2>"$WORK/err" </dev/null &
UPID=$!
PIDS+=($UPID)
# Until the journal's latest multipart record names parts 1 and 2.
ok=0
for _ in $(seq 1 400); do
  rec=$(grep -a '^S1 ' "$J7" 2>/dev/null | tail -1 | "$PY" -c '
import sys, urllib.parse
f = sys.stdin.read().split(" ")
print(urllib.parse.unquote(f[5]).strip() if len(f) > 5 else "")')
  case "$rec" in
  "mp1 s3c "*" 1="*" 2="*) ok=1; break ;;
  esac
  sleep 0.05
done
kill -9 "$UPID" 2>/dev/null
wait "$UPID" 2>/dev/null
expect "7d: parts 1 and 2 journalled with their CRC-32C before the kill" [ "$ok" = 1 ]
expect "7d: nothing completed by the killed run" stat_is H mp_crc_completes 0
P0=$(vstat H mp_crc_parts)
run_tool HOME="$HOME1" -- upload --to s3://bucket/mpj "$WORK/src7d" \
  --endpoint-url "http://127.0.0.1:$H_PORT" --multipart-threshold 8MiB \
  --part-size 8MiB --journal "$J7" --report "$WORK/r7d.json"
expect "7d: the rerun: exit 0, report 1/1/0" \
  [ "$RC $(report_is "$WORK/r7d.json" 1 1 0 && echo ok)" = "0 ok" ]
expect "7d: the rerun sent part 3 alone (with its checksum), no new create" \
  [ "$(($(vstat H mp_crc_parts) - P0)) $(vstat H mp_crc_creates)" = "1 1" ]
expect "7d: its Complete named the three parts' checksums, as received" \
  [ "$(vstat H mp_crc_completes) $(vstat H refused)" = "1 0" ]
expect "7d: stored byte-identical" stored "$WORK/src7d" bucket mpj

# ---- 6. usage ----------------------------------------------------------------------------------
run_tool HOME="$HOME1" -- upload --to s3://bucket/x "$WORK/src3" --addressing sideways
expect "6: --addressing sideways: exit 2" [ "$RC" = 2 ]
run_tool HOME="$HOME1" -- upload --to s3://bucket/x "$WORK/src3" --sse-kms-key-id k
expect "6: --sse-kms-key-id without --sse aws:kms: exit 2" [ "$RC" = 2 ]
run_tool HOME="$HOME1" -- upload --to "$EP/bucket/x" "$WORK/src3" --region us-east-1
expect "6: --region with an http(s) --to: exit 2" [ "$RC" = 2 ]
run_tool HOME="$WORK/nohome" -- upload --to s3://bucket/x "$WORK/src3" --endpoint-url "$EP"
expect "6: no credentials: exit 2" [ "$RC" = 2 ]
expect "6: the message names what was looked for" \
  grep -q "AWS_ACCESS_KEY_ID.*nohome/.aws/credentials.*nohome/.aws/config" "$WORK/err"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
