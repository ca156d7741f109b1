/*
 * settings.c - the seed's settings, their validation and merge, and the
 * backoff and Retry-After arithmetic.
 *
 * Everything here is pure (no globals, no clock reads): the caller passes
 * `now` and the random number for jitter, so that the tests can pin them.
 */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <time.h>

/* --- init ---------------------------------------------------------------- */

void bulkup_requests_settings_init(bulkup_requests_settings *s) {
  if (!s)
    return;
  s->max_retries = BULKUP_DEFAULT_MAX_RETRIES;
  s->backoff_factor = BULKUP_DEFAULT_BACKOFF_FACTOR;
  s->connection_retries = BULKUP_DEFAULT_CONNECTION_RETRIES;
  s->connect_timeout = BULKUP_DEFAULT_CONNECT_TIMEOUT;
  s->read_timeout = BULKUP_DEFAULT_READ_TIMEOUT;
  s->write_timeout = BULKUP_DEFAULT_WRITE_TIMEOUT;
}

void bulkup_cloud_upload_settings_init(bulkup_cloud_upload_settings *s) {
  if (!s)
    return;
  s->max_retries_set = false;
  s->max_retries = 0;
  s->backoff_factor_set = false;
  s->backoff_factor = 0.0;
  s->allow_failures = false;
}

void bulkup_cloud_upload_settings_set_max_retries(
    bulkup_cloud_upload_settings *s, int max_retries) {
  if (!s)
    return;
  s->max_retries = max_retries;
  s->max_retries_set = true;
}

void bulkup_cloud_upload_settings_set_backoff_factor(
    bulkup_cloud_upload_settings *s, double backoff_factor) {
  if (!s)
    return;
  s->backoff_factor = backoff_factor;
  s->backoff_factor_set = true;
}

void bulkup_backoff_settings_init(bulkup_backoff_settings *s) {
  if (!s)
    return;
  s->max_delay = BULKUP_DEFAULT_BACKOFF_MAX;
  s->retry_after_max = BULKUP_DEFAULT_RETRY_AFTER_MAX;
  s->jitter = false;
}

/* --- validation ---------------------------------------------------------- */

static bulkup_err bk_check_count(const char *field, int v) {
  if (v < 0)
    return bk_error(BULKUP_EINVAL, "%s must be >= 0", field);
  return BULKUP_OK;
}

static bulkup_err bk_check_seconds(const char *field, double v) {
  /* isfinite() rejects NaN and both infinities; then the sign. */
  if (!isfinite(v) || v < 0.0)
    return bk_error(BULKUP_EINVAL, "%s must be a finite number >= 0", field);
  return BULKUP_OK;
}

bulkup_err bulkup_requests_settings_validate(const bulkup_requests_settings *s) {
  bulkup_err rc;
  if (!s)
    return bk_error(BULKUP_EINVAL, "requests settings must not be NULL");
  if ((rc = bk_check_count("requests.max_retries", s->max_retries)) ||
      (rc = bk_check_seconds("requests.backoff_factor", s->backoff_factor)) ||
      (rc = bk_check_count("requests.connection_retries",
                           s->connection_retries)) ||
      (rc = bk_check_seconds("requests.connect_timeout", s->connect_timeout)) ||
      (rc = bk_check_seconds("requests.read_timeout", s->read_timeout)) ||
      (rc = bk_check_seconds("requests.write_timeout", s->write_timeout)))
    return rc;
  return BULKUP_OK;
}

bulkup_err
bulkup_cloud_upload_settings_validate(const bulkup_cloud_upload_settings *s) {
  bulkup_err rc;
  if (!s)
    return bk_error(BULKUP_EINVAL, "cloud upload settings must not be NULL");
  if (s->max_retries_set &&
      (rc = bk_check_count("cloud.max_retries", s->max_retries)))
    return rc;
  if (s->backoff_factor_set &&
      (rc = bk_check_seconds("cloud.backoff_factor", s->backoff_factor)))
    return rc;
  return BULKUP_OK;
}

/* Not public (the header has no validate for backoff settings); used by
 * the merge. max_delay 0 means "no cap" for the backoff; retry_after_max 0
 * means a Retry-After is honoured for 0 seconds, i.e. ignored. */
bulkup_err bulkup_backoff_settings_validate(const bulkup_backoff_settings *s) {
  bulkup_err rc;
  if ((rc = bk_check_seconds("backoff.max_delay", s->max_delay)) ||
      (rc = bk_check_seconds("backoff.retry_after_max", s->retry_after_max)))
    return rc;
  return BULKUP_OK;
}

