/*
 * bulkup/report.h - the outcome of every item, and the report of a run.
 */
#ifndef BULKUP_REPORT_H
#define BULKUP_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How an item ended. Every submitted item ends as exactly one of these. */
typedef enum bulkup_item_status {
  BULKUP_ITEM_SUCCEEDED = 0,
  BULKUP_ITEM_FAILED = 1,
  BULKUP_ITEM_CANCELLED = 2
} bulkup_item_status;

/*
 * Why an item failed (or, for a succeeded item, NONE). The string forms
 * (bulkup_error_kind_name) are the "error" values of the JSON report.
 * Values are stable; new kinds are added at the end.
 */
#define BULKUP_ERROR_KIND_MAP(XX)                                             \
  XX(NONE, 0, "none")                                                         \
  XX(CONNECT, 1, "connect")           /* refused, unreachable */              \
  XX(DNS, 2, "dns")                   /* name did not resolve */              \
  XX(TLS, 3, "tls")                   /* handshake or verification */         \
  XX(TIMEOUT_CONNECT, 4, "timeout_connect")                                   \
  XX(TIMEOUT_WRITE, 5, "timeout_write")                                       \
  XX(TIMEOUT_READ, 6, "timeout_read")                                         \
  XX(SEND, 7, "send")                 /* connection lost while sending */     \
  XX(RECV, 8, "recv")                 /* lost or cut while receiving */       \
  XX(HTTP_STATUS, 9, "http_status")   /* the server answered non-2xx */       \
  XX(FILE, 10, "file")                /* source could not be opened/read */   \
  XX(FILE_CHANGED, 11, "file_changed")/* source changed while uploading */    \
  XX(PROTOCOL, 12, "protocol")        /* malformed exchange */                \
  XX(URL, 13, "url")                  /* malformed URL or scheme refused */   \
  XX(CANCELLED, 14, "cancelled")                                              \
  XX(NOMEM, 15, "nomem")                                                      \
  XX(INTERNAL, 16, "internal")        /* other libcurl error */               \
  XX(RETRY_BUDGET, 17, "retry_budget")/* transient, but the shared retry     \
                                         budget was exhausted */             \
  XX(INPUT, 18, "input")              /* the item's description was bad    \
                                         (bulkup_uploader_submit_failure) */

/* The error kinds of BULKUP_ERROR_KIND_MAP: BULKUP_ERROR_NONE,
 * BULKUP_ERROR_CONNECT, ... BULKUP_ERROR_INPUT. */
typedef enum bulkup_error_kind {
#define BULKUP__KIND_ENUM(name, value, text) BULKUP_ERROR_##name = value,
  BULKUP_ERROR_KIND_MAP(BULKUP__KIND_ENUM)
#undef BULKUP__KIND_ENUM
  BULKUP__ERROR_KIND_COUNT
} bulkup_error_kind;

/* "timeout_write" etc.; "unknown" for an out-of-range value. Static. */
BULKUP_EXTERN const char *bulkup_error_kind_name(bulkup_error_kind kind);

/* "succeeded", "failed", "cancelled". Static. */
BULKUP_EXTERN const char *bulkup_item_status_name(bulkup_item_status s);

/*
 * The outcome of one item, as given to the completion callback and as kept
 * in the report for failed and cancelled items. Strings are owned by the
 * library: in a callback they are valid until the callback returns; in a
 * report until bulkup_report_free(). URLs and messages are redacted:
 * signatures, credentials and tokens in query strings are replaced by
 * "REDACTED".
 */
typedef struct bulkup_result {
  uint64_t index;            /* position in submission order, from 0 */
  bulkup_item_status status; /* succeeded, failed or cancelled */
  bulkup_error_kind error;   /* NONE when succeeded */
  int attempts;              /* tries: requests started for this item (0 if
                                none); for a resumable upload, 1 plus the
                                times a failed request was tried again
                                (its chunks are not separate tries) */
  int http_status;           /* last HTTP status received, 0 if none */
  const char *path;          /* source file, or NULL for memory/callback */
  const char *title;         /* the item's title (never NULL) */
  const char *url;           /* destination, redacted (never NULL) */
  const char *message;       /* human-readable reason, "" when succeeded */
  const char *response_excerpt; /* first bytes (<= 1 KiB) of the last error
                                   response body, "" if none; may contain
                                   NULs: see response_excerpt_len */
  size_t response_excerpt_len; /* bytes in response_excerpt */
  uint64_t bytes_sent;       /* body bytes sent over all attempts */
  uint64_t size;             /* the item's size in bytes */
  double elapsed_s;          /* from the first attempt's start to the end */
  void *user;                /* the item's user pointer */
  int requests;              /* HTTP requests made for the item: attempts
                                for a single PUT; session start, chunks and
                                status queries for a resumable upload */
  bool resumable;            /* sent (or being sent) as a resumable upload */
} bulkup_result;

