/*
 * bk_ts.c - the fault-scripting HTTP/1.1 test server (see bk_ts.h).
 *
 * Layout: helpers; the server state (object store, scripts, request log),
 * all behind one mutex; the stop-aware wait; the TLS certificate; the
 * fault logic (what happens at each point of a request); the request
 * handling (libmicrohttpd callbacks, which only parse and dispatch); the
 * public API.
 *
 * Threads: libmicrohttpd runs one thread per connection
 * (MHD_USE_THREAD_PER_CONNECTION), so a fault may block its own connection
 * (sleep, stop reading) without blocking the others. Every sleep is a
 * poll() on the stop pipe, so bk_ts_stop() wakes them all at once; it also
 * watches the client's socket for a close where that matters.
 *
 * Locking: ts->mu guards the object store, the scripts, the request log
 * and the connection counter; ts->cv (CLOCK_MONOTONIC) is signalled when a
 * request is recorded. A request's own state (struct ts_req) is touched
 * only by its connection's thread. No MHD call is made with ts->mu held.
 */
#include "bk_ts.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TS_BUCKETS 1024
/* MHD's per-connection memory holds the request line and headers (signed
 * URLs are long) and the read buffer, so the body arrives in bigger
 * chunks. */
#define TS_CONN_MEMORY (256 * 1024)
/* A truncated response announces this many bytes more than it sends. */
#define TS_TRUNC_EXTRA 1024
#define TS_TRUNC_DEFAULT_BODY "truncated response body"
/* Never preallocate more than this from a Content-Length header. */
#define TS_PREALLOC_MAX (64u * 1024 * 1024)

/* ---- helpers ---------------------------------------------------------- */

static double ts_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static char *ts_strdup(const char *s) {
  if (!s)
    return NULL;
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p)
    memcpy(p, s, n);
  return p;
}

/* Copy at most cap-1 bytes of s (NULL = "") into dst, always terminated. */
static void ts_copy(char *dst, size_t cap, const char *s, size_t len) {
  if (!s)
    len = 0;
  if (len >= cap)
    len = cap - 1;
  if (len)
    memcpy(dst, s, len);
  dst[len] = '\0';
}

static void ts_hex(const unsigned char *d, unsigned n, char *out) {
  static const char hx[] = "0123456789abcdef";
  for (unsigned i = 0; i < n; i++) {
    out[2 * i] = hx[d[i] >> 4];
    out[2 * i + 1] = hx[d[i] & 15];
  }
  out[2 * n] = '\0';
}

static unsigned ts_hash(const char *s) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h % TS_BUCKETS;
}

const char *bk_ts_fault_name(bk_ts_fault fault) {
  switch (fault) {
  case BK_TS_OK: return "OK";
  case BK_TS_STATUS: return "STATUS";
  case BK_TS_DELAY: return "DELAY";
  case BK_TS_STALL_BODY: return "STALL_BODY";
  case BK_TS_NO_RESPONSE: return "NO_RESPONSE";
  case BK_TS_RESET_MID_BODY: return "RESET_MID_BODY";
  case BK_TS_TRUNCATED: return "TRUNCATED";
  case BK_TS_CLOSE_EARLY: return "CLOSE_EARLY";
  }
  return "UNKNOWN";
}

/* ---- server state ----------------------------------------------------- */

/* A scripted action with its own copies of the strings. */
typedef struct ts_action {
  bk_ts_fault fault;
  int status;
  char *headers;
  char *body;
  double seconds;
  unsigned long long after_bytes;
} ts_action;

/* The actions still to come for one path (path NULL: any path). */
typedef struct ts_script {
  struct ts_script *next;
  char *path;
  ts_action *acts;
  size_t head, n, cap;
} ts_script;

typedef struct ts_obj {
  struct ts_obj *next;
  char *path;
  unsigned char *data;
  size_t len;
  char sha256[65];
} ts_obj;

struct bk_ts {
  struct MHD_Daemon *daemon;
  unsigned short port;
  int tls;
  int stop_pipe[2]; /* written once by bk_ts_stop(); never read */
  char *key_pem, *cert_pem;
  char *ca_file;

  pthread_mutex_t mu;
  pthread_cond_t cv; /* a request was recorded */
  ts_obj *objs[TS_BUCKETS];
  ts_script *scripts; /* per-path */
  ts_script *any;     /* any-path, or NULL */
  bk_ts_request *reqs;
  size_t nreqs, capreqs;
  unsigned long nconns;
};

static void ts_action_free(ts_action *a) {
  free(a->headers);
  free(a->body);
  a->headers = a->body = NULL;
}

static void ts_script_free(ts_script *s) {
  if (!s)
    return;
  for (size_t i = s->head; i < s->n; i++)
    ts_action_free(&s->acts[i]);
  free(s->acts);
  free(s->path);
  free(s);
}

