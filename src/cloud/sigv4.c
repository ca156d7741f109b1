/* cloud/sigv4.c - AWS Signature Version 4: the canonical request, the
 * string to sign, the signing key and the Authorization header; and the
 * engine's signer (bulkup_s3_sign_request) built on them.
 *
 * Hashes of the small strings (the canonical request) use util's SHA-256;
 * the HMAC-SHA256 chain is OpenSSL's. Nothing here keeps state between
 * calls but a signer's signing key of the day, kept under its lock, so a
 * signer's calls may run on every worker thread at once. */
#include "internal.h"
#include "cloud/cloud.h"
#include "util/sha256.h"
#include "util/str.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>

#define BK_EMPTY_SHA256                                                      \
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ---- a growing string -------------------------------------------------- */

typedef struct bk_buf {
  char *p;
  size_t len, cap;
  bool oom;
} bk_buf;

static void bk_buf_put(bk_buf *b, const char *s, size_t n) {
  if (b->oom)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *p = bk_realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void bk_buf_puts(bk_buf *b, const char *s) { bk_buf_put(b, s, strlen(s)); }

static void bk_buf_putc(bk_buf *b, char c) { bk_buf_put(b, &c, 1); }

static bool bk_unreserved(unsigned char c) {
  return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static void bk_buf_pct(bk_buf *b, unsigned char c) {
  char e[4];
  snprintf(e, sizeof e, "%%%02X", c);
  bk_buf_put(b, e, 3);
}

/* ---- the canonical URI ---------------------------------------------------- */

/* S3: as sent, an existing escape kept (upper-cased), every other byte
 * outside the unreserved set and '/' escaped. */
static void bk_canon_path_s3(bk_buf *b, const char *p, size_t n) {
  if (n == 0) {
    bk_buf_putc(b, '/');
    return;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '%' && i + 2 < n + 0 && bk_hex_value(p[i + 1]) >= 0 &&
        bk_hex_value(p[i + 2]) >= 0) {
      bk_buf_pct(b, (unsigned char)(bk_hex_value(p[i + 1]) * 16 +
                                    bk_hex_value(p[i + 2])));
      i += 2;
    } else if (bk_unreserved(c) || c == '/') {
      bk_buf_putc(b, (char)c);
    } else {
      bk_buf_pct(b, c);
    }
  }
}

/* Other services: dot segments and empty segments removed (RFC 3986
 * section 5.2.4, and '//' collapsed), a trailing '/' kept, each byte
 * outside the unreserved set and '/' escaped ('%' too: the path as sent
 * is encoded once more). */
static void bk_canon_path_normalized(bk_buf *b, const char *p, size_t n) {
  /* segments[i] = start and length in p */
  size_t cap = n / 2 + 2, count = 0;
  size_t *seg = bk_malloc(cap * 2 * sizeof *seg);
  if (!seg) {
    b->oom = true;
    return;
  }
  size_t i = 0;
  bool trailing = n > 0 && p[n - 1] == '/';
  while (i < n) {
    while (i < n && p[i] == '/')
      i++;
    size_t s = i;
    while (i < n && p[i] != '/')
      i++;
    size_t l = i - s;
    if (l == 0 || (l == 1 && p[s] == '.'))
      continue;
    if (l == 2 && p[s] == '.' && p[s + 1] == '.') {
      if (count)
        count--;
      continue;
    }
    seg[2 * count] = s;
    seg[2 * count + 1] = l;
    count++;
  }
  /* A path ending in "/." or "/.." names a directory. */
  if (n >= 2 && p[n - 1] == '.' &&
      (p[n - 2] == '/' || (p[n - 2] == '.' && (n == 2 || p[n - 3] == '/'))))
    trailing = true;
  for (size_t k = 0; k < count; k++) {
    bk_buf_putc(b, '/');
    for (size_t j = 0; j < seg[2 * k + 1]; j++) {
      unsigned char c = (unsigned char)p[seg[2 * k] + j];
      if (bk_unreserved(c))
        bk_buf_putc(b, (char)c);
      else
        bk_buf_pct(b, c);
    }
  }
  if (count == 0 || trailing)
    bk_buf_putc(b, '/');
  bk_free(seg);
}

/* ---- the canonical query --------------------------------------------------- */

typedef struct bk_qparam {
  char *key;   /* encoded as canonical */
  char *value;
} bk_qparam;

/* Decode %XX (and '+' as itself: S3 signs a '+' as %2B), then encode the
 * unreserved way. */
static char *bk_query_canon_part(const char *s, size_t n) {
  bk_buf b = {0};
  bk_buf_put(&b, "", 0);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '%' && i + 2 < n + 0 && bk_hex_value(s[i + 1]) >= 0 &&
        bk_hex_value(s[i + 2]) >= 0) {
      c = (unsigned char)(bk_hex_value(s[i + 1]) * 16 +
                          bk_hex_value(s[i + 2]));
      i += 2;
    }
    if (bk_unreserved(c))
      bk_buf_putc(&b, (char)c);
    else
      bk_buf_pct(&b, c);
  }
  if (b.oom) {
    bk_free(b.p);
    return NULL;
  }
  return b.p;
}

