#include "bk_test.h"
#include "internal.h"

#include <float.h>
#include <limits.h>
#include <math.h>

/* Set the thread's error text to a sentinel so a test can tell whether a
 * call wrote it. */
static void clear_error(void) { bk_error(BULKUP_OK, "%s", "sentinel"); }

/* --- defaults ------------------------------------------------------------ */

static void test_requests_defaults(void) {
  bulkup_requests_settings s;
  memset(&s, 0xA5, sizeof s);
  bulkup_requests_settings_init(&s);
  CU_ASSERT_EQUAL(s.max_retries, 3);
  CU_ASSERT_EQUAL(s.backoff_factor, 1.5);
  CU_ASSERT_EQUAL(s.connection_retries, 3);
  CU_ASSERT_EQUAL(s.connect_timeout, 180.0);
  CU_ASSERT_EQUAL(s.read_timeout, 180.0);
  CU_ASSERT_EQUAL(s.write_timeout, 180.0);
  CU_ASSERT_EQUAL(bulkup_requests_settings_validate(&s), BULKUP_OK);
}

static void test_cloud_defaults(void) {
  bulkup_cloud_upload_settings c;
  memset(&c, 0xA5, sizeof c);
  bulkup_cloud_upload_settings_init(&c);
  CU_ASSERT_FALSE(c.max_retries_set);
  CU_ASSERT_FALSE(c.backoff_factor_set);
  CU_ASSERT_FALSE(c.allow_failures);
  CU_ASSERT_EQUAL(bulkup_cloud_upload_settings_validate(&c), BULKUP_OK);

  bulkup_cloud_upload_settings_set_max_retries(&c, 7);
  CU_ASSERT_TRUE(c.max_retries_set);
  CU_ASSERT_EQUAL(c.max_retries, 7);
  CU_ASSERT_FALSE(c.backoff_factor_set);
  bulkup_cloud_upload_settings_set_backoff_factor(&c, 0.25);
  CU_ASSERT_TRUE(c.backoff_factor_set);
  CU_ASSERT_EQUAL(c.backoff_factor, 0.25);
}

static void test_backoff_defaults(void) {
  bulkup_backoff_settings b;
  memset(&b, 0xA5, sizeof b);
  bulkup_backoff_settings_init(&b);
  CU_ASSERT_EQUAL(b.max_delay, 120.0);
  CU_ASSERT_EQUAL(b.retry_after_max, 600.0);
  CU_ASSERT_FALSE(b.jitter);
}

/* --- validation ---------------------------------------------------------- */

/* Field offsets in bulkup_requests_settings for the table-driven tests. */
static void set_requests_double(bulkup_requests_settings *s, int which,
                                double v) {
  switch (which) {
  case 0: s->backoff_factor = v; break;
  case 1: s->connect_timeout = v; break;
  case 2: s->read_timeout = v; break;
  default: s->write_timeout = v; break;
  }
}

static void test_requests_validate_doubles(void) {
  static const char *const names[4] = {
      "requests.backoff_factor must be a finite number >= 0",
      "requests.connect_timeout must be a finite number >= 0",
      "requests.read_timeout must be a finite number >= 0",
      "requests.write_timeout must be a finite number >= 0"};
  const double bad[] = {-1.0, -0.001, NAN, INFINITY, -INFINITY};
  for (int f = 0; f < 4; f++) {
    for (size_t k = 0; k < BK_ARRAY_LEN(bad); k++) {
      bulkup_requests_settings s;
      bulkup_requests_settings_init(&s);
      set_requests_double(&s, f, bad[k]);
      clear_error();
      CU_ASSERT_EQUAL(bulkup_requests_settings_validate(&s), BULKUP_EINVAL);
      CU_ASSERT_STRING_EQUAL(bulkup_last_error_message(), names[f]);
    }
    /* 0 is valid (no limit / no wait), and so is a large finite value. */
    bulkup_requests_settings s;
    bulkup_requests_settings_init(&s);
    set_requests_double(&s, f, 0.0);
    CU_ASSERT_EQUAL(bulkup_requests_settings_validate(&s), BULKUP_OK);
    set_requests_double(&s, f, DBL_MAX);
    CU_ASSERT_EQUAL(bulkup_requests_settings_validate(&s), BULKUP_OK);
  }
}

