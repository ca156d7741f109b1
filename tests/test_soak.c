/* The soak: many uploads through the fault-injecting proxy (bk_proxy.h) to
 * the in-process test server, with faults drawn at random (seeded) for
 * about one request/response exchange in seven, and checks that nothing is
 * lost, counted twice or corrupted:
 *   - the completion callback sees every index exactly once, with the
 *     item's own user pointer and size;
 *   - succeeded + failed + cancelled == submitted, nothing cancelled;
 *   - every failure is in the report, with a kind a network fault can
 *     cause (send, recv, timeout_read, timeout_write) after all retries;
 *   - summary retries == sum over items of (attempts - 1);
 *   - every stored object is byte-identical to its source (SHA-256), and
 *     every succeeded item is stored.
 *
 * Environment: BULKUP_SOAK_N items (default 1000), BULKUP_SOAK_SEED (the
 * proxy's seed, default 20240601), BULKUP_SOAK_P (fault probability per
 * exchange, default 0.15), BULKUP_SOAK_KINDS (a mask of
 * BK_PROXY_BIT(kind), default all), BULKUP_SOAK_PER_CONNECTION=1 (draw
 * faults per TCP connection instead of per exchange). A long soak: BULKUP_SOAK_N=10000
 * build/tests/test_soak. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bk_proxy.h"
#include "bk_test.h"
#include "bk_ts.h"
#include "internal.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_ATTEMPTS = 6 }; /* max_retries 5 */

typedef struct soak_item {
  size_t size;
  char sha[65];
  unsigned char *data; /* freed by the completion callback */
  atomic_int seen;
  int status;
  int kind;
  int attempts;
  int http_status;
} soak_item;

typedef struct soak {
  size_t n;
  soak_item *items;
  atomic_ullong attempts_minus_one;
  atomic_ullong bad_index;
  atomic_ullong bad_user;
  atomic_ullong bad_size;
} soak;

static bk_ts *ts;

static int suite_init(void) { return bk_ts_start(&ts, NULL); }

