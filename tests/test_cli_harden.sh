#!/usr/bin/env bash
# test_cli_harden.sh - regression tests of `bulkup upload` for the defects of
# issue 13 that live in the CLI, the report and redaction, each against real
# servers on loopback: nginx's WebDAV (scripts/nginx-webdav) and, where a
# server must answer like S3 does to a bad signature, a small Python server
# started here (tests/tools/s3_echo.py).
#
#   credentials in error bodies (4) and redaction gaps (16); the journal key
#   of a re-signed manifest (12); CR/LF/NUL in a manifest's header values
#   (3); --report's temporary file and special targets (6); SIGTERM with an
#   idle manifest producer (7); an interrupted run's accounting (8); a
#   closed --results pipe (9); a named FIFO as --manifest; --no-progress-limit; non-UTF-8 file names in the report and
#   --results (10); the open-file limit and --workers (2).
#
# Run by ctest with BULKUP_TEST_SOURCE_DIR and BULKUP_TEST_BINARY_DIR; prints
# "N passed, N failed" and exits non-zero on any failure. About 10 s.
set -uo pipefail

SRC=${BULKUP_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BULKUP_TEST_BINARY_DIR:-$SRC/build}
TOOL=$BIN/bulkup
NGINX_WEBDAV=$SRC/scripts/nginx-webdav
PY=/usr/bin/python3