static int bk_qparam_cmp(const void *a, const void *b) {
  const bk_qparam *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  return c ? c : strcmp(x->value, y->value);
}

static void bk_canon_query(bk_buf *b, const char *q) {
  if (!q || !*q)
    return;
  size_t n = 1;
  for (const char *p = q; *p; p++)
    n += *p == '&';
  bk_qparam *ps = bk_calloc(n, sizeof *ps);
  if (!ps) {
    b->oom = true;
    return;
  }
  size_t count = 0;
  const char *p = q;
  bool ok = true;
  while (ok) {
    const char *e = strchr(p, '&');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len) {
      const char *eq = memchr(p, '=', len);
      size_t kl = eq ? (size_t)(eq - p) : len;
      ps[count].key = bk_query_canon_part(p, kl);
      ps[count].value =
          eq ? bk_query_canon_part(eq + 1, len - kl - 1) : bk_strdup("");
      if (!ps[count].key || !ps[count].value)
        ok = false;
      count++;
    }
    if (!e)
      break;
    p = e + 1;
  }
  if (ok) {
    qsort(ps, count, sizeof *ps, bk_qparam_cmp);
    for (size_t i = 0; i < count; i++) {
      if (i)
        bk_buf_putc(b, '&');
      bk_buf_puts(b, ps[i].key);
      bk_buf_putc(b, '=');
      bk_buf_puts(b, ps[i].value);
    }
  } else {
    b->oom = true;
  }
  for (size_t i = 0; i < count; i++) {
    bk_free(ps[i].key);
    bk_free(ps[i].value);
  }
  bk_free(ps);
}

/* ---- the canonical headers -------------------------------------------------- */

typedef struct bk_hdr {
  char *name;  /* lower case */
  char *value; /* trimmed, inner runs of spaces made one */
  size_t order;
} bk_hdr;

static int bk_hdr_cmp(const void *a, const void *b) {
  const bk_hdr *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  if (c)
    return c;
  return x->order < y->order ? -1 : x->order > y->order;
}

static bool bk_parse_header(const char *line, bk_hdr *h, size_t order) {
  const char *colon = strchr(line, ':');
  if (!colon || colon == line)
    return false;
  size_t nl = (size_t)(colon - line);
  while (nl && (line[nl - 1] == ' ' || line[nl - 1] == '\t'))
    nl--;
  h->name = bk_strndup(line, nl);
  const char *v = colon + 1;
  while (*v == ' ' || *v == '\t')
    v++;
  size_t vl = strlen(v);
  while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
    vl--;
  h->value = bk_malloc(vl + 1);
  h->order = order;
  if (!h->name || !h->value)
    return true; /* the caller sees the NULL */
  for (size_t i = 0; i < nl; i++)
    h->name[i] = (char)tolower((unsigned char)h->name[i]);
  size_t o = 0;
  for (size_t i = 0; i < vl; i++) {
    char c = v[i] == '\t' ? ' ' : v[i];
    if (c == ' ' && o && h->value[o - 1] == ' ')
      continue;
    h->value[o++] = c;
  }
  h->value[o] = '\0';
  return true;
}

