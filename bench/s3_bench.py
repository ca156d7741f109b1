#!/usr/bin/python3
"""S3 benchmark: bulkup against aws s3 cp, rclone and s3cmd, side by side,
on one s3rver 3.7.1 (loopback, store in /dev/shm, request logging off).

    bench/s3_bench.py [--files 1000] [--size 16384] [--reps 3]
                      [--bulkup build/bulkup] [--out bench/runs/s3-DATE.jsonl]
                      [--large N]   (N x 256 MiB files, bulkup and aws only)

Every run writes a fresh prefix; tools alternate (round-robin, `reps`
rounds) and the figures are medians. For each run: wall time, files/s,
the client's user+sys CPU (wait4 rusage of the process tree), and
s3rver's own CPU (utime+stime of its process from /proc, before and
after). s3rver's limit, as for nginx, is 1 / its CPU per file, taken from
the tool that cost it least per file (PUTs alone); a tool's fraction is
its rate over that limit, and "s3rver busy" its rate times its own server
CPU per file.
The run is checked: the store must hold every file, byte-identical for a
sample of 20.
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NPM = os.environ.get('BULKUP_NPM_DIR', os.path.join(ROOT, 'build', 'npm'))
S3RVER = os.path.join(NPM, 'node_modules', '.bin', 's3rver')
TICK = os.sysconf('SC_CLK_TCK')


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_cpu(pid):
    """utime+stime of pid and its threads, seconds."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def node_pid(pid):
    """s3rver's bin is a node script: the process itself (exec'd)."""
    return pid


