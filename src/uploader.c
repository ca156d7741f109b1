/* uploader.c - the pool: options, the bounded queue, the worker threads
 * (worker.c) and their transfer slots, cancel, progress and the report.
 *
 * Locking: the queue has its own lock. `u->lock` guards the report and
 * the counters. `submit_lock` orders
 * submitters (an item's index is its queue position). `progress_lock`
 * serialises the progress callback. No thread holds two of these at once,
 * except submit_lock -> queue lock (a submitter blocks in push while
 * holding submit_lock; nothing takes them in the other order). */
#include "internal.h"
#include "uploader.h"
#include "util/str.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>

void bulkup_uploader_options_init(bulkup_uploader_options *o) {
  memset(o, 0, sizeof *o);
  o->workers = BULKUP_DEFAULT_WORKERS;
  o->threads = BULKUP_DEFAULT_THREADS;
  o->queue_capacity = 0;
  bulkup_requests_settings_init(&o->requests);
  bulkup_cloud_upload_settings_init(&o->cloud);
  bulkup_backoff_settings_init(&o->backoff);
  o->retry_budget = true;
  o->retry_budget_tokens = 500;
  o->progress_interval = 0.25;
  o->log_level = BULKUP_LOG_WARN;
  o->resumable_threshold = BULKUP_DEFAULT_RESUMABLE_THRESHOLD;
  o->resumable_chunk_size = BULKUP_DEFAULT_RESUMABLE_CHUNK_SIZE;
}

/* ---- share handle locks ---------------------------------------------- */

static void bk_share_lock(CURL *h, curl_lock_data data, curl_lock_access a,
                          void *ud) {
  BK_UNUSED(h);
  BK_UNUSED(a);
  bulkup_uploader *u = ud;
  if (data >= 0 && data < CURL_LOCK_DATA_LAST)
    bk_mutex_lock(&u->share_locks[data]);
}

static void bk_share_unlock(CURL *h, curl_lock_data data, void *ud) {
  BK_UNUSED(h);
  bulkup_uploader *u = ud;
  if (data >= 0 && data < CURL_LOCK_DATA_LAST)
    bk_mutex_unlock(&u->share_locks[data]);
}

/* ---- completion and progress ----------------------------------------- */

static void bk_snapshot(bulkup_uploader *u, bulkup_progress *p) {
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
}

static void bk_maybe_progress(bulkup_uploader *u, bool force) {
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
    bk_snapshot(u, &p);
    u->opt.on_progress(u->opt.userdata, &p);
  }
  bk_mutex_unlock(&u->progress_lock);
}

static void bk_item_done_redacted(bulkup_uploader *u,
                                   const bulkup_result *r);

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

static void bk_item_done_redacted(bulkup_uploader *u, const bulkup_result *r) {
  if (u->opt.on_complete)
    u->opt.on_complete(u->opt.userdata, r);
  bk_mutex_lock(&u->lock);
  bk_report_add(u->report, r);
  u->in_flight--;
  bk_mutex_unlock(&u->lock);
  bk_maybe_progress(u, false);
}

/* ---- new / free ------------------------------------------------------- */

static bulkup_err bk_validate_options(const bulkup_uploader_options *o) {
  if (o->workers < 1 || o->workers > 1024)
    return bk_error(BULKUP_EINVAL, "workers must be between 1 and 1024 (got %u)",
                    o->workers);
  if (o->threads > 1024)
    return bk_error(BULKUP_EINVAL, "threads must be between 0 and 1024 (got %u)",
                    o->threads);
  if (o->queue_capacity > ((size_t)1 << 24))
    return bk_error(BULKUP_EINVAL, "queue_capacity must be at most %zu",
                    (size_t)1 << 24);
  if (!(o->progress_interval >= 0) || o->progress_interval > 1e9)
    return bk_error(BULKUP_EINVAL,
                    "progress_interval must be a finite number >= 0");
  if (o->upload_buffer_size &&
      (o->upload_buffer_size < 16 * 1024 ||
       o->upload_buffer_size > 2 * 1024 * 1024))
    return bk_error(BULKUP_EINVAL,
                    "upload_buffer_size must be 0 or between 16 KiB and 2 MiB");
  if ((int)o->log_level < BULKUP_LOG_ERROR || o->log_level > BULKUP_LOG_DEBUG)
    return bk_error(BULKUP_EINVAL, "log_level is out of range");
  if (o->user_agent && strpbrk(o->user_agent, "\r\n"))
    return bk_error(BULKUP_EINVAL,
                    "user_agent must be one line (no CR or LF)");
  if (o->resumable_chunk_size < BULKUP_RESUMABLE_CHUNK_UNIT ||
      o->resumable_chunk_size > ((size_t)1 << 30) ||
      o->resumable_chunk_size % BULKUP_RESUMABLE_CHUNK_UNIT != 0)
    return bk_error(BULKUP_EINVAL,
                    "resumable_chunk_size must be a multiple of 256 KiB, from "
                    "256 KiB to 1 GiB (got %zu)",
                    o->resumable_chunk_size);
  return BULKUP_OK;
}

