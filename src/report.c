#include "internal.h"
#include "report.h"
#include "util/rand.h"
#include "util/str.h"
#include "util/thread.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

const char *bulkup_error_kind_name(bulkup_error_kind kind) {
  switch (kind) {
#define BK_KIND_NAME(name, value, text)                                       \
  case BULKUP_ERROR_##name:                                                   \
    return text;
    BULKUP_ERROR_KIND_MAP(BK_KIND_NAME)
#undef BK_KIND_NAME
  default:
    return "unknown";
  }
}

const char *bulkup_item_status_name(bulkup_item_status s) {
  switch (s) {
  case BULKUP_ITEM_SUCCEEDED:
    return "succeeded";
  case BULKUP_ITEM_FAILED:
    return "failed";
  case BULKUP_ITEM_CANCELLED:
    return "cancelled";
  }
  return "unknown";
}

bulkup_report *bk_report_new(void) {
  bulkup_report *r = bk_calloc(1, sizeof(bulkup_report));
  if (!r)
    return NULL;
  r->spill_fd = -1;
  r->spill_bytes = BK_SPILL_BYTES;
  bk_mutex_init(&r->lock);
  return r;
}

/* Copy src into k, its strings into one block. On allocation failure only
 * the numbers are kept. */
static bool bk_result_copy(bk_kept *k, const bulkup_result *src,
                           size_t *bytes) {
  const char *strs[4] = {src->path, src->title, src->url, src->message};
  const char **outs[4] = {&k->r.path, &k->r.title, &k->r.url, &k->r.message};
  size_t lens[4], total = src->response_excerpt_len + 1;
  for (int i = 0; i < 4; i++) {
    lens[i] = strs[i] ? strlen(strs[i]) + 1 : 0;
    total += lens[i];
  }
  k->r = *src;
  k->block = bk_malloc(total);
  if (!k->block) {
    k->r.path = NULL;
    k->r.title = "";
    k->r.url = "";
    k->r.message = "(details lost: out of memory)";
    k->r.response_excerpt = "";
    k->r.response_excerpt_len = 0;
    return false;
  }
  *bytes += total;
  char *w = k->block;
  for (int i = 0; i < 4; i++) {
    if (!strs[i]) {
      *outs[i] = (i == 0) ? NULL : "";
      continue;
    }
    memcpy(w, strs[i], lens[i]);
    *outs[i] = w;
    w += lens[i];
  }
  if (src->response_excerpt_len)
    memcpy(w, src->response_excerpt, src->response_excerpt_len);
  w[src->response_excerpt_len] = '\0';
  k->r.response_excerpt = w;
  return true;
}

/* ---- the spill file -------------------------------------------------------
 * A record is a bk_rec_head followed by the path, title, url, message and
 * excerpt bytes (no NULs added). The file is read back by the process that
 * wrote it, so the head is written as the struct it is. */

#define BK_REC_NULL UINT32_MAX /* len of an absent path */

typedef struct bk_rec_head {
  uint64_t index, bytes_sent, size, user;
  double elapsed_s;
  int32_t status, error, attempts, http_status, requests, resumable;
  uint32_t len[5]; /* path, title, url, message, response_excerpt */
} bk_rec_head;

static int bk_write_all(int fd, const char *p, size_t len);

static int bk_spill_open(void) {
  const char *dir = getenv("TMPDIR");
  if (!dir || !*dir)
    dir = "/tmp";
#ifdef O_TMPFILE
  int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0)
    return fd;
#endif
  size_t n = strlen(dir) + 32;
  char *name = bk_malloc(n);
  if (!name)
    return -1;
  snprintf(name, n, "%s/bulkup-report.XXXXXX", dir);
  int fd2 = mkostemp(name, O_CLOEXEC);
  if (fd2 >= 0)
    unlink(name);
  bk_free(name);
  return fd2;
}

static int bk_cmp_index(const void *a, const void *b) {
  const bk_kept *x = a, *y = b;
  return (x->r.index > y->r.index) - (x->r.index < y->r.index);
}

