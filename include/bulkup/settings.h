/*
 * bulkup/settings.h - the seed's settings, the effective upload policy, and
 * the backoff and Retry-After arithmetic.
 *
 * The two settings structs mirror the Python SDK's dataclasses field for
 * field (encord.http.constants.RequestsSettings and
 * encord.http.utils.CloudUploadSettings), with one deliberate difference:
 * an unset override is explicit (a *_set flag), so an explicit 0 means 0.
 * (The SDK merges with Python's `or`, turning max_retries=0 into 3.)
 */
#ifndef BULKUP_SETTINGS_H
#define BULKUP_SETTINGS_H

#include <stdbool.h>
#include <time.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Defaults, as in the seed. */
/* Default of bulkup_requests_settings.max_retries. */
#define BULKUP_DEFAULT_MAX_RETRIES 3
/* Default of bulkup_requests_settings.backoff_factor, seconds. */
#define BULKUP_DEFAULT_BACKOFF_FACTOR 1.5
/* Default of bulkup_requests_settings.connection_retries. */
#define BULKUP_DEFAULT_CONNECTION_RETRIES 3
/* Default of bulkup_requests_settings.connect_timeout, seconds. */
#define BULKUP_DEFAULT_CONNECT_TIMEOUT 180.0
/* Default of bulkup_requests_settings.read_timeout, seconds. */
#define BULKUP_DEFAULT_READ_TIMEOUT 180.0
/* Default of bulkup_requests_settings.write_timeout, seconds. */
#define BULKUP_DEFAULT_WRITE_TIMEOUT 180.0
/* Cap on one backoff wait, in seconds (urllib3's BACKOFF_MAX). */
#define BULKUP_DEFAULT_BACKOFF_MAX 120.0
/* Cap on a server's Retry-After, in seconds: 10 minutes. A server asking
 * for longer is obeyed for 10 minutes, then retried. */
#define BULKUP_DEFAULT_RETRY_AFTER_MAX 600.0

/*
 * Settings for all outgoing network requests; they apply to each request.
 * Fill with bulkup_requests_settings_init() and change what you need.
 */
typedef struct bulkup_requests_settings {
  /* Retries of a request that was sent and failed transiently. Default 3. */
  int max_retries;
  /* Retry n waits backoff_factor * 2^(n-1) seconds. Default 1.5. */
  double backoff_factor;
  /* Retries of a connection that could not be established (the request
   * never reached the server). Default 3. */
  int connection_retries;
  /* Seconds to establish the connection, TCP and TLS. Default 180.
   * Fractional values are honoured (millisecond resolution). */
  double connect_timeout;
  /* Seconds to obtain the full response once the request body has been
   * sent. Default 180. */
  double read_timeout;
  /* Seconds the request body may make no progress while it is being sent
   * (a stall bound, so that a large body on a slow link is not cut off
   * merely for being large). Default 180. */
  double write_timeout;
} bulkup_requests_settings;

/* bulkup_requests_settings_init - fill *s with the seed's defaults. */
BULKUP_EXTERN void bulkup_requests_settings_init(bulkup_requests_settings *s);

/*
 * bulkup_requests_settings_validate - BULKUP_OK, or BULKUP_EINVAL with
 * bulkup_last_error_message() naming the field ("requests.max_retries must
 * be >= 0"): a negative count, or a negative, NaN or infinite factor or
 * timeout. A timeout of 0 means "no limit".
 */
BULKUP_EXTERN bulkup_err
bulkup_requests_settings_validate(const bulkup_requests_settings *s);

/*
 * Settings for uploads to cloud storage; they override the requests
 * settings for each upload. Fill with bulkup_cloud_upload_settings_init()
 * (everything unset, allow_failures false).
 */
typedef struct bulkup_cloud_upload_settings {
  /* When max_retries_set is true, max_retries replaces
   * bulkup_requests_settings.max_retries for uploads (0 means no retry). */
  bool max_retries_set;
  int max_retries; /* used only when max_retries_set */
  /* When backoff_factor_set is true, backoff_factor replaces the requests
   * settings' factor for uploads (0.0 means retry at once). */
  bool backoff_factor_set;
  double backoff_factor; /* used only when backoff_factor_set */
  /* If true, an upload run in which some items failed after their retries
   * still counts as a success as long as at least one item succeeded (and
   * an image group is created from the successes); the failures are in the
   * report. Default false. */
  bool allow_failures;
} bulkup_cloud_upload_settings;

/* bulkup_cloud_upload_settings_init - everything unset, allow_failures
 * false. */
BULKUP_EXTERN void
bulkup_cloud_upload_settings_init(bulkup_cloud_upload_settings *s);

/* Convenience setters: set the value and its *_set flag together. */
BULKUP_EXTERN void
bulkup_cloud_upload_settings_set_max_retries(bulkup_cloud_upload_settings *s,
                                             int max_retries);
/* As above, for backoff_factor. */
BULKUP_EXTERN void bulkup_cloud_upload_settings_set_backoff_factor(
    bulkup_cloud_upload_settings *s, double backoff_factor);

