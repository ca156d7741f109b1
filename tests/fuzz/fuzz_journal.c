/* libFuzzer target: reading a journal file (torn, corrupt, hostile). */
#include "internal.h"

#include <stdio.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[] = "/tmp/bulkup-fuzz-journal-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0)
    return 0;
  if (write(fd, data, size) != (ssize_t)size) {
    close(fd);
    unlink(path);
    return 0;
  }
  close(fd);
  bulkup_journal *j = NULL;
  if (bulkup_journal_open(&j, path, NULL) == BULKUP_OK) {
    uint64_t before = bulkup_journal_count(j);
    /* A record appended after whatever was there reads back. */
    if (bulkup_journal_record(j, "fuzz-key", 7, 9) != BULKUP_OK)
      abort();
    bulkup_journal_close(j);
    if (bulkup_journal_open(&j, path, NULL) != BULKUP_OK)
      abort();
    if (!bulkup_journal_contains(j, "fuzz-key", 7, 9) ||
        bulkup_journal_count(j) < before)
      abort();
    bulkup_journal_close(j);
  }
  unlink(path);
  return 0;
}
