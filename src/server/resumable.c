/*
 * resumable.c - resumable uploads after Google Cloud Storage's XML API
 * (doc/api-protocol.md, "Resumable uploads"), in both modes.
 *
 * A POST with `x-goog-resumable: start` to an object's URL starts a
 * session named by a random sid; PUTs on the session URL with
 * Content-Range append chunks or ask how far the session got; when the
 * bytes persisted (P) reach the total, the session is finalized:
 * Content-MD5 checked, the object committed through the same store
 * writer a PUT uses. DELETE discards a session; so does time: a session
 * expires session_ttl seconds after its start (removed by the next lookup,
 * or by the sweep when a server starts on the root).
 *
 * Where the bytes live: with the memory store, in a buffer of the
 * session; with a disk store, in {root}/.resumable/<sid>/data, beside a
 * JSON file `meta` (object key, content type, cache control, Content-MD5,
 * total, completed) that is replaced atomically when it changes. P is the
 * data file's size, so a server started again on the same root finds
 * every session (loaded on its first lookup by sid) where it was left.
 *
 * Ownership: every chunk or status query takes the next generation number
 * of its session and becomes its owner; body bytes are appended by the
 * owner only, so a request its client abandoned stops appending as soon
 * as a newer one arrives, wherever it is in its body. Bytes are appended
 * as MHD hands them over, so a connection cut mid-body keeps what came
 * before the cut. Only the owner finalizes.
 *
 * Locking: the table's lock guards the hash table, each session's `refs`
 * and `listed`, and the session folders on disk (load, create, remove).
 * A session's own lock guards its mutable fields; it is held for one
 * append, one decision or one finalization (copying the bytes into the
 * store: disk or memory work, never a wait for the network). Order: the
 * table's lock, then a session's, then the store's; srv->mu is never
 * held with either. A session is freed once it is out of the table and
 * no request holds a reference. sid, key, dir and the remembered headers
 * never change after creation.
 */
#include "bks_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define RS_DIR ".resumable"
#define SID_LEN 32
#define META_MAX (64 * 1024)
#define COPY_BLOCK (256 * 1024)
#define P_STORAGE "/storage/"

struct bks_session {
  bks_session *next;
  char sid[SID_LEN + 1];
  char *key; /* API mode: the object key; raw mode: the raw path */
  char *content_type, *cache_control, *content_md5; /* as sent, or NULL */
  int has_md5;
  unsigned char md5[16];
  char *dir; /* disk: {root}/.resumable/<sid>; NULL: memory */
  double created; /* wall clock, seconds; in the meta file as created_ms */
  unsigned refs; /* the table's lock */
  int listed;    /* the table's lock */
  pthread_mutex_t mu; /* guards what follows */
  long long total;              /* -1 until known */
  unsigned long long persisted; /* P */
  int completed;
  int gone;                 /* discarded: cancelled, bad digest, reset */
  unsigned long long gen;   /* the last generation handed out */
  unsigned long long owner; /* the generation that may append */
  unsigned char *data;      /* memory: the bytes */
  size_t cap;
  int fd; /* disk: the data file while a request holds the session, or -1 */
};

struct bks_sessions {
  pthread_mutex_t mu;
  bks_session *b[BKS_BUCKETS];
};

/* ---- sessions ------------------------------------------------------------ */

bks_sessions *bks_sessions_new(void) {
  bks_sessions *t = calloc(1, sizeof *t);
  if (t)
    pthread_mutex_init(&t->mu, NULL);
  return t;
}

