/*
 * bulkup/journal.h - an append-only record of completed uploads, so that a
 * run killed at any instant can be rerun and send only what is not done.
 *
 * Each completed item is one line: a version tag, a CRC-32 of the rest of
 * the line, the item's size and modification time, and its key (any bytes;
 * escaped). A crash can leave at most the last line torn: a line that is
 * incomplete or whose CRC does not match is ignored when the journal is
 * read, and the next record starts on a fresh line. Records are written
 * with one write(2) each (O_APPEND) and made durable with fdatasync in
 * batches: after `sync_every` records or `sync_interval` seconds, and on
 * close. A process that is killed loses nothing it wrote; a machine that
 * loses power may lose the last unsynced batch, whose items are then simply
 * uploaded again (a PUT of the same bytes is harmless).
 */
#ifndef BULKUP_JOURNAL_H
#define BULKUP_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An open journal. Opaque; bulkup_journal_open() makes one,
 * bulkup_journal_close() frees it. */
typedef struct bulkup_journal bulkup_journal;

/* Options for bulkup_journal_open(); fill with
 * bulkup_journal_options_init(). */
typedef struct bulkup_journal_options {
  unsigned int sync_every; /* records per fdatasync; default 256 */
  double sync_interval;    /* seconds between syncs at most; default 1.0 */
} bulkup_journal_options;

/* bulkup_journal_options_init - fill *o with the defaults above. */
BULKUP_EXTERN void bulkup_journal_options_init(bulkup_journal_options *o);

/*
 * bulkup_journal_open - open (creating it, mode 0644, if missing) the
 * journal at `path` and read every record in it. opt NULL: the defaults.
 * Memory: 16 bytes per record (a 128-bit digest of each record's identity).
 *
 * Returns BULKUP_OK and *out; BULKUP_EIO (cannot open, read or write; the
 * detail names the path and the reason); BULKUP_ENOMEM; BULKUP_EINVAL.
 * Lines that do not parse are counted (bulkup_journal_ignored_lines), not
 * fatal.
 */
BULKUP_EXTERN bulkup_err bulkup_journal_open(bulkup_journal **out,
                                             const char *path,
                                             const bulkup_journal_options *opt);

/*
 * bulkup_journal_contains - whether an item with this key, size and
 * modification time (nanoseconds since the epoch; 0 for sources without
 * one) is recorded as completed. A file whose size or mtime changed since
 * it was recorded is not "contained": it will be uploaded again.
 * Thread-safe.
 */
BULKUP_EXTERN bool bulkup_journal_contains(bulkup_journal *j, const char *key,
                                           uint64_t size, int64_t mtime_ns);

/*
 * bulkup_journal_record - append a completed item. Thread-safe. Recording
 * an identity that is already recorded writes nothing. Returns BULKUP_OK,
 * BULKUP_EIO or BULKUP_ENOMEM.
 */
BULKUP_EXTERN bulkup_err bulkup_journal_record(bulkup_journal *j,
                                               const char *key, uint64_t size,
                                               int64_t mtime_ns);

/* Make every record so far durable (fdatasync). Thread-safe. */
BULKUP_EXTERN bulkup_err bulkup_journal_sync(bulkup_journal *j);

/* Records known (read at open plus recorded since). */
BULKUP_EXTERN uint64_t bulkup_journal_count(bulkup_journal *j);

/* Lines ignored at open because they were torn or corrupt. */
BULKUP_EXTERN uint64_t bulkup_journal_ignored_lines(bulkup_journal *j);

/* Sync, close and free. Returns the sync's or close's error, if any.
 * NULL does nothing. */
BULKUP_EXTERN bulkup_err bulkup_journal_close(bulkup_journal *j);

#ifdef __cplusplus
}
#endif
#endif /* BULKUP_JOURNAL_H */
