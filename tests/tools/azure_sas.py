#!/usr/bin/python3
"""azure_sas.py - SAS tokens for Azurite, made from the documented
string-to-sign (Microsoft's "Create a service SAS" and "Create an account
SAS", version 2020-12-06 and later) with the emulator's published
development account key (devstoreaccount1), for the multipart tests.

  azure_sas.py account            an account SAS (all services' blob part:
                                  ss=b, srt=sco, sp=racwdl), to create a
                                  container
  azure_sas.py container NAME     a service SAS for one container (sr=c,
                                  sp=racwd)
Prints the token (no leading '?')."""
import base64
import hashlib
import hmac
import sys
import urllib.parse

ACCOUNT = "devstoreaccount1"
# The emulator's well-known development key (Azurite's README).
KEY = base64.b64decode(
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
    "K1SZFPTOtr/KBHBeksoGMGw==")
SV = "2022-11-02"
START = "2020-01-01T00:00:00Z"
EXPIRY = "2099-01-01T00:00:00Z"


def sign(sts):
    return base64.b64encode(
        hmac.new(KEY, sts.encode(), hashlib.sha256).digest()).decode()


def account_sas():
    sp, ss, srt = "racwdl", "b", "sco"
    sts = "\n".join([ACCOUNT, sp, ss, srt, START, EXPIRY, "", "", SV, ""]) + "\n"
    q = {"sv": SV, "ss": ss, "srt": srt, "sp": sp, "st": START, "se": EXPIRY,
         "sig": sign(sts)}
    return urllib.parse.urlencode(q)


def container_sas(name):
    sp = "racwd"
    resource = "/blob/%s/%s" % (ACCOUNT, name)
    # permissions, start, expiry, resource, identifier, IP, protocol,
    # version, signed resource, snapshot time, encryption scope, rscc,
    # rscd, rsce, rscl, rsct
    fields = [sp, START, EXPIRY, resource, "", "", "", SV, "c", "", "",
              "", "", "", "", ""]
    q = {"sv": SV, "sr": "c", "sp": sp, "st": START, "se": EXPIRY,
         "sig": sign("\n".join(fields))}
    return urllib.parse.urlencode(q)


if __name__ == "__main__":
    if sys.argv[1:2] == ["account"]:
        print(account_sas())
    elif sys.argv[1:2] == ["container"] and len(sys.argv) == 3:
        print(container_sas(sys.argv[2]))
    else:
        sys.exit("usage: azure_sas.py account | container NAME")