[ -x "$TOOL" ] || { echo "test_cli_harden: $TOOL not built" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulkup-cli-harden.XXXXXX")
STATE=$WORK/nginx
ECHO_PID=""

cleanup() {
  [ -n "$ECHO_PID" ] && kill "$ECHO_PID" 2>/dev/null
  [ -n "${SLOW_PID-}" ] && kill "$SLOW_PID" 2>/dev/null
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
    sed 's/^/    stderr: /' "$WORK/err" | head -20
  fi
}
expect() {
  local desc=$1
  shift
  if "$@"; then pass "$desc"; else fail "$desc"; fi
}
# run_tool ARGS...: run bulkup, stdout to $WORK/out, stderr to $WORK/err,
# status in $RC.
run_tool() {
  "$TOOL" "$@" >"$WORK/out" 2>"$WORK/err" </dev/null
  RC=$?
}
rc_is() { [ "$RC" -eq "$1" ] || { echo "    exit status $RC, expected $1"; return 1; }; }
err_has() { grep -q -- "$1" "$WORK/err"; }
# nowhere STRING FILE...: STRING is in none of the files.
nowhere() {
  local s=$1 f
  shift
  for f in "$@"; do
    if grep -a -q -F -- "$s" "$f"; then
      echo "    '$s' found in $f:"
      grep -a -F -- "$s" "$f" | head -3 | sed 's/^/      /'
      return 1
    fi
  done
}
# py CODE ARGS...: run Python code (exit status is the check's).
py() {
  local code=$1
  shift
  "$PY" -c "$code" "$@"
}
# requests: the requests nginx has logged so far (--count-connections).
requests() { wc -l <"$STATE/access.log"; }

if ! "$NGINX_WEBDAV" start "$STATE" --count-connections >"$WORK/nginx.env" 2>"$WORK/err"; then
  fail "start nginx"
  echo "$PASSED passed, $FAILED failed"
  exit 1
fi
eval "$(cat "$WORK/nginx.env")"

# The S3-like server: every PUT answers 403 SignatureDoesNotMatch, echoing
# the request's signature and credential as S3 does; it logs each request
# line to $WORK/echo.log.
"$PY" "$SRC/tests/tools/s3_echo.py" "$WORK/echo.log" >"$WORK/echo.port" 2>"$WORK/echo.err" &
ECHO_PID=$!
for _ in $(seq 100); do
  [ -s "$WORK/echo.port" ] && break
  sleep 0.05
done
ECHO_URL=http://127.0.0.1:$(head -1 "$WORK/echo.port")

mkdir -p "$WORK/files"
for i in 0 1 2 3 4; do
  head -c $((1000 + i)) /dev/urandom >"$WORK/files/f$i.bin"
done

# ---- 4 and 16: redaction of what servers echo, userinfo, encoded names -------
SIG=SIGSECRETf00dfeed0123
AKID=AKIDSECRETEXAMPLE7
TOKEN=tok3nSECRETghp99
{
  echo "path,url"
  echo "$WORK/files/f0.bin,$ECHO_URL/b/k0?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=$AKID%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Signature=$SIG"
  echo "$WORK/files/f1.bin,$ECHO_URL/b/k1?X%2DAmz%2DCredential=$AKID%2Fx&X%2DAmz%2DSignature=$SIG"
  echo "$WORK/files/f2.bin,http://$TOKEN@127.0.0.1:${ECHO_URL##*:}/b/k2"
} >"$WORK/m4.csv"
run_tool upload --manifest "$WORK/m4.csv" --report "$WORK/r4.json" \
  --results "$WORK/res4.jsonl" -vv
expect "4: exit 1 (every PUT refused)" rc_is 1
cp "$WORK/err" "$WORK/err4"
expect "4: the server did receive the signature, credential and token" \
  bash -c "grep -q '$SIG' '$WORK/echo.log' && grep -q '$AKID' '$WORK/echo.log' && grep -q '$TOKEN' '$WORK/echo.log'"
expect "4: report keeps the excerpts, redacted" py '
import json, sys
r = json.load(open(sys.argv[1]))
f = {x["index"]: x for x in r["failures"]}
assert len(f) == 3 and all(x["http_status"] == 403 for x in f.values()), f
for i in (0, 1):
    e = f[i]["response_excerpt"]
    assert "<Code>SignatureDoesNotMatch</Code>" in e, e
    assert "<SignatureProvided>REDACTED</SignatureProvided>" in e, e
    assert "<AWSAccessKeyId>REDACTED</AWSAccessKeyId>" in e, e
    # the canonical request S3 echoes holds the credential: redacted whole
    assert "<CanonicalRequest>REDACTED</CanonicalRequest>" in e, e
' "$WORK/r4.json"
expect "4/16: report URLs redacted (encoded names, lone userinfo)" py '
import json, sys
f = {x["index"]: x["url"] for x in json.load(open(sys.argv[1]))["failures"]}
assert f[0].endswith("X-Amz-Signature=REDACTED") and "X-Amz-Credential=REDACTED" in f[0], f[0]
assert f[1].endswith("?X%2DAmz%2DCredential=REDACTED&X%2DAmz%2DSignature=REDACTED"), f[1]
assert f[2].startswith("http://REDACTED@127.0.0.1:"), f[2]
' "$WORK/r4.json"
for s in "$SIG" "$AKID" "$TOKEN"; do
  expect "4/16: '$s' is in no report, results or log line" \
    nowhere "$s" "$WORK/r4.json" "$WORK/res4.jsonl" "$WORK/err4" "$WORK/out"
done

# ---- 12: the journal key of a re-signed manifest ----------------------------
# resign DATE SIG EXTRA: a manifest of the five files with GCS-style V4
# signing parameters (nginx ignores the query; the object is the path).
resign() {
  echo "path,url"
  for i in 0 1 2 3 4; do
    echo "$WORK/files/f$i.bin,$NGINX_URL/j/f$i.bin?${3}X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=sa%40p.iam%2F$1%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=${1}T000000Z&X-Goog-Expires=900&X-Goog-SignedHeaders=host&X-Goog-Signature=$2$i"
  done
}
resign 20240101 aaaa "" >"$WORK/j1.csv"
resign 20240102 bbbb "" >"$WORK/j2.csv"
resign 20240103 cccc "generation=7&" >"$WORK/j3.csv"
before=$(requests)
run_tool upload --manifest "$WORK/j1.csv" --journal "$WORK/j.journal"
expect "12: first run exit 0" rc_is 0
expect "12: first run sent 5 PUTs" [ $(($(requests) - before)) -eq 5 ]
before=$(requests)
run_tool upload --manifest "$WORK/j2.csv" --journal "$WORK/j.journal"
expect "12: re-signed manifest: exit 0" rc_is 0
expect "12: re-signed manifest: every file skipped" err_has "skipped 5 files recorded as uploaded"
expect "12: re-signed manifest: no request sent" [ $(($(requests) - before)) -eq 0 ]
before=$(requests)
run_tool upload --manifest "$WORK/j3.csv" --journal "$WORK/j.journal"
expect "12: another query parameter (generation=7): uploaded again" \
  [ $(($(requests) - before)) -eq 5 ]
journal_clean() { grep -q /j/f0.bin "$WORK/j.journal" && ! grep -q aaaa0 "$WORK/j.journal"; }
expect "12: the journal names the objects, without signatures" journal_clean

# ---- 3: CR, LF or NUL in a manifest's header values -------------------------
# A content_type with CRLF would end the header and add X-Injected (or a
# second request). A regular-file manifest is refused whole (exit 2,
# nothing sent); one read once from standard input fails that line only.
printf 'path,url,content_type\n%s,%s,"text/plain\r\nX-Injected: 1"\n%s,%s,text/plain\n' \
  "$WORK/files/f0.bin" "$NGINX_URL/h/a.bin" "$WORK/files/f1.bin" "$NGINX_URL/h/b.bin" >"$WORK/h.csv"
printf '{"path": "%s", "url": "%s", "content_type": "text/plain\\nX-Injected: 1"}\n' \
  "$WORK/files/f0.bin" "$NGINX_URL/h/c.bin" >"$WORK/h.jsonl"
printf '{"path": "%s", "url": "%s", "content_type": "a\\u0000b"}\n' \
  "$WORK/files/f0.bin" "$NGINX_URL/h/d.bin" >"$WORK/h0.jsonl"
before=$(requests)
run_tool upload --manifest "$WORK/h.csv"
expect "3: CSV content_type with CRLF: exit 2" rc_is 2
expect "3: CSV: the line is named" err_has "h.csv line 2: content_type holds a line break"
run_tool upload --manifest "$WORK/h.jsonl"
expect "3: JSONL content_type with LF: exit 2" rc_is 2
run_tool upload --manifest "$WORK/h0.jsonl"
expect "3: JSONL content_type with NUL: exit 2" rc_is 2
expect "3: nothing sent" [ $(($(requests) - before)) -eq 0 ]
before=$(requests)
"$TOOL" upload --manifest - --report "$WORK/r3.json" <"$WORK/h.csv" >"$WORK/out" 2>"$WORK/err"
RC=$?
expect "3: from standard input: exit 1" rc_is 1
expect "3: from standard input: only the good line was sent" [ $(($(requests) - before)) -eq 1 ]
expect "3: from standard input: the bad line is a failed input item" py '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["summary"]["succeeded"] == 1 and r["summary"]["failed"] == 1, r["summary"]
f = r["failures"][0]
assert f["error"] == "input" and "content_type holds a line break" in f["message"], f
' "$WORK/r3.json"
expect "3: no object stored for the bad line" [ ! -e "$NGINX_STORE/h/a.bin" ]
expect "3: the good line stored" cmp -s "$WORK/files/f1.bin" "$NGINX_STORE/h/b.bin"
run_tool upload --content-type "$(printf 'a\tb\x01')" --to "$NGINX_URL/h" "$WORK/files/f0.bin"
expect "3: --content-type with a control character: exit 2" rc_is 2

# ---- 6: --report and report merge -o: where the bytes go ----------------------
# The old temporary name was TARGET.tmp.<pid>: a symlink planted there made
# bulkup overwrite the link's target. Run under `exec` so that the pid is
# known in advance, and plant the link at that name.
mkdir -p "$WORK/shared"
echo "victim's content" >"$WORK/victim"
is_report() { py 'import json,sys; r = json.load(open(sys.argv[1])); assert r["summary"]["submitted"] == 1, r' "$1"; }
bash -c 'ln -s "$1/victim" "$1/shared/r.json.tmp.$$"; exec "$2" upload --to "$3/r6" --report "$1/shared/r.json" "$1/files/f0.bin"' \
  _ "$WORK" "$TOOL" "$NGINX_URL" >"$WORK/out" 2>"$WORK/err"
RC=$?
expect "6: --report with a planted temporary symlink: exit 0" rc_is 0
expect "6: the link's target is untouched" bash -c "[ \"\$(cat '$WORK/victim')\" = \"victim's content\" ]"
expect "6: the report is written" is_report "$WORK/shared/r.json"
expect "6: no temporary file left" bash -c "[ \$(ls -A '$WORK/shared' | wc -l) -eq 2 ]"
# report merge -o, the same way.
bash -c 'ln -s "$1/victim" "$1/shared/m.json.tmp.$$"; exec "$2" report merge -o "$1/shared/m.json" "$1/shared/r.json"' \
  _ "$WORK" "$TOOL" >"$WORK/out" 2>"$WORK/err"
RC=$?
expect "6: report merge -o with a planted symlink: exit 0" rc_is 0
expect "6: merge: the link's target is untouched" bash -c "[ \"\$(cat '$WORK/victim')\" = \"victim's content\" ]"
expect "6: merge: the merged report is written" is_report "$WORK/shared/m.json"
# A symlink at the target itself is replaced by the file, its target kept.
ln -s "$WORK/victim" "$WORK/shared/link.json"
run_tool upload --to "$NGINX_URL/r6" --report "$WORK/shared/link.json" "$WORK/files/f0.bin"
expect "6: a symlink at the target: replaced by the report" \
  bash -c "[ ! -L '$WORK/shared/link.json' ] && [ \"\$(cat '$WORK/victim')\" = \"victim's content\" ]"
expect "6: ... which is the report" is_report "$WORK/shared/link.json"
# '-' and /dev/stdout: standard output (here a regular file: /dev/stdout is
# not replaced, and the report is not written over what is already there).
"$TOOL" upload --to "$NGINX_URL/r6" --report - "$WORK/files/f0.bin" >"$WORK/stdout6" 2>"$WORK/err" </dev/null
RC=$?
expect "6: --report -: exit 0" rc_is 0
expect "6: --report -: the report is on standard output" is_report "$WORK/stdout6"
# /dev/stdout is tried in a private mount namespace whose /dev is a copy
# when running as root: a broken bulkup would replace the machine's
# /dev/stdout otherwise (it did, at 4b4d207). Not root, /dev is not ours to
# change, so the real one is safe.
stdout_target() { # stdout_target CMD...: run CMD with /dev/stdout guarded
  if [ "$(id -u)" -ne 0 ]; then
    "$@"
    return
  fi
  rm -rf "$WORK/dev" && mkdir "$WORK/dev" &&
    cp -a /dev/null /dev/zero /dev/urandom /dev/random "$WORK/dev/" &&
    ln -s /proc/self/fd/0 "$WORK/dev/stdin" &&
    ln -s /proc/self/fd/1 "$WORK/dev/stdout" &&
    ln -s /proc/self/fd/2 "$WORK/dev/stderr" &&
    ln -s /proc/self/fd "$WORK/dev/fd" || return 99
  unshare -m sh -c 'mount --bind "$0" /dev && exec "$@"' "$WORK/dev" "$@"
}
{ echo "first line"; stdout_target "$TOOL" upload --to "$NGINX_URL/r6" --report /dev/stdout "$WORK/files/f0.bin" 2>"$WORK/err" </dev/null; } >"$WORK/stdout6b"
RC=$?
if [ "$RC" -eq 99 ] || grep -q "unshare" "$WORK/err"; then
  echo "# no private mount namespace: /dev/fd/1 instead of /dev/stdout"
  { echo "first line"; "$TOOL" upload --to "$NGINX_URL/r6" --report /dev/fd/1 "$WORK/files/f0.bin" 2>"$WORK/err" </dev/null; } >"$WORK/stdout6b"
else
  expect "6: /dev/stdout is still a symlink" test -L "$( [ "$(id -u)" -eq 0 ] && echo "$WORK/dev/stdout" || echo /dev/stdout)"
fi
expect "6: --report /dev/stdout: what was on stdout stays, the report follows" \
  py 'import json,sys; t = open(sys.argv[1]).read(); assert t.startswith("first line\n"), t; assert json.loads(t[11:])["summary"]["submitted"] == 1' "$WORK/stdout6b"
run_tool report merge -o - "$WORK/shared/r.json"
expect "6: report merge -o -: on standard output" is_report "$WORK/out"
# A FIFO is written into (a reader gets the report), not replaced.
mkfifo "$WORK/fifo"
timeout 20 cat "$WORK/fifo" >"$WORK/fifo.out" &
reader=$!
run_tool upload --to "$NGINX_URL/r6" --report "$WORK/fifo" "$WORK/files/f0.bin"
wait "$reader"
expect "6: --report FIFO: exit 0" rc_is 0
expect "6: --report FIFO: still a FIFO" test -p "$WORK/fifo"
expect "6: --report FIFO: the reader got the report" is_report "$WORK/fifo.out"
# A device node (as root: a private null device, never the real /dev/null).
if [ "$(id -u)" -eq 0 ] && mknod "$WORK/null" c 1 3 2>/dev/null; then
  run_tool upload --to "$NGINX_URL/r6" --report "$WORK/null" "$WORK/files/f0.bin"
  expect "6: --report DEVICE: exit 0" rc_is 0
  expect "6: --report DEVICE: still a character device" test -c "$WORK/null"
  run_tool report merge -o "$WORK/null" "$WORK/shared/r.json"
  expect "6: merge -o DEVICE: still a character device" test -c "$WORK/null"
fi
run_tool upload --to "$NGINX_URL/r6" --report - --results - "$WORK/files/f0.bin"
expect "6: --report - with --results -: refused (exit 2)" rc_is 2

# ---- 9: a closed --results pipe -------------------------------------------------
# 1,000 records (~250 KB) cannot all fit in a pipe (64 KiB) and head's read:
# bulkup must write after head has exited, whatever the timing.
mkdir -p "$WORK/many"
for i in $(seq -w 1 1000); do printf '%s' "$i" >"$WORK/many/file-with-a-long-name-$i.txt"; done
"$TOOL" upload --to "$NGINX_URL/p9" --results - --report "$WORK/r9.json" "$WORK/many" 2>"$WORK/err" </dev/null | head -1 >"$WORK/out"
RC=${PIPESTATUS[0]}
expect "9: --results - | head -1: exit 0 (was 141, SIGPIPE)" rc_is 0
expect "9: head got the first record" py 'import json,sys; assert json.loads(open(sys.argv[1]).read())["status"] == "succeeded"' "$WORK/out"
expect "9: one warning that the results stream ended" \
  [ "$(grep -c 'the reader closed the pipe' "$WORK/err")" -eq 1 ]
expect "9: the report is written: 1000 succeeded" \
  py 'import json,sys; s = json.load(open(sys.argv[1]))["summary"]; assert (s["submitted"], s["succeeded"]) == (1000, 1000), s' "$WORK/r9.json"
expect "9: every file stored" [ "$(find "$NGINX_STORE/p9" -type f | wc -l)" -eq 1000 ]
printf 'path,url\n' >"$WORK/m9.csv"
for f in "$WORK"/many/*; do printf '%s,%s/m9/%s\n' "$f" "$NGINX_URL" "${f##*/}"; done >>"$WORK/m9.csv"
"$TOOL" upload --manifest "$WORK/m9.csv" --results - --report "$WORK/r9m.json" 2>"$WORK/err" </dev/null | head -1 >"$WORK/out"
RC=${PIPESTATUS[0]}
expect "9: --manifest, --results - | head -1: exit 0" rc_is 0
expect "9: --manifest: the report is written: 1000 succeeded" \
  py 'import json,sys; s = json.load(open(sys.argv[1]))["summary"]; assert (s["submitted"], s["succeeded"]) == (1000, 1000), s' "$WORK/r9m.json"

