/*
 * bulkup/uploader.h - the upload engine: worker threads, each driving
 * several transfers at once, that PUT items to URLs, with retries,
 * per-phase timeouts and a complete report.
 *
 *   bulkup_uploader_options opt;
 *   bulkup_uploader_options_init(&opt);
 *   opt.workers = 16;
 *   bulkup_uploader *u;
 *   if (bulkup_uploader_new(&u, &opt) != BULKUP_OK) ...
 *   for each file:
 *     bulkup_item it;
 *     bulkup_item_init(&it);
 *     it.path = path; it.url = url;
 *     bulkup_uploader_submit(u, &it, NULL);   (blocks while the queue is full)
 *   bulkup_report *rep;
 *   bulkup_err rc = bulkup_uploader_finish(u, &rep);
 *   ... bulkup_report_write_json(rep, "report.json");
 *   bulkup_report_free(rep);
 *   bulkup_uploader_free(u);
 */
#ifndef BULKUP_UPLOADER_H
#define BULKUP_UPLOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "data_type.h"
#include "journal.h"
#include "report.h"
#include "settings.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where an item's bytes come from. */
typedef enum bulkup_source_kind {
  BULKUP_SOURCE_FILE = 0,    /* item.path, opened by the worker that sends it */
  BULKUP_SOURCE_MEMORY = 1,  /* item.data / item.size, not copied */
  BULKUP_SOURCE_CALLBACK = 2 /* item.read / item.read_ctx / item.size */
} bulkup_source_kind;

/*
 * A positional read, for BULKUP_SOURCE_CALLBACK: copy up to `len` bytes of
 * the item starting at `offset` into `buf` and return how many (0 only at
 * the end), or -1 on error (the item fails with BULKUP_ERROR_FILE). Because
 * reads are positional, a retry simply starts again at offset 0. Called
 * from a worker thread, one call at a time per item.
 */
typedef int64_t (*bulkup_read_fn)(void *ctx, uint64_t offset, void *buf,
                                  size_t len);

/*
 * Which protocol an item's URL speaks (bulkup_item.storage). It decides
 * the extra headers of a single PUT and, for items of at least
 * options.multipart_threshold bytes, how they are split into parts.
 */
typedef enum bulkup_storage {
  /* AZURE when the URL's host ends in ".blob.core.windows.net" or its
   * query has both "sv=" and "sig=" (an Azure SAS); HTTP otherwise. */
  BULKUP_STORAGE_AUTO = 0,
  /* A plain PUT to the URL (resumable above resumable_threshold, GCS
   * style); never split into parts. */
  BULKUP_STORAGE_HTTP = 1,
  /* An S3 object URL (not presigned: options.sign signs each request):
   * at or above multipart_threshold, S3 multipart upload. */
  BULKUP_STORAGE_S3 = 2,
  /* An Azure blob URL with its SAS in the query: at or above
   * multipart_threshold, Put Block and Put Block List. */
  BULKUP_STORAGE_AZURE = 3
} bulkup_storage;

/*
 * One thing to upload. Fill with bulkup_item_init() and set what you need;
 * bulkup_uploader_submit() copies every string, so the item struct and its
 * strings may be reused as soon as submit returns. Memory and callback
 * sources are not copied: item.data / item.read_ctx must stay valid until
 * the item's completion callback has returned (or until finish returns).
 */
typedef struct bulkup_item {
  bulkup_source_kind source;     /* default BULKUP_SOURCE_FILE */
  const char *path;              /* FILE: the file to send */
  const void *data;              /* MEMORY: the bytes */
  uint64_t size;                 /* MEMORY and CALLBACK: byte count */
  bulkup_read_fn read;           /* CALLBACK */
  void *read_ctx;                /* CALLBACK: passed to read */
  const char *url;               /* destination (http or https only) */
  const char *title;             /* default: the path's basename, or the
                                    URL's last path segment */
  bulkup_data_type data_type;    /* picks Content-Type; default IMAGE */
  const char *content_type;      /* overrides the data type's choice;
                                    one line (a CR or LF: BULKUP_EINVAL) */
  const char *cache_control;     /* NULL: "max-age=86400"; "": no header;
                                    one line (a CR or LF: BULKUP_EINVAL) */
  const char *const *headers;    /* extra "Name: value" lines, NULL-ended;
                                    may be NULL. Each must pass
                                    bulkup_header_check (azure.h), else
                                    submit says BULKUP_EINVAL. They win
                                    over the Content-Type, Cache-Control
                                    and Content-MD5 bulkup would send, and
                                    over an Azure URL's x-ms-version and
                                    x-ms-blob-type (azure.h) */
  void *user;                    /* given back in the result */
  const char *journal_key;       /* with options.journal: recorded there
                                    when the item succeeds, with the size
                                    and mtime (files: as uploaded) */
  bulkup_storage storage;        /* default AUTO; see bulkup_storage */
} bulkup_item;

