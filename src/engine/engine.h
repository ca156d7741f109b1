/* engine/engine.h - the upload engine's structures, and the functions of
 * its lowest files. Calls go one way (scripts/check-layers):
 *
 *   uploader.c   the public API: options, threads, submit, finish, cancel
 *     -> worker.c    a worker thread's whole life: its handles, its event
 *                    loop over several slots, its cleanup
 *       -> slot.c        one item on one slot: the plain PUT state machine,
 *                        the attempts, timeouts, retries (retry.c decides)
 *         -> resumable.c   the resumable upload's state machine: says what
 *                          the slot does next, never calls slot.c
 *         -> parts.c       multipart uploads (S3 multipart, Azure blocks):
 *                          one item's parts shared by every slot; says
 *                          what the slot does next, never calls slot.c
 *                          (the wire format: src/cloud/multipart.h)
 *         -> source.c      the item's bytes
 *         -> run.c         the run's shared state: log, counters, item
 *                          completion and progress, plain-PUT origins
 *   item.c (the queued copy of a submitted item) and queue.c (the bounded
 *   queue) are used by uploader.c and worker.c.
 *
 * `u->lock` is taken only in run.c and uploader.c. */
#ifndef BULKUP_ENGINE_H
#define BULKUP_ENGINE_H

#include "internal.h"
#include "engine/conc.h"
#include "engine/queue.h"
#include "report.h"
#include "retry.h"
#include "util/rand.h"

#include <curl/curl.h>
#include <stdatomic.h>
#include <sys/stat.h>

/* A queued item (item.c): one allocation, the strings after the struct. */
typedef struct bk_item {
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
  bulkup_storage storage;    /* resolved at submit: never AUTO */
} bk_item;

/* The state of the attempt in progress on a slot. Written by libcurl's
 * callbacks and read by the worker's loop, both on the worker's thread. */
typedef struct bk_xfer {
  bk_item *item;
  int fd;                    /* file source streamed from disk, else -1 */
  const unsigned char *mem;  /* body in memory (memory source, small file) */
  uint64_t size;
  uint64_t offset;           /* next body byte to hand to libcurl
                                (an offset in the whole source) */
  uint64_t body_start;       /* this request's body: body_len bytes of the
                                source from body_start (the whole source
                                for a plain PUT, a chunk or nothing for a
                                resumable upload's requests) */
  uint64_t body_len;
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
  char error_code[64];       /* x-ms-error-code (Azure), "" when none */
  char location[2048];       /* Location: a 3xx's (for the message) or a
                                session start's */
  bool location_truncated;   /* it did not fit */
  int64_t range_last;        /* a 308's "Range: bytes=0-N": N; -1 when
                                there was none, -2 when malformed */
  char etag[256];            /* the answer's ETag (a multipart part's) */
} bk_xfer;

/* Where a resumable upload stands (bk_slot.rs). */
typedef enum bk_rs_phase {
  BK_RS_NONE = 0, /* a plain PUT */
  BK_RS_START,    /* POST x-goog-resumable: start, for the session URL */
  BK_RS_CHUNK,    /* PUT the chunk from `confirmed` */
  BK_RS_QUERY     /* PUT "Content-Range: bytes *" "/T": how much is there */
} bk_rs_phase;

/* What a slot is doing. */
typedef enum bk_slot_state {
  BK_SLOT_IDLE = 0, /* no item: free for the next one */
  BK_SLOT_RUNNING,  /* an attempt's easy handle is in the worker's multi */
  BK_SLOT_WAITING   /* between attempts: the retry starts at wake_at; the
                       slot stays reserved for its item */
} bk_slot_state;

/* One transfer slot of a worker: one item at a time, carried through its
 * attempts and retries as a state machine driven by the worker's loop.
 * Everything here is touched only by the worker's thread. The easy handle
 * lives as long as the worker (it is replaced only after
 * CURLE_SEND_FAIL_REWIND), so its TLS session cache carries over from item
 * to item. */
