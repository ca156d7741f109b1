/*
 * tls.c - certificates for the server: a throwaway self-signed pair made
 * at start, the file clients trust it with, and reading PEM files.
 */
#include "bks_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *bio_string(BIO *bio) {
  char *mem = NULL;
  long n = BIO_get_mem_data(bio, &mem);
  if (n <= 0)
    return NULL;
  return bks_strndup(mem, (size_t)n);
}

static int add_ext(X509 *x, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (!ext)
    return -1;
  int ok = X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  return ok ? 0 : -1;
}

/* A fresh EC P-256 key and a self-signed certificate valid for a day, for
 * 127.0.0.1 and localhost, both as PEM strings. It is its own CA
 * (CA:TRUE, as `openssl req -x509` makes), so a client trusts it with
 * CURLOPT_CAINFO pointing at the certificate. */
int bks_make_self_signed(char **key_pem, char **cert_pem) {
  int rc = -1;
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  BIGNUM *serial = BN_new();
  BIO *kb = BIO_new(BIO_s_mem());
  BIO *cb = BIO_new(BIO_s_mem());
  *key_pem = *cert_pem = NULL;
  if (!key || !x || !serial || !kb || !cb)
    goto out;
  X509_NAME *name = X509_get_subject_name(x);
  if (!X509_set_version(x, 2) ||
      !BN_rand(serial, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
      !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) ||
      !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
      !X509_gmtime_adj(X509_getm_notAfter(x), 86400) ||
      !X509_set_pubkey(x, key) ||
      !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                  (const unsigned char *)"bulkup test server",
                                  -1, -1, 0) ||
      !X509_set_issuer_name(x, name))
    goto out;
  if (add_ext(x, NID_basic_constraints, "critical,CA:TRUE") ||
      add_ext(x, NID_subject_key_identifier, "hash") ||
      add_ext(x, NID_authority_key_identifier, "keyid:always") ||
      add_ext(x, NID_key_usage, "critical,digitalSignature,keyCertSign") ||
      add_ext(x, NID_ext_key_usage, "serverAuth") ||
      add_ext(x, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost"))
    goto out;
  if (!X509_sign(x, key, EVP_sha256()) ||
      !PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) ||
      !PEM_write_bio_X509(cb, x))
    goto out;
  *key_pem = bio_string(kb);
  *cert_pem = bio_string(cb);
  if (*key_pem && *cert_pem)
    rc = 0;
out:
  if (rc) {
    if (*key_pem)
      OPENSSL_cleanse(*key_pem, strlen(*key_pem));
    free(*key_pem);
    free(*cert_pem);
    *key_pem = *cert_pem = NULL;
  }
  if (kb) {
    /* the key's PEM text sits in the BIO's buffer: wipe it */
    char *mem = NULL;
    long n = BIO_get_mem_data(kb, &mem);
    if (n > 0)
      OPENSSL_cleanse(mem, (size_t)n);
  }
  BIO_free(kb);
  BIO_free(cb);
  BN_free(serial);
  X509_free(x);
  EVP_PKEY_free(key);
  return rc;
}

char *bks_write_temp_file(const char *prefix, const char *text) {
  const char *dir = getenv("TMPDIR");
  if (!dir || !*dir)
    dir = "/tmp";
  char *path = bks_asprintf("%s/%s-XXXXXX", dir, prefix);
  if (!path)
    return NULL;
  int fd = mkostemp(path, O_CLOEXEC);
  if (fd < 0) {
    free(path);
    return NULL;
  }
  size_t len = strlen(text), off = 0;
  while (off < len) {
    ssize_t w = write(fd, text + off, len - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  if (close(fd) != 0 || off != len) {
    unlink(path);
    free(path);
    return NULL;
  }
  return path;
}
