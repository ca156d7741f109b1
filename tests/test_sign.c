/* Request signing and key loading.
 *
 * The signing tests compute every header independently (the signature base
 * is written out by hand here, the signature made with OpenSSL's EVP
 * directly) and compare byte for byte: Ed25519 is deterministic. The key
 * tests load PEM PKCS#8 and OpenSSH keys (a real ssh-keygen file kept as a
 * fixture, and openssh-key-v1 blobs built here from a fixed seed), check
 * the permission rule, and feed the loader every truncation, bit flips and
 * garbage, which must all end in a clean error. */
#include "bk_test.h"
#include "internal.h"
#include "keys.h"
#include "sign.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmp;

static int suite_init(void) {
  tmp = bk_tmpdir("sign");
  return tmp ? 0 : -1;
}

static int suite_clean(void) {
  bk_rm_rf(tmp);
  free(tmp);
  return 0;
}

/* The fixed seed of the test key: bytes 0x00..0x1f. */
static void test_seed(unsigned char seed[32]) {
  for (int i = 0; i < 32; i++)
    seed[i] = (unsigned char)i;
}

static EVP_PKEY *seed_key(void) {
  unsigned char seed[32];
  test_seed(seed);
  EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
  CU_ASSERT_PTR_NOT_NULL_FATAL(k);
  return k;
}

static void b64(const unsigned char *in, size_t len, char *out) {
  EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* ---- signing: an independent computation ------------------------------ */

/* The three headers, computed here without the library. */
static void expected_headers(EVP_PKEY *key, const char *method,
                             const char *target, const char *body,
                             long long created, const char *key_id,
                             char *digest_hdr, char *input_hdr,
                             char *sig_hdr) {
  unsigned char md[32];
  unsigned int mdlen;
  CU_ASSERT_FATAL(EVP_Digest(body, strlen(body), md, &mdlen, EVP_sha256(),
                             NULL) == 1);
  char dig[64];
  b64(md, 32, dig);
  char params[512];
  snprintf(params, sizeof params,
           "(\"@method\" \"@request-target\" \"content-digest\");"
           "created=%lld;keyid=\"%s\";alg=\"ed25519\"",
           created, key_id);
  char base[2048];
  snprintf(base, sizeof base,
           "\"@method\": %s\n\"@request-target\": %s\n"
           "\"content-digest\": sha-256=:%s:\n\"@signature-params\": %s",
           method, target, dig, params);
  unsigned char sig[64];
  size_t siglen = sizeof sig;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  CU_ASSERT_FATAL(EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1);
  CU_ASSERT_FATAL(EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)base,
                                 strlen(base)) == 1);
  EVP_MD_CTX_free(ctx);
  CU_ASSERT_EQUAL_FATAL(siglen, 64);
  char sigb[100];
  b64(sig, 64, sigb);
  sprintf(digest_hdr, "Content-Digest: sha-256=:%s:", dig);
  sprintf(input_hdr, "Signature-Input: encord-sig=%s", params);
  sprintf(sig_hdr, "Signature: encord-sig=:%s:", sigb);
}

static void test_digest_of_empty_body(void) {
  char out[64];
  CU_ASSERT_EQUAL(bk_content_digest(NULL, 0, out, sizeof out), BULKUP_OK);
  /* The example of doc/api-protocol.md. */
  CU_ASSERT_STRING_EQUAL(out,
                         "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:");
  CU_ASSERT_EQUAL(bk_content_digest("", 0, out, sizeof out), BULKUP_OK);
  CU_ASSERT_STRING_EQUAL(out,
                         "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:");
  CU_ASSERT_EQUAL(bk_content_digest("x", 1, out, 10), BULKUP_EINVAL);
}

static void check_request(const char *method, const char *target,
                          const char *body) {
  EVP_PKEY *k = seed_key();
  bk_sig_headers h;
  /* created = now - 30 */
  CU_ASSERT_EQUAL_FATAL(bk_sign_request(k, "k1", method, target, body,
                                        strlen(body), 1700000030, &h),
                        BULKUP_OK);
  char d[128], in[600], s[200];
  expected_headers(k, method, target, body, 1700000000LL, "k1", d, in, s);
  CU_ASSERT_STRING_EQUAL(h.content_digest, d);
  CU_ASSERT_STRING_EQUAL(h.signature_input, in);
  CU_ASSERT_STRING_EQUAL(h.signature, s);
  bk_sig_headers_free(&h);
  EVP_PKEY_free(k);
}

