/* Request signing, key loading, and the wire vectors of
 * ../shared/spec/ENCORD_WIRE.md (computed there with the SDK's own code):
 * the key id of the seed 00..1f, the v2 Signature with `created` pinned,
 * the v1 Authorization of the poll body, and the json.dumps bytes of the
 * bodies of §11.
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
#include "api/client.h"
#include "api/jobs.h"
#include "api/keys.h"
#include "api/mimetypes.h"
#include "api/presign.h"
#include "api/pyjson.h"
#include "api/sign.h"

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


/* ---- ENCORD_WIRE.md's vectors ------------------------------------------- */

#define WIRE_KEY_ID \
  "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"

static void test_wire_key_id(void) {
  EVP_PKEY *k = seed_key();
  char id[65];
  CU_ASSERT_EQUAL(bk_key_id_hex(k, id), BULKUP_OK);
  CU_ASSERT_STRING_EQUAL(id, WIRE_KEY_ID);
  EVP_PKEY_free(k);
  /* And through the public API, from a key file's text. */
  char *pem = seed_pem();
  bulkup_api_options o;
  bulkup_api_options_init(&o);
  o.key_pem = pem;
  o.key_pem_len = strlen(pem);
  bulkup_api *api = NULL;
  CU_ASSERT_EQUAL_FATAL(bulkup_api_new(&api, &o), BULKUP_OK);
  CU_ASSERT_STRING_EQUAL(bulkup_api_key_id(api), WIRE_KEY_ID);
  bulkup_api_free(api);
  free(pem);
}

/* §4: GET /v2/public/presigned-urls?count=2&uploadItemType=image with
 * datetime.now pinned to 1700000030 (created 1700000000). */
static void test_wire_v2_signature(void) {
  EVP_PKEY *k = seed_key();
  char target[160];
  CU_ASSERT_EQUAL(bk_presign_target(BULKUP_DATA_TYPE_IMAGE, 2, target,
                                    sizeof target), BULKUP_OK);
  CU_ASSERT_STRING_EQUAL(target,
                         "/v2/public/presigned-urls?count=2&uploadItemType=image");
  bk_sig_headers h;
  CU_ASSERT_EQUAL_FATAL(bk_sign_request(k, WIRE_KEY_ID, "GET", target, NULL,
                                        0, 1700000030, &h), BULKUP_OK);
  CU_ASSERT_STRING_EQUAL(h.content_digest,
                         "Content-Digest: sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:");
  CU_ASSERT_STRING_EQUAL(h.signature_input,
                         "Signature-Input: encord-sig=(\"@method\" "
                         "\"@request-target\" \"content-digest\");"
                         "created=1700000000;keyid=\"" WIRE_KEY_ID
                         "\";alg=\"ed25519\"");
  CU_ASSERT_STRING_EQUAL(h.signature,
                         "Signature: encord-sig=:h5Pj1/FCSL1yHfCbmnfLv22uvD88"
                         "RYZut/dXGqmrAaYZe2JCqeXN9BXFY6WM0dUjk0P0/X9kdtu3N8C4"
                         "lDupDA==:");
  bk_sig_headers_free(&h);
  /* The other two item types, in the SDK's parameter order. */
  CU_ASSERT_EQUAL(bk_presign_target(BULKUP_DATA_TYPE_VIDEO, 1, target,
                                    sizeof target), BULKUP_OK);
  CU_ASSERT_STRING_EQUAL(target,
                         "/v2/public/presigned-urls?count=1&uploadItemType=video");
  CU_ASSERT_EQUAL(bk_presign_target(BULKUP_DATA_TYPE_DICOM, 200, target,
                                    sizeof target), BULKUP_OK);
  CU_ASSERT_STRING_EQUAL(target, "/v2/public/presigned-urls?count=200&"
                                 "uploadItemType=dicomFile");
  CU_ASSERT_EQUAL(bk_presign_target(BULKUP_DATA_TYPE_PDF, 1, target,
                                    sizeof target), BULKUP_EINVAL);
  EVP_PKEY_free(k);
}

