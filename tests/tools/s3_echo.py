#!/usr/bin/env python3
"""s3_echo.py LOG [--ok DELAY] - a loopback HTTP server that answers every PUT as S3
answers a request whose signature does not match: 403 and an XML body that
echoes the signature it was given (SignatureProvided), the access key id and
the canonical request with the query's X-Amz-Credential. Used by
tests/test_cli_harden.sh to check that bulkup redacts what servers echo.

With --ok DELAY it stores nothing and answers every PUT 200 after DELAY
seconds instead (a slow server, for runs that must still be going when a
test signals them).

Prints its port on the first line of stdout, then serves until killed; each
request line is appended to LOG."""
import base64
import http.server
import sys
import time
import urllib.parse

LOG = sys.argv[1]
OK_DELAY = float(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--ok" else None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_PUT(self):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            auth = base64.b64decode(auth[6:]).decode("latin-1")
        with open(LOG, "a") as f:
            f.write("%s %s %s\n" % (self.command, self.path, auth))
        n = int(self.headers.get("Content-Length") or 0)
        while n > 0:
            chunk = self.rfile.read(min(n, 65536))
            if not chunk:
                break
            n -= len(chunk)
        if OK_DELAY is not None:
            time.sleep(OK_DELAY)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        url = urllib.parse.urlsplit(self.path)
        q = {}
        for k, v in urllib.parse.parse_qsl(url.query, keep_blank_values=True):
            q[k.lower()] = v
        cred = q.get("x-amz-credential", "")
        akid = cred.split("/")[0]
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<Error><Code>SignatureDoesNotMatch</Code><Message>The request "
                "signature we calculated does not match the signature you "
                "provided.</Message><AWSAccessKeyId>%s</AWSAccessKeyId>"
                "<StringToSign>AWS4-HMAC-SHA256\n20240101T000000Z</StringToSign>"
                "<SignatureProvided>%s</SignatureProvided><CanonicalRequest>PUT\n"
                "%s\n%s\nhost:127.0.0.1</CanonicalRequest></Error>"
                % (akid, q.get("x-amz-signature", ""), url.path,
                   url.query.replace("&", "&amp;"))).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
