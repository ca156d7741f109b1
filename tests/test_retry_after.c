#include "bk_test.h"
#include "internal.h"

#include <stdio.h>

/* 1994-11-06T08:49:37Z, the RFC's example date. */
#define T_1994 ((time_t)784111777)
/* 2015-10-21T07:28:00Z */
#define T_2015 ((time_t)1445412480)
/* 2024-01-01T00:00:00Z */
#define T_2024 ((time_t)1704067200)

#define UNTOUCHED (-42.0)

/* Parse and return the result, or UNTOUCHED when the parse failed; also
 * checks that a failed parse really left *seconds alone. */
static double parse(const char *v, time_t now) {
  double s = UNTOUCHED;
  bool ok = bulkup_parse_retry_after(v, now, &s);
  if (!ok)
    CU_ASSERT_EQUAL(s, UNTOUCHED);
  return ok ? s : UNTOUCHED;
}

static void assert_rejected(const char *v, time_t now) {
  double s = UNTOUCHED;
  CU_ASSERT_FALSE(bulkup_parse_retry_after(v, now, &s));
  CU_ASSERT_EQUAL(s, UNTOUCHED);
}

static void test_delta_seconds(void) {
  CU_ASSERT_EQUAL(parse("120", T_2024), 120.0);
  CU_ASSERT_EQUAL(parse("0", T_2024), 0.0);
  CU_ASSERT_EQUAL(parse("1", T_2024), 1.0);
  CU_ASSERT_EQUAL(parse("007", T_2024), 7.0);
  CU_ASSERT_EQUAL(parse("86400", T_2024), 86400.0);
  CU_ASSERT_EQUAL(parse("4294967296", T_2024), 4294967296.0);
  /* `now` does not matter for delta-seconds. */
  CU_ASSERT_EQUAL(parse("30", 0), 30.0);
}

static void test_whitespace(void) {
  CU_ASSERT_EQUAL(parse("  120", T_2024), 120.0);
  CU_ASSERT_EQUAL(parse("120  ", T_2024), 120.0);
  CU_ASSERT_EQUAL(parse("\t 5 \t", T_2024), 5.0);
  CU_ASSERT_EQUAL(parse("5\r\n", T_2024), 5.0);
  CU_ASSERT_EQUAL(parse("  Sun, 06 Nov 1994 08:49:37 GMT \r\n", T_1994 - 9),
                  9.0);
  assert_rejected("1 2", T_2024);
  assert_rejected("   ", T_2024);
  assert_rejected("\r\n", T_2024);
}

static void test_huge_numbers_clamp(void) {
  /* Documented choice: a huge delta is valid and clamped to 1e18 s. */
  CU_ASSERT_EQUAL(parse("1000000000000000000", T_2024), 1e18);
  CU_ASSERT_EQUAL(parse("18446744073709551616", T_2024), 1e18);
  CU_ASSERT_EQUAL(parse("99999999999999999999999999999999", T_2024), 1e18);
  char big[1001];
  memset(big, '9', 1000);
  big[1000] = '\0';
  CU_ASSERT_EQUAL(parse(big, T_2024), 1e18);
  /* Just below the clamp is exact. */
  CU_ASSERT_EQUAL(parse("100000000000000000", T_2024), 1e17);
  /* Trailing junk after a huge number is still junk. */
  big[999] = 'x';
  assert_rejected(big, T_2024);
}

static void test_imf_fixdate(void) {
  CU_ASSERT_EQUAL(parse("Sun, 06 Nov 1994 08:49:37 GMT", T_1994 - 100), 100.0);
  CU_ASSERT_EQUAL(parse("Sun, 06 Nov 1994 08:49:37 GMT", T_1994 - 1), 1.0);
  CU_ASSERT_EQUAL(parse("Wed, 21 Oct 2015 07:28:00 GMT", T_2015 - 3600),
                  3600.0);
  /* A leap day. */
  CU_ASSERT_EQUAL(parse("Thu, 29 Feb 1996 00:00:00 GMT", (time_t)825552000 - 2),
                  2.0);
  CU_ASSERT_EQUAL(parse("Tue, 29 Feb 2000 12:00:00 GMT", (time_t)951825600 - 5),
                  5.0);
  /* The weekday is not checked against the date. */
  CU_ASSERT_EQUAL(parse("Mon, 06 Nov 1994 08:49:37 GMT", T_1994 - 100), 100.0);
  /* Far future. */
  CU_ASSERT_EQUAL(parse("Fri, 31 Dec 9999 23:59:59 GMT", T_2024),
                  253402300799.0 - 1704067200.0);
}

