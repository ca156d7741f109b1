/* engine/parts.c - multipart uploads: one large item split into parts that
 * several slots (of any worker) send at once, S3 multipart upload or Azure
 * blocks (the wire format is in src/cloud/multipart.h).
 *
 * A job (bk_mp) is made by the slot that took the item (bk_mp_begin), once
 * its source is open and its size known. For S3 that slot first sends
 * CreateMultipartUpload; then the job is published on u->mp_jobs and the
 * queue is nudged, so idle slots take its pending parts (bk_mp_take) before
 * new items. Each part is one request on one slot, with the slot's usual
 * attempts, retries, budget and phase timeouts; when it ends for good the
 * slot tells the job (bk_mp_after), which hands the slot the job's next
 * pending part, or lets it go. The slot that ends the last part in flight
 * sends the completing request (CompleteMultipartUpload, Put Block List),
 * or, after a part failed for good, AbortMultipartUpload (S3), and reports
 * the item's one result: the job has gathered the counters of every
 * request. A cancel fails the parts as cancelled; the upload is then left
 * open (not aborted), for a journalled rerun to finish.
 *
 * The job's shared state is guarded by u->mp_lock (one lock for all jobs:
 * it is taken a few times per part). The source is opened once, by the
 * first slot (bk_source_open), and its descriptor shared: parts read it
 * with pread at their own offsets. A file small enough to have been read
 * into the slot's buffer is copied into the job.
 *
 * Journal (options.journal and an item journal_key): the job's state is a
 * session record of the item (bulkup/journal.h), in place of a session
 * URL:
 *   "mp1 s3 PART_SIZE UPLOAD_ID N:ETAG N:ETAG ..."   (N from 1)
 *   "mp1 s3c PART_SIZE UPLOAD_ID N=CRC:ETAG ..."      (CRC: 8 base64)
 *   "mp1 s3h PART_SIZE UPLOAD_ID N:ETAG ..."
 *   "mp1 az PART_SIZE - N N ..."                      (N from 1)
 * "s3c": a run with options.sign_crc32c whose CreateMultipartUpload
 * declared the algorithm (x-amz-checksum-algorithm: CRC32C, added by the
 * signer): each part was sent with its CRC-32C, which the Complete must
 * list, so it is journalled with the part. "s3h": a run with sign_crc32c
 * whose create declared nothing (GCS: a part's CRC-32C goes in
 * x-goog-hash, and its Complete takes ETags only). A rerun resumes only a
 * record made with the same sign_crc32c, since S3 refuses a part's
 * checksum that its create did not declare, and a Complete without the
 * checksums it did (the other records start a new upload, as a changed
 * part size does).
 * written when the upload id is known and as parts finish (every part for
 * jobs of up to 64 parts; past that every nparts/64-th, so the journal
 * grows by at most 64 records per item, and a rerun re-sends at most that
 * many parts), forgotten after an abort, ended by the item's completion
 * record. A rerun with the same part size sends only the parts not
 * recorded, then completes. */
#include "internal.h"
#include "engine/engine.h"
#include "cloud/azure.h"
#include "cloud/multipart.h"

#include <stdio.h>
#include <unistd.h>

typedef enum bk_part_state { BK_PART_PENDING = 0, BK_PART_RUNNING, BK_PART_DONE } bk_part_state;

typedef struct bk_mp {
  struct bk_mp *next;        /* on u->mp_jobs */
  bool listed;
  struct bulkup_uploader *u;
  bk_item *item;
  bulkup_storage proto;      /* S3 or AZURE */
  /* The source, shared by the parts' slots. */
  int fd;
  const unsigned char *mem;
  unsigned char *own;        /* mem, when the job made a copy */
  struct stat st;
  uint64_t size;
  int64_t mtime;
  uint64_t part_size;
  unsigned nparts;
  /* The parts (under u->mp_lock). */
  unsigned char *pstate;     /* bk_part_state, per part */
  char **etags;              /* S3: each done part's ETag */
  /* S3, with options.sign_crc32c and a create that declared CRC32C: each
   * done part's CRC-32C (base64, as its request carried it), for the
   * Complete. */
  bool crc32c;
  char (*crcs)[9];
  unsigned next_pending;     /* no pending part below this index */
  unsigned pending, running, done;
  unsigned since_journal;    /* parts done since the last journal record */
  char *upload_id;           /* S3 */
  bool published;
  bool failed;               /* a request failed for good */
  bulkup_error_kind kind;    /* the first such failure's */
  char message[768];
  char excerpt[1024];
  size_t excerpt_len;
  char *body;                /* the completing request's body */
  size_t body_len;
  /* The item's result, gathered over its requests. */
  bulkup_result res;
  char *redacted_url;
  unsigned slots;            /* slots holding the job */
  bool reported;             /* its result was handed over */
  double t0;                 /* when the item started */
} bk_mp;