/* Append record k to buf (flushing it to fd when full). 0 or an errno. */
static int bk_spill_record(int fd, char *buf, size_t *used, size_t cap,
                           const bk_kept *k, uint64_t *written) {
  const bulkup_result *x = &k->r;
  bk_rec_head h;
  memset(&h, 0, sizeof h);
  h.index = x->index;
  h.bytes_sent = x->bytes_sent;
  h.size = x->size;
  h.user = (uint64_t)(uintptr_t)x->user;
  h.elapsed_s = x->elapsed_s;
  h.status = (int32_t)x->status;
  h.error = (int32_t)x->error;
  h.attempts = x->attempts;
  h.http_status = x->http_status;
  h.requests = x->requests;
  h.resumable = x->resumable;
  const char *strs[5] = {x->path, x->title, x->url, x->message,
                         x->response_excerpt};
  for (int i = 0; i < 4; i++)
    h.len[i] = strs[i] ? (uint32_t)strlen(strs[i]) : (i ? 0 : BK_REC_NULL);
  h.len[4] = (uint32_t)x->response_excerpt_len;
  const void *parts[6] = {&h, strs[0], strs[1], strs[2], strs[3], strs[4]};
  size_t lens[6] = {sizeof h, 0, 0, 0, 0, 0};
  for (int i = 0; i < 5; i++)
    lens[i + 1] = h.len[i] == BK_REC_NULL ? 0 : h.len[i];
  for (int i = 0; i < 6; i++) {
    const char *p = parts[i];
    size_t n = lens[i];
    while (n) {
      if (*used == cap) {
        int e = bk_write_all(fd, buf, *used);
        if (e)
          return e;
        *used = 0;
      }
      size_t take = cap - *used < n ? cap - *used : n;
      memcpy(buf + *used, p, take);
      *used += take;
      p += take;
      n -= take;
    }
    *written += lens[i];
  }
  return 0;
}

/* Sort l->v and write it to the spill file as one run; v is then empty.
 * false (nothing changed) if the file cannot be made or written. */
static bool bk_spill(bulkup_report *r, bk_kept_list *l) {
  if (r->spill_failed || l->n == 0)
    return !r->spill_failed;
  if (l->nruns == l->runcap) {
    size_t ncap = l->runcap ? l->runcap * 2 : 16;
    bk_spill_run *nr = bk_realloc(l->runs, ncap * sizeof *nr);
    if (!nr)
      return false;
    l->runs = nr;
    l->runcap = ncap;
  }
  char *buf = bk_malloc(1 << 16);
  if (!buf)
    return false;
  if (r->spill_fd < 0 && (r->spill_fd = bk_spill_open()) < 0) {
    r->spill_failed = true;
    bk_free(buf);
    return false;
  }
  qsort(l->v, l->n, sizeof(bk_kept), bk_cmp_index);
  size_t used = 0;
  uint64_t written = 0;
  int e = 0;
  for (size_t i = 0; i < l->n && !e; i++)
    e = bk_spill_record(r->spill_fd, buf, &used, 1 << 16, &l->v[i], &written);
  if (!e && used)
    e = bk_write_all(r->spill_fd, buf, used);
  bk_free(buf);
  if (e) {
    /* Keep what we have in memory; drop the partial run. */
    r->spill_failed = true;
    if (ftruncate(r->spill_fd, (off_t)r->spill_size) != 0 ||
        lseek(r->spill_fd, (off_t)r->spill_size, SEEK_SET) < 0) {
      /* the partial run is past spill_size: never read */
    }
    return false;
  }
  l->runs[l->nruns].off = r->spill_size;
  l->runs[l->nruns].count = l->n;
  l->nruns++;
  r->spill_size += written;
  for (size_t i = 0; i < l->n; i++)
    bk_free(l->v[i].block);
  l->n = 0;
  l->bytes = 0;
  return true;
}

static void bk_keep(bulkup_report *r, bk_kept_list *l,
                    const bulkup_result *res) {
  if (l->n == l->cap) {
    size_t ncap = l->cap ? l->cap * 2 : 16;
    bk_kept *nv = bk_realloc(l->v, ncap * sizeof *nv);
    if (!nv) {
      r->details_dropped++;
      return;
    }
    l->v = nv;
    l->cap = ncap;
  }
  if (!bk_result_copy(&l->v[l->n], res, &l->bytes))
    r->details_dropped++;
  l->n++;
  l->total++;
  /* Bounded memory: a full buffer goes to disk. */
  if (l->bytes + l->n * sizeof(bk_kept) >= r->spill_bytes)
    bk_spill(r, l);
}

void bk_report_add(bulkup_report *r, const bulkup_result *res) {
  r->summary.submitted++;
  r->summary.bytes_sent += res->bytes_sent;
  if (res->attempts > 1)
    r->summary.retries += (uint64_t)(res->attempts - 1);
  switch (res->status) {
  case BULKUP_ITEM_SUCCEEDED:
    r->summary.succeeded++;
    r->summary.bytes_succeeded += res->size;
    break;
  case BULKUP_ITEM_FAILED:
    r->summary.failed++;
    bk_keep(r, &r->failures, res);
    break;
  case BULKUP_ITEM_CANCELLED:
    r->summary.cancelled++;
    bk_keep(r, &r->cancelled, res);
    break;
  }
}

