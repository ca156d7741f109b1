/*
 * upload_direct.c - `bulkup upload` in its direct modes (--to, --manifest):
 * items PUT straight to URLs by the upload engine; the summary and the
 * exit status.
 *
 * A run has two phases. The first checks the input without uploading
 * anything: every PATH exists, every directory can be walked (counting
 * files and bytes for the progress line), every manifest record parses,
 * names an existing file and an http(s) URL. Bad input ends the run here
 * with status 2. The second phase walks or reads the input again and
 * streams the items into the uploader, whose bounded queue blocks us when
 * the workers are behind, so memory stays flat however many files there
 * are. A manifest that cannot be read twice (standard input, a pipe) is
 * read once: a bad record then becomes a failed item in the report.
 *
 * A first signal (signals.c's thread) calls the cancel hook installed
 * here: the uploader stops, and the run ends with its report. The walk of
 * the PATHs (both phases') and the shards are in inputs.c, the summary and
 * --report in console.c: the workflow (upload_api.c) uses them too.
 */
#include "upload.h"

#include "cli.h"
#include "manifest.h"
#include "urlenc.h"

#include <bulkup.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_BAD_LINES_SHOWN 20

/* The shard key of a manifest URL: up to its query or fragment, so that
 * URLs signed again (a new signature, date or expiry) keep their shard. */
static bool url_in_shard(const upload_cli *c, const char *url) {
  return upload_in_shard(c, url, strcspn(url, "?#"));
}

/* ---- the direct run's cancel hook (the signal thread is in signals.c) ---
 */

/* The direct modes' cancel hook: the uploader stops, the run ends with a
 * report. */
static void cancel_uploader(void *arg, int sig) {
  upload_say("%s: cancelling the uploads (send it again to quit at once)",
      sig == SIGINT ? "interrupted" : "terminated");
  bulkup_uploader_cancel(arg);
}

/* ---- phase one: checking the input ---------------------------------------
 */

typedef struct totals {
  uint64_t files, bytes; /* this run's items (its shard) */
  uint64_t input;        /* the whole input's items */
} totals;

/* The check's count of a file of the shard. */
static int count_file(void *arg, const upload_file *f) {
  totals *t = arg;
  t->files++;
  t->bytes += f->size;
  return -1;
}

/* Every PATH exists and is a file or a directory; walk the directories,
 * counting. */
static int check_paths(upload_cli *c, totals *t) {
  upload_walk w = {.pass = UPLOAD_WALK_CHECK,
                   /* Byte totals only feed the progress line and the dry
                    * run's count. */
                   .sizes = c->dry_run || upload_show_progress(c),
                   .file = count_file,
                   .arg = t};
  int rc = upload_walk_paths(c, &w);
  t->input += w.input;
  return rc;
}

/* A manifest read before the run named an s3:// or gs:// URL. */
static bool manifest_has_s3;

/* Check one manifest record (scheme, file, data type). Returns NULL or a
 * reason written into buf. */
static const char *check_entry(const upload_cli *c, const manifest_entry *e,
                               bool check_file, char *buf, size_t n,
                               uint64_t *size) {
  if (upload_s3_is_dest(e->url)) {
    manifest_has_s3 = true;
  } else if (extras_is_az(e->url)) {
    char *u = extras_resolve_az(&c->x, e->url, buf, n);
    if (!u)
      return buf;
    free(u);
  } else if (!url_is_http(e->url)) {
    char *red = bulkup_redact_url(e->url);
    snprintf(buf, n, "URL '%s' is not http://, https://, s3:// or gs://",
             red ? red : "(unprintable)");
    bulkup_free(red);
    return buf;
  }
  if (e->data_type &&
      bulkup_data_type_from_string(e->data_type) == BULKUP_DATA_TYPE_MISSING) {
    snprintf(buf, n, "unknown data_type '%s'", e->data_type);
    return buf;
  }
  if (!check_file)
    return NULL;
  struct stat st;
  if (stat(e->path, &st) != 0) {
    snprintf(buf, n, "%s: %s", e->path, strerror(errno));
    return buf;
  }
  if (!S_ISREG(st.st_mode)) {
    snprintf(buf, n, "%s: not a regular file", e->path);
    return buf;
  }
  if (access(e->path, R_OK) != 0) {
    snprintf(buf, n, "%s: %s", e->path, strerror(errno));
    return buf;
  }
  *size = (uint64_t)st.st_size;
  return NULL;
}