# ---- 10: non-UTF-8 file names ---------------------------------------------------
# Names that are not UTF-8 (Latin-1, stray bytes, an overlong '/'), and one
# that is: the report (items refused by the S3-like server) and --results
# must be valid UTF-8 JSON, and path_b64 / title_b64 give the exact bytes.
mkdir -p "$WORK/names"
for n in 'caf\xe9.bin' 'bad-\xff\xfe.bin' 'over\xc0\xaflong.bin' 'ok-\xc3\xa9.bin'; do
  printf 'x' >"$WORK/names/$(printf "$n")"
done
names_ok() { # names_ok REPORT_OR_RESULTS KIND: check every record
  py '
import base64, json, os, sys
path, kind = sys.argv[1], sys.argv[2]
raw = open(path, "rb").read()
text = raw.decode("utf-8")  # strict: fails on any byte that is not UTF-8
recs = json.loads(text)["failures"] if kind == "report" else [json.loads(l) for l in text.splitlines()]
d = os.fsencode(sys.argv[3]); want = {os.path.join(d, n) for n in os.listdir(d)}
want = {w.decode("latin-1") for w in want}
got = set()
for r in recs:
    if "path_b64" in r:
        b = base64.b64decode(r["path_b64"], validate=True)
        t = base64.b64decode(r["title_b64"], validate=True)
        assert b.endswith(b"/" + t), (b, t)
        assert "\ufffd" in r["path"], r["path"]
    else:
        b = r["path"].encode("utf-8")
        assert "title_b64" not in r, r
    got.add(b.decode("latin-1"))
assert got == want and len(recs) == 4, (sorted(got), sorted(want))
' "$1" "$2" "$WORK/names"
}
run_tool upload --to "$ECHO_URL/n" --report "$WORK/r10.json" --results "$WORK/res10.jsonl" "$WORK/names"
expect "10: refused by the server: exit 1" rc_is 1
expect "10: the report is UTF-8 JSON; path_b64 gives each name's bytes" names_ok "$WORK/r10.json" report
expect "10: --results is UTF-8 JSON Lines; path_b64 gives each name's bytes" names_ok "$WORK/res10.jsonl" results
run_tool upload --to "$NGINX_URL/n10" --results - "$WORK/names"
expect "10: to nginx: exit 0" rc_is 0
expect "10: --results - (succeeded items) is UTF-8 JSON with path_b64" names_ok "$WORK/out" results

