#!/usr/bin/env bash
# test_cli_nginx.sh - the `bulkup upload` command against a real, independent
# PUT server: nginx's WebDAV module, started by scripts/nginx-webdav.
#
#   1. 1,000 generated files (seeded; sizes log-uniform 0 B .. 2 MiB; nested
#      directories; names with spaces, quotes, '%', '#', '?', non-ASCII) by
#      --to over HTTP: exit 0, every stored file byte-identical, report
#      counts exact.
#   2. 200 files over HTTPS with --cacert; without it, TLS failures (exit 1).
#   3. Manifests: CSV and JSON Lines, 50 files each; from standard input;
#      a failing item with and without --allow-failures.
#   4. Security and usage: non-http(s) URLs refused (exit 2, nothing
#      written), a missing PATH (exit 2, no connection made), bad option
#      values, unknown options and commands, --help, --version.
#   5. SIGINT and SIGTERM during a run: exit 130 / 143 and a complete report.
#
# Run by ctest with BULKUP_TEST_SOURCE_DIR and BULKUP_TEST_BINARY_DIR; prints
# "N passed, N failed" and exits non-zero on any failure.
set -uo pipefail

SRC=${BULKUP_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BULKUP_TEST_BINARY_DIR:-$SRC/build}
TOOL=$BIN/bulkup
NGINX_WEBDAV=$SRC/scripts/nginx-webdav

if [ ! -x "$TOOL" ]; then
  echo "test_cli_nginx: $TOOL not built" >&2
  exit 1
fi
if [ ! -x "$NGINX_WEBDAV" ]; then
  echo "test_cli_nginx: $NGINX_WEBDAV missing" >&2
  exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulkup-cli-nginx.XXXXXX")
HTTP_STATE=$WORK/nginx-http
TLS_STATE=$WORK/nginx-tls