/* §6: the poll body and its Authorization. */
#define WIRE_POLL_BODY                                                       \
  "{\"query_type\": \"datasetdatalongpolling\", \"query_method\": \"GET\", " \
  "\"values\": {\"uid\": \"00000000-0000-0000-0000-000000000001\", "        \
  "\"payload\": {\"process_hash\": \"p-1\", \"timeout_seconds\": 10}}}"

static void test_wire_v1_authorization(void) {
  size_t len = 0;
  char *body = bk_api_v1_body("datasetdatalongpolling", "GET",
                              "\"00000000-0000-0000-0000-000000000001\"",
                              "{\"process_hash\": \"p-1\", "
                              "\"timeout_seconds\": 10}",
                              &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(body);
  CU_ASSERT_STRING_EQUAL(body, WIRE_POLL_BODY);
  CU_ASSERT_EQUAL(len, strlen(WIRE_POLL_BODY));
  EVP_PKEY *k = seed_key();
  char auth[BK_V1_AUTH_LEN + 1];
  CU_ASSERT_EQUAL(bk_sign_v1(k, WIRE_KEY_ID, body, len, auth, sizeof auth),
                  BULKUP_OK);
  CU_ASSERT_STRING_EQUAL(auth, WIRE_KEY_ID
                         ":d95b93e25d246d4eeb0fa1329c06679833032c50365a532d"
                         "96451ccb79b2d7b8ad6e5bcbd57c0695d0c9e9ef93cfc42a10b"
                         "21ba9979891ec79693c74ca3a0d0e");
  CU_ASSERT_EQUAL(strlen(auth), (size_t)BK_V1_AUTH_LEN);
  /* A changed byte of the body changes it. */
  body[len - 4] = '1';
  char auth2[BK_V1_AUTH_LEN + 1];
  CU_ASSERT_EQUAL(bk_sign_v1(k, WIRE_KEY_ID, body, len, auth2, sizeof auth2),
                  BULKUP_OK);
  CU_ASSERT_STRING_NOT_EQUAL(auth, auth2);
  EVP_PKEY_free(k);
  free(body);
}

/* §11: create_image_group(3 paths) with the defaults; Content-Length 778
 * with a 16-character bucket name in the object keys. */
#define WIRE_BKT "encord-test-bkt0/image/049d69c9-0000-4000-8000-00000000000"
#define WIRE_GROUP_BODY                                                       \
  "{\"query_type\": \"datasetdatalongpolling\", \"query_method\": \"POST\", " \
  "\"values\": {\"uid\": \"6a8f3c2e-1d4b-4e59-9a7c-0b1e2f3a4d5c\", "         \
  "\"payload\": {\"dataItems\": {\"videos\": [], \"imageGroups\": "          \
  "[{\"images\": [{\"url\": \"" WIRE_BKT "1\", \"title\": "                  \
  "\"checkerboard.png\"}, {\"url\": \"" WIRE_BKT "2\", \"title\": "          \
  "\"dots.png\"}, {\"url\": \"" WIRE_BKT "3\", \"title\": "                  \
  "\"gradient.png\"}], \"clientMetadata\": {}, \"createVideo\": true, "      \
  "\"externalFileType\": \"IMG_GROUP\", \"clusterByResolution\": true}], "   \
  "\"dicomSeries\": [], \"images\": [], \"imageGroupsFromItems\": [], "      \
  "\"audio\": [], \"nifti\": [], \"text\": [], \"pdf\": [], "                \
  "\"skipDuplicateUrls\": false, \"upsertMetadata\": false}, "               \
  "\"ignoreErrors\": false}}}"

static char *job_body(bk_job_kind kind, const bk_job_file *f, size_t n,
                      const char *title, bool cv, const char *folder) {
  char *payload = NULL;
  size_t plen = 0;
  CU_ASSERT_EQUAL_FATAL(bk_job_payload(kind, f, n, title, cv, folder,
                                       &payload, &plen), BULKUP_OK);
  CU_ASSERT_EQUAL(plen, strlen(payload));
  size_t len = 0;
  char *body = bk_api_v1_body("datasetdatalongpolling", "POST",
                              "\"6a8f3c2e-1d4b-4e59-9a7c-0b1e2f3a4d5c\"",
                              payload, &len);
  free(payload);
  CU_ASSERT_PTR_NOT_NULL_FATAL(body);
  return body;
}

static void test_wire_json_dumps_bodies(void) {
  bk_job_file f[3] = {{WIRE_BKT "1", "checkerboard.png"},
                      {WIRE_BKT "2", "dots.png"},
                      {WIRE_BKT "3", "gradient.png"}};
  char *b = job_body(BK_JOB_IMAGE_GROUP, f, 3, NULL, true, NULL);
  CU_ASSERT_STRING_EQUAL(b, WIRE_GROUP_BODY);
  CU_ASSERT_EQUAL(strlen(b), 778u);
  free(b);

  /* The group with a title, no video, and a folder (title after images,
   * clusterByResolution tied to createVideo, folderUuid last). */
  b = job_body(BK_JOB_IMAGE_GROUP, f, 1, "hol", false,
               "0f0e0d0c-0b0a-4909-8807-060504030201");
  CU_ASSERT_PTR_NOT_NULL(strstr(b, "\"imageGroups\": [{\"images\": [{\"url\": \""
                                   WIRE_BKT "1\", \"title\": \"checkerboard.png\"}], "
                                   "\"title\": \"hol\", \"clientMetadata\": {}, "
                                   "\"createVideo\": false, \"externalFileType\": "
                                   "\"IMG_GROUP\", \"clusterByResolution\": false}]"));
  CU_ASSERT_PTR_NOT_NULL(strstr(b, "\"upsertMetadata\": false}, \"ignoreErrors\": "
                                   "false, \"folderUuid\": "
                                   "\"0f0e0d0c-0b0a-4909-8807-060504030201\"}}}"));
  free(b);

  /* DICOM series. */
  b = job_body(BK_JOB_DICOM_SERIES, f, 2, "ct", true, NULL);
  CU_ASSERT_PTR_NOT_NULL(strstr(b, "\"videos\": [], \"imageGroups\": [], "
                                   "\"dicomSeries\": [{\"dicomFiles\": [{\"url\": \""
                                   WIRE_BKT "1\", \"title\": \"checkerboard.png\"}, "
                                   "{\"url\": \"" WIRE_BKT "2\", \"title\": "
                                   "\"dots.png\"}], \"title\": \"ct\", "
                                   "\"clientMetadata\": {}, \"externalFileType\": "
                                   "\"DICOM\"}], \"images\": [], "));
  free(b);

  /* Videos and images: one entry per file. */
  b = job_body(BK_JOB_VIDEOS, f, 1, NULL, true, NULL);
  CU_ASSERT_PTR_NOT_NULL(strstr(b, "\"dataItems\": {\"videos\": [{\"objectUrl\": \""
                                   WIRE_BKT "1\", \"title\": \"checkerboard.png\", "
                                   "\"clientMetadata\": {}, \"externalFileType\": "
                                   "\"VIDEO\"}], \"imageGroups\": [], "
                                   "\"dicomSeries\": [], \"images\": [], "
                                   "\"imageGroupsFromItems\": [], "));
  free(b);
  b = job_body(BK_JOB_IMAGES, f, 2, NULL, true, NULL);
  CU_ASSERT_PTR_NOT_NULL(strstr(b, "\"dicomSeries\": [], \"images\": [{\"objectUrl\": \""
                                   WIRE_BKT "1\", \"title\": \"checkerboard.png\", "
                                   "\"clientMetadata\": {}, \"externalFileType\": "
                                   "\"IMAGE\"}, {\"objectUrl\": \"" WIRE_BKT "2\", "
                                   "\"title\": \"dots.png\", \"clientMetadata\": {}, "
                                   "\"externalFileType\": \"IMAGE\"}], "
                                   "\"imageGroupsFromItems\": []"));
  free(b);

  /* get_dataset (§11). */
  size_t len;
  b = bk_api_v1_body("dataset", "GET", "null",
                     "{\"dataset_access_settings\": {\"fetch_client_metadata\": "
                     "false}}", &len);
  CU_ASSERT_STRING_EQUAL(b, "{\"query_type\": \"dataset\", \"query_method\": "
                            "\"GET\", \"values\": {\"uid\": null, \"payload\": "
                            "{\"dataset_access_settings\": "
                            "{\"fetch_client_metadata\": false}}}}");
  free(b);
}

/* ensure_ascii=True, as json.dumps (outputs taken from CPython 3.11). */
static void test_wire_json_strings(void) {
  static const struct {
    const char *in, *out;
  } v[] = {
      {"caf\xc3\xa9 \"x\"\\\n\x01\x7f\xf0\x9f\x98\x80",
       "\"caf\\u00e9 \\\"x\\\"\\\\\\n\\u0001\\u007f\\ud83d\\ude00\""},
      {"a\xff", "\"a\\udcff\""},          /* surrogateescape of a bad byte */
      {"\xc0\xaf", "\"\\udcc0\\udcaf\""}, /* overlong: two bad bytes */
      {"tab\there\r\b\f/", "\"tab\\there\\r\\b\\f/\""},
      {"", "\"\""},
  };
  for (size_t i = 0; i < BK_ARRAY_LEN(v); i++) {
    bk_pj w;
    bk_pj_init(&w);
    bk_pj_str(&w, v[i].in);
    char *s;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(bk_pj_finish(&w, &s, &n), BULKUP_OK);
    CU_ASSERT_STRING_EQUAL(s, v[i].out);
    free(s);
  }
}

/* §3/§4/§8: answers in either casing; UUIDs canonical. */
static void test_wire_answers_both_casings(void) {
  static const char camel[] =
      "{\"results\": [{\"itemUuid\": \"0F0E0D0C0B0A49098807060504030201\", "
      "\"objectKey\": \"b/1\", \"signedUrl\": \"https://s/1?sig=a\", "
      "\"extra\": 1}], \"nextPageToken\": null}";
  static const char snake[] =
      "{\"results\": [{\"item_uuid\": \"0f0e0d0c-0b0a-4909-8807-060504030201\", "
      "\"object_key\": \"b/1\", \"signed_url\": \"https://s/1?sig=a\"}]}";
  const char *both[2] = {camel, snake};
  for (int i = 0; i < 2; i++) {
    bulkup_signed_url *v = NULL;
    CU_ASSERT_EQUAL_FATAL(bk_api_parse_presign(both[i], strlen(both[i]), 1, &v),
                          BULKUP_OK);
    CU_ASSERT_STRING_EQUAL(v[0].item_uuid,
                           "0f0e0d0c-0b0a-4909-8807-060504030201");
    CU_ASSERT_STRING_EQUAL(v[0].object_key, "b/1");
    CU_ASSERT_STRING_EQUAL(v[0].signed_url, "https://s/1?sig=a");
    bulkup_signed_urls_free(v, 1);
  }
  bulkup_signed_url *v = NULL;
  static const char notuuid[] =
      "{\"results\": [{\"itemUuid\": \"x-1\", \"objectKey\": \"b/1\", "
      "\"signedUrl\": \"https://s/1\"}]}";
  CU_ASSERT_EQUAL(bk_api_parse_presign(notuuid, strlen(notuuid), 1, &v),
                  BULKUP_EPROTOCOL);
  CU_ASSERT_EQUAL(bk_api_parse_presign(snake, strlen(snake), 2, &v),
                  BULKUP_EPROTOCOL);

  static const char done_snake[] =
      "{\"status\": \"DONE\", \"data_hashes_with_titles\": [{\"data_hash\": "
      "\"d1\", \"title\": \"g\", \"backing_item_uuid\": "
      "\"0f0e0d0c-0b0a-4909-8807-060504030201\"}, {\"data_hash\": \"d2\", "
      "\"title\": \"g (2)\", \"backing_item_uuid\": "
      "\"1f0e0d0c-0b0a-4909-8807-060504030201\"}], \"errors\": [], "
      "\"data_unit_errors\": [], \"units_pending_count\": 0, "
      "\"units_done_count\": 2, \"units_error_count\": 0, "
      "\"units_cancelled_count\": 0}";
  static const char done_camel[] =
      "{\"status\": \"DONE\", \"dataHashesWithTitles\": [{\"dataHash\": "
      "\"d1\", \"title\": \"g\", \"backingItemUuid\": "
      "\"0f0e0d0c-0b0a-4909-8807-060504030201\"}, {\"dataHash\": \"d2\", "
      "\"title\": \"g (2)\", \"backingItemUuid\": "
      "\"1f0e0d0c-0b0a-4909-8807-060504030201\"}], \"errors\": [], "
      "\"dataUnitErrors\": [], \"unitsPendingCount\": 0, "
      "\"unitsDoneCount\": 2, \"unitsErrorCount\": 0, "
      "\"unitsCancelledCount\": 0}";
  const char *dones[2] = {done_snake, done_camel};
  for (int i = 0; i < 2; i++) {
    bool final = false;
    bulkup_image_group *g = NULL;
    CU_ASSERT_EQUAL_FATAL(bk_api_parse_job(dones[i], strlen(dones[i]), "p",
                                           &final, &g), BULKUP_OK);
    CU_ASSERT_TRUE(final);
    CU_ASSERT_EQUAL_FATAL(bulkup_image_group_count(g), 2u);
    CU_ASSERT_STRING_EQUAL(bulkup_image_group_data_hash(g, 1), "d2");
    CU_ASSERT_STRING_EQUAL(bulkup_image_group_title(g, 1), "g (2)");
    CU_ASSERT_STRING_EQUAL(bulkup_image_group_backing_item_uuid(g, 0),
                           "0f0e0d0c-0b0a-4909-8807-060504030201");
    bulkup_image_group_free(g);
  }
  /* A required field missing: refused, as pydantic would. */
  static const char no_counts[] =
      "{\"status\": \"PENDING\", \"data_hashes_with_titles\": [], "
      "\"errors\": [], \"data_unit_errors\": []}";
  bool final = true;
  bulkup_image_group *g = NULL;
  CU_ASSERT_EQUAL(bk_api_parse_job(no_counts, strlen(no_counts), "p", &final,
                                   &g), BULKUP_EPROTOCOL);
  static const char err[] =
      "{\"status\": \"ERROR\", \"data_hashes_with_titles\": [], \"errors\": "
      "[\"bad image\"], \"data_unit_errors\": [{\"object_urls\": [\"b/1\"], "
      "\"error\": \"cannot decode\", \"subtask_uuid\": "
      "\"0f0e0d0c-0b0a-4909-8807-060504030201\", \"action_description\": "
      "\"x\"}], \"units_pending_count\": 0, \"units_done_count\": 0, "
      "\"units_error_count\": 1, \"units_cancelled_count\": 0}";
  CU_ASSERT_EQUAL(bk_api_parse_job(err, strlen(err), "p", &final, &g),
                  BULKUP_EJOB);
  CU_ASSERT_TRUE(final);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "bad image; "
                                                             "cannot decode"));
}