typedef struct bk_slot {
  struct bulkup_uploader *u;
  struct bk_worker *w;
  bk_slot_state state;
  CURL *easy;
  char errbuf[CURL_ERROR_SIZE];
  unsigned char *buf;        /* whole small files are read into this */
  size_t bufcap;
  bk_xfer x;
  /* The item in progress (state != IDLE). */
  bulkup_result res;
  double t0;                 /* when the slot took the item */
  struct curl_slist *headers;
  const char *url;           /* the item's URL or fresh_url */
  bk_retry_state rt;         /* its retries so far (retry.c) */
  bool refreshed;            /* refresh_url was called */
  /* A resumable upload (rs != BK_RS_NONE): */
  bk_rs_phase rs;
  char *session;             /* the session URL (bk_malloc'ed) */
  uint64_t confirmed;        /* bytes the server has confirmed */
  int restarts;              /* sessions started again after a 404/410 */
  struct curl_slist *rs_headers; /* the current request's headers */
  /* Request signing (signhook.c): the current request's headers with the
   * signer's added, and the last payload hash (kept across retries of the
   * same window). */
  struct curl_slist *sig_headers;
  bool psha_valid;
  uint64_t psha_start, psha_len;
  const void *psha_mem;
  char psha[65];
  char pcrc[9];
  bool keep_message;         /* s->message already describes the failure */
  double wake_at;            /* WAITING: when the retry starts */
  /* The source could not be opened for want of a descriptor (EMFILE,
   * ENFILE): opening waits until wake_at, open_retries times so far. */
  bool opening;
  bool fd_short;             /* bk_source_open's last failure was that */
  unsigned open_retries;
  bk_outcome o;              /* the last attempt's outcome */
  bulkup_error_kind kind;    /* its error kind */
  /* The strings of the result being reported. */
  char message[768];
  char *redacted_url;
  char *fresh_url;           /* a refreshed URL for the current item */
  /* A multipart upload's request (parts.c; mp NULL otherwise): which one,
   * its URL and headers (owned by the slot), its method. */
  struct bk_mp *mp;
  int mp_phase;              /* bk_mp_phase */
  unsigned mp_part;          /* BK_MP_PART: the part's index, from 0 */
  char *mp_url;
  struct curl_slist *mp_headers;
  const char *method;        /* CURLOPT_CUSTOMREQUEST now (static), or
                                NULL */
  bool inline_body;          /* the body is CURLOPT_POSTFIELDS, not the
                                read callback's (bk_slot_attempt) */
} bk_slot;

/* A worker thread: several slots driven by one private multi handle, so
 * one wake-up serves every connection that is ready (worker.c). */
typedef struct bk_worker {
  struct bulkup_uploader *u;
  unsigned int id;
  pthread_t thread;
  bool started;
  CURLM *multi;
  bk_slot *slots;
  unsigned int nslots;
  unsigned int busy;         /* slots not idle */
  bk_rng rng;                /* for jitter */
  /* Registered with the queue while the worker has a free slot and found
   * the queue empty: a push then wakes this worker (wake_fd). */
  bk_queue_waiter waiter;
  int wake_fd;               /* an eventfd the loop polls: a push or a
                                cancel writes it */
  /* worker.c's event loop: the sockets libcurl waits on and for what (its
   * socket callback keeps them). The array lives on the worker thread's
   * stack while it runs. */
  struct curl_waitfd *socks;
  unsigned int nsocks, socks_cap;
  bool perform;              /* the socket interface failed: the worker
                                goes on with curl_multi_perform */
  unsigned int limit_seen;   /* the slots it may use: its share of the
                                concurrency target (worker.c) */
} bk_worker;

struct bulkup_uploader {
  bulkup_uploader_options opt; /* ca_file and user_agent point to copies */
  bulkup_upload_policy policy;
  bk_queue queue;
  bk_worker *workers;       /* the threads */
  unsigned int nworkers;
  CURLSH *share;
  pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
  bk_budget budget;
  atomic_bool cancelled;
  atomic_uint_fast64_t bytes_sent;   /* live, retries included */

  /* `lock` guards everything below. */
  pthread_mutex_t lock;
  bulkup_report *report;
  uint64_t in_flight;
  uint64_t bytes_submitted;
  bool finished;
  /* Origins (scheme://host:port) whose servers refused a resumable session
   * start: later items to them are sent with a plain PUT. A few at most;
   * when full, the oldest is replaced. */
  char *plain_origins[8];
  unsigned int n_plain_origins;
  char journal_error[256];   /* the first failed journal write's message */

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