/* bulkup_item_init - zero the item: file source, IMAGE, defaults. */
BULKUP_EXTERN void bulkup_item_init(bulkup_item *item);

/*
 * bulkup_content_type_for - the Content-Type bulkup sends for a data type
 * and a file name when the item sets none: IMAGE and IMG_GROUP by
 * extension (.jpg/.jpeg image/jpeg, .png, .gif, .bmp, .webp, .tif/.tiff,
 * .avif, .heic; otherwise application/octet-stream), VIDEO and AUDIO
 * application/octet-stream, DICOM and DICOM_STUDY application/dicom, PDF
 * application/pdf, PLAIN_TEXT text/plain, NIFTI and the rest
 * application/octet-stream. Static storage; `name` may be NULL.
 */
BULKUP_EXTERN const char *bulkup_content_type_for(bulkup_data_type type,
                                                  const char *name);

/* Live counters of a running uploader (a snapshot). */
typedef struct bulkup_progress {
  uint64_t submitted;       /* items submitted so far */
  uint64_t succeeded;       /* items ended succeeded */
  uint64_t failed;          /* items ended failed */
  uint64_t cancelled;       /* items ended cancelled */
  uint64_t in_flight;       /* taken by a worker, not finished */
  uint64_t retries;         /* attempts beyond each item's first */
  uint64_t bytes_submitted; /* sizes of submitted items (files: as stat'ed
                               when the worker opened them) */
  uint64_t bytes_sent;      /* body bytes sent so far, retries included */
  uint64_t bytes_succeeded; /* sizes of succeeded items */
  double elapsed_s;         /* seconds since the uploader started */
  uint64_t concurrency;     /* transfers allowed in flight now (adaptive:
                               the controller's choice; else workers) */
} bulkup_progress;

/* Log levels for the log callback. */
typedef enum bulkup_log_level {
  BULKUP_LOG_ERROR = 0,
  BULKUP_LOG_WARN = 1,
  BULKUP_LOG_INFO = 2,
  BULKUP_LOG_DEBUG = 3
} bulkup_log_level;

/* Called once per item when it ends, from the worker thread that ran it
 * (concurrently from several workers: make it thread-safe). The result and
 * its strings are valid only during the call. It must not call
 * bulkup_uploader_submit or _finish on the same uploader. */
typedef void (*bulkup_complete_fn)(void *userdata, const bulkup_result *r);

/* Called with a progress snapshot at most every progress_interval seconds,
 * and once when the run ends; from a worker or the finishing thread, never
 * two calls at once. */
typedef void (*bulkup_progress_fn)(void *userdata, const bulkup_progress *p);

/* Called for log messages at or below options.log_level, from any thread,
 * possibly concurrently. Messages are redacted. */
typedef void (*bulkup_log_fn)(void *userdata, bulkup_log_level level,
                              const char *message);

/*
 * Called from a worker when an upload was refused because its signed URL
 * expired (HTTP 403 whose body says "expired", as GCS's ExpiredToken
 * does): return a fresh URL for the item, allocated with malloc() (the
 * library frees it), or NULL to let the item fail. Called at most once per
 * item; `r` describes the item (index, path, title, user) and its failed
 * attempt. The fresh URL is tried at once, without counting as a retry.
 */
typedef char *(*bulkup_refresh_url_fn)(void *userdata, const bulkup_result *r);

/*
 * What a request is, for a signer (bulkup_request.kind): which step of an
 * item's upload it sends. The protocol is the item's storage
 * (bulkup_item.storage, AUTO resolved). Values are stable; new kinds are
 * added at the end.
 */
typedef enum bulkup_request_kind {
  /* The whole item in one PUT. */
  BULKUP_REQUEST_PUT = 0,
  /* S3 CreateMultipartUpload (POST ?uploads): no body. */
  BULKUP_REQUEST_MULTIPART_CREATE = 1,
  /* One part: S3 UploadPart (PUT ?partNumber=N&uploadId=ID) or Azure Put
   * Block; the body is the part (body_offset, body_len). */
  BULKUP_REQUEST_MULTIPART_PART = 2,
  /* S3 CompleteMultipartUpload (POST ?uploadId=ID, an XML body) or Azure
   * Put Block List. */
  BULKUP_REQUEST_MULTIPART_COMPLETE = 3,
  /* S3 AbortMultipartUpload (DELETE ?uploadId=ID): no body. */
  BULKUP_REQUEST_MULTIPART_ABORT = 4,
  /* A resumable (GCS-style) upload's request: its start, a chunk, or a
   * status query. */
  BULKUP_REQUEST_RESUMABLE = 5
} bulkup_request_kind;