static void sess_free(bks_session *s) {
  if (s->fd >= 0)
    close(s->fd);
  free(s->data);
  free(s->key);
  free(s->content_type);
  free(s->cache_control);
  free(s->content_md5);
  free(s->dir);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

void bks_sessions_free(bks_sessions *t) {
  if (!t)
    return;
  for (size_t b = 0; b < BKS_BUCKETS; b++) {
    while (t->b[b]) {
      bks_session *s = t->b[b];
      t->b[b] = s->next;
      sess_free(s);
    }
  }
  pthread_mutex_destroy(&t->mu);
  free(t);
}

static int sid_valid(const char *sid) {
  if (!sid || strlen(sid) != SID_LEN)
    return 0;
  for (const char *p = sid; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
      return 0;
  return 1;
}

/* A new session (not listed). Strings are copied; md5 is the base64
 * Content-MD5 (already checked) or NULL. */
static bks_session *sess_new(const char *sid, const char *key,
                             const char *ctype, const char *cache,
                             const char *md5, long long total,
                             const char *dir) {
  bks_session *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  pthread_mutex_init(&s->mu, NULL);
  s->fd = -1;
  s->total = total;
  memcpy(s->sid, sid, SID_LEN);
  s->key = bks_strdup(key);
  s->content_type = bks_strdup(ctype);
  s->cache_control = bks_strdup(cache);
  s->content_md5 = bks_strdup(md5);
  s->dir = bks_strdup(dir);
  if (!s->key || (ctype && !s->content_type) || (cache && !s->cache_control) ||
      (md5 && !s->content_md5) || (dir && !s->dir)) {
    sess_free(s);
    return NULL;
  }
  if (md5) {
    s->has_md5 =
        bk_b64_decode(md5, strlen(md5), s->md5, sizeof s->md5, 0) == 16;
    if (!s->has_md5) {
      sess_free(s);
      return NULL;
    }
  }
  return s;
}

/* ---- the disk ------------------------------------------------------------- */

static char *sess_file(const bks_session *s, const char *name) {
  return bks_asprintf("%s/%s", s->dir, name);
}

/* Replace {dir}/meta atomically with the session's metadata. The session
 * is locked or not yet published. */
static int meta_write(bks_session *s) {
  json_object *o = json_object_new_object();
  if (!o)
    return -1;
  json_object_object_add(o, "key", json_object_new_string(s->key));
  if (s->content_type)
    json_object_object_add(o, "content_type",
                           json_object_new_string(s->content_type));
  if (s->cache_control)
    json_object_object_add(o, "cache_control",
                           json_object_new_string(s->cache_control));
  if (s->content_md5)
    json_object_object_add(o, "content_md5",
                           json_object_new_string(s->content_md5));
  json_object_object_add(o, "total", json_object_new_int64(s->total));
  json_object_object_add(o, "created_ms",
                         json_object_new_int64((int64_t)(s->created * 1000)));
  json_object_object_add(o, "completed",
                         json_object_new_boolean(s->completed));
  const char *txt = json_object_to_json_string_ext(
      o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  char *tmp = sess_file(s, "meta.tmp");
  char *fin = sess_file(s, "meta");
  int rc = -1;
  if (txt && tmp && fin) {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
      int ok = bks_write_all(fd, txt, strlen(txt)) == 0 && fsync(fd) == 0;
      ok = close(fd) == 0 && ok;
      if (ok && rename(tmp, fin) == 0) {
        bks_fsync_dir(s->dir);
        rc = 0;
      } else {
        unlink(tmp);
      }
    }
  }
  free(tmp);
  free(fin);
  json_object_put(o);
  return rc;
}

static const char *json_str(json_object *o, const char *name) {
  json_object *v = NULL;
  if (!json_object_object_get_ex(o, name, &v) ||
      !json_object_is_type(v, json_type_string))
    return NULL;
  return json_object_get_string(v);
}

/* Read a session from {root}/.resumable/<sid>/; NULL if there is none
 * (or it is unreadable). The table's lock is held. */
static bks_session *sess_load(bks_server *srv, const char *sid) {
  char *dir = bks_asprintf("%s/" RS_DIR "/%s", bks_store_root(srv->store),
                           sid);
  char *meta = dir ? bks_asprintf("%s/meta", dir) : NULL;
  char *data = dir ? bks_asprintf("%s/data", dir) : NULL;
  char *txt = meta ? bks_read_file(meta, META_MAX, NULL) : NULL;
  json_object *o = txt ? json_tokener_parse(txt) : NULL;
  bks_session *s = NULL;
  json_object *v = NULL;
  const char *key = o ? json_str(o, "key") : NULL;
  if (key && bks_object_key_valid(key) &&
      json_object_object_get_ex(o, "total", &v) &&
      json_object_is_type(v, json_type_int)) {
    long long total = json_object_get_int64(v);
    s = sess_new(sid, key, json_str(o, "content_type"),
                 json_str(o, "cache_control"), json_str(o, "content_md5"),
                 total < 0 ? -1 : total, dir);
  }
  struct stat mb;
  if (s && json_object_object_get_ex(o, "created_ms", &v) &&
      json_object_is_type(v, json_type_int))
    s->created = (double)json_object_get_int64(v) / 1000;
  else if (s) /* written before created_ms: the meta file's last change */
    s->created = stat(meta, &mb) == 0 ? (double)mb.st_mtime : bk_now_real();
  if (s && json_object_object_get_ex(o, "completed", &v) &&
      json_object_get_boolean(v)) {
    s->completed = 1;
    s->persisted = s->total > 0 ? (unsigned long long)s->total : 0;
  } else if (s) {
    struct stat sb;
    if (stat(data, &sb) == 0 && S_ISREG(sb.st_mode))
      s->persisted = (unsigned long long)sb.st_size;
  }
  json_object_put(o);
  free(txt);
  free(data);
  free(meta);
  free(dir);
  return s;
}

/* Remove a session folder: its files, then itself. */
static void remove_dir_files(const char *dir) {
  static const char *const names[] = {"data", "meta", "meta.tmp"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    char *p = bks_asprintf("%s/%s", dir, names[i]);
    if (p)
      unlink(p);
    free(p);
  }
  rmdir(dir);
}

static void remove_files(const bks_session *s) { remove_dir_files(s->dir); }

/* ---- the table ------------------------------------------------------------- */

static int expired(const bks_server *srv, const bks_session *s) {
  return srv->session_ttl > 0 &&
         bk_now_real() - s->created >= srv->session_ttl;
}

/* The session `sid` with a reference taken (loaded from disk when it is
 * not in memory), or NULL. An expired session is none; if no request
 * holds it, it is removed here, memory and disk. */
static bks_session *sess_get(bks_server *srv, const char *sid) {
  if (!sid_valid(sid))
    return NULL;
  bks_sessions *t = srv->sessions;
  unsigned b = bks_hash(sid);
  pthread_mutex_lock(&t->mu);
  bks_session **pp = &t->b[b];
  while (*pp && strcmp((*pp)->sid, sid) != 0)
    pp = &(*pp)->next;
  bks_session *s = *pp;
  if (!s && bks_store_root(srv->store) && (s = sess_load(srv, sid))) {
    s->listed = 1;
    s->next = t->b[b];
    t->b[b] = s;
    pp = &t->b[b];
  }
  if (s && expired(srv, s)) {
    /* none, for this request; removed now if no request holds it, else
     * by the first lookup after the last holder is done */
    if (s->refs == 0) {
      *pp = s->next; /* refs 0: nobody else can reach it */
      if (s->dir)
        remove_files(s);
      sess_free(s);
    }
    s = NULL;
  }
  if (s)
    s->refs++;
  pthread_mutex_unlock(&t->mu);
  return s;
}

/* Drop a reference. The last one closes the data file (the session stays
 * listed) or frees an unlisted session. */
static void sess_put(bks_server *srv, bks_session *s) {
  bks_sessions *t = srv->sessions;
  pthread_mutex_lock(&t->mu);
  int dead = --s->refs == 0 && !s->listed;
  if (s->refs == 0 && s->listed && s->fd >= 0) {
    /* no holder: nobody else can reach the session without this lock */
    close(s->fd);
    s->fd = -1;
  }
  pthread_mutex_unlock(&t->mu);
  if (dead)
    sess_free(s);
}

/* Take a discarded session out of the table and off the disk. */
static void sess_unlist(bks_server *srv, bks_session *s) {
  bks_sessions *t = srv->sessions;
  pthread_mutex_lock(&t->mu);
  if (s->listed) {
    bks_session **pp = &t->b[bks_hash(s->sid)];
    while (*pp && *pp != s)
      pp = &(*pp)->next;
    if (*pp)
      *pp = s->next;
    s->listed = 0;
    if (s->dir)
      remove_files(s);
  }
  pthread_mutex_unlock(&t->mu);
}

/* Mark discarded and drop the bytes; sess_unlist() follows once the
 * session's lock is released. */
static void discard_locked(bks_session *s) {
  s->gone = 1;
  free(s->data);
  s->data = NULL;
  s->cap = 0;
  if (s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
  }
}

void bks_rs_reset(bks_server *srv) {
  if (bks_store_root(srv->store))
    return; /* sessions on disk stay, as objects do */
  bks_sessions *t = srv->sessions;
  bks_session *dead = NULL;
  pthread_mutex_lock(&t->mu);
  for (size_t b = 0; b < BKS_BUCKETS; b++) {
    while (t->b[b]) {
      bks_session *s = t->b[b];
      t->b[b] = s->next;
      s->listed = 0;
      pthread_mutex_lock(&s->mu);
      discard_locked(s);
      pthread_mutex_unlock(&s->mu);
      if (s->refs == 0) {
        s->next = dead;
        dead = s;
      }
    }
  }
  pthread_mutex_unlock(&t->mu);
  while (dead) {
    bks_session *s = dead;
    dead = s->next;
    sess_free(s);
  }
}

void bks_rs_sweep(bks_server *srv) {
  const char *root = bks_store_root(srv->store);
  char *top = root && srv->session_ttl > 0
                  ? bks_asprintf("%s/" RS_DIR, root)
                  : NULL;
  DIR *d = top ? opendir(top) : NULL;
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (!sid_valid(e->d_name))
      continue;
    /* a lookup removes an expired session; a live one stays loaded */
    bks_session *s = sess_get(srv, e->d_name);
    if (s) {
      sess_put(srv, s);
      continue;
    }
    /* a folder left without a readable meta (a crash while the session
     * was being started), once it is older than a session can live */
    char *dir = bks_asprintf("%s/%s", top, e->d_name);
    struct stat sb;
    if (dir && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) &&
        bk_now_real() - (double)sb.st_mtime >= srv->session_ttl) {
      remove_dir_files(dir);
    }
    free(dir);
  }
  if (d)
    closedir(d);
  free(top);
}