static void test_get_headers_match_independent_computation(void) {
  check_request("GET",
                "/v2/public/presigned-urls?count=2&upload_item_type=IMAGE", "");
  /* The documented parameters, literally. */
  EVP_PKEY *k = seed_key();
  bk_sig_headers h;
  CU_ASSERT_EQUAL_FATAL(bk_sign_request(k, "k1", "GET", "/x", NULL, 0,
                                        1700000030, &h),
                        BULKUP_OK);
  CU_ASSERT_STRING_EQUAL(h.signature_input,
                         "Signature-Input: encord-sig=(\"@method\" "
                         "\"@request-target\" \"content-digest\");"
                         "created=1700000000;keyid=\"k1\";alg=\"ed25519\"");
  CU_ASSERT_STRING_EQUAL(
      h.content_digest,
      "Content-Digest: sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:");
  bk_sig_headers_free(&h);
  EVP_PKEY_free(k);
}

static void test_post_headers_match_independent_computation(void) {
  check_request("POST", "/v2/public/image-groups",
                "{\"image_groups\": [{\"images\": [{\"url\": \"uploads/a\", "
                "\"title\": \"a.png\"}], \"title\": \"t\", \"create_video\": "
                "false, \"cluster_by_resolution\": false}]}");
  check_request("GET", "/prefix/v2/public/image-groups/jobs/abc-123", "");
}

/* The signature verifies with the public key over the documented base. */
static void test_signature_verifies(void) {
  EVP_PKEY *k = seed_key();
  bk_sig_headers h;
  const char *body = "{\"a\":1}";
  CU_ASSERT_EQUAL_FATAL(bk_sign_request(k, "key-9", "POST", "/p?q=1", body,
                                        strlen(body), 2000000000, &h),
                        BULKUP_OK);
  /* Recover the signature bytes from the header. */
  const char *p = strstr(h.signature, "=:");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  char sb[100];
  snprintf(sb, sizeof sb, "%.*s", 88, p + 2);
  unsigned char sig[70];
  CU_ASSERT_EQUAL(EVP_DecodeBlock(sig, (unsigned char *)sb, 88), 66);
  char *params = bk_sign_params(2000000000LL - 30, "key-9");
  char dig[64];
  bk_content_digest(body, strlen(body), dig, sizeof dig);
  char base[1024];
  snprintf(base, sizeof base,
           "\"@method\": POST\n\"@request-target\": /p?q=1\n"
           "\"content-digest\": %s\n\"@signature-params\": %s",
           dig, params);
  free(params);
  unsigned char pub[32];
  size_t pl = 32;
  CU_ASSERT_FATAL(EVP_PKEY_get_raw_public_key(k, pub, &pl) == 1);
  EVP_PKEY *vk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  CU_ASSERT_FATAL(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, vk) == 1);
  CU_ASSERT_EQUAL(EVP_DigestVerify(ctx, sig, 64, (unsigned char *)base,
                                   strlen(base)),
                  1);
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(vk);
  EVP_PKEY_free(k);
  bk_sig_headers_free(&h);
}

static char *sig_of(EVP_PKEY *k, const char *method, const char *target,
                    const char *body, time_t now) {
  bk_sig_headers h;
  CU_ASSERT_EQUAL_FATAL(bk_sign_request(k, "k1", method, target, body,
                                        strlen(body), now, &h),
                        BULKUP_OK);
  char *s = strdup(h.signature);
  bk_sig_headers_free(&h);
  return s;
}

static void test_any_change_changes_signature(void) {
  EVP_PKEY *k = seed_key();
  char *ref = sig_of(k, "POST", "/v2/public/image-groups", "{\"x\":1}", 1000);
  char *same = sig_of(k, "POST", "/v2/public/image-groups", "{\"x\":1}", 1000);
  CU_ASSERT_STRING_EQUAL(ref, same); /* deterministic */
  const char *variants[][3] = {
      {"POST", "/v2/public/image-groups", "{\"x\":2}"},  /* body byte */
      {"POST", "/v2/public/image-groupz", "{\"x\":1}"},  /* path byte */
      {"POST", "/v2/public/image-groups?", "{\"x\":1}"}, /* query */
      {"PUT", "/v2/public/image-groups", "{\"x\":1}"},   /* method */
  };
  for (size_t i = 0; i < BK_ARRAY_LEN(variants); i++) {
    char *s = sig_of(k, variants[i][0], variants[i][1], variants[i][2], 1000);
    CU_ASSERT_STRING_NOT_EQUAL(s, ref);
    free(s);
  }
  char *later = sig_of(k, "POST", "/v2/public/image-groups", "{\"x\":1}", 1001);
  CU_ASSERT_STRING_NOT_EQUAL(later, ref);
  free(later);
  free(ref);
  free(same);
  EVP_PKEY_free(k);
}

