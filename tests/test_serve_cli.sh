#!/usr/bin/env bash
# test_serve_cli.sh - `bulkup serve` as a program: --help, bad usage,
# the "listening on" line, refusals of unsigned requests, a whole signed
# workflow made with the openssl command (presign, PUT, image group, job),
# and a clean stop on SIGTERM and SIGINT.
set -u

BIN="${BULKUP_TEST_BINARY_DIR:?set BULKUP_TEST_BINARY_DIR}/bulkup"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bulkup-serve-test.XXXXXX")
PID=
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -KILL "$PID" 2>/dev/null
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
ok() { echo "ok - $*"; }

# ---- help and usage ------------------------------------------------------
"$BIN" serve --help >"$TMP/help" 2>&1 || fail "serve --help exits $?"
for opt in --root --listen --authorized-keys --url-ttl --session-ttl --tls-cert --tls-key \
  --tls-self-signed --fault-rate --fault-status --fault-reset-rate --fault-seed \
  --latency --job-delay --help; do
  grep -q -- "$opt" "$TMP/help" || fail "serve --help does not document $opt"
done
"$BIN" help serve | cmp -s - "$TMP/help" || fail "'bulkup help serve' differs"
"$BIN" --help | grep -q '^  serve ' || fail "'bulkup --help' does not list serve"
ok "--help documents every option"

bad_usage() {
  "$BIN" serve "$@" >"$TMP/out" 2>"$TMP/usage" </dev/null
  local rc=$?
  [ $rc = 2 ] || fail "serve $*: exit $rc, want 2"
  grep -q "Try 'bulkup serve --help'" "$TMP/usage" || fail "serve $*: no hint"
  [ -s "$TMP/out" ] && fail "serve $*: wrote to stdout"
  return 0
}
bad_usage --bogus
bad_usage --listen
bad_usage --listen nope
bad_usage --listen 127.0.0.1:70000
bad_usage --listen :80
bad_usage --fault-rate 2
bad_usage --fault-rate 0.6 --fault-reset-rate 0.6
bad_usage --fault-seed 0
bad_usage --fault-seed -1
bad_usage --fault-seed 18446744073709551616
bad_usage --fault-seed 12x
bad_usage --fault-status 42
bad_usage --url-ttl -1
bad_usage --session-ttl -1
bad_usage --session-ttl 1e9
bad_usage --latency abc
bad_usage --tls-cert x.pem
bad_usage --tls-self-signed --tls-key k.pem
bad_usage --public-url ftp://x
bad_usage extra-argument
ok "bad usage exits 2"

# an authorized keys file with a bad line: exit 1, the line is named
printf '# keys\nssh-rsa AAAAB3NzaC1yc2E x\n' >"$TMP/badkeys"
"$BIN" serve --root "$TMP/store0" --authorized-keys "$TMP/badkeys" \
  >"$TMP/out" 2>"$TMP/usage" </dev/null
rc=$?
[ $rc = 1 ] || fail "bad authorized keys: exit $rc, want 1"
grep -q "badkeys:2: not an ssh-ed25519 key" "$TMP/usage" ||
  fail "bad authorized keys: $(cat "$TMP/usage")"
ok "a bad authorized keys file stops the start"

# ---- keys -------------------------------------------------------------------
# An Ed25519 key made by openssl; its authorized_keys line built by hand
# (string "ssh-ed25519", string <32-byte key>, base64).
HAVE_SIGN=1
openssl genpkey -algorithm ed25519 -out "$TMP/key.pem" 2>/dev/null || HAVE_SIGN=0
if [ $HAVE_SIGN = 1 ]; then
  openssl pkey -in "$TMP/key.pem" -pubout -outform DER 2>/dev/null |
    tail -c 32 >"$TMP/pub.raw"
  blob=$({ printf '\000\000\000\013ssh-ed25519\000\000\000\040'
    cat "$TMP/pub.raw"; } | base64 -w0)
  printf '# the test key\n\nssh-ed25519 %s shell-key\n' "$blob" >"$TMP/keys"
fi
if command -v ssh-keygen >/dev/null; then
  # an OpenSSH-made public key line is accepted too
  ssh-keygen -q -t ed25519 -N '' -C ssh-made -f "$TMP/sshkey" </dev/null
  cat "$TMP/sshkey.pub" >>"$TMP/keys"
fi
[ -f "$TMP/keys" ] || : >"$TMP/keys"

