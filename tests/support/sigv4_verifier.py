#!/usr/bin/python3
"""sigv4_verifier.py - a verifying proxy for S3 requests (tests only).

s3rver checks neither SigV4 signatures nor checksums, so the tests put
this proxy in front of it: for every request it recomputes the SigV4
signature with Debian's python3-botocore (botocore.auth.S3SigV4Auth: its
canonical request, string to sign and signing key) from the key it was
given, and refuses with 403 (SignatureDoesNotMatch, with the pieces S3
echoes, so that redaction is tested on a real error body) any request
whose signature, credential scope, session token, payload hash or
checksum headers are wrong, or that leaves an x-amz-* header unsigned.
Requests that pass go on to the upstream unchanged, its answer comes back
unchanged.

Multipart uploads are followed by their UploadId (read from the create's
answer) and checked as S3 defines its checksums, on top of each request's
own check: an upload created with x-amz-checksum-algorithm: CRC32C must
have every part carry x-amz-checksum-crc32c (the CRC-32C of the body that
arrived), and its CompleteMultipartUpload XML must list, in each <Part>,
<ChecksumCRC32C> equal to the CRC-32C of that part's body as received; an
upload created without it must have no part carry x-amz-checksum-crc32c
and no <ChecksumCRC32C> in its Complete. Anything else is refused (400
InvalidRequest / InvalidPart, as S3 answers), before it reaches s3rver,
which checks none of this.

  sigv4_verifier.py --upstream PORT --key AKID:SECRET [--token TOKEN]
                    --port-file FILE --log FILE [--hold-part N]

--hold-part N: the first UploadPart with partNumber=N is read but never
answered (the connection stays open until the client goes away): a run
killed meanwhile leaves that part unsent, deterministically.

Listens on 127.0.0.1, port chosen by the OS (written to --port-file).
GET /__verifier/stats answers JSON counts: verified, refused, and how many
passed requests carried each checksum (crc32c, goog_crc32c, md5); for
multipart uploads, mp_crc_creates (creates declaring CRC32C), mp_crc_parts
(parts of those, checksum checked), mp_crc_completes (Completes whose every
part's ChecksumCRC32C matched), mp_plain_completes (Completes of uploads
created without an algorithm, with no ChecksumCRC32C). --log
gets one JSON line per request: method, path, verdict, reason, the signed
header names, and the values of the non-secret headers the tests check.
"""
import argparse
import base64
import hashlib
import hmac
import http.client
import http.server
import json
import re
import sys
import threading
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

UNSIGNED = 'UNSIGNED-PAYLOAD'
AUTH_RE = re.compile(
    r'^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,'
    r' ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$')
LOGGED = ('x-amz-storage-class', 'x-goog-storage-class', 'cache-control',
          'content-type', 'x-amz-server-side-encryption',
          'x-amz-server-side-encryption-aws-kms-key-id',
          'x-amz-checksum-crc32c', 'x-goog-hash', 'content-md5',
          'x-amz-content-sha256', 'x-amz-meta-owner',
          'x-amz-checksum-algorithm')


def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


CRC_TABLE = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def crc32c_b64(data):
    return base64.b64encode(crc32c(data).to_bytes(4, 'big')).decode()


class State:
    def __init__(self, args):
        self.args = args
        akid, _, secret = args.key.partition(':')
        self.akid, self.secret = akid, secret
        self.lock = threading.Lock()
        self.stats = {'verified': 0, 'refused': 0, 'crc32c': 0,
                      'goog_crc32c': 0, 'md5': 0, 'mp_crc_creates': 0,
                      'mp_crc_parts': 0, 'mp_crc_completes': 0,
                      'mp_plain_completes': 0}
        # UploadId -> {'algo': the create's x-amz-checksum-algorithm or
        # None, 'parts': {part number: CRC-32C (base64) of the body
        # forwarded}}; under lock.
        self.uploads = {}
        self.held = False
        self.log = open(args.log, 'a', encoding='utf-8') if args.log else None
        self.local = threading.local()

    def record(self, entry, verdict, kind=()):
        with self.lock:
            self.stats[verdict] += 1
            for k in kind:
                self.stats[k] += 1
            if self.log:
                self.log.write(json.dumps(entry) + '\n')
                self.log.flush()

    def upstream(self):
        c = getattr(self.local, 'conn', None)
        if c is None:
            c = http.client.HTTPConnection('127.0.0.1', self.args.upstream,
                                           timeout=30)
            self.local.conn = c
        return c