bulkup_err bulkup_uploader_new(bulkup_uploader **out,
                               const bulkup_uploader_options *opt) {
  if (!out)
    return bk_error(BULKUP_EINVAL, "out must not be NULL");
  *out = NULL;
  bulkup_uploader_options defaults;
  if (!opt) {
    bulkup_uploader_options_init(&defaults);
    opt = &defaults;
  }
  bulkup_err rc = bk_validate_options(opt);
  if (rc != BULKUP_OK)
    return rc;
  bulkup_upload_policy policy;
  rc = bulkup_upload_policy_merge(&policy, &opt->requests, &opt->cloud,
                                  &opt->backoff);
  if (rc != BULKUP_OK)
    return rc;
  if ((rc = bk_curl_global_init()) != BULKUP_OK)
    return rc;

  bulkup_uploader *u = bk_calloc(1, sizeof *u);
  if (!u)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  u->opt = *opt;
  u->policy = policy;
  u->opt.ca_file = NULL;
  u->opt.user_agent = NULL;
  bk_mutex_init(&u->lock);
  bk_mutex_init(&u->submit_lock);
  bk_mutex_init(&u->progress_lock);
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
    bk_mutex_init(&u->share_locks[i]);
  atomic_init(&u->cancelled, false);
  atomic_init(&u->bytes_sent, 0);
  atomic_init(&u->submitted, 0);
  bk_budget_init(&u->budget, opt->retry_budget, opt->retry_budget_tokens);
  u->start = bk_now();
  u->last_progress = 0;

  char ua[64];
  snprintf(ua, sizeof ua, "bulkup/%s", BULKUP_VERSION_STRING);
  u->opt.user_agent = bk_strdup(opt->user_agent ? opt->user_agent : ua);
  if (opt->ca_file)
    u->opt.ca_file = bk_strdup(opt->ca_file);
  u->report = bk_report_new();
  size_t cap = opt->queue_capacity ? opt->queue_capacity
                                   : (size_t)opt->workers * 4;
  if (!u->opt.user_agent || (opt->ca_file && !u->opt.ca_file) || !u->report) {
    rc = bk_error(BULKUP_ENOMEM, "out of memory");
    goto fail;
  }
  if ((rc = bk_queue_init(&u->queue, cap)) != BULKUP_OK)
    goto fail;

  /* DNS answers are shared between workers. Connections are not (libcurl
   * does not support sharing its connection cache between threads), and
   * neither are TLS sessions: with libcurl 7.88 and OpenSSL 3, a session
   * shared between threads is read (its certificate chain copied) by one
   * connection while another frees it, outside the share lock
   * (ThreadSanitizer shows it). Each worker keeps its connection, and its
   * own session cache resumes a session when it must reconnect. */
  u->share = curl_share_init();
  if (!u->share) {
    rc = bk_error(BULKUP_ENOMEM, "curl_share_init failed");
    goto fail;
  }
  curl_share_setopt(u->share, CURLSHOPT_LOCKFUNC, bk_share_lock);
  curl_share_setopt(u->share, CURLSHOPT_UNLOCKFUNC, bk_share_unlock);
  curl_share_setopt(u->share, CURLSHOPT_USERDATA, u);
  curl_share_setopt(u->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);

  /* `workers` transfer slots spread over the threads, as evenly as can
   * be: each thread drives its slots through one multi handle. */
  unsigned nthreads = opt->threads ? opt->threads : opt->workers;
  if (nthreads > opt->workers)
    nthreads = opt->workers;
  u->workers = bk_calloc(nthreads, sizeof *u->workers);
  if (!u->workers) {
    rc = bk_error(BULKUP_ENOMEM, "out of memory");
    goto fail;
  }
  u->nworkers = nthreads;
  for (unsigned i = 0; i < u->nworkers; i++) {
    bk_worker *w = &u->workers[i];
    w->u = u;
    w->id = i;
    w->nslots = opt->workers / nthreads + (i < opt->workers % nthreads);
    bk_rng_seed(&w->rng, bk_random_seed() ^ i);
    if ((rc = bk_worker_init(w)) != BULKUP_OK)
      goto fail;
  }
  for (unsigned i = 0; i < u->nworkers; i++) {
    int prc = pthread_create(&u->workers[i].thread, NULL, bk_worker_main,
                             &u->workers[i]);
    if (prc != 0) {
      rc = bk_error(BULKUP_ETHREAD, "pthread_create failed: %s", strerror(prc));
      goto fail;
    }
    u->workers[i].started = true;
  }
  *out = u;
  return BULKUP_OK;

fail:
  /* Some workers may run: closing the queue ends them. */
  if (u->queue.slots)
    bk_queue_close(&u->queue);
  bulkup_uploader_free(u);
  return rc;
}