static void bk_list_finalize(bulkup_report *r, bk_kept_list *l) {
  if (l->nruns && l->n && !bk_spill(r, l)) {
    /* The rest could not be spilled: it stays in memory, merged as one
     * more run would be (bk_iter reads v too). */
  }
  if (l->n > 1)
    qsort(l->v, l->n, sizeof(bk_kept), bk_cmp_index);
}

void bk_report_finalize(bulkup_report *r) {
  bk_list_finalize(r, &r->failures);
  bk_list_finalize(r, &r->cancelled);
}

/* ---- reading the kept items back ----------------------------------------
 * bk_iter walks a list in index order: the runs of the spill file and what
 * is in memory, merged. Memory: one cursor per run and one record. */

typedef struct bk_cursor {
  uint64_t off, left; /* next record's offset, records left */
  bk_rec_head h;      /* that record's head (when left > 0) */
} bk_cursor;

typedef struct bk_iter {
  const bulkup_report *r;
  const bk_kept_list *l;
  bk_cursor *c;
  size_t mem_i; /* next of l->v */
  char *buf;
  size_t cap;
  bulkup_result res;
  uint64_t last_off; /* the record just returned (UINT64_MAX: in memory) */
  const bk_kept *last_mem;
  bool failed;
} bk_iter;

static bool bk_pread_all(int fd, void *p, size_t n, uint64_t off) {
  char *w = p;
  while (n) {
    ssize_t k = pread(fd, w, n, (off_t)off);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return false;
    w += k;
    n -= (size_t)k;
    off += (uint64_t)k;
  }
  return true;
}

static uint64_t bk_rec_len(const bk_rec_head *h) {
  uint64_t n = sizeof *h;
  for (int i = 0; i < 5; i++)
    n += h->len[i] == BK_REC_NULL ? 0 : h->len[i];
  return n;
}

static bool bk_cursor_load(const bulkup_report *r, bk_cursor *c) {
  return c->left == 0 || bk_pread_all(r->spill_fd, &c->h, sizeof c->h, c->off);
}

static bool bk_iter_init(bk_iter *it, const bulkup_report *r,
                         const bk_kept_list *l) {
  memset(it, 0, sizeof *it);
  it->r = r;
  it->l = l;
  if (!l->nruns)
    return true;
  it->c = bk_calloc(l->nruns, sizeof *it->c);
  if (!it->c)
    return false;
  for (size_t i = 0; i < l->nruns; i++) {
    it->c[i].off = l->runs[i].off;
    it->c[i].left = l->runs[i].count;
    if (!bk_cursor_load(r, &it->c[i]))
      return false;
  }
  return true;
}

static void bk_iter_done(bk_iter *it) {
  bk_free(it->c);
  bk_free(it->buf);
}

/* Fill `res` (strings in `*buf`, grown as needed) from the record at off
 * whose head is h. */
static bool bk_rec_read(const bulkup_report *r, const bk_rec_head *h,
                        uint64_t off, char **buf, size_t *cap,
                        bulkup_result *res) {
  uint64_t body = bk_rec_len(h) - sizeof *h;
  size_t need = (size_t)body + 5;
  if (need > *cap) {
    char *nb = bk_realloc(*buf, need);
    if (!nb)
      return false;
    *buf = nb;
    *cap = need;
  }
  if (body && !bk_pread_all(r->spill_fd, *buf, (size_t)body, off + sizeof *h))
    return false;
  /* Move the strings apart to NUL-terminate each, from the last. */
  size_t pos[5], o = 0;
  for (int i = 0; i < 5; i++) {
    pos[i] = o;
    o += h->len[i] == BK_REC_NULL ? 0 : h->len[i];
  }
  char *b = *buf;
  for (int i = 4; i >= 0; i--) {
    size_t n = h->len[i] == BK_REC_NULL ? 0 : h->len[i];
    memmove(b + pos[i] + (size_t)i, b + pos[i], n);
    b[pos[i] + (size_t)i + n] = '\0';
  }
  memset(res, 0, sizeof *res);
  res->index = h->index;
  res->status = (bulkup_item_status)h->status;
  res->error = (bulkup_error_kind)h->error;
  res->attempts = h->attempts;
  res->http_status = h->http_status;
  res->requests = h->requests;
  res->resumable = h->resumable != 0;
  res->bytes_sent = h->bytes_sent;
  res->size = h->size;
  res->elapsed_s = h->elapsed_s;
  res->user = (void *)(uintptr_t)h->user;
  res->path = h->len[0] == BK_REC_NULL ? NULL : b + pos[0];
  res->title = b + pos[1] + 1;
  res->url = b + pos[2] + 2;
  res->message = b + pos[3] + 3;
  res->response_excerpt = b + pos[4] + 4;
  res->response_excerpt_len = h->len[4];
  return true;
}

/* The next item in index order, or NULL at the end (it->failed: a read
 * error). The result is valid until the next call. */