/*
 * A request the engine is about to send for an item, given to
 * options.sign_request so that it can add headers (a signature). Every
 * field is valid only during the call.
 */
typedef struct bulkup_request {
  const char *method;           /* "PUT", "POST", "GET" or "DELETE" */
  const char *url;              /* the full URL, exactly as sent */
  const char *const *headers;   /* the request's header lines, final, as
                                   sent ("Name: value"), NULL-ended. libcurl
                                   adds Host (from the URL) and
                                   Content-Length (body_len) itself; a line
                                   "Name:" with nothing after the colon
                                   removes a header libcurl would add, and
                                   is not sent */
  uint64_t body_offset;         /* the body: body_len bytes of the item
                                   from body_offset (the whole item for a
                                   plain PUT, one part or chunk otherwise,
                                   none for a request without a body) */
  uint64_t body_len;            /* the body's length in bytes */
  const char *payload_sha256;   /* with options.sign_payload: the body's
                                   SHA-256 as 64 lower-case hex digits
                                   (that of "" for no body); else NULL */
  const char *payload_crc32c;   /* with options.sign_crc32c: the body's
                                   CRC-32C (Castagnoli), its 4 bytes
                                   big-endian in base64 (as
                                   x-amz-checksum-crc32c carries it); else
                                   NULL */
  const bulkup_result *item;    /* the item (index, path, title, url
                                   redacted, user, attempts so far) */
  void *internal_;              /* the engine's; do not touch */
  /* bulkup_request_add_header, as a pointer: signers in layers below the
   * engine (src/cloud) call it without linking to the engine. */
  bulkup_err (*add_header)(struct bulkup_request *req, const char *line);
  /* What the request is (set by the engine for every request; a signer
   * decides from it, not from the URL, which checksum headers go on it).
   * Added after the members above, which keep their offsets. */
  bulkup_request_kind kind;
} bulkup_request;

/*
 * bulkup_request_add_header - add a header line "Name: value" to the
 * request, from inside options.sign_request (the line is copied; one
 * line: a CR or LF, or no colon, is BULKUP_EINVAL). The added lines go
 * after the request's own, on this request only: the next attempt is
 * signed afresh. Returns BULKUP_OK, BULKUP_EINVAL, BULKUP_ENOMEM.
 */
BULKUP_EXTERN bulkup_err bulkup_request_add_header(bulkup_request *req,
                                                   const char *line);

/*
 * Called from a worker before every request sent for an item: each
 * attempt and retry, each resumable chunk and status query, each part of
 * a multipart upload and its create, complete and abort requests; after
 * all the request's other headers are final, so that it can sign them
 * and add its own with bulkup_request_add_header (Authorization,
 * x-amz-date, x-amz-content-sha256, x-amz-security-token). Given
 * options.sign_userdata. Return BULKUP_OK to send the request; anything
 * else ends the item failed (BULKUP_ERROR_INTERNAL, "request signing
 * failed" and bulkup_last_error_message() as set on that thread), without
 * sending it. Runs on worker threads, concurrently from several: make it
 * thread-safe, and quick (it holds up the other transfers of its thread).
 * bulkup_s3_sign_request (bulkup/s3.h) is one.
 */
typedef bulkup_err (*bulkup_sign_request_fn)(void *sign_userdata,
                                             bulkup_request *req);

/* The transfers in flight adaptive concurrency starts at (and the fixed
 * default before it: options.workers = 16 fixes it). Measured on
 * 2-core machines against nginx over loopback, one event-loop thread
 * (bench/RESULTS.md, "Default transfers: 16", medians of 5): against 8,
 * 16 gave 1.07x and 1.06x the files/s on 20,000 files of 16 KiB (one and
 * two nginx workers), 1.01x and 1.08x over HTTPS, 1.20x and 1.10x on the
 * mixed set, with less client CPU per file in all six (0.92x to 0.95x on
 * the small files, 0.79x on mixed) and half the context switches, for
 * 0.5 MB more memory. Raise it for servers far away (more requests in
 * flight hide the round trip). */
#define BULKUP_DEFAULT_WORKERS 16