static void bk_join_workers(bulkup_uploader *u) {
  for (unsigned i = 0; i < u->nworkers; i++) {
    if (u->workers[i].started) {
      pthread_join(u->workers[i].thread, NULL);
      u->workers[i].started = false;
    }
  }
}

void bulkup_uploader_free(bulkup_uploader *u) {
  if (!u)
    return;
  if (!u->finished && u->queue.slots) {
    bulkup_uploader_cancel(u);
    bk_queue_close(&u->queue);
  }
  if (u->workers)
    bk_join_workers(u);
  /* Nothing is left in the queue: workers drain it before they end. */
  for (unsigned i = 0; u->workers && i < u->nworkers; i++)
    bk_worker_cleanup_curl(&u->workers[i]);
  bk_free(u->workers);
  if (u->share)
    curl_share_cleanup(u->share);
  bk_queue_destroy(&u->queue);
  bulkup_report_free(u->report);
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
    bk_mutex_destroy(&u->share_locks[i]);
  bk_mutex_destroy(&u->progress_lock);
  bk_mutex_destroy(&u->submit_lock);
  bk_mutex_destroy(&u->lock);
  bk_free((void *)u->opt.ca_file);
  bk_free((void *)u->opt.user_agent);
  for (unsigned i = 0; i < u->n_plain_origins; i++)
    bk_free(u->plain_origins[i]);
  bk_free(u);
}

/* ---- submit ----------------------------------------------------------- */

/* The last segment of a URL's path, without query or fragment. */
static size_t bk_url_tail(const char *url, const char **start) {
  const char *scheme = strstr(url, "://");
  const char *p = scheme ? scheme + 3 : url;
  size_t plen = strcspn(p, "?#");
  const char *end = p + plen;
  const char *s = end;
  while (s > p && s[-1] != '/')
    s--;
  if (s == p) { /* no path at all: the host */
    *start = p;
    return plen;
  }
  *start = s;
  return (size_t)(end - s);
}

/* Copy the item (and, for an item recorded as failed, its message) into
 * one allocation. */
