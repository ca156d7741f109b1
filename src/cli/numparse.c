/*
 * numparse.c - strict numeric option values.
 */
#include "numparse.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

num_status num_parse_long(const char *s, long min, long max, long *out) {
  if (!s || !*s)
    return NUM_EMPTY;
  /* strtol skips leading space and accepts "0x": refuse both. */
  const char *d = s;
  if (*d == '+' || *d == '-')
    d++;
  if (!isdigit((unsigned char)*d))
    return NUM_SYNTAX;
  for (const char *p = d; *p; p++)
    if (!isdigit((unsigned char)*p))
      return NUM_SYNTAX;
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (end == s || *end != '\0')
    return NUM_SYNTAX;
  if (errno == ERANGE || v < min || v > max)
    return NUM_RANGE;
  *out = v;
  return NUM_OK;
}

num_status num_parse_double(const char *s, double min, double max,
                            double *out) {
  if (!s || !*s)
    return NUM_EMPTY;
  /* Only plain decimal syntax: digits, one '.', an exponent. */
  const char *p = s;
  if (*p == '+' || *p == '-')
    p++;
  int digits = 0;
  while (isdigit((unsigned char)*p)) {
    p++;
    digits++;
  }
  if (*p == '.') {
    p++;
    while (isdigit((unsigned char)*p)) {
      p++;
      digits++;
    }
  }
  if (digits == 0)
    return NUM_SYNTAX;
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-')
      p++;
    if (!isdigit((unsigned char)*p))
      return NUM_SYNTAX;
    while (isdigit((unsigned char)*p))
      p++;
  }
  if (*p != '\0')
    return NUM_SYNTAX;
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end != '\0')
    return NUM_SYNTAX;
  if (!isfinite(v) || (errno == ERANGE && (v > 1.0 || v < -1.0)) || v < min ||
      v > max)
    return NUM_RANGE;
  *out = v;
  return NUM_OK;
}

const char *num_status_text(num_status st) {
  switch (st) {
  case NUM_OK:
    return "is valid";
  case NUM_EMPTY:
    return "is empty";
  case NUM_SYNTAX:
    return "is not a number";
  case NUM_RANGE:
    return "is out of range";
  }
  return "is invalid";
}

num_status num_parse_size(const char *s, unsigned long long min,
                          unsigned long long max, unsigned long long *out) {
  if (!s || !*s)
    return NUM_EMPTY;
  if (!isdigit((unsigned char)*s))
    return NUM_SYNTAX;
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno == ERANGE)
    return NUM_RANGE;
  unsigned long long mul = 1;
  switch (*end) {
  case 'K': case 'k': mul = 1ULL << 10; end++; break;
  case 'M': case 'm': mul = 1ULL << 20; end++; break;
  case 'G': case 'g': mul = 1ULL << 30; end++; break;
  case 'T': case 't': mul = 1ULL << 40; end++; break;
  default: break;
  }
  if (mul > 1 && *end == 'i')
    end++;
  if (mul > 1 && (*end == 'B' || *end == 'b'))
    end++;
  if (*end != '\0')
    return NUM_SYNTAX;
  if (v > max / mul || v * mul < min)
    return NUM_RANGE;
  *out = v * mul;
  return NUM_OK;
}