/* options.workers = BULKUP_WORKERS_AUTO (the default): adaptive
 * concurrency. The uploader starts with BULKUP_DEFAULT_WORKERS transfers
 * in flight. Until the first item ends it looks every 10 ms: while all
 * its transfers are in flight, none has ended and the process's CPU was
 * less than half busy (the round trip is the bound), it grows the number
 * at once, up to x2 a look (at 80 ms of round trip, 16 to 256 in about
 * 40 ms). Then it measures its own rate (files/s and bytes/s, over
 * windows of at least max(transfers, 8) items and 0.1 s, after letting
 * the transfers started at the previous level end): it grows the number
 * by x4 or x2 while a step pays (the rate rises by a third of the step
 * at least), each step within the CPU's headroom (at most 0.9 / the
 * share of the cores busy in the window, at least x1.25), goes back to
 * the level before when it does not, and later
 * probes 1.25x upwards now and then (less often after each probe that did
 * not pay). It halves the number at once, at most once per round, when
 * the server pushes back (429, 5xx, a timeout, a reset, a refused
 * connection) and grows again by probes; and when the client's CPU is the
 * bound (85% of the cores its threads can use) it stops growing and steps
 * back towards the start. Bounds: from the number of threads (at least
 * one transfer each) to options.workers_max. Each transfer's slot (its
 * libcurl handle and buffer) is allocated up front for workers_max, so
 * memory is bounded by workers_max, not by what the controller chooses:
 * about 30 KiB per transfer, plus a buffer the size of the largest small
 * file it sent (at most 1 MiB). bulkup_progress.concurrency is the number
 * now; the report records its range (bulkup_report_concurrency). */
#define BULKUP_WORKERS_AUTO 0u
/* options.workers_max's default: the most transfers adaptive concurrency
 * puts in flight. 16 transfers at 80 ms round trip can never exceed 200
 * files/s; 256 made the best fixed setting at 80 ms in bench/RESULTS.md
 * (WAN section), as s5cmd's default of 256 workers does. */
#define BULKUP_DEFAULT_WORKERS_MAX 256

/* Resumable uploads (options.resumable_threshold): items of 64 MiB and
 * more by default. Measured (bench/resumable_cost.c, bench/RESULTS.md,
 * "Resumable uploads"): the resumable path costs one request more than a
 * plain PUT (the session start) plus one per chunk, and each request
 * costs a round trip; a cut plain PUT re-sends the item from zero. Below
 * 64 MiB a cut costs a plain PUT at most the item (1.3 s at 50 MB/s),
 * while the resumable path made every upload of 16 MiB 8% slower (one
 * 32 MiB chunk; 50 MB/s, 20 ms round trip). */
#define BULKUP_DEFAULT_RESUMABLE_THRESHOLD ((uint64_t)64 << 20)
/* A threshold no item reaches: resumable uploads off. */
#define BULKUP_RESUMABLE_NEVER UINT64_MAX
/* Chunks are multiples of this (GCS requires it of every chunk but the
 * last). */
#define BULKUP_RESUMABLE_CHUNK_UNIT ((size_t)256 << 10)
/* Default chunk size: 32 MiB. Each chunk waits for its answer, so it
 * costs a round trip: on a 50 MB/s link with a 20 ms round trip, 256 MiB
 * took 24% longer than one PUT in 8 MiB chunks, 14% in 16 MiB and 9% in
 * 32 MiB (bench/RESULTS.md). A smaller chunk did not make a cut cheaper:
 * the server keeps the part of a cut chunk it received, and 2.6 MiB were
 * re-sent per cut with all three sizes. Chunks are streamed from the
 * source, never buffered, so their size costs no memory. A server that
 * keeps only whole chunks makes a cut re-send up to one chunk: lower it
 * for such servers on links cut more often than every few chunks (GCS
 * recommends at least 8 MiB). */
#define BULKUP_DEFAULT_RESUMABLE_CHUNK_SIZE ((size_t)32 << 20)

/* Multipart uploads (options.multipart_threshold, options.part_size):
 * items of 16 MiB and more, in parts of 16 MiB. Measured on a shared,
 * loaded 2-core machine over loopback (bench/multipart.sh,
 * bench/RESULTS.md, "Multipart part size"; 4 x 256 MiB, 16 transfers, 3
 * alternated repetitions per server): 16 MiB parts beat 8 MiB in 5 of the 6
 * paired runs (Azurite 1.08x, 1.17x, 1.22x; s3rver 1.9x, 0.98x, 2.1x),
 * 32 MiB was no better than 16 (0.63x to 2.0x). Per-request cost is what
 * these servers charge for; aws-cli uses 8 MiB, and aws-c-s3 found 8 MiB
 * best against AWS itself: lower both to 8M there if it is faster. The
 * threshold equals the part size, so an item just above it is not sent as
 * one part plus two extra requests. */
#define BULKUP_DEFAULT_MULTIPART_THRESHOLD ((uint64_t)16 << 20)
/* Default part size: 16 MiB (as measured above). */
#define BULKUP_DEFAULT_PART_SIZE ((size_t)16 << 20)
/* A threshold no item reaches: multipart uploads off. */
#define BULKUP_MULTIPART_NEVER UINT64_MAX
/* The limits of part_size (S3: 5 MiB at least for every part but the last
 * on AWS, which bulkup leaves to the server to enforce; 10,000 parts at
 * most; Azure: 50,000 blocks, 4000 MiB each). */