/* Whether the manifest can be read twice (a regular file). */
static bool manifest_rereadable(const char *path) {
  struct stat st;
  return strcmp(path, "-") != 0 && stat(path, &st) == 0 &&
         S_ISREG(st.st_mode);
}

static int check_manifest(upload_cli *c, totals *t) {
  char err[1024];
  manifest_reader *r = manifest_open(c->manifest, MANIFEST_AUTO, err,
                                     sizeof err);
  if (!r) {
    cli_error("%s", err);
    return CLI_EXIT_USAGE;
  }
  unsigned long bad = 0, steps = 0;
  manifest_entry e;
  manifest_status ms;
  int rc = -1;
  while ((ms = manifest_next(r, &e)) != MANIFEST_EOF) {
    if ((++steps & 1023) == 0 && upload_signal()) {
      rc = upload_exit_for_signal();
      break;
    }
    if (ms == MANIFEST_IOERR) {
      if (upload_signal()) {
        rc = upload_exit_for_signal();
        break;
      }
      cli_error("%s", manifest_error(r));
      rc = CLI_EXIT_USAGE;
      break;
    }
    char buf[PATH_MAX + 256], reason[PATH_MAX + 1024];
    uint64_t size = 0;
    const char *why;
    bool mine = ms == MANIFEST_ENTRY && url_in_shard(c, e.url);
    if (ms == MANIFEST_BAD)
      snprintf(reason, sizeof reason, "%s", manifest_error(r));
    else if ((why = check_entry(c, &e, mine, buf, sizeof buf, &size)) != NULL)
      snprintf(reason, sizeof reason, "%s line %lu: %s", c->manifest, e.line,
               why);
    else {
      t->input++;
      if (mine) {
        t->files++;
        t->bytes += size;
      }
      continue;
    }
    if (++bad <= MAX_BAD_LINES_SHOWN)
      cli_error("%s", reason);
  }
  manifest_close(r);
  if (bad > MAX_BAD_LINES_SHOWN)
    cli_error("... and %lu more bad lines", bad - MAX_BAD_LINES_SHOWN);
  if (rc != -1)
    return rc;
  if (bad) {
    cli_error("nothing uploaded: %lu bad line%s in manifest %s", bad,
              bad == 1 ? "" : "s", c->manifest);
    return CLI_EXIT_USAGE;
  }
  return -1;
}

/* ---- phase two: uploading ------------------------------------------------
 */

typedef struct run {
  upload_cli *c;
  bulkup_uploader *u;
  unsigned long input_errors; /* problems met after the upload started */
  bool stop;
  bulkup_journal *journal;
  unsigned long long skipped; /* recorded as done by the journal */
} run;

/* The journal key of a file item: its destination's identity (the URL
 * without its signing parameters, so that a manifest signed again resumes,
 * and with other credentials redacted: the journal is a plain file) and
 * its source. */
static char *journal_key(const bulkup_item *it) {
  char *url = bulkup_url_identity(it->url);
  if (!url)
    return NULL;
  size_t n = strlen(url) + strlen(it->path) + 2;
  char *k = malloc(n);
  if (k)
    snprintf(k, n, "%s\n%s", url, it->path);
  bulkup_free(url);
  return k;
}

/* Submit one item; false when the run must stop submitting. With a
 * journal, a file recorded as uploaded (same URL, path, size and mtime) is
 * skipped, and the others carry their key so that the library records
 * them when they succeed. */