def verify(st, method, raw_path, headers, body):
    """None when the request is signed right, else the reason (a string),
    and the checksums it carried."""
    auth = headers.get('authorization', '')
    m = AUTH_RE.match(auth)
    if not m:
        return 'no or malformed SigV4 Authorization header', (), None
    akid, date, region, service, signed, sig = m.groups()
    if akid != st.akid:
        return 'unknown access key id', (), None
    amz_date = headers.get('x-amz-date', '')
    if len(amz_date) != 16 or amz_date[:8] != date:
        return 'X-Amz-Date missing or not the credential scope\'s date', (), None
    names = signed.split(';')
    if names != sorted(names):
        return 'SignedHeaders not sorted', (), None
    for req in ('host', 'x-amz-date', 'x-amz-content-sha256'):
        if req not in names:
            return 'SignedHeaders lacks ' + req, (), None
    for h in headers:
        if (h.startswith('x-amz-') or h in ('content-md5', 'x-goog-hash')) \
                and h not in names:
            return 'header %s not signed' % h, (), None
    for n in names:
        if n not in headers:
            return 'signed header %s not sent' % n, (), None
    token = st.args.token
    if token is not None:
        if headers.get('x-amz-security-token') != token:
            return 'session token missing or wrong', (), None
    elif 'x-amz-security-token' in headers:
        return 'unexpected session token', (), None
    payload = headers['x-amz-content-sha256']
    if payload != UNSIGNED and payload != hashlib.sha256(body).hexdigest():
        return 'x-amz-content-sha256 is not the body\'s', (), None
    kinds = []
    if 'x-amz-checksum-crc32c' in headers:
        if headers['x-amz-checksum-crc32c'] != crc32c_b64(body):
            return 'x-amz-checksum-crc32c is not the body\'s', (), None
        kinds.append('crc32c')
    if 'x-goog-hash' in headers:
        if headers['x-goog-hash'] != 'crc32c=' + crc32c_b64(body):
            return 'x-goog-hash is not the body\'s crc32c', (), None
        kinds.append('goog_crc32c')
    if 'content-md5' in headers:
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        if headers['content-md5'] != md5:
            return 'Content-MD5 is not the body\'s', (), None
        kinds.append('md5')
    # botocore recomputes the signature from the signed headers alone.
    url = 'http://' + headers['host'] + raw_path
    req = AWSRequest(method=method, url=url, data=body,
                     headers={n: headers[n] for n in names})
    req.context['timestamp'] = amz_date
    signer = S3SigV4Auth(Credentials(st.akid, st.secret, token), service,
                         region)
    creq = signer.canonical_request(req)
    sts = signer.string_to_sign(req, creq)
    want = signer.signature(sts, req)
    if not hmac.compare_digest(want, sig):
        return 'signature mismatch', (), (creq, sts, sig)
    return None, kinds, None


def mp_query(raw_path):
    """The multipart step a request is, from its query: 'create', 'part',
    'complete' (POST; a DELETE there is the abort) or None, and its UploadId
    and part number."""
    q = parse_qs(urlsplit(raw_path).query, keep_blank_values=True)
    uid = q.get('uploadId', [None])[0]
    if 'uploads' in q:
        return 'create', None, None
    if uid is not None and 'partNumber' in q:
        return 'part', uid, int(q['partNumber'][0])
    if uid is not None:
        return 'complete', uid, None  # or, as a DELETE, the abort
    return None, None, None


