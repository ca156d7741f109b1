/* engine/uploader.c - the engine's public API: options, the bounded
 * queue, the worker threads (worker.c), submit, finish, cancel, progress
 * and the report.
 *
 * Locking: the queue has its own lock. `u->lock` guards the report and
 * the counters (run.c takes it for the workers). `submit_lock` orders
 * submitters (an item's index is its queue position). `progress_lock`
 * serialises the progress callback. No thread holds two of these at once,
 * except submit_lock -> queue lock (a submitter blocks in push while
 * holding submit_lock; nothing takes them in the other order). */
#include "internal.h"
#include "engine/engine.h"
#include "engine/worker.h"

#include <limits.h>
#include <sched.h>
#include <unistd.h>
#include <math.h>
#include <stdio.h>

void bulkup_uploader_options_init(bulkup_uploader_options *o) {
  memset(o, 0, sizeof *o);
  o->workers = BULKUP_WORKERS_AUTO;
  o->workers_max = BULKUP_DEFAULT_WORKERS_MAX;
  o->threads = BULKUP_THREADS_AUTO;
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
  o->no_progress_limit = BULKUP_DEFAULT_NO_PROGRESS_LIMIT;
  o->multipart_threshold = BULKUP_DEFAULT_MULTIPART_THRESHOLD;
  o->part_size = BULKUP_DEFAULT_PART_SIZE;
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

/* ---- new / free ------------------------------------------------------- */

/* The CPUs this process may run on. */
static unsigned bk_usable_cpus(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0)
      return (unsigned)n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1;
}

/* BULKUP_THREADS_AUTO: one event-loop thread per two cores, 1..8 (see
 * the header for why). */
static unsigned bk_threads_for_cores(unsigned cpus) {
  unsigned t = cpus / 2;
  if (t < 1)
    t = 1;
  if (t > 8)
    t = 8;
  return t;
}

unsigned int bulkup_threads_auto(void) {
  return bk_threads_for_cores(bk_usable_cpus());
}

static bulkup_err bk_validate_options(const bulkup_uploader_options *o) {
  if (o->workers > 1024)
    return bk_error(BULKUP_EINVAL, "workers must be between 1 and 1024, or "
                    "BULKUP_WORKERS_AUTO (got %u)", o->workers);
  if (o->workers == BULKUP_WORKERS_AUTO &&
      (o->workers_max < 1 || o->workers_max > 1024))
    return bk_error(BULKUP_EINVAL, "workers_max must be between 1 and 1024 "
                    "(got %u)", o->workers_max);
  if ((int)o->http_version < BULKUP_HTTP_DEFAULT ||
      o->http_version > BULKUP_HTTP_2)
    return bk_error(BULKUP_EINVAL, "http_version is out of range");
  if (o->threads > 1024 && o->threads != BULKUP_THREADS_AUTO)
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
  if (!(o->no_progress_limit >= 0) || o->no_progress_limit > 1e9)
    return bk_error(BULKUP_EINVAL,
                    "no_progress_limit must be a finite number >= 0");
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
  if (o->part_size < BULKUP_PART_SIZE_MIN || o->part_size > BULKUP_PART_SIZE_MAX)
    return bk_error(BULKUP_EINVAL,
                    "part_size must be from 1 KiB to 4000 MiB (got %zu)",
                    o->part_size);
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
  bk_mp_init(u);
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
    bk_mutex_init(&u->share_locks[i]);
  atomic_init(&u->cancelled, false);
  atomic_init(&u->bytes_sent, 0);
  atomic_init(&u->submitted, 0);
  bk_budget_init(&u->budget, opt->retry_budget, opt->retry_budget_tokens);
  u->start = bk_now();
  bool adaptive = opt->workers == BULKUP_WORKERS_AUTO;
  unsigned int nslots_total = adaptive ? opt->workers_max : opt->workers;
  u->slots_total = nslots_total;
  /* When an outage ends, enough tokens for every transfer to retry once. */
  unsigned long refill = (unsigned long)nslots_total * BK_TIMEOUT_RETRY_COST;
  bk_budget_set_outage(&u->budget, opt->no_progress_limit,
                       refill > opt->retry_budget_tokens
                           ? opt->retry_budget_tokens
                           : (unsigned int)refill,
                       u->start);
  u->last_progress = 0;

  char ua[64];
  snprintf(ua, sizeof ua, "bulkup/%s", BULKUP_VERSION_STRING);
  u->opt.user_agent = bk_strdup(opt->user_agent ? opt->user_agent : ua);
  if (opt->ca_file)
    u->opt.ca_file = bk_strdup(opt->ca_file);
  u->report = bk_report_new();
  size_t cap = opt->queue_capacity ? opt->queue_capacity
                                   : (size_t)nslots_total * 4;
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
  curl_share_setopt(u->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);

  /* `workers` transfer slots (workers_max when adaptive) spread over the
   * threads, as evenly as can be: each thread drives its slots through
   * one multi handle. */
  unsigned nthreads = opt->threads == BULKUP_THREADS_AUTO
                          ? bulkup_threads_auto()
                      : opt->threads ? opt->threads
                                     : nslots_total;
  if (nthreads > nslots_total)
    nthreads = nslots_total;
  unsigned ncpu = bk_usable_cpus();
  bk_conc_init(&u->conc, adaptive, nthreads, BULKUP_DEFAULT_WORKERS,
               nslots_total, nthreads < ncpu ? nthreads : ncpu, u->start);
  u->workers = bk_calloc(nthreads, sizeof *u->workers);
  if (!u->workers) {
    rc = bk_error(BULKUP_ENOMEM, "out of memory");
    goto fail;
  }
  u->nworkers = nthreads;
  for (unsigned i = 0; i < u->nworkers; i++) {
    unsigned nslots = nslots_total / nthreads + (i < nslots_total % nthreads);
    if ((rc = bk_worker_init(&u->workers[i], u, i, nslots)) != BULKUP_OK)
      goto fail;
  }
  for (unsigned i = 0; i < u->nworkers; i++)
    if ((rc = bk_worker_start(&u->workers[i])) != BULKUP_OK)
      goto fail;
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
  for (unsigned i = 0; i < u->nworkers; i++)
    bk_worker_join(&u->workers[i]);
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
    bk_worker_cleanup(&u->workers[i]);
  bk_free(u->workers);
  if (u->share)
    curl_share_cleanup(u->share);
  bk_queue_destroy(&u->queue);
  bulkup_report_free(u->report);
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
    bk_mutex_destroy(&u->share_locks[i]);
  bk_budget_destroy(&u->budget);
  bk_mutex_destroy(&u->progress_lock);
  bk_mp_destroy(u);
  bk_mutex_destroy(&u->submit_lock);
  bk_mutex_destroy(&u->lock);
  bk_free((void *)u->opt.ca_file);
  bk_free((void *)u->opt.user_agent);
  for (unsigned i = 0; i < u->n_plain_origins; i++)
    bk_free(u->plain_origins[i]);
  bk_free(u);
}

