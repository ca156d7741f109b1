/*
 * auth.c - authorized Ed25519 keys and the check of RFC 9421-style
 * request signatures (doc/api-protocol.md, "Request signing").
 *
 * The check rebuilds the signature base from the request as received
 * (the method, the raw request target, the received header values) and
 * the Signature-Input parameters exactly as sent, then verifies the
 * Ed25519 signature with EVP_DigestVerify. Content-Digest is compared
 * with the SHA-256 of the received body in constant time.
 *
 * Locking: the key table has its own mutex; a lookup copies the 32 raw
 * key bytes out, and each verification builds its own EVP_PKEY, so no
 * OpenSSL object is shared between threads.
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
  char *id;
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
    free(e->id);
    free(e);
  }
  pthread_mutex_destroy(&k->mu);
  free(k);
}

static int key_id_ok(const char *id) {
  size_t n = id ? strlen(id) : 0;
  if (n == 0 || n > BKS_KEY_ID_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)id[i];
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
      return 0;
  }
  return 1;
}

/* Insert e (taking it) or replace the key of the same id. Called with
 * k->mu held. */
static void keys_put_locked(bks_keys *k, key_ent *e) {
  for (key_ent *o = k->head; o; o = o->next) {
    if (strcmp(o->id, e->id) == 0) {
      memcpy(o->pub, e->pub, 32);
      free(e->id);
      free(e);
      return;
    }
  }
  e->next = k->head;
  k->head = e;
}

int bks_keys_add(bks_keys *k, const char *key_id, const unsigned char pub[32]) {
  if (!key_id_ok(key_id))
    return -1;
  key_ent *e = calloc(1, sizeof *e);
  if (!e || !(e->id = bks_strdup(key_id))) {
    free(e);
    return -1;
  }
  memcpy(e->pub, pub, 32);
  pthread_mutex_lock(&k->mu);
  keys_put_locked(k, e);
  pthread_mutex_unlock(&k->mu);
  return 0;
}

static int keys_find(bks_keys *k, const char *id, unsigned char pub[32]) {
  int found = 0;
  pthread_mutex_lock(&k->mu);
  for (key_ent *e = k->head; e; e = e->next) {
    if (strcmp(e->id, id) == 0) {
      memcpy(pub, e->pub, 32);
      found = 1;
      break;
    }
  }
  pthread_mutex_unlock(&k->mu);
  return found;
}

/* ---- authorized keys file ------------------------------------------------ */

static uint32_t be32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

int bks_parse_authorized_key_line(const char *line, unsigned char pub[32],
                                  char **key_id, const char **why) {
  *key_id = NULL;
  const char *p = line;
  while (*p == ' ' || *p == '\t')
    p++;
  const char *type = p;
  while (*p && *p != ' ' && *p != '\t')
    p++;
  if ((size_t)(p - type) != 11 || memcmp(type, "ssh-ed25519", 11) != 0) {
    *why = "not an ssh-ed25519 key (only `ssh-ed25519 <base64> <key id>` "
           "lines are accepted)";
    return -1;
  }
  while (*p == ' ' || *p == '\t')
    p++;
  const char *b64 = p;
  while (*p && *p != ' ' && *p != '\t')
    p++;
  size_t b64len = (size_t)(p - b64);
  unsigned char blob[128];
  long n = bks_b64_decode(b64, b64len, blob, sizeof blob);
  /* string "ssh-ed25519", string <32 bytes>, nothing else */
  if (n != 4 + 11 + 4 + 32 || be32(blob) != 11 ||
      memcmp(blob + 4, "ssh-ed25519", 11) != 0 || be32(blob + 15) != 32) {
    *why = "bad key blob (not base64 of an ssh-ed25519 public key)";
    return -1;
  }
  while (*p == ' ' || *p == '\t')
    p++;
  size_t idlen = strlen(p);
  while (idlen && (p[idlen - 1] == ' ' || p[idlen - 1] == '\t' ||
                   p[idlen - 1] == '\r'))
    idlen--;
  char *id = bks_strndup(p, idlen);
  if (!id) {
    *why = "out of memory";
    return -1;
  }
  if (!key_id_ok(id)) {
    free(id);
    *why = idlen ? "bad key id (control characters, quotes or too long)"
                 : "no key id (the comment after the key is its key id)";
    return -1;
  }
  memcpy(pub, blob + 19, 32);
  *key_id = id;
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
      char *id = NULL;
      const char *why = NULL;
      key_ent *e = NULL;
      if (bks_parse_authorized_key_line(p, pub, &id, &why) != 0) {
        bks_set_err(err, errlen, "%s:%u: %s", path, lineno, why);
        rc = -1;
      } else if (!(e = calloc(1, sizeof *e))) {
        free(id);
        bks_set_err(err, errlen, "out of memory");
        rc = -1;
      } else {
        e->id = id;
        memcpy(e->pub, pub, 32);
        e->next = list;
        list = e;
      }
    }
    line = nl ? nl + 1 : NULL;
  }
  free(text);
  /* all or nothing; file order decides between duplicate ids (last wins) */
  key_ent *rev = NULL;
  while (list) {
    key_ent *e = list;
    list = e->next;
    e->next = rev;
    rev = e;
  }
  pthread_mutex_lock(&k->mu);
  while (rev) {
    key_ent *e = rev;
    rev = e->next;
    if (rc == 0) {
      keys_put_locked(k, e);
    } else {
      free(e->id);
      free(e);
    }
  }
  pthread_mutex_unlock(&k->mu);
  return rc;
}