static const bulkup_result *bk_iter_next(bk_iter *it) {
  const bk_kept_list *l = it->l;
  size_t best = SIZE_MAX;
  uint64_t bi = UINT64_MAX;
  for (size_t i = 0; i < l->nruns; i++)
    if (it->c[i].left && (best == SIZE_MAX || it->c[i].h.index < bi)) {
      best = i;
      bi = it->c[i].h.index;
    }
  if (it->mem_i < l->n && (best == SIZE_MAX || l->v[it->mem_i].r.index < bi)) {
    it->last_off = UINT64_MAX;
    it->last_mem = &l->v[it->mem_i];
    return &l->v[it->mem_i++].r;
  }
  if (best == SIZE_MAX)
    return NULL;
  bk_cursor *c = &it->c[best];
  if (!bk_rec_read(it->r, &c->h, c->off, &it->buf, &it->cap, &it->res)) {
    it->failed = true;
    return NULL;
  }
  it->last_off = c->off;
  it->last_mem = NULL;
  c->off += bk_rec_len(&c->h);
  c->left--;
  if (!bk_cursor_load(it->r, c)) {
    it->failed = true;
    return NULL;
  }
  return &it->res;
}

/* Item i of list l, in index order. A list that never spilled is in
 * memory. Otherwise the record is read from the spill file and kept until
 * the report is freed (l->loaded), so that the pointer stays valid as the
 * header promises; finding it uses the offsets of every record in index
 * order (built on first use) except for the first few, found by merging
 * from the start (the CLI shows the first failures: no index for those). */
static const bulkup_result *bk_list_get(const bulkup_report *r,
                                        bk_kept_list *l, size_t i) {
  if (i >= l->total)
    return NULL;
  if (!l->nruns)
    return i < l->n ? &l->v[i].r : NULL;
  const bulkup_result *out = NULL;
  bk_mutex_lock((pthread_mutex_t *)&r->lock);
  bk_kept **slot = NULL;
  if (i < BK_LIST_HEAD) {
    slot = &l->head[i];
  } else {
    if (!l->loaded)
      l->loaded = bk_calloc((size_t)l->total, sizeof *l->loaded);
    if (l->loaded)
      slot = &l->loaded[i];
  }
  if (!slot || *slot) {
    out = slot ? &(*slot)->r : NULL;
    bk_mutex_unlock((pthread_mutex_t *)&r->lock);
    return out;
  }
  bk_iter it;
  if (!l->offs && i >= BK_LIST_HEAD) {
    l->offs = bk_malloc((size_t)l->total * sizeof *l->offs);
    if (l->offs) {
      bool ok = bk_iter_init(&it, r, l);
      for (uint64_t k = 0; ok && k < l->total; k++) {
        ok = bk_iter_next(&it) != NULL;
        l->offs[k] = it.last_off;
      }
      bk_iter_done(&it);
      if (!ok) {
        bk_free(l->offs);
        l->offs = NULL;
      }
    }
  }
  const bulkup_result *x = NULL;
  bool ok = bk_iter_init(&it, r, l);
  if (ok && l->offs && l->offs[i] != UINT64_MAX) {
    bk_rec_head h;
    if (bk_pread_all(r->spill_fd, &h, sizeof h, l->offs[i]) &&
        bk_rec_read(r, &h, l->offs[i], &it.buf, &it.cap, &it.res))
      x = &it.res;
  } else {
    /* Merge from the start (an item that stayed in memory is found so
     * too). */
    for (size_t k = 0; ok && k <= i; k++)
      ok = (x = bk_iter_next(&it)) != NULL;
  }
  if (x && it.last_mem && x == &it.last_mem->r) {
    out = &it.last_mem->r; /* in memory: v does not change after finalize */
  } else if (x) {
    bk_kept *k = bk_calloc(1, sizeof *k);
    size_t ignore = 0;
    if (k && bk_result_copy(k, x, &ignore)) {
      *slot = k;
      out = &k->r;
    } else if (k) {
      bk_free(k->block);
      bk_free(k);
    }
  }
  bk_iter_done(&it);
  bk_mutex_unlock((pthread_mutex_t *)&r->lock);
  return out;
}

void bulkup_report_summary(const bulkup_report *r, bulkup_summary *out) {
  if (!r) {
    memset(out, 0, sizeof *out);
    return;
  }
  *out = r->summary;
}

size_t bulkup_report_failure_count(const bulkup_report *r) {
  return r ? (size_t)r->failures.total : 0;
}

const bulkup_result *bulkup_report_failure(const bulkup_report *r, size_t i) {
  return r ? bk_list_get(r, (bk_kept_list *)&r->failures, i) : NULL;
}

size_t bulkup_report_cancelled_count(const bulkup_report *r) {
  return r ? (size_t)r->cancelled.total : 0;
}