#define BULKUP_PART_SIZE_MIN ((size_t)1 << 10)
/* The largest part_size: 4000 MiB. */
#define BULKUP_PART_SIZE_MAX ((size_t)4000 << 20)
/* The most parts an item is split into (S3's limit). */
#define BULKUP_MAX_PARTS 10000

/* Default number of worker threads (options.threads): one thread drives
 * all the transfers, event-driven, as curl -Z does. Measured on a shared
 * 2-core machine against nginx WebDAV over loopback (bench/run,
 * bench/RESULTS.md; 8 transfers on one thread against a thread per
 * transfer, both with the same event loop; medians of alternating runs):
 *   small (20,000 x 16 KiB), 1 nginx worker: 23.1k vs 18.3k files/s
 *     (1.27x), client CPU 41 vs 51 us per file, 0.31 vs 1.26 context
 *     switches per file (5 repetitions; 0.97x..1.44x in three earlier
 *     runs of 3-5 repetitions; CPU per file lower in every run)
 *   small, 2 nginx workers: 21.3k vs 16.8k files/s (1.27x; earlier
 *     0.99x..1.19x), 42 vs 58 us
 *   tls-small (HTTPS): 13.5k vs 11.5k files/s (1 nginx worker), 13.1k vs
 *     12.0k (2)
 *   large (4 x 256 MiB, 4 transfers): 1,681 vs 1,334 MB/s
 * Two threads (4 transfers each) came in between. One thread uses one
 * core at most: raise `threads` when the client's CPU is the bound on a
 * machine with cores to spare (HTTPS at high rates), and use 0 (a thread
 * per transfer) when callbacks or sources block for long (files on a slow
 * network filesystem, a refresh_url that calls a service): a blocked
 * callback holds up every transfer of its thread. */
#define BULKUP_DEFAULT_THREADS 1

/* options.threads = BULKUP_THREADS_AUTO (the default): threads follow the
 * cores the process may run on (sched_getaffinity): one per two cores,
 * at least 1, at most 8 (and never more than transfers). On the measured
 * 2-core machines that is the measured best, 1 (above); half the cores
 * leaves the other half to the TLS work libcurl does on the same threads'
 * behalf, to the file system and the producer, and to a server on the
 * same machine as in those measurements. */
#define BULKUP_THREADS_AUTO ((unsigned int)-1)

/* bulkup_threads_auto - the number of threads BULKUP_THREADS_AUTO gives
 * on this machine now (before the bound by the number of transfers). */
BULKUP_EXTERN unsigned int bulkup_threads_auto(void);

/* options.http_version. */
typedef enum bulkup_http_version {
  /* The default: as BULKUP_HTTP_2 (measured: bench/RESULTS.md, "HTTP/2
   * multiplexing": at 80 ms round trip over HTTPS, against nginx with
   * http2, multiplexing gave 1.40x the files/s of a connection per
   * transfer at the adaptive default, with 0.54x the client CPU per
   * file; 1.14x at 64 transfers, 1.06x at 256). A later release may pick
   * differently for other servers. */
  BULKUP_HTTP_DEFAULT = 0,
  /* HTTP/1.1 only, a connection per transfer (bulkup's behaviour before
   * multiplexing, but for h2 by ALPN: that was one stream per connection) */
  BULKUP_HTTP_1_1 = 1,
  /* HTTP/2 where an https server offers it (ALPN), transfers multiplexed
   * as streams over shared connections (libcurl opens another past 100
   * streams, or the server's limit): fewer TLS handshakes. A reset
   * connection then fails every transfer on it (each retried as usual).
   * Plain http and HTTP/1.1-only servers get a connection per transfer. */
  BULKUP_HTTP_2 = 2
} bulkup_http_version;

/* Seconds without a success, during an outage, after which a run gives up
 * (bulkup_uploader_options.no_progress_limit). */
#define BULKUP_DEFAULT_NO_PROGRESS_LIMIT 300.0

/* Options for bulkup_uploader_new(). Fill with
 * bulkup_uploader_options_init(). Strings are copied. */