  /* Adaptive concurrency (conc.c): the target is read by the workers
   * without a lock; the rest changes under `lock`. slots_total: the slots
   * allocated (workers, or workers_max when adaptive). */
  bk_conc conc;
  unsigned int slots_total;
  /* Multipart uploads in progress (parts.c): `mp_lock` guards the jobs'
   * shared state; mp_cond is signalled when parts become pending or a job
   * ends; mp_jobs lists the jobs whose parts may be taken. */
  pthread_mutex_t mp_lock;
  pthread_cond_t mp_cond;
  struct bk_mp *mp_jobs;
  unsigned mp_active;        /* jobs not yet reported */
};

/* ---- run.c: the run's shared state ----------------------------------- */

void bk_log(struct bulkup_uploader *u, bulkup_log_level level,
            const char *fmt, ...) BK_PRINTF(3, 4);
/* A slot took an item (in_flight), and `bytes` more are to be sent (a
 * file's size, known once it is opened). */
void bk_run_item_started(struct bulkup_uploader *u);
void bk_run_add_bytes(struct bulkup_uploader *u, uint64_t bytes);
/* An item ended: the completion callback, the report, the counters, the
 * progress callback (at most every progress_interval). */
void bk_item_done(struct bulkup_uploader *u, const bulkup_result *r);
/* The progress counters now. */
void bk_run_snapshot(struct bulkup_uploader *u, bulkup_progress *p);
/* Call on_progress: at most every progress_interval, or now (force). */
void bk_run_progress(struct bulkup_uploader *u, bool force);
/* A journal record could not be written (`why`: the journal's message). */
void bk_run_journal_failed(struct bulkup_uploader *u, const char *why);
/* Did this URL's server refuse a resumable session start earlier? */
bool bk_run_origin_is_plain(struct bulkup_uploader *u, const char *url);
/* Remember that it did (a few origins; the oldest is forgotten). */
void bk_run_set_origin_plain(struct bulkup_uploader *u, const char *url);
/* An attempt failed in a way that asks the client to back off (429, 5xx,
 * a timeout, a reset): adaptive concurrency cuts its target. */
void bk_run_pushback(struct bulkup_uploader *u);
/* Before any item has ended, a worker ticks the concurrency controller's
 * early ramp (conc.h: bk_conc_tick) with the items in flight; returns
 * whether the target grew. */
bool bk_run_conc_tick(struct bulkup_uploader *u);

/* ---- item.c: the queued copy of an item ------------------------------- */

/* Copy the item (and, for an item recorded as failed, its message) into
 * one allocation (bk_free): the title, content type and cache control
 * resolved. NULL when out of memory. */
bk_item *bk_item_new(const bulkup_item *it, const char *message);

/* ---- source.c: the item's bytes ----------------------------------------- */

/* Open the item's source into s->x. Returns an error kind (NONE on
 * success) and writes the reason into s->message. */
bulkup_error_kind bk_source_open(bk_slot *s, bk_item *it);
void bk_source_close(bk_slot *s);
/* Base64 MD5 of the whole source, for Content-MD5. */
bool bk_source_md5(bk_slot *s, char out[32]);
/* The same of `len` bytes from `start` (a multipart upload's part). */
bool bk_source_md5_range(bk_slot *s, uint64_t start, uint64_t len,
                         char out[32]);
/* Lower-case hex SHA-256 of `len` bytes of the source from `start` (or
 * of `len` bytes of `mem` when not NULL), for a signed payload; with
 * crc_out, the CRC32C of the same bytes too (base64, big-endian), from the
 * same pass. */
bool bk_source_sha256_hex(bk_slot *s, uint64_t start, uint64_t len,
                          const void *mem, char out[65], char crc_out[9]);
/* A streamed file is still the file that was opened. */
bool bk_source_unchanged(const bk_slot *s);
/* The journal's modification time of the source (0 but for files). */
int64_t bk_source_mtime(const bk_slot *s);
/* libcurl's read and seek callbacks (userdata: the slot). */
size_t bk_source_read_cb(char *dst, size_t size, size_t nmemb, void *ud);
int bk_source_seek_cb(void *ud, curl_off_t offset, int origin);

/* ---- signhook.c: options.sign_request ---------------------------------- */
/* Sign the request about to go out on slot s: call options.sign_request
 * (if set) with the request's final headers, and point *headers at the
 * slot's copy of them with the signer's lines added (s->sig_headers,
 * replaced at each call; *headers is left as it is without a signer).
 * body_start/body_len: the request's window of the source; `mem`: the
 * body when it is not from the source (a multipart complete's XML), else
 * NULL; `kind`: what the request is (bulkup_request.kind). Every request
 * an item sends goes through here, each attempt. Returns NONE, or an error kind with s->message set (the request must
 * not be sent). */
