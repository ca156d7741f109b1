/* Hostile and broken servers: a TLS certificate for another name, a reply
 * that never ends, an oversized header block, garbage instead of HTTP, and
 * a source file cut short while it is being sent. Each is refused or
 * reported; nothing is counted as uploaded that was not. */
#include "bk_test.h"
#include "bk_ts.h"
#include "internal.h"

#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

static char *dir;

static int init(void) {
  dir = bk_tmpdir("hostile");
  return dir ? 0 : -1;
}

static int clean(void) {
  bk_rm_rf(dir);
  free(dir);
  return 0;
}

static void fast(bulkup_uploader_options *o) {
  bulkup_uploader_options_init(o);
  bk_test_threads(o);
  o->workers = 1;
  o->requests.backoff_factor = 0;
  o->requests.connect_timeout = 3;
  o->requests.read_timeout = 1;
  o->requests.write_timeout = 3;
}

/* One item to `url`, from memory; the report comes back in *rep. */
static bulkup_err upload_mem(const bulkup_uploader_options *o, const char *url,
                             size_t size, bulkup_report **rep) {
  static unsigned char data[1 << 20];
  bk_fill_random(data, size, 77);
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, o) == BULKUP_OK);
  bulkup_item it;
  bulkup_item_init(&it);
  it.source = BULKUP_SOURCE_MEMORY;
  it.data = data;
  it.size = size;
  it.url = url;
  CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
  bulkup_err rc = bulkup_uploader_finish(u, rep);
  bulkup_uploader_free(u);
  return rc;
}

/* ---- a certificate for another name -------------------------------- */

static int write_cert_for(const char *name, const char *cert_path,
                          const char *key_path) {
  EVP_PKEY *k = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  int ok = k && x;
  if (ok) {
    X509_set_version(x, X509_VERSION_3); /* extensions need v3 */
    ASN1_INTEGER_set(X509_get_serialNumber(x), 42);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                               (const unsigned char *)name, -1, -1, 0);
    X509_set_issuer_name(x, n);
    char san[300];
    snprintf(san, sizeof san, "DNS:%s", name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext =
        X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
    ok = ext && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    X509_EXTENSION *bc =
        X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    ok = ok && bc && X509_add_ext(x, bc, -1);
    X509_EXTENSION_free(bc);
    ok = ok && X509_sign(x, k, EVP_sha256());
  }
  FILE *c = ok ? fopen(cert_path, "w") : NULL;
  FILE *kf = ok ? fopen(key_path, "w") : NULL;
  ok = c && kf && PEM_write_X509(c, x) &&
       PEM_write_PrivateKey(kf, k, NULL, NULL, 0, NULL, NULL);
  if (c)
    fclose(c);
  if (kf)
    fclose(kf);
  X509_free(x);
  EVP_PKEY_free(k);
  return ok ? 0 : -1;
}

static void test_certificate_for_another_name(void) {
  char cert[1100], key[1100];
  snprintf(cert, sizeof cert, "%s/wrong.crt", dir);
  snprintf(key, sizeof key, "%s/wrong.key", dir);
  CU_ASSERT_FATAL(write_cert_for("wrong.example", cert, key) == 0);
  bks_config cfg;
  bks_config_init(&cfg);
  cfg.mode = BKS_MODE_RAW;
  cfg.tls = 1;
  cfg.tls_cert_file = cert;
  cfg.tls_key_file = key;
  bk_ts *ts;
  char err[256];
  int started = bks_server_start(&ts, &cfg, err, sizeof err);
  if (started != 0)
    fprintf(stderr, "\n  server: %s\n", err);
  CU_ASSERT_FATAL(started == 0);
  char *url = bk_ts_url(ts, "/wrong-name");
  bulkup_uploader_options o;
  fast(&o);
  o.ca_file = cert; /* trusted, but issued to another name */
  bulkup_report *rep;
  CU_ASSERT_EQUAL(upload_mem(&o, url, 1000, &rep), BULKUP_EUPLOAD);
  CU_ASSERT_EQUAL_FATAL(bulkup_report_failure_count(rep), 1);
  const bulkup_result *x = bulkup_report_failure(rep, 0);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_TLS);
  CU_ASSERT_EQUAL(x->attempts, 1); /* a name mismatch is not transient */
  CU_ASSERT_EQUAL(x->bytes_sent, 0);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/wrong-name", NULL), -1);
  bulkup_report_free(rep);
  free(url);
  bk_ts_stop(ts);
}