uint64_t bulkup_report_journal_failures(const bulkup_report *r) {
  return r ? r->journal_failures : 0;
}

const bulkup_result *bulkup_report_cancelled(const bulkup_report *r,
                                             size_t i) {
  return r ? bk_list_get(r, (bk_kept_list *)&r->cancelled, i) : NULL;
}

static void bk_kept_list_free(bk_kept_list *l) {
  for (size_t i = 0; i < l->n; i++)
    bk_free(l->v[i].block);
  bk_free(l->v);
  if (l->loaded)
    for (uint64_t i = 0; i < l->total; i++)
      if (l->loaded[i]) {
        bk_free(l->loaded[i]->block);
        bk_free(l->loaded[i]);
      }
  bk_free(l->loaded);
  for (size_t i = 0; i < BK_LIST_HEAD; i++)
    if (l->head[i]) {
      bk_free(l->head[i]->block);
      bk_free(l->head[i]);
    }
  bk_free(l->offs);
  bk_free(l->runs);
}

void bulkup_report_free(bulkup_report *r) {
  if (!r)
    return;
  bk_kept_list_free(&r->failures);
  bk_kept_list_free(&r->cancelled);
  if (r->spill_fd >= 0)
    close(r->spill_fd);
  bk_mutex_destroy(&r->lock);
  bk_free(r);
}

/* ---- JSON ---------------------------------------------------------------- */

/* A JSON string of s[0..n): JSON text is UTF-8, so a byte that is not
 * part of a well-formed sequence becomes U+FFFD (the exact bytes of a
 * path or title: bk_jb64). */
static json_object *bk_jstrn(const char *s, size_t n) {
  if (!s)
    s = "";
  if (bk_utf8_valid(s, n))
    return json_object_new_string_len(s, (int)n);
  char *fixed = bk_malloc(n * 3 + 1);
  if (!fixed)
    return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    size_t k = bk_utf8_seq(s + i, n - i);
    if (k) {
      memcpy(fixed + o, s + i, k);
      o += k;
      i += k;
    } else {
      memcpy(fixed + o, BK_UTF8_REPLACEMENT, 3);
      o += 3;
      i++;
    }
  }
  json_object *j = json_object_new_string_len(fixed, (int)o);
  bk_free(fixed);
  return j;
}

static json_object *bk_jstr(const char *s) {
  return s ? bk_jstrn(s, strlen(s)) : NULL;
}

/* Add KEY: base64 of s when s is not well-formed UTF-8 (its exact bytes,
 * which the plain string cannot carry). */
static bool bk_jb64(json_object *o, const char *key, const char *s) {
  if (!s || bk_utf8_valid(s, strlen(s)))
    return true;
  size_t n = strlen(s);
  char *b = bk_malloc(BK_B64_ENCODED_LEN(n) + 1);
  if (!b)
    return false;
  bk_b64_encode(s, n, b);
  json_object *v = json_object_new_string(b);
  bk_free(b);
  return v && json_object_object_add(o, key, v) == 0;
}

static bool bk_add(json_object *o, const char *k, json_object *v, bool may_null) {
  if (!v && !may_null)
    return false;
  return json_object_object_add(o, k, v) == 0;
}

static json_object *bk_summary_json(const bulkup_report *r) {
  const bulkup_summary *s = &r->summary;
  json_object *o = json_object_new_object();
  if (!o)
    return NULL;
  bool ok = bk_add(o, "submitted", json_object_new_uint64(s->submitted), false) &&
            bk_add(o, "succeeded", json_object_new_uint64(s->succeeded), false) &&
            bk_add(o, "failed", json_object_new_uint64(s->failed), false) &&
            bk_add(o, "cancelled", json_object_new_uint64(s->cancelled), false) &&
            bk_add(o, "retries", json_object_new_uint64(s->retries), false) &&
            bk_add(o, "bytes_sent", json_object_new_uint64(s->bytes_sent), false) &&
            bk_add(o, "bytes_succeeded", json_object_new_uint64(s->bytes_succeeded), false) &&
            bk_add(o, "elapsed_s", json_object_new_double(s->elapsed_s), false) &&
            bk_add(o, "journal_failures",
                   json_object_new_uint64(r->journal_failures), false);
  if (ok && r->details_dropped)
    ok = bk_add(o, "details_dropped",
                json_object_new_uint64(r->details_dropped), false);
  if (!ok) {
    json_object_put(o);
    return NULL;
  }
  return o;
}

