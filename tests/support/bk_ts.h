/*
 * bk_ts.h - a fault-scripting HTTP/1.1 test server.
 *
 * The server runs inside the test process on 127.0.0.1, on a port the OS
 * picks, and stores what clients PUT (or POST) in memory, keyed by path. A
 * test scripts what the next requests to a path (or to any path) suffer:
 * an error status, a delay, a stalled body, no response, a reset, a
 * truncated response, a close without a response. Every request is
 * recorded (method, path, query, a few headers, body size and SHA-256,
 * which fault was applied, which status was answered, which TCP connection
 * carried it), so a test can assert what a client really sent.
 *
 * Paths and queries are recorded and matched exactly as they appear on the
 * request line (percent-encoding is kept; the query is what follows '?').
 *
 * Methods: GET and HEAD return the object stored at the path (200) or 404;
 * DELETE removes it (204) or answers 404; every other method (PUT, POST,
 * ...) stores the body. A fault script applies to every method; for GET,
 * HEAD and DELETE, BK_TS_OK means the behaviour above.
 *
 * Resumable uploads (doc/api-protocol.md, "Resumable uploads", after
 * Google Cloud Storage's XML API) work on any path: a POST with
 * `x-goog-resumable: start` answers 201 with `Location:
 * http://<Host header><path>?upload_id=<sid>`; PUTs on that URL with
 * `Content-Range: bytes S-E/T` append a chunk (308 with `Range:
 * bytes=0-<P-1>` until the object is whole, then 200 and the object is
 * stored under the path as a PUT's body would be), with `Content-Range:
 * bytes STAR/T` (STAR is '*') ask for the status; DELETE cancels (204).
 * Scripts apply to them by the path without the query; a RESET_MID_BODY
 * chunk keeps the bytes that arrived before the reset. Each record's
 * content_range is the request's Content-Range header. bk_ts_reset()
 * forgets the sessions.
 *
 * When is a request recorded? As soon as its outcome is fixed: just before
 * its response is queued, just before the connection is dropped, reset or
 * held, or, for a request the client aborts, when libmicrohttpd reports
 * its end. So when a client sees an answer (or a reset, or a close), the
 * request is already recorded; only client-side aborts need
 * bk_ts_wait_requests(). Objects are stored before the 2xx is queued.
 *
 * All functions are thread-safe, except that bk_ts_stop() must not race
 * with other calls on the same server.
 *
 * Setting the environment variable BK_TS_LOG=1 turns on libmicrohttpd's
 * error log (stderr).
 *
 * This is the reference server (src/server/bks_server.h) in its raw mode
 * (BKS_MODE_RAW, memory store): the types below are the server's, and
 * the functions are thin wrappers, so a test may also call bks_server_*
 * on a bk_ts.
 */
#ifndef BK_TS_H
#define BK_TS_H

#include "bks_server.h"

#include <stddef.h>

typedef struct bks_server bk_ts;

/* What happens to a request (see bks_fault for each one). */
typedef bks_fault bk_ts_fault;
#define BK_TS_OK BKS_FAULT_OK
#define BK_TS_STATUS BKS_FAULT_STATUS
#define BK_TS_DELAY BKS_FAULT_DELAY
#define BK_TS_STALL_BODY BKS_FAULT_STALL_BODY
#define BK_TS_NO_RESPONSE BKS_FAULT_NO_RESPONSE
#define BK_TS_RESET_MID_BODY BKS_FAULT_RESET_MID_BODY
#define BK_TS_TRUNCATED BKS_FAULT_TRUNCATED
#define BK_TS_CLOSE_EARLY BKS_FAULT_CLOSE_EARLY

/* One scripted action (fault, status, headers, body, seconds,
 * after_bytes). Strings are copied by bk_ts_script(). */
typedef bks_action bk_ts_action;

/* One recorded request: method, path, query, content_type, cache_control,
 * content_md5, expect, content_range, content_length, body_bytes,
 * body_sha256, complete, fault, status, connection_id (and the server's
 * additions). */
typedef bks_request bk_ts_request;

typedef struct bk_ts_options {
  /* serve HTTPS with a self-signed certificate (EC P-256, SAN IP:127.0.0.1
   * and DNS:localhost) generated at start; see bk_ts_ca_file() */
  int tls;
} bk_ts_options;

/* Start a server on 127.0.0.1, port chosen by the OS. `opt` NULL means
 * plain HTTP. On success *out is the server and 0 is returned; on failure
 * *out is NULL and -1 is returned. */
int bk_ts_start(bk_ts **out, const bk_ts_options *opt);

/* Stop the server promptly (handlers sleeping on a fault wake at once),
 * close every connection, remove the CA file and free everything.
 * NULL does nothing. */
void bk_ts_stop(bk_ts *ts);

/* The TCP port the server listens on. */
unsigned short bk_ts_port(const bk_ts *ts);

/* "http://127.0.0.1:PORT" or "https://127.0.0.1:PORT" followed by `path`
 * (NULL means ""). The caller frees the string; NULL on allocation
 * failure. */
char *bk_ts_url(const bk_ts *ts, const char *path);

/* Path of the PEM certificate for CURLOPT_CAINFO (TLS servers only, else
 * NULL). Owned by the server; the file is removed by bk_ts_stop(). */
const char *bk_ts_ca_file(const bk_ts *ts);

/* Script the next `n` requests to `path` (exact path, without query; NULL
 * means any path): they get actions[0..n-1] in order; afterwards that path
 * falls back to BK_TS_OK. Scripting a path that still has actions left
 * appends to them. A per-path script wins over the any-path script (only
 * the winning script is consumed). The actions' strings are copied. */
void bk_ts_script(bk_ts *ts, const char *path, const bk_ts_action *actions,
                  size_t n);

/* Number of requests recorded. */
size_t bk_ts_request_count(bk_ts *ts);

/* Copy request `i` (0 = first recorded) into *out; 0, or -1 if there is
 * no such request. */
int bk_ts_request_get(bk_ts *ts, size_t i, bk_ts_request *out);

/* Number of requests whose headers arrived since the last reset: each is
 * recorded when it ends (a request whose connection was cut, when the
 * server sees the cut), so once this equals bk_ts_request_count() every
 * started request is in the record. */
size_t bk_ts_requests_started(bk_ts *ts);

/* Number of requests recorded for `path`. */
size_t bk_ts_count_path(bk_ts *ts, const char *path);

/* TCP connections accepted so far (not cleared by bk_ts_reset()). */
unsigned long bk_ts_connections(bk_ts *ts);

/* The object stored at `path` by the last successful PUT/POST: copies its
 * lower-hex SHA-256 into out (may be NULL) and returns its size, or
 * returns -1 if there is none. */
long long bk_ts_object_sha256(bk_ts *ts, const char *path, char out[65]);

/* A malloc'ed copy of the object stored at `path` (the caller frees it),
 * its size in *len (len may be NULL); NULL if there is none. An empty
 * object gives a non-NULL pointer and *len 0. */
void *bk_ts_object_data(bk_ts *ts, const char *path, size_t *len);

/* Wait until at least `n` requests are recorded or `timeout` seconds pass;
 * returns the number recorded. */
size_t bk_ts_wait_requests(bk_ts *ts, size_t n, double timeout);

/* Forget recorded requests, stored objects, resumable sessions and
 * scripts. */
void bk_ts_reset(bk_ts *ts);

/* Addition: the name of a fault ("OK", "STATUS", ...), for messages. */
const char *bk_ts_fault_name(bk_ts_fault fault);

#endif