static bool submit(run *rn, const bulkup_item *item) {
  bulkup_item copy = *item;
  const bulkup_item *it = item;
  char *key = NULL;
  if (rn->journal && item->path) {
    key = journal_key(item);
    struct stat st;
    if (key && stat(item->path, &st) == 0) {
      int64_t mtime =
          (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
      if (bulkup_journal_contains(rn->journal, key, (uint64_t)st.st_size,
                                  mtime)) {
        free(key);
        rn->skipped++;
        return true;
      }
    }
    copy.journal_key = key;
    it = &copy;
  }
  bulkup_err rc = bulkup_uploader_submit(rn->u, it, NULL);
  free(key);
  if (rc == BULKUP_OK)
    return true;
  if (rc == BULKUP_ECANCELED) {
    rn->stop = true;
    return false;
  }
  upload_say("cannot queue %s: %s%s%s", it->path ? it->path : it->url,
      bulkup_strerror(rc), *bulkup_last_error_message() ? ": " : "",
      bulkup_last_error_message());
  rn->input_errors++;
  if (rc != BULKUP_EINVAL)
    rn->stop = true;
  return !rn->stop;
}

static void item_defaults(const upload_cli *c, bulkup_item *it) {
  bulkup_item_init(it);
  it->data_type = c->data_type;
  it->content_type = c->content_type;
  if (c->cache_control)
    it->cache_control = c->cache_control;
}

/* a's lines then b's, NULL-ended (either may be NULL); the strings are
 * not copied. malloc'ed; NULL when out of memory. */
static const char **concat_lines(const char *const *a, const char *const *b) {
  size_t na = 0, nb = 0;
  while (a && a[na])
    na++;
  while (b && b[nb])
    nb++;
  const char **out = malloc((na + nb + 1) * sizeof *out);
  if (!out)
    return NULL;
  for (size_t i = 0; i < na; i++)
    out[i] = a[i];
  for (size_t i = 0; i < nb; i++)
    out[na + i] = b[i];
  out[na + nb] = NULL;
  return out;
}

/* An s3:// or gs:// item: its URL, headers and signer (rel: under the
 * --to prefix; NULL for a manifest's URL). false when it cannot be
 * submitted (said, counted). */
static bool s3_item(run *rn, const char *dest, const char *rel,
                    bulkup_item *it, char **url) {
  char why[1024];
  const char *err = upload_s3_item(rn->c->s3, dest, rel, it, url, why,
                                   sizeof why);
  if (!err) {
    it->storage = BULKUP_STORAGE_S3; /* large files in parallel parts */
    return true;
  }
  upload_say("cannot queue %s: %s", it->path ? it->path : dest, err);
  rn->input_errors++;
  if (strncmp(err, "no credentials", 14) == 0)
    rn->stop = true;
  return false;
}

/* Submit a file of the shard, to --to joined with its key. */
static int submit_file(void *arg, const upload_file *f) {
  run *rn = arg;
  bulkup_item it;
  item_defaults(rn->c, &it);
  it.path = f->path;
  char *url = NULL;
  const char **s3h = NULL;
  if (rn->c->s3 && upload_s3_is_dest(rn->c->to)) {
    if (!s3_item(rn, rn->c->to, f->key, &it, &url))
      return rn->stop ? 0 : -1;
    s3h = concat_lines(it.headers, NULL);
    if (!s3h) {
      upload_say("out of memory");
      rn->stop = true;
      free(url);
      return 0;
    }
  } else {
    url = extras_to_url(&rn->c->x, rn->c->to, f->key);
  }
  hdrlist h = {0};
  bool oom = !url;
  if (url)
    it.headers = extras_item_headers(&rn->c->x, rn->c->to, url,
                                     (const char *const *)s3h, &h, &oom);
  free(s3h);
  if (oom) {
    upload_say("out of memory");
    rn->stop = true;
    free(url);
    return 0;
  }
  it.url = url;
  bool ok = submit(rn, &it);
  hdrlist_free(&h);
  free(url);
  return ok ? -1 : 0;
}

static void upload_paths(run *rn) {
  upload_walk w = {.pass = UPLOAD_WALK_AGAIN,
                   .sizes = false, /* the uploader stats each file itself */
                   .file = submit_file,
                   .arg = rn};
  if (upload_walk_paths(rn->c, &w) != -1)
    rn->stop = true;
  rn->input_errors += w.problems;
}

/* A manifest record that could not be used, as a failed item of kind
 * "input": it keeps its place in the input order and in the report. */
static bool submit_bad_record(run *rn, unsigned long line, const char *why) {
  char title[64];
  snprintf(title, sizeof title, "manifest line %lu", line);
  bulkup_item it;
  item_defaults(rn->c, &it);
  it.title = title;
  upload_say("%s", why);
  bulkup_err err = bulkup_uploader_submit_failure(rn->u, &it, BULKUP_ERROR_INPUT,
                                                  why, NULL);
  if (err != BULKUP_OK) {
    rn->stop = true;
    return false;
  }
  return true;
}

/* Upload from `r` (already open for a one-pass manifest, else NULL: open
 * it again now). Closes the reader. */
static void upload_manifest(run *rn, manifest_reader *r) {
  upload_cli *c = rn->c;
  char err[1024];
  if (!r)
    r = manifest_open(c->manifest, MANIFEST_AUTO, err, sizeof err);
  if (!r) {
    upload_say("%s", err);
    rn->input_errors++;
    return;
  }
  manifest_entry e;
  manifest_status ms;
  while (!rn->stop && (ms = manifest_next(r, &e)) != MANIFEST_EOF) {
    if (ms == MANIFEST_IOERR) {
      if (upload_signal())
        break; /* woken by the signal: the run is being cancelled */
      upload_say("%s", manifest_error(r));
      rn->input_errors++;
      break;
    }
    if (ms == MANIFEST_BAD) {
      /* A record that does not parse has no key: shard 0 reports it, so
       * that merged shard reports hold it once. */
      if (c->shard_k == 0)
        submit_bad_record(rn, manifest_error_line(r), manifest_error(r));
      continue;
    }
    if (!url_in_shard(c, e.url))
      continue;
    bulkup_data_type dt = c->data_type;
    if (e.data_type) {
      dt = bulkup_data_type_from_string(e.data_type);
      if (dt == BULKUP_DATA_TYPE_MISSING) {
        char why[512];
        snprintf(why, sizeof why, "%s line %lu: unknown data_type '%s'",
                 c->manifest, e.line, e.data_type);
        submit_bad_record(rn, e.line, why);
        continue;
      }
    }
    char *az = NULL;
    if (extras_is_az(e.url)) {
      char why[1024];
      if (!(az = extras_resolve_az(&c->x, e.url, why, sizeof why))) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s line %lu: %s", c->manifest, e.line, why);
        submit_bad_record(rn, e.line, msg);
        continue;
      }
    }
    bulkup_item it;
    item_defaults(c, &it);
    it.path = e.path;
    it.url = az ? az : e.url;
    it.data_type = dt;
    if (e.content_type)
      it.content_type = e.content_type;
    if (e.title)
      it.title = e.title;
    char *s3url = NULL;
    const char **lines = NULL;
    if (upload_s3_is_dest(e.url)) {
      if (!s3_item(rn, e.url, NULL, &it, &s3url))
        continue;
      lines = concat_lines(it.headers, e.headers);
      if (!lines) {
        upload_say("out of memory");
        rn->stop = true;
        free(s3url);
        break;
      }
    }
    hdrlist h;
    bool oom;
    it.headers = extras_item_headers(
        &c->x, e.url, it.url,
        lines ? (const char *const *)lines : e.headers, &h, &oom);
    free(lines);
    if (oom) {
      upload_say("out of memory");
      rn->stop = true;
      free(az);
      free(s3url);
      break;
    }
    submit(rn, &it);
    hdrlist_free(&h);
    free(az);
    free(s3url);
  }
  manifest_close(r);
}

