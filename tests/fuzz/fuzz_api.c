/* libFuzzer target: the API's answers (signed URLs, job status). The first
 * byte picks the parser and the expected count. */
#include "internal.h"
#include "api/jobs.h"
#include "api/presign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  unsigned sel = data[0];
  const char *body = (const char *)data + 1;
  size_t len = size - 1;
  size_t count = 1 + (sel >> 1) % 8;
  if (sel & 1) {
    bulkup_signed_url *v = NULL;
    if (bk_api_parse_presign(body, len, count, &v) == BULKUP_OK) {
      for (size_t i = 0; i < count; i++) {
        /* Accepted URLs are http(s) only. */
        if (strncasecmp(v[i].signed_url, "http://", 7) != 0 &&
            strncasecmp(v[i].signed_url, "https://", 8) != 0)
          abort();
      }
      bulkup_signed_urls_free(v, count);
    } else if (v) {
      abort();
    }
  } else {
    bool final = false;
    bulkup_image_group *g = NULL;
    bulkup_err rc = bk_api_parse_job(body, len, "job", &final, &g);
    if (rc == BULKUP_OK && final) {
      if (!g)
        abort();
      for (size_t i = 0; i < bulkup_image_group_count(g); i++)
        if (!bulkup_image_group_data_hash(g, i) ||
            !bulkup_image_group_title(g, i) ||
            strlen(bulkup_image_group_backing_item_uuid(g, i)) != 36)
          abort();
    } else if (g) {
      abort();
    }
    bulkup_image_group_free(g);
  }
  return 0;
}