bulkup_error_kind bk_hook_sign(bk_slot *s, const char *method,
                                  const char *url,
                                  struct curl_slist **headers,
                                  uint64_t body_start, uint64_t body_len,
                                  const void *mem, bulkup_request_kind kind);
/* Forget the slot's signed headers and payload hash (the item ends). */
void bk_hook_sign_reset(bk_slot *s);

/* ---- resumable.c: the resumable upload's state machine ------------------ */

/* What the slot does after a resumable request's answer. */
typedef enum bk_rs_next {
  BK_RS_SEND,     /* send the request s->rs now names */
  BK_RS_END,      /* end the item (s->kind and s->message say how) */
  BK_RS_GENERIC,  /* decide as for a plain PUT (retry, fail, succeed) */
  BK_RS_FAILED    /* a failure to retry under the usual limits (kind set) */
} bk_rs_next;

/* At the item's start: should it go resumable (its size, the origin)? If
 * so the slot is set up for it (res->resumable, s->rs; a journalled
 * session is resumed with a status query). */
void bk_rs_begin(bk_slot *s);
/* The request s->rs names: its URL, headers (owned by the slot) and body
 * window. false when out of memory for the headers. */
bool bk_rs_request(bk_slot *s, const char **url, struct curl_slist **headers,
                   uint64_t *body_start, uint64_t *body_len);
/* A resumable request's attempt ended (s->o says how): the next step. */
bk_rs_next bk_rs_after(bk_slot *s);
/* A retry of a resumable request was decided (`next` is what bk_rs_after
 * said): count it, and after a chunk of unknown fate ask the server what
 * it has. */
void bk_rs_retrying(bk_slot *s, bk_rs_next next);
/* The item ends: drop the session (it stays in the journal) and the
 * request's headers. */
void bk_rs_reset(bk_slot *s);
/* A 403 whose body says the signed URL expired (GCS: ExpiredToken). */
bool bk_says_expired(const bk_xfer *x, int status);

/* ---- parts.c: multipart uploads (S3 multipart, Azure blocks) ------------ */

typedef enum bk_mp_phase {
  BK_MP_NONE = 0,
  BK_MP_CREATE,   /* S3 CreateMultipartUpload */
  BK_MP_PART,     /* S3 UploadPart / Azure Put Block */
  BK_MP_COMPLETE, /* S3 CompleteMultipartUpload / Azure Put Block List */
  BK_MP_ABORT     /* S3 AbortMultipartUpload */
} bk_mp_phase;

/* What the slot does after a multipart request ended. */
typedef enum bk_mp_next {
  BK_MP_GO,     /* run the request now set up on the slot (bk_slot_try) */
  BK_MP_IDLE,   /* nothing more for this slot: it comes free */
  BK_MP_REPORT  /* the item ended: report s->res, then bk_mp_leave */
} bk_mp_next;

void bk_mp_init(struct bulkup_uploader *u);
void bk_mp_destroy(struct bulkup_uploader *u);
/* At an item's start, its source open: does it go in parts? If so the
 * job is made and the slot is set up for its first request (GO), or the
 * item ended at once (REPORT: out of memory, say). false: a plain item. */
bool bk_mp_begin(bk_slot *s, bk_mp_next *next);
/* The request the slot's phase names: URL, headers, body window (the slot's
 * x.fd / x.mem set for it), method (NULL: PUT), kind (for the signer). false when out of memory. */
bool bk_mp_request(bk_slot *s, const char **url, struct curl_slist **headers,
                   uint64_t *body_start, uint64_t *body_len,
                   const char **method, bulkup_request_kind *kind);
/* The slot's request ended (s->kind: NONE or the final failure; s->res
 * its counters): the job learns of it and says what the slot does next. */
bk_mp_next bk_mp_after(bk_slot *s);
/* The slot lets go of the job (after IDLE or REPORT); the last slot of a
 * reported job frees it and its item. */
void bk_mp_leave(bk_slot *s);
/* Give an idle slot a pending part of a job in progress: true when it
 * took one (s is set up as for GO; the caller marks it busy and runs it). */
bool bk_mp_take(bk_slot *s);
/* A worker with nothing to do and no more items: wait until a part is
 * pending (true) or no job is left (false). */
bool bk_mp_wait(struct bulkup_uploader *u);

#endif
