#!/usr/bin/env bash
# test_parallel.sh - README's GNU parallel recipe (4 shards on one machine),
# taken from README.md and run unchanged but for the values of the two
# variables it declares (DATA, TARGET), against nginx on loopback:
#
#   1. 300 files: the recipe exits 0; at nginx every file PUT exactly once
#      and byte-identical; the merged report exact (300 submitted and
#      succeeded, 4 shards, none missing).
#   2. The same recipe again in the same directory: the journals make it
#      send nothing (no new PUT at nginx), and the merge counts 0 submitted.
#
# Needs GNU parallel (else exit 77). Prints "N passed, N failed".
set -uo pipefail
command -v parallel >/dev/null || { echo "test_parallel: skipped: no GNU parallel (apt-get install parallel)"; exit 77; }
source "$(dirname "$0")/lib.sh"
FILES=300

make_data "$WORK/data" "$FILES" 19
nginx_start parallel
TARGET=$NGINX_URL/run1

# The recipe with its two declared variables set to this test's values;
# each must be declared exactly once, at the start of a line.
recipe parallel-local >"$WORK/recipe.sh" || { echo "README: no parallel-local block"; exit 1; }
set_vars() {
	"$PY" - "$WORK/recipe.sh" "DATA=$WORK/data" "TARGET=$TARGET" <<'PY'
import re, shlex, sys
path, assigns = sys.argv[1], sys.argv[2:]
lines = open(path).read().split("\n")
for a in assigns:
    name, value = a.split("=", 1)
    hits = [i for i, l in enumerate(lines) if re.match(name + "=", l)]
    if len(hits) != 1:
        sys.exit("%s: declared %d times in the recipe, want 1" % (name, len(hits)))
    lines[hits[0]] = "%s=%s" % (name, shlex.quote(value))
open(path, "w").write("\n".join(lines))
PY
}
check "the recipe declares DATA and TARGET once each" set_vars
check "the recipe runs 4 shards through parallel" bash -c "grep -q '^parallel -j4 ' '$WORK/recipe.sh' && grep -q ' ::: 0 1 2 3$' '$WORK/recipe.sh'"

mkdir "$WORK/run" && cd "$WORK/run" || exit 1
t0=$EPOCHREALTIME
bash "$WORK/recipe.sh" >out.1 2>&1 </dev/null
rc=$?
echo "# 4 shards of $FILES files through parallel, with the merge: $(elapsed "$t0") s"
check "the recipe: exit 0" test "$rc" -eq 0
check "nginx: every file PUT exactly once, byte-identical" \
	verify stored --data "$WORK/data" --url "$TARGET" --store "$NGINX_STORE" --log "$NGINX_LOG"
check "merged report exact: $FILES submitted and succeeded, 4 shards, none missing" \
	verify merged report.json --total "$FILES" --shards 4
check "each shard kept its journal" bash -c 'for k in 0 1 2 3; do [ -s run.$k.journal ] || exit 1; done'

# ---- 2. the same again: the journals -----------------------------------------
lines=$(wc -l <"$NGINX_LOG")
bash "$WORK/recipe.sh" >out.2 2>&1 </dev/null
rc=$?
check "the rerun: exit 0" test "$rc" -eq 0
check "the rerun sent nothing: no new request at nginx" test "$(wc -l <"$NGINX_LOG")" -eq "$lines"
check "the rerun's merged report: 0 submitted, 4 shards, none missing" \
	verify merged report.json --total 0 --shards 4
check "each shard said it skipped its files" \
	test "$(grep -c 'skipped [0-9]* files recorded as uploaded in run\.[0-3]\.journal' out.2)" -eq 4
cd "$WORK" || exit 1
finish