long long bks_server_upload_offset(bks_server *srv, const char *sid,
                                   int *completed) {
  bks_session *s = sess_get(srv, sid);
  if (!s)
    return -1;
  pthread_mutex_lock(&s->mu);
  long long p = s->gone ? -1 : (long long)s->persisted;
  if (completed)
    *completed = s->completed;
  pthread_mutex_unlock(&s->mu);
  sess_put(srv, s);
  return p;
}

/* ---- the bytes ---------------------------------------------------------------- */

static int data_open_locked(bks_session *s) {
  if (!s->dir || s->fd >= 0)
    return 0;
  char *p = sess_file(s, "data");
  if (p)
    s->fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  free(p);
  return s->fd >= 0 ? 0 : -1;
}

/* Append at P. On a failure P stays and nothing after it is kept. */
static int put_bytes_locked(bks_session *s, const unsigned char *p,
                            size_t n) {
  if (s->dir) {
    if (data_open_locked(s) != 0)
      return -1;
    size_t done = 0;
    while (done < n) {
      ssize_t w = pwrite(s->fd, p + done, n - done,
                         (off_t)(s->persisted + done));
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0) {
        (void)ftruncate(s->fd, (off_t)s->persisted);
        return -1;
      }
      done += (size_t)w;
    }
  } else {
    size_t need = (size_t)s->persisted + n;
    if (need > s->cap) {
      size_t cap = s->cap ? s->cap : 65536;
      if (s->total > 0 && (unsigned long long)s->total <= BKS_PREALLOC_MAX &&
          cap < (size_t)s->total)
        cap = (size_t)s->total;
      while (cap < need)
        cap *= 2;
      unsigned char *d = realloc(s->data, cap);
      if (!d)
        return -1;
      s->data = d;
      s->cap = cap;
    }
    memcpy(s->data + s->persisted, p, n);
  }
  s->persisted += n;
  return 0;
}