static int suite_clean(void) {
  bk_ts_stop(ts);
  return 0;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static unsigned long long env_ull(const char *name, unsigned long long def) {
  const char *v = getenv(name);
  if (!v || !*v)
    return def;
  char *end;
  unsigned long long x = strtoull(v, &end, 10);
  return *end ? def : x;
}

static double env_double(const char *name, double def) {
  const char *v = getenv(name);
  if (!v || !*v)
    return def;
  char *end;
  double x = strtod(v, &end);
  return *end ? def : x;
}

static uint64_t mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Item i's size: one in 250 is 2 MiB; the rest log-uniform in
 * 1 B .. 256 KiB (median about 512 B, mean about 21 KiB). */
static size_t item_size(size_t i) {
  if (i % 250 == 125)
    return 2u << 20;
  double u = (double)(mix(i * 7919 + 1) >> 11) * (1.0 / 9007199254740992.0);
  size_t s = (size_t)exp(u * log(262144.0));
  if (s < 1)
    s = 1;
  if (s > 262144)
    s = 262144;
  return s;
}

static void item_path(size_t i, char *buf, size_t cap) {
  snprintf(buf, cap, "/soak/%06zu.bin", i);
}

static void on_complete(void *ud, const bulkup_result *r) {
  soak *s = ud;
  if (r->index >= s->n) {
    atomic_fetch_add(&s->bad_index, 1);
    return;
  }
  soak_item *it = &s->items[r->index];
  if (r->user != it)
    atomic_fetch_add(&s->bad_user, 1);
  if (r->size != it->size)
    atomic_fetch_add(&s->bad_size, 1);
  if (atomic_fetch_add(&it->seen, 1) != 0)
    return; /* counted twice: the data is already freed */
  it->status = (int)r->status;
  it->kind = (int)r->error;
  it->attempts = r->attempts;
  it->http_status = r->http_status;
  if (r->attempts > 0)
    atomic_fetch_add(&s->attempts_minus_one, (unsigned long long)(r->attempts - 1));
  /* The data must stay valid until this callback returns; nothing reads
   * it afterwards. */
  free(it->data);
  it->data = NULL;
}

static int kind_from_network_fault(int kind) {
  return kind == BULKUP_ERROR_SEND || kind == BULKUP_ERROR_RECV ||
         kind == BULKUP_ERROR_TIMEOUT_READ || kind == BULKUP_ERROR_TIMEOUT_WRITE;
}

static void test_soak(void) {
  size_t n = (size_t)env_ull("BULKUP_SOAK_N", 1000);
  uint64_t seed = env_ull("BULKUP_SOAK_SEED", 20240601);
  double prob = env_double("BULKUP_SOAK_P", 0.15);
  unsigned int kinds = (unsigned int)env_ull("BULKUP_SOAK_KINDS", BK_PROXY_ALL_KINDS);
  bk_ts_reset(ts);

  bk_proxy_options po = {
      .per_exchange = env_ull("BULKUP_SOAK_PER_CONNECTION", 0) ? 0 : 1};
  bk_proxy *px = NULL;
  CU_ASSERT_FATAL(bk_proxy_start(&px, "127.0.0.1", bk_ts_port(ts), &po) == 0);
  bk_proxy_set_random(px, prob, seed, kinds);

  soak s;
  memset(&s, 0, sizeof s);
  s.n = n;
  s.items = calloc(n ? n : 1, sizeof *s.items);
  CU_ASSERT_FATAL(s.items != NULL);
  for (size_t i = 0; i < n; i++)
    atomic_init(&s.items[i].seen, 0);
  atomic_init(&s.attempts_minus_one, 0);
  atomic_init(&s.bad_index, 0);
  atomic_init(&s.bad_user, 0);
  atomic_init(&s.bad_size, 0);

  bulkup_uploader_options o;
  bulkup_uploader_options_init(&o);
  bk_test_threads(&o);
  o.workers = 8;
  o.requests.connect_timeout = 2;
  o.requests.write_timeout = 2;
  o.requests.read_timeout = 2;
  o.requests.max_retries = MAX_ATTEMPTS - 1;
  o.requests.connection_retries = MAX_ATTEMPTS - 1;
  o.requests.backoff_factor = 0.01;
  o.retry_budget = true;
  o.retry_budget_tokens = 1000000;
  o.on_complete = on_complete;
  o.userdata = &s;
  bulkup_uploader *u = NULL;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, &o) == BULKUP_OK);

  double t0 = now_s();
  uint64_t bytes = 0;
  for (size_t i = 0; i < n; i++) {
    soak_item *it = &s.items[i];
    it->size = item_size(i);
    it->data = malloc(it->size);
    CU_ASSERT_FATAL(it->data != NULL);
    bk_fill_random(it->data, it->size, 0x50a50000ULL + i);
    bk_sha256_hex(it->data, it->size, it->sha);
    bytes += it->size;
    char path[64];
    item_path(i, path, sizeof path);
    char *url = bk_proxy_url(px, path);
    bulkup_item bi;
    bulkup_item_init(&bi);
    bi.source = BULKUP_SOURCE_MEMORY;
    bi.data = it->data;
    bi.size = it->size;
    bi.url = url;
    bi.data_type = BULKUP_DATA_TYPE_PLAIN_TEXT;
    bi.user = it;
    uint64_t idx = UINT64_MAX;
    bulkup_err rc = bulkup_uploader_submit(u, &bi, &idx);
    free(url);
    CU_ASSERT_EQUAL_FATAL(rc, BULKUP_OK);
    CU_ASSERT_EQUAL(idx, (uint64_t)i);
  }
  bulkup_report *rep = NULL;
  bulkup_err frc = bulkup_uploader_finish(u, &rep);
  double wall = now_s() - t0;
  CU_ASSERT_PTR_NOT_NULL_FATAL(rep);

  bulkup_summary sum;
  bulkup_report_summary(rep, &sum);
  CU_ASSERT(frc == BULKUP_OK || (frc == BULKUP_EUPLOAD && sum.failed > 0));
  CU_ASSERT_EQUAL(sum.submitted, n);
  CU_ASSERT_EQUAL(sum.succeeded + sum.failed + sum.cancelled, sum.submitted);
  CU_ASSERT_EQUAL(sum.cancelled, 0);
  CU_ASSERT_EQUAL(bulkup_report_cancelled_count(rep), 0);
  CU_ASSERT_EQUAL(bulkup_report_failure_count(rep), sum.failed);
  CU_ASSERT_EQUAL(atomic_load(&s.bad_index), 0);
  CU_ASSERT_EQUAL(atomic_load(&s.bad_user), 0);
  CU_ASSERT_EQUAL(atomic_load(&s.bad_size), 0);
  CU_ASSERT_EQUAL(sum.retries, atomic_load(&s.attempts_minus_one));

  /* every index exactly once; outcomes agree with the summary */
  size_t seen_once = 0, seen_twice = 0, unseen = 0, ok = 0, failed = 0;
  size_t fail_kinds[BULKUP__ERROR_KIND_COUNT] = {0};
  size_t attempts_hist[MAX_ATTEMPTS + 2] = {0};
  for (size_t i = 0; i < n; i++) {
    soak_item *it = &s.items[i];
    int c = atomic_load(&it->seen);
    if (c == 1)
      seen_once++;
    else if (c == 0)
      unseen++;
    else
      seen_twice++;
    if (c != 1)
      continue;
    attempts_hist[it->attempts > MAX_ATTEMPTS ? MAX_ATTEMPTS + 1 : it->attempts]++;
    if (it->status == BULKUP_ITEM_SUCCEEDED) {
      ok++;
      CU_ASSERT_EQUAL(it->kind, BULKUP_ERROR_NONE);
      CU_ASSERT(it->attempts >= 1 && it->attempts <= MAX_ATTEMPTS);
    } else {
      failed++;
      fail_kinds[it->kind < BULKUP__ERROR_KIND_COUNT ? it->kind : 0]++;
      if (!kind_from_network_fault(it->kind) || it->attempts != MAX_ATTEMPTS)
        printf("\n    item %zu: %s after %d attempt(s), HTTP %d", i,
               bulkup_error_kind_name((bulkup_error_kind)it->kind),
               it->attempts, it->http_status);
      CU_ASSERT(kind_from_network_fault(it->kind));
      CU_ASSERT_EQUAL(it->attempts, MAX_ATTEMPTS);
    }
  }
  CU_ASSERT_EQUAL(seen_once, n);
  CU_ASSERT_EQUAL(unseen, 0);
  CU_ASSERT_EQUAL(seen_twice, 0);
  CU_ASSERT_EQUAL(ok, sum.succeeded);
  CU_ASSERT_EQUAL(failed, sum.failed);

  /* the report's failures are exactly the failed items */
  for (size_t k = 0; k < bulkup_report_failure_count(rep); k++) {
    const bulkup_result *r = bulkup_report_failure(rep, k);
    CU_ASSERT_EQUAL(r->status, BULKUP_ITEM_FAILED);
    CU_ASSERT_FATAL(r->index < n);
    soak_item *it = &s.items[r->index];
    CU_ASSERT_EQUAL(it->status, BULKUP_ITEM_FAILED);
    CU_ASSERT_EQUAL((int)r->error, it->kind);
    CU_ASSERT_EQUAL(r->attempts, it->attempts);
    if (k > 0)
      CU_ASSERT(bulkup_report_failure(rep, k - 1)->index < r->index);
  }

  /* every stored object is identical to its source; every success is
   * stored */
  size_t verified = 0, mismatched = 0, missing = 0, stored_failed = 0;
  for (size_t i = 0; i < n; i++) {
    soak_item *it = &s.items[i];
    char path[64], got[65] = "";
    item_path(i, path, sizeof path);
    long long len = bk_ts_object_sha256(ts, path, got);
    if (len < 0) {
      if (it->status == BULKUP_ITEM_SUCCEEDED)
        missing++;
      continue;
    }
    if ((size_t)len == it->size && strcmp(got, it->sha) == 0)
      verified++;
    else {
      mismatched++;
      printf("\n    item %zu: stored %lld bytes, sha %.16s, want %zu, %.16s",
             i, len, got, it->size, it->sha);
    }
    if (it->status != BULKUP_ITEM_SUCCEEDED)
      stored_failed++;
  }
  CU_ASSERT_EQUAL(mismatched, 0);
  CU_ASSERT_EQUAL(missing, 0);
  CU_ASSERT(verified >= sum.succeeded);

  /* the faults (the workers' kept-alive connections close with the
   * uploader) */
  bulkup_uploader_free(u);
  u = NULL;
  CU_ASSERT_EQUAL(bk_proxy_wait_idle(px, 10), 0);
  bk_proxy_stats st;
  bk_proxy_stats_get(px, &st);
  unsigned long long fired = 0;
  for (int k = 1; k < BK_PROXY_KIND_COUNT; k++)
    fired += st.fired[k];

  printf("\n    soak: %zu uploads (%.1f MiB) in %.2f s, seed %llu, p %.3f"
         "\n    finish: %s; succeeded %llu, failed %llu, cancelled %llu,"
         " retries %llu (sum of attempts-1 %llu)",
         n, (double)bytes / 1048576.0, wall, (unsigned long long)seed, prob,
         bulkup_strerror(frc), (unsigned long long)sum.succeeded,
         (unsigned long long)sum.failed, (unsigned long long)sum.cancelled,
         (unsigned long long)sum.retries,
         (unsigned long long)atomic_load(&s.attempts_minus_one));
  printf("\n    attempts per item:");
  for (int a = 1; a <= MAX_ATTEMPTS; a++)
    printf(" %d:%zu", a, attempts_hist[a]);
  printf("\n    failures by kind:");
  for (int k = 0; k < BULKUP__ERROR_KIND_COUNT; k++)
    if (fail_kinds[k])
      printf(" %s:%zu", bulkup_error_kind_name((bulkup_error_kind)k), fail_kinds[k]);
  const char *per = po.per_exchange ? "exchanges" : "connections";
  printf("\n    proxy: %llu connections, %llu %s, %llu faults fired"
         " (%.1f%% of %s), %.1f MiB up, %.1f MiB down",
         st.accepted, st.periods, per, fired,
         st.periods ? 100.0 * (double)fired / (double)st.periods : 0.0, per,
         (double)st.bytes_c2s / 1048576.0, (double)st.bytes_s2c / 1048576.0);
  printf("\n    faults fired/assigned by kind:");
  for (int k = 1; k < BK_PROXY_KIND_COUNT; k++)
    printf(" %s %llu/%llu", bk_proxy_kind_name((bk_proxy_kind)k), st.fired[k],
           st.assigned[k]);
  printf("\n    server: %zu requests recorded; objects verified %zu"
         " (of which %zu from failed items), mismatched %zu, missing %zu\n",
         bk_ts_request_count(ts), verified, stored_failed, mismatched, missing);

  /* faults must really have happened: at least ~10% of exchanges, and
   * they must have cost retries */
  if (n >= 200 && prob >= 0.1 && po.per_exchange) {
    CU_ASSERT(st.periods >= n);
    CU_ASSERT((double)fired >= 0.08 * (double)st.periods);
    CU_ASSERT(sum.retries > 0);
    for (int k = 1; k < BK_PROXY_KIND_COUNT; k++)
      if (kinds & BK_PROXY_BIT(k))
        CU_ASSERT(st.fired[k] > 0);
  }

  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  bk_proxy_stop(px);
  for (size_t i = 0; i < n; i++)
    free(s.items[i].data);
  free(s.items);
  bk_ts_reset(ts);
}

static void reg(void) {
  bk_suite("soak", suite_init, suite_clean);
  bk_test("uploads through random faults", test_soak);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
