/*
 * bks_server.h - the bulkup reference server, as a C library for the
 * project (the `bulkup serve` subcommand, the CLI's embedded server, and
 * the tests).
 *
 * One server, two personalities, chosen at start:
 *
 * BKS_MODE_API (the default) implements Encord's upload API as the Python
 * SDK v0.1.190 speaks it (/work/shared/spec/ENCORD_WIRE.md; the server's
 * own choices for what the SDK leaves open are in doc/api-protocol.md):
 *   GET  /v2/public/presigned-urls?count=N&uploadItemType=T
 *        (RFC 9421 Ed25519 signature, keyid = public-key hex; ENCORD_WIRE §4)
 *   PUT  /storage/<object_key>?expires=..&content_type=..&signature=..
 *        (the signed URLs presign hands out; ENCORD_WIRE §5)
 *   POST /public   the v1 envelope (`Authorization: PUBHEX:SIGHEX` over the
 *        SHA-256 of the body, ResourceType dataset, ResourceID a dataset
 *        the server serves; ENCORD_WIRE §6), query types `dataset`/GET and
 *        `datasetdatalongpolling`/POST (create a job, §7) and /GET (long
 *        poll, §8), with the data units of §9.
 *   POST /storage/<object_key>?<signed query>, x-goog-resumable: start
 *   PUT, DELETE /storage/<object_key>?upload_id=<sid>
 * The last two are resumable uploads (doc/api-protocol.md, "Resumable
 * uploads", after Google Cloud Storage's XML API), a bulkup extension the
 * SDK never uses: a POST to a signed storage URL starts a session (201,
 * Location: the session URL), PUTs with Content-Range send chunks or ask
 * how far the session got (308 with Range, or the PUT's own 200 once the
 * whole object is in), DELETE cancels. v1 failures answer the envelope
 * {"status": N, "response": ["CODE"], "payload": "why"} with HTTP status
 * N; v2 failures {"message": "why"}; storage failures a GCS-like XML
 * error. Other paths answer 404, other methods on a known path 405.
 * Keys are identified by the lower-case hex of their raw 32-byte Ed25519
 * public key (bks_server_add_key(), bks_config.authorized_keys_file).
 *
 * BKS_MODE_RAW is the generic fault-scripting object server the upload
 * engine's tests use (tests/support/bk_ts.h is a thin wrapper over it):
 * GET and HEAD return the object stored at the raw request path (200) or
 * 404; DELETE removes it (204) or answers 404; any other method stores the
 * body under the path. Memory store only. The resumable upload protocol
 * works there too, on any path: POST with x-goog-resumable: start, then
 * PUT/DELETE on path?upload_id=<sid>; the finished object is stored under
 * the path as a PUT's body would be.
 *
 * Stores: memory (root NULL; for tests) or a root directory on disk
 * (objects are files {root}/{object_key}, written atomically: temporary
 * file in the same folder, fsync, rename). In API mode object keys are
 * validated (bks_object_key_valid()) before anything touches the store,
 * in both stores; the disk store validates again. Resumable upload
 * sessions live with the store: in memory (freed by bks_server_stop() and
 * bks_server_reset()), or on disk under {root}/.resumable/<sid>/, where a
 * server started again on the same root finds them.
 *
 * Faults, for both modes: per-path scripts (bks_server_script()) apply to
 * any request, resumable session requests included (they are scripted by
 * the object's path); random faults (bks_faults: a rate of storage PUTs
 * answered with a status, a rate of storage PUTs reset mid-body) apply to
 * API-mode storage PUTs only, chunk and status-query PUTs of resumable
 * sessions included; an added latency applies to every answer. A
 * scripted action wins over the random faults.
 *
 * The request log: every request is recorded (bks_request) as soon as its
 * outcome is fixed: just before its response is queued, just before the
 * connection is dropped, reset or held, or, for a request the client
 * aborts, when libmicrohttpd reports its end. Paths and queries are
 * recorded exactly as on the request line.
 *
 * Threads: libmicrohttpd runs one thread per connection; a fault may block
 * its own connection only. Every function here is thread-safe, except that
 * bks_server_stop() must not race with other calls on the same server.
 * The library never prints (set BK_TS_LOG=1 in the environment to get
 * libmicrohttpd's own error log on stderr), never exits, and installs no
 * signal handlers.
 *
 * Ownership: the server copies every string and buffer given to it.
 * Strings it returns as `char *` are malloc'ed and freed by the caller
 * with free(); `const char *` results are owned by the server.
 *
 * An in-process server for a test or an embedded run:
 *
 *     bks_config cfg;
 *     bks_config_init(&cfg);            // API mode, memory store, port 0
 *     cfg.job_pending = 0.1;
 *     bks_server *srv;
 *     char err[256];
 *     if (bks_server_start(&srv, &cfg, err, sizeof err) != 0)
 *       die(err);
 *     bks_server_add_key(srv, raw_ed25519_public_key);
 *     char *base = bks_server_url(srv, NULL);  // "http://127.0.0.1:PORT"
 *     const char *dataset = bks_server_dataset(srv); // made at start
 *     ... sign requests with the matching private key ...
 *     bks_counters c;
 *     bks_server_counters(srv, &c);     // c.urls_issued, c.jobs_created
 *     free(base);
 *     bks_server_stop(srv);
 *
 * Link: bulkup_server, then bulkup or bulkup_static (CMake targets).
 */