def run_timed(cmd, env, log):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                         stderr=log, stdin=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    return os.waitstatus_to_exitcode(status), wall, ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--files', type=int, default=1000)
    ap.add_argument('--size', type=int, default=16384)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--large', type=int, default=0)
    ap.add_argument('--bulkup', default=os.path.join(ROOT, 'build', 'bulkup'))
    ap.add_argument('--out')
    ap.add_argument('--only', help='comma-separated tool names')
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix='bulkup-s3bench.', dir='/dev/shm')
    store = os.path.join(work, 'store')
    src = os.path.join(work, 'src')
    os.makedirs(store)
    os.makedirs(src)
    rng = random.Random(1)
    size = args.size
    for i in range(args.files):
        with open(os.path.join(src, 'f%05d.bin' % i), 'wb') as f:
            f.write(rng.randbytes(size))
    if args.large:
        size = 256 << 20
        shutil.rmtree(src)
        os.makedirs(src)
        for i in range(args.large):
            with open(os.path.join(src, 'L%d.bin' % i), 'wb') as f:
                blk = rng.randbytes(1 << 20)
                for _ in range(256):
                    f.write(blk)
        args.files = args.large
    port = free_port()
    srv = subprocess.Popen([S3RVER, '-d', store, '-a', '127.0.0.1', '-p',
                            str(port), '-s', '--configure-bucket', 'bench'],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(('127.0.0.1', port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    ep = 'http://127.0.0.1:%d' % port
    cfg10 = os.path.join(work, 'aws10.cfg')
    cfg64 = os.path.join(work, 'aws64.cfg')
    for path, n in ((cfg10, 10), (cfg64, 64)):
        with open(path, 'w') as f:
            f.write('[default]\nregion = us-east-1\ns3 =\n'
                    '  max_concurrent_requests = %d\n  multipart_threshold = 64MB\n'
                    '  multipart_chunksize = 16MB\n' % n)
    base_env = {k: v for k, v in os.environ.items()
                if k not in ('AWS_CA_BUNDLE', 'AWS_PROFILE')}
    base_env.update(AWS_ACCESS_KEY_ID='S3RVER', AWS_SECRET_ACCESS_KEY='S3RVER',
                    AWS_REGION='us-east-1', HOME=work)

    def bulkup(extra):
        return lambda pfx: ([args.bulkup, 'upload', '--to', 's3://bench/' + pfx,
                             src, '--endpoint-url', ep, '--no-progress', '-q']
                            + extra, {})

    def aws(cfg):
        return lambda pfx: (['/usr/bin/aws', 's3', 'cp', '--recursive',
                             '--only-show-errors', '--endpoint-url', ep, src,
                             's3://bench/' + pfx], {'AWS_CONFIG_FILE': cfg})

    def rclone(n):
        return lambda pfx: (['rclone', 'copy', '--transfers', str(n),
                             '--checkers', str(max(n, 8)), '--s3-provider',
                             'Other', '--s3-endpoint', ep, '--s3-access-key-id',
                             'S3RVER', '--s3-secret-access-key', 'S3RVER',
                             '--s3-region', 'us-east-1', '--no-check-dest',
                             '--s3-upload-cutoff', '64M', '--s3-chunk-size',
                             '16M', '--s3-upload-concurrency', '4',
                             '--config', '/dev/null', src,
                             ':s3:bench/' + pfx], {})

    def s3cmd(pfx):
        return (['s3cmd', '--config', '/dev/null', '--access_key', 'S3RVER',
                 '--secret_key', 'S3RVER', '--host', '127.0.0.1:%d' % port,
                 '--host-bucket', '127.0.0.1:%d' % port, '--no-ssl',
                 '--region', 'us-east-1', '--no-progress', '--quiet',
                 '--multipart-chunk-size-mb', '16',
                 'put', '--recursive', src + '/', 's3://bench/' + pfx + '/'],
                {})

    tools = [('bulkup', bulkup([])),
             ('bulkup-checksum-none', bulkup(['--checksum', 'none'])),
             ('bulkup-md5', bulkup(['--checksum', 'md5'])),
             ('aws-10', aws(cfg10)), ('aws-64', aws(cfg64)),
             ('rclone-4', rclone(4)), ('rclone-16', rclone(16)),
             ('rclone-64', rclone(64)), ('s3cmd', s3cmd)]
    if args.large:
        tools = [t for t in tools if t[0] in ('bulkup', 'bulkup-checksum-none',
                                              'aws-10', 'aws-64', 'rclone-16')]
    if args.only:
        keep = args.only.split(',')
        tools = [t for t in tools if t[0] in keep]
    results = []
    log = open(os.path.join(work, 'tools.log'), 'w')
    n = 0
    names = sorted(os.listdir(src))
    sample = random.Random(2).sample(names, min(20, len(names)))
    try:
        for rep in range(args.reps):
            for name, mk in tools:
                if name == 's3cmd' and rep > 0:
                    continue  # slow and sequential: once is enough
                n += 1
                pfx = 'r%03d-%s' % (n, name)
                cmd, env = mk(pfx)
                e = dict(base_env)
                e.update(env)
                c0 = proc_cpu(srv.pid)
                rc, wall, cpu = run_timed(cmd, e, log)
                c1 = proc_cpu(srv.pid)
                d = os.path.join(store, 'bench', pfx)
                stored = 0
                for dp, _, fs in os.walk(d):
                    stored += sum(1 for f in fs if f.endswith('._S3rver_object'))
                ok = rc == 0 and stored == args.files
                for s in (sample if ok else []):
                    a = open(os.path.join(src, s), 'rb').read()
                    b = open(os.path.join(d, s + '._S3rver_object'), 'rb').read()
                    if hashlib.sha256(a).digest() != hashlib.sha256(b).digest():
                        ok = False
                r = {'tool': name, 'rep': rep, 'valid': ok, 'rc': rc,
                     'stored': stored, 'wall_s': wall, 'client_cpu_s': cpu,
                     'server_cpu_s': c1 - c0, 'files': args.files,
                     'file_size': size,
                     'files_per_s': args.files / wall,
                     'mb_per_s': args.files * size / wall / 1e6,
                     'limit_files_per_s': args.files / (c1 - c0) if c1 > c0 else None}
                results.append(r)
                print(json.dumps(r), flush=True)
                shutil.rmtree(d, ignore_errors=True)
    finally:
        srv.terminate()
        srv.wait()
        if args.out:
            with open(args.out, 'a') as f:
                for r in results:
                    f.write(json.dumps(r) + '\n')
        shutil.rmtree(work, ignore_errors=True)

    # medians and ratios. s3rver's limit is computed as for nginx: 1 / its
    # CPU per file. The cheapest tool's median CPU per file (PUTs only; a
    # tool that adds HEADs or listings costs s3rver more per file) gives
    # the limit of the work; each tool's "s3rver busy" is its rate times
    # its own server CPU per file (1.0: s3rver's process used a full core).
    print('\n| tool | files/s | MB/s | client CPU ms/file | s3rver CPU ms/file | '
          'fraction of the limit | s3rver busy | valid |')
    print('|---|---|---|---|---|---|---|---|')
    med = {}
    for name, _ in tools:
        rs = [r for r in results if r['tool'] == name]
        if not rs:
            continue
        med[name] = (statistics.median(r['files_per_s'] for r in rs),
                     statistics.median(r['mb_per_s'] for r in rs),
                     statistics.median(r['client_cpu_s'] for r in rs) / args.files,
                     statistics.median(r['server_cpu_s'] for r in rs) / args.files,
                     sum(r['valid'] for r in rs), len(rs))
    cheapest = min(m[3] for m in med.values() if m[3] > 0)
    limit = 1 / cheapest
    for name, (fps, mbs, cc, sc, ok, nr) in med.items():
        print('| %s | %.0f | %.1f | %.3f | %.3f | %.2f | %.2f | %d/%d |' % (
            name, fps, mbs, cc * 1e3, sc * 1e3, fps / limit, fps * sc, ok, nr))
    print('\ns3rver limit (1 / the lowest median s3rver CPU per file): '
          '%.0f files/s' % limit)
    if 'bulkup' in med:
        for peer in ('aws-10', 'aws-64', 'rclone-4', 'rclone-16', 'rclone-64',
                     's3cmd'):
            if peer in med:
                print('bulkup / %s: %.2fx files/s, %.2fx client CPU per file'
                      % (peer, med['bulkup'][0] / med[peer][0],
                         med['bulkup'][2] / med[peer][2]))


if __name__ == '__main__':
    main()