/* ---- HMAC ---------------------------------------------------------------------- */

static bool bk_hmac(const void *key, size_t klen, const char *msg,
                    unsigned char out[32]) {
  unsigned int n = 0;
  return HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg,
              strlen(msg), out, &n) != NULL &&
         n == 32;
}

/* ---- bulkup_sigv4_sign ------------------------------------------------------------ */

void bulkup_sigv4_output_free(bulkup_sigv4_output *out) {
  if (!out)
    return;
  bk_free(out->canonical_request);
  bk_free(out->string_to_sign);
  bk_free(out->signed_headers);
  bk_free(out->authorization);
  memset(out, 0, sizeof *out);
}

/* The signing key of a date (YYYYMMDD), region and service. */
static bool bk_signing_key(const char *secret, const char *date,
                           const char *region, const char *service,
                           unsigned char out[32]) {
  size_t sl = strlen(secret);
  char *k0 = bk_malloc(sl + 5);
  unsigned char k1[32], k2[32], k3[32];
  bool ok = k0 != NULL;
  if (ok) {
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, secret, sl + 1);
    ok = bk_hmac(k0, sl + 4, date, k1) && bk_hmac(k1, 32, region, k2) &&
         bk_hmac(k2, 32, service, k3) && bk_hmac(k3, 32, "aws4_request", out);
    OPENSSL_cleanse(k0, sl + 4);
    bk_free(k0);
  }
  OPENSSL_cleanse(k1, sizeof k1);
  OPENSSL_cleanse(k2, sizeof k2);
  OPENSSL_cleanse(k3, sizeof k3);
  return ok;
}

static bulkup_err bk_sigv4_sign(bulkup_sigv4_output *out,
                                const bulkup_sigv4_input *in,
                                const unsigned char *key);

bulkup_err bulkup_sigv4_sign(bulkup_sigv4_output *out,
                             const bulkup_sigv4_input *in) {
  return bk_sigv4_sign(out, in, NULL);
}

/* With `key` (the signing key of in's date, region and service), the HMAC
 * chain is skipped. */
