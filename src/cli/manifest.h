/*
 * manifest.h - a streaming reader of upload manifests.
 *
 * A manifest lists (path, url) pairs, one record per item, as CSV or as
 * JSON Lines. The reader holds one record at a time, so a manifest of any
 * length is read in bounded memory.
 *
 * CSV (RFC 4180): fields separated by commas, records by LF or CRLF (a
 * lone CR also ends a record); a field in double quotes may hold commas,
 * line breaks and doubled quotes (""). Columns are path,url and
 * optionally content_type and title. An optional first record naming the
 * columns (each of path, url, content_type, title, data_type at most once,
 * path and url required, any order) is a header and sets the columns; then
 * every record has as many fields as the header. Blank lines are skipped.
 * Fields are bytes: a path may hold any byte but NUL (non-UTF-8 too).
 *
 * JSON Lines: one JSON object per line:
 *   {"path": "a.jpg", "url": "https://...", "content_type": "image/jpeg",
 *    "title": "A", "data_type": "image"}
 * path and url are required strings; the others are optional strings (or
 * null), but "headers", an optional object of extra request headers
 * ({"x-ms-meta-owner": "ana"}); unknown keys are ignored. Blank lines are
 * skipped.
 *
 * A UTF-8 byte order mark at the start is skipped. Records longer than
 * MANIFEST_MAX_RECORD bytes are refused.
 */
#ifndef BULKUP_CLI_MANIFEST_H
#define BULKUP_CLI_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define MANIFEST_MAX_RECORD (1024 * 1024)
/* Headers one JSON Lines record may carry. */
#define MANIFEST_MAX_HEADERS 64

typedef enum manifest_format {
  MANIFEST_AUTO = 0, /* by sniffing: first non-blank byte '{' is JSONL */
  MANIFEST_CSV = 1,
  MANIFEST_JSONL = 2
} manifest_format;

/* One record. Strings belong to the reader and stay valid until the next
 * manifest_next() or manifest_close(). */
typedef struct manifest_entry {
  const char *path;         /* never NULL or empty */
  const char *url;          /* never NULL or empty; scheme not checked */
  const char *content_type; /* NULL when not given or empty */
  const char *title;        /* NULL when not given or empty */
  const char *data_type;    /* NULL when not given or empty */
  /* JSON Lines' "headers": {"Name": "value", ...} as NULL-ended "Name:
   * value" lines, each passing bulkup_header_check (else the record is
   * MANIFEST_BAD, naming the header); NULL when none (always in CSV) */
  const char *const *headers;
  unsigned long line;       /* line on which the record starts, from 1 */
} manifest_entry;

/* What manifest_next() found. */
typedef enum manifest_status {
  MANIFEST_ENTRY = 1, /* *entry is filled */
  MANIFEST_EOF = 0,   /* no more records */
  MANIFEST_BAD = -1,  /* a record that does not parse: manifest_error()
                         says where and why; reading may go on with the
                         next record */
  MANIFEST_IOERR = -2 /* the input could not be read; stop */
} manifest_status;

typedef struct manifest_reader manifest_reader;

/* The format an extension implies: .csv CSV, .jsonl and .ndjson JSONL
 * (case-insensitive); anything else, AUTO. */
manifest_format manifest_format_for_name(const char *path);

/*
 * manifest_open - open `path` ("-" is standard input) for reading in
 * `fmt` (AUTO: by extension, then by sniffing). Returns the reader, or
 * NULL with a message in err (e.g. "cannot open m.csv: No such file or
 * directory").
 */
manifest_reader *manifest_open(const char *path, manifest_format fmt,
                               char *err, size_t errlen);

/* manifest_open_stream - read from an open stream; `name` is used in
 * messages. The stream is closed by manifest_close() only if `owned`. */
manifest_reader *manifest_open_stream(FILE *f, const char *name,
                                      manifest_format fmt, bool owned);

/* The next record. */
manifest_status manifest_next(manifest_reader *r, manifest_entry *entry);

/* The message of the last MANIFEST_BAD or MANIFEST_IOERR, e.g.
 * "m.csv line 12: expected 2 to 4 fields, got 5". */
const char *manifest_error(const manifest_reader *r);

/* The line of the record of the last MANIFEST_BAD (0 for I/O errors). */
unsigned long manifest_error_line(const manifest_reader *r);

/* The format in use (CSV or JSONL once known). */
manifest_format manifest_get_format(const manifest_reader *r);

/* Close the reader (and the stream if owned). NULL does nothing. */
void manifest_close(manifest_reader *r);

/* Whether `v` may be sent as an HTTP header value: no control character
 * but tab (no CR, LF: they would end the header and start another). */
bool header_value_ok(const char *v);

/* Readers opened from now on on a pipe or terminal (standard input fed by
 * a producer) wait for input with poll() on their descriptor and on `fd`:
 * a byte made readable on `fd` (the signal thread writes one) ends the
 * input there, manifest_next() then returning MANIFEST_IOERR ("reading
 * NAME: interrupted"). -1 (the default): plain stdio reads. */
void manifest_set_wake_fd(int fd);

#endif
