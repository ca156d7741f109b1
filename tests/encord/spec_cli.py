#!/usr/bin/python3
"""spec_cli.py - a stand-in for `bulkup upload`, built on spec_client.py.

  spec_cli.py upload --api URL --key-file FILE --dataset HASH [--folder UUID]
    (--image-group TITLE [--create-video|--no-create-video]
     | --dicom-series TITLE | --video | --image) PATH...

The SDK's four upload calls as ENCORD_WIRE.md describes them (the dataset GET,
presign batches of <= 200, PUTs, one job per group, series, video or image,
the long poll), printing one "DATA_HASH  TITLE" line per data unit. It exists
to prove tests/test_encord_wire.sh's harness: run with
BULKUP_ENCORD_CLI=tests/encord/spec_cli.py, the wire test must pass (ctest
encord_wire_harness). Loopback http only (it is a test tool).
"""

import argparse
import json
import mimetypes
import os
import ssl
import sys
import time
import urllib.parse

from cryptography.hazmat.primitives import serialization

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spec_client import SpecClient, group_element, v1_body  # noqa: E402

RETRY_STATUS = (413, 429, 500, 502, 503)   # §10's status_forcelist


class Failed(Exception):
    pass


def field(d, snake):
    """A response field in either casing (§3)."""
    parts = snake.split("_")
    camel = parts[0] + "".join(p.title() for p in parts[1:])
    return d[snake] if snake in d else d[camel]


def with_retries(call, what):
    for attempt in range(4):                  # r = 3 retries (§10)
        try:
            r = call()
        except OSError as e:
            if attempt == 3:
                raise Failed(f"{what}: {e}") from None
            continue
        if r.status not in RETRY_STATUS or attempt == 3:
            return r
        time.sleep(0.1 * attempt)
    raise AssertionError("unreachable")


