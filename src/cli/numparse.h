/*
 * numparse.h - strict parsing of numeric option values.
 *
 * The whole string must be a number: no leading or trailing space, no
 * trailing junk, no empty string, and the value must be in range.
 */
#ifndef BULKUP_CLI_NUMPARSE_H
#define BULKUP_CLI_NUMPARSE_H

typedef enum num_status {
  NUM_OK = 0,
  NUM_EMPTY,  /* "" */
  NUM_SYNTAX, /* not a number, or junk around it */
  NUM_RANGE   /* a number, outside [min, max] (or not finite) */
} num_status;

/* A decimal integer (optional sign) in [min, max]. */
num_status num_parse_long(const char *s, long min, long max, long *out);

/* A finite decimal number ("1", "0.25", "1e-3") in [min, max]. Hex
 * floats, "inf" and "nan" are refused. */
num_status num_parse_double(const char *s, double min, double max,
                            double *out);

/* A byte count: a whole number with an optional K, M, G or T suffix
 * (powers of 1024; "KiB", "MB"... also read as powers of 1024) in
 * [min, max]. */
num_status num_parse_size(const char *s, unsigned long long min,
                          unsigned long long max, unsigned long long *out);

/* "is not a number", "is out of range" ... for messages. */
const char *num_status_text(num_status st);

#endif
