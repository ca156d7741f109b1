/* bulkup_shard_hash / bulkup_shard_of: the values pinned here were computed
 * independently (Python: int.from_bytes(hashlib.sha256(key).digest()[:8],
 * "big") % n) when sharding was introduced. They must never change: a shard
 * computed by one version must match the same shard computed by any other,
 * or a rerun of a shard would miss items or upload others twice. */
#include "bk_test.h"
#include "internal.h"

#include <openssl/evp.h>
#include <stdio.h>

typedef struct known {
  const char *key;
  size_t len;
  uint64_t hash;
  uint32_t mod16, mod4, mod3, mod1000;
} known;

#define X55 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#define X64 X55 "xxxxxxxxx"

static const known pinned[] = {
    {"", 0, 0xe3b0c44298fc1c14ULL, 4, 0, 1, 652},
    {"a", 1, 0xca978112ca1bbdcaULL, 10, 2, 1, 250},
    {"abc", 3, 0xba7816bf8f01cfeaULL, 10, 2, 0, 74},
    {"photos/a/b.jpg", 14, 0x3d465385e9528482ULL, 2, 2, 0, 994},
    {"https://bucket.example/run1/000001.png", 38, 0xc1e6823b4d78e11aULL, 10,
     2, 1, 450},
    {X55, 55, 0xd5e285683cd4efc0ULL, 0, 0, 2, 584},   /* one padded block */
    {X55 "x", 56, 0x04c26261370ee754ULL, 4, 0, 0, 372}, /* two blocks */
    {X64, 64, 0x7ce100971f64e700ULL, 0, 0, 1, 792},
    {"caf\xe9/\xff", 6, 0xb90b38104135ceccULL, 12, 0, 1, 956},
};

static void test_pinned_values(void) {
  for (size_t i = 0; i < BK_ARRAY_LEN(pinned); i++) {
    const known *k = &pinned[i];
    CU_ASSERT_EQUAL(strlen(k->key), k->len);
    uint64_t h = bulkup_shard_hash(k->key, k->len);
    if (h != k->hash)
      fprintf(stderr, "key %zu: hash %016llx, pinned %016llx\n", i,
              (unsigned long long)h, (unsigned long long)k->hash);
    CU_ASSERT_EQUAL(h, k->hash);
    uint32_t s = 99;
    CU_ASSERT_EQUAL(bulkup_shard_of(&s, k->key, 16), BULKUP_OK);
    CU_ASSERT_EQUAL(s, k->mod16);
    CU_ASSERT_EQUAL(bulkup_shard_of(&s, k->key, 4), BULKUP_OK);
    CU_ASSERT_EQUAL(s, k->mod4);
    CU_ASSERT_EQUAL(bulkup_shard_of(&s, k->key, 3), BULKUP_OK);
    CU_ASSERT_EQUAL(s, k->mod3);
    CU_ASSERT_EQUAL(bulkup_shard_of(&s, k->key, 1000), BULKUP_OK);
    CU_ASSERT_EQUAL(s, k->mod1000);
  }
  /* 200 bytes: a key longer than a block plus a padded tail. */
  char x200[201];
  memset(x200, 'x', 200);
  x200[200] = '\0';
  CU_ASSERT_EQUAL(bulkup_shard_hash(x200, 200), 0xaa20c23e32018340ULL);
  CU_ASSERT_EQUAL(bulkup_shard_hash(NULL, 0), 0xe3b0c44298fc1c14ULL);
}

/* The hash is the first 8 bytes of SHA-256: compare with OpenSSL for keys
 * of every length around the block and padding boundaries. */
static void test_matches_sha256(void) {
  unsigned char key[300];
  bk_fill_random(key, sizeof key, 7);
  for (size_t len = 0; len <= sizeof key; len++) {
    unsigned char md[32];
    unsigned int mdlen = 0;
    CU_ASSERT_FATAL(EVP_Digest(key, len, md, &mdlen, EVP_sha256(), NULL) == 1);
    uint64_t want = 0;
    for (int i = 0; i < 8; i++)
      want = want << 8 | md[i];
    if (bulkup_shard_hash(key, len) != want) {
      CU_FAIL("differs from SHA-256");
      fprintf(stderr, "length %zu\n", len);
      return;
    }
  }
}

static void test_one_shard_and_errors(void) {
  uint32_t s = 77;
  CU_ASSERT_EQUAL(bulkup_shard_of(&s, "anything", 1), BULKUP_OK);
  CU_ASSERT_EQUAL(s, 0);
  CU_ASSERT_EQUAL(bulkup_shard_of(&s, "", 1), BULKUP_OK);
  CU_ASSERT_EQUAL(s, 0);
  s = 77;
  CU_ASSERT_EQUAL(bulkup_shard_of(&s, "anything", 0), BULKUP_EINVAL);
  CU_ASSERT_EQUAL(s, 77); /* left alone */
  CU_ASSERT_PTR_NOT_NULL(strstr(bulkup_last_error_message(), "at least 1"));
  CU_ASSERT_EQUAL(bulkup_shard_of(NULL, "a", 4), BULKUP_EINVAL);
  CU_ASSERT_EQUAL(bulkup_shard_of(&s, NULL, 4), BULKUP_EINVAL);
  /* The largest n: still in range. */
  CU_ASSERT_EQUAL(bulkup_shard_of(&s, "a", UINT32_MAX), BULKUP_OK);
  CU_ASSERT_EQUAL(s, (uint32_t)(0xca978112ca1bbdcaULL % UINT32_MAX));
}

/* 100,000 keys that look like real paths: every shard within a few per
 * cent of n-th of them. */
static void check_uniform(uint32_t n, double tolerance) {
  enum { KEYS = 100000 };
  unsigned *count = calloc(n, sizeof *count);
  CU_ASSERT_PTR_NOT_NULL_FATAL(count);
  char key[64];
  for (int i = 0; i < KEYS; i++) {
    snprintf(key, sizeof key, "d%02d/s%d/f%06d.bin", i % 37, i % 3, i);
    uint32_t s = n;
    CU_ASSERT_EQUAL_FATAL(bulkup_shard_of(&s, key, n), BULKUP_OK);
    CU_ASSERT_FATAL(s < n);
    count[s]++;
  }
  double want = (double)KEYS / n;
  unsigned lo = KEYS, hi = 0;
  for (uint32_t s = 0; s < n; s++) {
    lo = count[s] < lo ? count[s] : lo;
    hi = count[s] > hi ? count[s] : hi;
  }
  fprintf(stderr, "  n=%u: shard sizes %u .. %u (uniform: %.0f)\n", n, lo,
          hi, want);
  CU_ASSERT(lo >= want * (1 - tolerance));
  CU_ASSERT(hi <= want * (1 + tolerance));
  free(count);
}

static void test_distribution(void) {
  check_uniform(2, 0.02);
  check_uniform(4, 0.03);
  check_uniform(16, 0.05);
  check_uniform(100, 0.15); /* 1,000 a shard: 15% is ~5 sigma */
}

static void reg(void) {
  bk_suite("shard", NULL, NULL);
  bk_test("pinned values never change", test_pinned_values);
  bk_test("hash is the first 8 bytes of SHA-256", test_matches_sha256);
  bk_test("n = 1 and errors", test_one_shard_and_errors);
  bk_test("distribution over 100k keys", test_distribution);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
