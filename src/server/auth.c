/*
 * auth.c - authorized Ed25519 keys and the two request signatures of
 * Encord's API (ENCORD_WIRE.md):
 *
 * v2 (§4): RFC 9421 with one signature labelled `encord-sig` over exactly
 *   ("@method" "@request-target" "content-digest") with the parameters
 *   created, keyid (the public-key hex), alg "ed25519", in that order.
 *   The base is rebuilt from the request as received (the method, the raw
 *   request target, the Content-Digest header) and the Signature-Input
 *   parameters exactly as sent; Content-Digest must be the SHA-256 of the
 *   body received (for the presign GET: of the empty body).
 * v1 (§6): `Authorization: <pubhex>:<sighex>`, an Ed25519 signature over
 *   the 32-byte SHA-256 digest of the body.
 *
 * A key is identified by the lower-case hex of its raw 32 bytes.
 *
 * Locking: the key table has its own mutex; a lookup only compares, and
 * each verification builds its own EVP_PKEY, so no OpenSSL object is
 * shared between threads.
 */
#include "bks_internal.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct key_ent {
  struct key_ent *next;
  unsigned char pub[32];
} key_ent;

struct bks_keys {
  pthread_mutex_t mu;
  key_ent *head;
};

bks_keys *bks_keys_new(void) {
  bks_keys *k = calloc(1, sizeof *k);
  if (k)
    pthread_mutex_init(&k->mu, NULL);
  return k;
}

void bks_keys_free(bks_keys *k) {
  if (!k)
    return;
  while (k->head) {
    key_ent *e = k->head;
    k->head = e->next;
    free(e);
  }
  pthread_mutex_destroy(&k->mu);
  free(k);
}

static int has_locked(bks_keys *k, const unsigned char pub[32]) {
  for (key_ent *e = k->head; e; e = e->next)
    if (memcmp(e->pub, pub, 32) == 0)
      return 1;
  return 0;
}

static int keys_has(bks_keys *k, const unsigned char pub[32]) {
  pthread_mutex_lock(&k->mu);
  int found = has_locked(k, pub);
  pthread_mutex_unlock(&k->mu);
  return found;
}

int bks_keys_add(bks_keys *k, const unsigned char pub[32]) {
  key_ent *e = calloc(1, sizeof *e);
  if (!e)
    return -1;
  memcpy(e->pub, pub, 32);
  pthread_mutex_lock(&k->mu);
  if (has_locked(k, pub)) {
    free(e);
  } else {
    e->next = k->head;
    k->head = e;
  }
  pthread_mutex_unlock(&k->mu);
  return 0;
}

/* ---- authorized keys file ------------------------------------------------ */

static uint32_t be32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

int bks_parse_authorized_key_line(const char *line, unsigned char pub[32],
                                  const char **why) {
  const char *p = line;
  while (*p == ' ' || *p == '\t')
    p++;
  const char *type = p;
  while (*p && *p != ' ' && *p != '\t')
    p++;
  if ((size_t)(p - type) != 11 || memcmp(type, "ssh-ed25519", 11) != 0) {
    *why = "not an ssh-ed25519 key (only `ssh-ed25519 <base64> [comment]` "
           "lines are accepted)";
    return -1;
  }
  while (*p == ' ' || *p == '\t')
    p++;
  const char *b64 = p;
  while (*p && *p != ' ' && *p != '\t' && *p != '\r')
    p++;
  size_t b64len = (size_t)(p - b64);
  unsigned char blob[128];
  long n = bk_b64_decode(b64, b64len, blob, sizeof blob, 0);
  /* string "ssh-ed25519", string <32 bytes>, nothing else */
  if (n != 4 + 11 + 4 + 32 || be32(blob) != 11 ||
      memcmp(blob + 4, "ssh-ed25519", 11) != 0 || be32(blob + 15) != 32) {
    *why = "bad key blob (not base64 of an ssh-ed25519 public key)";
    return -1;
  }
  memcpy(pub, blob + 19, 32);
  return 0;
}

