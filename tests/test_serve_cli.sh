#!/usr/bin/env bash
# test_serve_cli.sh - `bulkup serve` as a program: --help, bad usage,
# the "listening on" and "dataset:" lines, refusals of unsigned requests
# in the API's error shapes, a whole signed workflow of Encord's protocol
# (ENCORD_WIRE.md) made with the openssl command (v2 presign, PUTs, v1
# dataset, job POST, long poll), --fault-api-error, a legitimate request
# answered while 1,100 idle connections are open (issue 13 item 15), and
# a clean stop on SIGTERM and SIGINT.
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
  --latency --job-delay --dataset --require-folder --v2-snake-case --idle-timeout \
  --connection-limit --fault-api-error --help; do
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
bad_usage --fault-api-error nowhere:500
bad_usage --fault-api-error presign
bad_usage --fault-api-error poll:NOT_A_CODE
bad_usage --fault-api-error presign:200
bad_usage --fault-api-error job:DONE
bad_usage --fault-api-error create:UNKNOWN_ERROR:0
bad_usage --connection-limit 3
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
  KEYID=$(xxd -p -c 64 "$TMP/pub.raw")
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
    --authorized-keys "$TMP/keys" --job-delay 5 "$@" \
    >"$TMP/out" 2>"$TMP/err" </dev/null &
  PID=$!
  for _ in $(seq 100); do
    grep -q '^listening on ' "$TMP/out" && break
    kill -0 "$PID" 2>/dev/null || fail "serve died at start"
    sleep 0.1
  done
  for _ in $(seq 50); do
    grep -q '^dataset: ' "$TMP/out" && break
    sleep 0.1
  done
  line=$(head -1 "$TMP/out")
  DS=$(sed -n 's/^dataset: \([^ ]*\) folder: .*/\1/p' "$TMP/out" | head -1)
  FOLDER=$(sed -n 's/^dataset: [^ ]* folder: //p' "$TMP/out" | head -1)
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
[[ "$DS" =~ ^[0-9a-f-]{36}$ ]] || fail "dataset line: $(cat "$TMP/out")"
[[ "$FOLDER" =~ ^[0-9a-f-]{36}$ ]] || fail "folder: $(cat "$TMP/out")"
code=$(curl -s -o "$TMP/body" -w '%{http_code}' \
  "$BASE/v2/public/presigned-urls?count=1&uploadItemType=image")
[ "$code" = 401 ] || fail "unsigned presign: $code"
[ "$(cat "$TMP/body")" = '{"message": "missing Signature-Input"}' ] ||
  fail "unsigned presign body: $(cat "$TMP/body")"
code=$(curl -s -o "$TMP/body" -w '%{http_code}' -H 'Content-Type: application/json' \
  -H 'Accept: application/json' -H 'ResourceType: dataset' -H "ResourceID: $DS" \
  --data-binary '{"query_type": "dataset", "query_method": "GET", "values": {"uid": null, "payload": {}}}' \
  "$BASE/public")
[ "$code" = 401 ] || fail "unsigned v1: $code"
grep -q '^{"status": 401, "response": \["AUTHENTICATION_ERROR"\], "payload": "missing Authorization"}$' "$TMP/body" ||
  fail "unsigned v1 body: $(cat "$TMP/body")"
code=$(curl -s -o "$TMP/body" -w '%{http_code}' -X PUT --data-binary x \
  "$BASE/storage/uploads/x?expires=9999999999&content_type=%2A&signature=00")
[ "$code" = 403 ] || fail "unsigned storage PUT: $code"
grep -q '<Code>SignatureDoesNotMatch</Code>' "$TMP/body" || fail "PUT body"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary x \
  --path-as-is "$BASE/storage/../../etc/x?expires=1&content_type=%2A&signature=00")
[ "$code" = 400 ] || fail "'..' key: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary '{}' \
  "$BASE/v2/public/image-groups")
[ "$code" = 404 ] || fail "the invented image-groups endpoint answers $code"
ok "unsigned requests get 401 (v2 and v1 shapes) / 403, '..' gets 400"

# ---- a signed workflow ----------------------------------------------------------
# sign METHOD TARGET BODYFILE: prints the three v2 headers (ENCORD_WIRE 4)
sign() {
  local method=$1 target=$2 bodyfile=$3
  local digest created params
  digest="sha-256=:$(openssl dgst -sha256 -binary "$bodyfile" | base64 -w0):"
  created=$(($(date +%s) - 30))
  params="(\"@method\" \"@request-target\" \"content-digest\");created=$created;keyid=\"$KEYID\";alg=\"ed25519\""
  printf '"@method": %s\n"@request-target": %s\n"content-digest": %s\n"@signature-params": %s' \
    "$method" "$target" "$digest" "$params" >"$TMP/base"
  openssl pkeyutl -sign -inkey "$TMP/key.pem" -rawin -in "$TMP/base" \
    -out "$TMP/sig" 2>/dev/null || return 1
  printf 'Content-Digest: %s\nSignature-Input: encord-sig=%s\nSignature: encord-sig=:%s:\n' \
    "$digest" "$params" "$(base64 -w0 <"$TMP/sig")"
}