static json_object *bk_result_json(const bulkup_result *x, bool full) {
  json_object *o = json_object_new_object();
  if (!o)
    return NULL;
  bool ok = bk_add(o, "index", json_object_new_uint64(x->index), false) &&
            bk_add(o, "path", bk_jstr(x->path), true) &&
            bk_jb64(o, "path_b64", x->path) &&
            bk_add(o, "title", bk_jstr(x->title ? x->title : ""), false) &&
            bk_jb64(o, "title_b64", x->title) &&
            bk_add(o, "url", bk_jstr(x->url ? x->url : ""), false);
  if (ok && full)
    ok = bk_add(o, "attempts", json_object_new_int(x->attempts), false) &&
         bk_add(o, "http_status", json_object_new_int(x->http_status), false) &&
         bk_add(o, "error", bk_jstr(bulkup_error_kind_name(x->error)), false) &&
         bk_add(o, "message", bk_jstr(x->message ? x->message : ""), false) &&
         bk_add(o, "response_excerpt",
                bk_jstrn(x->response_excerpt, x->response_excerpt_len), false) &&
         bk_add(o, "bytes_sent", json_object_new_uint64(x->bytes_sent), false) &&
         bk_add(o, "elapsed_s", json_object_new_double(x->elapsed_s), false);
  if (ok && full && x->resumable)
    ok = bk_add(o, "resumable", json_object_new_boolean(1), false) &&
         bk_add(o, "requests", json_object_new_int(x->requests), false);
  if (!ok) {
    json_object_put(o);
    return NULL;
  }
  return o;
}

/* The report streamed to f, one item at a time (memory does not grow with
 * the number of items). `extra` (may be NULL): members of its "summary"
 * object go into the summary, its other members after "cancelled". */
static const int BK_JSON_PRETTY = JSON_C_TO_STRING_NOSLASHESCAPE |
                                  JSON_C_TO_STRING_PRETTY |
                                  JSON_C_TO_STRING_SPACED;
static const int BK_JSON_PLAIN = JSON_C_TO_STRING_NOSLASHESCAPE |
                                 JSON_C_TO_STRING_PLAIN;

/* Write o's text, each new line indented by `indent` spaces (JSON strings
 * hold no raw new line, so only the layout's lines are). */
static bool bk_json_put(FILE *f, json_object *o, bool pretty, int indent) {
  size_t len = 0;
  const char *t =
      json_object_to_json_string_length(o, pretty ? BK_JSON_PRETTY : BK_JSON_PLAIN, &len);
  if (!t)
    return false;
  if (!pretty || indent == 0)
    return fwrite(t, 1, len, f) == len;
  const char *p = t, *end = t + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
    if (fwrite(p, 1, n, f) != n)
      return false;
    if (nl && fprintf(f, "%*s", indent, "") < 0)
      return false;
    p += n;
  }
  return true;
}

/* "KEY": in the layout (pretty: on its own line at `indent`). */
static bool bk_json_key(FILE *f, const char *key, bool first, bool pretty,
                        int indent) {
  json_object *k = json_object_new_string(key);
  if (!k)
    return false;
  bool ok = fputs(first ? "" : ",", f) >= 0 &&
            (!pretty || fprintf(f, "\n%*s", indent, "") >= 0) &&
            bk_json_put(f, k, false, 0) &&
            fputs(pretty ? ": " : ":", f) >= 0;
  json_object_put(k);
  return ok;
}

static bulkup_err bk_werr(void) {
  return bk_error(BULKUP_EIO, "cannot write the report: %s",
                  strerror(errno ? errno : EIO));
}

static bulkup_err bk_json_list(FILE *f, const bulkup_report *r,
                               const bk_kept_list *l, bool full,
                               bool pretty) {
  bk_iter it;
  if (!bk_iter_init(&it, r, l)) {
    bk_iter_done(&it);
    return bk_error(BULKUP_ENOMEM, "out of memory writing the report");
  }
  bulkup_err rc = BULKUP_OK;
  if (fputc('[', f) == EOF)
    rc = bk_werr();
  bool first = true;
  const bulkup_result *x;
  while (rc == BULKUP_OK && (x = bk_iter_next(&it)) != NULL) {
    json_object *o = bk_result_json(x, full);
    if (!o) {
      rc = bk_error(BULKUP_ENOMEM, "out of memory writing the report");
      break;
    }
    bool ok = fputs(first ? "" : ",", f) >= 0 &&
              (!pretty || fputs("\n    ", f) >= 0) &&
              bk_json_put(f, o, pretty, 4);
    json_object_put(o);
    first = false;
    if (!ok)
      rc = bk_werr();
  }
  if (rc == BULKUP_OK && it.failed)
    rc = bk_error(BULKUP_EIO, "cannot read back the report's spilled "
                  "items: %s", strerror(errno ? errno : EIO));
  if (rc == BULKUP_OK &&
      ((pretty && !first && fputs("\n  ", f) < 0) || fputc(']', f) == EOF))
    rc = bk_werr();
  bk_iter_done(&it);
  return rc;
}