#ifndef BKS_SERVER_H
#define BKS_SERVER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bks_server bks_server;

/* ---- faults ---------------------------------------------------------- */

/* What happens to a request. "Normal handling" is the endpoint's own
 * behaviour (API mode) or store/serve-by-path (raw mode). */
typedef enum bks_fault {
  /* read the whole body, handle normally; in raw mode answer `status`
   * (default 200) for stored bodies */
  BKS_FAULT_OK = 0,
  /* read the whole body, do not handle it, answer `status` (default 503)
   * with `headers` and `body` */
  BKS_FAULT_STATUS,
  /* read the whole body, sleep `seconds`, then handle normally */
  BKS_FAULT_DELAY,
  /* after `after_bytes` of the body, stop reading for `seconds` (the
   * client's write blocks once socket buffers fill), then read the rest
   * and handle normally */
  BKS_FAULT_STALL_BODY,
  /* read the whole body, never answer: hold the connection until
   * `seconds` pass (or the client closes, or the server stops), then close
   * without a response */
  BKS_FAULT_NO_RESPONSE,
  /* after `after_bytes` of the body, reset the connection (TCP RST, no
   * FIN before it); nothing is stored, except that a resumable session's
   * chunk keeps the bytes that arrived before the reset */
  BKS_FAULT_RESET_MID_BODY,
  /* read the whole body, answer `status` (default 503) with a
   * Content-Length larger than the bytes actually sent, then close */
  BKS_FAULT_TRUNCATED,
  /* read the whole body and close the connection with no response (a
   * client that sent "Expect: 100-continue" has seen "100 Continue") */
  BKS_FAULT_CLOSE_EARLY
} bks_fault;

/* "OK", "STATUS", ... for messages; "UNKNOWN" for other values. */
const char *bks_fault_name(bks_fault fault);

/* One scripted action. Strings are copied by bks_server_script(). */
typedef struct bks_action {
  bks_fault fault;
  /* 0 means 200 for OK/DELAY/STALL (raw mode), 503 for STATUS/TRUNCATED */
  int status;
  /* extra response headers, "Name: value\r\n" lines, may be NULL */
  const char *headers;
  /* response body, may be NULL (TRUNCATED then sends a short default) */
  const char *body;
  /* DELAY, STALL_BODY, NO_RESPONSE: how long */
  double seconds;
  /* STALL_BODY, RESET_MID_BODY: where in the body; a body shorter than
   * this gets the fault once it is complete */
  unsigned long long after_bytes;
} bks_action;

/* Random faults (API mode storage PUTs) and latency (every request). */
typedef struct bks_faults {
  /* probability in [0, 1] that a storage PUT is answered `status`
   * without being stored (the body is read first); the answer is a
   * GCS-like XML error with Code "InjectedFault" */
  double rate;
  /* the status for `rate`; bks_config_init() sets 503 */
  int status;
  /* probability in [0, 1] that a storage PUT is reset (TCP RST) after
   * half of its announced body (at once if it announces none) */
  double reset_rate;
  /* seconds added before every answer (a stop-aware sleep) */
  double latency;
  /* seed of the fault generator; 0 picks a random seed */
  unsigned long long seed;
} bks_faults;