/* ---- a raw TCP server that misbehaves ----------------------------------- */

typedef enum rogue_mode {
  ROGUE_ENDLESS_BODY, /* 200, chunked, never ends */
  ROGUE_HUGE_HEADERS, /* 200 with 1 MiB of headers */
  ROGUE_GARBAGE,      /* not HTTP at all */
  ROGUE_ENDLESS_ERROR /* 500, an endless body */
} rogue_mode;

typedef struct rogue {
  int fd;
  rogue_mode mode;
  pthread_t th;
  atomic_int stop;
  atomic_ulong bytes_out;
} rogue;

/* Read a request: headers up to the blank line, then Content-Length
 * bytes. */
static int read_request(int c) {
  char buf[65536];
  size_t len = 0;
  long long clen = 0;
  char *end = NULL;
  while (!end && len < sizeof buf - 1) {
    ssize_t r = read(c, buf + len, sizeof buf - 1 - len);
    if (r <= 0)
      return -1;
    len += (size_t)r;
    buf[len] = '\0';
    end = strstr(buf, "\r\n\r\n");
  }
  if (!end)
    return -1;
  char *cl = strcasestr(buf, "content-length:");
  if (cl)
    clen = atoll(cl + 15);
  long long have = (long long)(len - (size_t)(end + 4 - buf));
  while (have < clen) {
    ssize_t r = read(c, buf, sizeof buf);
    if (r <= 0)
      return -1;
    have += r;
  }
  return 0;
}

static bool send_all(rogue *rg, int c, const char *p, size_t n) {
  while (n > 0 && !atomic_load(&rg->stop)) {
    struct pollfd pfd = {.fd = c, .events = POLLOUT};
    if (poll(&pfd, 1, 100) <= 0)
      continue;
    ssize_t w = send(c, p, n, MSG_NOSIGNAL);
    if (w <= 0)
      return false;
    atomic_fetch_add(&rg->bytes_out, (unsigned long)w);
    p += w;
    n -= (size_t)w;
  }
  return n == 0;
}

static void *rogue_main(void *arg) {
  rogue *rg = arg;
  while (!atomic_load(&rg->stop)) {
    struct pollfd pfd = {.fd = rg->fd, .events = POLLIN};
    if (poll(&pfd, 1, 100) <= 0)
      continue;
    int c = accept(rg->fd, NULL, NULL);
    if (c < 0)
      continue;
    if (read_request(c) == 0) {
      static char chunk[8192 + 16];
      switch (rg->mode) {
      case ROGUE_ENDLESS_BODY:
      case ROGUE_ENDLESS_ERROR: {
        const char *head = rg->mode == ROGUE_ENDLESS_BODY
                               ? "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               : "HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n";
        if (!send_all(rg, c, head, strlen(head)))
          break;
        int n = snprintf(chunk, sizeof chunk, "2000\r\n");
        memset(chunk + n, 'x', 8192);
        memcpy(chunk + n + 8192, "\r\n", 2);
        while (send_all(rg, c, chunk, (size_t)n + 8192 + 2))
          ;
        break;
      }
      case ROGUE_HUGE_HEADERS: {
        const char *head = "HTTP/1.1 200 OK\r\n";
        send_all(rg, c, head, strlen(head));
        char line[1024];
        memset(line, 'h', sizeof line);
        memcpy(line, "X-Pad: ", 7);
        memcpy(line + sizeof line - 2, "\r\n", 2);
        for (int i = 0; i < 1024 && send_all(rg, c, line, sizeof line); i++)
          ;
        send_all(rg, c, "Content-Length: 0\r\n\r\n", 21);
        break;
      }
      case ROGUE_GARBAGE: {
        const char *g = "SSH-2.0-OpenSSH_9.2\r\nthis is not http\r\n\r\n";
        send_all(rg, c, g, strlen(g));
        break;
      }
      }
    }
    close(c);
  }
  return NULL;
}