static bk_job *bk_job_new(const bulkup_item *it, const char *message) {
  const char *title = it->title;
  size_t title_len;
  const char *url = it->url ? it->url : "";
  if (title) {
    title_len = strlen(title);
  } else if ((it->source == BULKUP_SOURCE_FILE || message) && it->path) {
    title = bk_basename(it->path);
    title_len = strlen(title);
  } else {
    title_len = bk_url_tail(url, &title);
  }
  const char *ctype = it->content_type
                          ? it->content_type
                          : bulkup_content_type_for(
                                it->data_type,
                                it->source == BULKUP_SOURCE_FILE ? it->path
                                                                 : url);
  /* The URL's path decides for memory sources, so strip the query: */
  const char *cache = it->cache_control ? it->cache_control : "max-age=86400";
  if (!*cache)
    cache = NULL;
  size_t nh = 0;
  size_t total = sizeof(bk_job);
  if (it->headers)
    while (it->headers[nh])
      total += strlen(it->headers[nh++]) + 1;
  total += (nh + 1) * sizeof(char *);
  size_t lpath = it->path && (it->source == BULKUP_SOURCE_FILE || message)
                     ? strlen(it->path) + 1
                     : 0;
  size_t lurl = strlen(url) + 1;
  size_t lmsg = message ? strlen(message) + 1 : 0;
  size_t ljk = it->journal_key && !message ? strlen(it->journal_key) + 1 : 0;
  size_t lct = strlen(ctype) + 1;
  size_t lcc = cache ? strlen(cache) + 1 : 0;
  total += lpath + lurl + title_len + 1 + lct + lcc + lmsg + ljk;

  bk_job *j = bk_malloc(total);
  if (!j)
    return NULL;
  memset(j, 0, sizeof *j);
  char **hdrs = (char **)(j + 1);
  char *w = (char *)(hdrs + nh + 1);
#define BK_PUT(dst, src, n)                                                   \
  do {                                                                        \
    memcpy(w, src, n);                                                        \
    dst = w;                                                                  \
    w += n;                                                                   \
  } while (0)
  if (lpath)
    BK_PUT(j->path, it->path, lpath);
  BK_PUT(j->url, url, lurl);
  if (lmsg)
    BK_PUT(j->prefail_message, message, lmsg);
  if (ljk)
    BK_PUT(j->journal_key, it->journal_key, ljk);
  memcpy(w, title, title_len);
  w[title_len] = '\0';
  j->title = w;
  w += title_len + 1;
  BK_PUT(j->content_type, ctype, lct);
  if (cache)
    BK_PUT(j->cache_control, cache, lcc);
  for (size_t i = 0; i < nh; i++) {
    size_t l = strlen(it->headers[i]) + 1;
    memcpy(w, it->headers[i], l);
    hdrs[i] = w;
    w += l;
  }
#undef BK_PUT
  hdrs[nh] = NULL;
  j->headers = nh ? (const char **)hdrs : NULL;
  j->source = it->source;
  j->data = it->data;
  j->size = it->size;
  j->read = it->read;
  j->read_ctx = it->read_ctx;
  j->user = it->user;
  return j;
}

/* Give the job its index and queue it (blocking while the queue is full).
 * Frees the job if it cannot be queued. */
static bulkup_err bk_push_job(bulkup_uploader *u, bk_job *j, uint64_t bytes,
                              uint64_t *index) {
  bk_mutex_lock(&u->submit_lock);
  bk_mutex_lock(&u->lock);
  bool finished = u->finished;
  bk_mutex_unlock(&u->lock);
  if (finished) {
    bk_mutex_unlock(&u->submit_lock);
    bk_free(j);
    return bk_error(BULKUP_ESTATE, "submit after finish");
  }
  /* Once pushed, the job belongs to a worker (which may free it at once):
   * everything we still need is taken out before. */
  uint64_t my_index = u->next_index;
  j->index = my_index;
  if (!bk_queue_push(&u->queue, j)) {
    bk_mutex_unlock(&u->submit_lock);
    bk_free(j);
    if (atomic_load(&u->cancelled))
      return bk_error(BULKUP_ECANCELED, "the uploader was cancelled");
    return bk_error(BULKUP_ESTATE, "submit after finish");
  }
  u->next_index++;
  atomic_fetch_add(&u->submitted, 1);
  if (bytes) {
    bk_mutex_lock(&u->lock);
    u->bytes_submitted += bytes;
    bk_mutex_unlock(&u->lock);
  }
  if (index)
    *index = my_index;
  bk_mutex_unlock(&u->submit_lock);
  return BULKUP_OK;
}


bulkup_err bulkup_uploader_submit(bulkup_uploader *u, const bulkup_item *item,
                                  uint64_t *index) {
  if (!u || !item)
    return bk_error(BULKUP_EINVAL, "uploader and item must not be NULL");
  if (!item->url)
    return bk_error(BULKUP_EINVAL, "item.url must be set");
  switch (item->source) {
  case BULKUP_SOURCE_FILE:
    if (!item->path)
      return bk_error(BULKUP_EINVAL, "item.path must be set for a file source");
    break;
  case BULKUP_SOURCE_MEMORY:
    if (!item->data && item->size)
      return bk_error(BULKUP_EINVAL, "item.data must be set for a memory source");
    break;
  case BULKUP_SOURCE_CALLBACK:
    if (!item->read)
      return bk_error(BULKUP_EINVAL,
                      "item.read must be set for a callback source");
    break;
  default:
    return bk_error(BULKUP_EINVAL, "item.source is not a known source kind");
  }
  for (size_t i = 0; item->headers && item->headers[i]; i++)
    if (strpbrk(item->headers[i], "\r\n") || !strchr(item->headers[i], ':'))
      return bk_error(BULKUP_EINVAL,
                      "item.headers[%zu] must be one \"Name: value\" line", i);
  if (atomic_load(&u->cancelled))
    return bk_error(BULKUP_ECANCELED, "the uploader was cancelled");

  bk_job *j = bk_job_new(item, NULL);
  if (!j)
    return bk_error(BULKUP_ENOMEM, "out of memory for the item");
  return bk_push_job(u, j, item->source != BULKUP_SOURCE_FILE ? item->size : 0,
                     index);
}