static ts_obj **ts_obj_find(bk_ts *ts, const char *path) {
  ts_obj **pp = &ts->objs[ts_hash(path)];
  while (*pp && strcmp((*pp)->path, path) != 0)
    pp = &(*pp)->next;
  return pp;
}

/* Store (taking ownership of data) or replace the object at path. Called
 * with ts->mu held. Returns 0, or -1 (data not taken) on allocation
 * failure. */
static int ts_obj_put(bk_ts *ts, const char *path, unsigned char *data,
                      size_t len, const char *sha256) {
  ts_obj **pp = ts_obj_find(ts, path);
  ts_obj *o = *pp;
  if (!o) {
    o = calloc(1, sizeof *o);
    char *p = ts_strdup(path);
    if (!o || !p) {
      free(o);
      free(p);
      return -1;
    }
    o->path = p;
    *pp = o;
  } else {
    free(o->data);
  }
  o->data = data;
  o->len = len;
  memcpy(o->sha256, sha256, 65);
  return 0;
}

static void ts_objs_clear(bk_ts *ts) {
  for (size_t b = 0; b < TS_BUCKETS; b++) {
    ts_obj *o = ts->objs[b];
    while (o) {
      ts_obj *next = o->next;
      free(o->data);
      free(o->path);
      free(o);
      o = next;
    }
    ts->objs[b] = NULL;
  }
}

static void ts_scripts_clear(bk_ts *ts) {
  while (ts->scripts) {
    ts_script *s = ts->scripts;
    ts->scripts = s->next;
    ts_script_free(s);
  }
  ts_script_free(ts->any);
  ts->any = NULL;
}

/* Take the next action for path into *out (the strings move to *out).
 * Per-path scripts win over the any-path script; with neither, BK_TS_OK.
 * Called with ts->mu held. */
static void ts_script_pop(bk_ts *ts, const char *path, ts_action *out) {
  ts_script **pp = &ts->scripts;
  while (*pp && strcmp((*pp)->path, path) != 0)
    pp = &(*pp)->next;
  if (!*pp)
    pp = &ts->any;
  ts_script *s = *pp;
  if (!s) {
    memset(out, 0, sizeof *out);
    out->fault = BK_TS_OK;
    return;
  }
  *out = s->acts[s->head++];
  if (s->head == s->n) {
    *pp = s->next;
    ts_script_free(s);
  }
}

/* Append a request to the log and wake bk_ts_wait_requests(). */
static void ts_log_request(bk_ts *ts, const bk_ts_request *rec) {
  pthread_mutex_lock(&ts->mu);
  if (ts->nreqs == ts->capreqs) {
    size_t cap = ts->capreqs ? 2 * ts->capreqs : 64;
    bk_ts_request *r = realloc(ts->reqs, cap * sizeof *r);
    if (!r) {
      pthread_mutex_unlock(&ts->mu);
      return; /* the request goes unrecorded; tests will notice */
    }
    ts->reqs = r;
    ts->capreqs = cap;
  }
  ts->reqs[ts->nreqs++] = *rec;
  pthread_cond_broadcast(&ts->cv);
  pthread_mutex_unlock(&ts->mu);
}

/* ---- waiting ------------------------------------------------------------ */

enum { TS_WAIT_TIMEOUT, TS_WAIT_STOP, TS_WAIT_PEER };

/* Sleep up to `seconds`; wake early when the server stops or, if fd >= 0,
 * when the peer closes its side of the connection. poll() times out on
 * the monotonic clock; the deadline is re-checked after each wake-up. */
static int ts_wait(bk_ts *ts, int fd, double seconds) {
  if (!(seconds > 0)) /* also NaN */
    return TS_WAIT_TIMEOUT;
  double end = ts_now() + seconds;
  for (;;) {
    double left = end - ts_now();
    if (left <= 0)
      return TS_WAIT_TIMEOUT;
    int ms = left * 1000.0 >= INT_MAX ? INT_MAX : (int)(left * 1000.0) + 1;
    struct pollfd p[2] = {{ts->stop_pipe[0], POLLIN, 0},
                          {fd, POLLRDHUP, 0}};
    int rc = poll(p, 2, ms);
    if (rc < 0 && errno != EINTR)
      return TS_WAIT_STOP; /* cannot wait safely: give up waiting */
    if (rc <= 0)
      continue;
    if (p[0].revents)
      return TS_WAIT_STOP;
    if (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR))
      return TS_WAIT_PEER;
  }
}

/* ---- TLS certificate ---------------------------------------------------- */

static char *ts_bio_string(BIO *bio) {
  char *mem = NULL;
  long n = BIO_get_mem_data(bio, &mem);
  if (n <= 0)
    return NULL;
  char *s = malloc((size_t)n + 1);
  if (s) {
    memcpy(s, mem, (size_t)n);
    s[n] = '\0';
  }
  return s;
}