/* ---- signature parameters ------------------------------------------------ */

#define MAX_COMPONENTS 16

typedef struct sig_params {
  char *comp[MAX_COMPONENTS];
  size_t ncomp;
  int has_created, has_expires;
  long long created, expires;
  char *keyid, *alg;
} sig_params;

static void params_free(sig_params *sp) {
  for (size_t i = 0; i < sp->ncomp; i++)
    free(sp->comp[i]);
  free(sp->keyid);
  free(sp->alg);
}

/* A quoted string at *p (no escapes allowed); advances *p past it. */
static char *parse_quoted(const char **p) {
  const char *s = *p;
  if (*s != '"')
    return NULL;
  const char *e = ++s;
  while (*e && *e != '"') {
    if (*e == '\\' || (unsigned char)*e < 0x20)
      return NULL;
    e++;
  }
  if (*e != '"')
    return NULL;
  *p = e + 1;
  return bks_strndup(s, (size_t)(e - s));
}

static int parse_int(const char **p, long long *out) {
  const char *s = *p;
  int neg = *s == '-';
  if (neg)
    s++;
  if (!isdigit((unsigned char)*s))
    return -1;
  long long v = 0;
  int digits = 0;
  while (isdigit((unsigned char)*s)) {
    if (++digits > 15)
      return -1;
    v = v * 10 + (*s - '0');
    s++;
  }
  *out = neg ? -v : v;
  *p = s;
  return 0;
}

/* `("a" "b");created=1;keyid="k";alg="ed25519"`, the whole string. */
static int parse_params(const char *s, sig_params *sp) {
  memset(sp, 0, sizeof *sp);
  const char *p = s;
  if (*p++ != '(')
    return -1;
  while (*p != ')') {
    if (sp->ncomp && *p++ != ' ')
      return -1;
    if (sp->ncomp == MAX_COMPONENTS)
      return -1;
    char *c = parse_quoted(&p);
    if (!c)
      return -1;
    sp->comp[sp->ncomp++] = c;
  }
  p++;
  while (*p == ';') {
    p++;
    const char *name = p;
    while (islower((unsigned char)*p) || isdigit((unsigned char)*p) ||
           *p == '-' || *p == '_')
      p++;
    size_t nlen = (size_t)(p - name);
    if (nlen == 0 || *p++ != '=')
      return -1;
    if (*p == '"') {
      char *v = parse_quoted(&p);
      if (!v)
        return -1;
      char **slot = NULL;
      if (nlen == 5 && memcmp(name, "keyid", 5) == 0)
        slot = &sp->keyid;
      else if (nlen == 3 && memcmp(name, "alg", 3) == 0)
        slot = &sp->alg;
      if (slot && !*slot)
        *slot = v;
      else
        free(v); /* other parameters (nonce, tag) are covered, not used */
    } else {
      long long v;
      if (parse_int(&p, &v) != 0)
        return -1;
      if (nlen == 7 && memcmp(name, "created", 7) == 0) {
        sp->created = v;
        sp->has_created = 1;
      } else if (nlen == 7 && memcmp(name, "expires", 7) == 0) {
        sp->expires = v;
        sp->has_expires = 1;
      }
    }
  }
  return *p == '\0' ? 0 : -1;
}

