/*
 * bks_internal.h - what the parts of the server library share; included
 * first by every .c file of src/server.
 *
 * Layers, each calling only the ones below it:
 *   server.c      start, stop and the public API
 *   http.c        the libmicrohttpd core: request life cycle, faults
 *   api.c         routing, v2 presign, storage PUTs, the v1 dispatch
 *   resumable.c   GCS-style resumable upload sessions (both modes)
 *   v1.c          the v1 queries: datasets, jobs, long polls, data units
 *   response.c    answers and the request log
 *   signurl.c     signed storage URLs and the object keys presign makes
 *   auth.c        authorized keys, the v1 and v2 signature checks
 *   media.c       image dimensions (PNG, JPEG headers)
 *   store.c       memory and disk object stores
 *   tls.c         certificates
 *   util.c        strings, base64, hex, percent-encoding, uuids,
 *                 files, the stop-aware wait
 * (api.c calls v1.c; v1.c never calls api.c.)
 */
#ifndef BKS_INTERNAL_H
#define BKS_INTERNAL_H

#include "bks_server.h"
#include "util/rand.h"
#include "util/str.h"
#include "util/thread.h" /* bk_now (monotonic), bk_now_real */

#include <microhttpd.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define BKS_BUCKETS 1024
/* MHD's per-connection memory holds the request line and headers (signed
 * URLs are long) and the read buffer, so bodies arrive in bigger chunks. */
#define BKS_CONN_MEMORY (256 * 1024)
/* The stack of a connection's thread (the handlers need little). */
#define BKS_THREAD_STACK (256 * 1024)
/* Never preallocate more than this from a Content-Length header. */
#define BKS_PREALLOC_MAX (64u * 1024 * 1024)
#define BKS_KEY_MAX 1024
#define BKS_KEY_ID_MAX 255
/* RFC 9421 `created` window */
#define BKS_CREATED_PAST 300
#define BKS_CREATED_FUTURE 60

/* ---- util.c ------------------------------------------------------------ */

char *bks_strdup(const char *s);
char *bks_strndup(const char *s, size_t n);
/* Copy at most cap-1 bytes of s (NULL = "") into dst, always terminated. */
void bks_copy(char *dst, size_t cap, const char *s, size_t len);
/* A random RFC 4122 version 4 uuid, lower case, into out[37]. */
void bks_uuid4(char out[37]);
/* Percent-decode s[0..len); NULL on a bad escape or a decoded NUL. */
char *bks_pct_decode(const char *s, size_t len);
/* Percent-encode everything but RFC 3986 unreserved characters (and, for
 * _path, '/'). Malloc'ed. */
char *bks_pct_encode(const char *s);
char *bks_pct_encode_path(const char *s);
/* The percent-decoded value of `name` in a raw query string; NULL if
 * absent or badly encoded. Sets *found when the name occurs. */
char *bks_query_get(const char *query, const char *name, int *found);
/* A malloc'ed printf. */
char *bks_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Write all of data (retrying on EINTR); 0, or -1 with errno. */
int bks_write_all(int fd, const void *data, size_t len);
/* fsync a directory, so that a rename or create in it is durable (best
 * effort). */
void bks_fsync_dir(const char *dir);
/* Read a whole (text) file; NULL on failure (errno set). */
char *bks_read_file(const char *path, size_t max, size_t *len);
/* Sleep up to `seconds`; wake early when the server stops (a byte on
 * stop_fd) or, if fd >= 0, when the peer closes its side. */
enum { BKS_WAIT_TIMEOUT, BKS_WAIT_STOP, BKS_WAIT_PEER };
int bks_wait(int stop_fd, int fd, double seconds);
/* Lower-case hex of 2n digits into out[n]; 0, or -1. */
int bks_unhex(const char *s, unsigned char *out, size_t n);
/* snprintf into err (if not NULL). */
void bks_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* SHA-256 of data as lower hex. */
void bks_sha256_hex(const void *data, size_t len, char out[65]);

/* ---- store.c ------------------------------------------------------------ */

typedef struct bks_store bks_store;
typedef struct bks_writer bks_writer;

bks_store *bks_store_new_memory(void);
/* A disk store at root (created with its parents if missing). */
bks_store *bks_store_new_disk(const char *root, char *err, size_t errlen);
void bks_store_free(bks_store *st);
const char *bks_store_root(const bks_store *st);
/* Begin writing `key`; size_hint preallocates (memory store). NULL on
 * failure (errno set; EINVAL for a key the disk store refuses). */
bks_writer *bks_store_begin(bks_store *st, const char *key,
                            unsigned long long size_hint);