static int ts_add_ext(X509 *x, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (!ext)
    return -1;
  int ok = X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  return ok ? 0 : -1;
}

/* A fresh EC P-256 key and a self-signed certificate valid for a day, for
 * 127.0.0.1 and localhost, both as PEM strings. It is its own CA
 * (CA:TRUE, as `openssl req -x509` makes), so a client trusts it with
 * CURLOPT_CAINFO pointing at the certificate. */
static int ts_make_cert(char **key_pem, char **cert_pem) {
  int rc = -1;
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  BIGNUM *serial = BN_new();
  BIO *kb = BIO_new(BIO_s_mem());
  BIO *cb = BIO_new(BIO_s_mem());
  *key_pem = *cert_pem = NULL;
  if (!key || !x || !serial || !kb || !cb)
    goto out;
  X509_NAME *name = X509_get_subject_name(x);
  if (!X509_set_version(x, 2) || !BN_rand(serial, 63, BN_RAND_TOP_ANY,
                                          BN_RAND_BOTTOM_ANY) ||
      !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) ||
      !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
      !X509_gmtime_adj(X509_getm_notAfter(x), 86400) ||
      !X509_set_pubkey(x, key) ||
      !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                  (const unsigned char *)"bulkup test server",
                                  -1, -1, 0) ||
      !X509_set_issuer_name(x, name))
    goto out;
  if (ts_add_ext(x, NID_basic_constraints, "critical,CA:TRUE") ||
      ts_add_ext(x, NID_subject_key_identifier, "hash") ||
      ts_add_ext(x, NID_authority_key_identifier, "keyid:always") ||
      ts_add_ext(x, NID_key_usage,
                 "critical,digitalSignature,keyCertSign") ||
      ts_add_ext(x, NID_ext_key_usage, "serverAuth") ||
      ts_add_ext(x, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost"))
    goto out;
  if (!X509_sign(x, key, EVP_sha256()) ||
      !PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) ||
      !PEM_write_bio_X509(cb, x))
    goto out;
  *key_pem = ts_bio_string(kb);
  *cert_pem = ts_bio_string(cb);
  if (*key_pem && *cert_pem)
    rc = 0;
out:
  if (rc) {
    if (*key_pem)
      OPENSSL_cleanse(*key_pem, strlen(*key_pem));
    free(*key_pem);
    free(*cert_pem);
    *key_pem = *cert_pem = NULL;
  }
  if (kb) {
    /* the key's PEM text sits in the BIO's buffer: wipe it */
    char *mem = NULL;
    long n = BIO_get_mem_data(kb, &mem);
    if (n > 0)
      OPENSSL_cleanse(mem, (size_t)n);
  }
  BIO_free(kb);
  BIO_free(cb);
  BN_free(serial);
  X509_free(x);
  EVP_PKEY_free(key);
  return rc;
}