/* bulkup_cloud_upload_settings_validate - as for the requests settings;
 * only fields whose *_set flag is true are checked ("cloud.max_retries
 * must be >= 0"). */
BULKUP_EXTERN bulkup_err
bulkup_cloud_upload_settings_validate(const bulkup_cloud_upload_settings *s);

/*
 * How waits between retries are computed, beyond the seed's formula.
 * Fill with bulkup_backoff_settings_init().
 */
typedef struct bulkup_backoff_settings {
  /* Cap on one backoff wait, seconds; 0 means no cap. Default
   * BULKUP_DEFAULT_BACKOFF_MAX. */
  double max_delay;
  /* Cap on an honoured Retry-After, seconds; 0 means Retry-After is
   * ignored (only the backoff counts). Default
   * BULKUP_DEFAULT_RETRY_AFTER_MAX. */
  double retry_after_max;
  /* AWS-style "full jitter": wait uniform(0, capped backoff) instead of the
   * capped backoff itself. Default false (the documented formula). */
  bool jitter;
} bulkup_backoff_settings;

/* bulkup_backoff_settings_init - the defaults above. */
BULKUP_EXTERN void bulkup_backoff_settings_init(bulkup_backoff_settings *s);

/* bulkup_backoff_settings_validate - BULKUP_OK, or BULKUP_EINVAL naming
 * the field ("backoff.max_delay ...") for a negative, NaN or infinite
 * value. */
BULKUP_EXTERN bulkup_err
bulkup_backoff_settings_validate(const bulkup_backoff_settings *s);

/*
 * The effective policy of an upload: requests settings with the cloud
 * overrides applied, plus the backoff settings. Produced by
 * bulkup_upload_policy_merge(); a plain value, freely copied.
 */
typedef struct bulkup_upload_policy {
  int max_retries;         /* the cloud override if set, else requests' */
  double backoff_factor;   /* the cloud override if set, else requests' */
  int connection_retries;  /* from the requests settings */
  double connect_timeout;  /* from the requests settings */
  double read_timeout;     /* from the requests settings */
  double write_timeout;    /* from the requests settings */
  bool allow_failures;     /* from the cloud settings */
  bulkup_backoff_settings backoff; /* caps and jitter */
} bulkup_upload_policy;

/*
 * bulkup_upload_policy_merge - validate and merge into *out.
 *
 * requests may not be NULL. cloud NULL means "nothing overridden,
 * allow_failures false"; backoff NULL means the backoff defaults.
 * Returns BULKUP_OK, or BULKUP_EINVAL with the offending field named in
 * bulkup_last_error_message() (and *out untouched).
 */
BULKUP_EXTERN bulkup_err
bulkup_upload_policy_merge(bulkup_upload_policy *out,
                           const bulkup_requests_settings *requests,
                           const bulkup_cloud_upload_settings *cloud,
                           const bulkup_backoff_settings *backoff);

/*
 * bulkup_backoff_delay - seconds to wait before retry number `retry`
 * (1 for the first retry): backoff_factor * 2^(retry-1), capped at
 * max_delay (a max_delay <= 0 means no cap). retry 0 gives 0. Never
 * overflows: a huge retry number gives the cap (or +inf without a cap
 * only if factor > 0). A factor of 0 gives 0. Pure and thread-safe.
 */
BULKUP_EXTERN double bulkup_backoff_delay(double backoff_factor,
                                          unsigned int retry,
                                          double max_delay);

/*
 * bulkup_backoff_full_jitter - the jittered form: u * bulkup_backoff_delay()
 * where u is a uniform random number in [0, 1) supplied by the caller
 * (the function itself stays pure and testable). u is clamped to [0, 1].
 */
BULKUP_EXTERN double bulkup_backoff_full_jitter(double backoff_factor,
                                                unsigned int retry,
                                                double max_delay, double u);

/*
 * bulkup_parse_retry_after - parse an HTTP Retry-After value, either
 * delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT",
 * also the obsolete RFC 850 and asctime forms), relative to `now`.
 *
 * On success stores the wait in seconds (>= 0; a date in the past gives 0)
 * in *seconds and returns true. Spaces, tabs, CR and LF around the value
 * are allowed; a huge number is clamped to 1e18 seconds; the weekday of a
 * date must be a valid name but is not checked against the date. Garbage,
 * an empty or NULL value, a negative or fractional number, or trailing
 * junk returns false and leaves *seconds alone. Capping is the caller's
 * job (see bulkup_retry_wait).
 * Pure and thread-safe.
 */
BULKUP_EXTERN bool bulkup_parse_retry_after(const char *value, time_t now,
                                            double *seconds);

/*
 * bulkup_retry_wait - the wait before retry number `retry` under `policy`:
 * the larger of the (possibly jittered, using u) capped backoff and the
 * Retry-After wait capped at policy->backoff.retry_after_max. Pass a
 * negative retry_after when the server sent none. Pure and thread-safe.
 */
BULKUP_EXTERN double bulkup_retry_wait(const bulkup_upload_policy *policy,
                                       unsigned int retry, double retry_after,
                                       double u);

#ifdef __cplusplus
}
#endif
#endif /* BULKUP_SETTINGS_H */