void bk_mp_init(struct bulkup_uploader *u) {
  bk_mutex_init(&u->mp_lock);
  bk_cond_init(&u->mp_cond);
  u->mp_jobs = NULL;
  u->mp_active = 0;
}

void bk_mp_destroy(struct bulkup_uploader *u) {
  bk_cond_destroy(&u->mp_cond);
  bk_mutex_destroy(&u->mp_lock);
}

static void bk_mp_free(bk_mp *m) {
  if (!m)
    return;
  if (m->fd >= 0)
    close(m->fd);
  bk_free(m->own);
  bk_free(m->pstate);
  if (m->etags)
    for (unsigned i = 0; i < m->nparts; i++)
      bk_free(m->etags[i]);
  bk_free(m->etags);
  bk_free(m->crcs);
  bk_free(m->upload_id);
  bk_free(m->body);
  bk_free(m->redacted_url);
  bk_free(m->item);
  bk_free(m);
}

/* Under mp_lock. */
static void bk_mp_unlist(bk_mp *m) {
  if (!m->listed)
    return;
  for (bk_mp **pp = &m->u->mp_jobs; *pp; pp = &(*pp)->next)
    if (*pp == m) {
      /* Atomic: bk_mp_take peeks at the list head without the lock. */
      __atomic_store_n(pp, m->next, __ATOMIC_RELAXED);
      break;
    }
  m->next = NULL;
  m->listed = false;
}

/* ---- the journal --------------------------------------------------------- */

static const char *bk_mp_tag(const bk_mp *m) {
  if (m->proto != BULKUP_STORAGE_S3)
    return "az";
  if (!m->u->opt.sign_crc32c)
    return "s3";
  return m->crc32c ? "s3c" : "s3h";
}

/* Under mp_lock: write the job's state as the item's session record. */
static void bk_mp_journal(bk_mp *m) {
  struct bulkup_uploader *u = m->u;
  bk_item *j = m->item;
  if (!u->opt.journal || !j->journal_key)
    return;
  size_t cap = 64 + (m->upload_id ? strlen(m->upload_id) : 1);
  for (unsigned i = 0; i < m->nparts; i++)
    if (m->pstate[i] == BK_PART_DONE)
      cap += 28 + (m->etags && m->etags[i] ? strlen(m->etags[i]) : 0);
  char *rec = bk_malloc(cap);
  if (!rec)
    return;
  size_t o = (size_t)snprintf(rec, cap, "mp1 %s %llu %s", bk_mp_tag(m),
                              (unsigned long long)m->part_size,
                              m->upload_id ? m->upload_id : "-");
  for (unsigned i = 0; i < m->nparts; i++) {
    if (m->pstate[i] != BK_PART_DONE)
      continue;
    if (m->crc32c)
      o += (size_t)snprintf(rec + o, cap - o, " %u=%s:%s", i + 1, m->crcs[i],
                            m->etags[i]);
    else if (m->proto == BULKUP_STORAGE_S3)
      o += (size_t)snprintf(rec + o, cap - o, " %u:%s", i + 1, m->etags[i]);
    else
      o += (size_t)snprintf(rec + o, cap - o, " %u", i + 1);
  }
  if (bulkup_journal_record_session(u->opt.journal, j->journal_key, m->size,
                                    m->mtime, rec) != BULKUP_OK) {
    bk_log(u, BULKUP_LOG_ERROR, "item %llu: multipart state not journalled: %s",
           (unsigned long long)j->index, bulkup_last_error_message());
    bk_run_journal_failed(u, bulkup_last_error_message());
  }
  m->since_journal = 0;
  bk_free(rec);
}