static void test_unsignable_inputs_refused(void) {
  EVP_PKEY *k = seed_key();
  bk_sig_headers h;
  CU_ASSERT_EQUAL(bk_sign_request(k, "a\"b", "GET", "/", NULL, 0, 1, &h),
                  BULKUP_EINVAL);
  CU_ASSERT_EQUAL(bk_sign_request(k, "", "GET", "/", NULL, 0, 1, &h),
                  BULKUP_EINVAL);
  CU_ASSERT_EQUAL(bk_sign_request(k, "k\\1", "GET", "/", NULL, 0, 1, &h),
                  BULKUP_EINVAL);
  CU_ASSERT_EQUAL(bk_sign_request(k, "k1", "get", "/", NULL, 0, 1, &h),
                  BULKUP_EINVAL);
  CU_ASSERT_EQUAL(bk_sign_request(k, "k1", "GET", "/a b", NULL, 0, 1, &h),
                  BULKUP_EINVAL);
  CU_ASSERT_EQUAL(bk_sign_request(k, "k1", "GET", "/a\r\nX: y", NULL, 0, 1,
                                  &h),
                  BULKUP_EINVAL);
  CU_ASSERT_EQUAL(bk_sign_request(k, "k1", "GET", "relative", NULL, 0, 1, &h),
                  BULKUP_EINVAL);
  CU_ASSERT_EQUAL(bk_sign_request(NULL, "k1", "GET", "/", NULL, 0, 1, &h),
                  BULKUP_EINVAL);
  EVP_PKEY_free(k);
}

/* ---- keys: fixtures ----------------------------------------------------- */

/* Generated on the development machine with
 *   ssh-keygen -q -t ed25519 -N "" -C fixture-key -f plain
 *   ssh-keygen -q -t ed25519 -N "secret pass" -C enc -f enc
 * (test-only keys, never used anywhere). */
static const char ossh_plain[] =
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACBpKivQrsQQJcAUnPTQ7AmuDzTFne83ZYjrRkO/tzBDnQAAAJAxtRZ3MbUW\n"
    "dwAAAAtzc2gtZWQyNTUxOQAAACBpKivQrsQQJcAUnPTQ7AmuDzTFne83ZYjrRkO/tzBDnQ\n"
    "AAAEDNNmae9tkIazvFUuGaPeZK5sIlOSa5Vkiwn71C8ofxb2kqK9CuxBAlwBSc9NDsCa4P\n"
    "NMWd7zdliOtGQ7+3MEOdAAAAC2ZpeHR1cmUta2V5AQI=\n"
    "-----END OPENSSH PRIVATE KEY-----\n";
static const char ossh_plain_pub_b64[] =
    "AAAAC3NzaC1lZDI1NTE5AAAAIGkqK9CuxBAlwBSc9NDsCa4PNMWd7zdliOtGQ7+3MEOd";

static const char ossh_encrypted[] =
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABAoH3YZwW\n"
    "r67TwbDWqj7esuAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIFmkhiwXXo2Y1V+Q\n"
    "jgFCMODZeQP2vw5Fh/LmlesXPJnDAAAAkJbOXZtJpt53Gdm6P19ns/KgbFqYaPercGrgx3\n"
    "8fzEkvvwhThStlzmxIMM1c2djKt7kF6KVPRgNjnhrzf1y+qbbGel3kkgAXS1cfN5bdLUpx\n"
    "2nj1k+FzLirB2vHWLks37TPgnWdva0GUGImT0Fw5LEqI5/vditu4t6KUlEP/hQ4yl+WhYE\n"
    "qUWvu1FZnAmzWP0w==\n"
    "-----END OPENSSH PRIVATE KEY-----\n";

/* ---- keys: an openssh-key-v1 builder ------------------------------------ */

typedef struct blob {
  unsigned char b[2048];
  size_t n;
} blob;

static void put_u32(blob *b, uint32_t v) {
  b->b[b->n++] = (unsigned char)(v >> 24);
  b->b[b->n++] = (unsigned char)(v >> 16);
  b->b[b->n++] = (unsigned char)(v >> 8);
  b->b[b->n++] = (unsigned char)v;
}

static void put_str(blob *b, const void *s, size_t len) {
  put_u32(b, (uint32_t)len);
  memcpy(b->b + b->n, s, len);
  b->n += len;
}

static void put_cstr(blob *b, const char *s) { put_str(b, s, strlen(s)); }

/* What to get wrong in the built key. */
typedef struct ossh_spec {
  const char *cipher;   /* default "none" */
  const char *kdf;      /* default "none" */
  uint32_t nkeys;       /* default 1 */
  const char *type;     /* default "ssh-ed25519" */
  uint32_t check2_xor;  /* make the check ints differ */
  int flip_inner_pub;   /* corrupt the public key inside the private part */
  int flip_priv_pub;    /* corrupt the public half of seed||pub */
  int bad_padding;
} ossh_spec;