static bulkup_err bk_report_stream(const bulkup_report *r, FILE *f,
                                   bool pretty, json_object *extra) {
  json_object *sum = bk_summary_json(r);
  if (!sum)
    return bk_error(BULKUP_ENOMEM, "out of memory writing the report");
  json_object *xs = NULL;
  if (extra && json_object_object_get_ex(extra, "summary", &xs) &&
      json_object_is_type(xs, json_type_object)) {
    json_object_object_foreach(xs, k, v) {
      json_object_object_add(sum, k, json_object_get(v));
    }
  }
  bulkup_err rc = BULKUP_OK;
  bool ok = fputc('{', f) != EOF && bk_json_key(f, "summary", true, pretty, 2) &&
            bk_json_put(f, sum, pretty, 2);
  json_object_put(sum);
  if (!ok)
    rc = bk_werr();
  if (rc == BULKUP_OK && !bk_json_key(f, "failures", false, pretty, 2))
    rc = bk_werr();
  if (rc == BULKUP_OK)
    rc = bk_json_list(f, r, &r->failures, true, pretty);
  if (rc == BULKUP_OK && !bk_json_key(f, "cancelled", false, pretty, 2))
    rc = bk_werr();
  if (rc == BULKUP_OK)
    rc = bk_json_list(f, r, &r->cancelled, false, pretty);
  if (rc == BULKUP_OK && extra) {
    json_object_object_foreach(extra, k, v) {
      if (strcmp(k, "summary") == 0 && json_object_is_type(v, json_type_object))
        continue;
      if (!bk_json_key(f, k, false, pretty, 2) || !bk_json_put(f, v, pretty, 2)) {
        rc = bk_werr();
        break;
      }
    }
  }
  if (rc == BULKUP_OK && ((pretty && fputc('\n', f) == EOF) || fputc('}', f) == EOF))
    rc = bk_werr();
  return rc;
}

bulkup_err bulkup_report_to_json(const bulkup_report *r, bool pretty,
                                 char **out) {
  if (!r || !out)
    return bk_error(BULKUP_EINVAL, "report and out must not be NULL");
  *out = NULL;
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f)
    return bk_error(BULKUP_ENOMEM, "out of memory building the report");
  bulkup_err rc = bk_report_stream(r, f, pretty, NULL);
  if (fclose(f) != 0 && rc == BULKUP_OK)
    rc = bk_error(BULKUP_ENOMEM, "out of memory building the report");
  if (rc != BULKUP_OK) {
    free(text);
    return rc == BULKUP_EIO ? bk_error(BULKUP_ENOMEM, "out of memory "
                                       "building the report")
                            : rc;
  }
  /* Handed back for bulkup_free (bk_free), not free. */
  char *copy = bk_malloc(len + 1);
  if (copy) {
    memcpy(copy, text, len);
    copy[len] = '\0';
  }
  free(text);
  if (!copy)
    return bk_error(BULKUP_ENOMEM, "out of memory building the report");
  *out = copy;
  return BULKUP_OK;
}

/* ---- writing a file ------------------------------------------------------ */

static int bk_write_all(int fd, const char *p, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, p + off, len - off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    off += (size_t)w;
  }
  return 0;
}

/* The descriptor a path names by itself (/dev/stdout, /dev/stderr,
 * /dev/fd/N, /proc/self/fd/N), or -1. Opening such a path again would
 * start at offset 0 of a file the descriptor has open (and renaming over
 * it would replace /dev/stdout itself): the data goes to the descriptor. */
static int bk_path_fd(const char *path) {
  if (strcmp(path, "/dev/stdout") == 0)
    return STDOUT_FILENO;
  if (strcmp(path, "/dev/stderr") == 0)
    return STDERR_FILENO;
  const char *n = NULL;
  if (strncmp(path, "/dev/fd/", 8) == 0)
    n = path + 8;
  else if (strncmp(path, "/proc/self/fd/", 14) == 0)
    n = path + 14;
  if (!n || !*n || strlen(n) > 6 || strspn(n, "0123456789") != strlen(n))
    return -1;
  return atoi(n);
}

/* An output being written: to a descriptor a path names, into a device or
 * FIFO, or to a temporary file renamed over the target at the end. */
typedef struct bk_out {
  FILE *f;
  char *tmp; /* the temporary file, or NULL */
  const char *path;
} bk_out;