static void bk_mp_journal_forget(bk_mp *m) {
  struct bulkup_uploader *u = m->u;
  if (u->opt.journal && m->item->journal_key)
    bulkup_journal_record_session(u->opt.journal, m->item->journal_key,
                                  m->size, m->mtime, NULL);
}

/* A rerun: take the journalled state, if it is this job's kind. */
static void bk_mp_resume(bk_mp *m) {
  struct bulkup_uploader *u = m->u;
  bk_item *j = m->item;
  if (!u->opt.journal || !j->journal_key)
    return;
  char *rec = bulkup_journal_session(u->opt.journal, j->journal_key, m->size,
                                     m->mtime);
  if (!rec)
    return;
  char tag[4], id[1024];
  unsigned long long ps = 0;
  int used = 0;
  bool s3 = m->proto == BULKUP_STORAGE_S3;
  bool crc_run = u->opt.sign_crc32c;
  if (sscanf(rec, "mp1 %3s %llu %1023s%n", tag, &ps, id, &used) != 3 ||
      ps != m->part_size ||
      !(s3 ? (crc_run ? strcmp(tag, "s3c") == 0 || strcmp(tag, "s3h") == 0
                      : strcmp(tag, "s3") == 0)
           : strcmp(tag, "az") == 0)) {
    bk_free(rec);
    return;
  }
  if (strcmp(tag, "s3c") == 0) {
    m->crcs = bk_calloc(m->nparts, sizeof *m->crcs);
    if (!m->crcs) {
      bk_free(rec);
      return;
    }
    m->crc32c = true;
  }
  if (s3) {
    if (strcmp(id, "-") == 0) {
      bk_free(rec);
      return;
    }
    m->upload_id = bk_strdup(id);
    if (!m->upload_id) {
      bk_free(rec);
      return;
    }
  }
  unsigned resumed = 0;
  const char *p = rec + used;
  while (*p == ' ') {
    p++;
    char *end;
    unsigned long n = strtoul(p, &end, 10);
    if (end == p || n < 1 || n > m->nparts)
      break;
    const char *etag = NULL, *crc = NULL;
    size_t el = 0;
    if (m->crc32c) {
      /* "=CRC:" with CRC 8 base64 characters. */
      if (*end != '=' || strlen(end) < 10 || end[9] != ':')
        break;
      crc = end + 1;
      end += 9;
    }
    if (s3) {
      if (*end != ':')
        break;
      etag = end + 1;
      el = strcspn(etag, " ");
      end = (char *)etag + el;
      if (el == 0)
        break;
    }
    unsigned i = (unsigned)n - 1;
    if (m->pstate[i] != BK_PART_DONE) {
      if (etag) {
        m->etags[i] = bk_malloc(el + 1);
        if (!m->etags[i])
          break;
        memcpy(m->etags[i], etag, el);
        m->etags[i][el] = '\0';
      }
      if (crc) {
        memcpy(m->crcs[i], crc, 8);
        m->crcs[i][8] = '\0';
      }
      m->pstate[i] = BK_PART_DONE;
      m->done++;
      m->pending--;
      resumed++;
    }
    p = end;
  }
  bk_free(rec);
  while (m->next_pending < m->nparts &&
         m->pstate[m->next_pending] != BK_PART_PENDING)
    m->next_pending++;
  bk_log(u, BULKUP_LOG_INFO,
         "item %llu: resuming its journalled multipart upload: %u of %u "
         "parts done", (unsigned long long)j->index, resumed, m->nparts);
}

/* ---- requests ------------------------------------------------------------ */

/* Whether the create the slot sent declared CRC-32C for the upload: its
 * headers as sent (the signer's among them) hold
 * "x-amz-checksum-algorithm: CRC32C". Only with options.sign_crc32c,
 * which gives each part's request its CRC-32C (the signer sends it; the
 * Complete lists it). */
static bool bk_mp_declared_crc32c(const bk_slot *s) {
  if (!s->u->opt.sign_crc32c || !s->u->opt.sign_request)
    return false;
  static const char name[] = "x-amz-checksum-algorithm:";
  const struct curl_slist *h = s->sig_headers ? s->sig_headers
                                              : s->mp_headers;
  for (; h; h = h->next) {
    if (strncasecmp(h->data, name, sizeof name - 1) != 0)
      continue;
    const char *v = h->data + sizeof name - 1;
    v += strspn(v, " \t");
    size_t n = strcspn(v, " \t");
    return n == 6 && strncasecmp(v, "CRC32C", 6) == 0 &&
           v[n + strspn(v + n, " \t")] == '\0';
  }
  return false;
}

