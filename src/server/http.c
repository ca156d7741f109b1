/*
 * http.c - the HTTP core of the server on libmicrohttpd: the life of a
 * request (headers, body, end), the faults that can befall it, answers,
 * and the request log.
 *
 * A request goes: URI log callback (raw request target, per-request
 * state) -> access handler with the headers (record, route, pick the
 * action: a script, else a random fault, else normal; prepare where the
 * body goes) -> access handler per body chunk (mid-body faults; the body
 * goes to its sink: discarded, buffered up to a limit, or streamed to the
 * store, or appended to a resumable upload session) -> access handler at
 * the end (end-of-body faults, latency, then the endpoint answers: api.c,
 * resumable.c, or the raw object server below) -> completion callback
 * (record if not yet, free; an unfinished store write is dropped, while
 * bytes appended to a session stay).
 *
 * Threads: MHD_USE_THREAD_PER_CONNECTION, so a fault may block its own
 * connection (sleep, stop reading) without blocking the others. Every
 * sleep is a poll() on the stop pipe, so bks_server_stop() wakes them all
 * at once; it also watches the client's socket for a close where that
 * matters.
 *
 * Locking: srv->mu guards the scripts, the fault generator, the log and
 * the counters; srv->cv (CLOCK_MONOTONIC) is signalled when a request is
 * recorded. A request's own state (bks_req) is touched only by its
 * connection's thread. No MHD call is made with srv->mu held.
 */
#include "bks_internal.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* A truncated response announces this many bytes more than it sends. */
#define TRUNC_EXTRA 1024
#define TRUNC_DEFAULT_BODY "truncated response body"

const char *bks_fault_name(bks_fault fault) {
  switch (fault) {
  case BKS_FAULT_OK: return "OK";
  case BKS_FAULT_STATUS: return "STATUS";
  case BKS_FAULT_DELAY: return "DELAY";
  case BKS_FAULT_STALL_BODY: return "STALL_BODY";
  case BKS_FAULT_NO_RESPONSE: return "NO_RESPONSE";
  case BKS_FAULT_RESET_MID_BODY: return "RESET_MID_BODY";
  case BKS_FAULT_TRUNCATED: return "TRUNCATED";
  case BKS_FAULT_CLOSE_EARLY: return "CLOSE_EARLY";
  }
  return "UNKNOWN";
}

/* ---- scripts ------------------------------------------------------------ */

void bks_act_free(bks_act *a) {
  free(a->headers);
  free(a->body);
  a->headers = a->body = NULL;
}

void bks_script_free(bks_script *s) {
  if (!s)
    return;
  for (size_t i = s->head; i < s->n; i++)
    bks_act_free(&s->acts[i]);
  free(s->acts);
  free(s->path);
  free(s);
}

void bks_scripts_clear_locked(bks_server *srv) {
  while (srv->scripts) {
    bks_script *s = srv->scripts;
    srv->scripts = s->next;
    bks_script_free(s);
  }
  bks_script_free(srv->any);
  srv->any = NULL;
}

/* Take the next scripted action for path into *out (the strings move to
 * *out). Per-path scripts win over the any-path script. Returns 0 when
 * nothing is scripted. Called with srv->mu held. */
static int script_pop_locked(bks_server *srv, const char *path,
                             bks_act *out) {
  bks_script **pp = &srv->scripts;
  while (*pp && strcmp((*pp)->path, path) != 0)
    pp = &(*pp)->next;
  if (!*pp)
    pp = &srv->any;
  bks_script *s = *pp;
  if (!s)
    return 0;
  *out = s->acts[s->head++];
  if (s->head == s->n) {
    *pp = s->next;
    bks_script_free(s);
  }
  return 1;
}


/* ---- per-request state -------------------------------------------------------- */

static void req_free(bks_req *r) {
  if (!r)
    return;
  bks_act_free(&r->act);
  EVP_MD_CTX_free(r->sha);
  EVP_MD_CTX_free(r->md5);
  bks_writer_abort(r->w);
  bks_rs_release(r);
  free(r->buf);
  free(r->key);
  free(r->path);
  free(r->uri);
  free(r);
}

