#!/usr/bin/env bash
# test_serve_wire.sh - `bulkup serve` against tests/serve_wire_client.py,
# a client written from ENCORD_WIRE.md alone (Debian's /usr/bin/python3
# with python3-cryptography): the spec's test vectors, the four upload
# kinds end to end, and tampered requests refused in the right shape.
# Exit 77 (skipped) when python3-cryptography is missing; CI installs it.
set -u

BIN="${BULKUP_TEST_BINARY_DIR:?set BULKUP_TEST_BINARY_DIR}/bulkup"
SRC="${BULKUP_TEST_SOURCE_DIR:-$(dirname "$0")/..}"
PY=/usr/bin/python3
if ! "$PY" -c 'import cryptography' 2>/dev/null; then
  echo "skip - /usr/bin/python3 has no cryptography module (python3-cryptography)"
  exit 77
fi
# The store does an fsync per object: on tmpfs (/dev/shm) when there is
# one, the 470 small objects take well under a second instead of ~10 s.
SHM=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && SHM=/dev/shm
TMP=$(mktemp -d "$SHM/bulkup-serve-wire.XXXXXX")
PID=
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  [ -f "$TMP/err" ] && sed 's/^/  server stderr: /' "$TMP/err" >&2
  exit 1
}

# the client's key: a fixed seed; its authorized_keys line
SEED=2122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40
"$PY" - "$SEED" >"$TMP/keys" <<'PY' || fail "cannot make the key line"
import base64, struct, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
k = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(sys.argv[1]))
raw = k.public_key().public_bytes(serialization.Encoding.Raw,
                                  serialization.PublicFormat.Raw)
blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + raw
print("ssh-ed25519 " + base64.b64encode(blob).decode() + " wire-test")
PY

DS=00000000-0000-0000-0000-000000000001
"$BIN" serve --root "$TMP/store" --listen 127.0.0.1:0 --authorized-keys "$TMP/keys" \
  --dataset "$DS" --job-delay 0.2 >"$TMP/out" 2>"$TMP/err" </dev/null &
PID=$!
for _ in $(seq 100); do
  grep -q '^dataset: ' "$TMP/out" && break
  kill -0 "$PID" 2>/dev/null || fail "serve died at start"
  sleep 0.1
done
BASE=$(sed -n 's/^listening on //p' "$TMP/out")
[ -n "$BASE" ] || fail "no listening line"

"$PY" "$SRC/tests/serve_wire_client.py" "$BASE" "$DS" "$SEED" || fail "the wire client failed"
echo "all passed"