void bks_rs_append(bks_req *r, const char *p, size_t n) {
  bks_session *s = r->rs;
  unsigned long long off = r->rs_off;
  r->rs_off += n;
  int failed = 0;
  pthread_mutex_lock(&s->mu);
  /* The owner's body is contiguous from S <= P, so off <= P here unless
   * a write failed; the bytes before P are already there. */
  if (!s->gone && !s->completed && s->owner == r->rs_gen &&
      off <= s->persisted && off + n > s->persisted) {
    size_t skip = (size_t)(s->persisted - off);
    failed = put_bytes_locked(s, (const unsigned char *)p + skip,
                              n - skip) != 0;
  }
  pthread_mutex_unlock(&s->mu);
  if (failed) {
    r->write_failed = 1;
    r->sink = BKS_SINK_DISCARD;
  }
}

/* Commit the session's P == total bytes as its object. 0 done; 1 the
 * Content-MD5 does not match (the session is discarded); -1 the store
 * failed (the session stays as it was). */
static int finalize_locked(bks_server *srv, bks_session *s) {
  unsigned long long total = (unsigned long long)s->total;
  if (data_open_locked(s) != 0)
    return -1;
  bks_writer *w = bks_store_begin(srv->store, s->key, total);
  EVP_MD_CTX *sha = EVP_MD_CTX_new();
  EVP_MD_CTX *md5 = s->has_md5 ? EVP_MD_CTX_new() : NULL;
  unsigned char *buf = s->dir ? malloc(COPY_BLOCK) : NULL;
  int ok = w && sha && (!s->has_md5 || md5) && (!s->dir || buf) &&
           EVP_DigestInit_ex(sha, EVP_sha256(), NULL) &&
           (!md5 || EVP_DigestInit_ex(md5, EVP_md5(), NULL));
  for (unsigned long long off = 0; ok && off < total;) {
    const unsigned char *p;
    size_t n;
    if (s->dir) {
      size_t want = total - off < COPY_BLOCK ? (size_t)(total - off)
                                             : COPY_BLOCK;
      ssize_t got = pread(s->fd, buf, want, (off_t)off);
      if (got < 0 && errno == EINTR)
        continue;
      if (got <= 0) {
        ok = 0;
        break;
      }
      p = buf;
      n = (size_t)got;
    } else {
      p = s->data;
      n = (size_t)total;
    }
    ok = EVP_DigestUpdate(sha, p, n) && (!md5 || EVP_DigestUpdate(md5, p, n)) &&
         bks_writer_write(w, p, n) == 0;
    off += n;
  }
  free(buf);
  unsigned char d[EVP_MAX_MD_SIZE], m[EVP_MAX_MD_SIZE];
  unsigned dn = 0, mn = 0;
  char hex[65];
  ok = ok && EVP_DigestFinal_ex(sha, d, &dn) &&
       (!md5 || EVP_DigestFinal_ex(md5, m, &mn));
  int bad_digest = ok && md5 && (mn != 16 || CRYPTO_memcmp(m, s->md5, 16));
  EVP_MD_CTX_free(sha);
  EVP_MD_CTX_free(md5);
  if (!ok || bad_digest) {
    bks_writer_abort(w);
    if (bad_digest)
      discard_locked(s);
    return bad_digest ? 1 : -1;
  }
  bk_hex_encode(d, dn, hex, false);
  if (bks_writer_commit(w, hex) != 0)
    return -1;
  s->completed = 1;
  free(s->data);
  s->data = NULL;
  s->cap = 0;
  if (s->dir) {
    /* the meta file says "completed" before the bytes go */
    (void)meta_write(s);
    close(s->fd);
    s->fd = -1;
    char *p = sess_file(s, "data");
    if (p)
      unlink(p);
    free(p);
  }
  return 0;
}