/* The member `label=<value>` of a dictionary header: splits the header
 * at top-level commas (outside quotes and parentheses). Returns a
 * malloc'ed value, or NULL. With label NULL, the first member is taken
 * and its label returned in *first_label. */
static char *dict_member(const char *h, const char *label,
                         char **first_label) {
  const char *p = h;
  while (*p) {
    while (*p == ' ' || *p == '\t')
      p++;
    const char *name = p;
    while (*p && *p != '=' && *p != ',' && *p != ' ')
      p++;
    size_t nlen = (size_t)(p - name);
    if (*p != '=' || nlen == 0)
      return NULL;
    const char *v = ++p;
    int quote = 0, depth = 0;
    while (*p && (quote || depth || *p != ',')) {
      if (*p == '"')
        quote = !quote;
      else if (!quote && *p == '(')
        depth++;
      else if (!quote && *p == ')' && depth)
        depth--;
      p++;
    }
    size_t vlen = (size_t)(p - v);
    while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
      vlen--;
    if (!label) {
      *first_label = bks_strndup(name, nlen);
      return bks_strndup(v, vlen);
    }
    if (strlen(label) == nlen && memcmp(name, label, nlen) == 0)
      return bks_strndup(v, vlen);
    if (*p == ',')
      p++;
  }
  return NULL;
}

/* A byte sequence `:<base64>:` into out; its length or -1. */
static long byte_seq(const char *v, unsigned char *out, size_t cap) {
  size_t n = strlen(v);
  if (n < 2 || v[0] != ':' || v[n - 1] != ':')
    return -1;
  return bks_b64_decode(v + 1, n - 2, out, cap);
}

/* ---- verification ---------------------------------------------------------- */

/* Append "<name>": <value>\n to the base. */
static int base_add(char **base, size_t *len, size_t *cap, const char *name,
                    const char *value) {
  if (strchr(value, '\n') || strchr(value, '\r'))
    return -1;
  size_t need = strlen(name) + strlen(value) + 6;
  if (*len + need + 1 > *cap) {
    size_t c = *cap ? *cap : 512;
    while (c < *len + need + 1)
      c *= 2;
    char *b = realloc(*base, c);
    if (!b)
      return -1;
    *base = b;
    *cap = c;
  }
  *len += (size_t)snprintf(*base + *len, *cap - *len, "\"%s\": %s\n", name,
                           value);
  return 0;
}

static int ed25519_verify(const unsigned char pub[32], const unsigned char *sig,
                          size_t siglen, const char *msg, size_t len) {
  EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = pk && ctx &&
           EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
           EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)msg,
                            len) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pk);
  return ok;
}