static bulkup_err bk_sigv4_sign(bulkup_sigv4_output *out,
                                const bulkup_sigv4_input *in,
                                const unsigned char *key) {
  if (!out)
    return bk_error(BULKUP_EINVAL, "sigv4: no output");
  memset(out, 0, sizeof *out);
  if (!in || !in->method || !in->amz_date || strlen(in->amz_date) != 16 ||
      !in->region || !*in->region || !in->service || !*in->service ||
      !in->access_key_id || !*in->access_key_id || !in->secret_access_key)
    return bk_error(BULKUP_EINVAL, "sigv4: method, date (YYYYMMDDTHHMMSSZ), "
                    "region, service and keys are required");
  size_t nh = 0;
  for (size_t i = 0; in->headers && in->headers[i]; i++)
    nh++;
  bk_hdr *hs = bk_calloc(nh ? nh : 1, sizeof *hs);
  if (!hs)
    return bk_error(BULKUP_ENOMEM, "sigv4: out of memory");
  bulkup_err rc = BULKUP_OK;
  for (size_t i = 0; i < nh; i++) {
    if (!bk_parse_header(in->headers[i], &hs[i], i)) {
      rc = bk_error(BULKUP_EINVAL, "sigv4: header line %zu has no name and "
                    "colon", i + 1);
      nh = i;
      break;
    }
    if (!hs[i].name || !hs[i].value) {
      rc = bk_error(BULKUP_ENOMEM, "sigv4: out of memory");
      nh = i + 1;
      break;
    }
  }
  bk_buf cr = {0}, sh = {0}, sts = {0}, az = {0};
  if (rc == BULKUP_OK) {
    qsort(hs, nh, sizeof *hs, bk_hdr_cmp);
    bk_buf_puts(&cr, in->method);
    bk_buf_putc(&cr, '\n');
    const char *path = in->path ? in->path : "";
    if (in->normalize_path)
      bk_canon_path_normalized(&cr, path, strlen(path));
    else
      bk_canon_path_s3(&cr, path, strlen(path));
    bk_buf_putc(&cr, '\n');
    bk_canon_query(&cr, in->query);
    bk_buf_putc(&cr, '\n');
    for (size_t i = 0; i < nh; i++) {
      bool same = i > 0 && strcmp(hs[i].name, hs[i - 1].name) == 0;
      if (same) {
        bk_buf_putc(&cr, ',');
      } else {
        if (i > 0)
          bk_buf_putc(&cr, '\n');
        bk_buf_puts(&cr, hs[i].name);
        bk_buf_putc(&cr, ':');
        if (sh.len)
          bk_buf_putc(&sh, ';');
        bk_buf_puts(&sh, hs[i].name);
      }
      bk_buf_puts(&cr, hs[i].value);
    }
    if (nh)
      bk_buf_putc(&cr, '\n');
    bk_buf_putc(&cr, '\n');
    bk_buf_put(&sh, "", 0);
    bk_buf_puts(&cr, sh.p ? sh.p : "");
    bk_buf_putc(&cr, '\n');
    bk_buf_puts(&cr, in->payload_hash ? in->payload_hash : BK_EMPTY_SHA256);

    char date[9];
    memcpy(date, in->amz_date, 8);
    date[8] = '\0';
    unsigned char h[BK_SHA256_LEN];
    char hex[65];
    if (!cr.oom) {
      bk_sha256(cr.p, cr.len, h);
      bk_hex_encode(h, sizeof h, hex, false);
    }
    bk_buf_puts(&sts, "AWS4-HMAC-SHA256\n");
    bk_buf_puts(&sts, in->amz_date);
    bk_buf_putc(&sts, '\n');
    bk_buf_puts(&sts, date);
    bk_buf_putc(&sts, '/');
    bk_buf_puts(&sts, in->region);
    bk_buf_putc(&sts, '/');
    bk_buf_puts(&sts, in->service);
    bk_buf_puts(&sts, "/aws4_request\n");
    if (!cr.oom)
      bk_buf_puts(&sts, hex);

    /* The signing key: HMAC chain from "AWS4" + secret (or given). */
    unsigned char k4[32], sig[32];
    bool ok = !cr.oom && !sts.oom && !sh.oom;
    if (ok && key)
      memcpy(k4, key, 32);
    else if (ok)
      ok = bk_signing_key(in->secret_access_key, date, in->region,
                          in->service, k4);
    if (ok)
      ok = bk_hmac(k4, 32, sts.p, sig);
    OPENSSL_cleanse(k4, sizeof k4);
    if (ok) {
      bk_hex_encode(sig, sizeof sig, out->signature, false);
      bk_buf_puts(&az, "AWS4-HMAC-SHA256 Credential=");
      bk_buf_puts(&az, in->access_key_id);
      bk_buf_putc(&az, '/');
      bk_buf_puts(&az, date);
      bk_buf_putc(&az, '/');
      bk_buf_puts(&az, in->region);
      bk_buf_putc(&az, '/');
      bk_buf_puts(&az, in->service);
      bk_buf_puts(&az, "/aws4_request, SignedHeaders=");
      bk_buf_puts(&az, sh.p);
      bk_buf_puts(&az, ", Signature=");
      bk_buf_puts(&az, out->signature);
      ok = !az.oom;
    }
    if (!ok)
      rc = bk_error(BULKUP_ENOMEM, "sigv4: out of memory or HMAC failed");
  }
  for (size_t i = 0; i < nh; i++) {
    bk_free(hs[i].name);
    bk_free(hs[i].value);
  }
  bk_free(hs);
  if (rc != BULKUP_OK) {
    bk_free(cr.p);
    bk_free(sh.p);
    bk_free(sts.p);
    bk_free(az.p);
    memset(out, 0, sizeof *out);
    return rc;
  }
  out->canonical_request = cr.p;
  out->signed_headers = sh.p;
  out->string_to_sign = sts.p;
  out->authorization = az.p;
  return BULKUP_OK;
}

