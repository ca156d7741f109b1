/*
 * console.c - what `bulkup upload` prints and writes at the end of a run,
 * in either mode: the dry run's count, the summary on stderr, --report.
 */
#include "upload.h"

#include "cli.h"
#include "report_merge.h"

#include <bulkup.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define MAX_FAILURES_SHOWN 5

void upload_print_dry_run(const upload_cli *c, uint64_t input, uint64_t files,
                          uint64_t bytes) {
  if (c->shard_n)
    printf("dry run: %llu items in the input, %llu in shard %u/%u (%llu "
           "bytes); nothing uploaded\n",
           (unsigned long long)input, (unsigned long long)files, c->shard_k,
           c->shard_n, (unsigned long long)bytes);
  else
    printf("dry run: %llu items in the input (%llu bytes); nothing "
           "uploaded\n",
           (unsigned long long)input, (unsigned long long)bytes);
  fflush(stdout);
}

bool upload_write_report(const upload_cli *c, const bulkup_report *rep) {
  if (!c->report || !rep)
    return true;
  report_extra x = {0};
  if (c->shard_n) {
    x.shard_k = c->shard_k;
    x.shard_n = c->shard_n;
    x.shard_key = c->manifest ? "url" : "path";
  }
  if (c->acct.set) {
    x.acct = true;
    x.input = c->acct.input;
    x.skipped = c->acct.skipped;
    x.not_started = c->acct.not_started;
  }
  char err[1024];
  if (report_write_run(rep, c->report, &x, err, sizeof err))
    return true;
  cli_error("cannot write the report %s: %s", c->report, err);
  return false;
}

void upload_print_summary(const upload_cli *c, const bulkup_report *rep,
                          bool list_failures) {
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  uint64_t not_started = c->acct.set ? c->acct.not_started : 0;
  char ns[64] = "";
  if (not_started)
    snprintf(ns, sizeof ns, ", %llu not started",
             (unsigned long long)not_started);
  cli_error("uploaded %llu of %llu files (%.1f MB) in %.1f s, %llu failed, "
            "%llu cancelled%s, %llu retries",
            (unsigned long long)s.succeeded,
            (unsigned long long)(s.submitted + not_started),
            (double)s.bytes_succeeded / 1e6, s.elapsed_s,
            (unsigned long long)s.failed, (unsigned long long)s.cancelled, ns,
            (unsigned long long)s.retries);
  size_t nf = bulkup_report_failure_count(rep);
  size_t shown = nf < MAX_FAILURES_SHOWN ? nf : MAX_FAILURES_SHOWN;
  if (!list_failures)
    shown = 0;
  for (size_t i = 0; i < shown; i++) {
    const bulkup_result *r = bulkup_report_failure(rep, i);
    if (!r)
      continue;
    char status[32] = "";
    if (r->http_status)
      snprintf(status, sizeof status, " (HTTP %d)", r->http_status);
    fprintf(stderr, "  failed: %s -> %s: %s%s: %s\n",
            r->path ? r->path : r->title, r->url,
            bulkup_error_kind_name(r->error), status, r->message);
  }
  if (nf > shown && shown > 0)
    fprintf(stderr, "  ... and %zu more failure%s\n", nf - shown,
            nf - shown == 1 ? "" : "s");
  if (not_started)
    fprintf(stderr,
            "  %llu file%s never started (counted in the report as "
            "not_started; a rerun with --journal resumes)\n",
            (unsigned long long)not_started, not_started == 1 ? " was" : "s were");
  if (nf > 0 || s.cancelled > 0) {
    if (c->report)
      fprintf(stderr, "  every failed and cancelled file is listed in %s\n",
              c->report);
    else
      fprintf(stderr, "  (--report FILE lists every failed file)\n");
  }
}
