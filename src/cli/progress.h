/*
 * progress.h - the progress line on stderr.
 *
 * A thread polls bulkup_uploader_progress() (or, for a run reached only
 * through its callbacks, the last snapshot fed to it) four times a second
 * and redraws one line with '\r':
 *
 *   412/1000 files  48.2/120.5 MB  85.3 files/s  10.1 MB/s  ETA 0:07
 *   retries 3  failed 1
 *
 * (one line; "files/s" and "MB/s" are averaged over the last 5 seconds).
 * Diagnostics printed meanwhile go through progress_hold()/_release() so
 * they do not land in the middle of the line.
 */
#ifndef BULKUP_CLI_PROGRESS_H
#define BULKUP_CLI_PROGRESS_H

#include <bulkup.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What the run is expected to hold; known false when not counted
 * beforehand (a manifest read from a pipe). */
typedef struct progress_totals {
  bool known;
  uint64_t files;
  uint64_t bytes;
} progress_totals;

/* Rates measured over the recent past. */
typedef struct progress_rates {
  double files_per_s;
  double bytes_per_s;        /* body bytes sent, retries included */
  double done_bytes_per_s;   /* sizes of succeeded items */
} progress_rates;

/* Format one progress line (no '\r', no '\n') into buf. */
void progress_format(char *buf, size_t n, const bulkup_progress *p,
                     const progress_totals *t, const progress_rates *r);

/* "1.2 MB", "512 B", "3.4 GB" (decimal units). */
void progress_human_bytes(char *buf, size_t n, double bytes);
/* "0:07", "12:34", "1:02:03". */
void progress_human_duration(char *buf, size_t n, double seconds);

typedef struct progress progress;

/* Start redrawing on `out` every `interval` seconds. NULL if the thread
 * could not start (no progress line then; not an error). */
progress *progress_start(bulkup_uploader *u, FILE *out,
                         const progress_totals *t, double interval);

/* The same for a run whose uploader the caller cannot reach (the API
 * workflow): the line shows the last snapshot given to progress_feed(),
 * which the run's on_progress callback calls. */
progress *progress_start_fed(FILE *out, const progress_totals *t,
                             double interval);
/* Record the latest snapshot of a fed progress line. Thread-safe; NULL
 * does nothing. */
void progress_feed(progress *p, const bulkup_progress *snap);

/* Draw the last state, end the line and stop the thread. NULL does
 * nothing. */
void progress_stop(progress *p);

/* Erase the line and keep it from being redrawn until progress_release(),
 * so that a message can be printed. NULL is allowed (does nothing but
 * lock the stream). */
void progress_hold(progress *p);
void progress_release(progress *p);

#endif
