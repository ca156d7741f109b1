#include "bk_test.h"
#include "internal.h"

#include <stdio.h>

static void test_version_matches_headers(void) {
  CU_ASSERT_EQUAL(bulkup_version(), (unsigned)BULKUP_VERSION_HEX);
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", BULKUP_VERSION_MAJOR,
           BULKUP_VERSION_MINOR, BULKUP_VERSION_PATCH);
  CU_ASSERT_STRING_EQUAL(bulkup_version_string(), want);
  CU_ASSERT_STRING_EQUAL(BULKUP_VERSION_STRING, want);
}

static void test_strerror_table(void) {
  CU_ASSERT_STRING_EQUAL(bulkup_strerror(BULKUP_OK), "success");
  CU_ASSERT_STRING_EQUAL(bulkup_strerror(BULKUP_EINVAL), "invalid argument");
  CU_ASSERT_STRING_EQUAL(bulkup_err_name(BULKUP_ENOMEM), "ENOMEM");
  CU_ASSERT_STRING_EQUAL(bulkup_strerror(12345), "unknown error");
  CU_ASSERT_STRING_EQUAL(bulkup_err_name(-9999), "UNKNOWN");
  /* Every code from -1 down to the last is named, negative and distinct. */
  for (int e = -1; e >= BULKUP__ERR_MIN; e--) {
    CU_ASSERT_STRING_NOT_EQUAL(bulkup_strerror(e), "unknown error");
    CU_ASSERT_STRING_NOT_EQUAL(bulkup_err_name(e), "UNKNOWN");
  }
  CU_ASSERT_STRING_EQUAL(bulkup_strerror(BULKUP__ERR_MIN - 1), "unknown error");
}

static void test_last_error_is_thread_local_text(void) {
  CU_ASSERT_EQUAL(bk_error(BULKUP_EPARSE, "element %d bad", 3), BULKUP_EPARSE);
  CU_ASSERT_STRING_EQUAL(bulkup_last_error_message(), "element 3 bad");
}

static void test_alloc_failure_hook(void) {
  bk_alloc_fail_after(1);
  void *a = bk_malloc(10);
  void *b = bk_malloc(10);
  CU_ASSERT_PTR_NOT_NULL(a);
  CU_ASSERT_PTR_NULL(b);
  CU_ASSERT_PTR_NULL(bk_strdup("x"));
  long n = bk_alloc_fail_after(-1);
  CU_ASSERT_EQUAL(n, 3);
  void *c = bk_malloc(10);
  CU_ASSERT_PTR_NOT_NULL(c);
  bk_free(a);
  bk_free(c);
}

static void reg(void) {
  bk_suite("version", NULL, NULL);
  bk_test("version matches headers", test_version_matches_headers);
  bk_test("strerror table", test_strerror_table);
  bk_test("last error message", test_last_error_is_thread_local_text);
  bk_test("allocation failure hook", test_alloc_failure_hook);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