static void test_requests_validate_counts(void) {
  bulkup_requests_settings s;
  bulkup_requests_settings_init(&s);
  s.max_retries = -1;
  clear_error();
  CU_ASSERT_EQUAL(bulkup_requests_settings_validate(&s), BULKUP_EINVAL);
  CU_ASSERT_STRING_EQUAL(bulkup_last_error_message(),
                         "requests.max_retries must be >= 0");
  s.max_retries = INT_MIN;
  CU_ASSERT_EQUAL(bulkup_requests_settings_validate(&s), BULKUP_EINVAL);
  s.max_retries = 0;
  CU_ASSERT_EQUAL(bulkup_requests_settings_validate(&s), BULKUP_OK);

  s.connection_retries = -1;
  clear_error();
  CU_ASSERT_EQUAL(bulkup_requests_settings_validate(&s), BULKUP_EINVAL);
  CU_ASSERT_STRING_EQUAL(bulkup_last_error_message(),
                         "requests.connection_retries must be >= 0");
  s.connection_retries = 0;
  CU_ASSERT_EQUAL(bulkup_requests_settings_validate(&s), BULKUP_OK);
  s.connection_retries = INT_MAX;
  s.max_retries = INT_MAX;
  CU_ASSERT_EQUAL(bulkup_requests_settings_validate(&s), BULKUP_OK);

  CU_ASSERT_EQUAL(bulkup_requests_settings_validate(NULL), BULKUP_EINVAL);
}

static void test_cloud_validate(void) {
  bulkup_cloud_upload_settings c;
  bulkup_cloud_upload_settings_init(&c);
  /* Unset fields are not checked, whatever they hold. */
  c.max_retries = -5;
  c.backoff_factor = NAN;
  CU_ASSERT_EQUAL(bulkup_cloud_upload_settings_validate(&c), BULKUP_OK);

  bulkup_cloud_upload_settings_set_max_retries(&c, -1);
  clear_error();
  CU_ASSERT_EQUAL(bulkup_cloud_upload_settings_validate(&c), BULKUP_EINVAL);
  CU_ASSERT_STRING_EQUAL(bulkup_last_error_message(),
                         "cloud.max_retries must be >= 0");
  bulkup_cloud_upload_settings_set_max_retries(&c, 0);
  CU_ASSERT_EQUAL(bulkup_cloud_upload_settings_validate(&c), BULKUP_OK);

  const double bad[] = {-0.5, NAN, INFINITY, -INFINITY};
  for (size_t k = 0; k < BK_ARRAY_LEN(bad); k++) {
    bulkup_cloud_upload_settings_set_backoff_factor(&c, bad[k]);
    clear_error();
    CU_ASSERT_EQUAL(bulkup_cloud_upload_settings_validate(&c), BULKUP_EINVAL);
    CU_ASSERT_STRING_EQUAL(bulkup_last_error_message(),
                           "cloud.backoff_factor must be a finite number >= 0");
  }
  bulkup_cloud_upload_settings_set_backoff_factor(&c, 0.0);
  CU_ASSERT_EQUAL(bulkup_cloud_upload_settings_validate(&c), BULKUP_OK);
  CU_ASSERT_EQUAL(bulkup_cloud_upload_settings_validate(NULL), BULKUP_EINVAL);
}

/* --- merge --------------------------------------------------------------- */

static bulkup_upload_policy sentinel_policy(void) {
  bulkup_upload_policy p;
  memset(&p, 0, sizeof p);
  p.max_retries = 4242;
  p.backoff_factor = 42.5;
  p.connection_retries = 4343;
  p.allow_failures = true;
  p.backoff.max_delay = 99.0;
  return p;
}

static void test_merge_unset_falls_back(void) {
  bulkup_requests_settings r;
  bulkup_requests_settings_init(&r);
  r.max_retries = 5;
  r.backoff_factor = 2.5;
  r.connection_retries = 6;
  r.connect_timeout = 10.5;
  r.read_timeout = 20.25;
  r.write_timeout = 30.125;
  bulkup_cloud_upload_settings c;
  bulkup_cloud_upload_settings_init(&c);
  c.max_retries = 99;     /* ignored: not set */
  c.backoff_factor = 9.0; /* ignored: not set */
  bulkup_backoff_settings b;
  bulkup_backoff_settings_init(&b);
  b.max_delay = 30.0;
  b.retry_after_max = 45.0;
  b.jitter = true;

  bulkup_upload_policy p = sentinel_policy();
  CU_ASSERT_EQUAL(bulkup_upload_policy_merge(&p, &r, &c, &b), BULKUP_OK);
  CU_ASSERT_EQUAL(p.max_retries, 5);
  CU_ASSERT_EQUAL(p.backoff_factor, 2.5);
  CU_ASSERT_EQUAL(p.connection_retries, 6);
  CU_ASSERT_EQUAL(p.connect_timeout, 10.5);
  CU_ASSERT_EQUAL(p.read_timeout, 20.25);
  CU_ASSERT_EQUAL(p.write_timeout, 30.125);
  CU_ASSERT_FALSE(p.allow_failures);
  CU_ASSERT_EQUAL(p.backoff.max_delay, 30.0);
  CU_ASSERT_EQUAL(p.backoff.retry_after_max, 45.0);
  CU_ASSERT_TRUE(p.backoff.jitter);
}

