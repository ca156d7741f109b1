/* engine/run.c - the run's shared state, as the slots and the uploader
 * see it: the log, the counters under u->lock, an item's completion (the
 * callback, the report), progress, and the origins that refused resumable
 * uploads. Everything here is thread-safe: u->lock guards the report and
 * the counters, progress_lock serialises the progress callback. */
#include "internal.h"
#include "engine/engine.h"

#include <stdio.h>
#include <strings.h>

void bk_log(struct bulkup_uploader *u, bulkup_log_level level,
            const char *fmt, ...) {
  if (!u->opt.log || level > u->opt.log_level)
    return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  /* URLs in messages are redacted already; this catches whatever else a
   * message quotes (a server's words, an error text). */
  size_t n;
  char *red = bk_redact_text(buf, strlen(buf), &n);
  u->opt.log(u->opt.userdata, level,
             red ? red : "(message withheld: out of memory)");
  bk_free(red);
}

void bk_run_item_started(bulkup_uploader *u) {
  bk_mutex_lock(&u->lock);
  u->in_flight++;
  bk_mutex_unlock(&u->lock);
}

void bk_run_add_bytes(bulkup_uploader *u, uint64_t bytes) {
  bk_mutex_lock(&u->lock);
  u->bytes_submitted += bytes;
  bk_mutex_unlock(&u->lock);
}

void bk_run_snapshot(bulkup_uploader *u, bulkup_progress *p) {
  /* submitted first: items only ever end after they were submitted, so
   * reading it before the end counts keeps submitted >= ended. */
  p->submitted = atomic_load(&u->submitted);
  bk_mutex_lock(&u->lock);
  const bulkup_summary *s = &u->report->summary;
  p->succeeded = s->succeeded;
  p->failed = s->failed;
  p->cancelled = s->cancelled;
  p->retries = s->retries;
  p->bytes_succeeded = s->bytes_succeeded;
  p->in_flight = u->in_flight;
  p->bytes_submitted = u->bytes_submitted;
  bk_mutex_unlock(&u->lock);
  p->bytes_sent = atomic_load(&u->bytes_sent);
  p->elapsed_s = bk_now() - u->start;
  p->concurrency = bk_conc_target(&u->conc);
}

void bk_run_pushback(bulkup_uploader *u) {
  bk_mutex_lock(&u->lock);
  bool cut = bk_conc_pushback(&u->conc, bk_now(), atomic_load(&u->bytes_sent));
  unsigned int t = bk_conc_target(&u->conc);
  bk_mutex_unlock(&u->lock);
  if (cut)
    bk_log(u, BULKUP_LOG_INFO, "the server pushes back: %u transfers in "
           "flight from now on", t);
}

bool bk_run_conc_tick(bulkup_uploader *u) {
  bk_mutex_lock(&u->lock);
  bool grew = bk_conc_tick(&u->conc, bk_now(), u->in_flight);
  unsigned int t = bk_conc_target(&u->conc);
  bk_mutex_unlock(&u->lock);
  if (grew)
    bk_log(u, BULKUP_LOG_DEBUG, "no transfer has ended yet and the CPU is "
           "mostly idle: %u transfers in flight from now on", t);
  return grew;
}

void bk_run_progress(bulkup_uploader *u, bool force) {
  if (!u->opt.on_progress)
    return;
  if (force)
    bk_mutex_lock(&u->progress_lock);
  else if (pthread_mutex_trylock(&u->progress_lock) != 0)
    return;
  double now = bk_now();
  if (force || now - u->last_progress >= u->opt.progress_interval) {
    u->last_progress = now;
    bulkup_progress p;
    bk_run_snapshot(u, &p);
    u->opt.on_progress(u->opt.userdata, &p);
  }
  bk_mutex_unlock(&u->progress_lock);
}

static void bk_item_done_redacted(bulkup_uploader *u, const bulkup_result *r) {
  if (u->opt.on_complete)
    u->opt.on_complete(u->opt.userdata, r);
  bk_mutex_lock(&u->lock);
  bk_report_add(u->report, r);
  u->in_flight--;
  if (u->conc.adaptive)
    bk_conc_item_done(&u->conc, bk_now(), atomic_load(&u->bytes_sent),
                      u->in_flight);
  bk_mutex_unlock(&u->lock);
  bk_run_progress(u, false);
}

void bk_item_done(bulkup_uploader *u, const bulkup_result *r) {
  /* Every result passes here on its way to the caller and the report:
   * its message and the server's words are redacted here, once. (An S3
   * SignatureDoesNotMatch body echoes SignatureProvided and the request's
   * X-Amz-Credential; with the report's URL, they rebuild the signed URL.) */
  bulkup_result red;
  char *msg = NULL, *exc = NULL;
  if (r->status != BULKUP_ITEM_SUCCEEDED) {
    red = *r;
    size_t n = 0;
    msg = r->message ? bk_redact_text(r->message, strlen(r->message), &n)
                     : NULL;
    red.message = msg ? msg : "(message withheld: out of memory)";
    if (r->response_excerpt_len) {
      exc = bk_redact_text(r->response_excerpt, r->response_excerpt_len, &n);
      red.response_excerpt = exc ? exc : "";
      red.response_excerpt_len = exc ? n : 0;
    }
    r = &red;
  }
  bk_item_done_redacted(u, r);
  bk_free(msg);
  bk_free(exc);
}

void bk_run_journal_failed(bulkup_uploader *u, const char *why) {
  bk_mutex_lock(&u->lock);
  if (u->report->journal_failures++ == 0)
    snprintf(u->journal_error, sizeof u->journal_error, "%s", why);
  bk_mutex_unlock(&u->lock);
}

/* ---- origins without resumable uploads ---------------------------------- */

/* The length of a URL's scheme://host:port prefix. */
static size_t bk_origin_len(const char *url) {
  const char *p = strstr(url, "://");
  if (!p)
    return strlen(url);
  p += 3;
  return (size_t)(p - url) + strcspn(p, "/?#");
}

bool bk_run_origin_is_plain(struct bulkup_uploader *u, const char *url) {
  size_t n = bk_origin_len(url);
  bool found = false;
  bk_mutex_lock(&u->lock);
  for (unsigned i = 0; i < u->n_plain_origins && !found; i++)
    found = strlen(u->plain_origins[i]) == n &&
            strncasecmp(u->plain_origins[i], url, n) == 0;
  bk_mutex_unlock(&u->lock);
  return found;
}

void bk_run_set_origin_plain(struct bulkup_uploader *u, const char *url) {
  size_t n = bk_origin_len(url);
  char *o = bk_strndup(url, n);
  if (!o)
    return; /* only a shortcut: the next large item asks again */
  bk_mutex_lock(&u->lock);
  for (unsigned i = 0; i < u->n_plain_origins; i++) {
    if (strlen(u->plain_origins[i]) == n &&
        strncasecmp(u->plain_origins[i], url, n) == 0) {
      bk_mutex_unlock(&u->lock);
      bk_free(o);
      return;
    }
  }
  unsigned cap = (unsigned)BK_ARRAY_LEN(u->plain_origins);
  if (u->n_plain_origins == cap) {
    bk_free(u->plain_origins[0]);
    memmove(&u->plain_origins[0], &u->plain_origins[1],
            (cap - 1) * sizeof u->plain_origins[0]);
    u->n_plain_origins--;
  }
  u->plain_origins[u->n_plain_origins++] = o;
  bk_mutex_unlock(&u->lock);
}