# v2 TARGET: status code; body in $TMP/body
v2() {
  : >"$TMP/empty"
  sign GET "$1" "$TMP/empty" >"$TMP/hdrs" || return 1
  curl -s -o "$TMP/body" -w '%{http_code}' -H @"$TMP/hdrs" -H 'Accept:' "$BASE$1"
}

# v1 BODYFILE: the SDK's v1 request (ENCORD_WIRE 6); status; body in $TMP/body
v1() {
  openssl dgst -sha256 -binary "$1" >"$TMP/digest"
  openssl pkeyutl -sign -inkey "$TMP/key.pem" -rawin -in "$TMP/digest" \
    -out "$TMP/v1sig" 2>/dev/null || return 1
  curl -s -o "$TMP/body" -w '%{http_code}' -H 'Accept: application/json' \
    -H 'Content-Type: application/json' -H 'Accept-Encoding: gzip' \
    -H 'ResourceType: dataset' -H "ResourceID: $DS" \
    -H "Authorization: $KEYID:$(xxd -p -c 64 "$TMP/v1sig")" \
    --data-binary @"$1" "$BASE/public"
}

# a JSON string field by a crude match (values here have no quotes)
field() { grep -o "\"$1\": *\"[^\"]*\"" | head -n "${2:-1}" | tail -1 | sed 's/.*: *"//; s/"$//'; }

SIGNS=0
if [ $HAVE_SIGN = 1 ] && openssl pkeyutl -help 2>&1 | grep -q rawin; then
  SIGNS=1
  code=$(v2 "/v2/public/presigned-urls?count=2&uploadItemType=image")
  [ "$code" = 200 ] || fail "signed presign: $code $(cat "$TMP/body")"
  cp "$TMP/body" "$TMP/presign"
  url1=$(field signedUrl 1 <"$TMP/presign")
  url2=$(field signedUrl 2 <"$TMP/presign")
  key1=$(field objectKey 1 <"$TMP/presign")
  key2=$(field objectKey 2 <"$TMP/presign")
  [[ "$url1" == "$BASE/storage/uploads/image/"*"?expires="*"&content_type=image%2F%2A&signature="* ]] ||
    fail "signedUrl $url1"
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
  [ "$(ls -A "$TMP/store/uploads/image" | wc -l)" = 2 ] || fail "extra files in the store"
  ok "signed presign, two PUTs stored byte-identical"

  printf '{"query_type": "dataset", "query_method": "GET", "values": {"uid": null, "payload": {"dataset_access_settings": {"fetch_client_metadata": false}}}}' >"$TMP/ds"
  code=$(v1 "$TMP/ds")
  [ "$code" = 200 ] && [ "$(field dataset_hash <"$TMP/body")" = "$DS" ] &&
    [ "$(field backing_folder_uuid <"$TMP/body")" = "$FOLDER" ] ||
    fail "dataset: $code $(cat "$TMP/body")"
  printf '{"query_type": "datasetdatalongpolling", "query_method": "POST", "values": {"uid": "%s", "payload": {"dataItems": {"videos": [], "imageGroups": [{"images": [{"url": "%s", "title": "two.png"}, {"url": "%s", "title": "one.png"}], "title": "g", "clientMetadata": {}, "createVideo": true, "externalFileType": "IMG_GROUP", "clusterByResolution": true}], "dicomSeries": [], "images": [], "imageGroupsFromItems": [], "audio": [], "nifti": [], "text": [], "pdf": [], "skipDuplicateUrls": false, "upsertMetadata": false}, "ignoreErrors": false, "folderUuid": "%s"}}}' \
    "$DS" "$key2" "$key1" "$FOLDER" >"$TMP/job"
  code=$(v1 "$TMP/job")
  [ "$code" = 200 ] || fail "job POST: $code $(cat "$TMP/body")"
  hash=$(field process_hash <"$TMP/body")
  [[ "$hash" =~ ^[0-9a-f-]{36}$ ]] || fail "process_hash: $(cat "$TMP/body")"
  poll() {
    printf '{"query_type": "datasetdatalongpolling", "query_method": "GET", "values": {"uid": "%s", "payload": {"process_hash": "%s", "timeout_seconds": %d}}}' \
      "$DS" "$hash" "$1" >"$TMP/poll"
    v1 "$TMP/poll"
  }
  code=$(poll 0)
  [ "$code" = 200 ] && grep -q '"status": "PENDING"' "$TMP/body" ||
    fail "job pending: $code $(cat "$TMP/body")"
  # --job-delay 5: PENDING at once above; a poll held up to 10 s answers
  # DONE (the two images have no readable size: one resolution class)
  code=$(poll 10)
  [ "$code" = 200 ] && grep -q '"status": "DONE"' "$TMP/body" ||
    fail "job done: $code $(cat "$TMP/body")"
  [ "$(field title 1 <"$TMP/body")" = g ] || fail "unit title: $(cat "$TMP/body")"
  grep -q '"units_done_count": 1' "$TMP/body" || fail "units: $(cat "$TMP/body")"
  ok "v1 dataset, job POST, long poll PENDING then DONE, one data unit"
