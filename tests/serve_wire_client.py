"""serve_wire_client.py - a small client of `bulkup serve`, written from
/work/shared/spec/ENCORD_WIRE.md alone (not from bulkup's C code), run by
tests/test_serve_wire.sh with Debian's /usr/bin/python3 and
python3-cryptography.

It signs like the SDK: v2 RFC 9421 (section 4) and the v1 Authorization
(section 6), checks its signer against the spec's test vectors, then
drives the server through every upload kind (an image group of 450 images,
so three presign batches of at most 200; a group split by resolution; a
DICOM series; a video; an image), and sends tampered requests that must be
refused with the right error shape.

Usage: serve_wire_client.py BASE_URL DATASET_HASH KEY_SEED_HEX
"""
import base64
import hashlib
import http.client
import json
import struct
import sys
import time
import urllib.parse

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

FAILS = []


def check(cond, what):
    if cond:
        print("ok - " + what)
    else:
        print("FAIL: " + what)
        FAILS.append(what)


class Signer:
    def __init__(self, seed):
        self.key = Ed25519PrivateKey.from_private_bytes(seed)
        raw = self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.keyid = raw.hex()

    def v2_headers(self, method, path_url, body=b"", created=None):
        digest = "sha-256=:" + base64.b64encode(
            hashlib.sha256(body).digest()).decode() + ":"
        if created is None:
            created = int(time.time()) - 30
        params = ('("@method" "@request-target" "content-digest");created=%d;'
                  'keyid="%s";alg="ed25519"' % (created, self.keyid))
        base = "\n".join([
            '"@method": ' + method.upper(),
            '"@request-target": ' + path_url,
            '"content-digest": ' + digest,
            '"@signature-params": ' + params,
        ])
        sig = base64.b64encode(self.key.sign(base.encode())).decode()
        return {
            "Content-Digest": digest,
            "Signature-Input": "encord-sig=" + params,
            "Signature": "encord-sig=:" + sig + ":",
        }

    def v1_authorization(self, body):
        sig = self.key.sign(hashlib.sha256(body.encode()).digest())
        return self.keyid + ":" + sig.hex()


class Client:
    def __init__(self, base, dataset, signer):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.dataset = dataset
        self.s = signer

    def request(self, method, target, body=None, headers=None, host=None,
                port=None):
        c = http.client.HTTPConnection(host or self.host, port or self.port,
                                       timeout=60)
        c.request(method, target, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data, r

    def presign(self, count, item_type, tamper=None):
        target = "/v2/public/presigned-urls?" + urllib.parse.urlencode(
            {"count": count, "uploadItemType": item_type})
        h = self.s.v2_headers("GET", target)
        h.update({"User-Agent": "encord-sdk-python/0.1.190 python/3 "
                                "pydantic/2",
                  "X-Cloud-Trace-Context": "0" * 32 + "/1;o=1"})
        if tamper:
            target = tamper(target)
        st, data, _ = self.request("GET", target, headers=h)
        return st, json.loads(data)

    def v1(self, query_type, method, uid, payload, auth=None, body=None):
        if body is None:
            body = json.dumps({"query_type": query_type,
                               "query_method": method,
                               "values": {"uid": uid, "payload": payload}})
        h = {"Accept": "application/json",
             "Content-Type": "application/json",
             "Accept-Encoding": "gzip",
             "ResourceType": "dataset",
             "ResourceID": self.dataset,
             "Authorization": auth or self.s.v1_authorization(body),
             "User-Agent": "encord-sdk-python/0.1.190 python/3 pydantic/2",
             "X-Cloud-Trace-Context": "0" * 32 + "/1;o=1"}
        st, data, _ = self.request("POST", "/public", body=body, headers=h)
        return st, json.loads(data)

    def put(self, signed_url, data, ctype):
        u = urllib.parse.urlsplit(signed_url)
        h = {"Cache-Control": "max-age=86400"}
        if ctype:
            h["Content-Type"] = ctype
        st, _, _ = self.request("PUT", u.path + "?" + u.query, body=data,
                                headers=h, host=u.hostname, port=u.port)
        return st


def data_items(which, element):
    d = {}
    for k in ("videos", "imageGroups", "dicomSeries", "images",
              "imageGroupsFromItems", "audio", "nifti", "text", "pdf"):
        d[k] = [element] if k == which else []
    d["skipDuplicateUrls"] = False
    d["upsertMetadata"] = False
    return d


def png(w, h):
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" +
            struct.pack(">II", w, h) + b"\x08\x02\x00\x00\x00" + b"\0" * 8)