/* ---- the engine's signer ------------------------------------------------------- */

struct bulkup_s3_signer {
  /* The signing key of the last date signed (it changes once a day):
   * four HMACs saved per request. `lock` guards the two. */
  pthread_mutex_t lock;
  char key_date[9];
  unsigned char key[32];
  char *access_key_id;
  char *secret_access_key;
  char *session_token;
  char *region;
  char *service;
  bool signed_payload;
  bool crc32c;
  bool gcs;
};

void bulkup_s3_signer_options_init(bulkup_s3_signer_options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->payload = BULKUP_S3_PAYLOAD_AUTO;
  opt->https = true;
}

static void bk_wipe_free(char *s) {
  if (s) {
    OPENSSL_cleanse(s, strlen(s));
    bk_free(s);
  }
}

void bulkup_s3_signer_free(bulkup_s3_signer *s) {
  if (!s)
    return;
  bk_free(s->access_key_id);
  bk_wipe_free(s->secret_access_key);
  bk_wipe_free(s->session_token);
  bk_free(s->region);
  bk_free(s->service);
  OPENSSL_cleanse(s->key, sizeof s->key);
  pthread_mutex_destroy(&s->lock);
  bk_free(s);
}

bulkup_err bulkup_s3_signer_new(bulkup_s3_signer **out,
                                const bulkup_s3_credentials *c,
                                const bulkup_s3_signer_options *opt) {
  if (!out)
    return bk_error(BULKUP_EINVAL, "s3 signer: no output");
  *out = NULL;
  if (!c || !c->access_key_id || !*c->access_key_id ||
      !c->secret_access_key || !*c->secret_access_key)
    return bk_error(BULKUP_EINVAL, "s3 signer: no access key id or secret");
  if (!opt || !opt->region || !*opt->region)
    return bk_error(BULKUP_EINVAL, "s3 signer: no region");
  bulkup_s3_signer *s = bk_calloc(1, sizeof *s);
  if (!s)
    return bk_error(BULKUP_ENOMEM, "s3 signer: out of memory");
  if (pthread_mutex_init(&s->lock, NULL) != 0) {
    bk_free(s);
    return bk_error(BULKUP_ETHREAD, "s3 signer: pthread_mutex_init failed");
  }
  s->access_key_id = bk_strdup(c->access_key_id);
  s->secret_access_key = bk_strdup(c->secret_access_key);
  s->session_token =
      c->session_token && *c->session_token ? bk_strdup(c->session_token) : NULL;
  s->region = bk_strdup(opt->region);
  s->service = bk_strdup(opt->service && *opt->service ? opt->service : "s3");
  s->signed_payload = opt->payload == BULKUP_S3_PAYLOAD_SIGNED ||
                      (opt->payload == BULKUP_S3_PAYLOAD_AUTO && !opt->https);
  s->crc32c = opt->crc32c;
  s->gcs = opt->provider == BULKUP_S3_GCS;
  if (!s->access_key_id || !s->secret_access_key || !s->region ||
      !s->service || (c->session_token && *c->session_token && !s->session_token)) {
    bulkup_s3_signer_free(s);
    return bk_error(BULKUP_ENOMEM, "s3 signer: out of memory");
  }
  *out = s;
  return BULKUP_OK;
}