static int req_body_to_sink(bks_req *r, const char *p, size_t n) {
  if (r->sha)
    EVP_DigestUpdate(r->sha, p, n);
  if (r->md5)
    EVP_DigestUpdate(r->md5, p, n);
  r->rec.body_bytes += n;
  if (n == 0)
    return 0;
  switch (r->sink) {
  case BKS_SINK_BUFFER:
    if (r->len + n > r->limit) {
      /* over the limit: forget the body, answer 413 at the end */
      r->too_big = 1;
      free(r->buf);
      r->buf = NULL;
      r->len = r->cap = 0;
      r->sink = BKS_SINK_DISCARD;
      return 0;
    }
    if (r->len + n > r->cap) {
      size_t cap = r->cap ? r->cap : 65536;
      while (cap < r->len + n)
        cap *= 2;
      unsigned char *d = realloc(r->buf, cap);
      if (!d)
        return -1;
      r->buf = d;
      r->cap = cap;
    }
    memcpy(r->buf + r->len, p, n);
    r->len += n;
    return 0;
  case BKS_SINK_SESSION:
    bks_rs_append(r, p, n);
    return 0;
  case BKS_SINK_STORE:
    if (bks_writer_write(r->w, p, n) != 0) {
      /* disk full or similar: drop the object, answer 500 at the end */
      bks_writer_abort(r->w);
      r->w = NULL;
      r->write_failed = 1;
      r->sink = BKS_SINK_DISCARD;
    }
    return 0;
  default:
    return 0;
  }
}

/* ---- the raw object server --------------------------------------------------------- */

/* Serve the object at the request's path (GET, HEAD). */
static enum MHD_Result raw_get(bks_req *r, int status) {
  size_t len = 0;
  void *copy = bks_store_read(r->srv->store, r->path, &len);
  if (!copy)
    return bks_queue(r, 404, bks_text_response("not found\n"));
  struct MHD_Response *resp =
      len ? MHD_create_response_from_buffer_with_free_callback(len, copy, free)
          : bks_text_response(NULL);
  if (!len || !resp)
    free(copy);
  return bks_queue(r, status, resp);
}

/* OK, and what DELAY and STALL_BODY end with. */
static enum MHD_Result raw_respond(bks_req *r) {
  int status = r->act.status ? r->act.status : 200;
  if (!strcmp(r->rec.method, "GET") || !strcmp(r->rec.method, "HEAD"))
    return raw_get(r, status);
  if (!strcmp(r->rec.method, "DELETE")) {
    int gone = bks_store_delete(r->srv->store, r->path) == 0;
    return bks_queue(r, gone ? 204 : 404, bks_text_response(NULL));
  }
  /* Store before the answer is queued: a client that sees 2xx finds the
   * object. */
  char sha[65];
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  if (!r->w || !r->sha || !EVP_DigestFinal_ex(r->sha, d, &n))
    return MHD_NO;
  bk_hex_encode(d, n, sha, false);
  memcpy(r->rec.body_sha256, sha, sizeof sha);
  EVP_MD_CTX_free(r->sha);
  r->sha = NULL;
  bks_writer *w = r->w;
  r->w = NULL;
  if (bks_writer_commit(w, sha) != 0)
    return MHD_NO;
  return bks_queue(r, status, bks_text_response(r->act.body));
}

static enum MHD_Result respond_normal(bks_req *r) {
  if (r->rs_kind)
    return bks_rs_complete(r);
  if (r->srv->mode == BKS_MODE_RAW)
    return raw_respond(r);
  return bks_api_complete(r);
}

typedef struct blob {
  size_t len;
  char data[];
} blob;

static ssize_t trunc_reader(void *cls, uint64_t pos, char *buf, size_t max) {
  blob *b = cls;
  if (pos >= b->len)
    return MHD_CONTENT_READER_END_WITH_ERROR; /* MHD closes the connection */
  size_t n = b->len - (size_t)pos;
  if (n > max)
    n = max;
  memcpy(buf, b->data + pos, n);
  return (ssize_t)n;
}