typedef struct bulkup_uploader_options {
  unsigned int workers;          /* transfers in flight at once, 1..1024:
                                    each has its own connection (and
                                    libcurl easy handle, kept across
                                    items); or BULKUP_WORKERS_AUTO (0, the
                                    default): adaptive, from
                                    BULKUP_DEFAULT_WORKERS up to
                                    workers_max. See threads. */
  size_t queue_capacity;         /* items waiting for a worker; 0 (default)
                                    means 4 * workers (4 * workers_max
                                    when adaptive) */
  bulkup_requests_settings requests;  /* seed defaults */
  bulkup_cloud_upload_settings cloud; /* nothing overridden */
  bulkup_backoff_settings backoff;    /* cap 120 s, Retry-After cap 600 s,
                                         no jitter */
  /* TLS: peer and host verification are on unless `insecure` is set
   * (test servers only). ca_file: a PEM bundle to trust instead of the
   * system's. */
  const char *ca_file;
  bool insecure; /* no TLS verification: test servers only */
  /* Send Content-MD5 (the server can reject a corrupted body). Costs one
   * extra read of each file. Default false. */
  bool content_md5;
  /* Send "Expect: 100-continue" for bodies over 1 MiB, saving the body
   * when the server would refuse it, at the cost of a round trip. Default
   * false. */
  bool expect_continue;
  /* Shared retry budget across workers (AWS "standard" retry mode): a
   * bucket of retry_budget_tokens; a retry costs 5, a retry after a
   * timeout 10; a success gives back what its retries cost, or 1. When
   * the bucket cannot pay, the run takes it for an outage (see
   * no_progress_limit): nothing fails for it, the retry waits. Default
   * on, 500 tokens. */
  bool retry_budget;
  unsigned int retry_budget_tokens; /* the bucket's size; default 500 */
  /* CURLOPT_UPLOAD_BUFFERSIZE in bytes; 0 = bulkup's default. */
  size_t upload_buffer_size;
  /* User-Agent header; NULL = "bulkup/VERSION". */
  const char *user_agent;
  /* Callbacks, all optional, all given `userdata`. */
  bulkup_complete_fn on_complete; /* once per item as it ends */
  bulkup_progress_fn on_progress; /* progress snapshots */
  double progress_interval;      /* seconds, default 0.25 */
  bulkup_log_fn log;             /* the library's log messages */
  bulkup_log_level log_level;    /* default BULKUP_LOG_WARN */
  bulkup_refresh_url_fn refresh_url; /* optional */
  /* Record each succeeded item that has a journal_key here (not owned;
   * must outlive the uploader). Failures to write the journal are logged
   * at BULKUP_LOG_ERROR and do not fail the item. */
  bulkup_journal *journal;
  void *userdata; /* given to every callback above */
  /* Worker threads, 0..1024, or BULKUP_THREADS_AUTO (the default: by
   * the cores, see there; BULKUP_DEFAULT_THREADS was the fixed default
   * before, the measurements are there). The `workers` transfers are spread evenly
   * over them; each thread drives its transfers through one libcurl multi
   * handle, event-driven: a single wake-up serves every connection that
   * is ready, and a transfer whose response was read sends its next
   * request at once (a thread per transfer costs a context switch per
   * request instead). 0 means `workers`: one transfer per thread. More
   * than `workers` means `workers`. Callbacks run on these threads, so a
   * callback that blocks holds up the other transfers of its thread. */
  unsigned int threads;
  /* Resumable uploads, in the manner of Google Cloud Storage's resumable
   * protocol (doc/api-protocol.md). An item of at least
   * `resumable_threshold` bytes starts a session: a POST to its URL with
   * "x-goog-resumable: start", whose answer's Location is the session URL.
   * The item then goes in chunks of `resumable_chunk_size` bytes, each a
   * PUT to the session URL with "Content-Range: bytes S-E/T". The server
   * answers 308 with "Range: bytes=0-N" (go on from N+1), or 200/201 when
   * it has the whole item. After a failed request, bulkup asks the server
   * how much it has (an empty PUT with Content-Range "bytes *", "/T") and
   * goes on from there: a cut connection costs the unconfirmed part of one
   * chunk, not the whole item.
   *
   * Retry limits count failures in a row without progress: a request that
   * moves the server's offset forward resets them. A session the server no
   * longer knows (404, 410) is started again, once. With options.journal
   * and an item journal_key, the session URL is journalled, so a rerun
   * after a crash resumes the session instead of starting over.
   *
   * Servers without the protocol: when the session start is answered 403
   * (a GCS URL signed for a PUT), 404 (nginx), 405 or 501, or 2xx without
   * a Location, or a chunk is answered 2xx before the last byte, the item
   * is sent with one plain PUT, and later items to the same
   * scheme://host:port skip the start. Another 4xx (but 408 and 429) on
   * the start sends that item with one plain PUT, which reports the
   * server's answer; a 403 saying the signed URL expired goes the usual
   * way (refresh_url, else the failure). Default BULKUP_DEFAULT_RESUMABLE_THRESHOLD;
   * BULKUP_RESUMABLE_NEVER turns resumable uploads off. */
  uint64_t resumable_threshold;
  /* Bytes per chunk: a multiple of 256 KiB (BULKUP_RESUMABLE_CHUNK_UNIT),
   * from 256 KiB to 1 GiB. Default BULKUP_DEFAULT_RESUMABLE_CHUNK_SIZE. */
  size_t resumable_chunk_size;
  /* Outages. When the retry budget runs dry, or an item's retries run out
   * while other items are failing too and nothing has succeeded since
   * (though something had before), the run is in an outage: no item
   * fails for it, and instead of one request per transfer only one probe
   * request at a time goes out, at most two a second, from an item that
   * keeps its own retries. The first success ends the outage; the held
   * items go on, each with its retries afresh. If nothing succeeds for
   * no_progress_limit seconds during an outage, the run gives up: every
   * item not finished ends failed, BULKUP_ERROR_RETRY_BUDGET, "nothing
   * has succeeded for N s". Seconds; 0 means wait for ever; default
   * BULKUP_DEFAULT_NO_PROGRESS_LIMIT (300). A lone item that keeps
   * failing while others succeed still fails on its own retries. */
  double no_progress_limit;
  /* Request signing (see bulkup_sign_request_fn): called before every
   * request with sign_userdata. NULL (the default): requests go as they
   * are. */
  bulkup_sign_request_fn sign_request;
  void *sign_userdata; /* given to sign_request */
  /* Give sign_request the SHA-256 of each request's body
   * (bulkup_request.payload_sha256). Costs one extra read of the body
   * (computed once per item, or per part, and kept across its retries),
   * as content_md5 does. Default false. */
  bool sign_payload;
  /* Give sign_request the CRC-32C of each request's body
   * (bulkup_request.payload_crc32c), for a checksum header such as
   * x-amz-checksum-crc32c; from the same extra read as sign_payload's
   * hash (a part's from its range of the file, read by offset). For an S3
   * multipart upload whose create went out with
   * "x-amz-checksum-algorithm: CRC32C" (bulkup_s3_sign_request adds it),
   * the engine keeps each part's CRC-32C and lists it in the Complete's
   * XML (<ChecksumCRC32C> beside PartNumber and ETag), journalled with the
   * part for a rerun. Default false. */
  bool sign_crc32c;
  /* With workers = BULKUP_WORKERS_AUTO: the most transfers in flight,
   * 1..1024; default BULKUP_DEFAULT_WORKERS_MAX (256). Ignored for a
   * fixed `workers`. Open files: one connection and one source file per
   * transfer in flight. */
  unsigned int workers_max;
  /* HTTP versions; default BULKUP_HTTP_DEFAULT. */
  bulkup_http_version http_version;
  /* Multipart uploads, for items whose storage is S3 or AZURE (given, or
   * AUTO-detected) and whose source is a file or memory (a callback
   * source is read one call at a time, so it always goes in one PUT). An
   * item of at least `multipart_threshold` bytes is split into parts of
   * `part_size` bytes (the last one shorter), each its own request:
   *   S3:    POST ?uploads (CreateMultipartUpload: the UploadId), then
   *          PUT ?partNumber=N&uploadId=ID per part (its ETag kept), then
   *          POST ?uploadId=ID with the parts' numbers and ETags in order
   *          (CompleteMultipartUpload); DELETE ?uploadId=ID
   *          (AbortMultipartUpload) when the item finally fails.
   *   Azure: PUT ?comp=block&blockid=ID per part (ID: base64 of the part's
   *          index as 6 decimal digits, so all IDs have one length), then
   *          PUT ?comp=blocklist with the IDs in order (Put Block List).
   *          A failed item leaves its uncommitted blocks to the service,
   *          which drops them after a week.
   * The parts go in parallel: a transfer that comes free takes a pending
   * part of an item in progress before a new item, so one large item uses
   * as many connections as there are transfers. Each request has its own
   * attempts, retries (the usual decision, budget and phase timeouts) and
   * deadline; the item succeeds when its completing request does, and
   * fails once (after its parts in flight end) when any request finally
   * fails. Parts are read from the file by offset (pread), never buffered.
   * With content_md5, each part carries its own Content-MD5 (the whole
   * file's is not sent); with sign_crc32c, its own CRC-32C (see
   * sign_crc32c). The item's one result counts every request of it (requests,
   * attempts, bytes_sent); `resumable` is false. A cancel aborts the
   * transfers and leaves the upload open (the journal can resume it).
   * With options.journal and an item journal_key, the UploadId (S3) and
   * each finished part (its number and ETag) are journalled as session
   * records (bulkup/journal.h): a rerun after a crash sends only the parts
   * not recorded, then completes the upload. These two options do not
   * govern resumable (GCS) uploads, which keep resumable_threshold and
   * resumable_chunk_size: those chunks go one after the other, these
   * parts side by side.
   * Defaults BULKUP_DEFAULT_MULTIPART_THRESHOLD and
   * BULKUP_DEFAULT_PART_SIZE; BULKUP_MULTIPART_NEVER turns multipart off;
   * part_size from BULKUP_PART_SIZE_MIN to BULKUP_PART_SIZE_MAX, and an
   * item that would need more than BULKUP_MAX_PARTS parts gets larger
   * parts (its size / BULKUP_MAX_PARTS, rounded up to a MiB). */
  uint64_t multipart_threshold;
  size_t part_size; /* bytes per part, as above */
} bulkup_uploader_options;