static unsigned short rogue_start(rogue *rg, rogue_mode mode) {
  rg->mode = mode;
  atomic_init(&rg->stop, 0);
  atomic_init(&rg->bytes_out, 0);
  rg->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(rg->fd, (struct sockaddr *)&a, sizeof a);
  listen(rg->fd, 8);
  socklen_t l = sizeof a;
  getsockname(rg->fd, (struct sockaddr *)&a, &l);
  pthread_create(&rg->th, NULL, rogue_main, rg);
  return ntohs(a.sin_port);
}

static void rogue_stop(rogue *rg) {
  atomic_store(&rg->stop, 1);
  pthread_join(rg->th, NULL);
  close(rg->fd);
}

static const bulkup_result *run_rogue(rogue_mode mode, int max_retries,
                                      bulkup_report **rep, rogue *rg) {
  unsigned short port = rogue_start(rg, mode);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%u/x?signature=ROGUESECRET", port);
  bulkup_uploader_options o;
  fast(&o);
  bulkup_cloud_upload_settings_set_max_retries(&o.cloud, max_retries);
  double t0 = bk_now();
  bulkup_err rc = upload_mem(&o, url, 5000, rep);
  double dt = bk_now() - t0;
  rogue_stop(rg);
  CU_ASSERT_EQUAL(rc, BULKUP_EUPLOAD);
  CU_ASSERT(dt < 30); /* bounded: the read timeout ends it */
  bulkup_summary s;
  bulkup_report_summary(*rep, &s);
  CU_ASSERT_EQUAL(s.succeeded, 0);
  CU_ASSERT_EQUAL_FATAL(bulkup_report_failure_count(*rep), 1);
  const bulkup_result *x = bulkup_report_failure(*rep, 0);
  CU_ASSERT_PTR_NULL(strstr(x->url, "ROGUESECRET"));
  CU_ASSERT_PTR_NULL(strstr(x->message, "ROGUESECRET"));
  CU_ASSERT(x->response_excerpt_len <= 1024);
  return x;
}

static void test_endless_success_body_is_a_timeout_not_a_success(void) {
  rogue rg;
  bulkup_report *rep;
  const bulkup_result *x = run_rogue(ROGUE_ENDLESS_BODY, 1, &rep, &rg);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_TIMEOUT_READ);
  CU_ASSERT_EQUAL(x->attempts, 2);
  CU_ASSERT(atomic_load(&rg.bytes_out) > 100000); /* it really streamed */
  bulkup_report_free(rep);
}

static void test_endless_error_body_keeps_1k(void) {
  rogue rg;
  bulkup_report *rep;
  const bulkup_result *x = run_rogue(ROGUE_ENDLESS_ERROR, 0, &rep, &rg);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_TIMEOUT_READ);
  CU_ASSERT_EQUAL(x->http_status, 500);
  CU_ASSERT_EQUAL(x->attempts, 1);
  bulkup_report_free(rep);
}

static void test_huge_headers_refused(void) {
  rogue rg;
  bulkup_report *rep;
  const bulkup_result *x = run_rogue(ROGUE_HUGE_HEADERS, 0, &rep, &rg);
  CU_ASSERT_NOT_EQUAL(x->error, BULKUP_ERROR_NONE);
  CU_ASSERT_EQUAL(x->attempts, 1);
  bulkup_report_free(rep);
}