# ---- 2: the open-file limit and --workers ---------------------------------------
# A low soft limit is raised to the hard one at start: 200 transfers under
# a soft limit of 256 (poll() got EINVAL past it, and every item failed).
# When even the hard limit is too low, the run is refused at start.
mkdir -p "$WORK/fd"
for i in $(seq 1 400); do printf '%s' "$i" >"$WORK/fd/f$i"; done
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 1024 ]; then
  before=$(requests)
  (ulimit -Sn 256 && exec "$TOOL" upload --workers 200 --to "$NGINX_URL/fd" --report "$WORK/r2.json" "$WORK/fd") >"$WORK/out" 2>"$WORK/err"
  RC=$?
  expect "2: soft limit 256, --workers 200: exit 0" rc_is 0
  expect "2: 400 succeeded" py 'import json,sys; s = json.load(open(sys.argv[1]))["summary"]; assert (s["succeeded"], s["failed"]) == (400, 0), s' "$WORK/r2.json"
  expect "2: every file stored" [ "$(find "$NGINX_STORE/fd" -type f | wc -l)" -eq 400 ]
  before=$(requests)
  (ulimit -n 256 && exec "$TOOL" upload --workers 200 --to "$NGINX_URL/fd2" "$WORK/fd") >"$WORK/out" 2>"$WORK/err"
  RC=$?
  expect "2: hard limit 256, --workers 200: refused (exit 2)" rc_is 2
  expect "2: the message says why and what fits" err_has "needs up to 666 open files, but the limit is 256 (ulimit -n; its hard limit is 256): use --workers 63 or fewer"
  expect "2: nothing sent" [ "$(requests)" -eq "$before" ]
  (ulimit -n 256 && exec "$TOOL" upload --workers 63 --to "$NGINX_URL/fd3" "$WORK/fd") >"$WORK/out" 2>"$WORK/err"
  RC=$?
  expect "2: hard limit 256, --workers 63 (what fits): exit 0" rc_is 0
