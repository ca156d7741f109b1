#!/usr/bin/env bash
# test_slurm.sh - README's Slurm job-array recipe, run for real on a
# single-node Slurm cluster started here (tests/engines/slurm-cluster), the
# recipe's three blocks taken from README.md (tests/engines/recipe.py) and
# run unchanged; the tasks upload to nginx on loopback.
#
#   1. The 16-task array over 400 files (a manifest with signed-looking
#      URLs): every task COMPLETED with exit 0; at nginx every file PUT
#      exactly once and byte-identical; `bulkup report merge` exact (400
#      submitted and succeeded, 16 shards, none missing); each task's
#      count equals `bulkup upload --dry-run` for its shard.
#   2. One shard rerun alone (`sbatch --array=7`, as the recipe's comment
#      says), its PUTs through tests/engines/gate.py, which forwards
#      half of them and holds the rest: when nginx has stored that half
#      and the journal holds it, `scontrol requeue` kills the task (SIGTERM); the gate then
#      opens and the requeued task runs again: it skips those (its
#      journal), and at nginx each of the shard's files was PUT exactly
#      once over both runs.
#
# Needs root, slurm-wlm and munge (else exit 77). Prints "N passed, N failed".
set -uo pipefail
for c in sbatch squeue scontrol sinfo; do
	command -v "$c" >/dev/null || { echo "test_slurm: skipped: no $c (apt-get install slurm-wlm)"; exit 77; }
done
[[ -x /usr/sbin/munged ]] || { echo "test_slurm: skipped: no munged (apt-get install munge)"; exit 77; }
[[ $(id -u) -eq 0 ]] || { echo "test_slurm: skipped: the Slurm daemons need root"; exit 77; }
source "$(dirname "$0")/lib.sh"

WAIT=120 # seconds for any one wait: every wait is on an event, this bounds it
FILES=400

# wait_for DESCRIPTION COMMAND...: until COMMAND succeeds, at most $WAIT s.
wait_for() {
	local what=$1 deadline=$((SECONDS + WAIT))
	shift
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			echo "# gave up after ${WAIT}s waiting for: $what"
			return 1
		fi
		sleep 0.05
	done
}
# job_ended JOB: scontrol knows JOB (finished jobs stay listed for
# MinJobAge, 300 s) and every task of it is in a final state.
job_ended() {
	local out
	out=$(scontrol -o show job "$1" 2>/dev/null) && [[ -n $out ]] || return 1
	! grep -qvE 'JobState=(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED) ' <<<"$out"
}

T_START=$EPOCHREALTIME
t0=$EPOCHREALTIME
eval "$("$ENGINES/slurm-cluster" start "$WORK/slurm")" || { echo "the Slurm cluster did not start"; exit 1; }
CLEANUP+=("'$ENGINES/slurm-cluster' stop '$WORK/slurm'")
export SLURM_CONF
echo "# cluster up in $(elapsed "$t0") s"

recipe slurm-job >"$WORK/upload.sbatch" && recipe slurm-submit >"$WORK/submit.sh" &&
	recipe slurm-merge >"$WORK/merge.sh" || { echo "README: a Slurm block is missing"; exit 1; }
check "the recipe is a 16-task array (--array=0-15, N=16)" \
	grep -qx -e '#SBATCH --array=0-15' "$WORK/upload.sbatch"
check "the recipe's N is 16" grep -qx 'N=16' "$WORK/upload.sbatch"

make_data "$WORK/data" "$FILES" 18
# manifest NGINX_URL PREFIX: 'path,url' lines for every file, URLs with a
# query as signed URLs have (the shard key stops before it).
manifest() {
	"$PY" - "$WORK/data" "$1" "$2" <<'PY'
import os, sys
root, base, prefix = sys.argv[1:]
i = 0
for d, _, files in sorted(os.walk(root)):
    for f in sorted(files):
        p = os.path.join(d, f)
        i += 1
        print("%s,%s/%s/%s?X-Sig=%d" % (p, base, prefix, os.path.relpath(p, root), i))
PY
}