static void test_garbage_reply_is_protocol_error(void) {
  rogue rg;
  bulkup_report *rep;
  const bulkup_result *x = run_rogue(ROGUE_GARBAGE, 3, &rep, &rg);
  if (x->error != BULKUP_ERROR_PROTOCOL)
    fprintf(stderr, "\n  garbage: %s: %s\n", bulkup_error_kind_name(x->error), x->message);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_PROTOCOL);
  CU_ASSERT_EQUAL(x->attempts, 1); /* permanent: not retried */
  bulkup_report_free(rep);
}

/* ---- a source cut short while it is sent ------------------------------- */

typedef struct shrink_arg {
  const char *path;
  bk_ts *server;
  bool begun; /* the server saw the request begin before the truncate */
} shrink_arg;

/* Wait until the server has begun the request (read its headers: the
 * engine opened the file before it sent them), then truncate the file,
 * while the server stalls the body (after 64 KiB, for 2 s). A fixed sleep
 * instead could truncate before the engine opened the file on a slow
 * machine, and the 1000 bytes left would upload fine. */
static void *truncate_when_begun(void *arg) {
  shrink_arg *g = arg;
  double end = bk_now() + 30;
  for (;;) {
    bks_counters c;
    bks_server_counters(g->server, &c);
    if (c.requests[BKS_EP_OTHER] > 0) {
      g->begun = true;
      break;
    }
    if (bk_now() > end)
      break;
    usleep(2000);
  }
  truncate(g->path, 1000);
  return NULL;
}

static void test_file_truncated_during_upload(void) {
  bk_ts *ts;
  CU_ASSERT_FATAL(bk_ts_start(&ts, NULL) == 0);
  bk_ts_action stall = {.fault = BK_TS_STALL_BODY, .seconds = 2.0,
                        .after_bytes = 65536};
  bk_ts_script(ts, "/trunc", &stall, 1);
  char path[1100];
  snprintf(path, sizeof path, "%s/shrinks.bin", dir);
  size_t size = 8 << 20;
  unsigned char *data = malloc(size);
  bk_fill_random(data, size, 9);
  CU_ASSERT_FATAL(bk_write_file(path, data, size) == 0);
  free(data);
  shrink_arg g = {path, ts, false};
  pthread_t th;
  pthread_create(&th, NULL, truncate_when_begun, &g);
  bulkup_uploader_options o;
  fast(&o);
  o.requests.read_timeout = 10;
  o.requests.write_timeout = 10; /* well past the stall */
  bulkup_uploader *u;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);
  char *url = bk_ts_url(ts, "/trunc");
  bulkup_item it;
  bulkup_item_init(&it);
  it.path = path;
  it.url = url;
  bulkup_uploader_submit(u, &it, NULL);
  bulkup_report *rep;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_EUPLOAD);
  pthread_join(th, NULL);
  CU_ASSERT(g.begun);
  CU_ASSERT_EQUAL_FATAL(bulkup_report_failure_count(rep), 1);
  const bulkup_result *x = bulkup_report_failure(rep, 0);
  CU_ASSERT_EQUAL(x->error, BULKUP_ERROR_FILE_CHANGED);
  CU_ASSERT_EQUAL(x->attempts, 1);
  CU_ASSERT_EQUAL(bk_ts_object_sha256(ts, "/trunc", NULL), -1);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  free(url);
  bk_ts_stop(ts);
}

static void reg(void) {
  bk_suite("hostile", init, clean);
  bk_test("certificate for another name", test_certificate_for_another_name);
  bk_test("endless 200 body is a timeout", test_endless_success_body_is_a_timeout_not_a_success);
  bk_test("endless error body keeps 1 KiB", test_endless_error_body_keeps_1k);
  bk_test("huge response headers refused", test_huge_headers_refused);
  bk_test("garbage reply", test_garbage_reply_is_protocol_error);
  bk_test("file truncated during upload", test_file_truncated_during_upload);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
