/*
 * mp_upload - upload files through the library with a chosen storage kind
 * (the CLI picks S3 only for s3:// destinations), for the multipart tests:
 *
 *   mp_upload [--storage auto|http|s3|azure] [--threshold N] [--part-size N]
 *             [--workers N] [--threads N] [--journal FILE] [--max-retries N]
 *             [--md5 0|1] [--sign-check 0|1] [--cancel-after-ms N]
 *             FILE URL [FILE URL ...]
 *
 * Prints one line per item: "item I STATUS attempts=A requests=R
 * bytes_sent=B size=S message=M", then "SUCCEEDED=n FAILED=n", and exits 0
 * when every item succeeded, 1 otherwise, 2 on a usage error. With
 * --journal, an item's key is its URL's path and query (a rerun through
 * another port finds it), and items the journal holds are skipped.
 */
#include <bulkup.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

static void on_complete(void *ud, const bulkup_result *r) {
  (void)ud;
  printf("item %llu %s attempts=%d requests=%d bytes_sent=%llu size=%llu "
         "message=%s\n",
         (unsigned long long)r->index, bulkup_item_status_name(r->status),
         r->attempts, r->requests, (unsigned long long)r->bytes_sent,
         (unsigned long long)r->size, r->message ? r->message : "");
  fflush(stdout);
}

/* --sign-check: a signer that signs nothing but says what it was given,
 * in a header the proxy (mp_proxy.py --check-signed) compares with the
 * request it receives: method, body length, the body's SHA-256, and the
 * request's kind (bulkup_request.kind, as a number). */
static bulkup_err sign_check(void *ud, bulkup_request *req) {
  (void)ud;
  char line[256];
  snprintf(line, sizeof line, "x-bk-signed: %s %llu %s %d", req->method,
           (unsigned long long)req->body_len,
           req->payload_sha256 ? req->payload_sha256 : "-", (int)req->kind);
  return bulkup_request_add_header(req, line);
}

/* --cancel-after-ms: cancel the run from another thread. */
static bulkup_uploader *g_u;
static unsigned g_cancel_ms;
static void *canceller(void *arg) {
  (void)arg;
  struct timespec ts = {g_cancel_ms / 1000, (long)(g_cancel_ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
  bulkup_uploader_cancel(g_u);
  return NULL;
}

int main(int argc, char **argv) {
  bulkup_uploader_options opt;
  bulkup_uploader_options_init(&opt);
  opt.on_complete = on_complete;
  opt.requests.backoff_factor = 0.05;
  bulkup_storage storage = BULKUP_STORAGE_AUTO;
  const char *journal_path = NULL;
  int i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
    if (i + 1 >= argc)
      return 2;
    const char *v = argv[i + 1];
    if (!strcmp(argv[i], "--storage"))
      storage = !strcmp(v, "s3")      ? BULKUP_STORAGE_S3
                : !strcmp(v, "azure") ? BULKUP_STORAGE_AZURE
                : !strcmp(v, "http")  ? BULKUP_STORAGE_HTTP
                                      : BULKUP_STORAGE_AUTO;
    else if (!strcmp(argv[i], "--threshold"))
      opt.multipart_threshold = strtoull(v, NULL, 10);
    else if (!strcmp(argv[i], "--part-size"))
      opt.part_size = strtoull(v, NULL, 10);
    else if (!strcmp(argv[i], "--workers"))
      opt.workers = (unsigned)atoi(v);
    else if (!strcmp(argv[i], "--threads"))
      opt.threads = (unsigned)atoi(v);
    else if (!strcmp(argv[i], "--max-retries"))
      opt.requests.max_retries = atoi(v);
    else if (!strcmp(argv[i], "--sign-check")) {
      if (atoi(v)) {
        opt.sign_request = sign_check;
        opt.sign_payload = true;
      }
    } else if (!strcmp(argv[i], "--cancel-after-ms"))
      g_cancel_ms = (unsigned)atoi(v);
    else if (!strcmp(argv[i], "--md5"))
      opt.content_md5 = atoi(v) != 0;
    else if (!strcmp(argv[i], "--journal"))
      journal_path = v;
    else
      return 2;
  }
  if (i >= argc || (argc - i) % 2 != 0)
    return 2;
  bulkup_journal *jr = NULL;
  if (journal_path) {
    if (bulkup_journal_open(&jr, journal_path, NULL) != BULKUP_OK) {
      fprintf(stderr, "journal: %s\n", bulkup_last_error_message());
      return 2;
    }
    opt.journal = jr;
  }
  bulkup_uploader *u;
  if (bulkup_uploader_new(&u, &opt) != BULKUP_OK) {
    fprintf(stderr, "new: %s\n", bulkup_last_error_message());
    return 2;
  }
  g_u = u;
  pthread_t ct;
  bool cancelling = g_cancel_ms > 0 && pthread_create(&ct, NULL, canceller, NULL) == 0;
  for (; i < argc; i += 2) {
    bulkup_item it;
    bulkup_item_init(&it);
    it.path = argv[i];
    it.url = argv[i + 1];
    it.storage = storage;
    /* The journal key: the URL without scheme and host, so that a rerun
     * through another proxy port finds it. */
    const char *k = strstr(it.url, "://");
    k = k ? strchr(k + 3, '/') : NULL;
    it.journal_key = k ? k : it.url;
    it.cache_control = "";
    it.content_type = "application/octet-stream";
    struct stat st;
    if (jr && stat(it.path, &st) == 0 &&
        bulkup_journal_contains(jr, it.journal_key, (uint64_t)st.st_size,
                                (int64_t)st.st_mtim.tv_sec * 1000000000LL +
                                    st.st_mtim.tv_nsec))
      continue;
    bulkup_uploader_submit(u, &it, NULL);
  }
  bulkup_report *rep = NULL;
  bulkup_err rc = bulkup_uploader_finish(u, &rep);
  if (cancelling)
    pthread_join(ct, NULL);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  printf("SUCCEEDED=%llu FAILED=%llu CANCELLED=%llu\n",
         (unsigned long long)s.succeeded, (unsigned long long)s.failed,
         (unsigned long long)s.cancelled);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  bulkup_journal_close(jr);
  return rc == BULKUP_OK ? 0 : 1;
}