else
  echo "skip - the openssl command cannot sign Ed25519 raw input"
fi

# ---- 1,100 idle connections do not lock a real client out -----------------------
# A holder opens them (each sends half a request line and waits), then a
# signed presign must still be answered 200. Bounded: the holder exits
# after 120 s whatever happens; curl waits at most 30 s.
if [ $SIGNS = 1 ]; then
  /usr/bin/python3 - "$PORT" 1100 >"$TMP/holder" 2>&1 <<'PY' &
import resource, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = n + 64
if soft < want:
    if hard != resource.RLIM_INFINITY and hard < want:
        print("skip: hard open-file limit %d < %d" % (hard, want), flush=True)
        sys.exit(0)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
conns = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"GET /v2/public/presigned-urls HTTP/1.1\r\nHost: x\r\n")
    conns.append(s)
print("holding %d" % len(conns), flush=True)
time.sleep(120)
PY
  HOLDER=$!
  for _ in $(seq 600); do
    grep -q '^holding\|^skip\|Error' "$TMP/holder" && break
    sleep 0.1
  done
  if grep -q '^skip' "$TMP/holder"; then
    echo "skip - $(cat "$TMP/holder")"
  else
    grep -q '^holding 1100$' "$TMP/holder" || fail "holder: $(cat "$TMP/holder")"
    : >"$TMP/empty"
    sign GET "/v2/public/presigned-urls?count=1&uploadItemType=video" "$TMP/empty" >"$TMP/hdrs"
    code=$(curl -s -m 30 -o "$TMP/body" -w '%{http_code}' -H @"$TMP/hdrs" \
      "$BASE/v2/public/presigned-urls?count=1&uploadItemType=video")
    [ "$code" = 200 ] && grep -q '"objectKey":"uploads/video/' "$TMP/body" ||
      fail "with 1,100 idle connections open: $code $(cat "$TMP/body")"
    ok "a signed presign is answered while 1,100 idle connections are open"
  fi
  kill "$HOLDER" 2>/dev/null
  wait "$HOLDER" 2>/dev/null
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
  "$BASE/v2/public/presigned-urls?count=1&uploadItemType=image")
[ "$code" = 401 ] || fail "https presign: $code"
stop_server INT
[ -f "$ca" ] && fail "certificate file left behind"
ok "HTTPS with a self-signed certificate; SIGINT stops it, exit 0"

# ---- datasets, snake_case, --require-folder, --fault-api-error ------------------
start_server --dataset ds-one --dataset ds-two --v2-snake-case --require-folder \
  --fault-api-error presign:503:1 --fault-api-error dataset:AUTHORISATION_ERROR
grep -q '^dataset: ds-one folder: ' "$TMP/out" && grep -q '^dataset: ds-two folder: ' "$TMP/out" ||
  fail "dataset lines: $(cat "$TMP/out")"
if [ $SIGNS = 1 ]; then
  DS=ds-two
  code=$(v2 "/v2/public/presigned-urls?count=1&uploadItemType=dicomFile")
  [ "$code" = 503 ] && grep -q '^{"message": ' "$TMP/body" || fail "injected 503: $code $(cat "$TMP/body")"
  code=$(v2 "/v2/public/presigned-urls?count=1&uploadItemType=dicomFile")
  [ "$code" = 200 ] && grep -q '"object_key":"uploads/dicomFile/' "$TMP/body" ||
    fail "snake_case presign: $code $(cat "$TMP/body")"
  code=$(v1 "$TMP/ds")
  [ "$code" = 403 ] && grep -q '"response": \["AUTHORISATION_ERROR"\]' "$TMP/body" ||
    fail "injected v1 error: $code $(cat "$TMP/body")"
  DS=ds-three
  code=$(v1 "$TMP/ds")
  [ "$code" = 404 ] && grep -q 'RESOURCE_NOT_FOUND_ERROR' "$TMP/body" || fail "unknown dataset: $code"
  ok "two datasets, snake_case, injected presign 503 (once) and v1 AUTHORISATION_ERROR"
fi
stop_server TERM
echo "all passed"