static void test_merge_override_and_explicit_zero(void) {
  bulkup_requests_settings r;
  bulkup_requests_settings_init(&r);
  bulkup_cloud_upload_settings c;
  bulkup_cloud_upload_settings_init(&c);
  bulkup_cloud_upload_settings_set_max_retries(&c, 0);
  bulkup_cloud_upload_settings_set_backoff_factor(&c, 0.0);
  c.allow_failures = true;

  bulkup_upload_policy p = sentinel_policy();
  CU_ASSERT_EQUAL(bulkup_upload_policy_merge(&p, &r, &c, NULL), BULKUP_OK);
  /* The SDK's `or` would give 3 and 1.5 here. */
  CU_ASSERT_EQUAL(p.max_retries, 0);
  CU_ASSERT_EQUAL(p.backoff_factor, 0.0);
  CU_ASSERT_TRUE(p.allow_failures);
  CU_ASSERT_EQUAL(p.connection_retries, 3);

  bulkup_cloud_upload_settings_set_max_retries(&c, 11);
  bulkup_cloud_upload_settings_set_backoff_factor(&c, 0.75);
  CU_ASSERT_EQUAL(bulkup_upload_policy_merge(&p, &r, &c, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(p.max_retries, 11);
  CU_ASSERT_EQUAL(p.backoff_factor, 0.75);

  /* Only one of the two overridden. */
  bulkup_cloud_upload_settings_init(&c);
  bulkup_cloud_upload_settings_set_backoff_factor(&c, 0.0);
  CU_ASSERT_EQUAL(bulkup_upload_policy_merge(&p, &r, &c, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(p.max_retries, 3);
  CU_ASSERT_EQUAL(p.backoff_factor, 0.0);
}

static void test_merge_null_cloud_and_backoff(void) {
  bulkup_requests_settings r;
  bulkup_requests_settings_init(&r);
  r.max_retries = 8;
  bulkup_upload_policy p = sentinel_policy();
  CU_ASSERT_EQUAL(bulkup_upload_policy_merge(&p, &r, NULL, NULL), BULKUP_OK);
  CU_ASSERT_EQUAL(p.max_retries, 8);
  CU_ASSERT_EQUAL(p.backoff_factor, 1.5);
  CU_ASSERT_EQUAL(p.connection_retries, 3);
  CU_ASSERT_EQUAL(p.connect_timeout, 180.0);
  CU_ASSERT_EQUAL(p.read_timeout, 180.0);
  CU_ASSERT_EQUAL(p.write_timeout, 180.0);
  CU_ASSERT_FALSE(p.allow_failures);
  CU_ASSERT_EQUAL(p.backoff.max_delay, BULKUP_DEFAULT_BACKOFF_MAX);
  CU_ASSERT_EQUAL(p.backoff.retry_after_max, BULKUP_DEFAULT_RETRY_AFTER_MAX);
  CU_ASSERT_FALSE(p.backoff.jitter);
}

static void assert_untouched(const bulkup_upload_policy *p) {
  /* Field by field: a struct copy need not preserve padding bytes. */
  CU_ASSERT_EQUAL(p->max_retries, 4242);
  CU_ASSERT_EQUAL(p->backoff_factor, 42.5);
  CU_ASSERT_EQUAL(p->connection_retries, 4343);
  CU_ASSERT_EQUAL(p->connect_timeout, 0.0);
  CU_ASSERT_EQUAL(p->read_timeout, 0.0);
  CU_ASSERT_EQUAL(p->write_timeout, 0.0);
  CU_ASSERT_TRUE(p->allow_failures);
  CU_ASSERT_EQUAL(p->backoff.max_delay, 99.0);
  CU_ASSERT_EQUAL(p->backoff.retry_after_max, 0.0);
  CU_ASSERT_FALSE(p->backoff.jitter);
}

static void test_merge_errors_leave_out_untouched(void) {
  bulkup_requests_settings r;
  bulkup_cloud_upload_settings c;
  bulkup_backoff_settings b;
  bulkup_upload_policy p = sentinel_policy();

  bulkup_requests_settings_init(&r);
  CU_ASSERT_EQUAL(bulkup_upload_policy_merge(&p, NULL, NULL, NULL),
                  BULKUP_EINVAL);
  assert_untouched(&p);
  CU_ASSERT_EQUAL(bulkup_upload_policy_merge(NULL, &r, NULL, NULL),
                  BULKUP_EINVAL);

  r.read_timeout = -1.0;
  clear_error();
  CU_ASSERT_EQUAL(bulkup_upload_policy_merge(&p, &r, NULL, NULL),
                  BULKUP_EINVAL);
  CU_ASSERT_STRING_EQUAL(bulkup_last_error_message(),
                         "requests.read_timeout must be a finite number >= 0");
  assert_untouched(&p);

  bulkup_requests_settings_init(&r);
  bulkup_cloud_upload_settings_init(&c);
  bulkup_cloud_upload_settings_set_max_retries(&c, -2);
  clear_error();
  CU_ASSERT_EQUAL(bulkup_upload_policy_merge(&p, &r, &c, NULL), BULKUP_EINVAL);
  CU_ASSERT_STRING_EQUAL(bulkup_last_error_message(),
                         "cloud.max_retries must be >= 0");
  assert_untouched(&p);

  const double bad[] = {-1.0, NAN, INFINITY};
  for (size_t k = 0; k < BK_ARRAY_LEN(bad); k++) {
    bulkup_backoff_settings_init(&b);
    b.max_delay = bad[k];
    clear_error();
    CU_ASSERT_EQUAL(bulkup_upload_policy_merge(&p, &r, NULL, &b),
                    BULKUP_EINVAL);
    CU_ASSERT_STRING_EQUAL(bulkup_last_error_message(),
                           "backoff.max_delay must be a finite number >= 0");
    assert_untouched(&p);

    bulkup_backoff_settings_init(&b);
    b.retry_after_max = bad[k];
    clear_error();
    CU_ASSERT_EQUAL(bulkup_upload_policy_merge(&p, &r, NULL, &b),
                    BULKUP_EINVAL);
    CU_ASSERT_STRING_EQUAL(
        bulkup_last_error_message(),
        "backoff.retry_after_max must be a finite number >= 0");
    assert_untouched(&p);
  }

  /* max_delay 0 ("no cap") is valid. */
  bulkup_backoff_settings_init(&b);
  b.max_delay = 0.0;
  CU_ASSERT_EQUAL(bulkup_upload_policy_merge(&p, &r, NULL, &b), BULKUP_OK);
  CU_ASSERT_EQUAL(p.backoff.max_delay, 0.0);
}

/* --- backoff ------------------------------------------------------------- */

static void test_backoff_formula(void) {
  /* The seed's formula, no cap: 1.5 * 2^(n-1). */
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.5, 0, 0.0), 0.0);
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.5, 1, 0.0), 1.5);
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.5, 2, 0.0), 3.0);
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.5, 3, 0.0), 6.0);
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.5, 4, 0.0), 12.0);
  CU_ASSERT_EQUAL(bulkup_backoff_delay(0.1, 1, 0.0), 0.1);
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.0, 11, 0.0), 1024.0);
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.0, 64, 0.0), 9223372036854775808.0);
  /* A negative cap also means "no cap". */
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.5, 4, -1.0), 12.0);
}