/* Announce TRUNC_EXTRA bytes more than the body we send, then fail. */
static enum MHD_Result respond_truncated(bks_req *r) {
  const char *body = r->act.body ? r->act.body : TRUNC_DEFAULT_BODY;
  size_t len = strlen(body);
  blob *b = malloc(sizeof *b + len);
  if (!b)
    return MHD_NO;
  b->len = len;
  memcpy(b->data, body, len);
  struct MHD_Response *resp = MHD_create_response_from_callback(
      (uint64_t)len + TRUNC_EXTRA, 4096, trunc_reader, b, free);
  if (!resp)
    free(b);
  return bks_queue(r, r->act.status ? r->act.status : 503, resp);
}

/* ---- faults ------------------------------------------------------------------------- */

/* Reset the connection now: a TCP RST with no FIN before it. On Linux,
 * connect(AF_UNSPEC) disconnects a TCP socket and sends RST at once
 * (tcp_disconnect), without closing the descriptor MHD owns. SO_LINGER 0
 * makes MHD's own close() send RST too, should the first step fail. */
static void reset_connection(bks_req *r) {
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
 * body ended before). Returns MHD_NO when the connection must go. */
static enum MHD_Result fault_mid_body(bks_req *r) {
  r->fault_applied = 1;
  if (r->act.fault == BKS_FAULT_STALL_BODY)
    return bks_wait(r->srv->stop_pipe[0], r->fd, r->act.seconds) == BKS_WAIT_STOP ? MHD_NO
                                                                 : MHD_YES;
  bks_req_record(r); /* recorded before the client can see the reset */
  reset_connection(r);
  return MHD_NO;
}

static int has_mid_body_fault(const bks_req *r) {
  return !r->fault_applied && (r->act.fault == BKS_FAULT_STALL_BODY ||
                               r->act.fault == BKS_FAULT_RESET_MID_BODY);
}

/* A chunk of the body arrived. Consumes all of it unless a reset drops
 * the connection. */
static enum MHD_Result on_body(bks_req *r, const char *data, size_t n) {
  if (has_mid_body_fault(r)) {
    unsigned long long room = r->act.after_bytes > r->rec.body_bytes
                                  ? r->act.after_bytes - r->rec.body_bytes
                                  : 0;
    if (room < n) {
      /* the fault falls inside this chunk: take the bytes before it */
      if (req_body_to_sink(r, data, (size_t)room))
        return MHD_NO;
      data += room;
      n -= (size_t)room;
      if (fault_mid_body(r) == MHD_NO)
        return MHD_NO;
    }
  }
  return req_body_to_sink(r, data, n) ? MHD_NO : MHD_YES;
}

/* The whole body arrived: apply the action's end. */
static enum MHD_Result on_complete(bks_req *r) {
  r->rec.complete = 1;
  if (has_mid_body_fault(r) && fault_mid_body(r) == MHD_NO)
    return MHD_NO;
  double latency;
  pthread_mutex_lock(&r->srv->mu);
  latency = r->srv->faults.latency;
  pthread_mutex_unlock(&r->srv->mu);
  if (latency > 0 && r->act.fault != BKS_FAULT_NO_RESPONSE &&
      r->act.fault != BKS_FAULT_CLOSE_EARLY &&
      bks_wait(r->srv->stop_pipe[0], -1, latency) == BKS_WAIT_STOP)
    return MHD_NO;
  switch (r->act.fault) {
  case BKS_FAULT_OK:
  case BKS_FAULT_STALL_BODY:
    return respond_normal(r);
  case BKS_FAULT_DELAY:
    /* a client that gives up ends the delay early; the object is still
     * stored, as a real server would. A stopping server drops it. */
    if (bks_wait(r->srv->stop_pipe[0], r->fd, r->act.seconds) == BKS_WAIT_STOP)
      return MHD_NO;
    return respond_normal(r);
  case BKS_FAULT_STATUS:
    return bks_queue(r, r->act.status ? r->act.status : 503,
                 bks_text_response(r->act.body));
  case BKS_FAULT_TRUNCATED:
    return respond_truncated(r);
  case BKS_FAULT_NO_RESPONSE:
    bks_req_record(r);
    bks_wait(r->srv->stop_pipe[0], r->fd, r->act.seconds);
    return MHD_NO; /* MHD closes the connection without a response */
  case BKS_FAULT_CLOSE_EARLY:
    bks_req_record(r);
    return MHD_NO;
  case BKS_FAULT_RESET_MID_BODY: /* applied above */
    break;
  }
  return MHD_NO;
}