cleanup() {
  "$NGINX_WEBDAV" stop "$HTTP_STATE" >/dev/null 2>&1 || true
  "$NGINX_WEBDAV" stop "$TLS_STATE" >/dev/null 2>&1 || true
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
# expect DESC CMD...: pass if CMD succeeds.
expect() {
  local desc=$1
  shift
  if "$@"; then pass "$desc"; else fail "$desc"; fi
}

# run_tool ARGS...: run bulkup, stderr to $WORK/err, status in $RC.
run_tool() {
  "$TOOL" "$@" >"$WORK/out" 2>"$WORK/err" </dev/null
  RC=$?
}

# gen DIR COUNT SEED MAXSIZE: seeded files of log-uniform sizes, with nested
# directories and awkward names.
gen() {
  python3 - "$@" <<'PY'
import math, os, random, sys
root, count, seed, maxsize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
odd = ["with space", "quote'single", 'quote"double', "per%cent", "hash#tag",
       "what?mark", "caf\u00e9", "plus+and&amp", "semi;colon", "x=y,z"]
for i in range(count):
    depth = rng.choice([0, 0, 1, 1, 2, 3])
    parts = ["d%02d" % rng.randrange(8) if k == 0 else "s%d" % rng.randrange(3)
             for k in range(depth)]
    if i < len(odd) * 3:
        name = "%s %04d.bin" % (odd[i % len(odd)], i)
    else:
        name = "f%04d.bin" % i
    d = os.path.join(root, *parts)
    os.makedirs(d, exist_ok=True)
    size = int(math.exp(rng.uniform(0, math.log(maxsize + 1)))) - 1
    with open(os.path.join(d, name), "wb") as f:
        f.write(rng.randbytes(size))
PY
}

# same_tree SRC DST: every file under SRC is under DST with the same bytes,
# and DST holds nothing else.
same_tree() {
  python3 - "$1" "$2" <<'PY'
import hashlib, os, sys
def tree(root):
    out = {}
    root = os.fsencode(root)
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out
a, b = tree(sys.argv[1]), tree(sys.argv[2])
missing = sorted(set(a) - set(b))
extra = sorted(set(b) - set(a))
diff = sorted(k for k in set(a) & set(b) if a[k] != b[k])
for k in missing[:5]: print("    missing:", k)
for k in extra[:5]: print("    extra:", k)
for k in diff[:5]: print("    differs:", k)
sys.exit(0 if a and not missing and not extra and not diff else 1)
PY
}

# report_is FILE SUBMITTED SUCCEEDED FAILED CANCELLED
report_is() {
  python3 - "$@" <<'PY'
import json, sys
path, want = sys.argv[1], [int(x) for x in sys.argv[2:6]]
s = json.load(open(path))["summary"]
got = [s["submitted"], s["succeeded"], s["failed"], s["cancelled"]]
if got != want:
    print("    report summary", got, "expected", want)
    sys.exit(1)
PY
}

# report_consistent FILE: succeeded + failed + cancelled == submitted, and
# the lists hold every failed and cancelled item.
report_consistent() {
  python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["summary"]
ok = (s["succeeded"] + s["failed"] + s["cancelled"] == s["submitted"]
      and len(r["failures"]) == s["failed"]
      and len(r["cancelled"]) == s["cancelled"])
if not ok:
    print("    inconsistent report:", s, len(r["failures"]), len(r["cancelled"]))
sys.exit(0 if ok else 1)
PY
}

err_has() { grep -q -- "$1" "$WORK/err"; }
rc_is() { [ "$RC" -eq "$1" ] || { echo "    exit status $RC, expected $1"; return 1; }; }

# ---- servers ----------------------------------------------------------------
if ! "$NGINX_WEBDAV" start "$HTTP_STATE" --count-connections >"$WORK/http.env" 2>"$WORK/err"; then
  fail "start nginx (http)"
  echo "$PASSED passed, $FAILED failed"
  exit 1
fi
eval "$(cat "$WORK/http.env")"
HTTP_URL=$NGINX_URL
HTTP_STORE=$NGINX_STORE
if ! "$NGINX_WEBDAV" start "$TLS_STATE" --tls >"$WORK/tls.env" 2>"$WORK/err"; then
  fail "start nginx (https)"
  echo "$PASSED passed, $FAILED failed"
  exit 1
fi
eval "$(cat "$WORK/tls.env")"
TLS_URL=$NGINX_URL
TLS_STORE=$NGINX_STORE
TLS_CA=$NGINX_CA
connections() { "$NGINX_WEBDAV" connections "$HTTP_STATE"; }

# ---- 1. a directory tree over HTTP -----------------------------------------
gen "$WORK/set1" 1000 1 $((2 * 1024 * 1024))
expect "generated 1000 files" \
  test "$(find "$WORK/set1" -type f | wc -l)" -eq 1000

run_tool upload --to "$HTTP_URL/run1" "$WORK/set1" --report "$WORK/r1.json"
expect "run1: exit 0" rc_is 0
expect "run1: every file stored byte-identical" same_tree "$WORK/set1" "$HTTP_STORE/run1"
expect "run1: report 1000 submitted, 1000 succeeded, 0 failed" \
  report_is "$WORK/r1.json" 1000 1000 0 0
expect "run1: summary line" err_has "uploaded 1000 of 1000 files"
expect "run1: no progress line when stderr is not a terminal" \
  bash -c "! grep -q 'files/s' '$WORK/err'"

# Files given directly go to PREFIX/basename; tuning options are accepted.
f1=$(find "$WORK/set1" -name 'with space*' -type f | head -1)
f2=$(find "$WORK/set1" -name 'f0500.bin' -type f | head -1)
run_tool upload --workers 3 --queue 5 --max-retries 0 --backoff-factor 0.1 \
  --connection-retries 1 --connect-timeout 2.5 --read-timeout 10 \
  --write-timeout 10 --content-md5 --data-type plain_text \
  --content-type application/x-test --progress -q \
  --to "$HTTP_URL/files/" "$f1" "$f2"
expect "files: exit 0" rc_is 0
expect "files: stored under their base names" \
  bash -c "cmp -s '$f1' '$HTTP_STORE/files/$(basename "$f1")' && cmp -s '$f2' '$HTTP_STORE/files/f0500.bin'"
expect "files: --progress draws the line even off a terminal" err_has "files/s"
expect "files: -q prints no summary" bash -c "! grep -q 'uploaded' '$WORK/err'"

# ---- 2. HTTPS ---------------------------------------------------------------
gen "$WORK/set2" 200 2 $((512 * 1024))
run_tool upload --cacert "$TLS_CA" --to "$TLS_URL/tls" "$WORK/set2" --report "$WORK/r2.json"
expect "https: exit 0 with --cacert" rc_is 0
expect "https: every file stored byte-identical" same_tree "$WORK/set2" "$TLS_STORE/tls"
expect "https: report 200/200/0" report_is "$WORK/r2.json" 200 200 0 0

mkdir -p "$WORK/set3"
printf 'x' >"$WORK/set3/one"
printf 'yy' >"$WORK/set3/two"
run_tool upload --connection-retries 0 --max-retries 0 --to "$TLS_URL/untrusted" \
  "$WORK/set3" --report "$WORK/r3.json"
expect "https without --cacert: exit 1" rc_is 1
expect "https without --cacert: failures are tls errors" \
  python3 -c "import json,sys; r=json.load(open('$WORK/r3.json')); sys.exit(0 if r['summary']['failed']==2 and all(f['error']=='tls' for f in r['failures']) else 1)"
expect "https without --cacert: nothing stored" test ! -e "$TLS_STORE/untrusted"
expect "https without --cacert: failures listed" err_has "failed: "

run_tool upload --insecure --to "$TLS_URL/insecure" "$WORK/set3"
expect "--insecure: exit 0" rc_is 0
expect "--insecure: loud warning" err_has "WARNING: --insecure"

# ---- resumable uploads against nginx: it has no such protocol ----------------
# The first large file's session start is refused (nginx: 404 to a POST),
# so it goes with one PUT, and so does every later one without asking
# again: one POST in nginx's log, one PUT per file, all stored whole.
mkdir -p "$WORK/bigset"
for i in 1 2 3; do
  python3 -c "import os,sys; sys.stdout.buffer.write(os.urandom(1536*1024+$i))" >"$WORK/bigset/b$i.bin"
done
run_tool upload --workers 1 --resumable-threshold 1M --to "$HTTP_URL/big" \
  "$WORK/bigset" --results "$WORK/big.jsonl"
expect "resumable vs nginx: exit 0" rc_is 0
expect "resumable vs nginx: 3 files stored byte-identical" same_tree "$WORK/bigset" "$HTTP_STORE/big"
expect "resumable vs nginx: one refused POST, then one PUT per file" \
  test "$(grep -c ' POST /big/' "$HTTP_STATE/access.log"):$(grep -c ' PUT /big/' "$HTTP_STATE/access.log")" = "1:3"
expect "resumable vs nginx: results say 1 attempt each, not resumable" \
  test "$(grep -c '"attempts": 1,' "$WORK/big.jsonl"):$(grep -c resumable "$WORK/big.jsonl")" = "3:0"

# ---- 3. manifests -----------------------------------------------------------
gen "$WORK/set4" 100 4 $((256 * 1024))
# CSV for the first 50 files (with a header; quoted names with commas and
# quotes), JSON Lines for the other 50, paths relative to $WORK/set4.
python3 - "$WORK/set4" "$HTTP_URL" "$WORK" <<'PY'
import csv, json, os, sys, urllib.parse
root, url, work = sys.argv[1], sys.argv[2], sys.argv[3]
files = sorted(os.path.relpath(os.path.join(d, f), root)
               for d, _, fs in os.walk(root) for f in fs)
# Give two files names a CSV has to quote.
for i, new in ((0, 'comma, "and" quotes.bin'), (60, 'json "q" name.bin')):
    os.rename(os.path.join(root, files[i]), os.path.join(root, new))
    files[i] = new
files = sorted(files)
def enc(p): return urllib.parse.quote(p, safe="/")
with open(os.path.join(work, "m.csv"), "w", newline="") as f:
    w = csv.writer(f, lineterminator="\r\n")
    w.writerow(["path", "url"])
    for p in files[:50]:
        w.writerow([p, "%s/csv/%s" % (url, enc(p))])
with open(os.path.join(work, "m.jsonl"), "w") as f:
    for p in files[50:]:
        f.write(json.dumps({"path": p, "url": "%s/jsonl/%s" % (url, enc(p)),
                            "content_type": "application/octet-stream",
                            "title": "t " + p}) + "\n")
    f.write("\n")
# The expected trees.
for name, part in (("want-csv", files[:50]), ("want-jsonl", files[50:])):
    for p in part:
        dst = os.path.join(work, name, p)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.link(os.path.join(root, p), dst)
PY
(
  cd "$WORK/set4" || exit 1
  "$TOOL" upload --manifest "$WORK/m.csv" --report "$WORK/r4.json" 2>"$WORK/err"
) </dev/null
RC=$?
expect "csv manifest: exit 0" rc_is 0
expect "csv manifest: 50 files byte-identical" same_tree "$WORK/want-csv" "$HTTP_STORE/csv"
expect "csv manifest: report 50/50/0" report_is "$WORK/r4.json" 50 50 0 0

(
  cd "$WORK/set4" || exit 1
  "$TOOL" upload --manifest "$WORK/m.jsonl" --report "$WORK/r5.json" 2>"$WORK/err"
) </dev/null
RC=$?
expect "jsonl manifest: exit 0" rc_is 0
expect "jsonl manifest: 50 files byte-identical" same_tree "$WORK/want-jsonl" "$HTTP_STORE/jsonl"
expect "jsonl manifest: report 50/50/0" report_is "$WORK/r5.json" 50 50 0 0

# From standard input (one pass), with the JSONL sniffed.
sed "s#/jsonl/#/stdin/#" "$WORK/m.jsonl" >"$WORK/m-stdin.txt"
(
  cd "$WORK/set4" || exit 1
  "$TOOL" upload --manifest - --report "$WORK/r6.json" <"$WORK/m-stdin.txt" 2>"$WORK/err"
)
RC=$?
expect "stdin manifest: exit 0" rc_is 0
expect "stdin manifest: 50 files byte-identical" same_tree "$WORK/want-jsonl" "$HTTP_STORE/stdin"

# A bad line on standard input becomes a failed item (exit 1).
{
  echo "path,url"
  echo "$WORK/set3/one,$HTTP_URL/stdin-bad/one"
  echo "this line has no url"
  echo "$WORK/set3/two,$HTTP_URL/stdin-bad/two"
} | "$TOOL" upload --manifest - --report "$WORK/r7.json" 2>"$WORK/err"
RC=$?
expect "stdin manifest with a bad line: exit 1" rc_is 1
expect "stdin manifest with a bad line: report 3/2/1" report_is "$WORK/r7.json" 3 2 1 0
expect "stdin manifest with a bad line: the line is named" err_has "line 3"

# An item the server refuses (a PUT below a file: 409), with and without
# --allow-failures.
printf '%s\n' "path,url" \
  "$WORK/set3/one,$HTTP_URL/af/one" \
  "$WORK/set3/two,$HTTP_URL/af/one/below-a-file" >"$WORK/m-af.csv"
run_tool upload --max-retries 0 --manifest "$WORK/m-af.csv" --report "$WORK/r8.json"
expect "a refused item: exit 1" rc_is 1
expect "a refused item: summary counts it" err_has "1 failed"
expect "a refused item: summary names the report" err_has "$WORK/r8.json"
run_tool upload --max-retries 0 --allow-failures --manifest "$WORK/m-af.csv"
expect "a refused item with --allow-failures: exit 0" rc_is 0

# ---- 4. security and usage --------------------------------------------------
before=$(connections)
run_tool upload --to "file://$WORK/target" "$WORK/set3"
expect "--to file://: exit 2" rc_is 2
expect "--to file://: says why" err_has "not an http:// or https:// URL"
expect "--to file://: nothing written" test ! -e "$WORK/target"

printf '%s\n' "path,url" "$WORK/set3/one,$HTTP_URL/ftp-ok/one" \
  "$WORK/set3/two,ftp://127.0.0.1/ftp-target" >"$WORK/m-ftp.csv"
run_tool upload --manifest "$WORK/m-ftp.csv"
expect "ftp:// manifest URL: exit 2" rc_is 2
expect "ftp:// manifest URL: line named" err_has "line 3: URL 'ftp://127.0.0.1/ftp-target' is not http"
expect "ftp:// manifest URL: nothing uploaded, not even the good line" \
  test ! -e "$HTTP_STORE/ftp-ok"

printf '%s\n' '{"path": "'"$WORK/set3/one"'", "url": "file://'"$WORK"'/pwned"}' >"$WORK/m-file.jsonl"
run_tool upload --manifest "$WORK/m-file.jsonl"
expect "file:// manifest URL: exit 2" rc_is 2
expect "file:// manifest URL: nothing written" test ! -e "$WORK/pwned"

run_tool upload --to "$HTTP_URL/missing" "$WORK/set3" "$WORK/no-such-file" "$WORK/set3/one"
expect "missing PATH: exit 2" rc_is 2
expect "missing PATH: named" err_has "$WORK/no-such-file: No such file or directory"
expect "missing PATH: nothing stored" test ! -e "$HTTP_STORE/missing"

printf '%s\n' "path,url" "$WORK/set3/one,$HTTP_URL/bad/one" "\"unclosed,$HTTP_URL/bad/two" >"$WORK/m-bad.csv"
run_tool upload --manifest "$WORK/m-bad.csv"
expect "unparsable manifest line: exit 2" rc_is 2
expect "unparsable manifest line: line named" err_has "m-bad.csv line 3"
printf '%s\n' "path,url" "$WORK/set3/nope,$HTTP_URL/bad/nope" >"$WORK/m-missing.csv"
run_tool upload --manifest "$WORK/m-missing.csv"
expect "manifest naming a missing file: exit 2" rc_is 2
run_tool upload --manifest "$WORK/no-such-manifest.csv"
expect "missing manifest: exit 2" rc_is 2
expect "missing manifest: named" err_has "no-such-manifest.csv"
after=$(connections)
expect "refused runs made no connection ($before -> $after)" test "$before" = "$after"
expect "refused runs stored nothing" test ! -e "$HTTP_STORE/bad"

for bad in "--workers 0" "--workers abc" "--workers 8x" "--workers 2000" \
  "--queue -1" "--max-retries -1" "--connection-retries 1.5" \
  "--backoff-factor nan" "--connect-timeout 1s" "--read-timeout -1" \
  "--write-timeout ''" "--data-type IMAGE"; do
  opt=${bad%% *}
  eval "run_tool upload $bad --to '$HTTP_URL/badopt' '$WORK/set3'"
  expect "bad value '$bad': exit 2 naming $opt" \
    bash -c "[ $RC -eq 2 ] && grep -q -- '$opt' '$WORK/err'"
done
run_tool upload --frobnicate --to "$HTTP_URL/x" "$WORK/set3"
expect "unknown option: exit 2" rc_is 2
expect "unknown option: named" err_has "unknown option '--frobnicate'"
run_tool upload --workers
expect "option without its value: exit 2" rc_is 2
# PATHs alone are the embedded default (tests/test_workflow_cli.sh); with
# nothing to upload at all, it is a usage error.
run_tool upload
expect "nothing to upload: exit 2" rc_is 2
expect "nothing to upload: says what is required" err_has "--to URL_PREFIX or --manifest FILE is required"
run_tool upload --to "$HTTP_URL/x" --manifest "$WORK/m.csv"
expect "--to with --manifest: exit 2" rc_is 2
run_tool upload --to "$HTTP_URL/x?sig=1" "$WORK/set3"
expect "--to with a query: exit 2" rc_is 2
run_tool frobnicate
expect "unknown command: exit 2" rc_is 2
run_tool
expect "no command: exit 2" rc_is 2
expect "badopt runs stored nothing" test ! -e "$HTTP_STORE/badopt"

run_tool --version
expect "--version: exit 0 and the version" \
  bash -c "[ $RC -eq 0 ] && grep -Eq '^bulkup [0-9]+\.[0-9]+\.[0-9]+$' '$WORK/out'"
run_tool --help
expect "--help: exit 0, lists upload" bash -c "[ $RC -eq 0 ] && grep -q upload '$WORK/out'"
run_tool upload --help
missing_opts=""
for o in --to --manifest --workers --queue --max-retries --backoff-factor \
  --connection-retries --connect-timeout --read-timeout --write-timeout \
  --allow-failures --report --cacert --insecure --content-md5 --data-type \
  --content-type --progress --no-progress --quiet "Exit status" Examples \
  "JSON Lines" CSV; do
  grep -q -- "$o" "$WORK/out" || missing_opts="$missing_opts $o"
done
expect "upload --help documents everything${missing_opts:+ (missing:$missing_opts)}" \
  bash -c "[ $RC -eq 0 ] && [ -z '$missing_opts' ]"
run_tool help upload
expect "help upload: exit 0" rc_is 0

# ---- 5. signals -------------------------------------------------------------
# One worker, one file at a time, so that the run is still going when the
# signal arrives; a run that finished first is not a failure of the tool.
for sig in INT TERM; do
  want=130
  [ "$sig" = TERM ] && want=143
  "$TOOL" upload --workers 1 --queue 1 --to "$HTTP_URL/sig$sig" "$WORK/set1" \
    --report "$WORK/r-$sig.json" </dev/null >/dev/null 2>"$WORK/err" &
  pid=$!
  # signal once the first file is stored: the tool has set up its signal
  # handling by then, however slow the machine (10 s at most)
  for _ in $(seq 100); do
    [ -n "$(ls -A "$HTTP_STORE/sig$sig" 2>/dev/null)" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -"$sig" "$pid" 2>/dev/null
  wait "$pid"
  RC=$?
  if [ "$RC" -eq 0 ]; then
    pass "SIG$sig: (the run finished before the signal)"
  else
    expect "SIG$sig: exit $want" rc_is "$want"
    expect "SIG$sig: report written and consistent" report_consistent "$WORK/r-$sig.json"
    expect "SIG$sig: says it was interrupted" err_has "cancelling"
  fi
done

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