/* ---- requests ----------------------------------------------------------------- */

int bks_rs_kind(bks_req *r) {
  if (r->srv->mode == BKS_MODE_API && r->rec.endpoint != BKS_EP_STORAGE)
    return BKS_RS_NONE;
  const char *m = r->rec.method;
  if (strcmp(m, "POST") == 0) {
    const char *v = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                "x-goog-resumable");
    return v && strcasecmp(v, "start") == 0 ? BKS_RS_START : BKS_RS_NONE;
  }
  int put = strcmp(m, "PUT") == 0;
  if (!put && strcmp(m, "DELETE") != 0)
    return BKS_RS_NONE;
  int found = 0;
  free(bks_query_get(r->query, "upload_id", &found));
  if (!found)
    return BKS_RS_NONE;
  return put ? BKS_RS_CHUNK : BKS_RS_CANCEL;
}

static void rs_reject(bks_req *r, int status, const char *code,
                      const char *msg) {
  r->reject_status = status;
  r->reject_code = code;
  r->reject_msg = msg;
  r->sink = BKS_SINK_DISCARD;
}

/* The object a request names: the raw path (raw mode) or the decoded
 * object key after /storage/ (API mode); NULL if it cannot be decoded. */
static const char *req_key(bks_req *r) {
  if (r->srv->mode == BKS_MODE_RAW)
    return r->path;
  if (!r->key) {
    const char *raw = r->path + strlen(P_STORAGE);
    r->key = bks_pct_decode(raw, strlen(raw));
  }
  return r->key;
}

