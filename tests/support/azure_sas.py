#!/usr/bin/python3
"""Service SAS tokens for the Azurite emulator, from the documented
string-to-sign of a blob or container SAS (signed version 2020-12-06 and
later: sp, st, se, canonicalized resource, si, sip, spr, sv, sr, snapshot
time, ses, rscc, rscd, rsce, rscl, rsct, one per line) and HMAC-SHA256 with
the emulator's published development key.

  azure_sas.py CONTAINER [BLOB] [--perm rcw] [--expiry 2099-01-01T00:00:00Z]
               [--bad] [--account]

prints the token (no leading '?'). --bad signs with a different key."""
import argparse, base64, hashlib, hmac, sys, urllib.parse

ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (published in its README).
KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPT"
       "Otr/KBHBeksoGMGw==")
VERSION = "2021-12-02"


def sas(container, blob=None, perm="rcw", expiry="2099-01-01T00:00:00Z",
        key=KEY):
    resource = "/blob/%s/%s" % (ACCOUNT, container)
    sr = "c"
    if blob:
        resource += "/" + blob
        sr = "b"
    fields = [perm, "", expiry, resource, "", "", "", VERSION, sr, "", "",
              "", "", "", "", ""]
    sts = "\n".join(fields)
    sig = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode(),
                                    hashlib.sha256).digest()).decode()
    q = [("sv", VERSION), ("sr", sr), ("sp", perm), ("se", expiry),
         ("sig", sig)]
    return urllib.parse.urlencode(q, quote_via=urllib.parse.quote, safe="")


def account_sas(perm="rwdlac", expiry="2099-01-01T00:00:00Z", key=KEY):
    """An account SAS (ss=b, srt=sco): creates containers."""
    fields = [ACCOUNT, perm, "b", "sco", "", expiry, "", "", VERSION, "", ""]
    sts = "\n".join(fields)
    sig = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode(),
                                    hashlib.sha256).digest()).decode()
    q = [("sv", VERSION), ("ss", "b"), ("srt", "sco"), ("sp", perm),
         ("se", expiry), ("sig", sig)]
    return urllib.parse.urlencode(q, quote_via=urllib.parse.quote, safe="")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("container", nargs="?")
    ap.add_argument("blob", nargs="?")
    ap.add_argument("--perm", default="rcw")
    ap.add_argument("--expiry", default="2099-01-01T00:00:00Z")
    ap.add_argument("--bad", action="store_true")
    ap.add_argument("--account", action="store_true",
                    help="an account SAS (CONTAINER ignored)")
    a = ap.parse_args()
    key = KEY
    if a.account:
        print(account_sas())
        return 0
    if a.bad:
        key = base64.b64encode(b"not the key of devstoreaccount1!").decode()
    print(sas(a.container, a.blob, a.perm, a.expiry, key))


if __name__ == "__main__":
    sys.exit(main())
