/* uploader.h - the engine's internal structures, shared by uploader.c (the
 * pool, the queue, the report) and transfer.c (one item on one worker). */
#ifndef BULKUP_UPLOADER_INTERNAL_H
#define BULKUP_UPLOADER_INTERNAL_H

#include "internal.h"
#include "queue.h"
#include "report.h"
#include "retry.h"

#include <curl/curl.h>
#include <stdatomic.h>
#include <sys/stat.h>

/* A queued item: one allocation, the strings after the struct. */
typedef struct bk_job {
  uint64_t index;
  bulkup_source_kind source;
  const void *data;
  uint64_t size;
  bulkup_read_fn read;
  void *read_ctx;
  const char *path;          /* NULL for memory and callback sources */
  const char *url;
  const char *title;
  const char *content_type;  /* resolved at submit */
  const char *cache_control; /* resolved at submit; NULL for none */
  const char **headers;      /* NULL-terminated, may be NULL */
  void *user;
  /* An item recorded as failed without being tried
   * (bulkup_uploader_submit_failure): the kind and the message. */
  bulkup_error_kind prefail;
  const char *prefail_message;
  const char *journal_key;   /* NULL when not journalled */
} bk_job;

/* The state of the attempt in progress on a worker. Written by libcurl's
 * callbacks and read by the worker's loop, both on the worker's thread. */
typedef struct bk_xfer {
  bk_job *job;
  int fd;                    /* file source streamed from disk, else -1 */
  const unsigned char *mem;  /* body in memory (memory source, small file) */
  uint64_t size;
  uint64_t offset;           /* next body byte to hand to libcurl */
  struct stat st;            /* the file when opened */
  /* per attempt */
  int requests;              /* requests libcurl started in this attempt:
                                more than 1 when it silently re-sent on a
                                fresh connection after a reused one died */
  uint64_t bytes_earlier;    /* body bytes of this attempt's earlier
                                requests */
  bool connected;
  bool body_sent;
  double last_up;            /* when upload progress was last seen */
  double body_sent_at;
  curl_off_t ulnow;
  bk_abort abort;
  int read_errno;
  char excerpt[1024];
  size_t excerpt_len;
  double retry_after;        /* seconds, < 0 when none */
  char location[512];        /* Location of a 3xx, for the message */
} bk_xfer;

typedef struct bk_worker {
  struct bulkup_uploader *u;
  unsigned int id;
  pthread_t thread;
  bool started;
  CURL *easy;
  CURLM *multi;
  char errbuf[CURL_ERROR_SIZE];
  unsigned char *buf;        /* whole small files are read into this */
  size_t bufcap;
  uint64_t rng;              /* for jitter */
  bk_xfer x;
  /* The strings of the result being reported. */
  char message[768];
  char *redacted_url;
  char *fresh_url;           /* a refreshed URL for the current item */

} bk_worker;

struct bulkup_uploader {
  bulkup_uploader_options opt; /* ca_file and user_agent point to copies */
  bulkup_upload_policy policy;
  bk_queue queue;
  bk_worker *workers;
  unsigned int nworkers;
  CURLSH *share;
  pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
  bk_budget budget;
  atomic_bool cancelled;
  atomic_uint_fast64_t bytes_sent;   /* live, retries included */

  /* `lock` guards everything below and is the mutex of cancel_cond (on
   * which waits between retries sleep, so a cancel ends them at once). */
  pthread_mutex_t lock;
  pthread_cond_t cancel_cond;
  bulkup_report *report;
  uint64_t in_flight;
  uint64_t bytes_submitted;
  bool finished;

  /* Submitters take submit_lock so that an item's index is its position in
   * the queue. */
  pthread_mutex_t submit_lock;
  uint64_t next_index;
  /* Written under submit_lock, read without it (a submitter may hold the
   * lock for as long as the queue is full). */
  atomic_uint_fast64_t submitted;

  /* Serialises the progress callback. */
  pthread_mutex_t progress_lock;
  double last_progress;

  double start;
};

/* transfer.c */
bulkup_err bk_worker_init_curl(bk_worker *w);
void bk_worker_cleanup_curl(bk_worker *w);
/* Run one job to its end; fills *res (strings owned by the worker until
 * the next call) and returns. */
void bk_run_job(bk_worker *w, bk_job *job, bulkup_result *res);
void bk_log(struct bulkup_uploader *u, bulkup_log_level level,
            const char *fmt, ...) BK_PRINTF(3, 4);
/* Interruptible sleep: returns false if the run was cancelled. */
bool bk_sleep_cancellable(struct bulkup_uploader *u, double seconds);

#endif