# ---- start ------------------------------------------------------------------
start_server() {
  : >"$TMP/out"
  : >"$TMP/err"
  "$BIN" serve --root "$TMP/store" --listen 127.0.0.1:0 \
    --authorized-keys "$TMP/keys" --job-delay 3 "$@" \
    >"$TMP/out" 2>"$TMP/err" </dev/null &
  PID=$!
  for _ in $(seq 100); do
    grep -q '^listening on ' "$TMP/out" && break
    kill -0 "$PID" 2>/dev/null || fail "serve died at start"
    sleep 0.1
  done
  line=$(head -1 "$TMP/out")
  [[ "$line" =~ ^listening\ on\ (https?)://127\.0\.0\.1:([0-9]+)$ ]] ||
    fail "first line is '$line'"
  PORT=${BASH_REMATCH[2]}
  [ "$PORT" -gt 0 ] || fail "port $PORT"
  BASE="${BASH_REMATCH[1]}://127.0.0.1:$PORT"
}

stop_server() { # signal, then wait at most 5 s for exit status 0
  kill "-$1" "$PID"
  for _ in $(seq 50); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$PID" 2>/dev/null && fail "still running 5 s after SIG$1"
  wait "$PID"
  local rc=$?
  PID=
  [ $rc = 0 ] || fail "exit $rc after SIG$1, want 0"
}

start_server
[ -d "$TMP/store" ] || fail "the root was not created"
ok "listening on port $PORT"

# ---- unsigned requests are refused, with a reason ----------------------------
code=$(curl -s -o "$TMP/body" -w '%{http_code}' \
  "$BASE/v2/public/presigned-urls?count=1&upload_item_type=IMAGE")
[ "$code" = 401 ] || fail "unsigned presign: $code"
[ "$(cat "$TMP/body")" = '{"error": "missing Signature-Input"}' ] ||
  fail "unsigned presign body: $(cat "$TMP/body")"
code=$(curl -s -o "$TMP/body" -w '%{http_code}' -X PUT --data-binary x \
  "$BASE/storage/uploads/x?expires=9999999999&content_type=%2A&signature=00")
[ "$code" = 403 ] || fail "unsigned storage PUT: $code"
grep -q '<Code>SignatureDoesNotMatch</Code>' "$TMP/body" || fail "PUT body"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary x \
  --path-as-is "$BASE/storage/../../etc/x?expires=1&content_type=%2A&signature=00")
[ "$code" = 400 ] || fail "'..' key: $code"
ok "unsigned requests get 401 / 403, '..' gets 400"

# ---- a signed workflow ----------------------------------------------------------
# sign METHOD TARGET BODYFILE: prints the three headers, one per line
sign() {
  local method=$1 target=$2 bodyfile=$3
  local digest created params
  digest="sha-256=:$(openssl dgst -sha256 -binary "$bodyfile" | base64 -w0):"
  created=$(($(date +%s) - 30))
  params="(\"@method\" \"@request-target\" \"content-digest\");created=$created;keyid=\"shell-key\";alg=\"ed25519\""
  printf '"@method": %s\n"@request-target": %s\n"content-digest": %s\n"@signature-params": %s' \
    "$method" "$target" "$digest" "$params" >"$TMP/base"
  openssl pkeyutl -sign -inkey "$TMP/key.pem" -rawin -in "$TMP/base" \
    -out "$TMP/sig" 2>/dev/null || return 1
  printf 'Content-Digest: %s\nSignature-Input: encord-sig=%s\nSignature: encord-sig=:%s:\n' \
    "$digest" "$params" "$(base64 -w0 <"$TMP/sig")"
}

# api METHOD TARGET BODYFILE [extra header]: status code; body in $TMP/body
api() {
  local method=$1 target=$2 bodyfile=$3
  sign "$method" "$target" "$bodyfile" >"$TMP/hdrs" || return 1
  local args=(-s -o "$TMP/body" -w '%{http_code}' -H @"$TMP/hdrs"
    -H 'Content-Type: application/json')
  [ $# -ge 4 ] && args+=(-H "$4")
  if [ "$method" = POST ]; then
    args+=(--data-binary @"$bodyfile")
  fi
  curl "${args[@]}" "$BASE$target"
}

# a JSON string field by a crude match (values here have no quotes)
field() { grep -o "\"$1\": *\"[^\"]*\"" | head -n "${2:-1}" | tail -1 | sed 's/.*: *"//; s/"$//'; }

if [ $HAVE_SIGN = 1 ] && openssl pkeyutl -help 2>&1 | grep -q rawin; then
  : >"$TMP/empty"
  code=$(api GET "/v2/public/presigned-urls?count=2&upload_item_type=IMAGE" "$TMP/empty")
  [ "$code" = 200 ] || fail "signed presign: $code $(cat "$TMP/body")"
  cp "$TMP/body" "$TMP/presign"
  url1=$(field signed_url 1 <"$TMP/presign")
  url2=$(field signed_url 2 <"$TMP/presign")
  key1=$(field object_key 1 <"$TMP/presign")
  key2=$(field object_key 2 <"$TMP/presign")
  [[ "$url1" == "$BASE/storage/uploads/"*"?expires="*"&content_type=image%2F%2A&signature="* ]] ||
    fail "signed_url $url1"
  head -c 100000 /dev/urandom >"$TMP/img1"
  printf 'second image' >"$TMP/img2"
  for i in 1 2; do
    u=$url1; [ $i = 2 ] && u=$url2
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: image/png' \
      --data-binary @"$TMP/img$i" "$u")
    [ "$code" = 200 ] || fail "PUT $i: $code"
  done
  cmp -s "$TMP/img1" "$TMP/store/$key1" || fail "object 1 differs on disk"
  cmp -s "$TMP/img2" "$TMP/store/$key2" || fail "object 2 differs on disk"
  [ "$(ls -A "$TMP/store/uploads" | wc -l)" = 2 ] || fail "extra files in the store"
  ok "signed presign, two PUTs stored byte-identical"

  printf '{"image_groups": [{"images": [{"url": "%s", "title": "two.png"}, {"url": "%s", "title": "one.png"}], "title": "g", "create_video": false, "cluster_by_resolution": false}]}' \
    "$key2" "$key1" >"$TMP/group"
  code=$(api POST /v2/public/image-groups "$TMP/group" "Idempotency-Key: shell-1")
  [ "$code" = 200 ] || fail "image group: $code $(cat "$TMP/body")"
  hash=$(field process_hash <"$TMP/body")
  code=$(api POST /v2/public/image-groups "$TMP/group" "Idempotency-Key: shell-1")
  [ "$code" = 200 ] && [ "$(field process_hash <"$TMP/body")" = "$hash" ] ||
    fail "idempotent replay: $code $(cat "$TMP/body")"
  code=$(api GET "/v2/public/image-groups/jobs/$hash" "$TMP/empty")
  [ "$code" = 200 ] && grep -q '"status":"PENDING"' "$TMP/body" ||
    fail "job pending: $code $(cat "$TMP/body")"
  # --job-delay 3: PENDING above, on a machine however slow the twenty
  # commands before it were; DONE once the 3 s are up (polled for 15 s)
  for _ in $(seq 150); do
    code=$(api GET "/v2/public/image-groups/jobs/$hash" "$TMP/empty")
    [ "$code" = 200 ] && grep -q '"status":"PENDING"' "$TMP/body" || break
    sleep 0.1
  done
  [ "$code" = 200 ] && grep -q '"status":"DONE"' "$TMP/body" ||
    fail "job done: $code $(cat "$TMP/body")"
  [ "$(field title 1 <"$TMP/body")" = two.png ] &&
    [ "$(field title 2 <"$TMP/body")" = one.png ] || fail "titles out of order: $(cat "$TMP/body")"
  ok "image group, idempotent replay, job PENDING then DONE in order"
else
  echo "skip - the openssl command cannot sign Ed25519 raw input"
fi

stop_server TERM
grep -q 'SIGTERM, stopping' "$TMP/err" || fail "no stop message"
ok "SIGTERM stops it, exit 0"

# SIGINT too (a background job starts with SIGINT ignored: serve resets it)
start_server --tls-self-signed
grep -q '^certificate: ' "$TMP/out" || fail "no certificate line"
ca=$(sed -n 's/^certificate: //p' "$TMP/out")
[ -f "$ca" ] || fail "certificate file $ca missing"
[[ "$BASE" == https://* ]] || fail "not https: $BASE"
code=$(curl -s --cacert "$ca" -o /dev/null -w '%{http_code}' \
  "$BASE/v2/public/presigned-urls?count=1&upload_item_type=IMAGE")
[ "$code" = 401 ] || fail "https presign: $code"
stop_server INT
[ -f "$ca" ] && fail "certificate file left behind"
ok "HTTPS with a self-signed certificate; SIGINT stops it, exit 0"
echo "all passed"