/* The binary openssh-key-v1 blob of the fixed-seed key. */
static void build_ossh_blob(const ossh_spec *sp, blob *out) {
  unsigned char seed[32], pub[32];
  test_seed(seed);
  EVP_PKEY *k = seed_key();
  size_t pl = 32;
  EVP_PKEY_get_raw_public_key(k, pub, &pl);
  EVP_PKEY_free(k);
  const char *type = sp->type ? sp->type : "ssh-ed25519";

  blob pubblob = {.n = 0};
  put_cstr(&pubblob, type);
  put_str(&pubblob, pub, 32);

  blob priv = {.n = 0};
  put_u32(&priv, 0x12345678);
  put_u32(&priv, 0x12345678 ^ sp->check2_xor);
  put_cstr(&priv, type);
  unsigned char inner[32];
  memcpy(inner, pub, 32);
  if (sp->flip_inner_pub)
    inner[0] ^= 1;
  put_str(&priv, inner, 32);
  unsigned char sk[64];
  memcpy(sk, seed, 32);
  memcpy(sk + 32, pub, 32);
  if (sp->flip_priv_pub)
    sk[40] ^= 1;
  put_str(&priv, sk, 64);
  put_cstr(&priv, "built-in-test!"); /* 14 bytes: 7 of padding */
  for (unsigned char pad = 1; priv.n % 8; pad++)
    priv.b[priv.n++] = sp->bad_padding ? 0 : pad;

  out->n = 0;
  memcpy(out->b, "openssh-key-v1", 15); /* with its NUL */
  out->n = 15;
  put_cstr(out, sp->cipher ? sp->cipher : "none");
  put_cstr(out, sp->kdf ? sp->kdf : "none");
  put_cstr(out, "");
  put_u32(out, sp->nkeys ? sp->nkeys : 1);
  put_str(out, pubblob.b, pubblob.n);
  put_str(out, priv.b, priv.n);
}

/* Armour a blob as an OpenSSH key file text (70-column lines). Returns a
 * malloc'ed string. */
static char *armour(const unsigned char *b, size_t n) {
  char *enc = malloc(n / 3 * 4 + 8);
  EVP_EncodeBlock((unsigned char *)enc, b, (int)n);
  size_t el = strlen(enc);
  char *out = malloc(el + el / 70 + 200);
  strcpy(out, "-----BEGIN OPENSSH PRIVATE KEY-----\n");
  for (size_t i = 0; i < el; i += 70) {
    strncat(out, enc + i, 70);
    strcat(out, "\n");
  }
  strcat(out, "-----END OPENSSH PRIVATE KEY-----\n");
  free(enc);
  return out;
}

static char *built_key(const ossh_spec *sp) {
  blob b;
  build_ossh_blob(sp, &b);
  return armour(b.b, b.n);
}

/* A PEM PKCS#8 text of the fixed-seed key (malloc'ed). */
static char *seed_pem(void) {
  EVP_PKEY *k = seed_key();
  BIO *bio = BIO_new(BIO_s_mem());
  CU_ASSERT_FATAL(PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL,
                                           NULL) == 1);
  char *p;
  long n = BIO_get_mem_data(bio, &p);
  char *out = strndup(p, (size_t)n);
  BIO_free(bio);
  EVP_PKEY_free(k);
  return out;
}

static void assert_is_seed_key(EVP_PKEY *k) {
  CU_ASSERT_PTR_NOT_NULL_FATAL(k);
  CU_ASSERT_EQUAL(EVP_PKEY_get_id(k), EVP_PKEY_ED25519);
  unsigned char raw[32], seed[32];
  size_t rl = 32;
  test_seed(seed);
  CU_ASSERT_FATAL(EVP_PKEY_get_raw_private_key(k, raw, &rl) == 1);
  CU_ASSERT_EQUAL(rl, 32);
  CU_ASSERT_EQUAL(memcmp(raw, seed, 32), 0);
}

static char *write_key(const char *name, const char *text, mode_t mode) {
  char *p = malloc(strlen(tmp) + strlen(name) + 2);
  sprintf(p, "%s/%s", tmp, name);
  unlink(p);
  CU_ASSERT_FATAL(bk_write_file(p, text, strlen(text)) == 0);
  CU_ASSERT_FATAL(chmod(p, mode) == 0);
  return p;
}

/* ---- keys: tests -------------------------------------------------------- */

static void test_pem_pkcs8_file(void) {
  char *pem = seed_pem();
  char *path = write_key("pkcs8.pem", pem, 0600);
  EVP_PKEY *k = NULL;
  CU_ASSERT_EQUAL(bk_key_load_file(path, &k), BULKUP_OK);
  assert_is_seed_key(k);
  EVP_PKEY_free(k);
  /* 0400 is fine too. */
  chmod(path, 0400);
  k = NULL;
  CU_ASSERT_EQUAL(bk_key_load_file(path, &k), BULKUP_OK);
  EVP_PKEY_free(k);
  /* From memory. */
  k = NULL;
  CU_ASSERT_EQUAL(bk_key_load_mem(pem, strlen(pem), &k), BULKUP_OK);
  assert_is_seed_key(k);
  EVP_PKEY_free(k);
  free(path);
  free(pem);
}