/* Set the slot up for a request of the job (under mp_lock, or before the
 * job is shared). */
static void bk_mp_setup(bk_slot *s, bk_mp *m, bk_mp_phase phase,
                        unsigned part) {
  s->mp = m;
  s->mp_phase = phase;
  s->mp_part = part;
  /* A new request: the payload hash kept for retries is not its (a part
   * of another job may have the same window). */
  s->psha_valid = false;
  s->x.item = m->item;
  s->x.st = m->st;
  s->x.size = m->size;
  s->x.fd = -1;
  s->x.mem = NULL;
  s->x.excerpt_len = 0;
  s->rt = (bk_retry_state){0};
  s->o = (bk_outcome){.curl = CURLE_OK};
  s->kind = BULKUP_ERROR_NONE;
  s->message[0] = '\0';
  s->keep_message = false;
  bulkup_result *r = &s->res;
  memset(r, 0, sizeof *r);
  r->index = m->item->index;
  r->path = m->item->path;
  r->title = m->item->title;
  r->user = m->item->user;
  r->url = m->redacted_url ? m->redacted_url : "(url withheld)";
  r->message = s->message;
  r->response_excerpt = "";
  r->size = m->size;
}

/* Under mp_lock: the job's next pending part for the slot, if any. */
static bool bk_mp_next_part(bk_slot *s, bk_mp *m) {
  if (m->failed || m->pending == 0)
    return false;
  unsigned i = m->next_pending;
  while (i < m->nparts && m->pstate[i] != BK_PART_PENDING)
    i++;
  if (i >= m->nparts)
    return false; /* cannot happen: pending > 0 */
  m->pstate[i] = BK_PART_RUNNING;
  m->pending--;
  m->running++;
  m->next_pending = i + 1;
  if (m->pending == 0)
    bk_mp_unlist(m);
  bk_mp_setup(s, m, BK_MP_PART, i);
  return true;
}

/* Publish the job: its parts may be taken by any idle slot. Under
 * mp_lock; the caller nudges the queue after unlocking. */
static void bk_mp_publish(bk_mp *m) {
  m->published = true;
  if (m->pending > 0 && !m->failed && !m->listed) {
    m->next = m->u->mp_jobs;
    __atomic_store_n(&m->u->mp_jobs, m, __ATOMIC_RELAXED);
    m->listed = true;
  }
  bk_cond_broadcast(&m->u->mp_cond);
}

/* Under mp_lock: what the slot does now that none of the job's parts is
 * for it. */
static bk_mp_next bk_mp_settle(bk_slot *s, bk_mp *m);

