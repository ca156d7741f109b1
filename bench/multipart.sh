#!/usr/bin/env bash
# bench/multipart.sh - multipart part sizes, and one large file in one PUT
# against the same file in parallel parts, to s3rver 3.7.1 or Azurite
# 3.35.0 on loopback (bench/RESULTS.md, "Multipart part size").
#
#   bench/multipart.sh [BUILD_DIR] [REPS] [s3rver|azurite]
#                                           default: build, 3, s3rver
#
# Cases, alternated in each repetition (same server, same data):
#   4 x 256 MiB at 8, 16 and 32 MiB parts (16 transfers);
#   1 x 1 GiB as one PUT (multipart off), and in 8 MiB parts.
# Prints one line per run (case, seconds, MB/s) and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
REPS=${2:-3}
SERVER=${3:-s3rver}
NPM=${BULKUP_NPM_DIR:-build/npm}
UP=$BUILD/tests/mp_upload
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bulkup-mpbench.XXXXXX")
S3PID=""
cleanup() {
  [ -n "$S3PID" ] && kill "$S3PID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

for i in 1 2 3 4; do head -c $((256 << 20)) /dev/urandom >"$WORK/f$i"; done
cat "$WORK"/f1 "$WORK"/f2 "$WORK"/f3 "$WORK"/f4 >"$WORK/big"

STORAGE=s3
if [ "$SERVER" = azurite ]; then
  STORAGE=azure
  SAS=$(/usr/bin/python3 tests/support/azure_sas.py bkt --perm racwd)
  ASAS=$(/usr/bin/python3 tests/support/azure_sas.py --account)
fi
# The object URL of NAME on the server now running.
obj() {
  if [ "$SERVER" = azurite ]; then
    echo "http://127.0.0.1:$PORT/devstoreaccount1/bkt/$1?$SAS"
  else
    echo "http://127.0.0.1:$PORT/bkt/$1"
  fi
}
start_s3rver() {
  rm -rf "$WORK/s3"
  if [ "$SERVER" = azurite ]; then
    "$NPM/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort 0 \
      --location "$WORK/s3" --skipApiVersionCheck --disableTelemetry >"$WORK/s3.log" 2>&1 &
    S3PID=$!
    for _ in $(seq 100); do
      PORT=$(grep -o 'listens on http://127.0.0.1:[0-9]*' "$WORK/s3.log" | sed 's/.*://') && [ -n "$PORT" ] && {
        curl -sf -X PUT -H 'x-ms-version: 2023-11-03' -H 'Content-Length: 0' \
          "http://127.0.0.1:$PORT/devstoreaccount1/bkt?restype=container&$ASAS" >/dev/null
        return
      }
      sleep 0.1
    done
  else
    "$NPM/node_modules/.bin/s3rver" -d "$WORK/s3" -a 127.0.0.1 -p 0 \
      --configure-bucket bkt >"$WORK/s3.log" 2>&1 &
    S3PID=$!
    for _ in $(seq 100); do
      PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$WORK/s3.log" | sed 's/.*://') && [ -n "$PORT" ] && return
      sleep 0.1
    done
  fi
  echo "$SERVER did not start" >&2
  exit 1
}
stop_s3rver() { kill "$S3PID"; wait "$S3PID" 2>/dev/null || true; S3PID=""; }

for r in $(seq "$REPS"); do
  for ps in 8 16 32; do
    name="4x256M/${ps}M"
    start_s3rver
    args=()
    for i in 1 2 3 4; do args+=("$WORK/f$i" "$(obj f$i)"); done
    t0=$(date +%s.%N)
    "$UP" --storage $STORAGE --workers 16 --threshold $((8 << 20)) --part-size $((ps << 20)) "${args[@]}" >"$WORK/out" 2>&1 || { cat "$WORK/out"; exit 1; }
    t1=$(date +%s.%N)
    stop_s3rver
    /usr/bin/python3 -c "s=$t1-$t0; print('%-14s %7.2f s %8.1f MB/s' % ('$name', s, (1<<30)/s/1e6))" | tee -a "$WORK/results"
  done
  for mode in single parts8; do
    start_s3rver
    if [ $mode = single ]; then th=$((1 << 40)); else th=$((8 << 20)); fi
    t0=$(date +%s.%N)
    "$UP" --storage $STORAGE --workers 16 --threshold $th --part-size $((8 << 20)) "$WORK/big" "$(obj big)" >"$WORK/out" 2>&1 || { cat "$WORK/out"; exit 1; }
    t1=$(date +%s.%N)
    stop_s3rver
    /usr/bin/python3 -c "s=$t1-$t0; print('%-14s %7.2f s %8.1f MB/s' % ('1G/$mode', s, (1<<30)/s/1e6))" | tee -a "$WORK/results"
  done
done
echo "# medians of $REPS"
/usr/bin/python3 - "$WORK/results" <<'PY'
import statistics, sys, collections
d = collections.OrderedDict()
for line in open(sys.argv[1]):
    f = line.split()
    d.setdefault(f[0], []).append(float(f[3]))
for k, v in d.items():
    print("%-14s median %8.1f MB/s  (runs: %s)" % (k, statistics.median(v), ", ".join("%.0f" % x for x in v)))
PY