static void test_permissions_too_open_refused(void) {
  char *pem = seed_pem();
  static const mode_t bad[] = {0644, 0640, 0604, 0660, 0601, 0610, 0777};
  for (size_t i = 0; i < BK_ARRAY_LEN(bad); i++) {
    char *path = write_key("open.pem", pem, bad[i]);
    EVP_PKEY *k = (EVP_PKEY *)1;
    CU_ASSERT_EQUAL(bk_key_load_file(path, &k), BULKUP_EPERM);
    CU_ASSERT_PTR_NULL(k);
    char want[64];
    snprintf(want, sizeof want, "permissions %04o for '", (unsigned)bad[i]);
    CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), want));
    CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "too open"));
    free(path);
  }
  char *path = write_key("closed.pem", pem, 0600);
  EVP_PKEY *k = NULL;
  CU_ASSERT_EQUAL(bk_key_load_file(path, &k), BULKUP_OK);
  EVP_PKEY_free(k);
  free(path);
  free(pem);
}

static void test_missing_and_odd_files(void) {
  EVP_PKEY *k = NULL;
  char p[1024];
  snprintf(p, sizeof p, "%s/does-not-exist", tmp);
  CU_ASSERT_EQUAL(bk_key_load_file(p, &k), BULKUP_ENOENT);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "does-not-exist"));
  snprintf(p, sizeof p, "%s/adir", tmp);
  mkdir(p, 0700);
  CU_ASSERT_EQUAL(bk_key_load_file(p, &k), BULKUP_EPARSE);
  char *empty = write_key("empty", "", 0600);
  CU_ASSERT_EQUAL(bk_key_load_file(empty, &k), BULKUP_EPARSE);
  CU_ASSERT_PTR_NULL(k);
  free(empty);
}

static void test_openssh_fixture_from_ssh_keygen(void) {
  char *path = write_key("id_ed25519", ossh_plain, 0600);
  EVP_PKEY *k = NULL;
  CU_ASSERT_EQUAL_FATAL(bk_key_load_file(path, &k), BULKUP_OK);
  CU_ASSERT_EQUAL(EVP_PKEY_get_id(k), EVP_PKEY_ED25519);
  /* Its public key is the one of the .pub line ssh-keygen wrote. */
  unsigned char blob[64];
  int bl = EVP_DecodeBlock(blob, (const unsigned char *)ossh_plain_pub_b64,
                           (int)strlen(ossh_plain_pub_b64));
  CU_ASSERT_EQUAL_FATAL(bl, 51); /* 4+11+4+32 */
  unsigned char pub[32];
  size_t pl = 32;
  CU_ASSERT_FATAL(EVP_PKEY_get_raw_public_key(k, pub, &pl) == 1);
  CU_ASSERT_EQUAL(memcmp(pub, blob + 19, 32), 0);
  EVP_PKEY_free(k);
  /* Too open: refused like the PEM file. */
  chmod(path, 0644);
  CU_ASSERT_EQUAL(bk_key_load_file(path, &k), BULKUP_EPERM);
  free(path);
}

static void test_openssh_built_from_seed(void) {
  ossh_spec sp = {0};
  char *text = built_key(&sp);
  char *path = write_key("built", text, 0600);
  EVP_PKEY *k = NULL;
  CU_ASSERT_EQUAL_FATAL(bk_key_load_file(path, &k), BULKUP_OK);
  assert_is_seed_key(k);
  /* Same key, same signature as the PEM form. */
  char *pem = seed_pem();
  EVP_PKEY *k2 = NULL;
  CU_ASSERT_EQUAL_FATAL(bk_key_load_mem(pem, strlen(pem), &k2), BULKUP_OK);
  char *s1 = sig_of(k, "GET", "/x", "", 5);
  char *s2 = sig_of(k2, "GET", "/x", "", 5);
  CU_ASSERT_STRING_EQUAL(s1, s2);
  free(s1);
  free(s2);
  EVP_PKEY_free(k);
  EVP_PKEY_free(k2);
  free(pem);
  free(path);
  free(text);
}