bool bk_mp_begin(bk_slot *s, bk_mp_next *next) {
  struct bulkup_uploader *u = s->u;
  bk_item *j = s->x.item;
  bk_xfer *x = &s->x;
  if (j->storage != BULKUP_STORAGE_S3 && j->storage != BULKUP_STORAGE_AZURE)
    return false;
  if (j->source == BULKUP_SOURCE_CALLBACK || x->size == 0 ||
      x->size < u->opt.multipart_threshold)
    return false;
  uint64_t ps = u->opt.part_size;
  if ((x->size + ps - 1) / ps > BULKUP_MAX_PARTS) {
    ps = (x->size + BULKUP_MAX_PARTS - 1) / BULKUP_MAX_PARTS;
    ps = (ps + (1u << 20) - 1) / (1u << 20) * (1u << 20);
  }
  unsigned nparts = (unsigned)((x->size + ps - 1) / ps);

  bk_mp *m = bk_calloc(1, sizeof *m);
  if (m) {
    m->fd = -1;
    m->pstate = bk_calloc(nparts, 1);
    if (j->storage == BULKUP_STORAGE_S3)
      m->etags = bk_calloc(nparts, sizeof *m->etags);
    m->redacted_url = bulkup_redact_url(j->url);
  }
  if (m && x->mem && x->mem != j->data) {
    /* A small file, read into the slot's buffer: the job keeps a copy. */
    m->own = bk_malloc((size_t)x->size);
    if (m->own)
      memcpy(m->own, x->mem, (size_t)x->size);
  }
  if (!m || !m->pstate || !m->redacted_url ||
      (j->storage == BULKUP_STORAGE_S3 && !m->etags) ||
      (x->mem && x->mem != j->data && !m->own)) {
    bk_mp_free(m); /* frees nothing of the item: m->item is not set */
    return false;  /* out of memory: the item goes in one PUT */
  }
  m->u = u;
  m->item = j;
  m->t0 = s->t0;
  m->proto = j->storage;
  m->mem = m->own ? m->own : x->mem;
  if (!x->mem) {
    m->fd = x->fd; /* the job owns the descriptor now */
    x->fd = -1;
  }
  x->mem = NULL;
  m->st = x->st;
  m->size = x->size;
  m->mtime = bk_source_mtime(s);
  m->part_size = ps;
  m->nparts = nparts;
  m->pending = nparts;
  m->slots = 1;
  /* The item's result: what the slot set up, with the job's URL. */
  m->res = s->res;
  m->res.url = m->redacted_url;
  m->res.attempts = 0;
  m->res.requests = 0;
  m->res.bytes_sent = 0;
  bk_mp_resume(m);

  bk_mutex_lock(&u->mp_lock);
  u->mp_active++;
  bk_log(u, BULKUP_LOG_DEBUG, "item %llu: multipart upload, %u parts of %llu "
         "bytes", (unsigned long long)j->index, nparts,
         (unsigned long long)ps);
  bool nudge = false;
  if (m->proto == BULKUP_STORAGE_S3 && !m->upload_id) {
    bk_mp_setup(s, m, BK_MP_CREATE, 0);
    *next = BK_MP_GO;
  } else {
    bk_mp_publish(m);
    nudge = m->listed;
    if (bk_mp_next_part(s, m))
      *next = BK_MP_GO;
    else
      *next = bk_mp_settle(s, m); /* every part was done: complete */
  }
  bk_mutex_unlock(&u->mp_lock);
  if (nudge)
    bk_queue_nudge(&u->queue);
  return true;
}

static void bk_mp_add_header(struct curl_slist **h, bool *ok,
                             const char *fmt, const char *v) {
  char line[1024];
  snprintf(line, sizeof line, fmt, v);
  *h = bk_slist_add(*h, line, ok);
}

