/* libFuzzer target: manifest lines, CSV and JSON Lines. */
#include "manifest.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  /* The first byte picks the format. */
  manifest_format fmt = (manifest_format)(data[0] % 3);
  FILE *f = fmemopen((void *)(data + 1), size - 1, "rb");
  if (!f)
    return 0;
  manifest_reader *r = manifest_open_stream(f, "fuzz", fmt, true);
  if (!r) {
    fclose(f);
    return 0;
  }
  manifest_entry e;
  manifest_status st;
  int guard = 0;
  while ((st = manifest_next(r, &e)) != MANIFEST_EOF && guard++ < 100000) {
    if (st == MANIFEST_ENTRY) {
      if (!e.path || !*e.path || !e.url || !*e.url)
        abort();
      (void)strlen(e.path);
    } else if (st == MANIFEST_IOERR) {
      break;
    } else if (!manifest_error(r)) {
      abort();
    }
  }
  manifest_close(r);
  return 0;
}
