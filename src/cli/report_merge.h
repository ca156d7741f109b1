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

/* Write `len` bytes of `text` to `path` atomically: a temporary file next
 * to it, fsync, rename. 0, or an errno with a message in err. */
int cli_write_file_atomic(const char *path, const char *text, size_t len,
                          char *err, size_t errlen);

/* Write the report as bulkup_report_write_json does, plus
 *   "shard": {"index": K, "count": N, "key": KEY}
 * (KEY: "path" or "url", what the items were sharded by). false with a
 * message in err. */
bool report_write_sharded(const bulkup_report *rep, const char *path,
                          uint32_t k, uint32_t n, const char *key, char *err,
                          size_t errlen);

#endif
