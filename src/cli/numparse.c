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
