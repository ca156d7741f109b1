/* report.h - building a bulkup_report (internal). Not thread-safe: the
 * uploader serialises calls under its own lock. */
#ifndef BULKUP_REPORT_INTERNAL_H
#define BULKUP_REPORT_INTERNAL_H

#include "internal.h"

/* A kept result and the one block holding its strings (NULL when the copy
 * failed for lack of memory and only the numbers were kept). */
typedef struct bk_kept {
  bulkup_result r;
  char *block;
} bk_kept;

typedef struct bk_kept_list {
  bk_kept *v;
  size_t n, cap;
} bk_kept_list;

struct bulkup_report {
  bulkup_summary summary;
  bk_kept_list failures;
  bk_kept_list cancelled;
  /* Items whose details could not be kept for lack of memory (they are
   * still counted in the summary). Reported in the JSON when non-zero. */
  uint64_t details_dropped;
  /* Journal records that could not be written (bk_run_journal_failed). */
  uint64_t journal_failures;
  /* Set by the uploader when the run ends (bulkup_report_concurrency). */
  bulkup_concurrency concurrency;
};

bulkup_report *bk_report_new(void);
/* Count the result in the summary and, for a failed or cancelled item, keep
 * a deep copy of it. */
void bk_report_add(bulkup_report *r, const bulkup_result *res);
/* Sort the kept results by index. */
void bk_report_finalize(bulkup_report *r);

#endif