bulkup_err bulkup_uploader_submit_failure(bulkup_uploader *u,
                                          const bulkup_item *item,
                                          bulkup_error_kind kind,
                                          const char *message,
                                          uint64_t *index) {
  if (!u || !item)
    return bk_error(BULKUP_EINVAL, "uploader and item must not be NULL");
  if ((int)kind < 0 || kind >= BULKUP__ERROR_KIND_COUNT)
    return bk_error(BULKUP_EINVAL, "kind is not a known error kind");
  if (atomic_load(&u->cancelled))
    return bk_error(BULKUP_ECANCELED, "the uploader was cancelled");
  bulkup_item copy = *item;
  copy.source = BULKUP_SOURCE_MEMORY; /* nothing is read */
  copy.headers = NULL;
  bk_job *j = bk_job_new(&copy, message ? message : "invalid item");
  if (!j)
    return bk_error(BULKUP_ENOMEM, "out of memory for the item");
  j->prefail = kind == BULKUP_ERROR_NONE ? BULKUP_ERROR_INPUT : kind;
  j->size = 0;
  j->data = NULL;
  return bk_push_job(u, j, 0, index);
}

/* ---- finish / cancel / progress --------------------------------------- */

bulkup_err bulkup_uploader_finish(bulkup_uploader *u, bulkup_report **out) {
  if (out)
    *out = NULL;
  if (!u)
    return bk_error(BULKUP_EINVAL, "uploader must not be NULL");
  bk_mutex_lock(&u->lock);
  if (u->finished) {
    bk_mutex_unlock(&u->lock);
    return bk_error(BULKUP_ESTATE, "finish called twice");
  }
  u->finished = true;
  bk_mutex_unlock(&u->lock);

  bk_queue_close(&u->queue);
  bk_join_workers(u);
  bk_maybe_progress(u, true);

  /* Every worker has ended: the report is ours alone now. It stays
   * attached (progress snapshots read it) until handed over below. */
  bulkup_report *r = u->report;
  r->summary.elapsed_s = bk_now() - u->start;
  bk_report_finalize(r);

  bulkup_summary s = r->summary;
  bulkup_err rc = BULKUP_OK;
  if (atomic_load(&u->cancelled))
    rc = bk_error(BULKUP_ECANCELED, "the run was cancelled: %llu of %llu "
                  "items cancelled", (unsigned long long)s.cancelled,
                  (unsigned long long)s.submitted);
  else if (s.failed > 0 && !u->policy.allow_failures)
    rc = bk_error(BULKUP_EUPLOAD, "%llu of %llu items failed",
                  (unsigned long long)s.failed,
                  (unsigned long long)s.submitted);
  else if (s.failed > 0 && s.succeeded == 0)
    rc = bk_error(BULKUP_EALLFAILED, "all %llu items failed",
                  (unsigned long long)s.submitted);
  if (out) {
    /* Keep the totals for later progress snapshots. */
    bulkup_report *empty = bk_report_new();
    if (empty) {
      empty->summary = r->summary;
      bk_mutex_lock(&u->lock);
      u->report = empty;
      bk_mutex_unlock(&u->lock);
      *out = r;
    } else {
      rc = bk_error(BULKUP_ENOMEM, "out of memory handing over the report");
    }
  }
  return rc;
}

void bulkup_uploader_cancel(bulkup_uploader *u) {
  if (!u)
    return;
  if (atomic_exchange(&u->cancelled, true))
    return;
  /* Wake everybody: blocked submitters and idle workers (closing the
   * queue), and workers with transfers or retry timers in their slots
   * (waking their multi handles). */
  if (u->queue.slots)
    bk_queue_close(&u->queue);
  for (unsigned i = 0; u->workers && i < u->nworkers; i++)
    if (u->workers[i].multi)
      curl_multi_wakeup(u->workers[i].multi);
}

void bulkup_uploader_progress(bulkup_uploader *u, bulkup_progress *out) {
  memset(out, 0, sizeof *out);
  if (u)
    bk_snapshot(u, out);
}