static char *ts_write_ca_file(const char *pem) {
  const char *dir = getenv("TMPDIR");
  if (!dir || !*dir)
    dir = "/tmp";
  size_t n = strlen(dir) + 32;
  char *path = malloc(n);
  if (!path)
    return NULL;
  snprintf(path, n, "%s/bk_ts-ca-XXXXXX", dir);
  int fd = mkstemp(path);
  if (fd < 0) {
    free(path);
    return NULL;
  }
  size_t len = strlen(pem), off = 0;
  while (off < len) {
    ssize_t w = write(fd, pem + off, len - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  if (close(fd) != 0 || off != len) {
    unlink(path);
    free(path);
    return NULL;
  }
  return path;
}

/* ---- one request ------------------------------------------------------- */

/* Per-request state, created by the URI log callback (once per request),
 * used only by the connection's thread, freed when MHD reports the end. */
typedef struct ts_req {
  bk_ts *ts;
  struct MHD_Connection *conn;
  int fd;
  char *uri;         /* raw request target */
  int started;       /* the access handler has seen the headers */
  int fault_applied; /* STALL_BODY / RESET_MID_BODY already happened */
  int recorded;
  int stores;        /* method stores its body (not GET/HEAD/DELETE) */
  ts_action act;
  bk_ts_request rec;
  EVP_MD_CTX *md;
  unsigned char *data;
  size_t len, cap;
} ts_req;

static void ts_req_free(ts_req *r) {
  if (!r)
    return;
  ts_action_free(&r->act);
  EVP_MD_CTX_free(r->md);
  free(r->data);
  free(r->uri);
  free(r);
}

static int ts_req_body(ts_req *r, const char *p, size_t n) {
  if (r->md)
    EVP_DigestUpdate(r->md, p, n);
  r->rec.body_bytes += n;
  if (!r->stores || n == 0)
    return 0;
  if (r->len + n > r->cap) {
    size_t cap = r->cap ? r->cap : 65536;
    while (cap < r->len + n)
      cap *= 2;
    unsigned char *d = realloc(r->data, cap);
    if (!d)
      return -1;
    r->data = d;
    r->cap = cap;
  }
  memcpy(r->data + r->len, p, n);
  r->len += n;
  return 0;
}

/* Fix the body digest and add the request to the log (once). */
static void ts_req_record(ts_req *r) {
  if (r->recorded)
    return;
  r->recorded = 1;
  if (r->md) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (EVP_DigestFinal_ex(r->md, d, &n))
      ts_hex(d, n, r->rec.body_sha256);
    EVP_MD_CTX_free(r->md);
    r->md = NULL;
  }
  ts_log_request(r->ts, &r->rec);
}

/* ---- responses --------------------------------------------------------- */

/* Add "Name: value\r\n" lines to a response. */
static void ts_add_headers(struct MHD_Response *resp, const char *lines) {
  char *copy = ts_strdup(lines);
  char *save = NULL;
  for (char *line = copy ? strtok_r(copy, "\r\n", &save) : NULL; line;
       line = strtok_r(NULL, "\r\n", &save)) {
    char *colon = strchr(line, ':');
    if (!colon || colon == line)
      continue;
    *colon = '\0';
    char *value = colon + 1;
    while (*value == ' ' || *value == '\t')
      value++;
    MHD_add_response_header(resp, line, value);
  }
  free(copy);
}

/* Record the request with `status`, then queue the response. */
static enum MHD_Result ts_queue(ts_req *r, int status,
                                struct MHD_Response *resp) {
  if (!resp)
    return MHD_NO;
  if (r->act.headers)
    ts_add_headers(resp, r->act.headers);
  r->rec.status = status;
  ts_req_record(r);
  enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static struct MHD_Response *ts_text_response(const char *body) {
  return MHD_create_response_from_buffer(body ? strlen(body) : 0,
                                         (void *)(body ? body : ""),
                                         MHD_RESPMEM_MUST_COPY);
}

/* Serve the object at the request's path (GET, HEAD). */
static enum MHD_Result ts_respond_get(ts_req *r, int status) {
  bk_ts *ts = r->ts;
  void *copy = NULL;
  size_t len = 0;
  int found = 0;
  pthread_mutex_lock(&ts->mu);
  ts_obj *o = *ts_obj_find(ts, r->rec.path);
  if (o) {
    found = 1;
    len = o->len;
    copy = len ? malloc(len) : NULL;
    if (copy)
      memcpy(copy, o->data, len);
  }
  pthread_mutex_unlock(&ts->mu);
  if (!found)
    return ts_queue(r, 404, ts_text_response("not found\n"));
  if (len && !copy)
    return MHD_NO;
  struct MHD_Response *resp =
      copy ? MHD_create_response_from_buffer_with_free_callback(len, copy,
                                                                free)
           : ts_text_response(NULL);
  if (!resp)
    free(copy);
  return ts_queue(r, status, resp);
}

static enum MHD_Result ts_respond_delete(ts_req *r) {
  bk_ts *ts = r->ts;
  pthread_mutex_lock(&ts->mu);
  ts_obj **pp = ts_obj_find(ts, r->rec.path);
  ts_obj *o = *pp;
  if (o) {
    *pp = o->next;
    free(o->data);
    free(o->path);
    free(o);
  }
  pthread_mutex_unlock(&ts->mu);
  return ts_queue(r, o ? 204 : 404, ts_text_response(NULL));
}

/* BK_TS_OK and what DELAY and STALL_BODY end with. */
static enum MHD_Result ts_respond_ok(ts_req *r) {
  int status = r->act.status ? r->act.status : 200;
  if (!strcmp(r->rec.method, "GET") || !strcmp(r->rec.method, "HEAD"))
    return ts_respond_get(r, status);
  if (!strcmp(r->rec.method, "DELETE"))
    return ts_respond_delete(r);
  /* Store before the answer is queued: a client that sees 2xx finds the
   * object. The body buffer moves to the store. */
  char sha[65];
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  if (!r->md || !EVP_DigestFinal_ex(r->md, d, &n))
    return MHD_NO;
  ts_hex(d, n, sha);
  memcpy(r->rec.body_sha256, sha, sizeof sha);
  EVP_MD_CTX_free(r->md);
  r->md = NULL;
  bk_ts *ts = r->ts;
  unsigned char *data = r->data ? r->data : malloc(1);
  if (!data)
    return MHD_NO;
  pthread_mutex_lock(&ts->mu);
  int rc = ts_obj_put(ts, r->rec.path, data, r->len, sha);
  pthread_mutex_unlock(&ts->mu);
  if (rc) {
    if (data != r->data)
      free(data);
    return MHD_NO;
  }
  r->data = NULL;
  r->len = r->cap = 0;
  return ts_queue(r, status, ts_text_response(r->act.body));
}

typedef struct ts_blob {
  size_t len;
  char data[];
} ts_blob;

static ssize_t ts_trunc_reader(void *cls, uint64_t pos, char *buf,
                               size_t max) {
  ts_blob *b = cls;
  if (pos >= b->len)
    return MHD_CONTENT_READER_END_WITH_ERROR; /* MHD closes the connection */
  size_t n = b->len - (size_t)pos;
  if (n > max)
    n = max;
  memcpy(buf, b->data + pos, n);
  return (ssize_t)n;
}

/* Announce TS_TRUNC_EXTRA bytes more than the body we send, then fail. */
static enum MHD_Result ts_respond_truncated(ts_req *r) {
  const char *body = r->act.body ? r->act.body : TS_TRUNC_DEFAULT_BODY;
  size_t len = strlen(body);
  ts_blob *b = malloc(sizeof *b + len);
  if (!b)
    return MHD_NO;
  b->len = len;
  memcpy(b->data, body, len);
  struct MHD_Response *resp = MHD_create_response_from_callback(
      (uint64_t)len + TS_TRUNC_EXTRA, 4096, ts_trunc_reader, b, free);
  if (!resp)
    free(b);
  return ts_queue(r, r->act.status ? r->act.status : 503, resp);
}

/* ---- fault logic ------------------------------------------------------- */

/* Reset the connection now: a TCP RST with no FIN before it. On Linux,
 * connect(AF_UNSPEC) disconnects a TCP socket and sends RST at once
 * (tcp_disconnect), without closing the descriptor MHD owns. SO_LINGER 0
 * makes MHD's own close() send RST too, should the first step fail. */
static void ts_reset_connection(ts_req *r) {
  if (r->fd < 0)
    return;
  struct linger lg = {1, 0};
  setsockopt(r->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  struct sockaddr sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_family = AF_UNSPEC;
  (void)connect(r->fd, &sa, sizeof sa);
}

/* The mid-body faults, once `after_bytes` of the body have arrived (or the
 * body ended before). Returns MHD_NO when the connection must go (after a
 * reset, or when the server stops during a stall). */
static enum MHD_Result ts_fault_mid_body(ts_req *r) {
  r->fault_applied = 1;
  if (r->act.fault == BK_TS_STALL_BODY)
    return ts_wait(r->ts, r->fd, r->act.seconds) == TS_WAIT_STOP ? MHD_NO
                                                                  : MHD_YES;
  ts_req_record(r); /* recorded before the client can see the reset */
  ts_reset_connection(r);
  return MHD_NO;
}

static int ts_has_mid_body_fault(const ts_req *r) {
  return !r->fault_applied && (r->act.fault == BK_TS_STALL_BODY ||
                               r->act.fault == BK_TS_RESET_MID_BODY);
}

/* A chunk of the body arrived. Consumes all of it unless a reset drops
 * the connection. */
static enum MHD_Result ts_on_body(ts_req *r, const char *data, size_t n) {
  if (ts_has_mid_body_fault(r)) {
    unsigned long long room = r->act.after_bytes > r->rec.body_bytes
                                  ? r->act.after_bytes - r->rec.body_bytes
                                  : 0;
    if (room < n) {
      /* the fault falls inside this chunk: take the bytes before it */
      if (ts_req_body(r, data, (size_t)room))
        return MHD_NO;
      data += room;
      n -= (size_t)room;
      if (ts_fault_mid_body(r) == MHD_NO)
        return MHD_NO;
    }
  }
  return ts_req_body(r, data, n) ? MHD_NO : MHD_YES;
}

/* The whole body arrived: apply the action's end. */
static enum MHD_Result ts_on_complete(ts_req *r) {
  r->rec.complete = 1;
  if (ts_has_mid_body_fault(r) && ts_fault_mid_body(r) == MHD_NO)
    return MHD_NO;
  switch (r->act.fault) {
  case BK_TS_OK:
  case BK_TS_STALL_BODY:
    return ts_respond_ok(r);
  case BK_TS_DELAY:
    /* a client that gives up ends the delay early; the object is still
     * stored, as a real server would. A stopping server drops it. */
    if (ts_wait(r->ts, r->fd, r->act.seconds) == TS_WAIT_STOP)
      return MHD_NO;
    return ts_respond_ok(r);
  case BK_TS_STATUS:
    return ts_queue(r, r->act.status ? r->act.status : 503,
                    ts_text_response(r->act.body));
  case BK_TS_TRUNCATED:
    return ts_respond_truncated(r);
  case BK_TS_NO_RESPONSE:
    ts_req_record(r);
    ts_wait(r->ts, r->fd, r->act.seconds);
    return MHD_NO; /* MHD closes the connection without a response */
  case BK_TS_CLOSE_EARLY:
    ts_req_record(r);
    return MHD_NO;
  case BK_TS_RESET_MID_BODY: /* applied above */
    break;
  }
  return MHD_NO;
}

/* ---- request handling (libmicrohttpd callbacks) ------------------------ */

static void ts_copy_header(struct MHD_Connection *c, const char *name,
                           char *dst, size_t cap) {
  const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
  ts_copy(dst, cap, v, v ? strlen(v) : 0);
}

/* The headers are in: fill the record, pick the action. */
static enum MHD_Result ts_on_headers(ts_req *r, const char *method) {
  bk_ts *ts = r->ts;
  struct MHD_Connection *c = r->conn;
  bk_ts_request *rec = &r->rec;

  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  r->fd = ci ? ci->connect_fd : -1;
  ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  rec->connection_id = ci ? (unsigned long)(uintptr_t)ci->socket_context : 0;

  ts_copy(rec->method, sizeof rec->method, method, strlen(method));
  const char *q = strchr(r->uri, '?');
  size_t plen = q ? (size_t)(q - r->uri) : strlen(r->uri);
  ts_copy(rec->path, sizeof rec->path, r->uri, plen);
  ts_copy(rec->query, sizeof rec->query, q ? q + 1 : NULL,
          q ? strlen(q + 1) : 0);
  ts_copy_header(c, MHD_HTTP_HEADER_CONTENT_TYPE, rec->content_type,
                 sizeof rec->content_type);
  ts_copy_header(c, MHD_HTTP_HEADER_CACHE_CONTROL, rec->cache_control,
                 sizeof rec->cache_control);
  ts_copy_header(c, "Content-MD5", rec->content_md5, sizeof rec->content_md5);
  ts_copy_header(c, MHD_HTTP_HEADER_EXPECT, rec->expect, sizeof rec->expect);
  const char *cl =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                  MHD_HTTP_HEADER_CONTENT_LENGTH);
  rec->content_length = cl ? strtoll(cl, NULL, 10) : -1;
  ts_hex(NULL, 0, rec->body_sha256);

  r->stores = strcmp(method, "GET") && strcmp(method, "HEAD") &&
              strcmp(method, "DELETE");
  r->md = EVP_MD_CTX_new();
  if (!r->md || !EVP_DigestInit_ex(r->md, EVP_sha256(), NULL))
    return MHD_NO;
  if (r->stores && rec->content_length > 0 &&
      (unsigned long long)rec->content_length <= TS_PREALLOC_MAX) {
    r->data = malloc((size_t)rec->content_length);
    if (r->data)
      r->cap = (size_t)rec->content_length;
  }

  pthread_mutex_lock(&ts->mu);
  ts_script_pop(ts, rec->path, &r->act);
  pthread_mutex_unlock(&ts->mu);
  rec->fault = r->act.fault;
  r->started = 1;
  return MHD_YES;
}

/* MHD_OPTION_URI_LOG_CALLBACK: the first sight of a request, with the raw
 * request target. Its return value is the request's *con_cls. */
static void *ts_uri_log(void *cls, const char *uri,
                        struct MHD_Connection *conn) {
  ts_req *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->ts = cls;
  r->conn = conn;
  r->fd = -1;
  r->uri = ts_strdup(uri ? uri : "");
  r->rec.content_length = -1;
  if (!r->uri) {
    free(r);
    return NULL;
  }
  return r;
}

/* The access handler: called once with the headers, once per body chunk,
 * then once more when the body is complete. */
static enum MHD_Result ts_access(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls) {
  (void)cls;
  (void)url; /* unescaped; the record keeps the raw target instead */
  (void)version;
  ts_req *r = *con_cls;
  if (!r || r->conn != conn)
    return MHD_NO;
  if (!r->started)
    return ts_on_headers(r, method);
  if (*upload_data_size) {
    enum MHD_Result ret = ts_on_body(r, upload_data, *upload_data_size);
    *upload_data_size = 0;
    return ret;
  }
  return ts_on_complete(r);
}

/* MHD_OPTION_NOTIFY_COMPLETED: the request ended, well or not. A request
 * not recorded yet was cut short (client abort, read error, shutdown). */
static void ts_completed(void *cls, struct MHD_Connection *conn,
                         void **con_cls, enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)conn;
  (void)toe;
  ts_req *r = *con_cls;
  *con_cls = NULL;
  if (!r)
    return;
  if (r->started)
    ts_req_record(r);
  ts_req_free(r);
}

/* MHD_OPTION_NOTIFY_CONNECTION: number each TCP connection; the number
 * is kept in the socket context itself (no allocation). */
static void ts_notify_connection(void *cls, struct MHD_Connection *conn,
                                 void **socket_context,
                                 enum MHD_ConnectionNotificationCode toe) {
  (void)conn;
  bk_ts *ts = cls;
  if (toe != MHD_CONNECTION_NOTIFY_STARTED)
    return;
  pthread_mutex_lock(&ts->mu);
  unsigned long id = ++ts->nconns;
  pthread_mutex_unlock(&ts->mu);
  *socket_context = (void *)(uintptr_t)id;
}

/* ---- public API --------------------------------------------------------- */

static void ts_free(bk_ts *ts) {
  if (ts->ca_file) {
    unlink(ts->ca_file);
    free(ts->ca_file);
  }
  if (ts->key_pem) {
    OPENSSL_cleanse(ts->key_pem, strlen(ts->key_pem));
    free(ts->key_pem);
  }
  free(ts->cert_pem);
  if (ts->stop_pipe[0] >= 0)
    close(ts->stop_pipe[0]);
  if (ts->stop_pipe[1] >= 0)
    close(ts->stop_pipe[1]);
  ts_objs_clear(ts);
  ts_scripts_clear(ts);
  free(ts->reqs);
  pthread_cond_destroy(&ts->cv);
  pthread_mutex_destroy(&ts->mu);
  free(ts);
}

int bk_ts_start(bk_ts **out, const bk_ts_options *opt) {
  *out = NULL;
  bk_ts *ts = calloc(1, sizeof *ts);
  if (!ts)
    return -1;
  ts->tls = opt && opt->tls;
  ts->stop_pipe[0] = ts->stop_pipe[1] = -1;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&ts->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&ts->mu, NULL);
  if (pipe2(ts->stop_pipe, O_CLOEXEC) != 0)
    goto fail;
  if (ts->tls && (ts_make_cert(&ts->key_pem, &ts->cert_pem) != 0 ||
                  !(ts->ca_file = ts_write_ca_file(ts->cert_pem))))
    goto fail;

  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = 0;

  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD |
                   MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
  if (ts->tls)
    flags |= MHD_USE_TLS;
  const char *log = getenv("BK_TS_LOG");
  if (log && *log && strcmp(log, "0") != 0)
    flags |= MHD_USE_ERROR_LOG;
  struct MHD_OptionItem tls_ops[] = {
      {MHD_OPTION_HTTPS_MEM_KEY, 0, ts->key_pem},
      {MHD_OPTION_HTTPS_MEM_CERT, 0, ts->cert_pem},
      {MHD_OPTION_END, 0, NULL}};
  struct MHD_OptionItem no_ops[] = {{MHD_OPTION_END, 0, NULL}};
  ts->daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, ts_access, ts, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&sin, MHD_OPTION_URI_LOG_CALLBACK, ts_uri_log, ts,
      MHD_OPTION_NOTIFY_COMPLETED, ts_completed, ts,
      MHD_OPTION_NOTIFY_CONNECTION, ts_notify_connection, ts,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)TS_CONN_MEMORY,
      MHD_OPTION_ARRAY, ts->tls ? tls_ops : no_ops, MHD_OPTION_END);
  if (!ts->daemon)
    goto fail;
  const union MHD_DaemonInfo *di =
      MHD_get_daemon_info(ts->daemon, MHD_DAEMON_INFO_BIND_PORT);
  if (!di || !di->port) {
    MHD_stop_daemon(ts->daemon);
    goto fail;
  }
  ts->port = di->port;
  *out = ts;
  return 0;