def mp_check(st, method, raw_path, headers, body):
    """None when the request keeps S3's multipart checksum rules (see the
    module's text), else the reason; and the stats it adds."""
    step, uid, num = mp_query(raw_path)
    if step == 'create' and method == 'POST':
        algo = headers.get('x-amz-checksum-algorithm')
        if algo is not None and algo != 'CRC32C':
            return 'x-amz-checksum-algorithm %r is not CRC32C' % algo, ()
        return None, ('mp_crc_creates',) if algo else ()
    if step is None or uid is None or method not in ('PUT', 'POST'):
        return None, ()
    with st.lock:
        up = st.uploads.get(uid)
    if up is None:
        return 'unknown UploadId (no create seen)', ()
    crc = headers.get('x-amz-checksum-crc32c')
    if step == 'part':
        if up['algo'] == 'CRC32C' and crc is None:
            return ('part %d of a CRC32C upload without '
                    'x-amz-checksum-crc32c' % num), ()
        if up['algo'] is None and crc is not None:
            return ('part %d carries x-amz-checksum-crc32c, its upload '
                    'declared no algorithm' % num), ()
        # verify() already compared the header with the body's CRC-32C.
        return None, ('mp_crc_parts',) if crc else ()
    if method != 'POST':
        return None, ()
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return 'Complete body is not XML', ()
    parts = [p for p in root if p.tag.split('}')[-1] == 'Part']
    if not parts:
        return 'Complete lists no parts', ()
    for p in parts:
        f = {c.tag.split('}')[-1]: (c.text or '') for c in p}
        try:
            n = int(f.get('PartNumber', ''))
        except ValueError:
            return 'a Part without a PartNumber', ()
        if not f.get('ETag'):
            return 'part %d without an ETag' % n, ()
        got = f.get('ChecksumCRC32C')
        if up['algo'] == 'CRC32C':
            want = up['parts'].get(n)
            if want is None:
                return 'part %d was never received' % n, ()
            if got != want:
                return ('part %d: ChecksumCRC32C %r, its body\'s is %r'
                        % (n, got, want)), ()
        elif got is not None:
            return ('part %d: ChecksumCRC32C in the Complete of an upload '
                    'created without an algorithm' % n), ()
    return None, ('mp_crc_completes',) if up['algo'] else \
        ('mp_plain_completes',)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        pass

    def _answer(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in ('content-length', 'transfer-encoding',
                                 'connection'):
                self.send_header(k, v)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def _handle(self):
        st = self.server.st
        n = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(n) if n else b''
        if self.path == '/__verifier/stats':
            with st.lock:
                data = json.dumps(st.stats).encode()
            self._answer(200, data, [('Content-Type', 'application/json')])
            return
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = v if k not in headers else headers[k] + ',' + v
        why, kinds, pieces = verify(st, self.command, self.path, headers,
                                    body)
        mp_why = None
        if not why:
            mp_why, more = mp_check(st, self.command, self.path, headers,
                                    body)
            kinds = list(kinds) + list(more)
        m = AUTH_RE.match(headers.get('authorization', ''))
        entry = {'method': self.command, 'path': urlsplit(self.path).path,
                 'verdict': 'refused' if why or mp_why else 'verified',
                 'reason': why or mp_why or '',
                 'signed': m.group(5) if m else '',
                 'region': m.group(3) if m else '',
                 'query': urlsplit(self.path).query,
                 'headers': {h: headers[h] for h in LOGGED if h in headers},
                 'token_sent': 'x-amz-security-token' in headers,
                 'body_bytes': len(body)}
        if why:
            st.record(entry, 'refused')
            creq, sts, sig = pieces or ('', '', '')
            xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'
                   'SignatureDoesNotMatch</Code><Message>%s</Message>'
                   '<AWSAccessKeyId>%s</AWSAccessKeyId><StringToSign>%s'
                   '</StringToSign><SignatureProvided>%s</SignatureProvided>'
                   '<CanonicalRequest>%s</CanonicalRequest></Error>'
                   % (why, st.akid, sts, sig, creq))
            self._answer(403, xml.encode(), [('Content-Type',
                                              'application/xml')])
            return
        if mp_why:
            st.record(entry, 'refused')
            code = 'InvalidPart' if 'Complete' in mp_why or \
                'ChecksumCRC32C' in mp_why else 'InvalidRequest'
            xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s'
                   '</Code><Message>%s</Message></Error>' % (code, mp_why))
            self._answer(400, xml.encode(), [('Content-Type',
                                              'application/xml')])
            return
        step, uid, num = mp_query(self.path)
        if step == 'part' and num == st.args.hold_part:
            with st.lock:
                hold, st.held = not st.held, True
            if hold:
                # Never answered: wait for the client to go away.
                self.close_connection = True
                try:
                    while self.rfile.read(1):
                        pass
                except OSError:
                    pass
                return
        st.record(entry, 'verified', kinds)
        fwd = {k: v for k, v in self.headers.items()
               if k.lower() not in ('connection', 'keep-alive',
                                    'content-length')}
        for attempt in range(2):
            conn = st.upstream()
            try:
                conn.request(self.command, self.path, body=body, headers=fwd)
                resp = conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                st.local.conn = None
                if attempt:
                    self._answer(502, b'upstream failed')
                    return
        if resp.status == 200 and self.command in ('POST', 'PUT'):
            with st.lock:
                if step == 'create':
                    m = re.search(rb'<UploadId>([^<]+)</UploadId>', data)
                    if m:
                        st.uploads[m.group(1).decode()] = {
                            'algo': headers.get('x-amz-checksum-algorithm'),
                            'parts': {}}
                elif step == 'part' and uid in st.uploads:
                    up = st.uploads[uid]
                    if up['algo'] == 'CRC32C':
                        # verify() found it equal to the CRC-32C it
                        # computed of this body.
                        up['parts'][num] = headers['x-amz-checksum-crc32c']
        self._answer(resp.status, data, resp.getheaders())

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--upstream', type=int, required=True)
    ap.add_argument('--key', required=True)
    ap.add_argument('--token')
    ap.add_argument('--port-file', required=True)
    ap.add_argument('--log')
    ap.add_argument('--hold-part', type=int)
    args = ap.parse_args()
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    srv.daemon_threads = True
    srv.st = State(args)
    with open(args.port_file + '.tmp', 'w') as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(args.port_file + '.tmp', args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    sys.exit(main())