else
  echo "# hard open-file limit $hard < 1024: the limit cases are not run"
fi

# ---- 7: SIGTERM while the manifest producer is idle ------------------------------
# The producer sends two lines and then nothing, keeping the pipe open: the
# main thread waits for a third line. SIGTERM must end the run (143) with
# its report, without waiting for the producer.
# wait_for COND_CMD...: up to 20 s for a condition (an event), else fail.
wait_for() {
  local i
  for i in $(seq 400); do
    "$@" && return 0
    sleep 0.05
  done
  return 1
}
gone() { ! kill -0 "$1" 2>/dev/null; }
mkfifo "$WORK/producer"
"$TOOL" upload --manifest - --report "$WORK/r7.json" <"$WORK/producer" >"$WORK/out" 2>"$WORK/err" &
bpid=$!
exec 7>"$WORK/producer"
before=$(requests)
printf 'path,url\n%s,%s/p7/a\n%s,%s/p7/b\n' "$WORK/files/f0.bin" "$NGINX_URL" "$WORK/files/f1.bin" "$NGINX_URL" >&7
sent_since() { [ $(($(requests) - before)) -ge "$1" ]; }
expect "7: the two lines the producer sent are uploaded" wait_for sent_since 2
kill -TERM "$bpid"
expect "7: SIGTERM ends the run although the producer keeps the pipe open" wait_for gone "$bpid"
if gone "$bpid"; then
  wait "$bpid"
  RC=$?
