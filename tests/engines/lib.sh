# lib.sh - shared by the engine tests (tests/engines/test_*.sh): paths,
# ok/FAIL counting, README recipes, test data, nginx, cleanup. Sourced.
# shellcheck shell=bash

SRC=${BULKUP_TEST_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BIN=${BULKUP_TEST_BINARY_DIR:-$SRC/build}
ENGINES=$SRC/tests/engines
NGINX_WEBDAV=$SRC/scripts/nginx-webdav
PY=/usr/bin/python3 # Debian's, with its python3-* packages
TEST_NAME=$(basename "$0" .sh)

# Exit 77 (ctest: skipped) naming what is missing.
skip() {
	echo "$TEST_NAME: skipped: $*"
	exit 77
}
[[ -x $PY ]] || skip "no /usr/bin/python3"
[[ -x $BIN/bulkup ]] || {
	echo "$TEST_NAME: $BIN/bulkup not built" >&2
	exit 1
}
[[ -x /usr/sbin/nginx ]] || skip "no nginx (apt-get install nginx)"
# The tool the recipes call by name, first on PATH (for the engines'
# tasks too: sbatch, parallel and Dask's workers inherit it).
export PATH=$BIN:$PATH

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulkup-$TEST_NAME.XXXXXX")
chmod 755 "$WORK" # munged and nginx's workers must reach into it
CLEANUP=()         # commands run at exit, last first
NGINX_DIRS=()
on_exit() {
	local i
	for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do eval "${CLEANUP[i]}" || true; done
	for d in "${NGINX_DIRS[@]}"; do "$NGINX_WEBDAV" stop "$d" >/dev/null 2>&1 || true; done
	if [[ -n ${KEEP_WORK:-} ]]; then echo "# kept $WORK"; else rm -rf "$WORK"; fi
}
trap on_exit EXIT
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
	if [[ -s $WORK/why ]]; then sed 's/^/    /' "$WORK/why" | head -n 30; fi
	return 0
}
# check NAME COMMAND...: COMMAND's output goes to $WORK/why, shown on failure.
check() {
	local name=$1 t=$EPOCHREALTIME
	shift
	if "$@" >"$WORK/why" 2>&1; then pass "$name"; else fail "$name"; fi
	if [[ -n ${ENGINES_TIMING:-} ]]; then echo "#   ($(elapsed "$t") s)"; fi
}
finish() {
	echo "$PASSED passed, $FAILED failed"
	((FAILED == 0))
}

# recipe NAME: README's block after <!-- tested: NAME --> (tests/engines/recipe.py).
recipe() { "$PY" "$ENGINES/recipe.py" "$SRC/README.md" "$1"; }

# make_data DIR COUNT SEED: COUNT files of 0..8 KiB of random bytes in a
# few subfolders.
make_data() {
	"$PY" - "$@" <<'PY'
import os, random, sys
root, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
for i in range(n):
    d = os.path.join(root, "d%d" % (i % 7), "e%d" % (i % 3))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%04d.bin" % i), "wb") as f:
        f.write(r.randbytes(r.randint(0, 8 * 1024)))
PY
}

# nginx_start NAME: a fresh nginx WebDAV server (state in $WORK/nginx-NAME,
# a folder never used before: scripts/nginx-webdav keeps an old config's
# flags), access log on. Sets NGINX_URL, NGINX_STORE, NGINX_LOG.
nginx_start() {
	local dir=$WORK/nginx-$1
	NGINX_DIRS+=("$dir")
	eval "$("$NGINX_WEBDAV" start "$dir" --count-connections)" || {
		echo "$TEST_NAME: nginx did not start" >&2
		exit 1
	}
	NGINX_LOG=$dir/access.log
}

# verify ARGS...: tests/engines/verify.py (stored-once, merged, puts).
verify() { "$PY" "$ENGINES/verify.py" "$@"; }

# elapsed T0: seconds since T0 (an $EPOCHREALTIME), two decimals.
elapsed() { "$PY" -c 'import sys, time; print("%.2f" % (time.time() - float(sys.argv[1])))' "$1"; }
