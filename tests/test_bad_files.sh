#!/usr/bin/env bash
# test_bad_files.sh - awkward files through `bulkup upload` to nginx, each
# with its documented result:
#   - an empty file: uploaded, stored empty;
#   - names with a space, quotes, a newline, a backslash and non-UTF-8
#     bytes: uploaded, percent-encoded, stored under the decoded name;
#   - a file the user cannot read (the tool runs as 'nobody'): named as a
#     PATH, bad input (exit 2, nothing uploaded); met in a directory walk,
#     a failed item of kind "file", "Permission denied", the others still
#     uploaded, exit 1;
#   - a 5 GiB sparse file (over 4 GiB: 64-bit sizes end to end): stored
#     byte-identical (skipped with exit 77 when /dev/shm lacks the room).
# Prints "N passed, N failed"; exit non-zero on failure.
set -uo pipefail

SRC=${BULKUP_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BULKUP_TEST_BINARY_DIR:-$SRC/build}
TOOL=$BIN/bulkup
NGINX_WEBDAV=$SRC/scripts/nginx-webdav

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulkup-badfiles.XXXXXX")
chmod 755 "$WORK"
STATE=$WORK/nginx
cleanup() {
  "$NGINX_WEBDAV" stop "$STATE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PASSED=0
FAILED=0
check() {
  if eval "$2"; then PASSED=$((PASSED + 1)); echo "ok - $1"; else
    FAILED=$((FAILED + 1)); echo "FAIL - $1"; sed 's/^/    /' "$WORK/err" 2>/dev/null | head -10; fi
}

eval "$("$NGINX_WEBDAV" start "$STATE")" || { echo "nginx did not start"; exit 1; }

# ---- names and an empty file ------------------------------------------------
mkdir -p "$WORK/names"
: >"$WORK/names/empty.bin"
printf 'space' >"$WORK/names/a b.txt"
printf 'quotes' >"$WORK/names/q\"uo'te.txt"
printf 'newline' >"$WORK/names/new
line.txt"
printf 'backslash' >"$WORK/names/back\\slash.txt"
printf 'latin1' >"$WORK/names/$(printf 'caf\xe9').txt"
printf 'percent' >"$WORK/names/100%.txt"
"$TOOL" upload --to "$NGINX_URL/names" "$WORK/names" --report "$WORK/r1.json" -q 2>"$WORK/err"
rc=$?
check "awkward names: exit 0" '[ "$rc" -eq 0 ]'
check "awkward names: report 7 of 7" "python3 -c \"import json,sys; s=json.load(open('$WORK/r1.json'))['summary']; sys.exit(0 if s['succeeded']==7 and s['failed']==0 else 1)\""
check "awkward names: every file stored byte-identical under its own name" \
  'diff -r "$WORK/names" "$NGINX_STORE/names" >/dev/null'
check "empty file stored empty" '[ -f "$NGINX_STORE/names/empty.bin" ] && [ ! -s "$NGINX_STORE/names/empty.bin" ]'

# ---- a file the user cannot read ---------------------------------------------
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
  mkdir -p "$WORK/perm"
  printf 'readable' >"$WORK/perm/ok.txt"
  printf 'secret' >"$WORK/perm/locked.txt"
  chmod 644 "$WORK/perm/ok.txt"
  chmod 000 "$WORK/perm/locked.txt"
  chmod 755 "$WORK/perm"
  mkdir -p "$WORK/out" && chmod 777 "$WORK/out"
  # Named on the command line, it is bad input: nothing is uploaded.
  setpriv --reuid=65534 --regid=65534 --clear-groups \
    "$TOOL" upload --to "$NGINX_URL/perm1" "$WORK/perm/ok.txt" "$WORK/perm/locked.txt" \
    -q 2>"$WORK/err"
  rc=$?
  check "unreadable PATH: exit 2, named, nothing uploaded" \
    '[ "$rc" -eq 2 ] && grep -q "locked.txt: Permission denied" "$WORK/err" && [ ! -e "$NGINX_STORE/perm1" ]'
  # Found in a directory walk, it fails as an item; the others go.
  setpriv --reuid=65534 --regid=65534 --clear-groups \
    "$TOOL" upload --to "$NGINX_URL/perm" "$WORK/perm" \
    --report "$WORK/out/r2.json" -q 2>"$WORK/err"
  rc=$?
  check "unreadable file in a tree: exit 1" '[ "$rc" -eq 1 ]'
  check "unreadable file in a tree: failed, kind file, Permission denied; the other uploaded" \
    "python3 -c \"
import json, sys
r = json.load(open('$WORK/out/r2.json'))
f = r['failures']
ok = (r['summary']['succeeded'] == 1 and len(f) == 1 and f[0]['error'] == 'file'
      and 'Permission denied' in f[0]['message'] and f[0]['path'].endswith('locked.txt')
      and f[0]['attempts'] == 0)
sys.exit(0 if ok else 1)\""
  check "unreadable file in a tree: nothing stored for it" '[ ! -e "$NGINX_STORE/perm/locked.txt" ] && cmp -s "$WORK/perm/ok.txt" "$NGINX_STORE/perm/ok.txt"'
else
  echo "# unreadable-file case needs root (to become 'nobody'): not run"
fi

# ---- over 4 GiB ---------------------------------------------------------------
# The sanitizer builds' runs set BULKUP_TEST_NO_HUGE (.ci/run): 5 GiB through
# instrumented copies takes minutes and proves nothing the release run
# does not.
if [ -n "${BULKUP_TEST_NO_HUGE:-}" ]; then
  echo "# BULKUP_TEST_NO_HUGE: the 5 GiB case is left to the release build's run"
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
  exit
fi
need=$((11 * 1024 * 1024)) # KiB: the stored copy (5 GiB) plus room
avail=$(df -k --output=avail /dev/shm | tail -1)
if [ "${avail:-0}" -lt "$need" ]; then
  echo "# /dev/shm has ${avail} KiB free, the 5 GiB case needs $need: skipped"
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ] || exit 1
  exit 77
fi
truncate -s 5G "$WORK/big.bin"
printf 'head' | dd of="$WORK/big.bin" conv=notrunc status=none
printf 'tail' | dd of="$WORK/big.bin" bs=1 seek=$((5 * 1024 * 1024 * 1024 - 4)) conv=notrunc status=none
"$TOOL" upload --to "$NGINX_URL/big" "$WORK/big.bin" --report "$WORK/r3.json" -q 2>"$WORK/err"
rc=$?
check "5 GiB sparse file: exit 0" '[ "$rc" -eq 0 ]'
check "5 GiB sparse file: stored size 5368709120" '[ "$(stat -c %s "$NGINX_STORE/big/big.bin" 2>/dev/null)" = 5368709120 ]'
check "5 GiB sparse file: stored byte-identical" 'cmp -s "$WORK/big.bin" "$NGINX_STORE/big/big.bin"'
check "5 GiB sparse file: report bytes exact" "python3 -c \"import json,sys; s=json.load(open('$WORK/r3.json'))['summary']; sys.exit(0 if s['bytes_succeeded']==5368709120 else 1)\""
rm -f "$NGINX_STORE/big/big.bin"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
