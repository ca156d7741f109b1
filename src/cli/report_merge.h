/*
 * report_merge.h - `bulkup report merge`, and the report that a sharded
 * upload writes (the library's JSON with a "shard" object added).
 */
#ifndef BULKUP_CLI_REPORT_MERGE_H
#define BULKUP_CLI_REPORT_MERGE_H

#include <bulkup.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether a report path means standard output ("-" or NULL). */
bool cli_is_stdout(const char *path);

/* Write `len` bytes of `text` to `path`: "-" (or NULL) is standard output;
 * anything else goes through bulkup_file_write() (a descriptor path such
 * as /dev/stdout, a device or FIFO written into; a file replaced
 * atomically through an exclusively created temporary file). The one way
 * --report and `report merge -o` write. 0, or an errno with a message in
 * err. */
int cli_write_file_atomic(const char *path, const char *text, size_t len,
                          char *err, size_t errlen);

/* What the CLI adds to the library's report. */
typedef struct report_extra {
  /* shard_n > 0: "shard": {"index": K, "count": N, "key": KEY} (KEY: "path"
   * or "url", what the items were sharded by). */
  uint32_t shard_k, shard_n;
  const char *shard_key;
  /* acct: summary.input, summary.skipped, summary.not_started (upload_cli's
   * acct). */
  bool acct;
  uint64_t input, skipped, not_started;
} report_extra;

/* Write the run's report (the library's JSON, pretty, plus `x`; x may be
 * NULL) to `path` with cli_write_file_atomic. false with a message in err. */
bool report_write_run(const bulkup_report *rep, const char *path,
                      const report_extra *x, char *err, size_t errlen);

#endif