else
  kill -KILL "$bpid"
  RC=-1
fi
exec 7>&-
expect "7: exit 143" rc_is 143
# nginx logs a request once it has answered it; the client may not have
# read that answer when the signal comes (the item is then cancelled).
expect "7: the report is written: both lines submitted, none failed" py 'import json,sys; s = json.load(open(sys.argv[1]))["summary"]; assert (s["submitted"], s["input"], s["failed"], s["succeeded"] + s["cancelled"]) == (2, 2, 0, 2), s' "$WORK/r7.json"
no_input_error() { ! err_has "input error" && ! err_has "interrupted:"; }
expect "7: the interrupted read is not reported as an input error" no_input_error

# ---- a named FIFO as --manifest ----------------------------------------------------
# Read once, as a pipe on standard input is. With no writer yet, open() would
# wait for one out of reach of SIGTERM: the manifest is opened without
# waiting, and SIGTERM ends the run (143) with its report.
mkfifo "$WORK/m.fifo.csv"
"$TOOL" upload --manifest "$WORK/m.fifo.csv" --report "$WORK/rf.json" >"$WORK/out" 2>"$WORK/err" </dev/null &
bpid=$!
# The tool has it open (its signal thread runs by then); no writer comes.
fifo_open() { ls -l "/proc/$1/fd" 2>/dev/null | grep -q -F -- "$WORK/m.fifo.csv"; }
expect "fifo: the tool opens a FIFO manifest that has no writer" wait_for fifo_open "$bpid"
kill -TERM "$bpid"
expect "fifo: SIGTERM ends a run whose FIFO manifest never had a writer" wait_for gone "$bpid"
if gone "$bpid"; then
  wait "$bpid"
  RC=$?