static void test_backoff_cap(void) {
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.5, 1, 120.0), 1.5);
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.5, 7, 120.0), 96.0);
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.5, 8, 120.0), 120.0); /* 192 */
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.5, 9, 120.0), 120.0);
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.0, 3, 4.0), 4.0); /* exactly */
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.0, 3, 3.999), 3.999);
  /* Retry 0 stays 0 under a cap. */
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.5, 0, 120.0), 0.0);
}

static void test_backoff_huge_retry(void) {
  /* Capped: exactly the cap, never inf or NaN. */
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.5, 1000, 120.0), 120.0);
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.5, 1024, 120.0), 120.0);
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.5, 2101, 120.0), 120.0);
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.5, UINT_MAX, 120.0), 120.0);
  CU_ASSERT_EQUAL(bulkup_backoff_delay(DBL_MIN, UINT_MAX, 120.0), 120.0);
  CU_ASSERT_EQUAL(bulkup_backoff_delay(4.9e-324, UINT_MAX, 7.0), 7.0);
  /* Uncapped: +inf, not a wrapped or negative number. */
  /* Retry 1000 is still finite: 1.5 * 2^999 ~ 8e300. */
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.5, 1000, 0.0), ldexp(1.5, 999));
  double d = bulkup_backoff_delay(1.5, 1100, 0.0);
  CU_ASSERT_TRUE(isinf(d) && d > 0);
  d = bulkup_backoff_delay(1.5, UINT_MAX, 0.0);
  CU_ASSERT_TRUE(isinf(d) && d > 0);
  d = bulkup_backoff_delay(4.9e-324, UINT_MAX, 0.0);
  CU_ASSERT_TRUE(isinf(d) && d > 0);
  /* The largest exponent that is still finite for factor 1. */
  CU_ASSERT_EQUAL(bulkup_backoff_delay(1.0, 1024, 0.0), ldexp(1.0, 1023));
  CU_ASSERT_TRUE(isfinite(bulkup_backoff_delay(1.0, 1024, 0.0)));
  CU_ASSERT_TRUE(isinf(bulkup_backoff_delay(1.0, 1025, 0.0)));
}

