/*
 * signurl.c - what presign hands out and the storage PUT checks: signed
 * storage URLs (an HMAC-SHA256 under the server's secret over the method,
 * the object key, the expiry and the content-type pattern), and the
 * object keys themselves, which carry a MAC binding them to the key that
 * asked for them and to the upload item type (so a job may only name
 * objects presigned for its signer, of the right type, without the server
 * keeping a record of every URL it issued).
 */
#include "bks_internal.h"

#include <ctype.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define P_STORAGE "/storage/"

void bks_reject(bks_req *r, int status, const char *code, const char *msg) {
  r->reject_status = status;
  r->reject_code = code;
  r->reject_msg = msg;
  r->sink = BKS_SINK_DISCARD;
}

/* lower hex HMAC-SHA256 of "PUT\n{key}\n{expires}\n{pattern}" */
static int storage_mac(bks_server *srv, const char *key, const char *expires,
                       const char *pattern, unsigned char mac[32]) {
  char *msg = bks_asprintf("PUT\n%s\n%s\n%s", key, expires, pattern);
  if (!msg)
    return -1;
  unsigned len = 0;
  unsigned char *ok = HMAC(EVP_sha256(), srv->secret, (int)srv->secret_len,
                           (const unsigned char *)msg, strlen(msg), mac, &len);
  free(msg);
  return ok && len == 32 ? 0 : -1;
}

char *bks_sign_url(bks_server *srv, const char *base, const char *key,
                       const char *pattern, double ttl) {
  char expires[64];
  double now = bk_now_real();
  if (ttl == floor(ttl) && fabs(ttl) < 1e12)
    snprintf(expires, sizeof expires, "%lld",
             (long long)floor(now) + (long long)ttl);
  else
    snprintf(expires, sizeof expires, "%.3f", now + ttl);
  unsigned char mac[32];
  char hex[65];
  if (storage_mac(srv, key, expires, pattern, mac) != 0)
    return NULL;
  bk_hex_encode(mac, 32, hex, false);
  char *ekey = bks_pct_encode_path(key); /* uploads/<type>/<uuid> */
  char *epat = bks_pct_encode(pattern);
  char *url = NULL;
  if (ekey && epat)
    url = bks_asprintf("%s" P_STORAGE "%s?expires=%s&content_type=%s"
                       "&signature=%s",
                       base, ekey, expires, epat, hex);
  free(ekey);
  free(epat);
  return url;
}

/* A strict unix time: digits, optionally a fraction. */
static int parse_expires(const char *s, double *out) {
  const char *p = s;
  if (!isdigit((unsigned char)*p))
    return -1;
  while (isdigit((unsigned char)*p))
    p++;
  if (*p == '.') {
    p++;
    if (!isdigit((unsigned char)*p))
      return -1;
    while (isdigit((unsigned char)*p))
      p++;
  }
  if (*p || p - s > 20)
    return -1;
  *out = strtod(s, NULL);
  return 0;
}

/* Does Content-Type `ct` (parameters ignored) match the signed pattern? */
static int ctype_matches(const char *pattern, const char *ct) {
  if (strcmp(pattern, "*") == 0)
    return 1;
  if (!ct) /* the SDK sends none for an image of unknown extension (§5) */
    return strcmp(pattern, "image/*") == 0;
  while (*ct == ' ')
    ct++;
  size_t n = strcspn(ct, ";");
  while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
    n--;
  if (strcmp(pattern, "image/*") == 0) {
    if (n == 24 && strncasecmp(ct, "application/octet-stream", 24) == 0)
      return 1;
    return n > 6 && strncasecmp(ct, "image/", 6) == 0 &&
           !memchr(ct + 6, '/', n - 6);
  }
  return strlen(pattern) == n && strncasecmp(ct, pattern, n) == 0;
}

#define SIG_MISMATCH                                                         \
  "The request signature we calculated does not match the signature you "   \
  "provided."

/* The storage PUT's checks 1-3 (doc/api-protocol.md), in order. */
static void storage_check(bks_req *r) {
  bks_server *srv = r->srv;
  char *expires = bks_query_get(r->query, "expires", NULL);
  char *pattern = bks_query_get(r->query, "content_type", NULL);
  char *sig = bks_query_get(r->query, "signature", NULL);
  unsigned char want[32], got[32];
  double exp = 0;
  if (!expires || !pattern || !sig) {
    bks_reject(r, 403, "SignatureDoesNotMatch",
           "The URL is missing expires, content_type or signature.");
  } else if (bks_unhex(sig, got, 32) != 0 ||
             storage_mac(srv, r->key, expires, pattern, want) != 0 ||
             CRYPTO_memcmp(want, got, 32) != 0) {
    bks_reject(r, 403, "SignatureDoesNotMatch", SIG_MISMATCH);
  } else if (parse_expires(expires, &exp) != 0) {
    bks_reject(r, 403, "SignatureDoesNotMatch", "The expires value is invalid.");
  } else if (bk_now_real() > exp) {
    bks_reject(r, 403, "ExpiredToken",
           "The signed URL has expired; request a new one.");
  } else if (!ctype_matches(pattern,
                            r->rec.content_type[0] ? r->rec.content_type
                                                   : NULL)) {
    bks_reject(r, 403, "SignatureDoesNotMatch",
           "The Content-Type does not match the one the URL was signed "
           "for.");
  }
  free(expires);
  free(pattern);
  free(sig);
}