else
  kill -KILL "$bpid"
  RC=-1
fi
expect "fifo: exit 143" rc_is 143
expect "fifo: the report is written: nothing submitted" py 'import json,sys; s = json.load(open(sys.argv[1]))["summary"]; assert (s["submitted"], s["input"], s["failed"]) == (0, 0, 0), s' "$WORK/rf.json"
# With a writer, the FIFO's lines are uploaded (read once: it cannot be
# read twice), exit 0.
before=$(requests)
"$TOOL" upload --manifest "$WORK/m.fifo.csv" --report "$WORK/rf2.json" >"$WORK/out" 2>"$WORK/err" </dev/null &
bpid=$!
printf 'path,url\n%s,%s/pf/a\n%s,%s/pf/b\n' "$WORK/files/f0.bin" "$NGINX_URL" "$WORK/files/f1.bin" "$NGINX_URL" >"$WORK/m.fifo.csv"
wait_for gone "$bpid" || kill -KILL "$bpid"
wait "$bpid"
RC=$?
expect "fifo: a FIFO manifest with a writer: exit 0" rc_is 0
expect "fifo: both lines uploaded, 2 requests" py 'import json,sys; s = json.load(open(sys.argv[1]))["summary"]; assert (s["submitted"], s["succeeded"]) == (2, 2), s; assert int(sys.argv[2]) == 2, sys.argv[2]' "$WORK/rf2.json" "$(($(requests) - before))"
expect "fifo: stored byte-identical" cmp "$WORK/files/f1.bin" "$NGINX_STORE/pf/b"

# ---- --no-progress-limit: the outage limit, from the command line ------------------
# A dead server (a port nothing listens on), 40 files, no backoff and
# retry limits out of reach: the shared budget runs dry at once, the run is
# in an outage (probes only), and after --no-progress-limit 1 s every file
# fails, retry_budget, "nothing has succeeded for N s" (N >= 1), exit 1.
mkdir -p "$WORK/np"
for i in $(seq 40); do echo "np $i" >"$WORK/np/f$i"; done
DEAD_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
np_args=(upload --to "http://127.0.0.1:$DEAD_PORT/np" --workers 4 --backoff-factor 0 --connection-retries 1000 --max-retries 1000)
run_tool "${np_args[@]}" --no-progress-limit 1 --report "$WORK/rnp.json" "$WORK/np"
expect "no-progress-limit 1: exit 1" rc_is 1
expect "no-progress-limit 1: all 40 failed, each 'nothing has succeeded for N s' (N >= 1)" py '
import json, re, sys
r = json.load(open(sys.argv[1]))
s = r["summary"]
assert (s["submitted"], s["failed"], s["succeeded"], s["cancelled"]) == (40, 40, 0, 0), s
assert len(r["failures"]) == 40
for f in r["failures"]:
    m = re.search(r"nothing has succeeded for (\d+) s \(no_progress_limit\)$", f["message"])
    assert f["error"] == "retry_budget" and m and int(m.group(1)) >= 1, f