/* ---- request handling (libmicrohttpd callbacks) ---------------------------------- */

static void copy_header(struct MHD_Connection *c, const char *name, char *dst,
                        size_t cap) {
  const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
  bks_copy(dst, cap, v, v ? strlen(v) : 0);
}

/* A random fault for an API storage PUT, or 0. Called with srv->mu held. */
static int random_fault_locked(bks_server *srv, bks_req *r) {
  const bks_faults *f = &srv->faults;
  if (!(f->rate > 0) && !(f->reset_rate > 0))
    return 0;
  double u = bk_rng_01(&srv->rng);
  if (u < f->rate) {
    r->act.fault = BKS_FAULT_STATUS;
    r->act.status = f->status ? f->status : 503;
    r->act.headers = bks_strdup("Content-Type: application/xml; charset=UTF-8\r\n");
    r->act.body = bks_xml_error("InjectedFault",
                                "An injected fault (bulkup serve --fault-rate).");
  } else if (u < f->rate + f->reset_rate) {
    r->act.fault = BKS_FAULT_RESET_MID_BODY;
    r->act.after_bytes = r->rec.content_length > 0
                             ? (unsigned long long)r->rec.content_length / 2
                             : 0;
  } else {
    return 0;
  }
  srv->counters.faults_injected++;
  return 1;
}

/* The headers are in: fill the record, route, pick the action, prepare
 * the body's sink. */
static enum MHD_Result on_headers(bks_req *r, const char *method) {
  bks_server *srv = r->srv;
  struct MHD_Connection *c = r->conn;
  bks_request *rec = &r->rec;

  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  r->fd = ci ? ci->connect_fd : -1;
  ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  rec->connection_id = ci ? (unsigned long)(uintptr_t)ci->socket_context : 0;

  bks_copy(rec->method, sizeof rec->method, method, strlen(method));
  const char *q = strchr(r->uri, '?');
  size_t plen = q ? (size_t)(q - r->uri) : strlen(r->uri);
  r->path = bks_strndup(r->uri, plen);
  r->query = q ? q + 1 : "";
  if (!r->path)
    return MHD_NO;
  bks_copy(rec->path, sizeof rec->path, r->uri, plen);
  bks_copy(rec->query, sizeof rec->query, r->query, strlen(r->query));
  copy_header(c, MHD_HTTP_HEADER_CONTENT_TYPE, rec->content_type,
              sizeof rec->content_type);
  copy_header(c, MHD_HTTP_HEADER_CACHE_CONTROL, rec->cache_control,
              sizeof rec->cache_control);
  copy_header(c, "Content-MD5", rec->content_md5, sizeof rec->content_md5);
  copy_header(c, MHD_HTTP_HEADER_EXPECT, rec->expect, sizeof rec->expect);
  copy_header(c, "Content-Range", rec->content_range,
              sizeof rec->content_range);
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_CONTENT_LENGTH);
  rec->content_length = cl ? strtoll(cl, NULL, 10) : -1;
  rec->body_sha256[0] = '\0';

  r->sha = EVP_MD_CTX_new();
  if (!r->sha || !EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL))
    return MHD_NO;

  if (srv->mode == BKS_MODE_API)
    bks_api_route(r);

  pthread_mutex_lock(&srv->mu);
  srv->counters.requests[rec->endpoint]++;
  int scripted = script_pop_locked(srv, r->path, &r->act);
  if (!scripted && rec->endpoint == BKS_EP_STORAGE &&
      strcmp(method, "PUT") == 0)
    rec->injected = random_fault_locked(srv, r);
  pthread_mutex_unlock(&srv->mu);
  rec->fault = r->act.fault;
  r->normal = r->act.fault == BKS_FAULT_OK ||
              r->act.fault == BKS_FAULT_DELAY ||
              r->act.fault == BKS_FAULT_STALL_BODY;
  r->started = 1;
  r->rs_kind = bks_rs_kind(r);
  if (r->rs_kind) {
    /* A reset chunk keeps the bytes that arrived before the reset. */
    if (!r->normal && !(r->rs_kind == BKS_RS_CHUNK &&
                        r->act.fault == BKS_FAULT_RESET_MID_BODY))
      return MHD_YES;
    bks_rs_prepare(r);
    if (r->reject_status && r->act.fault == BKS_FAULT_OK &&
        strncasecmp(rec->expect, "100-continue", 12) == 0)
      return bks_rs_complete(r);
    return MHD_YES;
  }
  if (!r->normal)
    return MHD_YES; /* the body is read and dropped */

  if (srv->mode == BKS_MODE_RAW) {
    if (strcmp(method, "GET") && strcmp(method, "HEAD") &&
        strcmp(method, "DELETE")) {
      r->w = bks_store_begin(srv->store, r->path,
                             rec->content_length > 0
                                 ? (unsigned long long)rec->content_length
                                 : 0);
      if (!r->w)
        return MHD_NO;
      r->sink = BKS_SINK_STORE;
    }
    return MHD_YES;
  }
  bks_api_prepare(r);
  /* A refusal known before the body: answer now, without reading the
   * body, when the client waits for "100 Continue" (spare it the upload)
   * or when the API says so (a huge Content-Length must not keep a
   * thread reading). MHD then closes the connection instead of reading
   * the body. */
  if (r->reject_status && r->act.fault == BKS_FAULT_OK &&
      (r->early || strncasecmp(rec->expect, "100-continue", 12) == 0))
    return bks_api_complete(r);
  return MHD_YES;
}

