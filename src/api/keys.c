/* keys.c - Ed25519 private keys from PEM PKCS#8 or unencrypted OpenSSH
 * files.
 *
 * The OpenSSH format (PROTOCOL.key in OpenSSH's sources) is parsed here
 * rather than through OpenSSL, which does not read it:
 *
 *   "openssh-key-v1\0"
 *   string ciphername ("none")   string kdfname ("none")   string kdfoptions
 *   uint32 number of keys (1)    string public key blob
 *   string private section:
 *     uint32 checkint, uint32 checkint (equal)
 *     string "ssh-ed25519"  string pub (32)  string seed||pub (64)
 *     string comment        padding 1, 2, 3, ... to a multiple of 8
 *
 * Every buffer that held a private key (the file, the base64-decoded blob)
 * is wiped with OPENSSL_cleanse before it is freed, on every path; the
 * EVP_PKEY wipes its own copy when freed. */
#include "internal.h"
#include "keys.h"
#include "util/str.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define BK_ED25519_LEN 32

static const char bk_ossh_begin[] = "-----BEGIN OPENSSH PRIVATE KEY-----";
static const char bk_ossh_end[] = "-----END OPENSSH PRIVATE KEY-----";
static const char bk_ossh_magic[] = "openssh-key-v1"; /* and its NUL */

/* ---- a bounds-checked reader over the decoded blob --------------------- */

typedef struct bk_rd {
  const unsigned char *p;
  size_t left;
} bk_rd;

static bool bk_rd_u32(bk_rd *r, uint32_t *v) {
  if (r->left < 4)
    return false;
  *v = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16) |
       ((uint32_t)r->p[2] << 8) | (uint32_t)r->p[3];
  r->p += 4;
  r->left -= 4;
  return true;
}

static bool bk_rd_string(bk_rd *r, const unsigned char **s, size_t *len) {
  uint32_t n;
  if (!bk_rd_u32(r, &n) || n > r->left)
    return false;
  *s = r->p;
  *len = n;
  r->p += n;
  r->left -= n;
  return true;
}

static bool bk_str_is(const unsigned char *s, size_t len, const char *want) {
  return len == strlen(want) && memcmp(s, want, len) == 0;
}

/* A public key blob: string "ssh-ed25519", string key (32 bytes). */
static bool bk_parse_pub_blob(const unsigned char *blob, size_t len,
                              const unsigned char **pub) {
  bk_rd r = {blob, len};
  const unsigned char *type, *key;
  size_t tl, kl;
  if (!bk_rd_string(&r, &type, &tl) || !bk_str_is(type, tl, "ssh-ed25519") ||
      !bk_rd_string(&r, &key, &kl) || kl != BK_ED25519_LEN || r.left != 0)
    return false;
  *pub = key;
  return true;
}

static bulkup_err bk_key_from_seed(const unsigned char *seed,
                                   const unsigned char *pub, EVP_PKEY **out) {
  EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed,
                                             BK_ED25519_LEN);
  if (!k) {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    return bk_error(BULKUP_ECRYPTO, "cannot create the Ed25519 key: %s",
                    e ? ERR_reason_error_string(e) : "unknown OpenSSL error");
  }
  unsigned char derived[BK_ED25519_LEN];
  size_t dl = sizeof derived;
  if (EVP_PKEY_get_raw_public_key(k, derived, &dl) != 1 ||
      dl != BK_ED25519_LEN) {
    EVP_PKEY_free(k);
    ERR_clear_error();
    return bk_error(BULKUP_ECRYPTO, "cannot derive the Ed25519 public key");
  }
  if (CRYPTO_memcmp(derived, pub, BK_ED25519_LEN) != 0) {
    EVP_PKEY_free(k);
    return bk_error(BULKUP_EPARSE, "OpenSSH key: the public key does not "
                    "match the private key (corrupted key file)");
  }
  *out = k;
  return BULKUP_OK;
}