bulkup_err bulkup_upload_policy_merge(bulkup_upload_policy *out,
                                      const bulkup_requests_settings *requests,
                                      const bulkup_cloud_upload_settings *cloud,
                                      const bulkup_backoff_settings *backoff) {
  bulkup_err rc;
  if (!out)
    return bk_error(BULKUP_EINVAL, "policy output must not be NULL");
  if (!requests)
    return bk_error(BULKUP_EINVAL, "requests settings must not be NULL");
  if ((rc = bulkup_requests_settings_validate(requests)))
    return rc;
  if (cloud && (rc = bulkup_cloud_upload_settings_validate(cloud)))
    return rc;

  bulkup_backoff_settings bo;
  if (backoff)
    bo = *backoff;
  else
    bulkup_backoff_settings_init(&bo);
  if ((rc = bulkup_backoff_settings_validate(&bo)))
    return rc;

  /* Build in a local so that *out is untouched on every error path. An
   * unset override falls back; a set one wins even when it is 0 (the SDK's
   * `cloud.max_retries or requests.max_retries` is deliberately not
   * copied). */
  bulkup_upload_policy p;
  p.max_retries = (cloud && cloud->max_retries_set) ? cloud->max_retries
                                                    : requests->max_retries;
  p.backoff_factor = (cloud && cloud->backoff_factor_set)
                         ? cloud->backoff_factor
                         : requests->backoff_factor;
  p.connection_retries = requests->connection_retries;
  p.connect_timeout = requests->connect_timeout;
  p.read_timeout = requests->read_timeout;
  p.write_timeout = requests->write_timeout;
  p.allow_failures = cloud ? cloud->allow_failures : false;
  p.backoff = bo;
  *out = p;
  return BULKUP_OK;
}

/* --- backoff ------------------------------------------------------------- */

/* 2^2100 times the smallest positive double (2^-1074) is still above
 * DBL_MAX (~2^1024), so clamping the exponent here changes no finite
 * result: any positive factor already overflows to +inf. It keeps the
 * unsigned-to-int conversion for ldexp in range. */
#define BK_BACKOFF_MAX_EXP 2100u

double bulkup_backoff_delay(double backoff_factor, unsigned int retry,
                            double max_delay) {
  /* !(x > 0) also catches NaN. */
  if (retry == 0 || !(backoff_factor > 0.0))
    return 0.0;
  unsigned int e = retry - 1;
  if (e > BK_BACKOFF_MAX_EXP)
    e = BK_BACKOFF_MAX_EXP;
  double d = ldexp(backoff_factor, (int)e); /* +inf on overflow, no UB */
  if (max_delay > 0.0 && d > max_delay)
    d = max_delay;
  return d;
}

double bulkup_backoff_full_jitter(double backoff_factor, unsigned int retry,
                                  double max_delay, double u) {
  if (!(u > 0.0)) /* negative, zero or NaN */
    return 0.0;   /* also avoids 0 * inf = NaN when uncapped */
  if (u > 1.0)
    u = 1.0;
  return u * bulkup_backoff_delay(backoff_factor, retry, max_delay);
}

double bulkup_retry_wait(const bulkup_upload_policy *policy, unsigned int retry,
                         double retry_after, double u) {
  if (!policy)
    return 0.0;
  const bulkup_backoff_settings *b = &policy->backoff;
  double wait =
      b->jitter ? bulkup_backoff_full_jitter(policy->backoff_factor, retry,
                                             b->max_delay, u)
                : bulkup_backoff_delay(policy->backoff_factor, retry,
                                       b->max_delay);
  /* retry_after >= 0 is false for negatives and NaN: "none sent". */
  if (retry_after >= 0.0) {
    double ra = retry_after;
    double cap = b->retry_after_max > 0.0 ? b->retry_after_max : 0.0;
    if (ra > cap)
      ra = cap;
    if (ra > wait)
      wait = ra;
  }
  return wait;
}

/* --- Retry-After --------------------------------------------------------- */

/*
 * Delta-seconds beyond this are clamped to it rather than rejected: a
 * server asking for an absurdly long wait is still telling us to back off,
 * and bulkup_retry_wait caps it at retry_after_max anyway. Clamping also
 * means a string of thousands of digits cannot overflow to +inf. 1e18 s
 * is about 3e10 years.
 */
#define BK_RETRY_AFTER_CLAMP 1e18

static bool bk_is_ows(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool bk_is_digit(char c) { return c >= '0' && c <= '9'; }

/* Parse exactly n digits at *p; advances *p. */
static bool bk_digits(const char **p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    char c = (*p)[i];
    if (!bk_is_digit(c))
      return false;
    v = v * 10 + (c - '0');
  }
  *p += n;
  *out = v;
  return true;
}

static bool bk_lit(const char **p, const char *lit) {
  size_t n = strlen(lit);
  if (strncmp(*p, lit, n) != 0)
    return false;
  *p += n;
  return true;
}

static const char *const bk_wkday_short[7] = {"Mon", "Tue", "Wed", "Thu",
                                              "Fri", "Sat", "Sun"};
static const char *const bk_wkday_long[7] = {
    "Monday", "Tuesday", "Wednesday", "Thursday",
    "Friday", "Saturday", "Sunday"};
static const char *const bk_months[12] = {"Jan", "Feb", "Mar", "Apr",
                                          "May", "Jun", "Jul", "Aug",
                                          "Sep", "Oct", "Nov", "Dec"};

/* Match one of `names` at *p (case-sensitive: HTTP-date is). Returns the
 * index or -1. */
static int bk_name(const char **p, const char *const *names, int count) {
  for (int i = 0; i < count; i++)
    if (bk_lit(p, names[i]))
      return i;
  return -1;
}

