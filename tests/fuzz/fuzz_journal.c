/* libFuzzer target: reading a journal file (torn, corrupt, hostile), with
 * completion (J1) and resumable-session (S1) lines. */
#include "internal.h"

#include <stdio.h>
#include <unistd.h>

#define URL_OPEN "https://fuzz/s?upload_id=a%2Fb c"

static bool session_is(bulkup_journal *j, const char *key, uint64_t size,
                       int64_t mtime, const char *want) {
  char *got = bulkup_journal_session(j, key, size, mtime);
  bool same = want ? got && strcmp(got, want) == 0 : got == NULL;
  bulkup_free(got);
  return same;
}

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
    /* Records appended after whatever was there read back, and decide the
     * state of their identities whatever the input said about them. */
    if (bulkup_journal_record(j, "fuzz-key", 7, 9) != BULKUP_OK ||
        bulkup_journal_record_session(j, "fuzz-open", 3, 4, URL_OPEN) !=
            BULKUP_OK ||
        bulkup_journal_record_session(j, "fuzz-done", 5, 6, "https://f/d") !=
            BULKUP_OK ||
        bulkup_journal_record(j, "fuzz-done", 5, 6) != BULKUP_OK ||
        bulkup_journal_record_session(j, "fuzz-gone", 1, 2, "https://f/g") !=
            BULKUP_OK ||
        bulkup_journal_record_session(j, "fuzz-gone", 1, 2, NULL) != BULKUP_OK)
      abort();
    uint64_t count = bulkup_journal_count(j);
    uint64_t sessions = bulkup_journal_session_count(j);
    bulkup_journal_close(j);
    /* What was in memory is what the file now says. */
    if (bulkup_journal_open(&j, path, NULL) != BULKUP_OK)
      abort();
    if (!bulkup_journal_contains(j, "fuzz-key", 7, 9) ||
        !bulkup_journal_contains(j, "fuzz-done", 5, 6) ||
        !session_is(j, "fuzz-open", 3, 4, URL_OPEN) ||
        !session_is(j, "fuzz-done", 5, 6, NULL) ||
        !session_is(j, "fuzz-gone", 1, 2, NULL) ||
        bulkup_journal_count(j) != count ||
        bulkup_journal_session_count(j) != sessions)
      abort();
    bulkup_journal_close(j);
  }
  unlink(path);
  return 0;
}
