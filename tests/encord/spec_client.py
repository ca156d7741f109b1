#!/usr/bin/python3
"""spec_client.py - a tiny Encord API client written from ENCORD_WIRE.md.

It signs and serialises on its own (nothing from strict_api.py), so that
test_strict_api.py can prove the strict server with it, and spec_cli.py can
stand in for bulkup to prove the wire test's harness. Each function cites the
specification's section it follows.
"""

import base64
import gzip
import hashlib
import http.client
import json
import os
import time
import urllib.parse
import uuid

from cryptography.hazmat.primitives import serialization

# §7: the nine lists of dataItems, in declaration order.
DATA_ITEM_LISTS = ["videos", "imageGroups", "dicomSeries", "images", "imageGroupsFromItems",
                   "audio", "nifti", "text", "pdf"]

def keyid_of(private_key):
    return private_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                 serialization.PublicFormat.Raw).hex()


def sign_v2(private_key, method, target, body, created):
    """The v2 headers of §4: Content-Digest, Signature-Input, Signature."""
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
    params = ('("@method" "@request-target" "content-digest")'
              f';created={created};keyid="{keyid_of(private_key)}";alg="ed25519"')
    lines = [f'"@method": {method.upper()}', f'"@request-target": {target}',
             f'"content-digest": {digest}', f'"@signature-params": {params}']
    sig = private_key.sign("\n".join(lines).encode())
    return {"Content-Digest": digest, "Signature-Input": "encord-sig=" + params,
            "Signature": "encord-sig=:" + base64.b64encode(sig).decode() + ":"}


def auth_v1(private_key, body):
    """§6: pubhex + ":" + hex(Ed25519.sign(sha256(body)))."""
    return keyid_of(private_key) + ":" + private_key.sign(hashlib.sha256(body).digest()).hex()


def v1_body(query_type, method, uid, payload):
    return json.dumps({"query_type": query_type, "query_method": method,
                       "values": {"uid": uid, "payload": payload}})


def trace():
    return uuid.uuid4().hex + "/1;o=1"


UA = "encord-sdk-python/0.1.190 python/3.11.2 pydantic/2.5.0"


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


def raw(port, method, target, headers, body=None, tls=None):
    """One request with exactly these headers (plus Host, and Content-Length for a body)."""
    if tls is not None:   # an ssl.SSLContext: HTTPS
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=tls)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        if r.getheader("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        return Response(r.status, dict(r.getheaders()), data)
    finally:
        conn.close()


class SpecClient:
    def __init__(self, port, private_key, dataset, tls=None):
        self.port, self.key, self.dataset, self.tls = port, private_key, dataset, tls

    def v2_headers(self, target, created=None):
        created = int(time.time()) - 30 if created is None else created
        h = [("Accept-Encoding", "identity"), ("User-Agent", UA), ("X-Cloud-Trace-Context", trace())]
        h += list(sign_v2(self.key, "GET", target, b"", created).items())
        return h

    def presign(self, count, item_type, **kw):
        target = f"/v2/public/presigned-urls?count={count}&uploadItemType={item_type}"
        return raw(self.port, "GET", target, self.v2_headers(target, **kw), tls=self.tls)

    def v1_headers(self, body, resource=None):
        return [("Accept", "application/json"), ("Content-Type", "application/json"),
                ("Accept-Encoding", "gzip"), ("ResourceType", "dataset"),
                ("ResourceID", resource or self.dataset),
                ("Authorization", auth_v1(self.key, body)),
                ("User-Agent", UA), ("X-Cloud-Trace-Context", trace())]

    def v1(self, body_text, headers=None):
        body = body_text.encode()
        return raw(self.port, "POST", "/public", headers or self.v1_headers(body), body,
                   tls=self.tls)

    def put(self, signed_url, data, ctype):
        u = urllib.parse.urlsplit(signed_url)
        h = [("User-Agent", "python-requests/2.31.0"), ("Accept-Encoding", "gzip, deflate"),
             ("Accept", "*/*"), ("Connection", "keep-alive"), ("Cache-Control", "max-age=86400")]
        if ctype is not None:
            h.append(("Content-Type", ctype))
        return raw(u.port, "PUT", u.path + "?" + u.query, h, data,
                   tls=self.tls if u.scheme == "https" else None)

    @staticmethod
    def item(r, name):
        """A presign result field in either casing (§3, §4)."""
        camel = strict_name = name
        parts = name.split("_")
        camel = parts[0] + "".join(p.title() for p in parts[1:])
        return r[camel] if camel in r else r[strict_name]

    def upload(self, files, item_type, ctype_of):
        """Presign in batches of <= 200 and PUT every file; [(objectKey, title)]."""
        out = []
        for start in range(0, len(files), 200):
            batch = files[start:start + 200]
            r = self.presign(len(batch), item_type)
            assert r.status == 200, (r.status, r.body)
            results = r.json()["results"]
            assert len(results) == len(batch)
            for path, res in zip(batch, results):
                with open(path, "rb") as f:
                    p = self.put(self.item(res, "signed_url"), f.read(), ctype_of(path))
                assert p.status == 200, (p.status, p.body)
                out.append((self.item(res, "object_key"), os.path.basename(path)))
        return out

    def data_items(self, **lists):
        di = {k: [] for k in DATA_ITEM_LISTS}
        di.update(lists)
        di["skipDuplicateUrls"] = False
        di["upsertMetadata"] = False
        return di

    def job(self, data_items, folder=None):
        payload = {"dataItems": data_items, "ignoreErrors": False}
        if folder:
            payload["folderUuid"] = folder
        return self.v1(v1_body("datasetdatalongpolling", "POST", self.dataset, payload))

    def poll(self, process_hash, timeout=10):
        return self.v1(v1_body("datasetdatalongpolling", "GET", self.dataset,
                               {"process_hash": process_hash, "timeout_seconds": timeout}))

    def wait(self, process_hash):
        answers = []
        for _ in range(20):
            r = self.poll(process_hash)
            assert r.status == 200, (r.status, r.body)
            env = r.json()
            assert env["status"] == 200
            answers.append(env["response"])
            if env["response"]["status"] != "PENDING":
                return answers
        raise AssertionError("job never ended")


def group_element(objs, title=None, create_video=True):
    el = {"images": [{"url": k, "title": t} for k, t in objs]}
    if title is not None:
        el["title"] = title
    el.update({"clientMetadata": {}, "createVideo": create_video, "externalFileType": "IMG_GROUP",
               "clusterByResolution": create_video})
    return el