int bks_verify_request(bks_keys *k, const bks_sig_input *in,
                       const char **reason) {
  const char *si = in->header(in->ctx, "Signature-Input");
  const char *sg = in->header(in->ctx, "Signature");
  if (!si) {
    *reason = "missing Signature-Input";
    return -1;
  }
  if (!sg) {
    *reason = "missing Signature";
    return -1;
  }
  int rc = -1;
  char *label = NULL, *params = NULL, *sigval = NULL, *base = NULL;
  sig_params sp;
  memset(&sp, 0, sizeof sp);
  params = dict_member(si, NULL, &label);
  if (!params || parse_params(params, &sp) != 0) {
    *reason = "malformed Signature-Input";
    goto out;
  }
  if (!sp.keyid) {
    *reason = "missing keyid";
    goto out;
  }
  if (!sp.has_created) {
    *reason = "missing created";
    goto out;
  }
  if (sp.alg && strcmp(sp.alg, "ed25519") != 0) {
    *reason = "unsupported alg";
    goto out;
  }
  static const char *const required[] = {"@method", "@request-target",
                                         "content-digest"};
  static const char *const not_covered[] = {
      "signature does not cover @method",
      "signature does not cover @request-target",
      "signature does not cover content-digest"};
  for (size_t i = 0; i < 3; i++) {
    size_t j = 0;
    while (j < sp.ncomp && strcmp(sp.comp[j], required[i]) != 0)
      j++;
    if (j == sp.ncomp) {
      *reason = not_covered[i];
      goto out;
    }
  }
  sigval = dict_member(sg, label, NULL);
  unsigned char sig[128];
  long siglen = sigval ? byte_seq(sigval, sig, sizeof sig) : -1;
  if (siglen != 64) {
    *reason = "malformed Signature";
    goto out;
  }
  unsigned char pub[32];
  if (!keys_find(k, sp.keyid, pub)) {
    *reason = "unknown key id";
    goto out;
  }
  double now = in->now;
  if ((double)sp.created < now - BKS_CREATED_PAST) {
    *reason = "created too old";
    goto out;
  }
  if ((double)sp.created > now + BKS_CREATED_FUTURE) {
    *reason = "created in the future";
    goto out;
  }
  if (sp.has_expires && (double)sp.expires < now) {
    *reason = "signature expired";
    goto out;
  }
  const char *cd = in->header(in->ctx, "Content-Digest");
  if (!cd) {
    *reason = "missing Content-Digest";
    goto out;
  }
  char *dv = dict_member(cd, "sha-256", NULL);
  unsigned char want[64];
  long wlen = dv ? byte_seq(dv, want, sizeof want) : -1;
  free(dv);
  if (wlen != 32) {
    *reason = "malformed Content-Digest (want sha-256=:<base64>:)";
    goto out;
  }
  unsigned char got[EVP_MAX_MD_SIZE];
  unsigned gotlen = 0;
  if (!EVP_Digest(in->body ? (const void *)in->body : (const void *)"",
                  in->body_len, got, &gotlen, EVP_sha256(), NULL) ||
      gotlen != 32 || CRYPTO_memcmp(got, want, 32) != 0) {
    *reason = "content digest mismatch";
    goto out;
  }
  size_t blen = 0, bcap = 0;
  for (size_t i = 0; i < sp.ncomp; i++) {
    const char *name = sp.comp[i];
    const char *value = NULL;
    if (strcmp(name, "@method") == 0)
      value = in->method;
    else if (strcmp(name, "@request-target") == 0)
      value = in->target;
    else if (name[0] == '@') {
      *reason = "unsupported derived component";
      goto out;
    } else {
      for (const char *c = name; *c; c++) {
        if (isupper((unsigned char)*c)) {
          *reason = "malformed Signature-Input";
          goto out;
        }
      }
      value = in->header(in->ctx, name);
      if (!value) {
        *reason = "missing covered header";
        goto out;
      }
    }
    if (base_add(&base, &blen, &bcap, name, value) != 0) {
      *reason = "malformed covered component";
      goto out;
    }
  }
  /* the last line: the parameters exactly as received, no newline */
  if (base_add(&base, &blen, &bcap, "@signature-params", params) != 0) {
    *reason = "malformed Signature-Input";
    goto out;
  }
  blen--; /* drop the final '\n' */
  if (!ed25519_verify(pub, sig, (size_t)siglen, base, blen)) {
    *reason = "signature does not verify";
    goto out;
  }
  rc = 0;
  *reason = NULL;
out:
  params_free(&sp);
  free(label);
  free(params);
  free(sigval);
  free(base);
  return rc;
}
