#!/usr/bin/env bash
# test_kubernetes.sh - README's Kubernetes Indexed Job cannot run here (no
# cluster); this checks what can be checked without one: the manifest
# (taken from README.md) parses as YAML and is a batch/v1 Indexed Job
# with as many completions (and parallelism) as the tested Slurm recipe
# has array tasks; and its container's command, run as the pod would run
# it (`sh -c ARGS`, JOB_COMPLETION_INDEX set), hands bulkup exactly the
# arguments README's Slurm script hands it for the same index and the
# same manifest (both run with a stand-in `bulkup` that records argv).
#
# Needs python3-yaml (else exit 77). Prints "N passed, N failed".
set -uo pipefail
/usr/bin/python3 -c 'import yaml' 2>/dev/null || { echo "test_kubernetes: skipped: no python3-yaml"; exit 77; }
source "$(dirname "$0")/lib.sh"

recipe k8s-job >"$WORK/job.yaml" && recipe slurm-job >"$WORK/upload.sbatch" ||
	{ echo "README: a block is missing"; exit 1; }
mkdir "$WORK/bin"
cat >"$WORK/bin/bulkup" <<'SH'
#!/bin/sh
printf '%s\0' "$@" >"$ARGV_OUT"
SH
chmod +x "$WORK/bin/bulkup"

"$PY" - "$WORK" >"$WORK/result" 2>&1 <<'PY'
import os, re, subprocess, sys
import yaml

work = sys.argv[1]
fails = []
def expect(cond, what):
    print(("ok - " if cond else "FAIL - ") + what)
    if not cond:
        fails.append(what)

with open(os.path.join(work, "job.yaml")) as f:
    job = yaml.safe_load(f)
spec = job["spec"]
script = open(os.path.join(work, "upload.sbatch")).read()
m = re.search(r"^#SBATCH --array=0-(\d+)$", script, re.M)
tasks = int(m.group(1)) + 1 if m else None
expect(job.get("apiVersion") == "batch/v1" and job.get("kind") == "Job",
       "the manifest parses as YAML: a batch/v1 Job")
expect(spec.get("completionMode") == "Indexed", "completionMode: Indexed")
expect(tasks is not None and spec.get("completions") == tasks == spec.get("parallelism"),
       f"completions = parallelism = the Slurm array's tasks ({tasks})")
expect(spec["template"]["spec"].get("restartPolicy") == "Never", "restartPolicy: Never")
(c,) = spec["template"]["spec"]["containers"]
argv = c["command"] + c["args"]
expect(argv[:2] == ["sh", "-c"] and len(argv) == 3, "the container runs sh -c ONE_SCRIPT")
mounts = {v["mountPath"] for v in c.get("volumeMounts", [])}
expect(c.get("workingDir") in mounts, "the working directory (journals, reports) is the shared volume")
manifest = re.search(r"MANIFEST=(\S+);", argv[2])
expect(manifest is not None, "the pod names its manifest (MANIFEST=...)")

env = dict(os.environ, PATH=os.path.join(work, "bin") + ":" + os.environ["PATH"])
for k in (0, 7, tasks - 1):
    out_k8s = os.path.join(work, "argv.k8s")
    out_slurm = os.path.join(work, "argv.slurm")
    r1 = subprocess.run(argv, cwd=work, env=dict(env, JOB_COMPLETION_INDEX=str(k), ARGV_OUT=out_k8s))
    r2 = subprocess.run(["bash", os.path.join(work, "upload.sbatch")], cwd=work,
                        env=dict(env, SLURM_ARRAY_TASK_ID=str(k), ARGV_OUT=out_slurm,
                                 MANIFEST=manifest.group(1) if manifest else "?"))
    a1 = open(out_k8s, "rb").read().split(b"\0")[:-1] if r1.returncode == 0 else None
    a2 = open(out_slurm, "rb").read().split(b"\0")[:-1] if r2.returncode == 0 else None
    expect(a1 is not None and a1 == a2 and a1[:1] == [b"upload"] and f"{k}/{tasks}".encode() in a1,
           f"index {k}: the pod and the Slurm task run the same bulkup command line")
    if a1 != a2:
        print("    pod:  ", a1, "\n    slurm:", a2)
sys.exit(1 if fails else 0)
PY
rc=$?
cat "$WORK/result"
PASSED=$(grep -c '^ok - ' "$WORK/result")
FAILED=$(grep -c '^FAIL - ' "$WORK/result")
((rc == 0)) || ((FAILED > 0)) || FAILED=1
finish