bool bk_mp_request(bk_slot *s, const char **url, struct curl_slist **headers,
                   uint64_t *body_start, uint64_t *body_len,
                   const char **method, bulkup_request_kind *kind) {
  bk_mp *m = s->mp;
  bk_item *j = m->item;
  const char *const *own = (const char *const *)j->headers;
  bool s3 = m->proto == BULKUP_STORAGE_S3;
  bool ok = true;
  struct curl_slist *h = NULL;
  char *u = NULL;
  *body_start = 0;
  *body_len = 0;
  *method = NULL;
  s->x.fd = -1;
  s->x.mem = NULL;
  if (!s->u->opt.expect_continue)
    h = bk_slist_add(h, "Expect:", &ok);
  /* Azure: x-ms-version on every request (Put Block List also sends the
   * item's headers, which may set it). */
  if (!s3)
    h = bk_azure_add_headers(h,
                             s->mp_phase == BK_MP_COMPLETE ? own : NULL,
                             false, &ok);
  switch ((bk_mp_phase)s->mp_phase) {
  case BK_MP_CREATE:
    u = bk_s3_create_url(j->url);
    *method = "POST";
    *kind = BULKUP_REQUEST_MULTIPART_CREATE;
    /* The item's own headers win over bulkup's choices. */
    if (!bk_headers_have(own, "Content-Type"))
      bk_mp_add_header(&h, &ok, "Content-Type: %s", j->content_type);
    if (j->cache_control && !bk_headers_have(own, "Cache-Control"))
      bk_mp_add_header(&h, &ok, "Cache-Control: %s", j->cache_control);
    for (size_t i = 0; own && own[i]; i++)
      h = bk_slist_add(h, own[i], &ok);
    break;
  case BK_MP_PART: {
    unsigned i = s->mp_part;
    u = s3 ? bk_s3_part_url(j->url, i + 1, m->upload_id)
           : bk_azure_block_url(j->url, i);
    *kind = BULKUP_REQUEST_MULTIPART_PART;
    *body_start = (uint64_t)i * m->part_size;
    *body_len = m->size - *body_start < m->part_size ? m->size - *body_start
                                                     : m->part_size;
    s->x.fd = m->fd;
    s->x.mem = m->mem;
    char md5[32];
    if (s->u->opt.content_md5) {
      /* Each part's own (the service checks each part). */
      if (!bk_source_md5_range(s, *body_start, *body_len, md5))
        ok = false;
      else
        bk_mp_add_header(&h, &ok, "Content-MD5: %s", md5);
    }
    break;
  }
  case BK_MP_COMPLETE:
    *kind = BULKUP_REQUEST_MULTIPART_COMPLETE;
    if (s3) {
      u = bk_s3_upload_url(j->url, m->upload_id);
      *method = "POST";
      h = bk_slist_add(h, "Content-Type: application/xml", &ok);
    } else {
      u = bk_azure_blocklist_url(j->url);
      /* The blob's Content-Type and Cache-Control are set here, as
       * x-ms-blob-*; the item's own headers (x-ms-meta-*) go along. */
      h = bk_slist_add(h, "Content-Type: application/xml", &ok);
      if (!bk_headers_have(own, "x-ms-blob-content-type"))
        bk_mp_add_header(&h, &ok, "x-ms-blob-content-type: %s",
                         j->content_type);
      if (j->cache_control && !bk_headers_have(own, "x-ms-blob-cache-control"))
        bk_mp_add_header(&h, &ok, "x-ms-blob-cache-control: %s",
                         j->cache_control);
      for (size_t i = 0; own && own[i]; i++)
        if (!bk_headers_have((const char *const[]){own[i], NULL},
                             "Content-Type") &&
            !bk_headers_have((const char *const[]){own[i], NULL},
                             "x-ms-blob-type"))
          h = bk_slist_add(h, own[i], &ok);
    }
    *body_len = m->body_len;
    s->x.mem = (const unsigned char *)m->body;
    break;
  case BK_MP_ABORT:
    u = bk_s3_upload_url(j->url, m->upload_id);
    *method = "DELETE";
    *kind = BULKUP_REQUEST_MULTIPART_ABORT;
    break;
  default:
    ok = false;
    break;
  }
  if (!ok || !u) {
    curl_slist_free_all(h);
    bk_free(u);
    return false;
  }
  curl_slist_free_all(s->mp_headers);
  s->mp_headers = h;
  bk_free(s->mp_url);
  s->mp_url = u;
  *url = u;
  *headers = h;
  return true;
}

/* Under mp_lock: record the request's failure as the job's (the first
 * one's words are kept). */
static void bk_mp_fail(bk_slot *s, bk_mp *m, const char *what) {
  if (!m->failed) {
    m->failed = true;
    m->kind = s->kind;
    snprintf(m->message, sizeof m->message, "%s: %.600s", what, s->message);
    m->excerpt_len = s->res.response_excerpt_len;
    if (m->excerpt_len)
      memcpy(m->excerpt, s->res.response_excerpt, m->excerpt_len);
    m->res.http_status = s->res.http_status;
  }
  bk_mp_unlist(m);
}

/* Under mp_lock: the item's result, into the slot's (its strings are the
 * job's). */
static bk_mp_next bk_mp_report(bk_slot *s, bk_mp *m, bool succeeded) {
  bulkup_result *r = &s->res;
  *r = m->res;
  r->attempts += 1;
  r->resumable = false;
  r->url = m->redacted_url;
  if (succeeded) {
    r->status = BULKUP_ITEM_SUCCEEDED;
    r->error = BULKUP_ERROR_NONE;
    r->message = "";
    r->response_excerpt = "";
    r->response_excerpt_len = 0;
  } else {
    r->error = m->kind;
    r->status = m->kind == BULKUP_ERROR_CANCELLED ? BULKUP_ITEM_CANCELLED
                                                  : BULKUP_ITEM_FAILED;
    r->message = m->message;
    r->response_excerpt = m->excerpt_len ? m->excerpt : "";
    r->response_excerpt_len = m->excerpt_len;
  }
  r->elapsed_s = bk_now() - m->t0;
  m->reported = true;
  bk_mp_unlist(m);
  m->u->mp_active--;
  bk_cond_broadcast(&m->u->mp_cond);
  return BK_MP_REPORT;
}