/* ---- the end --------------------------------------------------------------
 */

int upload_direct_run(upload_cli *c) {
  totals t = {0, 0, 0};
  bool known = true;
  manifest_reader *one_pass = NULL;
  int rc;
  if (c->to)
    rc = check_paths(c, &t);
  else if (c->dry_run || manifest_rereadable(c->manifest))
    rc = check_manifest(c, &t);
  else {
    /* Read once, as the upload goes; but a manifest that cannot even be
     * opened is still bad input. */
    struct stat st;
    if (strcmp(c->manifest, "-") != 0 && stat(c->manifest, &st) == 0 &&
        S_ISDIR(st.st_mode)) {
      cli_error("manifest %s is a directory", c->manifest);
      return CLI_EXIT_USAGE;
    }
    char err[1024];
    one_pass = manifest_open(c->manifest, MANIFEST_AUTO, err, sizeof err);
    if (!one_pass) {
      cli_error("%s", err);
      return CLI_EXIT_USAGE;
    }
    known = false;
    rc = -1;
  }
  if (rc != -1)
    return rc;
  /* A one-pass manifest (a pipe, a FIFO) that a signal woke while it was
   * being opened: the run goes on, cancelled, to its report. */
  if (upload_signal() && !one_pass)
    return upload_exit_for_signal();
  if (c->dry_run) {
    upload_print_dry_run(c, t.input, t.files, t.bytes);
    return CLI_EXIT_OK;
  }
  if (c->shard_n && known && !c->quiet)
    cli_error("%s: %llu of the %llu items in the input", upload_shard_text(c),
              (unsigned long long)t.files, (unsigned long long)t.input);

  if (c->opt.insecure)
    cli_error("WARNING: --insecure: TLS certificates and host names are NOT "
              "verified; anyone on the network path can read and alter these "
              "uploads. Use --cacert FILE to trust a test server instead.");

  bulkup_journal *journal = NULL;
  if (c->journal) {
    bulkup_err jerr = bulkup_journal_open(&journal, c->journal, NULL);
    if (jerr != BULKUP_OK) {
      cli_error("--journal: %s", bulkup_last_error_message());
      manifest_close(one_pass);
      return CLI_EXIT_USAGE;
    }
    if (!c->quiet && bulkup_journal_count(journal))
      cli_error("journal %s: %llu file%s already uploaded", c->journal,
                (unsigned long long)bulkup_journal_count(journal),
                bulkup_journal_count(journal) == 1 ? "" : "s");
    c->opt.journal = journal;
  }

  results *res = NULL;
  if (c->results) {
    char rerr[1024];
    res = results_open(c->results, rerr, sizeof rerr);
    if (!res) {
      cli_error("--results: %s", rerr);
      manifest_close(one_pass);
      bulkup_journal_close(journal);
      return CLI_EXIT_USAGE;
    }
    results_set_say(res, upload_say);
    c->opt.on_complete = results_on_complete;
    c->opt.userdata = res;
    upload_set_results(res);
  }

  c->opt.log = upload_log_cb;
  c->opt.log_level = upload_log_level(c);
  upload_s3 s3 = {0};
  /* A manifest read already says whether it names s3:// or gs://; one
   * read as it goes (standard input) may. */
  if ((c->manifest && (!known || manifest_has_s3)) ||
      upload_s3_is_dest(c->to)) {
    int src = upload_s3_setup(&s3, &c->s3o, &c->opt,
                              upload_s3_is_dest(c->to) ? c->to : NULL,
                              c->manifest != NULL, c->manifest && !known);
    if (src != -1) {
      upload_s3_free(&s3);
      manifest_close(one_pass);
      bulkup_journal_close(journal);
      upload_set_results(NULL);
      char rerr[1024];
      results_close(res, rerr, sizeof rerr);
      return src;
    }
    c->s3 = &s3;
  }
  bulkup_uploader *u = NULL;
  bulkup_err err = bulkup_uploader_new(&u, &c->opt);
  if (err != BULKUP_OK) {
    c->s3 = NULL;
    upload_s3_free(&s3);
    const char *detail = bulkup_last_error_message();
    cli_error("cannot start the uploader: %s%s%s", bulkup_strerror(err),
              *detail ? ": " : "", detail);
    manifest_close(one_pass);
    bulkup_journal_close(journal);
    upload_set_results(NULL);
    char rerr[1024];
    results_close(res, rerr, sizeof rerr);
    return err == BULKUP_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
  }
  upload_set_cancel(cancel_uploader, u);
  if (upload_signal())
    bulkup_uploader_cancel(u);

  if (upload_show_progress(c)) {
    progress_totals pt = {known, t.files, t.bytes};
    upload_swap_progress(progress_start(u, stderr, &pt, 0.25));
  }

  run rn = {c, u, 0, false, journal, 0};
  if (c->to)
    upload_paths(&rn);
  else
    upload_manifest(&rn, one_pass);

  bulkup_report *rep = NULL;
  err = bulkup_uploader_finish(u, &rep);
  if (err == BULKUP_EIO) /* uploaded, but not journalled: the exit says so */
    cli_error("--journal: %s", bulkup_last_error_message());

  progress_stop(upload_swap_progress(NULL));

  int status;
  switch (err) {
  case BULKUP_OK:
    status = rn.input_errors ? CLI_EXIT_FAILED : CLI_EXIT_OK;
    break;
  default:
    status = CLI_EXIT_FAILED;
    break;
  }
  if (upload_signal())
    status = upload_exit_for_signal();

  if (res) {
    char rerr[1024];
    upload_set_results(NULL);
    if (results_close(res, rerr, sizeof rerr) != 0) {
      cli_error("--results: %s", rerr);
      if (status == CLI_EXIT_OK)
        status = CLI_EXIT_FAILED;
    }
  }

  if (journal) {
    if (bulkup_journal_close(journal) != BULKUP_OK) {
      cli_error("--journal: %s", bulkup_last_error_message());
      if (status == CLI_EXIT_OK)
        status = CLI_EXIT_FAILED;
    }
    if (rn.skipped && !c->quiet)
      cli_error("skipped %llu file%s recorded as uploaded in %s", rn.skipped,
                rn.skipped == 1 ? "" : "s", c->journal);
  }
  if (rep) {
    /* Every input item the run knew of is accounted for: what phase one
     * counted and was neither submitted nor skipped was never started
     * (a signal stopped the submitting; or the file vanished since). */
    bulkup_summary s;
    bulkup_report_summary(rep, &s);
    uint64_t seen = s.submitted + rn.skipped;
    c->acct.set = true;
    c->acct.skipped = rn.skipped;
    c->acct.input = known && t.files > seen ? t.files : seen;
    c->acct.not_started = c->acct.input - seen;
    if (!c->quiet)
      upload_print_summary(c, rep, true);
    if (!upload_write_report(c, rep) && status == CLI_EXIT_OK)
      status = CLI_EXIT_FAILED;
  } else {
    cli_error("the uploader returned no report (%s)", bulkup_strerror(err));
    if (status == CLI_EXIT_OK)
      status = CLI_EXIT_FAILED;
  }
  if (rn.input_errors)
    cli_error("%lu input error%s after the upload had started (see above)",
              rn.input_errors, rn.input_errors == 1 ? "" : "s");

  upload_set_cancel(NULL, NULL);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  c->s3 = NULL;
  upload_s3_free(&s3);
  return status;
}