int bks_writer_write(bks_writer *w, const void *data, size_t len);
/* Publish the object atomically and free the writer; 0 or -1. */
int bks_writer_commit(bks_writer *w, const char sha256[65]);
/* Drop what was written and free the writer; NULL does nothing. */
void bks_writer_abort(bks_writer *w);
int bks_store_exists(bks_store *st, const char *key);
long long bks_store_info(bks_store *st, const char *key, char sha256[65]);
void *bks_store_read(bks_store *st, const char *key, size_t *len);
/* At most `max` bytes from the start of the object; NULL if none. */
void *bks_store_read_head(bks_store *st, const char *key, size_t max,
                          size_t *len);
int bks_store_delete(bks_store *st, const char *key);
/* Memory store: forget everything. Disk store: nothing. */
void bks_store_clear(bks_store *st);

/* ---- auth.c ------------------------------------------------------------- */

typedef struct bks_keys bks_keys;
bks_keys *bks_keys_new(void);
void bks_keys_free(bks_keys *k);
int bks_keys_add(bks_keys *k, const unsigned char pub[32]);
int bks_keys_load(bks_keys *k, const char *path, char *err, size_t errlen);


/* What a signature check sees of a request. */
typedef struct bks_sig_input {
  const char *method;
  const char *target; /* raw request target */
  const unsigned char *body;
  size_t body_len;
  /* header lookup (case-insensitive name); NULL when absent */
  const char *(*header)(void *ctx, const char *name);
  void *ctx;
  double now; /* unix time */
} bks_sig_input;

/* The v2 request signature of ENCORD_WIRE §4, exactly: 0 and the signing
 * key's hex in keyhex; else -1, *reason a static string for the 401
 * message. */
int bks_verify_v2(bks_keys *k, const bks_sig_input *in, char keyhex[65],
                  const char **reason);

/* The v1 Authorization of ENCORD_WIRE §6 ("PUBHEX:SIGHEX", Ed25519 over
 * SHA-256 of the body): 0 and keyhex; -1 for a malformed or failing one
 * (AUTHENTICATION_ERROR), -2 for a good signature by a key that is not
 * authorized (SSH_KEY_NOT_FOUND_ERROR); *reason is static. */
int bks_verify_v1(bks_keys *k, const char *authorization,
                  const unsigned char *body, size_t len, char keyhex[65],
                  const char **reason);

/* ---- media.c -------------------------------------------------------------- */

/* Width and height from the start of a PNG or JPEG file: 0, or -1 when
 * neither is recognised (or the header is cut short). */
int bks_image_size(const unsigned char *d, size_t n, unsigned *w,
                   unsigned *h);
/* How much of a file bks_image_size() may need. */
#define BKS_IMAGE_HEAD (256 * 1024)

/* ---- tls.c --------------------------------------------------------------- */

int bks_make_self_signed(char **key_pem, char **cert_pem);
char *bks_write_temp_file(const char *prefix, const char *text);

/* ---- the server state (server.c, http.c, api.c) ------------------------ */

/* A scripted action with its own copies of the strings. */
typedef struct bks_act {
  bks_fault fault;
  int status;
  char *headers;
  char *body;
  double seconds;
  unsigned long long after_bytes;
} bks_act;

typedef struct bks_script {
  struct bks_script *next;
  char *path;
  bks_act *acts;
  size_t head, n, cap;
} bks_script;

typedef struct bks_job bks_job;
typedef struct bks_dataset {
  char *hash;
  char folder[37];
} bks_dataset;

/* An injected API error (bks_server_api_fault). */
typedef struct bks_api_err {
  char code[48];  /* "" when none */
  unsigned left;  /* answers left; 0 with a code: every one */
  int forever;
} bks_api_err;
typedef struct bks_session bks_session;
typedef struct bks_sessions bks_sessions;

struct bks_server {
  bks_mode mode;
  struct MHD_Daemon *daemon;
  unsigned short port;
  int tls;
  char *host;      /* as given */
  char *url_host;  /* host as it goes in a URL (IPv6 in brackets) */
  char *public_url;
  int stop_pipe[2]; /* written once by bks_server_stop(); never read */
  char *self_url;   /* "http(s)://host:port", known once listening */
  int require_folder;
  int v2_snake_case;
  char *key_pem, *cert_pem;
  char *ca_file;
  unsigned char secret[64];
  size_t secret_len;
  unsigned long long max_api_body;
  int keep_log;

  bks_store *store; /* its own lock */
  bks_keys *keys;   /* its own lock */
  bks_sessions *sessions; /* its own locks (resumable.c) */