static bk_mp_next bk_mp_settle(bk_slot *s, bk_mp *m) {
  if (m->running > 0 || (!m->failed && m->pending > 0))
    return BK_MP_IDLE; /* another slot finishes the job */
  if (m->failed) {
    if (m->proto == BULKUP_STORAGE_S3 && m->upload_id &&
        m->kind != BULKUP_ERROR_CANCELLED) {
      bk_mp_setup(s, m, BK_MP_ABORT, 0);
      return BK_MP_GO;
    }
    return bk_mp_report(s, m, false);
  }
  /* Every part is done: complete. */
  if (m->proto == BULKUP_STORAGE_S3)
    m->body = bk_s3_complete_body((const char *const *)m->etags,
                                  m->crc32c ? (const char(*)[9])m->crcs
                                            : NULL,
                                  m->nparts, &m->body_len);
  else
    m->body = bk_azure_blocklist_body(m->nparts, &m->body_len);
  if (!m->body) {
    s->kind = BULKUP_ERROR_NOMEM;
    snprintf(s->message, sizeof s->message, "out of memory");
    bk_mp_fail(s, m, "completing the upload");
    return bk_mp_settle(s, m);
  }
  bk_mp_setup(s, m, BK_MP_COMPLETE, 0);
  return BK_MP_GO;
}

bk_mp_next bk_mp_after(bk_slot *s) {
  bk_mp *m = s->mp;
  struct bulkup_uploader *u = m->u;
  bool s3 = m->proto == BULKUP_STORAGE_S3;
  bool nudge = false;
  bk_mp_next next;
  char what[96];
  bk_mutex_lock(&u->mp_lock);
  m->res.attempts += s->res.attempts;
  m->res.requests += s->res.requests;
  m->res.bytes_sent += s->res.bytes_sent;
  if (s->res.http_status)
    m->res.http_status = s->res.http_status;
  bool ok = s->kind == BULKUP_ERROR_NONE;
  switch ((bk_mp_phase)s->mp_phase) {
  case BK_MP_CREATE:
    if (ok) {
      m->upload_id = bk_s3_parse_upload_id(s->x.excerpt, s->x.excerpt_len);
      if (!m->upload_id) {
        s->kind = BULKUP_ERROR_PROTOCOL;
        snprintf(s->message, sizeof s->message,
                 "no UploadId in the answer (HTTP %d)", s->res.http_status);
        s->res.response_excerpt = s->x.excerpt;
        s->res.response_excerpt_len = s->x.excerpt_len;
        ok = false;
      }
    }
    if (ok && bk_mp_declared_crc32c(s)) {
      m->crcs = bk_calloc(m->nparts, sizeof *m->crcs);
      if (!m->crcs) {
        s->kind = BULKUP_ERROR_NOMEM;
        snprintf(s->message, sizeof s->message, "out of memory");
        ok = false;
      }
      m->crc32c = m->crcs != NULL;
    }
    if (!ok) {
      bk_mp_fail(s, m, "CreateMultipartUpload");
      next = bk_mp_report(s, m, false);
      break;
    }
    bk_mp_journal(m);
    bk_mp_publish(m);
    nudge = m->listed;
    next = bk_mp_next_part(s, m) ? BK_MP_GO : bk_mp_settle(s, m);
    break;
  case BK_MP_PART: {
    unsigned i = s->mp_part;
    m->running--;
    if (ok && s3 && !s->x.etag[0]) {
      s->kind = BULKUP_ERROR_PROTOCOL;
      snprintf(s->message, sizeof s->message, "no ETag in the answer");
      ok = false;
    }
    if (ok) {
      if (s3)
        m->etags[i] = bk_strdup(s->x.etag);
      if (s3 && !m->etags[i]) {
        s->kind = BULKUP_ERROR_NOMEM;
        snprintf(s->message, sizeof s->message, "out of memory");
        ok = false;
      }
    }
    if (ok && m->crc32c) {
      /* The CRC-32C the part's request was signed with (signhook.c:
       * computed from the file range by offset, for this window). */
      memcpy(m->crcs[i], s->pcrc, sizeof m->crcs[i]);
    }
    if (ok) {
      m->pstate[i] = BK_PART_DONE;
      m->done++;
      unsigned every = m->nparts <= 64 ? 1 : m->nparts / 64;
      if (++m->since_journal >= every)
        bk_mp_journal(m);
    } else {
      m->pstate[i] = BK_PART_PENDING; /* not sent again: the job failed */
      snprintf(what, sizeof what, "part %u of %u", i + 1, m->nparts);
      bk_mp_fail(s, m, what);
    }
    next = bk_mp_next_part(s, m) ? BK_MP_GO : bk_mp_settle(s, m);
    break;
  }
  case BK_MP_COMPLETE:
    if (ok && s3 && bk_s3_body_is_error(s->x.excerpt, s->x.excerpt_len)) {
      s->kind = BULKUP_ERROR_HTTP_STATUS;
      snprintf(s->message, sizeof s->message,
               "HTTP %d with an error in the body", s->res.http_status);
      s->res.response_excerpt = s->x.excerpt;
      s->res.response_excerpt_len = s->x.excerpt_len;
      ok = false;
    }
    if (ok) {
      if (u->opt.journal && m->item->journal_key &&
          bulkup_journal_record(u->opt.journal, m->item->journal_key, m->size,
                                m->mtime) != BULKUP_OK) {
        bk_log(u, BULKUP_LOG_ERROR, "item %llu: not journalled: %s",
               (unsigned long long)m->item->index,
               bulkup_last_error_message());
        bk_run_journal_failed(u, bulkup_last_error_message());
      }
      next = bk_mp_report(s, m, true);
    } else {
      bk_mp_fail(s, m, s3 ? "CompleteMultipartUpload" : "Put Block List");
      next = bk_mp_settle(s, m);
    }
    break;
  case BK_MP_ABORT:
  default: {
    size_t ml = strlen(m->message);
    if (ok)
      snprintf(m->message + ml, sizeof m->message - ml,
               "; the multipart upload was aborted");
    else
      snprintf(m->message + ml, sizeof m->message - ml,
               "; AbortMultipartUpload failed too: %.300s", s->message);
    bk_mp_journal_forget(m);
    next = bk_mp_report(s, m, false);
    break;
  }
  }
  bk_mutex_unlock(&u->mp_lock);
  if (nudge)
    bk_queue_nudge(&u->queue);
  return next;
}