# ---- 1. the whole array ----------------------------------------------------------
nginx_start array
manifest "$NGINX_URL" run1 >"$WORK/urls.csv"
mkdir "$WORK/array" && cp "$WORK/upload.sbatch" "$WORK/array/"
cd "$WORK/array" || exit 1
t0=$EPOCHREALTIME
MANIFEST=$WORK/urls.csv bash "$WORK/submit.sh" >submit.out 2>&1
JOB=$(sed -n 's/^Submitted batch job \([0-9][0-9]*\)$/\1/p' submit.out)
check "sbatch upload.sbatch: submitted" test -n "$JOB"
wait_for "job $JOB to end" job_ended "$JOB"
echo "# 16 tasks over $FILES files, submit to last task ended: $(elapsed "$t0") s"
scontrol -o show job "$JOB" >tasks.txt 2>&1
check "16 array tasks, all COMPLETED with exit code 0" \
	test "$(grep -c 'JobState=COMPLETED .*ExitCode=0:0' tasks.txt)" -eq 16 -a "$(grep -c ArrayTaskId= tasks.txt)" -eq 16
check "each task wrote its log, journal, report and results" \
	bash -c 'for k in $(seq 0 15); do for f in upload.$k.log run.$k.journal r.$k.json res.$k.jsonl; do [ -f $f ] || { echo "no $f"; exit 1; }; done; done'
check "nginx: every file PUT exactly once, byte-identical" \
	verify stored --manifest "$WORK/urls.csv" --store "$NGINX_STORE" --log "$NGINX_LOG"
bash "$WORK/merge.sh" >merge.out 2>&1
check "the recipe's merge: exit 0" test $? -eq 0
check "merged report exact: $FILES submitted and succeeded, 16 shards, none missing" \
	verify merged report.json --total "$FILES" --shards 16
dry_counts() {
	local k n s
	for k in $(seq 0 15); do
		n=$(bulkup upload --dry-run --shard "$k/16" --manifest "$WORK/urls.csv" |
			sed -n 's/.* items in the input, \([0-9]*\) in shard.*/\1/p')
		s=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["submitted"])' "r.$k.json")
		[[ $n == "$s" ]] || { echo "shard $k: dry run $n, task $s"; return 1; }
	done
}
check "each task uploaded what --dry-run counts for its shard" dry_counts
echo "# phase 1 done at $(elapsed "$T_START") s"

# ---- 2. a task killed and requeued -------------------------------------------------
nginx_start requeue
# The gate's port is part of the URLs, hence of the shard keys: the
# manifest is written once the port is known, and HOLD follows from it.
mkdir "$WORK/gate"
"$PY" "$ENGINES/gate.py" --upstream "$NGINX_PORT" --pass-file "$WORK/gate/pass" --dir "$WORK/gate" &
GATE=$!
CLEANUP+=("kill $GATE 2>/dev/null")
wait_for "the gate's port" test -s "$WORK/gate/port" || exit 1
manifest "http://127.0.0.1:$(cat "$WORK/gate/port")" run2 >"$WORK/urls2.csv"
S=$(verify count --manifest "$WORK/urls2.csv" --shard 7/16)
HOLD=$((S / 2)) # stored before the kill; the gate holds the rest
echo "# shard 7 of 16 holds $S of the $FILES files; the gate passes $HOLD"
check "shard 7 has at least 2 files" test "$S" -ge 2
echo "$HOLD" >"$WORK/gate/pass"
gate() { grep -q "$1" "$WORK/gate/status"; }

