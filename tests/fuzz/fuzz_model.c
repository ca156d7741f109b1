/* libFuzzer target: model configurations JSON. */
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  bulkup_string_set *set = NULL;
  bulkup_err rc = bulkup_get_all_model_iteration_uids(&set, (const char *)data, size);
  if (rc == BULKUP_OK) {
    size_t n = bulkup_string_set_count(set);
    for (size_t i = 0; i < n; i++) {
      const char *s = bulkup_string_set_get(set, i);
      if (!s || !bulkup_string_set_contains(set, s))
        abort();
    }
  } else if (set) {
    abort(); /* *out must be NULL on error */
  }
  bulkup_string_set_free(set);
  return 0;
}