static bulkup_err bk_out_open(bk_out *o, const char *path) {
  memset(o, 0, sizeof *o);
  o->path = path;
  int e;
  int fd = bk_path_fd(path);
  if (fd >= 0) {
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    o->f = d >= 0 ? fdopen(d, "w") : NULL;
    if (!o->f) {
      e = errno;
      if (d >= 0)
        close(d);
      return bk_error(BULKUP_EIO, "cannot write %s: %s", path, strerror(e));
    }
    return BULKUP_OK;
  }
  struct stat st;
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
    if (S_ISDIR(st.st_mode))
      return bk_error(BULKUP_EINVAL, "%s is a directory", path);
    /* A device or a pipe (/dev/null, a FIFO): written into. Renaming a
     * file over it would replace it (for /dev/null, machine-wide when run
     * as root). */
    fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    o->f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!o->f) {
      e = errno;
      if (fd >= 0)
        close(fd);
      return bk_error(BULKUP_EIO, "cannot write %s: %s", path, strerror(e));
    }
    return BULKUP_OK;
  }
  /* A temporary file in the target's directory, named unpredictably and
   * created exclusively without following links (O_EXCL fails on any
   * existing name, a planted symlink included), then renamed over the
   * target: readers see the old file or the new one, never a part. */
  size_t plen = strlen(path);
  const char *slash = strrchr(path, '/');
  size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
  char *tmp = bk_malloc(plen + 40);
  if (!tmp)
    return bk_error(BULKUP_ENOMEM, "out of memory");
  fd = -1;
  e = EEXIST;
  for (int tries = 0; tries < 32 && fd < 0 && e == EEXIST; tries++) {
    unsigned char rnd[8];
    if (!bk_random_bytes(rnd, sizeof rnd)) {
      e = errno ? errno : EIO;
      break;
    }
    char hex[17];
    bk_hex_encode(rnd, sizeof rnd, hex, false);
    snprintf(tmp, plen + 40, "%.*s.%s.%s.tmp", (int)dlen, path,
             path + dlen, hex);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0644);
    e = fd < 0 ? errno : 0;
  }
  if (fd >= 0 && !(o->f = fdopen(fd, "w"))) {
    e = errno;
    close(fd);
    unlink(tmp);
    fd = -1;
  }
  if (fd < 0) {
    bulkup_err rc =
        bk_error(BULKUP_EIO, "cannot create a temporary file next to %s: %s",
                 path, strerror(e));
    bk_free(tmp);
    return rc;
  }
  o->tmp = tmp;
  return BULKUP_OK;
}

/* Finish: flush, and for a temporary file fsync and rename it over the
 * target (commit) or remove it (!commit, or a failure). */
static bulkup_err bk_out_close(bk_out *o, bool commit) {
  int e = 0;
  if (fflush(o->f) != 0)
    e = errno ? errno : EIO;
  if (!e && o->tmp && commit && fsync(fileno(o->f)) != 0)
    e = errno;
  if (fclose(o->f) != 0 && !e)
    e = errno ? errno : EIO;
  if (o->tmp) {
    if (!e && commit && rename(o->tmp, o->path) != 0)
      e = errno;
    if (e || !commit)
      unlink(o->tmp);
    bk_free(o->tmp);
  }
  if (e && commit)
    return bk_error(BULKUP_EIO, "cannot write %s: %s", o->path, strerror(e));
  return BULKUP_OK;
}

bulkup_err bulkup_file_write(const char *path, const void *data, size_t len) {
  if (!path || !*path || (!data && len))
    return bk_error(BULKUP_EINVAL, "path and data must not be NULL");
  bk_out o;
  bulkup_err rc = bk_out_open(&o, path);
  if (rc != BULKUP_OK)
    return rc;
  if (len && fwrite(data, 1, len, o.f) != len) {
    int e = errno ? errno : EIO;
    bk_out_close(&o, false);
    return bk_error(BULKUP_EIO, "cannot write %s: %s", path, strerror(e));
  }
  return bk_out_close(&o, true);
}

bulkup_err bulkup_report_write_json_with(const bulkup_report *r,
                                         const char *path,
                                         const char *extra_json) {
  if (!r || !path || !*path)
    return bk_error(BULKUP_EINVAL, "report and path must not be NULL");
  json_object *extra = NULL;
  if (extra_json) {
    extra = json_tokener_parse(extra_json);
    if (!extra || !json_object_is_type(extra, json_type_object)) {
      json_object_put(extra);
      return bk_error(BULKUP_EINVAL, "extra_json is not a JSON object");
    }
  }
  bk_out o;
  bulkup_err rc = bk_out_open(&o, path);
  if (rc == BULKUP_OK) {
    rc = bk_report_stream(r, o.f, true, extra);
    if (rc == BULKUP_OK && fputc('\n', o.f) == EOF)
      rc = bk_werr();
    bulkup_err rc2 = bk_out_close(&o, rc == BULKUP_OK);
    if (rc == BULKUP_OK)
      rc = rc2;
  }
  json_object_put(extra);
  return rc;
}

bulkup_err bulkup_report_write_json(const bulkup_report *r, const char *path) {
  return bulkup_report_write_json_with(r, path, NULL);
}
