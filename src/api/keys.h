/* keys.h - loading the Ed25519 private key that signs API requests
 * (internal).
 *
 * Two encodings are accepted: PEM PKCS#8 ("-----BEGIN PRIVATE KEY-----")
 * and unencrypted OpenSSH ("-----BEGIN OPENSSH PRIVATE KEY-----",
 * openssh-key-v1). Every decoded buffer that held key material is wiped
 * (OPENSSL_cleanse) before it is freed, on every path. */
#ifndef BULKUP_API_KEYS_H
#define BULKUP_API_KEYS_H

#include "internal.h"

#include <openssl/evp.h>

/* Largest key file or buffer accepted (a real Ed25519 key is < 1 KiB). */
#define BK_KEY_MAX_SIZE (64 * 1024)

/*
 * bk_key_load_mem - parse an Ed25519 private key from `len` bytes (not
 * necessarily NUL-terminated; any bytes at all). On success *out is a new
 * EVP_PKEY (EVP_PKEY_free it). Errors, with detail in
 * bulkup_last_error_message(): BULKUP_EPARSE for anything malformed, an
 * encrypted key, or a key that is not Ed25519; BULKUP_ENOMEM;
 * BULKUP_ECRYPTO when OpenSSL fails on valid input. Never reads outside
 * the buffer: this is the fuzzing entry point. Thread-safe.
 */
bulkup_err bk_key_load_mem(const void *buf, size_t len, EVP_PKEY **out);

/*
 * bk_key_load_file - read `path` and parse it as above. The file must be
 * a regular file with no group or other permission bits (as ssh demands):
 * otherwise BULKUP_EPERM ("permissions 0644 for 'k' are too open").
 * BULKUP_ENOENT if it does not exist, BULKUP_EIO if it cannot be read.
 */
bulkup_err bk_key_load_file(const char *path, EVP_PKEY **out);

/* The key id of ENCORD_WIRE.md §2: the raw 32-byte Ed25519 public key in
 * 64 lower-case hex digits, NUL-terminated, into out[65]. BULKUP_ECRYPTO
 * if OpenSSL cannot give the public key. */
bulkup_err bk_key_id_hex(EVP_PKEY *key, char out[65]);

#endif
