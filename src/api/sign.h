/* sign.h - the two request signatures of the Encord API (internal),
 * byte for byte as ENCORD_WIRE.md fixes them:
 *
 * v2 (§4): HTTP Message Signatures, RFC 9421 style. Covered components
 *   "@method", "@request-target", "content-digest"; parameters created
 *   (now - 30), keyid (the public key's hex), alg="ed25519"; label
 *   "encord-sig".
 * v1 (§6): Authorization: <pubhex>:<hex of Ed25519.sign(SHA-256(body))>
 *   - the 32-byte digest is what is signed; nothing else is covered. */
#ifndef BULKUP_API_SIGN_H
#define BULKUP_API_SIGN_H

#include "internal.h"

#include <openssl/evp.h>
#include <time.h>

/* The client dates its signatures this many seconds in the past, so that a
 * server clock slightly behind ours still accepts them. */
#define BK_SIGN_CREATED_SKEW 30

/* The three header lines of a signed request, ready for libcurl
 * ("Name: value", no CRLF). */
typedef struct bk_sig_headers {
  char content_digest[80];  /* "Content-Digest: sha-256=:<b64>:" */
  char *signature_input;    /* "Signature-Input: encord-sig=<params>" */
  char *signature;          /* "Signature: encord-sig=:<b64>:" */
} bk_sig_headers;

/* True if `key_id` can be put in a quoted structured-field string: 1..256
 * printable ASCII characters other than '"' and '\'. */
bool bk_sign_key_id_ok(const char *key_id);

/* "sha-256=:<base64 SHA-256 of body>:" into out (at least 56 bytes). An
 * empty body (len 0, body may be NULL) hashes the empty string. */
bulkup_err bk_content_digest(const void *body, size_t len, char *out,
                             size_t outsz);

/* The signature parameters, ("@method" ...);created=..;keyid="..";
 * alg="ed25519". Allocated with bk_malloc; NULL on allocation failure. */
char *bk_sign_params(long long created, const char *key_id);

/* The signature base (no trailing newline). Allocated with bk_malloc;
 * NULL on allocation failure. */
char *bk_sign_base(const char *method, const char *target,
                   const char *content_digest, const char *params);

/*
 * bk_sign_request - sign one request. `now` is the current Unix time (the
 * signature is created at now - BK_SIGN_CREATED_SKEW); `method` is upper
 * case; `target` is the path and query exactly as on the request line.
 * Fills *out (free with bk_sig_headers_free). Returns BULKUP_OK,
 * BULKUP_EINVAL (a method, target or key id that cannot be signed),
 * BULKUP_ENOMEM or BULKUP_ECRYPTO. Thread-safe (the key is only read).
 */
bulkup_err bk_sign_request(EVP_PKEY *key, const char *key_id,
                           const char *method, const char *target,
                           const void *body, size_t body_len, time_t now,
                           bk_sig_headers *out);

void bk_sig_headers_free(bk_sig_headers *h);

/*
 * bk_sign_v1 - the v1 Authorization header value for `body`:
 * key_id ":" + 128 lower-case hex digits, into out (at least
 * BK_V1_AUTH_LEN + 1 bytes). BULKUP_EINVAL (bad key id), BULKUP_ECRYPTO.
 * Thread-safe.
 */
#define BK_V1_AUTH_LEN (64 + 1 + 128)
bulkup_err bk_sign_v1(EVP_PKEY *key, const char *key_id, const void *body,
                      size_t body_len, char *out, size_t outsz);

#endif