static bool bk_leap(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int bk_days_in_month(int y, int mon0) {
  static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return (mon0 == 1 && bk_leap(y)) ? 29 : d[mon0];
}

/* "HH:MM:SS" */
static bool bk_time_of_day(const char **p, struct tm *tm) {
  int h, m, s;
  if (!bk_digits(p, 2, &h) || !bk_lit(p, ":") || !bk_digits(p, 2, &m) ||
      !bk_lit(p, ":") || !bk_digits(p, 2, &s))
    return false;
  /* 60 allows a leap second; timegm normalises it. */
  if (h > 23 || m > 59 || s > 60)
    return false;
  tm->tm_hour = h;
  tm->tm_min = m;
  tm->tm_sec = s;
  return true;
}

/*
 * The three HTTP-date forms of RFC 9110 section 5.6.7:
 *   IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"
 *   RFC 850      "Sunday, 06-Nov-94 08:49:37 GMT"
 *   asctime      "Sun Nov  6 08:49:37 1994"
 * The weekday must be a valid name of the form's length but is not checked
 * against the date (RFC 9110 leaves that to the recipient; the date wins).
 * On success *end points just past the date.
 */
static bool bk_parse_http_date(const char *p, time_t now, time_t *out,
                               const char **end) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  int day, mon, year;
  const char *q = p;

  if (bk_name(&q, bk_wkday_short, 7) >= 0 && *q == ',') {
    /* IMF-fixdate */
    q++;
    if (!bk_lit(&q, " ") || !bk_digits(&q, 2, &day) || !bk_lit(&q, " ") ||
        (mon = bk_name(&q, bk_months, 12)) < 0 || !bk_lit(&q, " ") ||
        !bk_digits(&q, 4, &year) || !bk_lit(&q, " ") ||
        !bk_time_of_day(&q, &tm) || !bk_lit(&q, " GMT"))
      return false;
  } else if ((q = p, bk_name(&q, bk_wkday_short, 7) >= 0) && *q == ' ') {
    /* asctime: the day is "DD" or " D" */
    q++;
    if ((mon = bk_name(&q, bk_months, 12)) < 0 || !bk_lit(&q, " "))
      return false;
    if (*q == ' ') {
      q++;
      if (!bk_digits(&q, 1, &day))
        return false;
    } else if (!bk_digits(&q, 2, &day)) {
      return false;
    }
    if (!bk_lit(&q, " ") || !bk_time_of_day(&q, &tm) || !bk_lit(&q, " ") ||
        !bk_digits(&q, 4, &year))
      return false;
  } else if ((q = p, bk_name(&q, bk_wkday_long, 7) >= 0) && *q == ',') {
    /* RFC 850 with a two-digit year */
    int yy;
    q++;
    if (!bk_lit(&q, " ") || !bk_digits(&q, 2, &day) || !bk_lit(&q, "-") ||
        (mon = bk_name(&q, bk_months, 12)) < 0 || !bk_lit(&q, "-") ||
        !bk_digits(&q, 2, &yy) || !bk_lit(&q, " ") ||
        !bk_time_of_day(&q, &tm) || !bk_lit(&q, " GMT"))
      return false;
    /* RFC 9110: a two-digit year more than 50 years in the future is the
     * most recent past year with those last two digits. */
    struct tm nowtm;
    int now_year = 1970;
    if (gmtime_r(&now, &nowtm))
      now_year = nowtm.tm_year + 1900;
    int century = now_year - ((now_year % 100) + 100) % 100;
    year = century + yy;
    if (year > now_year + 50)
      year -= 100;
  } else {
    return false;
  }

  if (day < 1 || day > bk_days_in_month(year, mon))
    return false;
  tm.tm_mday = day;
  tm.tm_mon = mon;
  tm.tm_year = year - 1900;
  tm.tm_isdst = 0;
  /* All fields were range-checked, so (time_t)-1 here is the genuine
   * 1969-12-31T23:59:59Z, which is in the past and gives 0 anyway. */
  *out = timegm(&tm);
  *end = q;
  return true;
}

bool bulkup_parse_retry_after(const char *value, time_t now, double *seconds) {
  if (!value || !seconds)
    return false;
  const char *p = value;
  while (bk_is_ows(*p))
    p++;
  if (*p == '\0')
    return false;

  double result;
  if (bk_is_digit(*p)) {
    double v = 0.0;
    while (bk_is_digit(*p)) {
      if (v < BK_RETRY_AFTER_CLAMP)
        v = v * 10.0 + (double)(*p - '0');
      p++;
    }
    if (v > BK_RETRY_AFTER_CLAMP)
      v = BK_RETRY_AFTER_CLAMP;
    result = v;
  } else {
    time_t when;
    const char *end;
    if (!bk_parse_http_date(p, now, &when, &end))
      return false;
    p = end;
    double d = difftime(when, now);
    result = d > 0.0 ? d : 0.0;
  }

  while (bk_is_ows(*p))
    p++;
  if (*p != '\0')
    return false;
  *seconds = result;
  return true;
}