/* MHD_OPTION_URI_LOG_CALLBACK: the first sight of a request, with the raw
 * request target. Its return value is the request's *con_cls. */
void *bks_http_uri_log(void *cls, const char *uri,
                       struct MHD_Connection *conn) {
  bks_req *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->srv = cls;
  r->conn = conn;
  r->fd = -1;
  r->uri = bks_strdup(uri ? uri : "");
  r->rec.content_length = -1;
  if (!r->uri) {
    free(r);
    return NULL;
  }
  return r;
}

/* The access handler: called once with the headers, once per body chunk,
 * then once more when the body is complete. */
enum MHD_Result bks_http_access(void *cls, struct MHD_Connection *conn,
                                const char *url, const char *method,
                                const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls) {
  (void)cls;
  (void)url; /* unescaped; the raw target from the URI log is used */
  (void)version;
  bks_req *r = *con_cls;
  if (!r || r->conn != conn)
    return MHD_NO;
  if (!r->started)
    return on_headers(r, method);
  if (r->answered) { /* answered early: nothing more to do */
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (*upload_data_size) {
    enum MHD_Result ret = on_body(r, upload_data, *upload_data_size);
    *upload_data_size = 0;
    return ret;
  }
  return on_complete(r);
}

/* MHD_OPTION_NOTIFY_COMPLETED: the request ended, well or not. A request
 * not recorded yet was cut short (client abort, read error, shutdown). */
void bks_http_completed(void *cls, struct MHD_Connection *conn,
                        void **con_cls, enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)conn;
  (void)toe;
  bks_req *r = *con_cls;
  *con_cls = NULL;
  if (!r)
    return;
  if (r->started)
    bks_req_record(r);
  req_free(r);
}

/* MHD_OPTION_NOTIFY_CONNECTION: number each TCP connection; the number
 * is kept in the socket context itself (no allocation). */
void bks_http_notify_connection(void *cls, struct MHD_Connection *conn,
                                void **socket_context,
                                enum MHD_ConnectionNotificationCode toe) {
  (void)conn;
  bks_server *srv = cls;
  if (toe != MHD_CONNECTION_NOTIFY_STARTED)
    return;
  pthread_mutex_lock(&srv->mu);
  unsigned long id = ++srv->counters.connections;
  pthread_mutex_unlock(&srv->mu);
  *socket_context = (void *)(uintptr_t)id;
}