/* ---- submit ----------------------------------------------------------- */

/* Give the item its index and queue it (blocking while the queue is full).
 * Frees the item if it cannot be queued. */
static bulkup_err bk_push_item(bulkup_uploader *u, bk_item *j, uint64_t bytes,
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
  /* Once pushed, the item belongs to a worker (which may free it at once):
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
  for (size_t i = 0; item->headers && item->headers[i]; i++) {
    const char *why = bulkup_header_check(item->headers[i]);
    if (why)
      return bk_error(BULKUP_EINVAL, "item.headers[%zu]: %s", i, why);
  }
  /* Header values: a CR or LF would end the header and start another (or
   * a second request). (A NUL cannot be in a C string: it ends it.) */
  if (item->content_type && strpbrk(item->content_type, "\r\n"))
    return bk_error(BULKUP_EINVAL,
                    "item.content_type must be one line (no CR or LF)");
  if (item->cache_control && strpbrk(item->cache_control, "\r\n"))
    return bk_error(BULKUP_EINVAL,
                    "item.cache_control must be one line (no CR or LF)");
  if (atomic_load(&u->cancelled))
    return bk_error(BULKUP_ECANCELED, "the uploader was cancelled");

  bk_item *j = bk_item_new(item, NULL);
  if (!j)
    return bk_error(BULKUP_ENOMEM, "out of memory for the item");
  return bk_push_item(u, j, item->source != BULKUP_SOURCE_FILE ? item->size : 0,
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
  bk_item *j = bk_item_new(&copy, message ? message : "invalid item");
  if (!j)
    return bk_error(BULKUP_ENOMEM, "out of memory for the item");
  j->prefail = kind == BULKUP_ERROR_NONE ? BULKUP_ERROR_INPUT : kind;
  j->size = 0;
  j->data = NULL;
  return bk_push_item(u, j, 0, index);
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
  bk_run_progress(u, true);

  /* Every worker has ended: the report is ours alone now. It stays
   * attached (progress snapshots read it) until handed over below. */
  bulkup_report *r = u->report;
  r->summary.elapsed_s = bk_now() - u->start;
  bk_mutex_lock(&u->lock);
  r->concurrency = (bulkup_concurrency){
      .adaptive = u->conc.adaptive,
      .start = u->conc.start,
      .min = u->conc.lo,
      .max = u->conc.hi,
      .final = bk_conc_target(&u->conc),
      .limit = u->conc.max,
      .threads = u->nworkers,
      .grows = u->conc.grows,
      .shrinks = u->conc.shrinks,
      .pushbacks = u->conc.pushbacks};
  bk_mutex_unlock(&u->lock);
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
  else if (r->journal_failures > 0)
    /* The uploads went well, but the crash safety asked for did not. */
    rc = bk_error(BULKUP_EIO, "%llu journal record%s could not be written "
                  "(%s): a rerun would upload %s again",
                  (unsigned long long)r->journal_failures,
                  r->journal_failures == 1 ? "" : "s", u->journal_error,
                  r->journal_failures == 1 ? "that item" : "those items");
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
    bk_worker_wake(&u->workers[i]);
}

void bulkup_uploader_progress(bulkup_uploader *u, bulkup_progress *out) {
  memset(out, 0, sizeof *out);
  if (u)
    bk_run_snapshot(u, out);
}