fail:
  ts_free(ts);
  return -1;
}

void bk_ts_stop(bk_ts *ts) {
  if (!ts)
    return;
  /* Wake every sleeping fault first, so MHD_stop_daemon() can join the
   * connection threads without waiting for them. */
  char c = 1;
  while (write(ts->stop_pipe[1], &c, 1) < 0 && errno == EINTR)
    ;
  MHD_stop_daemon(ts->daemon);
  ts_free(ts);
}

unsigned short bk_ts_port(const bk_ts *ts) { return ts->port; }

char *bk_ts_url(const bk_ts *ts, const char *path) {
  if (!path)
    path = "";
  size_t n = strlen(path) + 40;
  char *s = malloc(n);
  if (s)
    snprintf(s, n, "%s://127.0.0.1:%u%s", ts->tls ? "https" : "http",
             (unsigned)ts->port, path);
  return s;
}

const char *bk_ts_ca_file(const bk_ts *ts) { return ts->ca_file; }

void bk_ts_script(bk_ts *ts, const char *path, const bk_ts_action *actions,
                  size_t n) {
  if (!n)
    return;
  /* Copy outside the lock, then append under it. */
  ts_action *acts = calloc(n, sizeof *acts);
  if (!acts)
    return;
  for (size_t i = 0; i < n; i++) {
    acts[i].fault = actions[i].fault;
    acts[i].status = actions[i].status;
    acts[i].headers = ts_strdup(actions[i].headers);
    acts[i].body = ts_strdup(actions[i].body);
    acts[i].seconds = actions[i].seconds;
    acts[i].after_bytes = actions[i].after_bytes;
  }
  pthread_mutex_lock(&ts->mu);
  ts_script **pp = &ts->any;
  if (path) {
    pp = &ts->scripts;
    while (*pp && strcmp((*pp)->path, path) != 0)
      pp = &(*pp)->next;
  }
  ts_script *s = *pp;
  if (!s) {
    s = calloc(1, sizeof *s);
    if (s && path && !(s->path = ts_strdup(path))) {
      free(s);
      s = NULL;
    }
    if (s)
      *pp = s;
  }
  if (s && s->n + n > s->cap) {
    size_t cap = s->cap ? s->cap : 4;
    while (cap < s->n + n)
      cap *= 2;
    ts_action *a = realloc(s->acts, cap * sizeof *a);
    if (a) {
      s->acts = a;
      s->cap = cap;
    }
  }
  int ok = s && s->n + n <= s->cap;
  if (ok) {
    memcpy(s->acts + s->n, acts, n * sizeof *acts);
    s->n += n;
  }
  pthread_mutex_unlock(&ts->mu);
  if (!ok) {
    for (size_t i = 0; i < n; i++)
      ts_action_free(&acts[i]);
  }
  free(acts);
}