/* ---- configuration ---------------------------------------------------- */

typedef enum bks_mode {
  BKS_MODE_API = 0, /* the documented API (doc/api-protocol.md) */
  BKS_MODE_RAW = 1  /* store/serve any path (the engine's test server) */
} bks_mode;

typedef struct bks_config {
  bks_mode mode;
  /* numeric IPv4/IPv6 address or host name to listen on; default
   * "127.0.0.1" */
  const char *host;
  /* TCP port; 0 (default): the OS picks one, see bks_server_port() */
  unsigned short port;
  /* root directory of the disk store (created if missing, with its
   * parents); NULL (default): in-memory store. RAW mode needs NULL. */
  const char *root;
  /* serve HTTPS. With tls_cert_file and tls_key_file NULL, a fresh
   * self-signed EC P-256 certificate for 127.0.0.1 and localhost is made
   * at start and written to a file for clients (bks_server_ca_file()). */
  int tls;
  const char *tls_cert_file; /* PEM certificate (chain) */
  const char *tls_key_file;  /* PEM private key, unencrypted */
  /* authorized keys file (`ssh-ed25519 <base64> [comment]` lines, as
   * OpenSSH writes them; the comment is ignored: a key is identified by
   * its public-key hex. Blank lines and # comments skipped); NULL: none
   * (add keys in-process with bks_server_add_key()). A bad file makes the
   * start fail. */
  const char *authorized_keys_file;
  /* HMAC-SHA256 key for signed storage URLs; NULL: 32 random bytes per
   * start. Copied. */
  const unsigned char *hmac_secret;
  size_t hmac_secret_len;
  /* lifetime of signed storage URLs in seconds; default 900. A whole
   * number gives an integer `expires`; a fractional one (tests) gives
   * `expires` with three decimals. */
  double url_ttl;
  /* lifetime of a resumable upload session in seconds, from its start;
   * default 604800 (a week, as Google Cloud Storage); 0: never expires.
   * An expired session answers 404 and its bytes are removed. */
  double session_ttl;
  /* how long a new job answers PENDING, seconds; default 0.5. A long
   * poll (ENCORD_WIRE §8) is held until then or its timeout_seconds. */
  double job_pending;
  /* the dataset hashes the server serves (v1 ResourceID): `ndatasets`
   * strings, each 1 to 128 printable ASCII characters without quotes or
   * backslashes; with none, one random uuid4 dataset is made at start
   * (bks_server_dataset()). Each gets a random backing folder uuid. */
  const char *const *datasets;
  size_t ndatasets;
  /* 1: a job POST must name a folder (folderUuid), as Encord's docs say
   * for non-mirror datasets; 0 (default): folderUuid is optional. Given,
   * it must be the dataset's backing folder. */
  int require_folder;
  /* 1: v2 presign answers in snake_case (item_uuid, object_key,
   * signed_url); 0 (default): camelCase, as the SDK's own to_dict(). */
  int v2_snake_case;
  /* the most connections served at once (the rest wait in the listen
   * backlog); 0 (default): from RLIMIT_NOFILE at start (its soft limit
   * less 64, at least 16, at most 65536) */
  unsigned connection_limit;
  /* base of signed URLs ("https://uploads.example:8443"); NULL (default):
   * scheme + the request's Host header when it is well formed, else the
   * listening address */
  const char *public_url;
  /* random faults and latency; default none, status 503 */
  bks_faults faults;
  /* keep the request log (bks_server_request_get()); default 1. A
   * long-running server turns it off: the log grows without bound. */
  int keep_log;
  /* close a connection idle this many seconds; 0 (default): never */
  unsigned idle_timeout;
  /* largest API (JSON) request body in bytes; default 16 MiB; a larger
   * Content-Length is answered 413 at once and the connection closed
   * without reading the body (a body that grows past it without a
   * Content-Length: 413 once it ends). Storage bodies are not bounded
   * (streamed to the store). */
  unsigned long long max_api_body;
} bks_config;