/* Parse the decoded openssh-key-v1 blob. */
static bulkup_err bk_parse_openssh_blob(const unsigned char *b, size_t len,
                                        EVP_PKEY **out) {
  const size_t ml = sizeof bk_ossh_magic; /* with its NUL */
  if (len < ml || memcmp(b, bk_ossh_magic, ml) != 0)
    return bk_error(BULKUP_EPARSE,
                    "OpenSSH key: missing the openssh-key-v1 header");
  bk_rd r = {b + ml, len - ml};
  const unsigned char *cipher, *kdf, *kdfopt, *pubblob, *priv;
  size_t cl, kl, kol, pbl, pl;
  uint32_t nkeys;
  if (!bk_rd_string(&r, &cipher, &cl))
    return bk_error(BULKUP_EPARSE, "OpenSSH key: truncated (cipher name)");
  if (!bk_str_is(cipher, cl, "none"))
    return bk_error(BULKUP_EPARSE, "encrypted OpenSSH keys are not "
                    "supported; decrypt with ssh-keygen -p");
  if (!bk_rd_string(&r, &kdf, &kl) || !bk_rd_string(&r, &kdfopt, &kol))
    return bk_error(BULKUP_EPARSE, "OpenSSH key: truncated (kdf)");
  if (!bk_str_is(kdf, kl, "none") || kol != 0)
    return bk_error(BULKUP_EPARSE, "OpenSSH key: unexpected kdf for an "
                    "unencrypted key");
  if (!bk_rd_u32(&r, &nkeys))
    return bk_error(BULKUP_EPARSE, "OpenSSH key: truncated (key count)");
  if (nkeys != 1)
    return bk_error(BULKUP_EPARSE, "OpenSSH key: the file holds %lu keys; "
                    "exactly one is supported", (unsigned long)nkeys);
  if (!bk_rd_string(&r, &pubblob, &pbl))
    return bk_error(BULKUP_EPARSE, "OpenSSH key: truncated (public key)");
  const unsigned char *outer_pub;
  if (!bk_parse_pub_blob(pubblob, pbl, &outer_pub))
    return bk_error(BULKUP_EPARSE, "OpenSSH key: not an ssh-ed25519 key");
  if (!bk_rd_string(&r, &priv, &pl))
    return bk_error(BULKUP_EPARSE, "OpenSSH key: truncated (private part)");
  if (r.left != 0)
    return bk_error(BULKUP_EPARSE, "OpenSSH key: trailing data");
  if (pl % 8 != 0)
    return bk_error(BULKUP_EPARSE, "OpenSSH key: private part is not padded "
                    "to the block size");

  bk_rd p = {priv, pl};
  uint32_t c1, c2;
  const unsigned char *type, *pub, *sk, *comment;
  size_t tl, publ, skl, coml;
  if (!bk_rd_u32(&p, &c1) || !bk_rd_u32(&p, &c2))
    return bk_error(BULKUP_EPARSE, "OpenSSH key: truncated (check ints)");
  if (c1 != c2)
    return bk_error(BULKUP_EPARSE, "OpenSSH key: check ints differ (wrong "
                    "passphrase or corrupted key)");
  if (!bk_rd_string(&p, &type, &tl))
    return bk_error(BULKUP_EPARSE, "OpenSSH key: truncated (key type)");
  if (!bk_str_is(type, tl, "ssh-ed25519"))
    return bk_error(BULKUP_EPARSE, "OpenSSH key: key type is not ssh-ed25519");
  if (!bk_rd_string(&p, &pub, &publ) || publ != BK_ED25519_LEN)
    return bk_error(BULKUP_EPARSE, "OpenSSH key: bad public key length");
  if (!bk_rd_string(&p, &sk, &skl) || skl != 2 * BK_ED25519_LEN)
    return bk_error(BULKUP_EPARSE, "OpenSSH key: bad private key length");
  if (!bk_rd_string(&p, &comment, &coml))
    return bk_error(BULKUP_EPARSE, "OpenSSH key: truncated (comment)");
  for (size_t i = 0; i < p.left; i++)
    if (p.p[i] != (unsigned char)(i + 1))
      return bk_error(BULKUP_EPARSE, "OpenSSH key: bad padding");
  if (memcmp(pub, outer_pub, BK_ED25519_LEN) != 0 ||
      memcmp(sk + BK_ED25519_LEN, pub, BK_ED25519_LEN) != 0)
    return bk_error(BULKUP_EPARSE, "OpenSSH key: inconsistent public keys");
  return bk_key_from_seed(sk, pub, out);
}

/* Find `needle` in the buffer; NULL if absent. */
static const unsigned char *bk_find(const unsigned char *hay, size_t len,
                                    const char *needle) {
  size_t nl = strlen(needle);
  if (nl > len)
    return NULL;
  return memmem(hay, len, needle, nl);
}

static bulkup_err bk_load_openssh(const unsigned char *buf, size_t len,
                                  const unsigned char *begin, EVP_PKEY **out) {
  const unsigned char *body = begin + strlen(bk_ossh_begin);
  const unsigned char *end =
      bk_find(body, len - (size_t)(body - buf), bk_ossh_end);
  if (!end)
    return bk_error(BULKUP_EPARSE, "OpenSSH key: missing the END line");
  size_t blen = (size_t)(end - body);
  unsigned char *dec = bk_malloc(blen / 4 * 3 + 3);
  if (!dec)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  bulkup_err rc;
  long dl = bk_b64_decode((const char *)body, blen, dec, blen / 4 * 3 + 3,
                          BK_B64_SPACE);
  if (dl < 0)
    rc = bk_error(BULKUP_EPARSE, "OpenSSH key: malformed base64");
  else
    rc = bk_parse_openssh_blob(dec, (size_t)dl, out);
  OPENSSL_cleanse(dec, blen / 4 * 3 + 3);
  bk_free(dec);
  return rc;
}

/* Never prompt for a passphrase: the library has no terminal. */
static int bk_no_passphrase(char *buf, int size, int rwflag, void *u) {
  BK_UNUSED(buf);
  BK_UNUSED(size);
  BK_UNUSED(rwflag);
  BK_UNUSED(u);
  return -1;
}