  /* mu guards everything below; cv is signalled when a request is
   * recorded. Lock order: mu, then the store's or the keys' lock. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  double url_ttl;
  double session_ttl; /* set at start, never changed */
  double job_pending;
  double clock;     /* pinned unix time, 0: the real clock */
  int stopping;     /* set by bks_server_stop(); wakes long polls */
  pthread_cond_t job_cv; /* a job changed, or stopping */
  bks_dataset **datasets; /* each allocated once, never moved */
  const char *dataset0;   /* the first one's hash (set at start) */
  size_t ndatasets, capdatasets;
  bks_api_err api_err[BKS_CALL_COUNT];
  bks_faults faults;
  bk_rng rng;
  bks_script *scripts; /* per-path */
  bks_script *any;     /* any-path, or NULL */
  bks_request *reqs;
  size_t nreqs, capreqs;
  bks_counters counters;
  bks_job *jobs[BKS_BUCKETS];
};

unsigned bks_hash(const char *s);

/* Body sinks. SESSION: appended to a resumable upload session as the
 * bytes arrive (resumable.c). */
enum { BKS_SINK_DISCARD = 0, BKS_SINK_BUFFER, BKS_SINK_STORE, BKS_SINK_SESSION };

/* What a request is to the resumable upload protocol. */
enum {
  BKS_RS_NONE = 0,
  BKS_RS_START,  /* POST with x-goog-resumable: start */
  BKS_RS_CHUNK,  /* PUT ...?upload_id=: a chunk or a status query */
  BKS_RS_CANCEL  /* DELETE ...?upload_id= */
};

/* Per-request state, created by the URI log callback (once per request),
 * used only by its connection's thread, freed when MHD reports the end. */
typedef struct bks_req {
  bks_server *srv;
  struct MHD_Connection *conn;
  int fd;
  char *uri;   /* raw request target */
  char *path;  /* raw path (before '?') */
  const char *query; /* raw query (after '?', or "") inside uri */
  int started;       /* the access handler has seen the headers */
  int fault_applied; /* STALL_BODY / RESET_MID_BODY already happened */
  int recorded;
  int answered;      /* a response was queued early */
  int normal;        /* the action lets the endpoint handle the request */
  bks_act act;
  bks_request rec;
  EVP_MD_CTX *sha; /* SHA-256 of every body byte */
  EVP_MD_CTX *md5; /* storage PUT with Content-MD5 */
  unsigned char want_md5[16];
  /* the body */
  int sink;
  unsigned char *buf;
  size_t len, cap;
  unsigned long long limit; /* BUFFER: at most this many bytes */
  int too_big;
  bks_writer *w; /* STORE */
  int write_failed;
  /* API mode */
  char *key; /* storage: the decoded object key */
  int early; /* answer the refusal at the headers, body unread */
  int reject_status;  /* decided at the headers; answered at the end */
  const char *reject_code;
  const char *reject_msg;
  /* resumable uploads (resumable.c) */
  int rs_kind;             /* BKS_RS_* */
  bks_session *rs;         /* a reference to the session, or NULL */
  unsigned long long rs_gen; /* this request's turn as the session's owner */
  unsigned long long rs_off; /* object offset of the next body byte */
  int rs_query;            /* Content-Range: bytes * / T */
  long long rs_total;      /* T, or the declared total (start); -1 */
  int rs_has_md5;          /* start: want_md5 holds Content-MD5 */
} bks_req;

/* response.c: answers. Each records the request (status, error) and
 * queues the response; `error` is what goes in the record ("" for
 * success). */
enum MHD_Result bks_respond(bks_req *r, int status, const char *ctype,
                            const char *body, size_t len, const char *error);
/* the same with extra "Name: value\r\n" header lines (may be NULL) */
enum MHD_Result bks_respond_ex(bks_req *r, int status, const char *ctype,
                               const char *body, size_t len,
                               const char *headers, const char *error);
enum MHD_Result bks_respond_json(bks_req *r, int status, const char *json,
                                 const char *error);
/* the v2 error {"message": reason}; the reason is the record's error */
enum MHD_Result bks_respond_v2_error(bks_req *r, int status,
                                     const char *reason,
                                     const char *headers);
/* the v1 error envelope {"status": N, "response": [code], "payload":
 * reason} with HTTP status N */
enum MHD_Result bks_respond_v1_error(bks_req *r, int status,
                                     const char *code, const char *reason);
/* the GCS-like XML error */
enum MHD_Result bks_respond_xml(bks_req *r, int status, const char *code,
                                const char *message);
/* the XML error body (malloc'ed) */
char *bks_xml_error(const char *code, const char *message);
/* Record the request with `status`, then queue `resp` (freed). */
enum MHD_Result bks_queue(bks_req *r, int status, struct MHD_Response *resp);
/* A response with a copy of body (NULL: empty). */
struct MHD_Response *bks_text_response(const char *body);
/* Fix the body digest and add the request to the log (once). */
void bks_req_record(bks_req *r);
/* a request header by name (ctx is the bks_req) */
const char *bks_req_header(void *ctx, const char *name);

