/* sign.c - the v2 signature (Content-Digest, the signature base, the
 * Ed25519 signature) and the v1 Authorization of an API request
 * (ENCORD_WIRE.md §4 and §6). */
#include "internal.h"
#include "sign.h"
#include "util/sha256.h"
#include "util/str.h"

#include <openssl/err.h>
#include <stdio.h>

#define BK_COVERED "(\"@method\" \"@request-target\" \"content-digest\")"

bool bk_sign_key_id_ok(const char *key_id) {
  if (!key_id)
    return false;
  size_t n = strlen(key_id);
  if (n == 0 || n > 256)
    return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)key_id[i];
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
      return false;
  }
  return true;
}

/* Method: an upper-case token. Target: an origin-form request target
 * ("/" then visible ASCII, no spaces or controls). */
static bool bk_method_ok(const char *m) {
  if (!m || !*m || strlen(m) > 16)
    return false;
  for (const char *p = m; *p; p++)
    if (*p < 'A' || *p > 'Z')
      return false;
  return true;
}

static bool bk_target_ok(const char *t) {
  if (!t || t[0] != '/')
    return false;
  for (const unsigned char *p = (const unsigned char *)t; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f)
      return false;
  return true;
}

bulkup_err bk_content_digest(const void *body, size_t len, char *out,
                             size_t outsz) {
  unsigned char md[BK_SHA256_LEN];
  bk_sha256(body ? body : "", body ? len : 0, md);
  char b64[BK_B64_ENCODED_LEN(BK_SHA256_LEN) + 1];
  bk_b64_encode(md, sizeof md, b64);
  int n = snprintf(out, outsz, "sha-256=:%s:", b64);
  if (n < 0 || (size_t)n >= outsz)
    return bk_error(BULKUP_EINVAL, "content digest buffer too small");
  return BULKUP_OK;
}

static char *bk_aprintf(const char *fmt, ...) BK_PRINTF(1, 2);
static char *bk_aprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return NULL;
  char *s = bk_malloc((size_t)n + 1);
  if (!s)
    return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

char *bk_sign_params(long long created, const char *key_id) {
  return bk_aprintf(BK_COVERED ";created=%lld;keyid=\"%s\";alg=\"ed25519\"",
                    created, key_id);
}

char *bk_sign_base(const char *method, const char *target,
                   const char *content_digest, const char *params) {
  return bk_aprintf("\"@method\": %s\n"
                    "\"@request-target\": %s\n"
                    "\"content-digest\": %s\n"
                    "\"@signature-params\": %s",
                    method, target, content_digest, params);
}

void bk_sig_headers_free(bk_sig_headers *h) {
  if (!h)
    return;
  bk_free(h->signature_input);
  bk_free(h->signature);
  h->signature_input = NULL;
  h->signature = NULL;
}

bulkup_err bk_sign_request(EVP_PKEY *key, const char *key_id,
                           const char *method, const char *target,
                           const void *body, size_t body_len, time_t now,
                           bk_sig_headers *out) {
  memset(out, 0, sizeof *out);
  if (!key || !bk_sign_key_id_ok(key_id))
    return bk_error(BULKUP_EINVAL, "a key and a valid key id are required");
  if (!bk_method_ok(method))
    return bk_error(BULKUP_EINVAL, "cannot sign method '%s'",
                    method ? method : "(null)");
  if (!bk_target_ok(target))
    return bk_error(BULKUP_EINVAL, "cannot sign request target");

  char digest[64];
  bulkup_err rc = bk_content_digest(body, body_len, digest, sizeof digest);
  if (rc != BULKUP_OK)
    return rc;
  char *params = bk_sign_params((long long)now - BK_SIGN_CREATED_SKEW, key_id);
  char *base = params ? bk_sign_base(method, target, digest, params) : NULL;
  if (!base) {
    bk_free(params);
    return bk_error(BULKUP_ENOMEM, "out of memory");
  }

  unsigned char sig[64];
  size_t siglen = sizeof sig;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
            EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)base,
                           strlen(base)) == 1 &&
            siglen == sizeof sig;
  EVP_MD_CTX_free(ctx);
  bk_free(base);
  if (!ok) {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    bk_free(params);
    return bk_error(BULKUP_ECRYPTO, "Ed25519 signing failed: %s",
                    e ? ERR_reason_error_string(e) : "unknown OpenSSL error");
  }
  char b64[BK_B64_ENCODED_LEN(64) + 1];
  bk_b64_encode(sig, siglen, b64);

  snprintf(out->content_digest, sizeof out->content_digest,
           "Content-Digest: %s", digest);
  out->signature_input = bk_aprintf("Signature-Input: encord-sig=%s", params);
  out->signature = bk_aprintf("Signature: encord-sig=:%s:", b64);
  bk_free(params);
  if (!out->signature_input || !out->signature) {
    bk_sig_headers_free(out);
    return bk_error(BULKUP_ENOMEM, "out of memory");
  }
  return BULKUP_OK;
}

bulkup_err bk_sign_v1(EVP_PKEY *key, const char *key_id, const void *body,
                      size_t body_len, char *out, size_t outsz) {
  if (outsz)
    out[0] = '\0';
  if (!key || !bk_sign_key_id_ok(key_id))
    return bk_error(BULKUP_EINVAL, "a key and a valid key id are required");
  unsigned char md[BK_SHA256_LEN];
  bk_sha256(body ? body : "", body ? body_len : 0, md);
  unsigned char sig[64];
  size_t siglen = sizeof sig;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
            EVP_DigestSign(ctx, sig, &siglen, md, sizeof md) == 1 &&
            siglen == sizeof sig;
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    return bk_error(BULKUP_ECRYPTO, "Ed25519 signing failed: %s",
                    e ? ERR_reason_error_string(e) : "unknown OpenSSL error");
  }
  size_t kl = strlen(key_id);
  if (outsz < kl + 1 + 2 * sizeof sig + 1)
    return bk_error(BULKUP_EINVAL, "authorization buffer too small");
  memcpy(out, key_id, kl);
  out[kl] = ':';
  bk_hex_encode(sig, sizeof sig, out + kl + 1, false);
  return BULKUP_OK;
}
