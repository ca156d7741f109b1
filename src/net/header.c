/* net/header.c - response headers: matching a header line, and the
 * Retry-After value (delay-seconds or any of the three HTTP-date forms).
 *
 * Pure (no globals, no clock reads): the caller passes `now`, so that the
 * tests can pin it. */
#include "bulkup.h"
#include "util/alloc.h"
#include "util/base.h"
#include "util/error.h"
#include "net/curl.h"

#include <string.h>

#include <strings.h>
#include <time.h>

bool bk_header_is_status(const char *line, size_t len) {
  return len >= 5 && strncmp(line, "HTTP/", 5) == 0;
}

bool bk_header_match(const char *line, size_t len, const char *name,
                     const char **value, size_t *vlen) {
  size_t nl = strlen(name);
  if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
    return false;
  const char *v = line + nl + 1;
  const char *end = line + len;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
    end--;
  *value = v;
  *vlen = (size_t)(end - v);
  return true;
}

bool bk_header_retry_after(const char *line, size_t len, time_t now,
                           double *seconds) {
  const char *v;
  size_t vl;
  char tmp[128];
  if (!bk_header_match(line, len, "Retry-After", &v, &vl) || vl >= sizeof tmp)
    return false;
  memcpy(tmp, v, vl);
  tmp[vl] = '\0';
  return bulkup_parse_retry_after(tmp, now, seconds);
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

/* --- request headers a user adds ----------------------------------------- */

/* RFC 9110 tchar. */
static bool bk_is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Set by the transfer itself: an override would corrupt the framing of the
 * request (or, for Expect, its timing). */
static const char *const bk_reserved_headers[] = {
    "Host", "Content-Length", "Transfer-Encoding", "Expect"};

const char *bulkup_header_check(const char *line) {
  if (!line)
    return "no header line";
  const unsigned char *p = (const unsigned char *)line;
  size_t n = 0;
  while (bk_is_tchar(p[n]))
    n++;
  if (n == 0)
    return p[0] == ':' ? "the name is empty" : "the name is not a token "
                                               "(letters, digits, -, _ ...)";
  if (p[n] != ':')
    return p[n] ? "the name is not a token (letters, digits, -, _ ...) or "
                  "the colon after it is missing"
                : "no colon: expected 'Name: value'";
  for (size_t i = 0; i < sizeof bk_reserved_headers / sizeof *bk_reserved_headers;
       i++)
    if (strlen(bk_reserved_headers[i]) == n &&
        strncasecmp(line, bk_reserved_headers[i], n) == 0)
      return "the transfer sets this header itself (Host, Content-Length, "
             "Transfer-Encoding and Expect cannot be overridden)";
  const unsigned char *v = p + n + 1;
  while (*v == ' ' || *v == '\t')
    v++;
  if (!*v)
    return "the value is empty";
  for (; *v; v++)
    if ((*v < 0x20 && *v != '\t') || *v == 0x7f)
      return *v == '\r' || *v == '\n'
                 ? "the value holds a line break (CR or LF)"
                 : "the value holds a control character";
  return NULL;
}

bool bk_headers_have(const char *const *headers, const char *name) {
  size_t nl = strlen(name);
  for (size_t i = 0; headers && headers[i]; i++)
    if (strncasecmp(headers[i], name, nl) == 0 && headers[i][nl] == ':')
      return true;
  return false;
}