/* Fill *cfg with the defaults above. */
void bks_config_init(bks_config *cfg);

/* ---- life cycle -------------------------------------------------------- */

/* Start a server. On success *out is the server and 0 is returned. On
 * failure *out is NULL, -1 is returned and, when err is not NULL, a
 * message (never longer than errlen - 1) says why: bad option, cannot
 * bind, bad authorized keys line (with its number), unreadable TLS
 * files, root not a directory... */
int bks_server_start(bks_server **out, const bks_config *cfg, char *err,
                     size_t errlen);

/* Stop promptly (handlers sleeping on a fault wake at once), close every
 * connection, remove the generated CA file and free everything. Objects
 * on disk stay. NULL does nothing. Must not race with other calls. */
void bks_server_stop(bks_server *srv);

/* The TCP port the server listens on. */
unsigned short bks_server_port(const bks_server *srv);

/* "http://HOST:PORT" or "https://HOST:PORT" (IPv6 hosts in brackets)
 * followed by `path` (NULL means ""). The caller frees it; NULL on
 * allocation failure. */
char *bks_server_url(const bks_server *srv, const char *path);

/* PEM certificate file for CURLOPT_CAINFO when the server made its own
 * self-signed certificate; NULL otherwise. Owned by the server, removed
 * by bks_server_stop(). */
const char *bks_server_ca_file(const bks_server *srv);

/* The store's root directory, or NULL for the memory store. */
const char *bks_server_root(const bks_server *srv);

/* ---- keys and datasets (API mode) ------------------------------------------ */

/* Authorize a raw 32-byte Ed25519 public key; it is identified by its
 * lower-case hex (the SDK's key id, ENCORD_WIRE §2). Adding it again does
 * nothing. Returns 0, or -1 on allocation failure. */
int bks_server_add_key(bks_server *srv, const unsigned char public_key[32]);

/* Parse one `ssh-ed25519 <base64 blob> [comment]` line (no newline) into
 * the raw key. 0, or -1 with *why set to a static reason. */
int bks_parse_authorized_key_line(const char *line,
                                  unsigned char public_key[32],
                                  const char **why);

/* Serve one more dataset (format as bks_config.datasets). 0, or -1 for a
 * bad hash or allocation failure; an existing one: 0. */
int bks_server_add_dataset(bks_server *srv, const char *dataset_hash);

/* The first dataset's hash (the one made at start when none was
 * configured). Owned by the server. */
const char *bks_server_dataset(const bks_server *srv);

/* The backing folder uuid of a dataset (what `dataset`/GET reports as
 * backing_folder_uuid, and the folderUuid a job may name); NULL for an
 * unknown dataset. Owned by the server. */
const char *bks_server_dataset_folder(const bks_server *srv,
                                      const char *dataset_hash);

/* ---- settings that change at run time ------------------------------------ */

/* Replace the random faults and latency. A `seed` of 0 keeps the fault
 * generator's state; any other value reseeds it. */
void bks_server_set_faults(bks_server *srv, const bks_faults *faults);
void bks_server_set_url_ttl(bks_server *srv, double seconds);
void bks_server_set_job_pending(bks_server *srv, double seconds);
/* Pin the server's clock for the v2 `created` window to `unix_time`
 * (tests replaying a fixed test vector); 0 returns to the real clock. */
void bks_server_set_clock(bks_server *srv, double unix_time);

/* Which API request an injected API error applies to. */
typedef enum bks_api_call {
  BKS_CALL_PRESIGN = 0, /* v2 GET /v2/public/presigned-urls */
  BKS_CALL_DATASET,     /* v1 dataset/GET */
  BKS_CALL_CREATE,      /* v1 datasetdatalongpolling/POST */
  BKS_CALL_POLL,        /* v1 datasetdatalongpolling/GET */
  BKS_CALL_JOB,         /* the outcome of the next jobs created */
  BKS_CALL_COUNT
} bks_api_call;