static void test_encrypted_keys_refused(void) {
  EVP_PKEY *k = NULL;
  CU_ASSERT_EQUAL(bk_key_load_mem(ossh_encrypted, strlen(ossh_encrypted), &k),
                  BULKUP_EPARSE);
  CU_ASSERT_PTR_NULL(k);
  CU_ASSERT_STRING_EQUAL(bulkup_last_error_message(),
                         "encrypted OpenSSH keys are not supported; decrypt "
                         "with ssh-keygen -p");
  /* From a file the message keeps that text. */
  char *path = write_key("enc", ossh_encrypted, 0600);
  CU_ASSERT_EQUAL(bk_key_load_file(path, &k), BULKUP_EPARSE);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(),
                                "encrypted OpenSSH keys are not supported; "
                                "decrypt with ssh-keygen -p"));
  free(path);
  /* Encrypted PKCS#8: refused, and never a passphrase prompt. */
  EVP_PKEY *sk = seed_key();
  BIO *bio = BIO_new(BIO_s_mem());
  CU_ASSERT_FATAL(PEM_write_bio_PKCS8PrivateKey(bio, sk, EVP_aes_256_cbc(),
                                                "pw", 2, NULL, NULL) == 1);
  char *p;
  long n = BIO_get_mem_data(bio, &p);
  CU_ASSERT_EQUAL(bk_key_load_mem(p, (size_t)n, &k), BULKUP_EPARSE);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "encrypted"));
  BIO_free(bio);
  EVP_PKEY_free(sk);
}

static void test_other_key_types_refused(void) {
  /* An EC P-256 key in PKCS#8. */
  EVP_PKEY *ec = EVP_EC_gen("P-256");
  CU_ASSERT_PTR_NOT_NULL_FATAL(ec);
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, ec, NULL, NULL, 0, NULL, NULL);
  char *p;
  long n = BIO_get_mem_data(bio, &p);
  EVP_PKEY *k = NULL;
  CU_ASSERT_EQUAL(bk_key_load_mem(p, (size_t)n, &k), BULKUP_EPARSE);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "Ed25519"));
  CU_ASSERT_PTR_NULL(k);
  BIO_free(bio);
  EVP_PKEY_free(ec);
  /* An OpenSSH blob that says ssh-rsa. */
  ossh_spec sp = {.type = "ssh-rsa"};
  char *t = built_key(&sp);
  CU_ASSERT_EQUAL(bk_key_load_mem(t, strlen(t), &k), BULKUP_EPARSE);
  free(t);
}

static void test_malformed_openssh_refused(void) {
  struct {
    ossh_spec sp;
    const char *msg;
  } cases[] = {
      {{.cipher = "aes256-ctr"}, "encrypted OpenSSH keys are not supported"},
      {{.kdf = "bcrypt"}, "kdf"},
      {{.nkeys = 2}, "exactly one"},
      {{.check2_xor = 1}, "check ints differ"},
      {{.flip_inner_pub = 1}, "inconsistent public keys"},
      {{.flip_priv_pub = 1}, "inconsistent public keys"},
      {{.bad_padding = 1}, "padding"},
  };
  for (size_t i = 0; i < BK_ARRAY_LEN(cases); i++) {
    char *t = built_key(&cases[i].sp);
    EVP_PKEY *k = NULL;
    CU_ASSERT_EQUAL(bk_key_load_mem(t, strlen(t), &k), BULKUP_EPARSE);
    CU_ASSERT_PTR_NULL(k);
    if (!strstr(bulkup_last_error_message(), cases[i].msg))
      fprintf(stderr, "case %zu: got '%s'\n", i, bulkup_last_error_message());
    CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), cases[i].msg));
    free(t);
  }
  /* A seed that does not give the stored public key. */
  blob b;
  ossh_spec sp = {0};
  build_ossh_blob(&sp, &b);
  /* The seed starts 64 bytes before the comment: find it (bytes 0..31). */
  unsigned char seed[32];
  test_seed(seed);
  unsigned char *s = memmem(b.b, b.n, seed, 32);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  s[5] ^= 0x80;
  char *t = armour(b.b, b.n);
  EVP_PKEY *k = NULL;
  CU_ASSERT_EQUAL(bk_key_load_mem(t, strlen(t), &k), BULKUP_EPARSE);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(),
                                "does not match the private key"));
  free(t);
}

/* Every truncation of the binary blob, re-armoured: always an EPARSE. */
static void test_every_blob_truncation_refused(void) {
  blob b;
  ossh_spec sp = {0};
  build_ossh_blob(&sp, &b);
  for (size_t len = 0; len < b.n; len++) {
    char *t = armour(b.b, len);
    EVP_PKEY *k = NULL;
    bulkup_err rc = bk_key_load_mem(t, strlen(t), &k);
    CU_ASSERT_EQUAL(rc, BULKUP_EPARSE);
    CU_ASSERT_PTR_NULL(k);
    EVP_PKEY_free(k);
    free(t);
  }
  /* The whole blob works. */
  char *t = armour(b.b, b.n);
  EVP_PKEY *k = NULL;
  CU_ASSERT_EQUAL(bk_key_load_mem(t, strlen(t), &k), BULKUP_OK);
  EVP_PKEY_free(k);
  free(t);
}

/* Every truncation of the key texts (the buffer ends there, no NUL): an
 * error until the END line is complete, never a crash. */