/* bulkup_uploader_options_init - the defaults documented above. */
BULKUP_EXTERN void
bulkup_uploader_options_init(bulkup_uploader_options *opt);

/* An upload run. Opaque. */
typedef struct bulkup_uploader bulkup_uploader;

/*
 * bulkup_uploader_new - validate the options, initialise libcurl (once per
 * process, thread-safely) and start the workers.
 *
 * Returns BULKUP_OK and *out; BULKUP_EINVAL (bulkup_last_error_message()
 * names the field); BULKUP_ENOMEM; BULKUP_ECURL; BULKUP_ETHREAD.
 */
BULKUP_EXTERN bulkup_err bulkup_uploader_new(bulkup_uploader **out,
                                             const bulkup_uploader_options *opt);

/*
 * bulkup_uploader_submit - queue one item. Blocks while the queue is full
 * (backpressure), so memory stays bounded however many items a producer
 * streams. The item's index (its position in submission order) is stored
 * in *index if index is not NULL.
 *
 * An item whose URL is not http(s) or whose file cannot be read is still
 * accepted: it ends as failed (kind URL or FILE) and is in the report.
 *
 * Returns BULKUP_OK; BULKUP_EINVAL for a structurally invalid item (no
 * URL, no path for a file source, no read function for a callback source;
 * not counted as submitted); BULKUP_ECANCELED after bulkup_uploader_cancel
 * (not counted); BULKUP_ESTATE after finish; BULKUP_ENOMEM.
 * Thread-safe: several producers may submit at once (indexes then follow
 * the order in which their calls took the queue's lock).
 */
