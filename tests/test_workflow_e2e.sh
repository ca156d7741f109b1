#!/usr/bin/env bash
# test_workflow_e2e.sh - the client and the reference server together,
# both speaking ENCORD_WIRE.md (src/api/ and src/server/):
#
#   1. The embedded default, the README's first command: `bulkup upload
#      examples/images` from an empty directory: exit 0, one
#      "DATA_HASH  TITLE" line per data unit (the server clusters the
#      group by resolution, as createVideo's default asks), every stored
#      object byte-identical to a source image; --image-group T
#      --no-create-video: exactly one unit titled T; --video, --image,
#      --dicom-series against the embedded server.
#   2. `bulkup serve` as a separate process (an ssh-keygen key in its
#      --authorized-keys, its printed dataset, --require-folder): every
#      kind with --api/--key-file/--dataset/--folder; a key it does not
#      know: exit 1 with the v1 code in words.
#   3. SIGTERM during an embedded run: exit 143, the report written and
#      consistent, every stored object a whole source file.
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
PY=/usr/bin/python3

[ -x "$TOOL" ] || { echo "test_workflow_e2e: $TOOL not built" >&2; exit 1; }
for cmd in ssh-keygen $PY sha256sum timeout; do
  command -v "$cmd" >/dev/null || { echo "test_workflow_e2e: $cmd is needed" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulkup-e2e.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p" 2>/dev/null
      wait "$p" 2>/dev/null
    fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL - $1"
  [ -s "$WORK/err" ] && sed 's/^/    stderr: /' "$WORK/err" | head -20
}
expect() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
run_in() { # DIR ARGS...: the tool from DIR, stdout/stderr in $WORK/out, err
  local dir=$1
  shift
  (cd "$dir" && timeout "$LIMIT" "$TOOL" "$@" </dev/null >"$WORK/out" 2>"$WORK/err")
  RC=$?
  cat "$WORK/err" >>"$WORK/all-err"
}
rc_is() { [ "$RC" -eq "$1" ]; }
# units_ok: every stdout line is "HASH  TITLE", the hashes distinct, N >= 1
units_ok() {
  local n
  n=$(wc -l <"$WORK/out")
  [ "$n" -ge 1 ] && ! grep -qvE '^[^ ]+  .+$' "$WORK/out" &&
    [ "$(awk '{print $1}' "$WORK/out" | sort -u | wc -l)" -eq "$n" ]
}
titles() { sed -n 's/^[^ ]*  //p' "$WORK/out"; }
sums_of() { (cd "$1" && sha256sum -- *) | awk '{print $1}' | LC_ALL=C sort; }
store_sums() { # STORE TYPE
  find "$1/uploads/$2" -type f ! -name '.bks-tmp*' -exec sha256sum {} + 2>/dev/null |
    awk '{print $1}' | LC_ALL=C sort
}

mkdir -p "$WORK/vid" "$WORK/dcm" "$WORK/cwd"
$PY - "$WORK" <<'EOF'
import os, sys
w = sys.argv[1]
for i in range(3):
    open(os.path.join(w, "vid", "clip%d.mp4" % i), "wb").write(os.urandom(4000 + i))
    open(os.path.join(w, "dcm", "s%02d.dcm" % i), "wb").write(os.urandom(3000 + i))
EOF

# ---- 1. the embedded default ------------------------------------------------------
mkdir -p "$WORK/e1"
run_in "$WORK/e1" upload "$IMAGES"
expect "embedded: exit 0" rc_is 0
expect "embedded: stdout is DATA_HASH  TITLE lines, one per unit" units_ok
expect "embedded: the units are the group's (titled after the PATH)" \
  bash -c "! sed -n 's/^[^ ]*  //p' '$WORK/out' | grep -qv '^images'"
expect "embedded: every object byte-identical, in ./bulkup-store" \
  bash -c "[ \"\$(cd '$IMAGES' && sha256sum -- * | awk '{print \$1}' | LC_ALL=C sort)\" = \
    \"\$(find '$WORK/e1/bulkup-store/uploads/image' -type f -exec sha256sum {} + | awk '{print \$1}' | LC_ALL=C sort)\" ]"

run_in "$WORK/e1" upload --store "$WORK/e2" --image-group holiday --no-create-video "$IMAGES"
expect "embedded --no-create-video: exactly one unit, titled" \
  bash -c "[ $RC -eq 0 ] && [ \"\$(sed -n 's/^[^ ]*  //p' '$WORK/out')\" = holiday ]"
run_in "$WORK/e1" upload --store "$WORK/e3" --video "$WORK/vid"
expect "embedded --video: one unit per file" \
  bash -c "[ $RC -eq 0 ] && [ \"\$(sed -n 's/^[^ ]*  //p' '$WORK/out')\" = \"\$(printf 'clip0.mp4\nclip1.mp4\nclip2.mp4')\" ]"
expect "embedded --video: stored byte-identical" \
  bash -c "[ \"\$(cd '$WORK/vid' && sha256sum -- * | awk '{print \$1}' | LC_ALL=C sort)\" = \
    \"\$(find '$WORK/e3/uploads/video' -type f -exec sha256sum {} + | awk '{print \$1}' | LC_ALL=C sort)\" ]"