' "$WORK/rnp.json"
# 0: wait for ever. Still running after 3 s (the default, 300 s, would be
# too); SIGTERM ends it, 143: the files started are cancelled, the others
# never started; none failed.
"$TOOL" "${np_args[@]}" --no-progress-limit 0 --report "$WORK/rnp0.json" "$WORK/np" >"$WORK/out" 2>"$WORK/err" </dev/null &
bpid=$!
sleep 3
expect "no-progress-limit 0: still waiting after 3 s" kill -0 "$bpid"
kill -TERM "$bpid"
wait_for gone "$bpid" || kill -KILL "$bpid"
wait "$bpid"
RC=$?
expect "no-progress-limit 0: SIGTERM: exit 143" rc_is 143
expect "no-progress-limit 0: no file given up for the limit" py '
import json, sys
r = json.load(open(sys.argv[1]))
s = r["summary"]
assert s["input"] == 40 and s["submitted"] + s["not_started"] == 40, s
assert s["failed"] == 0 and s["cancelled"] == s["submitted"], s
assert not any("no_progress_limit" in f["message"] for f in r["failures"]), r["failures"][:2]
' "$WORK/rnp0.json"
run_tool upload --to "http://127.0.0.1:$DEAD_PORT/np" --no-progress-limit -1 "$WORK/np"
expect "no-progress-limit -1: exit 2" rc_is 2

# ---- 8: an interrupted run accounts for its whole input ---------------------------
# 3,000 files to a slow server (each PUT answered after 20 ms, 4 at a time):
# SIGTERM once 100 have been received (some of them are still in flight). The report and the summary line
# count every input item: submitted (succeeded + failed + cancelled) plus
# never started equals 3,000.
mkdir -p "$WORK/many3k"
for i in $(seq 1 3000); do printf '%s' "$i" >"$WORK/many3k/f$i"; done
"$PY" "$SRC/tests/tools/s3_echo.py" "$WORK/slow.log" --ok 0.02 >"$WORK/slow.port" 2>"$WORK/slow.err" &
SLOW_PID=$!
port_known() { [ -s "$WORK/slow.port" ]; }
wait_for port_known
SLOW_URL=http://127.0.0.1:$(head -1 "$WORK/slow.port")
"$TOOL" upload --workers 4 --to "$SLOW_URL/s8" --report "$WORK/r8.json" "$WORK/many3k" >"$WORK/out" 2>"$WORK/err" </dev/null &
bpid=$!
answered() { [ -f "$WORK/slow.log" ] && [ "$(wc -l <"$WORK/slow.log")" -ge 100 ]; }
expect "8: 100 PUTs received" wait_for answered
kill -TERM "$bpid"
wait_for gone "$bpid" || kill -KILL "$bpid"
wait "$bpid"
RC=$?
kill "$SLOW_PID" 2>/dev/null
expect "8: exit 143" rc_is 143
expect "8: the report accounts for all 3000 input items" py '
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
assert s["input"] == 3000, s
assert s["submitted"] + s["skipped"] + s["not_started"] == 3000, s
assert s["succeeded"] + s["failed"] + s["cancelled"] == s["submitted"], s
assert s["not_started"] > 0 and s["succeeded"] > 0, s
' "$WORK/r8.json"
summary_adds_up() {
  py '
import json, re, sys
s = json.load(open(sys.argv[1]))["summary"]
line = [l for l in open(sys.argv[2]) if "uploaded " in l][0]
m = re.search(r"uploaded (\d+) of (\d+) files .* (\d+) cancelled, (\d+) not started", line)
assert m, line
assert tuple(map(int, m.groups())) == (s["succeeded"], 3000, s["cancelled"], s["not_started"]), (line, s)
' "$WORK/r8.json" "$WORK/err"
}
expect "8: the summary line says 'of 3000 files' and how many never started" summary_adds_up

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
