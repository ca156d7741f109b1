/* report.h - building a bulkup_report (internal). Not thread-safe while it
 * is built: the uploader serialises bk_report_add under its own lock; once
 * finalized, a report is read from any thread (its lazily loaded details
 * are guarded by `lock`). */
#ifndef BULKUP_REPORT_INTERNAL_H
#define BULKUP_REPORT_INTERNAL_H

#include "internal.h"

#include <pthread.h>

/* A kept result and the one block holding its strings (NULL when the copy
 * failed for lack of memory and only the numbers were kept). */
typedef struct bk_kept {
  bulkup_result r;
  char *block;
} bk_kept;

/* Items of a spilled list that bulkup_report_failure finds by merging
 * from the start, without building the list's index. */
#define BK_LIST_HEAD 64

/* A sorted run of records written to the spill file. */
typedef struct bk_spill_run {
  uint64_t off, count;
} bk_spill_run;

/*
 * The failed (or cancelled) items of a run. They are kept in memory (v)
 * until they hold BK_SPILL_BYTES; from then on each time v is full it is
 * sorted by index and written to the report's spill file (an unlinked
 * temporary file) as one run, and v starts again empty: memory stays
 * bounded whatever the number of failures. Readers merge the runs
 * (bk_report_iter). A list with no run is all in v, sorted by finalize.
 */
typedef struct bk_kept_list {
  bk_kept *v;
  size_t n, cap;
  size_t bytes;        /* bytes of v's blocks */
  bk_spill_run *runs;  /* spilled runs, in file order */
  size_t nruns, runcap;
  uint64_t total;      /* kept items: n + those in runs */
  /* Random access to a spilled list (bulkup_report_failure), built on
   * first use: each record's offset in index order, and the records
   * loaded so far (kept until the report is freed). */
  uint64_t *offs;
  bk_kept **loaded;
  bk_kept *head[BK_LIST_HEAD]; /* the first ones, found without offs */
} bk_kept_list;

struct bulkup_report {
  bulkup_summary summary;
  bk_kept_list failures;
  bk_kept_list cancelled;
  /* Items whose details could not be kept for lack of memory or disk
   * (they are still counted in the summary). Reported in the JSON when
   * non-zero. */
  uint64_t details_dropped;
  /* Journal records that could not be written (bk_run_journal_failed). */
  uint64_t journal_failures;
  /* The spill file (-1: none yet; spill_failed: it could not be made or
   * written, details are then kept in memory), its size. */
  int spill_fd;
  bool spill_failed;
  uint64_t spill_size;
  /* Bytes a list keeps in memory before spilling (BK_SPILL_BYTES; tests
   * may lower it). */
  size_t spill_bytes;
  pthread_mutex_t lock;
};

/* Details kept in memory per list before they are spilled to disk. */
#define BK_SPILL_BYTES ((size_t)1 << 20)

bulkup_report *bk_report_new(void);
/* Count the result in the summary and, for a failed or cancelled item, keep
 * a deep copy of it. */
void bk_report_add(bulkup_report *r, const bulkup_result *res);
/* Sort the kept results by index (spill what is left when the list has
 * spilled before). */
void bk_report_finalize(bulkup_report *r);

#endif
