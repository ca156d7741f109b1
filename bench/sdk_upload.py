#!/usr/bin/python3
"""The Python SDK's upload loop (Encord SDK 0.1.190, see shared/spec/PROTOCOL.md),
reproduced as a benchmark peer. Run with Debian's python3 and python3-requests.

    sdk_upload.py --to URL_PREFIX DIR [--limit N] [--cacert FILE]

What the SDK does, and so what this does:
  - a fixed ThreadPoolExecutor of 4 threads;
  - for every file, a NEW requests.Session() with an HTTPAdapter whose
    max_retries is urllib3 Retry(total=3, backoff_factor=1.5,
    status_forcelist=[413, 429, 500, 502, 503], allowed_methods=['PUT'])
    (so a new TCP connection, and a new TLS handshake, per file);
  - the whole file read into memory first, then session.put(url, data=bytes,
    headers={'Content-Type': guessed from the name, 'Cache-Control':
    'max-age=86400'}), no timeout (the SDK passes none);
  - raise on a non-2xx answer.
The files are those of the directory walk, sorted; --limit N keeps the first N
(the benchmark caps this slow loop and reports its rate from that subset).
URL: URL_PREFIX/REL, REL the path relative to DIR (it has no characters that
need percent-encoding in the benchmark's data).
"""
import argparse
import mimetypes
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


def walk(root):
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in files:
            out.append(os.path.relpath(os.path.join(d, f), root))
    out.sort()
    return out


def upload_one(path, url, verify):
    session = requests.Session()
    retry = Retry(
        total=3,
        backoff_factor=1.5,
        status_forcelist=[413, 429, 500, 502, 503],
        allowed_methods=["PUT"],
    )
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    with open(path, "rb") as f:
        data = f.read()
    res = session.put(
        url,
        data=data,
        headers={"Content-Type": content_type, "Cache-Control": "max-age=86400"},
        verify=verify,
    )
    # The SDK never closes its per-file sessions explicitly; they (and their
    # connections) go when garbage-collected, which CPython does at once here.
    if not 200 <= res.status_code < 300:
        raise RuntimeError(f"upload failed: {res.status_code} for {url}")
    return len(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--to", required=True)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--cacert")
    ap.add_argument("dir")
    a = ap.parse_args()
    files = walk(a.dir)
    if a.limit > 0:
        files = files[: a.limit]
    verify = a.cacert if a.cacert else True
    prefix = a.to.rstrip("/")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [
            pool.submit(upload_one, os.path.join(a.dir, rel), f"{prefix}/{rel}", verify)
            for rel in files
        ]
        total = 0
        for fut in futures:
            total += fut.result()  # the first failure raises, as in the SDK
    print(f"sdk_upload: {len(files)} files, {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