static const char *header(bks_req *r, const char *name) {
  return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* 1 to 18 decimal digits (so no overflow); *s moves past them. */
static int parse_num(const char **s, unsigned long long *out) {
  const char *p = *s;
  unsigned long long v = 0;
  size_t n = 0;
  while (*p >= '0' && *p <= '9' && n < 19) {
    v = v * 10 + (unsigned long long)(*p - '0');
    p++;
    n++;
  }
  if (n == 0 || n > 18)
    return -1;
  *s = p;
  *out = v;
  return 0;
}

/* "bytes S-E/T" (a chunk) or "bytes STAR/T" (a status query, *query set),
 * where STAR is '*' and T is a number or '*' (*total -1). 0, or -1 when
 * malformed. */
static int parse_content_range(const char *v, int *query,
                               unsigned long long *first,
                               unsigned long long *last, long long *total) {
  if (!v || strncasecmp(v, "bytes ", 6) != 0)
    return -1;
  const char *p = v + 6;
  *query = *p == '*';
  if (*query) {
    p++;
  } else if (parse_num(&p, first) != 0 || *p++ != '-' ||
             parse_num(&p, last) != 0 || *first > *last) {
    return -1;
  }
  if (*p++ != '/')
    return -1;
  if (*p == '*') {
    *total = -1;
    p++;
  } else {
    unsigned long long t;
    if (parse_num(&p, &t) != 0)
      return -1;
    *total = (long long)t;
  }
  return *p == '\0' ? 0 : -1;
}

static void start_prepare(bks_req *r) {
  r->rs_total = -1;
  if (r->srv->mode == BKS_MODE_API && bks_storage_authorize(r) != 0)
    return;
  r->sink = BKS_SINK_DISCARD;
  if (r->rec.content_length > 0) {
    rs_reject(r, 400, "InvalidArgument",
              "A request that starts a resumable upload has an empty body.");
    return;
  }
  const char *md5 = header(r, "Content-MD5");
  if (md5) {
    if (bk_b64_decode(md5, strlen(md5), r->want_md5, sizeof r->want_md5, 0) !=
        16) {
      rs_reject(r, 400, "InvalidDigest",
                "The Content-MD5 you specified is not valid.");
      return;
    }
    r->rs_has_md5 = 1;
  }
  const char *xl = header(r, "X-Upload-Content-Length");
  if (xl) {
    unsigned long long t;
    if (parse_num(&xl, &t) != 0 || *xl) {
      rs_reject(r, 400, "InvalidArgument",
                "X-Upload-Content-Length is not a whole number of bytes.");
      return;
    }
    r->rs_total = (long long)t;
  }
}

static void chunk_prepare(bks_req *r) {
  r->sink = BKS_SINK_DISCARD;
  char *sid = bks_query_get(r->query, "upload_id", NULL);
  const char *key = req_key(r);
  bks_session *s = key ? sess_get(r->srv, sid) : NULL;
  free(sid);
  if (!s) {
    rs_reject(r, 404, "NoSuchUpload", "The upload session does not exist.");
    return;
  }
  r->rs = s;
  int query = 0;
  unsigned long long first = 0, last = 0;
  long long total = -1;
  int range_ok = parse_content_range(header(r, "Content-Range"), &query,
                                     &first, &last, &total) == 0;
  long long cl = r->rec.content_length;
  const char *code = "InvalidArgument", *why = NULL;
  int failed = 0;

  pthread_mutex_lock(&s->mu);
  if (s->gone || strcmp(s->key, key) != 0) {
    pthread_mutex_unlock(&s->mu);
    rs_reject(r, 404, "NoSuchUpload", "The upload session does not exist.");
    return;
  }
  /* the newest request owns the session, whatever it turns out to be */
  r->rs_gen = s->owner = ++s->gen;
  if (s->completed) {
    pthread_mutex_unlock(&s->mu); /* answered 200, the body ignored */
    return;
  }
  unsigned long long p = s->persisted;
  if (!range_ok)
    why = "The Content-Range header is missing or malformed.";
  else if (query ? cl > 0 : cl < 0 || (unsigned long long)cl != last - first + 1)
    why = "The body's length does not match the Content-Range.";
  else if (total >= 0 && s->total >= 0 && total != s->total)
    why = "The total size differs from the one declared before.";
  else if (total >= 0 && (unsigned long long)total < p)
    why = "The total size is smaller than the bytes already received.";
  else if (!query && total >= 0 && last >= (unsigned long long)total)
    why = "The range ends past the total size.";
  else if (!query && first > p) {
    code = "InvalidRange";
    why = "The range starts after the bytes received so far; ask the "
          "session for its Range.";
  }
  if (!why && total >= 0 && s->total < 0) {
    s->total = total;
    if (s->dir && meta_write(s) != 0) {
      s->total = -1;
      failed = 1;
    }
  }
  if (!why && !failed && !query && data_open_locked(s) != 0)
    failed = 1;
  pthread_mutex_unlock(&s->mu);

  if (why)
    rs_reject(r, 400, code, why);
  else if (failed)
    rs_reject(r, 500, "InternalError", "The upload session could not be "
                                       "written.");
  else if (!query) {
    r->sink = BKS_SINK_SESSION;
    r->rs_off = first;
  }
  r->rs_query = query;
}

void bks_rs_prepare(bks_req *r) {
  switch (r->rs_kind) {
  case BKS_RS_START:
    start_prepare(r);
    break;
  case BKS_RS_CHUNK:
    chunk_prepare(r);
    break;
  default:
    r->sink = BKS_SINK_DISCARD;
    break;
  }
}

void bks_rs_release(bks_req *r) {
  if (r->rs)
    sess_put(r->srv, r->rs);
  r->rs = NULL;
}

/* What a PUT of the object answers on success, in this mode. */
static enum MHD_Result put_success(bks_req *r, const char *error) {
  if (r->srv->mode == BKS_MODE_API)
    return bks_respond(r, 200, "text/plain", "", 0, error);
  const char *body = r->act.body;
  return bks_respond(r, r->act.status ? r->act.status : 200, NULL, body,
                     body ? strlen(body) : 0, error);
}

static enum MHD_Result start_complete(bks_req *r) {
  bks_server *srv = r->srv;
  if (r->rec.body_bytes)
    return bks_respond_xml(r, 400, "InvalidArgument",
                       "A request that starts a resumable upload has an "
                       "empty body.");
  unsigned char rnd[SID_LEN / 2];
  char sid[SID_LEN + 1];
  if (!bk_random_bytes(rnd, sizeof rnd))
    return bks_respond_xml(r, 500, "InternalError", "No randomness for a sid.");
  bk_hex_encode(rnd, sizeof rnd, sid, false);
  const char *root = bks_store_root(srv->store);
  char *dir = root ? bks_asprintf("%s/" RS_DIR "/%s", root, sid) : NULL;
  const char *key = req_key(r);
  bks_session *s =
      key && (!root || dir)
          ? sess_new(sid, key, header(r, MHD_HTTP_HEADER_CONTENT_TYPE),
                     header(r, MHD_HTTP_HEADER_CACHE_CONTROL),
                     r->rs_has_md5 ? header(r, "Content-MD5") : NULL,
                     r->rs_total, dir)
          : NULL;
  free(dir);
  if (!s)
    return MHD_NO;
  s->created = bk_now_real();
  char *base = bks_host_base(r);
  if (!base)
    base = bks_strdup(srv->public_url ? srv->public_url : srv->self_url);
  char *loc = base ? bks_asprintf("Location: %s%s?upload_id=%s\r\n", base,
                                  r->path, sid)
                   : NULL;
  free(base);
  if (!loc) {
    sess_free(s);
    return MHD_NO;
  }
  int ok = 1;
  bks_sessions *t = srv->sessions;
  pthread_mutex_lock(&t->mu);
  if (s->dir) {
    char *top = bks_asprintf("%s/" RS_DIR, root);
    char *data = sess_file(s, "data");
    int fd = -1;
    ok = top && data && (mkdir(top, 0700) == 0 || errno == EEXIST) &&
         mkdir(s->dir, 0700) == 0 &&
         (fd = open(data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >=
             0 &&
         meta_write(s) == 0;
    if (fd >= 0)
      close(fd);
    if (!ok)
      remove_files(s);
    free(top);
    free(data);
  }
  if (ok) {
    unsigned b = bks_hash(sid);
    s->listed = 1;
    s->next = t->b[b];
    t->b[b] = s;
  }
  pthread_mutex_unlock(&t->mu);
  if (!ok) {
    sess_free(s);
    free(loc);
    return bks_respond_xml(r, 500, "InternalError",
                       "The upload session could not be written.");
  }
  pthread_mutex_lock(&srv->mu);
  srv->counters.resumable_started++;
  pthread_mutex_unlock(&srv->mu);
  enum MHD_Result ret = bks_respond_ex(r, 201, NULL, "", 0, loc, NULL);
  free(loc);
  return ret;
}

static enum MHD_Result chunk_complete(bks_req *r) {
  bks_server *srv = r->srv;
  bks_session *s = r->rs;
  if (r->rs_query && r->rec.body_bytes)
    return bks_respond_xml(r, 400, "InvalidArgument",
                       "A status query has an empty body.");
  if (r->write_failed)
    return bks_respond_xml(r, 500, "InternalError",
                       "The upload session could not be written.");
  int fin = 0, finalized = 0;
  pthread_mutex_lock(&s->mu);
  if (s->gone) {
    pthread_mutex_unlock(&s->mu);
    return bks_respond_xml(r, 404, "NoSuchUpload",
                       "The upload session does not exist.");
  }
  int owner = s->owner == r->rs_gen;
  if (owner && !s->completed && s->total >= 0 &&
      s->persisted == (unsigned long long)s->total) {
    fin = finalize_locked(srv, s);
    finalized = fin == 0;
  } else if (s->dir && !s->completed && data_open_locked(s) == 0) {
    /* what a 308 reports is on disk, including bytes a cut request left */
    (void)fdatasync(s->fd);
  }
  int completed = s->completed;
  unsigned long long p = s->persisted;
  pthread_mutex_unlock(&s->mu);

  if (fin == 1) {
    sess_unlist(srv, s);
    return bks_respond_xml(r, 400, "BadDigest",
                       "The Content-MD5 you specified did not match what "
                       "was received.");
  }
  if (fin < 0)
    return bks_respond_xml(r, 500, "InternalError",
                       "The object could not be written.");
  if (finalized) {
    pthread_mutex_lock(&srv->mu);
    srv->counters.resumable_completed++;
    if (srv->mode == BKS_MODE_API)
      srv->counters.objects_stored++;
    pthread_mutex_unlock(&srv->mu);
  }
  const char *error = owner ? NULL : "Superseded";
  if (completed)
    return put_success(r, error);
  char range[64] = "";
  if (p > 0)
    snprintf(range, sizeof range, "Range: bytes=0-%llu\r\n", p - 1);
  return bks_respond_ex(r, 308, NULL, "", 0, p > 0 ? range : NULL, error);
}

static enum MHD_Result cancel_complete(bks_req *r) {
  char *sid = bks_query_get(r->query, "upload_id", NULL);
  const char *key = req_key(r);
  bks_session *s = key ? sess_get(r->srv, sid) : NULL;
  free(sid);
  int found = 0;
  if (s) {
    r->rs = s; /* released with the request */
    pthread_mutex_lock(&s->mu);
    found = !s->gone && strcmp(s->key, key) == 0;
    if (found) {
      s->owner = ++s->gen;
      discard_locked(s);
    }
    pthread_mutex_unlock(&s->mu);
  }
  if (!found)
    return bks_respond_xml(r, 404, "NoSuchUpload",
                       "The upload session does not exist.");
  sess_unlist(r->srv, s);
  return bks_respond(r, 204, NULL, "", 0, NULL);
}

enum MHD_Result bks_rs_complete(bks_req *r) {
  if (r->reject_status)
    return bks_respond_xml(r, r->reject_status, r->reject_code, r->reject_msg);
  switch (r->rs_kind) {
  case BKS_RS_START:
    return start_complete(r);
  case BKS_RS_CHUNK:
    return chunk_complete(r);
  case BKS_RS_CANCEL:
    return cancel_complete(r);
  default:
    return MHD_NO;
  }
}