/* Make the next `n` authenticated requests of `call` (0: every one) fail
 * as the real API would: for BKS_CALL_PRESIGN, `code` is an HTTP status
 * (400 to 599) answered with {"message": ...} (429 and 503 with
 * Retry-After: 1); for the v1 calls, `code` is an error name
 * ("AUTHENTICATION_ERROR", "AUTHORISATION_ERROR",
 * "RESOURCE_NOT_FOUND_ERROR", "SSH_KEY_NOT_FOUND_ERROR",
 * "INVALID_ARGUMENTS_ERROR", "UPLOAD_OPERATION_NOT_SUPPORTED_ERROR",
 * "UNKNOWN_ERROR") answered in the v1 error envelope with the status
 * doc/api-protocol.md gives it; for BKS_CALL_JOB, "ERROR" or "CANCELLED":
 * the next `n` jobs end that way. Replaces what was set for `call`.
 * 0, or -1 for a bad code. */
int bks_server_api_fault(bks_server *srv, bks_api_call call, const char *code,
                         unsigned n);
/* Parse "WHERE:CODE[:N]" (WHERE presign|dataset|create|poll|job) for the
 * CLI; 0, or -1. */
int bks_parse_api_fault(const char *spec, bks_api_call *call, char *code,
                        size_t codelen, unsigned *n);

/* Script the next `n` requests to `path` (exact raw path, without query;
 * NULL means any path): they get actions[0..n-1] in order; afterwards that
 * path falls back to normal handling. Scripting a path that still has
 * actions left appends to them. A per-path script wins over the any-path
 * script (only the winning script is consumed). */
void bks_server_script(bks_server *srv, const char *path,
                       const bks_action *actions, size_t n);

/* ---- signed storage URLs ---------------------------------------------------- */

/* A signed storage URL for `object_key` (not validated: a test may sign a
 * bad key to see the PUT refuse it), with a content-type pattern of
 * doc/api-protocol.md ("image/" followed by a star, "application/dicom",
 * "application/octet-stream", or a lone star for any type) and lifetime
 * `ttl` seconds from now (may be negative), as presign would issue it. Uses
 * the server's public_url, else its listening address. The caller frees
 * it; NULL on allocation failure. */
char *bks_server_sign_storage_url(bks_server *srv, const char *object_key,
                                  const char *content_type_pattern,
                                  double ttl);

/* Whether `key` is an acceptable object key: 1 to 1024 bytes, relative
 * ("a/b", not "/a/b"), '/'-separated segments that are not empty, "." or
 * "..", no backslash, no control character (NUL cannot occur: a
 * percent-encoded %00 is refused before), no segment starting with
 * ".bks-tmp" (the disk store's temporary files), and not ".resumable" or
 * below it (the disk store's resumable sessions). 1 if valid, else 0. */
int bks_object_key_valid(const char *key);

/* ---- objects --------------------------------------------------------------- */

/* The object stored under `key` (API mode: the object key, e.g.
 * "uploads/<uuid>"; raw mode: the raw path, e.g. "/bucket/a%20b"): copies
 * its lower-hex SHA-256 into out (may be NULL) and returns its size, or
 * returns -1 if there is none. The disk store reads the whole file. */
long long bks_server_object_sha256(bks_server *srv, const char *key,
                                   char out[65]);

/* A malloc'ed copy of the object (the caller frees it), its size in *len
 * (len may be NULL); NULL if there is none. An empty object gives a
 * non-NULL pointer and *len 0. */
void *bks_server_object_data(bks_server *srv, const char *key, size_t *len);

/* Remove an object (tests: "an image object vanished"). 0, or -1 if
 * there was none. */
int bks_server_object_delete(bks_server *srv, const char *key);

/* ---- resumable upload sessions ----------------------------------------------- */

/* The bytes resumable session `sid` has persisted (its P), without
 * touching the session's ownership (a status query PUT takes it over):
 * for tests that wait for a body to reach the server. *completed (may be
 * NULL) is set to whether the object was committed. -1 for an unknown or
 * discarded session. */
long long bks_server_upload_offset(bks_server *srv, const char *sid,
                                   int *completed);

/* ---- jobs (API mode) --------------------------------------------------------- */