static bulkup_err bk_load_pem(const unsigned char *buf, size_t len,
                              EVP_PKEY **out) {
  if (bk_find(buf, len, "-----BEGIN ENCRYPTED PRIVATE KEY-----"))
    return bk_error(BULKUP_EPARSE, "encrypted PKCS#8 keys are not supported; "
                    "decrypt with openssl pkey");
  if (!bk_find(buf, len, "-----BEGIN PRIVATE KEY-----"))
    return bk_error(BULKUP_EPARSE, "not a private key: expected a PEM PKCS#8 "
                    "key (BEGIN PRIVATE KEY) or an OpenSSH key (BEGIN "
                    "OPENSSH PRIVATE KEY)");
  BIO *bio = BIO_new_mem_buf(buf, (int)len);
  if (!bio)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  ERR_clear_error();
  EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, bk_no_passphrase, NULL);
  BIO_free(bio);
  if (!k) {
    unsigned long e = ERR_peek_last_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return bk_error(BULKUP_EPARSE, "PEM key: cannot parse: %s",
                    why ? why : "malformed");
  }
  ERR_clear_error();
  if (EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
    const char *name = EVP_PKEY_get0_type_name(k);
    EVP_PKEY_free(k);
    return bk_error(BULKUP_EPARSE, "PEM key: not an Ed25519 key (%s)",
                    name ? name : "unknown type");
  }
  *out = k;
  return BULKUP_OK;
}

bulkup_err bk_key_load_mem(const void *data, size_t len, EVP_PKEY **out) {
  if (!out)
    return bk_error(BULKUP_EINVAL, "out must not be NULL");
  *out = NULL;
  if (!data || len == 0)
    return bk_error(BULKUP_EPARSE, "the key is empty");
  if (len > BK_KEY_MAX_SIZE)
    return bk_error(BULKUP_EPARSE, "the key is too large (%zu bytes; an "
                    "Ed25519 key is under 1 KiB)", len);
  const unsigned char *buf = data;
  const unsigned char *ossh = bk_find(buf, len, bk_ossh_begin);
  if (ossh)
    return bk_load_openssh(buf, len, ossh, out);
  return bk_load_pem(buf, len, out);
}

bulkup_err bk_key_load_file(const char *path, EVP_PKEY **out) {
  if (!path || !out)
    return bk_error(BULKUP_EINVAL, "key path and out must not be NULL");
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    return bk_error(e == ENOENT ? BULKUP_ENOENT
                    : e == EACCES ? BULKUP_EPERM
                                  : BULKUP_EIO,
                    "cannot open key file '%s': %s", path, strerror(e));
  }
  /* Checked on the open file, so the file read is the file checked. */
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return bk_error(BULKUP_EIO, "cannot stat key file '%s': %s", path,
                    strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return bk_error(BULKUP_EPARSE, "key file '%s' is not a regular file",
                    path);
  }
  if (st.st_mode & 077) {
    close(fd);
    return bk_error(BULKUP_EPERM, "permissions %04o for '%s' are too open: "
                    "a private key must not be accessible by group or "
                    "others (chmod 600)", (unsigned)(st.st_mode & 07777),
                    path);
  }
  if (st.st_size > BK_KEY_MAX_SIZE) {
    close(fd);
    return bk_error(BULKUP_EPARSE, "key file '%s' is too large", path);
  }
  size_t cap = (size_t)st.st_size + 1;
  unsigned char *buf = bk_malloc(cap);
  if (!buf) {
    close(fd);
    return bk_error(BULKUP_ENOMEM, "out of memory");
  }
  size_t n = 0;
  bulkup_err rc = BULKUP_OK;
  /* Read until EOF, one byte beyond the stat'ed size at most: a file that
   * grew is still bounded by the buffer. */
  while (n < cap) {
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      rc = bk_error(BULKUP_EIO, "cannot read key file '%s': %s", path,
                    strerror(errno));
      break;
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  close(fd);
  if (rc == BULKUP_OK && n == cap)
    rc = bk_error(BULKUP_EIO, "key file '%s' changed while it was read", path);
  if (rc == BULKUP_OK) {
    rc = bk_key_load_mem(buf, n, out);
    if (rc != BULKUP_OK) {
      /* Name the file in the detail. */
      char detail[400];
      snprintf(detail, sizeof detail, "%s", bulkup_last_error_message());
      bk_error(rc, "key file '%s': %s", path, detail);
    }
  }
  OPENSSL_cleanse(buf, cap);
  bk_free(buf);
  return rc;
}

bulkup_err bk_key_id_hex(EVP_PKEY *key, char out[65]) {
  unsigned char pub[BK_ED25519_LEN];
  size_t pl = sizeof pub;
  out[0] = '\0';
  if (!key || EVP_PKEY_get_raw_public_key(key, pub, &pl) != 1 ||
      pl != BK_ED25519_LEN) {
    ERR_clear_error();
    return bk_error(BULKUP_ECRYPTO, "cannot read the Ed25519 public key");
  }
  bk_hex_encode(pub, pl, out, false);
  return BULKUP_OK;
}