void bk_mp_leave(bk_slot *s) {
  bk_mp *m = s->mp;
  if (!m)
    return;
  struct bulkup_uploader *u = m->u;
  s->mp = NULL;
  s->mp_phase = BK_MP_NONE;
  s->x.fd = -1;
  s->x.mem = NULL;
  s->x.item = NULL;
  /* A slot whose part ended lets go after the lock was released, so the
   * job may be reported meanwhile: the last slot to let go frees it. */
  bk_mutex_lock(&u->mp_lock);
  bool last = --m->slots == 0 && m->reported;
  bk_mutex_unlock(&u->mp_lock);
  if (last)
    bk_mp_free(m);
}

bool bk_mp_take(bk_slot *s) {
  struct bulkup_uploader *u = s->u;
  /* A peek without the lock (called for every idle slot after every
   * socket event); the lock decides. A job listed just after the peek
   * nudges the queue, which brings the worker back here. */
  if (!__atomic_load_n(&u->mp_jobs, __ATOMIC_RELAXED))
    return false;
  bool took = false;
  bk_mutex_lock(&u->mp_lock);
  for (bk_mp *m = u->mp_jobs; m && !took; m = m->next) {
    if (bk_mp_next_part(s, m)) {
      m->slots++;
      took = true;
    }
  }
  bk_mutex_unlock(&u->mp_lock);
  return took;
}

bool bk_mp_wait(struct bulkup_uploader *u) {
  bk_mutex_lock(&u->mp_lock);
  while (u->mp_active > 0 && !u->mp_jobs && !atomic_load(&u->cancelled))
    bk_cond_timedwait(&u->mp_cond, &u->mp_lock, bk_now() + 1.0);
  bool any = u->mp_jobs != NULL;
  bk_mutex_unlock(&u->mp_lock);
  return any;
}