/* Mark a job CANCELLED (unless it already ended DONE or ERROR). 0, or -1
 * for an unknown or already ended job. */
int bks_server_job_cancel(bks_server *srv, const char *process_hash);

/* ---- counters and the request log ---------------------------------------------- */

/* Which endpoint a request was routed to. */
typedef enum bks_endpoint {
  BKS_EP_OTHER = 0,    /* raw mode, or no route (404/405) */
  BKS_EP_PRESIGN,      /* GET /v2/public/presigned-urls */
  BKS_EP_STORAGE,      /* /storage/... */
  BKS_EP_PUBLIC,       /* POST /public (the v1 envelope) */
  BKS_EP_COUNT
} bks_endpoint;

typedef struct bks_counters {
  /* requests routed to each endpoint, whatever their outcome */
  unsigned long long requests[BKS_EP_COUNT];
  unsigned long long presign_requests; /* presign answered 200 */
  unsigned long long urls_issued;      /* signed URLs in those answers */
  /* storage PUTs answered 200, and API-mode resumable sessions
   * finalized */
  unsigned long long objects_stored;
  unsigned long long datasets_fetched; /* dataset/GET answered 200 */
  unsigned long long jobs_created;     /* job POSTs answered 200 */
  unsigned long long polls;            /* job GETs answered 200 */
  unsigned long long data_units;       /* data units created by jobs */
  unsigned long long auth_failures;    /* v1 and v2 401 answers */
  unsigned long long faults_injected;  /* random faults (rate, reset) */
  unsigned long long api_faults;       /* bks_server_api_fault() answers */
  unsigned long long resumable_started;   /* sessions started (201) */
  unsigned long long resumable_completed; /* sessions finalized (object
                                             committed) */
  unsigned long connections;           /* TCP connections accepted */
} bks_counters;

/* A snapshot of the counters. */
void bks_server_counters(bks_server *srv, bks_counters *out);

/* One recorded request (the field names match the engine's test server,
 * tests/support/bk_ts.h). */
typedef struct bks_request {
  char method[16];
  char path[1024];   /* raw path, truncated to fit */
  char query[1024];  /* raw query (after '?'), truncated to fit */
  char content_type[256];
  char cache_control[256];
  char content_md5[64];
  char expect[64];
  char content_range[96];        /* resumable chunks and status queries */
  long long content_length;      /* from the header, -1 if absent */
  unsigned long long body_bytes; /* body bytes actually received */
  char body_sha256[65];          /* lower hex of the received body */
  int complete;                  /* whole body received */
  bks_fault fault;               /* action applied */
  int status;                    /* status answered, 0 if none */
  unsigned long connection_id;   /* distinct per TCP connection, from 1 */
  /* additions over bk_ts */
  bks_endpoint endpoint;
  int injected;     /* the fault came from the random faults */
  /* v1: the envelope's query_type and query_method ("" if unparsed) */
  char query_type[32];
  char query_method[8];
  /* the public-key hex of a request whose signature verified, else "" */
  char keyid[65];
  /* why a request was refused: the v1 error name and reason ("AUTHENTI
   * CATION_ERROR: ..."), the v2 message, the XML error Code; "Superseded"
   * for a resumable chunk overtaken by a newer request on its session;
   * "" when it succeeded */
  char error[160];
} bks_request;

/* Number of requests recorded. */
size_t bks_server_request_count(bks_server *srv);

/* Copy request `i` (0 = first recorded) into *out; 0, or -1 if there is
 * no such request. */
int bks_server_request_get(bks_server *srv, size_t i, bks_request *out);

/* Number of requests recorded for `path` (raw path, exact). */
size_t bks_server_count_path(bks_server *srv, const char *path);

/* Wait until at least `n` requests are recorded or `timeout` seconds
 * pass; returns the number recorded. */
size_t bks_server_wait_requests(bks_server *srv, size_t n, double timeout);

/* Forget recorded requests, scripts, counters (except connections) and,
 * with the memory store, every object and resumable session. Jobs,
 * datasets, API faults and authorized keys stay. */
void bks_server_reset(bks_server *srv);

#ifdef __cplusplus
}
#endif
#endif