/* Totals of a run. succeeded + failed + cancelled == submitted, always. */
typedef struct bulkup_summary {
  uint64_t submitted;   /* items submitted (submit_failure ones included) */
  uint64_t succeeded;   /* items that ended succeeded */
  uint64_t failed;      /* items that ended failed */
  uint64_t cancelled;   /* items that ended cancelled */
  uint64_t retries;     /* attempts beyond each item's first */
  uint64_t bytes_sent;  /* body bytes sent, retries included */
  uint64_t bytes_succeeded; /* sizes of the succeeded items */
  double elapsed_s;     /* wall time of the run */
} bulkup_summary;

/* A finished run's report. Opaque; immutable; safe to read from any
 * thread. */
typedef struct bulkup_report bulkup_report;

/* The totals. */
BULKUP_EXTERN void bulkup_report_summary(const bulkup_report *r,
                                         bulkup_summary *out);

/*
 * Failed and cancelled items, sorted by index.
 *
 * Memory is bounded whatever the number of failures: once a run's kept
 * failures (or cancelled items) hold about 1 MiB, they are written to an
 * unlinked temporary file (in $TMPDIR, else /tmp) in sorted runs and read
 * back from it; bulkup_report_write_json streams them from there. (If no
 * temporary file can be made, they stay in memory.) For such a report,
 * bulkup_report_failure and bulkup_report_cancelled read the item from the
 * file and keep it in memory until bulkup_report_free, so each pointer
 * stays valid as promised: a program that fetches every one of N items
 * holds them all (and, past the first 64, 8 bytes per item of index).
 */
/* Number of failed items. */
BULKUP_EXTERN size_t bulkup_report_failure_count(const bulkup_report *r);
/* Failed item i (i < bulkup_report_failure_count; otherwise NULL). Owned
 * by the report. */
BULKUP_EXTERN const bulkup_result *
bulkup_report_failure(const bulkup_report *r, size_t i);
/* Number of cancelled items. */
BULKUP_EXTERN size_t bulkup_report_cancelled_count(const bulkup_report *r);
/* Records the run's journal could not write (items that succeeded but are
 * not journalled, and resumable sessions not journalled): a rerun would
 * send those items again. When it is not 0, bulkup_uploader_finish
 * returns BULKUP_EIO if nothing else went wrong. */
BULKUP_EXTERN uint64_t bulkup_report_journal_failures(const bulkup_report *r);
/* The transfers in flight over the run: fixed (adaptive false, all equal
 * to options.workers) or chosen by adaptive concurrency
 * (BULKUP_WORKERS_AUTO). */
typedef struct bulkup_concurrency {
  bool adaptive;       /* chosen by adaptive concurrency */
  unsigned int start;  /* the level it began at */
  unsigned int min;    /* the lowest level it chose */
  unsigned int max;    /* the highest level it chose */
  unsigned int final;  /* the level when the run ended */
  unsigned int limit;  /* the bound: workers_max (fixed: workers) */
  unsigned int threads; /* the worker threads */
  uint64_t grows;      /* changes up */
  uint64_t shrinks;    /* changes down */
  uint64_t pushbacks;  /* attempts that asked it to back off */
} bulkup_concurrency;
/* The run's concurrency (zeros for a report that did not come from an
 * uploader, such as an empty one). */
BULKUP_EXTERN void bulkup_report_concurrency(const bulkup_report *r,
                                             bulkup_concurrency *out);
/* Cancelled item i (i < bulkup_report_cancelled_count; otherwise NULL).
 * Owned by the report. */
BULKUP_EXTERN const bulkup_result *
bulkup_report_cancelled(const bulkup_report *r, size_t i);

/*
 * bulkup_report_to_json - the report as JSON text:
 *   {"summary": {"submitted", "succeeded", "failed", "cancelled", "retries",
 *                "bytes_sent", "elapsed_s"},
 *    "failures": [{"index", "path", "title", "url", "attempts",
 *                  "http_status", "error", "message", "response_excerpt"}],
 *    "cancelled": [{"index", "path", "title", "url"}],
 *    "concurrency": {"adaptive", "start", "min", "max", "final", "limit",
 *                    "threads", "grows", "shrinks", "pushbacks"}}
 * ("concurrency" only for a report from an uploader: see
 * bulkup_report_concurrency).
 * The summary also has "bytes_succeeded", "journal_failures"
 * (bulkup_report_journal_failures) and, when some details could not be
 * kept for lack of memory, "details_dropped"; a failure also has
 * "bytes_sent", "elapsed_s" and, for a resumable upload, "resumable" and
 * "requests".
 * (path is null for items without a file). JSON text is UTF-8: in a
 * string that is not (a non-UTF-8 file name, a server's bytes), each byte
 * outside a well-formed sequence is written as U+FFFD; for path and title
 * the exact bytes are then given too, base64-encoded, as "path_b64" and
 * "title_b64" (present only in that case). *out is malloc'ed: free it with
 * bulkup_free(). pretty: indent for humans.
 */