static void truncations(const char *text) {
  size_t full = strlen(text);
  const char *end = strstr(text, "-----END");
  CU_ASSERT_PTR_NOT_NULL_FATAL(end);
  size_t complete = (size_t)(end - text) + strcspn(end, "\n");
  for (size_t len = 0; len <= full; len++) {
    char *buf = malloc(len ? len : 1);
    memcpy(buf, text, len);
    EVP_PKEY *k = NULL;
    bulkup_err rc = bk_key_load_mem(buf, len, &k);
    if (len < complete) {
      CU_ASSERT_NOT_EQUAL(rc, BULKUP_OK);
      CU_ASSERT_PTR_NULL(k);
    }
    if (len == full)
      CU_ASSERT_EQUAL(rc, BULKUP_OK);
    EVP_PKEY_free(k);
    free(buf);
  }
}

static void test_every_text_truncation(void) {
  truncations(ossh_plain);
  char *pem = seed_pem();
  truncations(pem);
  free(pem);
}

/* Flip each bit of each byte of the decoded blob: no crash, and a flip in
 * the key material itself is always caught. */
static void test_bit_flips(void) {
  blob b;
  ossh_spec sp = {0};
  build_ossh_blob(&sp, &b);
  unsigned ok = 0;
  for (size_t i = 0; i < b.n; i++) {
    for (int bit = 0; bit < 8; bit++) {
      blob c = b;
      c.b[i] ^= (unsigned char)(1u << bit);
      char *t = armour(c.b, c.n);
      EVP_PKEY *k = NULL;
      bulkup_err rc = bk_key_load_mem(t, strlen(t), &k);
      if (rc == BULKUP_OK) {
        ok++;
        CU_ASSERT_PTR_NOT_NULL(k);
      } else {
        CU_ASSERT_EQUAL(rc, BULKUP_EPARSE);
        CU_ASSERT_PTR_NULL(k);
      }
      EVP_PKEY_free(k);
      free(t);
    }
  }
  /* Exactly the flips in the comment ("built-in-test!", 14 bytes) load;
   * anything else must not. */
  CU_ASSERT_EQUAL(ok, 14 * 8);
}

static void test_garbage_refused(void) {
  unsigned char buf[4096];
  for (unsigned seed = 1; seed <= 200; seed++) {
    size_t len = (seed * 37) % sizeof buf;
    bk_fill_random(buf, len, seed);
    EVP_PKEY *k = NULL;
    CU_ASSERT_NOT_EQUAL(bk_key_load_mem(buf, len, &k), BULKUP_OK);
    CU_ASSERT_PTR_NULL(k);
  }
  const char *texts[] = {
      "-----BEGIN OPENSSH PRIVATE KEY-----\n",
      "-----BEGIN OPENSSH PRIVATE KEY-----\n-----END OPENSSH PRIVATE KEY-----\n",
      "-----BEGIN OPENSSH PRIVATE KEY-----\n!!!!\n-----END OPENSSH PRIVATE "
      "KEY-----\n",
      "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA=AAA\n-----END OPENSSH "
      "PRIVATE KEY-----\n",
      "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA/////w==\n"
      "-----END OPENSSH PRIVATE KEY-----\n",
      "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
      "-----BEGIN PRIVATE KEY-----\n",
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGkqK9CuxBAlwBSc9NDsCa4PNMWd7zdliOt"
      "GQ7+3MEOd pub\n",
      "hello",
  };
  for (size_t i = 0; i < BK_ARRAY_LEN(texts); i++) {
    EVP_PKEY *k = NULL;
    CU_ASSERT_EQUAL(bk_key_load_mem(texts[i], strlen(texts[i]), &k),
                    BULKUP_EPARSE);
    CU_ASSERT_PTR_NULL(k);
  }
  /* Huge string lengths inside the blob. */
  blob b = {.n = 0};
  memcpy(b.b, "openssh-key-v1", 15);
  b.n = 15;
  put_u32(&b, 0xffffffffu);
  char *t = armour(b.b, b.n);
  EVP_PKEY *k = NULL;
  CU_ASSERT_EQUAL(bk_key_load_mem(t, strlen(t), &k), BULKUP_EPARSE);
  free(t);
  CU_ASSERT_EQUAL(bk_key_load_mem(NULL, 0, &k), BULKUP_EPARSE);
  /* Oversized. */
  char *big = malloc(BK_KEY_MAX_SIZE + 1);
  memset(big, 'A', BK_KEY_MAX_SIZE + 1);
  CU_ASSERT_EQUAL(bk_key_load_mem(big, BK_KEY_MAX_SIZE + 1, &k), BULKUP_EPARSE);
  free(big);
}

/* ---- bulkup_api_new option checks (no network) -------------------------- */