mkdir "$WORK/requeue" && cp "$WORK/upload.sbatch" "$WORK/requeue/"
cd "$WORK/requeue" || exit 1
RERUN=$(sed -n 's/^# .*rerun one with: \(sbatch --array=7 upload.sbatch\)$/\1/p' upload.sbatch)
check "the recipe says how to rerun one shard: $RERUN" test -n "$RERUN"
MANIFEST=$WORK/urls2.csv $RERUN >submit.out 2>&1
JOB2=$(sed -n 's/^Submitted batch job \([0-9][0-9]*\)$/\1/p' submit.out)
check "$RERUN: submitted" test -n "$JOB2"
journalled() { [[ $(grep -c '^J1 ' run.7.journal 2>/dev/null) -eq $HOLD ]]; }
wait_for "the gate to pass $HOLD and hold more" gate "passed=$HOLD held=[1-9]"
wait_for "the journal to record $HOLD files" journalled
check "mid-run: nginx stored $HOLD PUTs, the task holds more at the gate, it is RUNNING" \
	bash -c "[ \$('$PY' '$ENGINES/verify.py' puts --log '$NGINX_LOG') -eq $HOLD ] && gate() { grep -q \"\$1\" '$WORK/gate/status'; } && gate 'held=[1-9]' && scontrol -o show job $JOB2 | grep -q 'JobState=RUNNING '"
echo "# mid-run at $(elapsed "$T_START") s"
scontrol requeue "${JOB2}_7"
check "scontrol requeue ${JOB2}_7: accepted" test $? -eq 0
wait_for "the killed task's connections to close" gate "held=0 dropped=[1-9]"
pending() { scontrol -o show job "$JOB2" 2>/dev/null | grep -q 'JobState=PENDING .*Restarts=1 '; }
wait_for "the task to be pending again" pending
check "the killed run's report: $HOLD succeeded, the rest cancelled" \
	"$PY" -c 'import json,sys; s=json.load(open("r.7.json"))["summary"]; sys.exit(0 if s["succeeded"]==int(sys.argv[1]) and s["failed"]==0 and s["submitted"]==s["succeeded"]+s["cancelled"] else print(s) or 1)' "$HOLD"
echo "# requeued and pending at $(elapsed "$T_START") s"
kill -USR1 "$GATE" # open the gate
# Slurm holds a requeued job ~2 minutes (BeginTime) before it may run
# again. Lift that, but not within 2 s of the kill: slurmd revokes the
# killed job's credential with a time in whole seconds and refuses a new
# launch whose credential is not strictly newer ("Job credential
# revoked": the task fails instead of starting).
killed=$(date +%s)
wait_for "2 s after the kill" eval '(( $(date +%s) >= killed + 2 ))'
scontrol update JobId="${JOB2}_7" StartTime=now
check "scontrol update JobId=${JOB2}_7 StartTime=now: accepted" test $? -eq 0
restarted() { scontrol -o show job "$JOB2" 2>/dev/null | grep -q 'Restarts=1 '; }
wait_for "the requeued task to end" eval 'restarted && job_ended "$JOB2"'
scontrol -o show job "$JOB2" >task.txt 2>&1
check "the task ran twice (Restarts=1) and COMPLETED with exit 0" \
	grep -q 'JobState=COMPLETED .*Restarts=1 .*ExitCode=0:0' task.txt
check "the rerun found the $HOLD files in its journal" \
	grep -q "journal run.7.journal: $HOLD files already uploaded" upload.7.log
check "its report: the $((S - HOLD)) others submitted and succeeded" \
	"$PY" -c 'import json,sys; s=json.load(open("r.7.json"))["summary"]; n=int(sys.argv[1]); sys.exit(0 if s["submitted"]==n and s["succeeded"]==n else print(s) or 1)' "$((S - HOLD))"
check "nginx: each of shard 7's $S files PUT exactly once over both runs, byte-identical" \
	verify stored --manifest "$WORK/urls2.csv" --shard 7/16 --store "$NGINX_STORE" --log "$NGINX_LOG"
check "the gate forwarded $S PUTs in all" gate "passed=$S "
echo "# phase 2 done at $(elapsed "$T_START") s"
cd "$WORK" || exit 1
finish
