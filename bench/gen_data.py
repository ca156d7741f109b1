#!/usr/bin/env python3
"""Generate a benchmark data set, seeded and reproducible (same seed, same bytes).

    gen_data.py KIND DIR [--count N] [--seed S]

KIND:
  small   N files of 16 KiB (default N 20,000)
  large   N files of 256 MiB (default N 4)
  mixed   N files, sizes log-uniform in [1 KiB, 8 MiB] (default N 5,000)
  scale   N files of 1 KiB (default N 1,000)
--size B makes every file B bytes instead.

Files are DIR/dNN/fNNNNNN.jpg, at most 1,000 per folder (a ".jpg" name, so that
every tool guesses the same image Content-Type). DIR/../<basename>.files.tsv
(outside the uploaded tree) lists "relpath<TAB>size" in sorted order: the order
the tools walk in, and what the verifier checks against.
Content is pseudo-random (incompressible), from random.Random(seed), one
stream per file so that a file's bytes do not depend on the count.
"""
import argparse
import math
import os
import random
import sys

KIB = 1024
MIB = 1024 * KIB

DEFAULTS = {"small": 20000, "large": 4, "mixed": 5000, "scale": 1000}


def sizes(kind, count, seed, size=None):
    if size:
        return [size] * count
    if kind == "small":
        return [16 * KIB] * count
    if kind == "large":
        return [256 * MIB] * count
    if kind == "scale":
        return [KIB] * count
    rng = random.Random(f"{seed}-sizes")
    lo, hi = math.log(KIB), math.log(8 * MIB)
    return [int(math.exp(rng.uniform(lo, hi))) for _ in range(count)]


def write_file(path, size, seed, index):
    rng = random.Random(f"{seed}-{index}")
    chunk = 4 * MIB
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(chunk, left)
            f.write(rng.randbytes(n))
            left -= n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=sorted(DEFAULTS))
    ap.add_argument("dir")
    ap.add_argument("--count", type=int)
    ap.add_argument("--seed", default="bulkup-bench-1")
    ap.add_argument("--size", type=int, help="every file of this many bytes (overrides KIND's)")
    a = ap.parse_args()
    count = a.count if a.count is not None else DEFAULTS[a.kind]
    if count < 1:
        sys.exit("gen_data: --count must be positive")
    os.makedirs(a.dir, exist_ok=False)
    rows = []
    for i, size in enumerate(sizes(a.kind, count, a.seed, a.size)):
        sub = f"d{i // 1000:02d}" if count <= 100000 else f"d{i // 1000:04d}"
        rel = f"{sub}/f{i:06d}.jpg" if count <= 1000000 else f"{sub}/f{i:08d}.jpg"
        os.makedirs(os.path.join(a.dir, sub), exist_ok=True)
        write_file(os.path.join(a.dir, rel), size, a.seed, i)
        rows.append((rel, size))
    rows.sort()
    listing = os.path.normpath(a.dir) + ".files.tsv"
    with open(listing, "w") as f:
        for rel, size in rows:
            f.write(f"{rel}\t{size}\n")
    total = sum(s for _, s in rows)
    print(f"{a.kind}: {count} files, {total} bytes in {a.dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