class Cli:
    def __init__(self, a):
        u = urllib.parse.urlsplit(a.api)
        # The key: --key-file, else $ENCORD_SSH_KEY_FILE, else $ENCORD_SSH_KEY
        # (the key's text), as the SDK (configs.py:323-330); OpenSSH or PEM.
        if a.key_file or os.environ.get("ENCORD_SSH_KEY_FILE"):
            with open(a.key_file or os.environ["ENCORD_SSH_KEY_FILE"], "rb") as f:
                text = f.read()
        elif os.environ.get("ENCORD_SSH_KEY"):
            text = os.environ["ENCORD_SSH_KEY"].encode()
        else:
            raise Failed("no key: --key-file, ENCORD_SSH_KEY_FILE or ENCORD_SSH_KEY")
        if b"OPENSSH PRIVATE KEY" in text:
            key = serialization.load_ssh_private_key(text, password=None)
        else:
            key = serialization.load_pem_private_key(text, password=None)
        tls = None
        if u.scheme == "https":
            tls = ssl.create_default_context(cafile=a.cacert)
        self.c = SpecClient(u.port, key, a.dataset, tls)
        self.a = a

    def v1(self, body, retry):
        if retry:
            r = with_retries(lambda: self.c.v1(body), "v1 request")
        else:
            r = self.c.v1(body)
        try:
            env = json.loads(r.body)
        except ValueError:
            raise Failed(f"v1 answer HTTP {r.status} is not JSON: {r.body[:200]!r}") from None
        if env.get("status") != 200:
            raise Failed(f"API error {env.get('status')} {env.get('response')}: {env.get('payload')}")
        return env["response"]

    def upload(self, paths, item_type):
        out = []
        for start in range(0, len(paths), 200):
            batch = paths[start:start + 200]
            r = with_retries(lambda: self.c.presign(len(batch), item_type), "presign")
            if r.status not in (200, 204):
                try:
                    doc = json.loads(r.body)
                    msg = doc.get("message") or doc.get("detail")
                except ValueError:
                    msg = r.body[:200]
                raise Failed(f"presigned URLs: HTTP {r.status}: {msg}")
            results = json.loads(r.body)["results"]
            if len(results) != len(batch):
                raise Failed(f"{len(results)} presigned URLs for {len(batch)} files")
            for path, res in zip(batch, results):
                if item_type == "image":
                    ctype = mimetypes.guess_type(path)[0]
                elif item_type == "video":
                    ctype = "application/octet-stream"
                else:
                    ctype = "application/dicom"
                with open(path, "rb") as f:
                    data = f.read()
                url = field(res, "signed_url")
                p = with_retries(lambda: self.c.put(url, data, ctype), "PUT")
                if p.status != 200:
                    raise Failed(f"upload of {path} failed: HTTP {p.status}")
                out.append((field(res, "object_key"), os.path.basename(path)))
        return out

    def job(self, lists):
        di = self.c.data_items(**lists)
        payload = {"dataItems": di, "ignoreErrors": False}
        if self.a.folder:
            payload["folderUuid"] = self.a.folder
        resp = self.v1(v1_body("datasetdatalongpolling", "POST", self.a.dataset, payload), False)
        ph = resp["process_hash"]
        while True:
            resp = self.v1(v1_body("datasetdatalongpolling", "GET", self.a.dataset,
                                   {"process_hash": ph, "timeout_seconds": 10}), True)
            status = resp["status"]
            if status == "DONE":
                return [(field(u, "data_hash"), u["title"])
                        for u in field(resp, "data_hashes_with_titles")]
            if status == "ERROR":
                raise Failed(f"job {ph} failed: {resp['errors']}")
            if status == "CANCELLED":
                raise Failed(f"job {ph} was cancelled")

    def run(self):
        a = self.a
        self.v1(v1_body("dataset", "GET", None,
                        {"dataset_access_settings": {"fetch_client_metadata": False}}), True)
        units = []
        if a.image_group is not None:
            objs = self.upload(a.paths, "image")
            units += self.job({"imageGroups": [group_element(objs, a.image_group, a.create_video)]})
        elif a.dicom_series is not None:
            objs = self.upload(a.paths, "dicomFile")
            units += self.job({"dicomSeries": [{
                "dicomFiles": [{"url": k, "title": t} for k, t in objs], "title": a.dicom_series,
                "clientMetadata": {}, "externalFileType": "DICOM"}]})
        else:
            item_type, lst, eft = (("video", "videos", "VIDEO") if a.video
                                   else ("image", "images", "IMAGE"))
            for path in a.paths:
                (key, title), = self.upload([path], item_type)
                units += self.job({lst: [{"objectUrl": key, "title": title, "clientMetadata": {},
                                          "externalFileType": eft}]})
        for h, t in units:
            print(f"{h}  {t}")


def main():
    if len(sys.argv) < 2 or sys.argv[1] != "upload":
        sys.stderr.write(__doc__)
        return 2
    p = argparse.ArgumentParser(prog="spec_cli.py upload")
    p.add_argument("--api", required=True)
    p.add_argument("--key-file")
    p.add_argument("--dataset", required=True)
    p.add_argument("--folder")
    p.add_argument("--cacert")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--image-group")
    kind.add_argument("--dicom-series")
    kind.add_argument("--video", action="store_true")
    kind.add_argument("--image", action="store_true")
    p.add_argument("--create-video", dest="create_video", action="store_true", default=True)
    p.add_argument("--no-create-video", dest="create_video", action="store_false")
    p.add_argument("paths", nargs="+")
    a = p.parse_args(sys.argv[2:])
    files = []
    for path in a.paths:        # a directory: its files, recursively, in byte order
        if os.path.isdir(path):
            found = []
            for root, _, names in os.walk(path):
                found += [os.path.join(root, n) for n in names]
            files += sorted(found, key=os.fsencode)
        else:
            files.append(path)
    a.paths = files
    try:
        Cli(a).run()
    except OSError as e:
        sys.stderr.write(f"spec_cli: {e}\n")
        return 1
    except Failed as e:
        sys.stderr.write(f"spec_cli: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