BULKUP_EXTERN bulkup_err bulkup_uploader_submit(bulkup_uploader *u,
                                                const bulkup_item *item,
                                                uint64_t *index);

/*
 * bulkup_uploader_submit_failure - record an item that cannot even be
 * tried (a manifest line that does not parse, say) as failed, so that it
 * takes its place in the input order and in the report like any other:
 * it ends as BULKUP_ITEM_FAILED with error `kind` (BULKUP_ERROR_INPUT
 * if kind is NONE), attempts 0 and `message` (copied; NULL for none). Only
 * the item's path, url, title and user are used, and all may be NULL.
 * Same blocking, return values and thread-safety as
 * bulkup_uploader_submit().
 */
BULKUP_EXTERN bulkup_err bulkup_uploader_submit_failure(
    bulkup_uploader *u, const bulkup_item *item, bulkup_error_kind kind,
    const char *message, uint64_t *index);

/*
 * bulkup_uploader_finish - stop taking items, wait for every submitted
 * item to end, stop the workers and hand over the report (*out, free with
 * bulkup_report_free; out may be NULL to discard it). Call once, from one
 * thread, after the last submit.
 *
 * Returns BULKUP_OK when every item succeeded; with allow_failures, also
 * when some failed and at least one succeeded (or nothing was submitted).
 * BULKUP_EUPLOAD when an item failed and allow_failures is false;
 * BULKUP_EALLFAILED when allow_failures is true and every item failed;
 * BULKUP_ECANCELED after a cancel; otherwise BULKUP_EIO when a journal
 * record could not be written (bulkup_report_journal_failures: the
 * uploads went well, but a rerun would send those items again). The
 * report is produced in every case.
 */
BULKUP_EXTERN bulkup_err bulkup_uploader_finish(bulkup_uploader *u,
                                                bulkup_report **out);

/*
 * bulkup_uploader_cancel - stop as soon as possible: transfers in flight
 * are aborted, waits between retries end at once, queued items end as
 * cancelled, and later submits fail with BULKUP_ECANCELED. Thread-safe and
 * idempotent; returns at once. Not async-signal-safe: from a signal,
 * notify a thread that calls it.
 */
BULKUP_EXTERN void bulkup_uploader_cancel(bulkup_uploader *u);

/* bulkup_uploader_progress - a consistent snapshot of the counters.
 * Thread-safe. */
BULKUP_EXTERN void bulkup_uploader_progress(bulkup_uploader *u,
                                            bulkup_progress *out);

/* bulkup_uploader_free - free the uploader. If finish was not called, it
 * cancels and waits for the workers first. NULL does nothing. */
BULKUP_EXTERN void bulkup_uploader_free(bulkup_uploader *u);

#ifdef __cplusplus
}
#endif
#endif /* BULKUP_UPLOADER_H */