/* §5: the image Content-Type is Python's mimetypes.guess_type (these
 * answers do not depend on the system's mime.types). */
static void test_wire_image_content_type(void) {
  static const struct {
    const char *path, *type;
  } v[] = {
      {"a/b/photo.jpg", "image/jpeg"}, {"x.PNG", "image/png"},
      {"scan.png.gz", "image/png"},    {"logo.svgz", "image/svg+xml"},
      {"a.b.c.gif", "image/gif"},      {"noext", NULL},
      {".png", NULL},                  {"dir/.png", NULL},
      {"a.", NULL},                    {"a.xyzzy-unknown", NULL},
  };
  for (size_t i = 0; i < BK_ARRAY_LEN(v); i++) {
    const char *t = bk_mime_guess(v[i].path);
    if (v[i].type) {
      CU_ASSERT(t && strcmp(t, v[i].type) == 0);
    } else {
      CU_ASSERT_PTR_NULL(t);
    }
  }
}

/* ---- bulkup_api_new option checks (no network) -------------------------- */

static void test_api_new_options(void) {
  char *pem = seed_pem();
  bulkup_api_options o;
  bulkup_api_options_init(&o);
  CU_ASSERT_EQUAL(o.requests.max_retries, BULKUP_DEFAULT_MAX_RETRIES);
  CU_ASSERT_DOUBLE_EQUAL(o.requests.connect_timeout, 180.0, 1e-9);
  o.base_url = "http://127.0.0.1:1/prefix/";
  o.key_id = WIRE_KEY_ID; /* a check: the derived id */
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
  bad.key_id = "my-key"; /* not the key's id: refused, naming it */
  CU_ASSERT_EQUAL(bulkup_api_new(&api, &bad), BULKUP_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), WIRE_KEY_ID));
  bad.key_id = "03A107BFF3CE10BE1D70DD18E74BC09967E4D6309BA50D5F1DDC8664125531B8";
  CU_ASSERT_EQUAL(bulkup_api_new(&api, &bad), BULKUP_OK); /* any case */
  bulkup_api_free(api);
  bad = o;
  bad.key_file = "/nonexistent";
  CU_ASSERT_EQUAL(bulkup_api_new(&api, &bad), BULKUP_EINVAL); /* both */
  /* Neither: $ENCORD_SSH_KEY_FILE, else $ENCORD_SSH_KEY, else refused. */
  unsetenv("ENCORD_SSH_KEY_FILE");
  unsetenv("ENCORD_SSH_KEY");
  bad = o;
  bad.key_pem = NULL;
  CU_ASSERT_EQUAL(bulkup_api_new(&api, &bad), BULKUP_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(),
                                "ENCORD_SSH_KEY_FILE"));
  setenv("ENCORD_SSH_KEY", pem, 1);
  CU_ASSERT_EQUAL_FATAL(bulkup_api_new(&api, &bad), BULKUP_OK);
  CU_ASSERT_STRING_EQUAL(bulkup_api_key_id(api), WIRE_KEY_ID);
  bulkup_api_free(api);
  char *envfile = write_key("env.pem", pem, 0600);
  setenv("ENCORD_SSH_KEY_FILE", envfile, 1);
  setenv("ENCORD_SSH_KEY", "garbage", 1); /* the file wins */
  CU_ASSERT_EQUAL_FATAL(bulkup_api_new(&api, &bad), BULKUP_OK);
  bulkup_api_free(api);
  chmod(envfile, 0644); /* too open: refused, naming the variable */
  CU_ASSERT_EQUAL(bulkup_api_new(&api, &bad), BULKUP_EPERM);
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(),
                                "$ENCORD_SSH_KEY_FILE"));
  unsetenv("ENCORD_SSH_KEY_FILE");
  unsetenv("ENCORD_SSH_KEY");
  free(envfile);
  /* base_url NULL is the Encord API. */
  bad = o;
  bad.base_url = NULL;
  CU_ASSERT_EQUAL_FATAL(bulkup_api_new(&api, &bad), BULKUP_OK);
  CU_ASSERT_STRING_EQUAL(api->origin, "https://api.encord.com");
  CU_ASSERT_STRING_EQUAL(api->prefix, "");
  bulkup_api_free(api);
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
  bk_suite("wire", suite_init, suite_clean);
  bk_test("key id of the seed 00..1f", test_wire_key_id);
  bk_test("v2 Signature, created pinned", test_wire_v2_signature);
  bk_test("v1 Authorization of the poll body", test_wire_v1_authorization);
  bk_test("json.dumps bodies of the four kinds", test_wire_json_dumps_bodies);
  bk_test("json.dumps strings (ensure_ascii)", test_wire_json_strings);
  bk_test("answers in either casing", test_wire_answers_both_casings);
  bk_test("image Content-Type as mimetypes.guess_type",
          test_wire_image_content_type);
  bk_suite("api_new", suite_init, suite_clean);
  bk_test("option checks", test_api_new_options);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