int bks_keys_load(bks_keys *k, const char *path, char *err, size_t errlen) {
  char *text = bks_read_file(path, 16u * 1024 * 1024, NULL);
  if (!text) {
    bks_set_err(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  key_ent *list = NULL;
  int rc = 0;
  unsigned lineno = 0;
  /* split by hand: strtok_r would skip empty lines and lose the count */
  for (char *line = text; line && rc == 0;) {
    char *nl = strchr(line, '\n');
    if (nl)
      *nl = '\0';
    lineno++;
    char *p = line;
    while (*p == ' ' || *p == '\t' || *p == '\r')
      p++;
    if (*p && *p != '#') {
      unsigned char pub[32];
      const char *why = NULL;
      key_ent *e = NULL;
      if (bks_parse_authorized_key_line(p, pub, &why) != 0) {
        bks_set_err(err, errlen, "%s:%u: %s", path, lineno, why);
        rc = -1;
      } else if (!(e = calloc(1, sizeof *e))) {
        bks_set_err(err, errlen, "out of memory");
        rc = -1;
      } else {
        memcpy(e->pub, pub, 32);
        e->next = list;
        list = e;
      }
    }
    line = nl ? nl + 1 : NULL;
  }
  free(text);
  /* all or nothing */
  pthread_mutex_lock(&k->mu);
  while (list) {
    key_ent *e = list;
    list = e->next;
    if (rc == 0 && !has_locked(k, e->pub)) {
      e->next = k->head;
      k->head = e;
    } else {
      free(e);
    }
  }
  pthread_mutex_unlock(&k->mu);
  return rc;
}

/* ---- helpers ------------------------------------------------------------------ */

static int ed25519_verify(const unsigned char pub[32], const unsigned char *sig,
                          size_t siglen, const unsigned char *msg,
                          size_t len) {
  EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = pk && ctx &&
           EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
           EVP_DigestVerify(ctx, sig, siglen, msg, len) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pk);
  return ok;
}

/* 64 lower-case hex digits. */
static int is_keyhex(const char *s, size_t n) {
  if (n != 64)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
      return 0;
  return 1;
}

/* `<label>=:<base64>:` with nothing around it; the decoded length or -1. */
static long labelled_bytes(const char *v, const char *label,
                           unsigned char *out, size_t cap) {
  size_t ll = strlen(label), n = strlen(v);
  if (n < ll + 3 || strncmp(v, label, ll) != 0 || v[ll] != '=' ||
      v[ll + 1] != ':' || v[n - 1] != ':')
    return -1;
  return bk_b64_decode(v + ll + 2, n - ll - 3, out, cap, 0);
}

/* ---- v2: RFC 9421, the SDK's profile -------------------------------------------- */

#define V2_LABEL "encord-sig"
#define V2_COMPONENTS "(\"@method\" \"@request-target\" \"content-digest\")"

/* The parameters after the components:
 * `;created=<digits>;keyid="<64 hex>";alg="ed25519"`, exactly. */
static int v2_params(const char *p, long long *created, char keyhex[65],
                     const char **reason) {
  if (strncmp(p, ";created=", 9) != 0) {
    *reason = "Signature-Input: created must be the first parameter";
    return -1;
  }
  p += 9;
  long long v = 0;
  int digits = 0;
  while (isdigit((unsigned char)*p)) {
    if (++digits > 12) {
      *reason = "Signature-Input: created is out of range";
      return -1;
    }
    v = v * 10 + (*p++ - '0');
  }
  if (!digits) {
    *reason = "Signature-Input: created is not an integer";
    return -1;
  }
  if (strncmp(p, ";keyid=\"", 8) != 0) {
    *reason = "Signature-Input: keyid must follow created";
    return -1;
  }
  p += 8;
  const char *q = strchr(p, '"');
  if (!q || !is_keyhex(p, (size_t)(q - p))) {
    *reason = "Signature-Input: keyid is not the 64 lower-case hex digits "
              "of an Ed25519 public key";
    return -1;
  }
  memcpy(keyhex, p, 64);
  keyhex[64] = '\0';
  p = q + 1;
  if (strcmp(p, ";alg=\"ed25519\"") != 0) {
    *reason = "Signature-Input: alg=\"ed25519\" must be the last and only "
              "other parameter";
    return -1;
  }
  *created = v;
  return 0;
}

int bks_verify_v2(bks_keys *k, const bks_sig_input *in, char keyhex[65],
                  const char **reason) {
  const char *si = in->header(in->ctx, "Signature-Input");
  const char *sg = in->header(in->ctx, "Signature");
  const char *cd = in->header(in->ctx, "Content-Digest");
  if (!si || !sg || !cd) {
    *reason = !si ? "missing Signature-Input"
                  : !sg ? "missing Signature" : "missing Content-Digest";
    return -1;
  }
  size_t ll = strlen(V2_LABEL);
  if (strncmp(si, V2_LABEL "=", ll + 1) != 0) {
    *reason = "Signature-Input: one signature labelled encord-sig expected";
    return -1;
  }
  const char *params = si + ll + 1; /* the signature parameters */
  if (strncmp(params, V2_COMPONENTS, strlen(V2_COMPONENTS)) != 0) {
    *reason = "Signature-Input: the covered components must be exactly "
              "(\"@method\" \"@request-target\" \"content-digest\")";
    return -1;
  }
  long long created = 0;
  if (v2_params(params + strlen(V2_COMPONENTS), &created, keyhex, reason))
    return -1;
  unsigned char sig[96];
  if (labelled_bytes(sg, V2_LABEL, sig, sizeof sig) != 64) {
    *reason = "Signature: want encord-sig=:<base64 of 64 bytes>:";
    return -1;
  }
  unsigned char want[48];
  if (labelled_bytes(cd, "sha-256", want, sizeof want) != 32) {
    *reason = "Content-Digest: want sha-256=:<base64 of 32 bytes>:";
    return -1;
  }
  unsigned char got[EVP_MAX_MD_SIZE];
  unsigned gotlen = 0;
  if (!EVP_Digest(in->body ? (const void *)in->body : (const void *)"",
                  in->body_len, got, &gotlen, EVP_sha256(), NULL) ||
      gotlen != 32 || CRYPTO_memcmp(got, want, 32) != 0) {
    *reason = "Content-Digest does not match the body";
    return -1;
  }
  if ((double)created < in->now - BKS_CREATED_PAST) {
    *reason = "Signature-Input: created is too old";
    return -1;
  }
  if ((double)created > in->now + BKS_CREATED_FUTURE) {
    *reason = "Signature-Input: created is in the future";
    return -1;
  }
  unsigned char pub[32];
  if (bks_unhex(keyhex, pub, 32) != 0) {
    *reason = "Signature-Input: bad keyid";
    return -1;
  }
  if (strchr(in->target, '\n') || strchr(cd, '\n')) {
    *reason = "malformed request target";
    return -1;
  }
  char *base = bks_asprintf("\"@method\": %s\n\"@request-target\": %s\n"
                            "\"content-digest\": %s\n"
                            "\"@signature-params\": %s",
                            in->method, in->target, cd, params);
  if (!base) {
    *reason = "out of memory";
    return -1;
  }
  int ok = ed25519_verify(pub, sig, 64, (const unsigned char *)base,
                          strlen(base));
  free(base);
  if (!ok) {
    *reason = "the signature does not verify";
    return -1;
  }
  if (!keys_has(k, pub)) {
    *reason = "the key is not authorized";
    return -1;
  }
  *reason = NULL;
  return 0;
}

/* ---- v1: Authorization: PUBHEX:SIGHEX ----------------------------------------- */

int bks_verify_v1(bks_keys *k, const char *authorization,
                  const unsigned char *body, size_t len, char keyhex[65],
                  const char **reason) {
  if (!authorization) {
    *reason = "missing Authorization";
    return -1;
  }
  const char *colon = strchr(authorization, ':');
  unsigned char pub[32], sig[64];
  if (!colon || !is_keyhex(authorization, (size_t)(colon - authorization)) ||
      strlen(colon + 1) != 128 || bks_unhex(colon + 1, sig, 64) != 0) {
    *reason = "Authorization: want <64 hex public key>:<128 hex signature>";
    return -1;
  }
  for (const char *c = colon + 1; *c; c++)
    if (isupper((unsigned char)*c)) {
      *reason = "Authorization: the signature must be lower-case hex";
      return -1;
    }
  memcpy(keyhex, authorization, 64);
  keyhex[64] = '\0';
  if (bks_unhex(keyhex, pub, 32) != 0) {
    *reason = "Authorization: bad public key";
    return -1;
  }
  unsigned char digest[32];
  unsigned dl = 0;
  if (!EVP_Digest(body ? (const void *)body : (const void *)"", len, digest,
                  &dl, EVP_sha256(), NULL) ||
      dl != 32) {
    *reason = "cannot hash the body";
    return -1;
  }
  if (!ed25519_verify(pub, sig, 64, digest, 32)) {
    *reason = "the signature does not verify (Ed25519 over the SHA-256 of "
              "the body)";
    return -1;
  }
  if (!keys_has(k, pub)) {
    *reason = "the public key is not authorized";
    return -2;
  }
  *reason = NULL;
  return 0;
}