run_in "$WORK/e1" upload --store "$WORK/e4" --dicom-series ct "$WORK/dcm"
expect "embedded --dicom-series: one unit" bash -c "[ $RC -eq 0 ] && [ \"\$(sed -n 's/^[^ ]*  //p' '$WORK/out')\" = ct ]"
run_in "$WORK/e1" upload --store "$WORK/e5" --image "$IMAGES"
expect "embedded --image: one unit per image" \
  bash -c "[ $RC -eq 0 ] && [ \$(wc -l <'$WORK/out') -eq \$(ls '$IMAGES' | wc -l) ]"

# ---- 2. bulkup serve --------------------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -f "$WORK/key" >/dev/null
timeout 600 "$TOOL" serve --root "$WORK/srv" --authorized-keys "$WORK/key.pub" \
  --require-folder --job-delay 0.2 >"$WORK/serve.out" 2>"$WORK/serve.err" &
PIDS+=($!)
for _ in $(seq 1 200); do
  grep -q '^dataset: ' "$WORK/serve.out" 2>/dev/null && break
  sleep 0.05
done
URL=$(sed -n 's/^listening on //p' "$WORK/serve.out")
DATASET=$(sed -n 's/^dataset: \([^ ]*\) folder: .*/\1/p' "$WORK/serve.out")
FOLDER=$(sed -n 's/^dataset: [^ ]* folder: \(.*\)/\1/p' "$WORK/serve.out")
expect "serve: listening, with its dataset and folder" test -n "$URL" -a -n "$DATASET" -a -n "$FOLDER"
API=(--api "$URL" --key-file "$WORK/key" --dataset "$DATASET" --folder "$FOLDER")
run_in "$WORK/cwd" upload "${API[@]}" --image-group g "$IMAGES"
expect "serve: image group: exit 0, units" bash -c "[ $RC -eq 0 ] && $(declare -f units_ok); WORK='$WORK' units_ok"
run_in "$WORK/cwd" upload "${API[@]}" --dicom-series ct "$WORK/dcm"
expect "serve: DICOM series: one unit" bash -c "[ $RC -eq 0 ] && [ \$(wc -l <'$WORK/out') -eq 1 ]"
run_in "$WORK/cwd" upload "${API[@]}" --video --files-per-job 2 "$WORK/vid"
expect "serve: videos, 2 per job: three units" bash -c "[ $RC -eq 0 ] && [ \$(wc -l <'$WORK/out') -eq 3 ]"
run_in "$WORK/cwd" upload "${API[@]}" --image "$IMAGES"
expect "serve: images: one unit each" \
  bash -c "[ $RC -eq 0 ] && [ \$(wc -l <'$WORK/out') -eq \$(ls '$IMAGES' | wc -l) ]"
run_in "$WORK/cwd" upload --api "$URL" --key-file "$WORK/key" --dataset "$DATASET" --image-group g "$IMAGES"
expect "serve --require-folder: a job without folderUuid is refused (exit 1, in words)" \
  bash -c "[ $RC -eq 1 ] && grep -q 'the API refused the request' '$WORK/err' && [ ! -s '$WORK/out' ]"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/other" >/dev/null
run_in "$WORK/cwd" upload --api "$URL" --key-file "$WORK/other" --dataset "$DATASET" --image-group g "$IMAGES"
expect "serve: an unknown key: exit 1, the v1 code in words, nothing on stdout" \
  bash -c "[ $RC -eq 1 ] && grep -qE '(AUTHENTICATION|SSH_KEY_NOT_FOUND)_ERROR: ' '$WORK/err' && [ ! -s '$WORK/out' ]"

# ---- 3. SIGTERM during an embedded run -------------------------------------------------
mkdir -p "$WORK/lots"
$PY - "$WORK/lots" <<'EOF'
import os, sys
for i in range(3000):
    with open(os.path.join(sys.argv[1], "f%05d.png" % i), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
EOF
timeout "$LIMIT" "$TOOL" upload --store "$WORK/store5" --workers 2 \
  --report "$WORK/r5.json" "$WORK/lots" </dev/null >"$WORK/out" 2>"$WORK/err" &
pid=$!
for _ in $(seq 1 400); do
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
  expect "SIGTERM during an embedded run: says it cancels" grep -q "terminated: cancelling the run" "$WORK/err"
  expect "SIGTERM during an embedded run: nothing on stdout" test ! -s "$WORK/out"
  expect "SIGTERM during an embedded run: report written and consistent" $PY -c "
import json, sys
s = json.load(open('$WORK/r5.json'))['summary']
sys.exit(0 if s['succeeded'] < 3000 and s['submitted'] == s['succeeded'] + s['failed'] + s['cancelled'] else 1)"
  (cd "$WORK/lots" && sha256sum -- * | awk '{print $1}' | sort) >"$WORK/lots-sums"
  expect "SIGTERM during an embedded run: every stored object is a whole source file" \
    bash -c "[ -z \"\$(find '$WORK/store5/uploads' -type f ! -name '.bks-tmp*' -exec sha256sum {} + | awk '{print \$1}' | sort | comm -23 - '$WORK/lots-sums')\" ]"
fi
cat "$WORK/err" >>"$WORK/all-err"

expect "no sanitizer report in any stderr" \
  bash -c "! cat '$WORK/all-err' '$WORK/serve.err' 2>/dev/null | grep -E 'Sanitizer|runtime error'"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