static void test_backoff_zero_factor(void) {
  CU_ASSERT_EQUAL(bulkup_backoff_delay(0.0, 1, 120.0), 0.0);
  CU_ASSERT_EQUAL(bulkup_backoff_delay(0.0, 5, 0.0), 0.0);
  CU_ASSERT_EQUAL(bulkup_backoff_delay(0.0, UINT_MAX, 0.0), 0.0);
  /* Not produced by a validated policy, but must not give NaN/negative. */
  CU_ASSERT_EQUAL(bulkup_backoff_delay(-1.0, 3, 0.0), 0.0);
  CU_ASSERT_EQUAL(bulkup_backoff_delay(NAN, 3, 0.0), 0.0);
}

static void test_backoff_jitter(void) {
  /* retry 3, factor 1.5: 6 s uncapped. */
  CU_ASSERT_EQUAL(bulkup_backoff_full_jitter(1.5, 3, 120.0, 0.0), 0.0);
  CU_ASSERT_EQUAL(bulkup_backoff_full_jitter(1.5, 3, 120.0, 0.5), 3.0);
  CU_ASSERT_DOUBLE_EQUAL(bulkup_backoff_full_jitter(1.5, 3, 120.0, 0.999),
                         5.994, 1e-12);
  /* Jitter applies to the capped value: uniform(0, min(cap, base*2^n)). */
  CU_ASSERT_EQUAL(bulkup_backoff_full_jitter(1.5, 20, 120.0, 0.5), 60.0);
  CU_ASSERT_EQUAL(bulkup_backoff_full_jitter(1.5, UINT_MAX, 120.0, 0.25),
                  30.0);
  /* Clamping u to [0, 1]. */
  CU_ASSERT_EQUAL(bulkup_backoff_full_jitter(1.5, 3, 120.0, -0.5), 0.0);
  CU_ASSERT_EQUAL(bulkup_backoff_full_jitter(1.5, 3, 120.0, 1.0), 6.0);
  CU_ASSERT_EQUAL(bulkup_backoff_full_jitter(1.5, 3, 120.0, 7.0), 6.0);
  CU_ASSERT_EQUAL(bulkup_backoff_full_jitter(1.5, 3, 120.0, NAN), 0.0);
  CU_ASSERT_EQUAL(bulkup_backoff_full_jitter(1.5, 3, 120.0, INFINITY), 6.0);
  /* u = 0 with an infinite uncapped delay is 0, not NaN. */
  CU_ASSERT_EQUAL(bulkup_backoff_full_jitter(1.5, UINT_MAX, 0.0, 0.0), 0.0);
  CU_ASSERT_EQUAL(bulkup_backoff_full_jitter(1.5, 0, 120.0, 0.5), 0.0);
  CU_ASSERT_EQUAL(bulkup_backoff_full_jitter(0.0, 3, 120.0, 0.5), 0.0);
}

/* --- retry_wait ---------------------------------------------------------- */

static bulkup_upload_policy default_policy(void) {
  bulkup_requests_settings r;
  bulkup_requests_settings_init(&r);
  bulkup_upload_policy p;
  bulkup_err rc = bulkup_upload_policy_merge(&p, &r, NULL, NULL);
  CU_ASSERT_EQUAL(rc, BULKUP_OK);
  return p;
}