size_t bk_ts_request_count(bk_ts *ts) {
  pthread_mutex_lock(&ts->mu);
  size_t n = ts->nreqs;
  pthread_mutex_unlock(&ts->mu);
  return n;
}

int bk_ts_request_get(bk_ts *ts, size_t i, bk_ts_request *out) {
  int rc = -1;
  pthread_mutex_lock(&ts->mu);
  if (i < ts->nreqs) {
    *out = ts->reqs[i];
    rc = 0;
  }
  pthread_mutex_unlock(&ts->mu);
  return rc;
}

size_t bk_ts_count_path(bk_ts *ts, const char *path) {
  size_t n = 0;
  pthread_mutex_lock(&ts->mu);
  for (size_t i = 0; i < ts->nreqs; i++)
    n += strcmp(ts->reqs[i].path, path) == 0;
  pthread_mutex_unlock(&ts->mu);
  return n;
}

unsigned long bk_ts_connections(bk_ts *ts) {
  pthread_mutex_lock(&ts->mu);
  unsigned long n = ts->nconns;
  pthread_mutex_unlock(&ts->mu);
  return n;
}

long long bk_ts_object_sha256(bk_ts *ts, const char *path, char out[65]) {
  long long size = -1;
  pthread_mutex_lock(&ts->mu);
  ts_obj *o = *ts_obj_find(ts, path);
  if (o) {
    size = (long long)o->len;
    if (out)
      memcpy(out, o->sha256, 65);
  }
  pthread_mutex_unlock(&ts->mu);
  return size;
}