BULKUP_EXTERN bulkup_err bulkup_report_to_json(const bulkup_report *r,
                                               bool pretty, char **out);

/* Write the JSON report (pretty, with a final newline) to `path` as
 * bulkup_file_write() does. The report is streamed, one item at a time:
 * memory does not grow with the number of failures (unlike
 * bulkup_report_to_json, whose text is all in memory). */
BULKUP_EXTERN bulkup_err bulkup_report_write_json(const bulkup_report *r,
                                                  const char *path);

/* bulkup_report_write_json with `extra_json` (NULL: none), a JSON object
 * whose members are added to the report: those of its "summary" object
 * (if any) at the end of the report's summary, the others after
 * "cancelled", in their order. BULKUP_EINVAL if it is not a JSON object.
 * (The CLI adds its "shard" and the summary's "input", "skipped" and
 * "not_started" so.) */
BULKUP_EXTERN bulkup_err bulkup_report_write_json_with(const bulkup_report *r,
                                                       const char *path,
                                                       const char *extra_json);

/*
 * bulkup_file_write - write `len` bytes to `path` safely:
 *  - /dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N: written to that
 *    descriptor (not reopened, not replaced);
 *  - an existing non-regular file (a device such as /dev/null, a FIFO):
 *    written into, never replaced;
 *  - otherwise atomically replaced: a temporary file with an unpredictable
 *    name in the same directory, created exclusively (O_EXCL|O_NOFOLLOW:
 *    a file or symbolic link planted at any name is never followed nor
 *    overwritten), fsync'ed, then renamed over `path` (a symbolic link at
 *    `path` itself is replaced by the file, its target left alone). Mode
 *    0644 less the umask.
 * BULKUP_EIO with a message on failure (the target is then untouched);
 * BULKUP_EINVAL for a directory.
 */
BULKUP_EXTERN bulkup_err bulkup_file_write(const char *path, const void *data,
                                           size_t len);

/* Free a report. NULL does nothing. */
BULKUP_EXTERN void bulkup_report_free(bulkup_report *r);

/* Free memory that a bulkup call returned to the caller as a plain buffer
 * (e.g. bulkup_report_to_json, bulkup_redact_url). NULL does nothing. */
BULKUP_EXTERN void bulkup_free(void *p);

/*
 * bulkup_redact_url - a copy of `url` with the values of credential-bearing
 * query parameters (X-Goog-Signature, X-Goog-Credential, X-Amz-Signature,
 * X-Amz-Credential, X-Amz-Security-Token, sig, signature, token,
 * access_token, key, upload_id, AWSAccessKeyId, GoogleAccessId and a few
 * more; case-insensitive, also when the name is percent-encoded, as in
 * X%2DAmz%2DSignature) replaced by "REDACTED", and the userinfo's secret
 * replaced: user:password@ keeps the user, a lone user@ (a token, as in
 * https://TOKEN@host/) becomes REDACTED@. Freed with bulkup_free(); NULL on
 * allocation failure or NULL input.
 */
BULKUP_EXTERN char *bulkup_redact_url(const char *url);

/*
 * bulkup_url_identity - what a signed URL names, without what signs it: a
 * copy of `url` without its signing query parameters (GCS X-Goog-*, S3
 * X-Amz-*, the V2 Signature, Expires, AWSAccessKeyId and GoogleAccessId,
 * and, in a query that has Azure's sig=, the SAS fields sv, ss, srt, sp,
 * se, st, spr, sip, sr, si, sig, ...), other credentials redacted as by
 * bulkup_redact_url. The remaining parameters keep their order, so URLs
 * that differ in them stay distinct; the same object signed again (a new
 * date, expiry, signature) has the same identity. The CLI's --journal keys
 * items by it. Freed with bulkup_free(); NULL on allocation failure or
 * NULL input.
 */
BULKUP_EXTERN char *bulkup_url_identity(const char *url);

#ifdef __cplusplus
}
#endif
#endif /* BULKUP_REPORT_H */