static void test_retry_wait_backoff_only(void) {
  bulkup_upload_policy p = default_policy();
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 0, -1.0, 0.5), 0.0);
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 1, -1.0, 0.5), 1.5);
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 3, -1.0, 0.5), 6.0);
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 8, -1.0, 0.5), 120.0);
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, UINT_MAX, -1.0, 0.5), 120.0);
  /* NaN Retry-After is "none". */
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 3, NAN, 0.5), 6.0);
  CU_ASSERT_EQUAL(bulkup_retry_wait(NULL, 3, 10.0, 0.5), 0.0);
}

static void test_retry_wait_max_rule(void) {
  bulkup_upload_policy p = default_policy();
  /* Retry-After larger than the backoff wins. */
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 1, 10.0, 0.5), 10.0);
  /* Smaller: the backoff wins. */
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 3, 2.0, 0.5), 6.0);
  /* Equal. */
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 3, 6.0, 0.5), 6.0);
  /* Retry-After 0 does not shorten the backoff. */
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 2, 0.0, 0.5), 3.0);
  /* Retry-After applies even before the first retry's backoff. */
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 0, 4.0, 0.5), 4.0);
}

static void test_retry_wait_retry_after_cap(void) {
  bulkup_upload_policy p = default_policy();
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 1, 599.0, 0.5), 599.0);
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 1, 600.0, 0.5), 600.0);
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 1, 3600.0, 0.5), 600.0);
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 1, 1e18, 0.5), 600.0);
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 1, INFINITY, 0.5), 600.0);

  p.backoff.retry_after_max = 5.0;
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 1, 60.0, 0.5), 5.0);
  /* The cap never shortens the backoff itself. */
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 4, 60.0, 0.5), 12.0);
  /* retry_after_max 0: Retry-After is honoured for 0 s. */
  p.backoff.retry_after_max = 0.0;
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 1, 60.0, 0.5), 1.5);
}

static void test_retry_wait_jitter(void) {
  bulkup_upload_policy p = default_policy();
  p.backoff.jitter = true;
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 3, -1.0, 0.5), 3.0);
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 3, -1.0, 0.0), 0.0);
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 10, -1.0, 0.25), 30.0);
  /* Retry-After is not jittered, and still the floor. */
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 3, 5.0, 0.5), 5.0);
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 3, 1.0, 0.5), 3.0);
  /* Without jitter u is ignored. */
  p.backoff.jitter = false;
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 3, -1.0, 0.0), 6.0);
  /* Zero factor: only Retry-After matters. */
  p.backoff_factor = 0.0;
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 3, -1.0, 0.5), 0.0);
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 3, 7.0, 0.5), 7.0);
  /* No backoff cap. */
  p.backoff_factor = 1.5;
  p.backoff.max_delay = 0.0;
  CU_ASSERT_EQUAL(bulkup_retry_wait(&p, 9, -1.0, 0.5), 384.0);
}

static void reg(void) {
  bk_suite("settings", NULL, NULL);
  bk_test("requests defaults", test_requests_defaults);
  bk_test("cloud defaults and setters", test_cloud_defaults);
  bk_test("backoff defaults", test_backoff_defaults);
  bk_test("requests validate doubles", test_requests_validate_doubles);
  bk_test("requests validate counts", test_requests_validate_counts);
  bk_test("cloud validate", test_cloud_validate);
  bk_suite("merge", NULL, NULL);
  bk_test("unset falls back", test_merge_unset_falls_back);
  bk_test("override, explicit zero", test_merge_override_and_explicit_zero);
  bk_test("NULL cloud and backoff", test_merge_null_cloud_and_backoff);
  bk_test("errors leave out untouched", test_merge_errors_leave_out_untouched);
  bk_suite("backoff", NULL, NULL);
  bk_test("formula", test_backoff_formula);
  bk_test("cap", test_backoff_cap);
  bk_test("huge retry", test_backoff_huge_retry);
  bk_test("zero factor", test_backoff_zero_factor);
  bk_test("full jitter", test_backoff_jitter);
  bk_suite("retry_wait", NULL, NULL);
  bk_test("backoff only", test_retry_wait_backoff_only);
  bk_test("max rule", test_retry_wait_max_rule);
  bk_test("Retry-After cap", test_retry_wait_retry_after_cap);
  bk_test("jitter", test_retry_wait_jitter);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