static void test_rfc850(void) {
  CU_ASSERT_EQUAL(parse("Sunday, 06-Nov-94 08:49:37 GMT", T_1994 - 100), 100.0);
  CU_ASSERT_EQUAL(parse("Wednesday, 21-Oct-15 07:28:00 GMT", T_2015 - 60),
                  60.0);
  /* Two-digit years relative to now (2024): up to 50 years ahead is the
   * future, beyond that the past century. */
  CU_ASSERT_EQUAL(parse("Thursday, 01-Jan-70 00:00:00 GMT", T_2024),
                  3155760000.0 - 1704067200.0);
  CU_ASSERT_EQUAL(parse("Monday, 31-Dec-74 23:59:59 GMT", T_2024),
                  3313526399.0 - 1704067200.0);
  CU_ASSERT_EQUAL(parse("Wednesday, 01-Jan-75 00:00:00 GMT", T_2024), 0.0);
  CU_ASSERT_EQUAL(parse("Sunday, 06-Nov-94 08:49:37 GMT", T_2024), 0.0);
}

static void test_asctime(void) {
  CU_ASSERT_EQUAL(parse("Sun Nov  6 08:49:37 1994", T_1994 - 100), 100.0);
  CU_ASSERT_EQUAL(parse("Wed Oct 21 07:28:00 2015", T_2015 - 7), 7.0);
  /* Two-digit day in the one-digit position, and vice versa. */
  assert_rejected("Sun Nov 6 08:49:37 1994", T_1994);
  assert_rejected("Sun Nov 06 08:49:37 1994 GMT", T_1994);
  CU_ASSERT_EQUAL(parse("Sun Nov 06 08:49:37 1994", T_1994 - 3), 3.0);
}

static void test_past_and_present(void) {
  CU_ASSERT_EQUAL(parse("Sun, 06 Nov 1994 08:49:37 GMT", T_1994), 0.0);
  CU_ASSERT_EQUAL(parse("Sun, 06 Nov 1994 08:49:37 GMT", T_1994 + 1), 0.0);
  CU_ASSERT_EQUAL(parse("Sun, 06 Nov 1994 08:49:37 GMT", T_2024), 0.0);
  CU_ASSERT_EQUAL(parse("Sun Nov  6 08:49:37 1994", T_2024), 0.0);
  CU_ASSERT_EQUAL(parse("Thu, 01 Jan 1970 00:00:00 GMT", T_2024), 0.0);
  CU_ASSERT_EQUAL(parse("Wed, 31 Dec 1969 23:59:59 GMT", T_2024), 0.0);
  CU_ASSERT_EQUAL(parse("Mon, 01 Jan 1900 00:00:00 GMT", T_2024), 0.0);
}

