#!/usr/bin/env bash
# test_journal_kill.sh - crash-safe resume, for real: `bulkup upload
# --journal` is killed with SIGKILL at random moments while it uploads
# thousands of files to nginx, then rerun with the same journal until a run
# completes. Asserts:
#   - every file ends stored byte-identical to its source;
#   - no rerun sends a file that the journal recorded before it started
#     (nginx's access log lists every PUT of every run);
#   - the journal, torn by the kills, still reads (the last run finds
#     every file recorded and sends nothing).
# Prints "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail

SRC=${BULKUP_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BULKUP_TEST_BINARY_DIR:-$SRC/build}
TOOL=$BIN/bulkup
NGINX_WEBDAV=$SRC/scripts/nginx-webdav
FILES=${BULKUP_KILL_FILES:-3000}
KILLS=${BULKUP_KILL_ROUNDS:-6}
SEED=${BULKUP_KILL_SEED:-$$}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulkup-kill.XXXXXX")
STATE=$WORK/nginx
PID=""
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  "$NGINX_WEBDAV" stop "$STATE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $1"; }
check() { if eval "$2"; then pass "$1"; else fail "$1"; fi; }

echo "# seed $SEED, $FILES files, $KILLS kills"
python3 - "$WORK/data" "$FILES" "$SEED" <<'PY'
import os, random, sys
root, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
for i in range(n):
    d = os.path.join(root, "d%02d" % (i % 20))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.bin" % i), "wb") as f:
        f.write(r.randbytes(r.randint(1, 64 * 1024)))
PY

eval "$("$NGINX_WEBDAV" start "$STATE" --count-connections)" || { echo "nginx did not start"; exit 1; }
LOG=$STATE/access.log
JOURNAL=$WORK/upload.journal

# The URL paths the journal records (keys are "URL%0APATH").
journal_paths() {
  [ -f "$JOURNAL" ] || return 0
  sed -n 's/^J1 [0-9a-f]\{8\} [0-9]* -\{0,1\}[0-9]* \(.*\)%0A.*$/\1/p' "$JOURNAL" |
    sed 's|^https\{0,1\}://[^/]*||' | sort -u
}
# A marker request on a new connection, made after the previous run is
# dead and before the next starts; prints that connection's serial number
# ($connection, which nginx counts up across its workers). Every connection
# of a later run has a larger serial, every one of an earlier run a smaller
# one, whenever nginx gets round to logging them: a PUT the killed client
# saw answered (and journalled) may be logged after it died.
marker() {
  local tag=/marker-$1 s=""
  curl -s -o /dev/null --max-time 10 "$NGINX_URL$tag" || true
  for _ in $(seq 200); do
    s=$(awk -v t="$tag" '$4 == t { print $1 }' "$LOG" | tail -1)
    [ -n "$s" ] && break
    sleep 0.05
  done
  [ -n "$s" ] || { echo "no marker $tag in nginx's log" >&2; exit 1; }
  echo "$s"
}
# The paths PUT on connections after the marker connection $1.
puts_since() {
  awk -v s="$1" '$1 > s && $3 == "PUT" { print $4 }' "$LOG" | sort -u
}

journal_lines() { [ -f "$JOURNAL" ] && wc -l <"$JOURNAL" || echo 0; }

# Run the upload; with $1 set, SIGKILL it once the journal has grown by $1
# records (a moment chosen by progress, not by the clock, so that the kill
# lands mid-upload however fast the machine is).
run_once() {
  local start
  start=$(journal_lines)
  "$TOOL" upload --to "$NGINX_URL/store" "$WORK/data" --journal "$JOURNAL" \
    --workers 4 -q --no-progress 2>"$WORK/err" &
  PID=$!
  if [ -n "$1" ]; then
    local deadline=$((SECONDS + 60))
    while kill -0 "$PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
      if [ "$(journal_lines)" -ge $((start + $1)) ]; then
        kill -9 "$PID" 2>/dev/null
        break
      fi
      sleep 0.005
    done
  fi
  wait "$PID"
  local rc=$?
  PID=""
  return $rc
}

killed=0
resent=0
for round in $(seq 1 "$KILLS"); do
  journal_paths >"$WORK/before"
  offset=$(marker "$round") || exit 1
  # Kill after a random share (up to 1/KILLS) of the files still to do.
  left=$((FILES - $(journal_paths | wc -l)))
  after=$(python3 -c "import random; r=random.Random($SEED*31+$round); print(max(1, int(r.uniform(0.2, 1.0) * $left / ($KILLS + 1))))")
  run_once "$after"
  rc=$?
  [ "$rc" -eq 137 ] && killed=$((killed + 1))
  puts_since "$offset" >"$WORK/sent"
  n=$(comm -12 "$WORK/before" "$WORK/sent" | wc -l)
  resent=$((resent + n))
  echo "# round $round: killed after $after more records (exit $rc); journal had $(wc -l <"$WORK/before"), sent $(wc -l <"$WORK/sent"), re-sent journalled: $n"
done
check "at least half the runs were killed mid-upload ($killed of $KILLS)" '[ "$killed" -ge $((KILLS / 2)) ]'
check "no rerun re-sent a file the journal recorded" '[ "$resent" -eq 0 ]'

# Run to completion.
journal_paths >"$WORK/before"
offset=$(marker final) || exit 1
run_once ""
rc=$?
check "the final run completes (exit 0)" '[ "$rc" -eq 0 ]'
puts_since "$offset" >"$WORK/sent"
check "the final run re-sent nothing journalled" '[ "$(comm -12 "$WORK/before" "$WORK/sent" | wc -l)" -eq 0 ]'
check "the final run sent only what was missing" '[ "$(($(wc -l <"$WORK/before") + $(wc -l <"$WORK/sent")))" -ge "$FILES" ]'

# Every file byte-identical.
(cd "$WORK/data" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$WORK/src.sums"
(cd "$NGINX_STORE/store" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$WORK/dst.sums"
check "every file stored byte-identical ($FILES files)" 'cmp -s "$WORK/src.sums" "$WORK/dst.sums"'

# A last run finds everything recorded and sends nothing.
offset=$(marker again) || exit 1
run_once ""
rc=$?
check "a further run exits 0" '[ "$rc" -eq 0 ]'
check "a further run sends nothing" '[ "$(puts_since "$offset" | wc -l)" -eq 0 ]'
check "the journal records every file" '[ "$(journal_paths | wc -l)" -eq "$FILES" ]'

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