void *bk_ts_object_data(bk_ts *ts, const char *path, size_t *len) {
  void *copy = NULL;
  pthread_mutex_lock(&ts->mu);
  ts_obj *o = *ts_obj_find(ts, path);
  if (o) {
    copy = malloc(o->len ? o->len : 1);
    if (copy) {
      memcpy(copy, o->data, o->len);
      if (len)
        *len = o->len;
    }
  }
  pthread_mutex_unlock(&ts->mu);
  return copy;
}

size_t bk_ts_wait_requests(bk_ts *ts, size_t n, double timeout) {
  struct timespec end;
  clock_gettime(CLOCK_MONOTONIC, &end);
  if (timeout < 0)
    timeout = 0;
  time_t whole = (time_t)timeout;
  end.tv_sec += whole;
  end.tv_nsec += (long)((timeout - (double)whole) * 1e9);
  if (end.tv_nsec >= 1000000000L) {
    end.tv_sec++;
    end.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&ts->mu);
  while (ts->nreqs < n &&
         pthread_cond_timedwait(&ts->cv, &ts->mu, &end) != ETIMEDOUT)
    ;
  size_t got = ts->nreqs;
  pthread_mutex_unlock(&ts->mu);
  return got;
}

void bk_ts_reset(bk_ts *ts) {
  pthread_mutex_lock(&ts->mu);
  ts_objs_clear(ts);
  ts_scripts_clear(ts);
  free(ts->reqs);
  ts->reqs = NULL;
  ts->nreqs = ts->capreqs = 0;
  pthread_mutex_unlock(&ts->mu);
}
