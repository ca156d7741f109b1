#include "bk_test.h"

#include <bulkup.h>

#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static CU_pSuite bk_current_suite;

CU_pSuite bk_suite(const char *name, CU_InitializeFunc init,
                   CU_CleanupFunc clean) {
  bk_current_suite = CU_add_suite(name, init, clean);
  if (!bk_current_suite) {
    fprintf(stderr, "CU_add_suite(%s): %s\n", name, CU_get_error_msg());
    exit(2);
  }
  return bk_current_suite;
}

void bk_test(const char *name, CU_TestFunc fn) {
  if (!CU_add_test(bk_current_suite, name, fn)) {
    fprintf(stderr, "CU_add_test(%s): %s\n", name, CU_get_error_msg());
    exit(2);
  }
}

int bk_test_main(int argc, char **argv, bk_register_fn reg) {
  if (CU_initialize_registry() != CUE_SUCCESS)
    return 2;
  reg();
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_ErrorCode rc;
  if (argc > 1) {
    CU_pSuite s = CU_get_suite(argv[1]);
    if (!s) {
      fprintf(stderr, "no suite named %s\n", argv[1]);
      CU_cleanup_registry();
      return 2;
    }
    rc = CU_basic_run_suite(s);
  } else {
    rc = CU_basic_run_tests();
  }
  unsigned failed = CU_get_number_of_failures();
  unsigned tests_failed = CU_get_number_of_tests_failed();
  unsigned suites_failed = CU_get_number_of_suites_failed();
  unsigned ran = CU_get_number_of_tests_run();
  CU_cleanup_registry();
  if (rc != CUE_SUCCESS || failed || tests_failed || suites_failed || !ran) {
    fprintf(stderr, "FAILED: %u assertion(s), %u test(s), %u suite(s); %u run\n",
            failed, tests_failed, suites_failed, ran);
    return 1;
  }
  return 0;
}

char *bk_tmpdir(const char *tag) {
  const char *base = getenv("TMPDIR");
  if (!base || !*base)
    base = "/tmp";
  size_t n = strlen(base) + strlen(tag) + 32;
  char *p = malloc(n);
  if (!p)
    return NULL;
  snprintf(p, n, "%s/bulkup-%s-XXXXXX", base, tag);
  if (!mkdtemp(p)) {
    free(p);
    return NULL;
  }
  return p;
}

static int bk_rm_one(const char *path, const struct stat *sb, int flag,
                     struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

int bk_rm_rf(const char *path) {
  return nftw(path, bk_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int bk_write_file(const char *path, const void *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  const char *p = data;
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0) {
      close(fd);
      return -1;
    }
    p += w;
    len -= (size_t)w;
  }
  return close(fd);
}

void bk_fill_random(void *buf, size_t len, unsigned long long seed) {
  /* splitmix64: deterministic, fast, good enough for test data */
  unsigned char *p = buf;
  unsigned long long x = seed;
  while (len > 0) {
    x += 0x9E3779B97F4A7C15ULL;
    unsigned long long z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    size_t n = len < 8 ? len : 8;
    memcpy(p, &z, n);
    p += n;
    len -= n;
  }
}

static void bk_hex(const unsigned char *d, unsigned n, char *out) {
  static const char hx[] = "0123456789abcdef";
  for (unsigned i = 0; i < n; i++) {
    out[2 * i] = hx[d[i] >> 4];
    out[2 * i + 1] = hx[d[i] & 15];
  }
  out[2 * n] = '\0';
}

void bk_sha256_hex(const void *data, size_t len, char out[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
  bk_hex(md, n, out);
}

int bk_sha256_file_hex(const char *path, char out[65]) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return -1;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
  unsigned char buf[65536];
  size_t r;
  while ((r = fread(buf, 1, sizeof buf, f)) > 0)
    EVP_DigestUpdate(ctx, buf, r);
  int err = ferror(f);
  fclose(f);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_DigestFinal_ex(ctx, md, &n);
  EVP_MD_CTX_free(ctx);
  if (err)
    return -1;
  bk_hex(md, n, out);
  return 0;
}

void bk_test_threads(struct bulkup_uploader_options *o) {
  const char *v = getenv("BULKUP_TEST_THREADS");
  if (!v || !*v)
    return;
  char *end;
  unsigned long n = strtoul(v, &end, 10);
  if (*end || n > 1024) {
    fprintf(stderr, "BULKUP_TEST_THREADS: '%s' is not from 0 to 1024\n", v);
    exit(2);
  }
  o->threads = (unsigned)n;
}