static void test_api_new_options(void) {
  char *pem = seed_pem();
  bulkup_api_options o;
  bulkup_api_options_init(&o);
  CU_ASSERT_EQUAL(o.requests.max_retries, BULKUP_DEFAULT_MAX_RETRIES);
  CU_ASSERT_DOUBLE_EQUAL(o.requests.connect_timeout, 180.0, 1e-9);
  o.base_url = "http://127.0.0.1:1/prefix/";
  o.key_id = "k1";
  o.key_pem = pem;
  o.key_pem_len = strlen(pem);
  bulkup_api *api = NULL;
  CU_ASSERT_EQUAL(bulkup_api_new(&api, &o), BULKUP_OK);
  CU_ASSERT_PTR_NOT_NULL(api);
  bulkup_api_free(api);

  bulkup_api_options bad = o;
  bad.base_url = "ftp://example.com";
  CU_ASSERT_EQUAL(bulkup_api_new(&api, &bad), BULKUP_ESCHEME);
  CU_ASSERT_PTR_NULL(api);
  bad = o;
  bad.base_url = "file:///etc";
  CU_ASSERT_EQUAL(bulkup_api_new(&api, &bad), BULKUP_ESCHEME);
  bad = o;
  bad.base_url = "http://h/x?y=1";
  CU_ASSERT_EQUAL(bulkup_api_new(&api, &bad), BULKUP_EINVAL);
  bad = o;
  bad.key_id = "a\"b";
  CU_ASSERT_EQUAL(bulkup_api_new(&api, &bad), BULKUP_EINVAL);
  bad = o;
  bad.key_file = "/nonexistent";
  CU_ASSERT_EQUAL(bulkup_api_new(&api, &bad), BULKUP_EINVAL); /* both */
  bad = o;
  bad.key_pem = NULL;
  CU_ASSERT_EQUAL(bulkup_api_new(&api, &bad), BULKUP_EINVAL); /* neither */
  bad = o;
  bad.requests.max_retries = -1;
  CU_ASSERT_EQUAL(bulkup_api_new(&api, &bad), BULKUP_EINVAL);
  bad = o;
  bad.max_response_size = (size_t)1 << 31;
  CU_ASSERT_EQUAL(bulkup_api_new(&api, &bad), BULKUP_EINVAL);
  bad = o;
  bad.user_agent = "x\r\nInjected: 1";
  CU_ASSERT_EQUAL(bulkup_api_new(&api, &bad), BULKUP_EINVAL);
  bad = o;
  bad.key_pem = ossh_encrypted;
  bad.key_pem_len = strlen(ossh_encrypted);
  CU_ASSERT_EQUAL(bulkup_api_new(&api, &bad), BULKUP_EPARSE);
  /* A too-open key file. */
  char *path = write_key("api-open.pem", pem, 0644);
  bad = o;
  bad.key_pem = NULL;
  bad.key_file = path;
  CU_ASSERT_EQUAL(bulkup_api_new(&api, &bad), BULKUP_EPERM);
  chmod(path, 0600);
  CU_ASSERT_EQUAL(bulkup_api_new(&api, &bad), BULKUP_OK);
  bulkup_api_free(api);
  bulkup_api_free(NULL);
  free(path);
  free(pem);
}

static void reg(void) {
  bk_suite("sign", suite_init, suite_clean);
  bk_test("digest of the empty body", test_digest_of_empty_body);
  bk_test("GET headers equal an independent computation",
          test_get_headers_match_independent_computation);
  bk_test("POST headers equal an independent computation",
          test_post_headers_match_independent_computation);
  bk_test("signature verifies with the public key", test_signature_verifies);
  bk_test("a changed byte changes the signature",
          test_any_change_changes_signature);
  bk_test("unsignable inputs refused", test_unsignable_inputs_refused);
  bk_suite("keys", suite_init, suite_clean);
  bk_test("PEM PKCS#8 file and memory", test_pem_pkcs8_file);
  bk_test("permissions too open refused", test_permissions_too_open_refused);
  bk_test("missing, directory, empty", test_missing_and_odd_files);
  bk_test("OpenSSH key from ssh-keygen", test_openssh_fixture_from_ssh_keygen);
  bk_test("OpenSSH key built from the seed", test_openssh_built_from_seed);
  bk_test("encrypted keys refused", test_encrypted_keys_refused);
  bk_test("other key types refused", test_other_key_types_refused);
  bk_test("malformed OpenSSH refused", test_malformed_openssh_refused);
  bk_test("every blob truncation refused", test_every_blob_truncation_refused);
  bk_test("every text truncation", test_every_text_truncation);
  bk_test("bit flips", test_bit_flips);
  bk_test("garbage refused", test_garbage_refused);
  bk_suite("api_new", suite_init, suite_clean);
  bk_test("option checks", test_api_new_options);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