/* http.c */
void bks_act_free(bks_act *a);
void bks_script_free(bks_script *s);
void bks_scripts_clear_locked(bks_server *srv);
/* libmicrohttpd callbacks (cls is the server) */
void *bks_http_uri_log(void *cls, const char *uri, struct MHD_Connection *c);
enum MHD_Result bks_http_access(void *cls, struct MHD_Connection *conn,
                                const char *url, const char *method,
                                const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls);
void bks_http_completed(void *cls, struct MHD_Connection *conn,
                        void **con_cls, enum MHD_RequestTerminationCode toe);
void bks_http_notify_connection(void *cls, struct MHD_Connection *conn,
                                void **socket_context,
                                enum MHD_ConnectionNotificationCode toe);

/* api.c */
/* Set r->rec.endpoint from the path (headers are in). */
void bks_api_route(bks_req *r);
/* The action is a normal one: check what can be checked before the body
 * (method, storage URL signature, expiry, content type, sizes) and choose
 * the body's sink; a refusal is kept in reject_* and answered by
 * bks_api_complete() (at once, body unread, when r->early is set). */
void bks_api_prepare(bks_req *r);
/* Answer: the refusal, or the endpoint's work once the body is in. */
enum MHD_Result bks_api_complete(bks_req *r);

/* signurl.c */
/* A signed storage URL (see bks_server_sign_storage_url) from `base`. */
char *bks_sign_url(bks_server *srv, const char *base, const char *key,
                   const char *pattern, double ttl);
/* A storage request's object key (r->key, percent-decoded) and its
 * signed URL's checks (signature, expiry, Content-Type): 0 if they pass,
 * else -1 with the refusal in reject_* (sink DISCARD). */
int bks_storage_authorize(bks_req *r);
/* The base of URLs handed to this request's client: the public URL, else
 * "http(s)://" + a well-formed Host header, else the listening address.
 * Malloc'ed. */
char *bks_base_url(bks_req *r);
/* "http(s)://" + the request's Host header when it is well formed, else
 * NULL. Malloc'ed. */
char *bks_host_base(bks_req *r);
/* The object key presign makes for an item of `type` ("image", "video",
 * "dicomFile") asked by key `keyhex`: "uploads/<type>/<uuid>" where the
 * uuid4 carries a MAC of (keyhex, type, its random part) under the
 * server's secret; the uuid (the itemUuid) into uuid[37]. 0 or -1. */
int bks_objkey_make(bks_server *srv, const char *keyhex, const char *type,
                    char key[96], char uuid[37]);
/* Was `key` made by bks_objkey_make for keyhex and type? 1 or 0; the
 * uuid into uuid (may be NULL). */
int bks_objkey_check(bks_server *srv, const char *keyhex, const char *type,
                     const char *key, char uuid[37]);
void bks_reject(bks_req *r, int status, const char *code, const char *msg);

/* v1.c */
/* The v1 query of an authenticated request: `env` is the parsed
 * envelope (an object), `dataset` the ResourceID's index. */
enum MHD_Result bks_v1_dispatch(bks_req *r, const char *keyhex,
                                void *env, size_t dataset);
/* Index of a dataset, or -1 (called with srv->mu held). */
long bks_dataset_find_locked(bks_server *srv, const char *hash);
int bks_dataset_add_locked(bks_server *srv, const char *hash);
/* Take one injected error for `call` into code (""/none: 0). Called with
 * srv->mu held. */
int bks_api_err_take_locked(bks_server *srv, int call, char code[48]);
/* Free jobs and datasets (server stop). */
void bks_v1_free(bks_server *srv);
int bks_v1_job_cancel(bks_server *srv, const char *hash);
/* The v1 error code's HTTP status; 0 for an unknown code. */
int bks_v1_code_status(const char *code);

/* resumable.c */
bks_sessions *bks_sessions_new(void);
/* Free every session in memory (server stop: no request is running).
 * Sessions on disk stay. NULL does nothing. */
void bks_sessions_free(bks_sessions *t);
/* Server start, disk store: remove the expired sessions under
 * {root}/.resumable/ (the others are loaded when first asked for). */
void bks_rs_sweep(bks_server *srv);
/* Forget the memory store's sessions (bks_server_reset). */
void bks_rs_reset(bks_server *srv);
/* Which BKS_RS_* the request is (headers are in, routed). */
int bks_rs_kind(bks_req *r);
/* Like bks_api_prepare for a resumable request: the checks that need no
 * body, the session lookup and takeover, the body's sink; a refusal is
 * kept in reject_* and answered by bks_rs_complete(). */
void bks_rs_prepare(bks_req *r);
/* Append body bytes to the session (BKS_SINK_SESSION). */
void bks_rs_append(bks_req *r, const char *p, size_t n);
/* Answer a resumable request once its body is in. */
enum MHD_Result bks_rs_complete(bks_req *r);
/* Drop the request's reference to its session (request end). */
void bks_rs_release(bks_req *r);

#endif