def upload(cl, item_type, blobs, ctype):
    """Presign in batches of at most 200 (the SDK's), then PUT each."""
    res = []
    for i in range(0, len(blobs), 200):
        n = min(200, len(blobs) - i)
        st, page = cl.presign(n, item_type)
        got = page.get("results", [])
        check(st == 200 and len(got) == n,
              "presign %d %s: 200 with %d results" % (n, item_type, n))
        res += got
    check(all(set(r) == {"itemUuid", "objectKey", "signedUrl"} for r in res),
          "presign result keys are camelCase")
    bad = [r for r, blob in zip(res, blobs)
           if cl.put(r["signedUrl"], blob, ctype) != 200]
    check(not bad, "%d PUTs to the signed URLs: exactly 200" % len(res))
    return [(r["objectKey"], r["itemUuid"]) for r in res]


def job(cl, which, element):
    st, env = cl.v1("datasetdatalongpolling", "POST", cl.dataset,
                    {"dataItems": data_items(which, element),
                     "ignoreErrors": False})
    check(st == 200 and env.get("status") == 200 and
          set(env.get("response", {})) == {"process_hash"},
          "job POST (%s): {status: 200, response: {process_hash}}" % which)
    ph = env["response"]["process_hash"]
    for _ in range(10):
        st, env = cl.v1("datasetdatalongpolling", "GET", cl.dataset,
                        {"process_hash": ph, "timeout_seconds": 10})
        res = env.get("response", {})
        if res.get("status") != "PENDING":
            break
    fields = {"status", "data_hashes_with_titles", "errors",
              "data_unit_errors", "units_pending_count", "units_done_count",
              "units_error_count", "units_cancelled_count"}
    check(st == 200 and set(res) == fields,
          "poll (%s): every field of section 8" % which)
    return res


