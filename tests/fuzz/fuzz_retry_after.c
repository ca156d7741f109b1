/* libFuzzer target: Retry-After values. */
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  double secs = -1;
  if (bulkup_parse_retry_after(s, 1700000000, &secs)) {
    /* A parsed wait is a number, never negative. */
    if (!(secs >= 0))
      abort();
    bulkup_upload_policy p;
    bulkup_requests_settings r;
    bulkup_requests_settings_init(&r);
    if (bulkup_upload_policy_merge(&p, &r, NULL, NULL) != BULKUP_OK)
      abort();
    double w = bulkup_retry_wait(&p, 3, secs, 0.5);
    if (!(w >= 0) || w > p.backoff.retry_after_max + p.backoff.max_delay)
      abort();
  }
  free(s);
  return 0;
}
