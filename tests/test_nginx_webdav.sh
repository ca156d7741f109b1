#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions are called through check and the trap
# Test of scripts/nginx-webdav, the nginx WebDAV server the integration tests
# and benchmarks PUT to: start (HTTP, HTTPS, own store, two workers), PUT
# create/overwrite, TLS verification, connection counting, worker CPU, stop.
# Self-contained; every server is stopped by the trap on any exit.
set -uo pipefail

SRC=${BULKUP_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
NW=$SRC/scripts/nginx-webdav
TMP=$(mktemp -d)
STATES=()
PASS=0 FAIL=0

cleanup() {
	local s
	for s in "${STATES[@]}"; do
		timeout 20 "$NW" stop "$s" >/dev/null 2>&1 || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

check() { # check NAME COMMAND...
	local name=$1
	shift
	if "$@"; then
		PASS=$((PASS + 1))
		echo "ok   - $name"
	else
		FAIL=$((FAIL + 1))
		echo "FAIL - $name"
	fi
}

finish() {
	echo "$PASS passed, $FAIL failed"
	((FAIL == 0))
	exit
}

# start STATE-DIR ARGS...: start a server, eval its variables (NGINX_*).
start() {
	local dir=$1 out
	shift
	STATES+=("$dir")
	unset NGINX_PORT NGINX_URL NGINX_STORE NGINX_PID NGINX_CA
	out=$(timeout 30 "$NW" start "$dir" "$@") || return 1
	eval "$out"
	[[ ${NGINX_PORT-} =~ ^[0-9]+$ && -n ${NGINX_URL-} && -d ${NGINX_STORE-} && ${NGINX_PID-} =~ ^[0-9]+$ ]]
}

# A process is gone when /proc has no such pid or it is a zombie (the daemon's
# parent is whatever reaps orphans here; it may not reap at once, or at all).
gone() {
	local state
	state=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 0
	[[ -z $state || $state == Z ]]
}
port_closed() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
is_number() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
http_code() { # http_code FILE URL [CURL-ARGS...]: PUT FILE, print the status
	local f=$1 u=$2
	shift 2
	curl -s --noproxy '*' --max-time 20 -o /dev/null -w '%{http_code}' "$@" -T "$f" "$u"
}

if [[ ! -x /usr/sbin/nginx ]] && ! command -v nginx >/dev/null; then
	echo "nginx is not installed (Debian package nginx)"
	FAIL=1
	finish
fi

head -c 1048576 /dev/urandom >"$TMP/1m.bin"
head -c 16384 /dev/urandom >"$TMP/16k.bin"

# --- plain HTTP, default store under /dev/shm, counting mode ---------------
S1=$TMP/plain
check "start plain HTTP" start "$S1" --count-connections
check "URL is http://127.0.0.1:PORT" [ "$NGINX_URL" = "http://127.0.0.1:$NGINX_PORT" ]
check "state files in DIR" test -f "$S1/nginx.conf" -a -f "$S1/nginx.pid" -a -f "$S1/env"
check "config has access_log to DIR (counting mode)" grep -q "access_log $S1/access.log" "$S1/nginx.conf"
P1=$NGINX_PID PORT1=$NGINX_PORT STORE1=$NGINX_STORE
check "store is under /dev/shm" test "${STORE1#/dev/shm/}" != "$STORE1"
check "PUT new nested file -> 201" [ "$(http_code "$TMP/1m.bin" "$NGINX_URL/a/b/c.bin")" = 201 ]
check "stored file is byte-identical" cmp -s "$TMP/1m.bin" "$STORE1/a/b/c.bin"
check "PUT same path again -> 204" [ "$(http_code "$TMP/16k.bin" "$NGINX_URL/a/b/c.bin")" = 204 ]
check "overwritten file is byte-identical" cmp -s "$TMP/16k.bin" "$STORE1/a/b/c.bin"

# Three PUTs in one curl command share one keep-alive connection.
before=$("$NW" connections "$S1")
check "connections before is 2 (the two PUTs above)" [ "$before" = 2 ]
codes=$(curl -s --noproxy '*' --max-time 20 -o /dev/null -o /dev/null -o /dev/null -w '%{http_code} ' \
	-T "$TMP/16k.bin" "$NGINX_URL/k/1" -T "$TMP/16k.bin" "$NGINX_URL/k/2" -T "$TMP/16k.bin" "$NGINX_URL/k/3")
check "3 PUTs over keep-alive -> 201 201 201" [ "$codes" = "201 201 201 " ]
after=$("$NW" connections "$S1")
check "connections counts 1 for the 3 keep-alive PUTs" [ "$((after - before))" = 1 ]
check "connections query does not count itself" [ "$("$NW" connections "$S1")" = "$after" ]
check "access log: 3 distinct connections in all" [ "$("$NW" connections "$S1" --log)" = 3 ]
check "access log: last connection served requests 1..3" \
	[ "$(tail -n 3 "$S1/access.log" | awk '{ printf "%s ", $2 }')" = "1 2 3 " ]
cpu=$("$NW" workers-cpu "$S1")
check "workers-cpu prints a number ($cpu)" is_number "$cpu"
refuses_start() { ! "$NW" start "$1" >/dev/null 2>&1; }
check "start refuses a running DIR" refuses_start "$S1"

check "stop" "$NW" stop "$S1"
check "master pid gone" gone "$P1"
check "port closed" port_closed "$PORT1"
check "store under /dev/shm removed" test ! -e "$STORE1"
check "stop again is a no-op" "$NW" stop "$S1"

# --- HTTPS ------------------------------------------------------------------
S2=$TMP/tls
check "start TLS" start "$S2" --tls
check "URL is https://" [ "$NGINX_URL" = "https://127.0.0.1:$NGINX_PORT" ]
check "NGINX_CA is a certificate" grep -q "BEGIN CERTIFICATE" "${NGINX_CA:-/nonexistent}"
check "config has access_log off" grep -q "access_log off;" "$S2/nginx.conf"
check "PUT with --cacert -> 201" [ "$(http_code "$TMP/16k.bin" "$NGINX_URL/t/x.bin" --cacert "$NGINX_CA")" = 201 ]
check "stored file is byte-identical" cmp -s "$TMP/16k.bin" "$NGINX_STORE/t/x.bin"
check "PUT via localhost name -> 204" \
	[ "$(http_code "$TMP/16k.bin" "https://localhost:$NGINX_PORT/t/x.bin" --cacert "$NGINX_CA")" = 204 ]
curl -s --noproxy '*' --max-time 20 -o /dev/null -T "$TMP/16k.bin" "$NGINX_URL/t/y.bin"
rc=$?
check "PUT without --cacert: curl exits 60 (got $rc)" [ "$rc" = 60 ]
before=$("$NW" connections "$S2")
check "TLS connections so far: 3 (one failed handshake)" [ "$before" = 3 ]
curl -s --noproxy '*' --max-time 20 --cacert "$NGINX_CA" -o /dev/null -o /dev/null -o /dev/null \
	-T "$TMP/16k.bin" "$NGINX_URL/k/1" -T "$TMP/16k.bin" "$NGINX_URL/k/2" -T "$TMP/16k.bin" "$NGINX_URL/k/3"
after=$("$NW" connections "$S2")
check "one TLS handshake for 3 keep-alive PUTs" [ "$((after - before))" = 1 ]
refuses_log() { ! "$NW" connections "$1" --log 2>/dev/null; }
check "--log refused without --count-connections" refuses_log "$S2"
P2=$NGINX_PID PORT2=$NGINX_PORT
check "stop TLS" "$NW" stop "$S2"
check "TLS master pid gone" gone "$P2"
check "TLS port closed" port_closed "$PORT2"

# --- own store, two workers -------------------------------------------------
S3=$TMP/own
mkdir -p "$TMP/store3"
check "start --store --workers 2" start "$S3" --store "$TMP/store3" --workers 2
check "NGINX_STORE is the given store" [ "$NGINX_STORE" = "$TMP/store3" ]
check "two worker processes" [ "$(pgrep -c -P "$NGINX_PID" 2>/dev/null || echo 0)" = 2 ]
check "PUT into own store -> 201" [ "$(http_code "$TMP/16k.bin" "$NGINX_URL/o.bin")" = 201 ]
check "file lands in own store" cmp -s "$TMP/16k.bin" "$TMP/store3/o.bin"
cpu=$("$NW" workers-cpu "$S3")
check "workers-cpu with 2 workers prints a number ($cpu)" is_number "$cpu"
P3=$NGINX_PID
check "stop own-store server" "$NW" stop "$S3"
check "own-store master pid gone" gone "$P3"
check "given store is kept by stop" test -f "$TMP/store3/o.bin"


# --- a DIR used before: start's options are its own -------------------------
# start cleans up what a previous server left in DIR (cmd_stop reads its
# state); the options of the new start must win over the old state's.
S4=$TMP/reused
check "start plain in a fresh DIR" start "$S4"
check "stop it" "$NW" stop "$S4"
check "restart the same DIR with --count-connections --tls" start "$S4" --count-connections --tls
check "reused DIR: URL is https://" [ "$NGINX_URL" = "https://127.0.0.1:$NGINX_PORT" ]
check "reused DIR: config has the access log" grep -q "access_log $S4/access.log" "$S4/nginx.conf"
check "reused DIR: PUT with --cacert -> 201" [ "$(http_code "$TMP/16k.bin" "$NGINX_URL/r.bin" --cacert "${NGINX_CA:-/nonexistent}")" = 201 ]
check "reused DIR: access log counts 1 connection" [ "$("$NW" connections "$S4" --log)" = 1 ]
check "stop the reused DIR" "$NW" stop "$S4"
check "restart the same DIR plain" start "$S4"
check "reused DIR again: URL is http://" [ "$NGINX_URL" = "http://127.0.0.1:$NGINX_PORT" ]
check "reused DIR again: access log off" grep -q "access_log off;" "$S4/nginx.conf"
check "stop the reused DIR again" "$NW" stop "$S4"

finish