bool bulkup_s3_signer_wants_payload_hash(const bulkup_s3_signer *s) {
  return s && s->signed_payload;
}

bool bulkup_s3_signer_wants_crc32c(const bulkup_s3_signer *s) {
  return s && s->crc32c;
}

/* Header names the signature leaves out: libcurl or a proxy may change
 * them, and S3 does not require them. */
static bool bk_unsigned_header(const char *line) {
  static const char *const skip[] = {"user-agent:", "expect:",
                                     "authorization:", "x-amz-date:",
                                     "x-amz-content-sha256:",
                                     "x-amz-security-token:"};
  for (size_t i = 0; i < sizeof skip / sizeof *skip; i++)
    if (strncasecmp(line, skip[i], strlen(skip[i])) == 0)
      return true;
  /* "Name:" with nothing after it removes a header libcurl adds. */
  const char *c = strchr(line, ':');
  if (!c)
    return true;
  for (c++; *c; c++)
    if (*c != ' ' && *c != '\t')
      return false;
  return true;
}

bulkup_err bulkup_s3_sign_request(void *sign_userdata, bulkup_request *req) {
  bulkup_s3_signer *s = sign_userdata;
  if (!s || !req || !req->url || !req->method || !req->add_header)
    return bk_error(BULKUP_EINVAL, "s3 signer: no signer or request");
  /* scheme://host[:port]/path?query */
  const char *u = strstr(req->url, "://");
  if (!u)
    return bk_error(BULKUP_EINVAL, "s3 signer: URL without a scheme");
  const char *host = u + 3;
  size_t hl = strcspn(host, "/?#");
  const char *path = host + hl;
  size_t pl = strcspn(path, "?#");
  const char *query = path[pl] == '?' ? path + pl + 1 : NULL;
  size_t ql = query ? strcspn(query, "#") : 0;
  const char *at = memchr(host, '@', hl);
  if (at) {
    hl -= (size_t)(at + 1 - host);
    host = at + 1;
  }
  /* libcurl's Host header leaves out the scheme's default port. */
  bool https = strncasecmp(req->url, "https://", 8) == 0;
  if (hl > 4 && https && strncmp(host + hl - 4, ":443", 4) == 0)
    hl -= 4;
  else if (hl > 3 && !https && strncmp(host + hl - 3, ":80", 3) == 0)
    hl -= 3;

  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  char amz_date[32];
  strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm);
  const char *payload =
      s->signed_payload ? (req->payload_sha256 ? req->payload_sha256
                                               : NULL)
                        : BULKUP_SIGV4_UNSIGNED_PAYLOAD;
  if (s->signed_payload && !payload)
    return bk_error(BULKUP_EINVAL, "s3 signer: a signed payload needs the "
                    "body's SHA-256 (set options.sign_payload)");

  size_t n = 0;
  for (size_t i = 0; req->headers && req->headers[i]; i++)
    n++;
  const char **lines = bk_calloc(n + 7, sizeof *lines);
  char *hostl = bk_malloc(hl + 7);
  char *pathc = bk_strndup(path, pl);
  char *queryc = query ? bk_strndup(query, ql) : NULL;
  char datel[48], shal[96], crcl[64] = "";
  char *tokl = NULL;
  bulkup_err rc = BULKUP_OK;
  if (!lines || !hostl || !pathc || (query && !queryc) ||
      (s->session_token &&
       !(tokl = bk_malloc(strlen(s->session_token) + 24)))) {
    rc = bk_error(BULKUP_ENOMEM, "s3 signer: out of memory");
    goto done;
  }
  snprintf(hostl, hl + 7, "host:%.*s", (int)hl, host);
  snprintf(datel, sizeof datel, "X-Amz-Date: %s", amz_date);
  snprintf(shal, sizeof shal, "X-Amz-Content-SHA256: %s", payload);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (!bk_unsigned_header(req->headers[i]) &&
        strncasecmp(req->headers[i], "host:", 5) != 0)
      lines[k++] = req->headers[i];
  /* The checksum, by what the request is. A single PUT and each part of
   * a multipart upload carry their body's CRC-32C. S3 takes a part's
   * only when CreateMultipartUpload declared the algorithm, so the create
   * does (the engine then lists each part's checksum in the Complete's
   * XML, where a header would be the whole object's checksum). GCS's XML
   * multipart API checks a part's x-goog-hash, but its create declares
   * no algorithm and its Complete takes part numbers and ETags only: its
   * create and Complete carry nothing. The Complete, the abort and
   * resumable requests carry no checksum header. */
  bool single = req->kind == BULKUP_REQUEST_PUT;
  bool part = req->kind == BULKUP_REQUEST_MULTIPART_PART;
  if (s->crc32c && req->payload_crc32c && (single || part)) {
    snprintf(crcl, sizeof crcl, s->gcs ? "x-goog-hash: crc32c=%s"
                                       : "x-amz-checksum-crc32c: %s",
             req->payload_crc32c);
    lines[k++] = crcl;
  } else if (s->crc32c && !s->gcs &&
             req->kind == BULKUP_REQUEST_MULTIPART_CREATE) {
    snprintf(crcl, sizeof crcl, "x-amz-checksum-algorithm: CRC32C");
    lines[k++] = crcl;
  }
  lines[k++] = hostl;
  lines[k++] = datel;
  lines[k++] = shal;
  if (tokl) {
    sprintf(tokl, "X-Amz-Security-Token: %s", s->session_token);
    lines[k++] = tokl;
  }
  lines[k] = NULL;
  bulkup_sigv4_input in = {.method = req->method,
                           .path = pathc,
                           .query = queryc,
                           .headers = lines,
                           .payload_hash = payload,
                           .amz_date = amz_date,
                           .region = s->region,
                           .service = s->service,
                           .access_key_id = s->access_key_id,
                           .secret_access_key = s->secret_access_key,
                           .normalize_path = false};
  unsigned char key[32];
  bk_mutex_lock(&s->lock);
  if (strncmp(s->key_date, amz_date, 8) != 0) {
    char date[9];
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    if (bk_signing_key(s->secret_access_key, date, s->region, s->service,
                       s->key))
      memcpy(s->key_date, date, 9);
    else
      s->key_date[0] = '\0';
  }
  bool have_key = s->key_date[0] != '\0';
  memcpy(key, s->key, sizeof key);
  bk_mutex_unlock(&s->lock);
  bulkup_sigv4_output o;
  rc = bk_sigv4_sign(&o, &in, have_key ? key : NULL);
  OPENSSL_cleanse(key, sizeof key);
  if (rc != BULKUP_OK)
    goto done;
  char *authl = bk_malloc(strlen(o.authorization) + 16);
  if (!authl) {
    bulkup_sigv4_output_free(&o);
    rc = bk_error(BULKUP_ENOMEM, "s3 signer: out of memory");
    goto done;
  }
  sprintf(authl, "Authorization: %s", o.authorization);
  bulkup_sigv4_output_free(&o);
  rc = crcl[0] ? req->add_header(req, crcl) : BULKUP_OK;
  if (rc == BULKUP_OK)
    rc = req->add_header(req, datel);
  if (rc == BULKUP_OK)
    rc = req->add_header(req, shal);
  if (rc == BULKUP_OK && tokl)
    rc = req->add_header(req, tokl);
  if (rc == BULKUP_OK)
    rc = req->add_header(req, authl);
  bk_free(authl);
done:
  bk_free(lines);
  bk_free(hostl);
  bk_free(pathc);
  bk_free(queryc);
  bk_wipe_free(tokl);
  return rc;
}
