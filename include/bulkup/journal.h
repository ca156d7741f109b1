/*
 * bulkup/journal.h - an append-only record of completed uploads, so that a
 * run killed at any instant can be rerun and send only what is not done,
 * and of the resumable upload sessions still open, so that the rerun can
 * resume them instead of starting over.
 *
 * The file is text, one record a line:
 *
 *   J1 <crc> <size> <mtime_ns> <key>\n        the item was uploaded
 *   S1 <crc> <size> <mtime_ns> <key> <url>\n  its upload goes on in the
 *                                             resumable session at <url>
 *   S1 <crc> <size> <mtime_ns> <key> \n       its session is forgotten
 *                                             (an empty <url>)
 *
 * <crc> is the CRC-32 (as zlib's crc32) of everything after the CRC field
 * and its space, as 8 hex digits; <size> and <mtime_ns> are decimal; <key>
 * and <url> are any bytes, with '%', bytes below 0x21 (space included) and
 * 0x7f written as %XX, so that neither contains a space. Lines are read in
 * order: an S1 line opens or replaces the item's session, a J1 line or a
 * forgetting S1 line ends it. A line that is incomplete or whose CRC does
 * not match is ignored when the journal is read (a crash can leave at most
 * the last line torn), and the next record starts on a fresh line. A reader
 * that predates S1 lines ignores them as corrupt and reads the rest.
 *
 * Records are written with one write(2) each (O_APPEND) and made durable
 * with fdatasync in batches: after `sync_every` records or `sync_interval`
 * seconds, and on close. A process that is killed loses nothing it wrote; a
 * machine that loses power may lose the last unsynced batch, whose items
 * are then simply uploaded again (a PUT of the same bytes is harmless; a
 * lost session is started afresh).
 *
 * A session URL is a bearer credential: the journal is created with mode
 * 0600; an existing journal that group or others may read loses those
 * permission bits when it is opened holding session URLs, else before
 * the first session URL goes into it (a journal that cannot be made
 * private gets no new session URL: the call fails with BULKUP_EIO). No journal function puts a session URL in an error message
 * (nor should a caller log one).
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
 * bulkup_journal_open - open (creating it, mode 0600, if missing; an
 * existing file keeps its mode unless it holds or gets a session URL: see
 * above) the journal at `path` and read every record
 * in it. opt NULL: the defaults. Memory: 16 bytes per completed item (a
 * 128-bit digest of its identity), plus, for each open session only, its
 * digest and a copy of its URL.
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
 * bulkup_journal_record - append a completed item, which also ends the
 * item's open session, if any. Thread-safe. Recording an identity that is
 * already recorded (and has no open session) writes nothing. Returns
 * BULKUP_OK, BULKUP_EIO, BULKUP_ENOMEM or BULKUP_EINVAL. On an error before
 * the line is written nothing changes; after it (a failed sync), the record
 * stands.
 */
BULKUP_EXTERN bulkup_err bulkup_journal_record(bulkup_journal *j,
                                               const char *key, uint64_t size,
                                               int64_t mtime_ns);

/*
 * bulkup_journal_record_session - record that the item (key, size,
 * mtime_ns: the same identity as bulkup_journal_record) is being uploaded
 * in a resumable session at session_url (copied). A later session record
 * for the same identity replaces it; a completion record
 * (bulkup_journal_record) ends it; session_url NULL or "" forgets it.
 * Written at once (one write(2)), like every record, and synced in the same
 * batches; recording the URL already open, or forgetting a session that is
 * not open, writes nothing. A session may be recorded for an item already
 * recorded as completed: it is then open until ended again. Thread-safe.
 * Returns BULKUP_OK, BULKUP_EIO, BULKUP_ENOMEM, BULKUP_EINVAL (j or key
 * NULL). On an error before the line is written nothing changes; after it
 * (a failed sync), the record stands.
 */
BULKUP_EXTERN bulkup_err bulkup_journal_record_session(bulkup_journal *j,
                                                       const char *key,
                                                       uint64_t size,
                                                       int64_t mtime_ns,
                                                       const char *session_url);

/*
 * bulkup_journal_session - the session URL recorded for this identity and
 * not ended since, as a copy to free with bulkup_free() (bulkup/report.h);
 * NULL when there is none (or on allocation failure). Thread-safe.
 */
BULKUP_EXTERN char *bulkup_journal_session(bulkup_journal *j, const char *key,
                                           uint64_t size, int64_t mtime_ns);

/* Open sessions known (read at open plus recorded since, minus ended). */
BULKUP_EXTERN uint64_t bulkup_journal_session_count(bulkup_journal *j);

/* Make every record so far durable (fdatasync). Thread-safe. */
BULKUP_EXTERN bulkup_err bulkup_journal_sync(bulkup_journal *j);

/* Completed items known (read at open plus recorded since). */
BULKUP_EXTERN uint64_t bulkup_journal_count(bulkup_journal *j);

/* Lines (of either kind) ignored at open because they were torn or
 * corrupt. */
BULKUP_EXTERN uint64_t bulkup_journal_ignored_lines(bulkup_journal *j);

/* Sync, close and free. Returns the sync's or close's error, if any.
 * NULL does nothing. */
BULKUP_EXTERN bulkup_err bulkup_journal_close(bulkup_journal *j);

#ifdef __cplusplus
}
#endif
#endif /* BULKUP_JOURNAL_H */
