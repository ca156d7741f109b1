/*
 * results.h - `bulkup upload --results FILE`: one JSON Lines record per
 * item, written as each item ends, so that a run of any size keeps a
 * complete per-item record without holding it in memory.
 *
 * A record (one line, keys always in this order):
 *   {"index": 0, "path": "a/b.jpg", "title": "b.jpg",
 *    "url": "https://h/p/a/b.jpg?X-Amz-Signature=REDACTED",
 *    "status": "succeeded", "error": "none", "http_status": 201,
 *    "attempts": 1, "size": 1234, "bytes_sent": 1234, "elapsed_s": 0.0123}
 * plus "message" for an item that did not succeed. path is null for an
 * item without a file; URLs are redacted. Strings are written as JSON
 * strings with quotes, backslashes and control characters escaped; a byte
 * that is not part of well-formed UTF-8 (a non-UTF-8 file name) is written
 * as U+FFFD, so that every line is valid JSON, and then the exact bytes
 * follow in base64: "path_b64" right after "path", "title_b64" right
 * after "title" (only when that string is not UTF-8), as in --report.
 *
 * Lines are written in the order items end (not index order), through a
 * 1 MiB buffer written out when full, when the run ends and on the first
 * SIGINT or SIGTERM (results_flush, from the signal thread). A process
 * killed outright (SIGKILL) may leave the last line cut: readers should
 * ignore a last line without its newline.
 */
#ifndef BULKUP_CLI_RESULTS_H
#define BULKUP_CLI_RESULTS_H

#include <bulkup.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct results results;

/* Create (truncate) `path` ("-": standard output). NULL with a message in
 * err. */
results *results_open(const char *path, char *err, size_t errlen);

/* Append the record of one ended item: a bulkup_complete_fn, `arg` being
 * the results. Thread-safe. */
void results_on_complete(void *arg, const bulkup_result *r);

/* How to print a message (the warning that the reader went away);
 * default cli_error. */
void results_set_say(results *w, void (*say)(const char *fmt, ...));

/* Write out what is buffered. Thread-safe; NULL does nothing. */
void results_flush(results *w);

/* Records written so far. Thread-safe. */
uint64_t results_count(results *w);

/* Flush, make durable (a file: fsync), close and free. Returns 0, or the
 * errno of the first write error met (then `err` says which file). NULL
 * does nothing and returns 0. */
int results_close(results *w, char *err, size_t errlen);

/* Write `s` as a JSON string (with its quotes) to `f`; NULL as null. A
 * byte that is not well-formed UTF-8 is written as \ufffd. */
void json_put_string(FILE *f, const char *s);

/* When `s` is not well-formed UTF-8: write `, "KEY": "BASE64 OF s"` (its
 * exact bytes). Nothing for NULL or UTF-8. false when out of memory. */
bool json_put_b64(FILE *f, const char *key, const char *s);

#endif