def main():
    base, dataset, seed_hex = sys.argv[1], sys.argv[2], sys.argv[3]

    # the spec's test vectors, for this signer
    vec = Signer(bytes(range(32)))
    check(vec.keyid == "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1dd"
                       "c8664125531b8", "vector: key id")
    h = vec.v2_headers("GET", "/v2/public/presigned-urls?count=2&"
                       "uploadItemType=image", created=1700000000)
    check(h["Signature"] == "encord-sig=:h5Pj1/FCSL1yHfCbmnfLv22uvD88RYZut/d"
                           "XGqmrAaYZe2JCqeXN9BXFY6WM0dUjk0P0/X9kdtu3N8C4lDu"
                           "pDA==:", "vector: v2 Signature")
    body = json.dumps({"query_type": "datasetdatalongpolling",
                       "query_method": "GET",
                       "values": {"uid": "00000000-0000-0000-0000-000000000001",
                                  "payload": {"process_hash": "p-1",
                                              "timeout_seconds": 10}}})
    check(vec.v1_authorization(body).endswith(
        ":d95b93e25d246d4eeb0fa1329c06679833032c50365a532d96451ccb79b2d7b8ad6"
        "e5bcbd57c0695d0c9e9ef93cfc42a10b21ba9979891ec79693c74ca3a0d0e"),
        "vector: v1 Authorization")

    cl = Client(base, dataset, Signer(bytes.fromhex(seed_hex)))

    # dataset
    st, env = cl.v1("dataset", "GET", None,
                    {"dataset_access_settings": {"fetch_client_metadata":
                                                 False}})
    r = env.get("response", {})
    check(st == 200 and r.get("dataset_hash") == dataset and
          all(k in r for k in ("title", "description", "dataset_type")),
          "dataset/GET: title, description, dataset_type, dataset_hash")

    # an image group of 450 images (3 presign batches), one resolution
    keys = upload(cl, "image", [png(32, 32)] * 450, "image/png")
    res = job(cl, "imageGroups",
              {"images": [{"url": k, "title": "p%03d.png" % i}
                          for i, (k, _) in enumerate(keys)],
               "title": "big", "clientMetadata": {}, "createVideo": True,
               "externalFileType": "IMG_GROUP", "clusterByResolution": True})
    check(res["status"] == "DONE" and
          [u["title"] for u in res["data_hashes_with_titles"]] == ["big"],
          "image group of 450: DONE, one data unit")

    # an image group split by resolution (3 sizes -> 3 units)
    keys = upload(cl, "image", [png(8, 8), png(16, 9), png(8, 8), png(4, 4)],
                  "image/png")
    res = job(cl, "imageGroups",
              {"images": [{"url": k, "title": "i%d.png" % i}
                          for i, (k, _) in enumerate(keys)],
               "title": "holiday", "clientMetadata": {}, "createVideo": True,
               "externalFileType": "IMG_GROUP", "clusterByResolution": True})
    titles = [u["title"] for u in res["data_hashes_with_titles"]]
    check(res["status"] == "DONE" and len(titles) == 3,
          "image group with 3 resolutions: DONE, 3 data units")
    # a DICOM series, a video, an image
    dk = upload(cl, "dicomFile", [b"DICM-a", b"DICM-b"], "application/dicom")
    res = job(cl, "dicomSeries",
              {"dicomFiles": [{"url": k, "title": "%d.dcm" % i}
                              for i, (k, _) in enumerate(dk)],
               "clientMetadata": {}, "externalFileType": "DICOM"})
    check(res["status"] == "DONE" and
          len(res["data_hashes_with_titles"]) == 1, "DICOM series: 1 unit")
    for kind, lst, eft, ct in (("video", "videos", "VIDEO",
                                "application/octet-stream"),
                               ("image", "images", "IMAGE", None)):
        (k, item), = upload(cl, kind, [b"bytes of a " + kind.encode()], ct)
        res = job(cl, lst, {"objectUrl": k, "title": "one." + kind,
                            "clientMetadata": {}, "externalFileType": eft})
        u = res["data_hashes_with_titles"]
        check(res["status"] == "DONE" and len(u) == 1 and
              u[0]["backing_item_uuid"] == item and
              u[0]["title"] == "one." + kind,
              "%s: 1 unit backed by the presigned item" % kind)

    # tampered requests, with the right error shapes
    st, err = cl.presign(2, "image", tamper=lambda t: t.replace("count=2",
                                                                "count=3"))
    check(st == 401 and set(err) == {"message"},
          "v2 tampered target: 401 {message}")
    body = json.dumps({"query_type": "dataset", "query_method": "GET",
                       "values": {"uid": None, "payload": {}}})
    auth = cl.s.v1_authorization(body)
    st, err = cl.v1(None, None, None, None, auth=auth,
                    body=body.replace("{}", "{\"x\": 1}"))
    check(st == 401 and err.get("status") == 401 and
          err.get("response") == ["AUTHENTICATION_ERROR"],
          "v1 tampered body: AUTHENTICATION_ERROR")
    st, err = cl.v1(None, None, None, None,
                    auth=vec.v1_authorization(body), body=body)
    check(st == 401 and err.get("response") == ["SSH_KEY_NOT_FOUND_ERROR"],
          "v1 unauthorized key: SSH_KEY_NOT_FOUND_ERROR")
    st, err = cl.v1("datasetdatalongpolling", "POST", cl.dataset,
                    {"dataItems": data_items("images", {
                        "objectUrl": "uploads/image/not-presigned",
                        "title": "x", "clientMetadata": {},
                        "externalFileType": "IMAGE"}),
                     "ignoreErrors": False})
    check(st == 400 and err.get("response") == ["INVALID_ARGUMENTS_ERROR"],
          "v1 job with an object never presigned: INVALID_ARGUMENTS_ERROR")

    print("%d failed" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
