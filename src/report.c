#include "internal.h"
#include "report.h"
#include "util/rand.h"
#include "util/str.h"

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
  return bk_calloc(1, sizeof(bulkup_report));
}

/* Copy src into k, its strings into one block. On allocation failure only
 * the numbers are kept. */
static bool bk_result_copy(bk_kept *k, const bulkup_result *src) {
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
  if (!bk_result_copy(&l->v[l->n], res))
    r->details_dropped++;
  l->n++;
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

static int bk_cmp_index(const void *a, const void *b) {
  const bk_kept *x = a, *y = b;
  return (x->r.index > y->r.index) - (x->r.index < y->r.index);
}

void bk_report_finalize(bulkup_report *r) {
  if (r->failures.n > 1)
    qsort(r->failures.v, r->failures.n, sizeof(bk_kept), bk_cmp_index);
  if (r->cancelled.n > 1)
    qsort(r->cancelled.v, r->cancelled.n, sizeof(bk_kept), bk_cmp_index);
}

void bulkup_report_summary(const bulkup_report *r, bulkup_summary *out) {
  if (!r) {
    memset(out, 0, sizeof *out);
    return;
  }
  *out = r->summary;
}

size_t bulkup_report_failure_count(const bulkup_report *r) {
  return r ? r->failures.n : 0;
}

const bulkup_result *bulkup_report_failure(const bulkup_report *r, size_t i) {
  return (r && i < r->failures.n) ? &r->failures.v[i].r : NULL;
}

size_t bulkup_report_cancelled_count(const bulkup_report *r) {
  return r ? r->cancelled.n : 0;
}

uint64_t bulkup_report_journal_failures(const bulkup_report *r) {
  return r ? r->journal_failures : 0;
}

const bulkup_result *bulkup_report_cancelled(const bulkup_report *r,
                                             size_t i) {
  return (r && i < r->cancelled.n) ? &r->cancelled.v[i].r : NULL;
}

static void bk_kept_list_free(bk_kept_list *l) {
  for (size_t i = 0; i < l->n; i++)
    bk_free(l->v[i].block);
  bk_free(l->v);
}

void bulkup_report_free(bulkup_report *r) {
  if (!r)
    return;
  bk_kept_list_free(&r->failures);
  bk_kept_list_free(&r->cancelled);
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

static json_object *bk_summary_json(const bulkup_summary *s, uint64_t dropped) {
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
            bk_add(o, "elapsed_s", json_object_new_double(s->elapsed_s), false);
  if (ok && dropped)
    ok = bk_add(o, "details_dropped", json_object_new_uint64(dropped), false);
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

static json_object *bk_concurrency_json(const bulkup_concurrency *c) {
  json_object *o = json_object_new_object();
  if (!o)
    return NULL;
  bool ok = bk_add(o, "adaptive", json_object_new_boolean(c->adaptive), false) &&
            bk_add(o, "start", json_object_new_uint64(c->start), false) &&
            bk_add(o, "min", json_object_new_uint64(c->min), false) &&
            bk_add(o, "max", json_object_new_uint64(c->max), false) &&
            bk_add(o, "final", json_object_new_uint64(c->final), false) &&
            bk_add(o, "limit", json_object_new_uint64(c->limit), false) &&
            bk_add(o, "threads", json_object_new_uint64(c->threads), false) &&
            bk_add(o, "grows", json_object_new_uint64(c->grows), false) &&
            bk_add(o, "shrinks", json_object_new_uint64(c->shrinks), false) &&
            bk_add(o, "pushbacks", json_object_new_uint64(c->pushbacks), false);
  if (!ok) {
    json_object_put(o);
    return NULL;
  }
  return o;
}

void bulkup_report_concurrency(const bulkup_report *r,
                               bulkup_concurrency *out) {
  memset(out, 0, sizeof *out);
  if (r)
    *out = r->concurrency;
}

static json_object *bk_report_json(const bulkup_report *r) {
  json_object *root = json_object_new_object();
  json_object *fails = json_object_new_array();
  json_object *canc = json_object_new_array();
  json_object *sum = bk_summary_json(&r->summary, r->details_dropped);
  if (!root || !fails || !canc || !sum)
    goto fail;
  for (size_t i = 0; i < r->failures.n; i++) {
    json_object *x = bk_result_json(&r->failures.v[i].r, true);
    if (!x || json_object_array_add(fails, x) != 0) {
      json_object_put(x);
      goto fail;
    }
  }
  for (size_t i = 0; i < r->cancelled.n; i++) {
    json_object *x = bk_result_json(&r->cancelled.v[i].r, false);
    if (!x || json_object_array_add(canc, x) != 0) {
      json_object_put(x);
      goto fail;
    }
  }
  json_object_object_add(root, "summary", sum);
  json_object_object_add(root, "failures", fails);
  json_object_object_add(root, "cancelled", canc);
  if (r->concurrency.limit) {
    json_object *conc = bk_concurrency_json(&r->concurrency);
    if (!conc)
      goto fail_root;
    json_object_object_add(root, "concurrency", conc);
  }
  return root;
fail_root:
  json_object_put(root);
  return NULL;
fail:
  json_object_put(root);
  json_object_put(fails);
  json_object_put(canc);
  json_object_put(sum);
  return NULL;
}

bulkup_err bulkup_report_to_json(const bulkup_report *r, bool pretty,
                                 char **out) {
  if (!r || !out)
    return bk_error(BULKUP_EINVAL, "report and out must not be NULL");
  *out = NULL;
  json_object *root = bk_report_json(r);
  if (!root)
    return bk_error(BULKUP_ENOMEM, "out of memory building the report");
  int flags = JSON_C_TO_STRING_NOSLASHESCAPE |
              (pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED
                      : JSON_C_TO_STRING_PLAIN);
  const char *text = json_object_to_json_string_ext(root, flags);
  char *copy = text ? bk_strdup(text) : NULL;
  json_object_put(root);
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

bulkup_err bulkup_file_write(const char *path, const void *data, size_t len) {
  if (!path || !*path || (!data && len))
    return bk_error(BULKUP_EINVAL, "path and data must not be NULL");
  int e;
  int fd = bk_path_fd(path);
  if (fd >= 0) {
    e = bk_write_all(fd, data, len);
    if (e)
      return bk_error(BULKUP_EIO, "cannot write %s: %s", path, strerror(e));
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
    e = fd < 0 ? errno : bk_write_all(fd, data, len);
    if (fd >= 0 && close(fd) != 0 && !e)
      e = errno;
    if (e)
      return bk_error(BULKUP_EIO, "cannot write %s: %s", path, strerror(e));
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
  if (fd < 0) {
    bulkup_err rc =
        bk_error(BULKUP_EIO, "cannot create a temporary file next to %s: %s",
                 path, strerror(e));
    bk_free(tmp);
    return rc;
  }
  e = bk_write_all(fd, data, len);
  if (!e && fsync(fd) != 0)
    e = errno;
  if (close(fd) != 0 && !e)
    e = errno;
  if (!e && rename(tmp, path) != 0)
    e = errno;
  if (e)
    unlink(tmp);
  bk_free(tmp);
  if (e)
    return bk_error(BULKUP_EIO, "cannot write %s: %s", path, strerror(e));
  return BULKUP_OK;
}

bulkup_err bulkup_report_write_json(const bulkup_report *r, const char *path) {
  if (!r || !path)
    return bk_error(BULKUP_EINVAL, "report and path must not be NULL");
  char *text = NULL;
  bulkup_err rc = bulkup_report_to_json(r, true, &text);
  if (rc != BULKUP_OK)
    return rc;
  size_t len = strlen(text);
  char *buf = bk_realloc(text, len + 2);
  if (!buf) {
    bk_free(text);
    return bk_error(BULKUP_ENOMEM, "out of memory");
  }
  buf[len] = '\n';
  buf[len + 1] = '\0';
  rc = bulkup_file_write(path, buf, len + 1);
  bk_free(buf);
  return rc;
}