static void test_garbage(void) {
  static const char *const bad[] = {
      "",
      "-5",
      "-0",
      "+5",
      "5x",
      "x5",
      "1.5",
      "1e3",
      "0x10",
      "5 seconds",
      "five",
      "Mon, 32 Nov 1994 08:49:37 GMT",
      "Mon, 00 Nov 1994 08:49:37 GMT",
      "Wed, 31 Nov 1994 08:49:37 GMT",
      "Sun, 29 Feb 1995 08:49:37 GMT",
      "Sun, 29 Feb 1900 08:49:37 GMT",
      "Sun, 06 Foo 1994 08:49:37 GMT",
      "Sun, 06 nov 1994 08:49:37 GMT",
      "Sun, 06 NOV 1994 08:49:37 GMT",
      "Sun, 06 November 1994 08:49:37 GMT",
      "sun, 06 Nov 1994 08:49:37 GMT",
      "Xyz, 06 Nov 1994 08:49:37 GMT",
      "Sun, 6 Nov 1994 08:49:37 GMT",
      "Sun, 06 Nov 94 08:49:37 GMT",
      "Sun, 06 Nov 1994 24:00:00 GMT",
      "Sun, 06 Nov 1994 08:60:00 GMT",
      "Sun, 06 Nov 1994 08:49:61 GMT",
      "Sun, 06 Nov 1994 8:49:37 GMT",
      "Sun, 06 Nov 1994 08:49:37 UTC",
      "Sun, 06 Nov 1994 08:49:37 gmt",
      "Sun, 06 Nov 1994 08:49:37",
      "Sun, 06 Nov 1994 08:49:37 GMT junk",
      "Sun, 06 Nov 1994 08:49:37 GMTx",
      "Sun,06 Nov 1994 08:49:37 GMT",
      "Sun,  06 Nov 1994 08:49:37 GMT",
      "Sunday, 06 Nov 1994 08:49:37 GMT",
      "Sun, 06-Nov-94 08:49:37 GMT",
      "Sunday, 06-Nov-1994 08:49:37 GMT",
      "Sunday, 06-Nov-94 08:49:37",
      "Sunday, 06-Foo-94 08:49:37 GMT",
      "Sunday, 31-Apr-94 08:49:37 GMT",
      "Sun Nov  6 08:49:37 94",
      "Sun Nov  6 08:49:37 1994 x",
      "Sun Nov 31 08:49:37 1994",
      "Sun Foo  6 08:49:37 1994",
      "Sun Nov  6 08:49 1994",
      "Sun",
      "Sun,",
      "Sunday",
      "Sun, 06 Nov 1994 08:49:37 GMT\x01",
  };
  for (size_t i = 0; i < BK_ARRAY_LEN(bad); i++) {
    double s = UNTOUCHED;
    bool ok = bulkup_parse_retry_after(bad[i], T_1994 - 100, &s);
    if (ok)
      fprintf(stderr, "accepted garbage: \"%s\"\n", bad[i]);
    CU_ASSERT_FALSE(ok);
    CU_ASSERT_EQUAL(s, UNTOUCHED);
  }
}

static void test_null_arguments(void) {
  assert_rejected(NULL, T_2024);
  CU_ASSERT_FALSE(bulkup_parse_retry_after("5", T_2024, NULL));
}

/* The parsed value feeds retry_wait; a huge server value ends at the cap. */
static void test_with_retry_wait(void) {
  bulkup_requests_settings r;
  bulkup_requests_settings_init(&r);
  bulkup_upload_policy p;
  CU_ASSERT_EQUAL(bulkup_upload_policy_merge(&p, &r, NULL, NULL), BULKUP_OK);
  double s = UNTOUCHED;
  CU_ASSERT_TRUE(bulkup_parse_retry_after("99999999999999999999", T_2024, &s));
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 1, s, 0.0), 600.0);
  CU_ASSERT_TRUE(bulkup_parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT",
                                          T_2015, &s));
  CU_ASSERT_EQUAL(s, 30.0);
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 1, s, 0.0), 30.0);
}

static void reg(void) {
  bk_suite("retry_after", NULL, NULL);
  bk_test("delta seconds", test_delta_seconds);
  bk_test("whitespace", test_whitespace);
  bk_test("huge numbers clamp", test_huge_numbers_clamp);
  bk_test("IMF-fixdate", test_imf_fixdate);
  bk_test("RFC 850", test_rfc850);
  bk_test("asctime", test_asctime);
  bk_test("past and present", test_past_and_present);
  bk_test("garbage", test_garbage);
  bk_test("NULL arguments", test_null_arguments);
  bk_test("with retry_wait", test_with_retry_wait);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
