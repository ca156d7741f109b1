/*
 * settings.c - the seed's settings, their validation and merge into an
 * upload policy. (What a policy then decides, the backoff and Retry-After
 * arithmetic, is retry.c's; parsing a Retry-After header is
 * net/header.c's.)
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