int bks_storage_authorize(bks_req *r) {
  const char *raw = r->path + strlen(P_STORAGE);
  r->key = bks_pct_decode(raw, strlen(raw));
  if (!r->key || !bks_object_key_valid(r->key)) {
    bks_reject(r, 400, "InvalidObjectName", "The object key is not valid.");
    return -1;
  }
  storage_check(r);
  return r->reject_status ? -1 : 0;
}

char *bks_host_base(bks_req *r) {
  const char *h =
      MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Host");
  size_t n = h ? strlen(h) : 0;
  if (n == 0 || n > 255)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)h[i];
    if (!isalnum(c) && c != '.' && c != '-' && c != ':' && c != '[' &&
        c != ']')
      return NULL;
  }
  return bks_asprintf("%s://%s", r->srv->tls ? "https" : "http", h);
}

char *bks_base_url(bks_req *r) {
  bks_server *srv = r->srv;
  char *base = srv->public_url ? bks_strdup(srv->public_url)
                               : bks_host_base(r);
  return base ? base : bks_strdup(srv->self_url);
}

/* ---- object keys ------------------------------------------------------------ */

/* The 6-byte tag (the uuid's bytes 10-15) of its random part (bytes 0-9,
 * with the RFC 4122 version and variant bits set) for keyhex and type. */
static int objkey_tag(bks_server *srv, const char *keyhex, const char *type,
                      const unsigned char rnd[10], unsigned char tag[6]) {
  char hex[21];
  bk_hex_encode(rnd, 10, hex, false);
  char *msg = bks_asprintf("OBJKEY\n%s\n%s\n%s", keyhex, type, hex);
  if (!msg)
    return -1;
  unsigned char mac[32];
  unsigned len = 0;
  unsigned char *ok = HMAC(EVP_sha256(), srv->secret, (int)srv->secret_len,
                           (const unsigned char *)msg, strlen(msg), mac, &len);
  free(msg);
  if (!ok || len != 32)
    return -1;
  memcpy(tag, mac, 6);
  return 0;
}

static void uuid_text(const unsigned char b[16], char out[37]) {
  char hex[33];
  bk_hex_encode(b, 16, hex, false);
  snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
           hex + 16, hex + 20);
}

int bks_objkey_make(bks_server *srv, const char *keyhex, const char *type,
                    char key[96], char uuid[37]) {
  unsigned char b[16];
  if (!bk_random_bytes(b, 10))
    return -1;
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* the RFC 4122 variant */
  if (objkey_tag(srv, keyhex, type, b, b + 10) != 0)
    return -1;
  uuid_text(b, uuid);
  snprintf(key, 96, "uploads/%s/%s", type, uuid);
  return 0;
}

int bks_objkey_check(bks_server *srv, const char *keyhex, const char *type,
                     const char *key, char uuid[37]) {
  size_t tl = strlen(type);
  if (strncmp(key, "uploads/", 8) != 0 || strncmp(key + 8, type, tl) != 0 ||
      key[8 + tl] != '/')
    return 0;
  const char *u = key + 9 + tl;
  if (strlen(u) != 36 || u[8] != '-' || u[13] != '-' || u[18] != '-' ||
      u[23] != '-')
    return 0;
  char hex[33];
  size_t k = 0;
  for (size_t i = 0; i < 36; i++) {
    if (u[i] == '-')
      continue;
    if (!isdigit((unsigned char)u[i]) && !(u[i] >= 'a' && u[i] <= 'f'))
      return 0;
    hex[k++] = u[i];
  }
  hex[k] = '\0';
  unsigned char b[16], tag[6];
  if (k != 32 || bks_unhex(hex, b, 16) != 0 || (b[6] >> 4) != 4 ||
      (b[8] >> 6) != 2 ||
      objkey_tag(srv, keyhex, type, b, tag) != 0 ||
      CRYPTO_memcmp(tag, b + 10, 6) != 0)
    return 0;
  if (uuid)
    memcpy(uuid, u, 37);
  return 1;
}
