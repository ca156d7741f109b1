#!/usr/bin/python3
"""bulkup's Python call as a benchmark client, the counterpart of sdk_upload.py.

    bulkup_py_upload.py --to URL_PREFIX DIR [--limit N] [--cacert FILE] [--workers W]

The same files as sdk_upload.py (the directory walk, sorted, the first N with
--limit) to the same URLs (URL_PREFIX/REL), uploaded by one call of
bulkup.upload_files (python/bulkup/upload.py: the C engine through ctypes)
with its defaults (16 workers) unless --workers is given. The pairs are fed
as a generator, as a user with many files would. Needs `import bulkup` to
work: the installed package, or python/ on PYTHONPATH and BULKUP_LIBRARY set
to a built libbulkup.so. Exits 1 if any upload failed.
"""
import argparse
import os
import sys

import bulkup


def walk(root):
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in files:
            out.append(os.path.relpath(os.path.join(d, f), root))
    out.sort()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--to", required=True)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--cacert")
    ap.add_argument("--workers", type=int)
    ap.add_argument("dir")
    a = ap.parse_args()
    files = walk(a.dir)
    if a.limit > 0:
        files = files[: a.limit]
    prefix = a.to.rstrip("/")
    kw = {"progress_bar": False}
    if a.workers:
        kw["workers"] = a.workers
    if a.cacert:
        kw["ca_file"] = a.cacert
    res = bulkup.upload_files(
        ((os.path.join(a.dir, rel), f"{prefix}/{rel}") for rel in files), **kw
    )
    s = res.summary
    print(f"bulkup_py_upload: {s.succeeded} files, {s.bytes_succeeded} bytes, "
          f"{len(res.failures)} failed ({bulkup.__name__} from {bulkup.__file__})",
          file=sys.stderr)
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
