/* Adaptive concurrency (src/engine/conc.c, options.workers =
 * BULKUP_WORKERS_AUTO).
 *
 * The controller's decisions on their own, driven by a simulated run
 * (a fake clock and a fake CPU reading): growth while the rate rises,
 * going back when it does not, pushback, the CPU bound, starved windows,
 * the bounds. Then the engine against the reference test server: through
 * bench/delay_proxy adding 100 ms of round trip it must grow beyond its
 * start and stay within workers_max; against a server answering 503 it
 * must shrink. Assertions are on concurrency levels and counts, never on
 * speed or time. */
#include "upload_common.h"
#include "engine/conc.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

/* ---- the controller, simulated ------------------------------------------ */

/* A simulated run: `target` transfers in flight (capped at `cap`, the
 * server's or network's limit), each item taking `lat` seconds: items end
 * every lat / min(target, cap) seconds. CPU: `cpu_per_s` CPU seconds per
 * second of the fake clock. */
static double sim_clock;
static double sim_cpu_per_s;
static double sim_cpu(void) { return sim_clock * sim_cpu_per_s; }

static void sim_run(bk_conc *c, int items, double lat, unsigned cap,
                    uint64_t in_flight_override) {
  for (int i = 0; i < items; i++) {
    unsigned t = bk_conc_target(c);
    unsigned eff = t < cap ? t : cap;
    sim_clock += lat / eff;
    uint64_t in_flight = in_flight_override ? in_flight_override : t - 1;
    bk_conc_item_done(c, sim_clock, (uint64_t)i * 1000, in_flight);
    CU_ASSERT(bk_conc_target(c) >= c->min && bk_conc_target(c) <= c->max);
  }
}

static void sim_init(bk_conc *c, unsigned min, unsigned max) {
  sim_clock = 100.0;
  sim_cpu_per_s = 0;
  bk_conc_init(c, true, min, 16, max, 1.0, sim_clock);
  c->cpu_now = sim_cpu;
}

static void test_sim_latency_bound_grows_to_max(void) {
  bk_conc c;
  sim_init(&c, 1, 256);
  CU_ASSERT_EQUAL(bk_conc_target(&c), 16);
  /* 80 ms per item, no other limit: every step pays in full. */
  sim_run(&c, 20000, 0.08, 100000, 0);
  CU_ASSERT_EQUAL(bk_conc_target(&c), 256);
  CU_ASSERT_EQUAL(c.hi, 256);
  CU_ASSERT_EQUAL(c.lo, 16);
  CU_ASSERT_EQUAL(c.shrinks, 0);
  /* 16 -> 64 -> 256: x4 while a step pays (nearly) in full. */
  CU_ASSERT_EQUAL(c.grows, 2);
}

static void test_sim_saturation_goes_back(void) {
  bk_conc c;
  sim_init(&c, 1, 256);
  /* The server takes 40 at once: beyond that the rate is flat. */
  sim_run(&c, 40000, 0.02, 40, 0);
  unsigned t = bk_conc_target(&c);
  /* It climbed (16, 64: x2.5, so x2 next, 128), saw 128 pay nothing over
   * 64, went back to 64 and stays there (probes above pay nothing). */
  CU_ASSERT_EQUAL(c.hi, 128);
  CU_ASSERT(c.shrinks >= 1);
  CU_ASSERT_EQUAL(t, 64);
  /* Flat from the start (the cap below the start): one step of x4, back
   * to the start. */
  bk_conc f;
  sim_init(&f, 1, 256);
  sim_run(&f, 40000, 0.0005, 8, 0);
  CU_ASSERT_EQUAL(f.hi, 64);
  CU_ASSERT_EQUAL(bk_conc_target(&f), 16);
}

static void test_sim_pushback_halves_once_per_round(void) {
  bk_conc c;
  sim_init(&c, 2, 256);
  CU_ASSERT_TRUE(bk_conc_pushback(&c, sim_clock, 0));
  CU_ASSERT_EQUAL(bk_conc_target(&c), 8);
  /* The transfers in flight before the cut fail too: no second cut until
   * as many attempts (16) have ended. */
  for (int i = 0; i < 15; i++)
    CU_ASSERT_FALSE(bk_conc_pushback(&c, sim_clock, 0));
  CU_ASSERT_EQUAL(bk_conc_target(&c), 8);
  CU_ASSERT_TRUE(bk_conc_pushback(&c, sim_clock, 0));
  CU_ASSERT_EQUAL(bk_conc_target(&c), 4);
  for (int i = 0; i < 100; i++)
    bk_conc_pushback(&c, sim_clock, 0);
  CU_ASSERT_EQUAL(bk_conc_target(&c), 2); /* the minimum */
  CU_ASSERT_EQUAL(c.lo, 2);
  CU_ASSERT_EQUAL(c.pushbacks, 117);
  /* Once the pushback stops, the rate rises with the target again: it
   * grows back by probes. */
  sim_run(&c, 20000, 0.08, 100000, 0);
  CU_ASSERT(bk_conc_target(&c) > 2);
}

static void test_sim_cpu_bound_stays(void) {
  bk_conc c;
  sim_init(&c, 1, 256);
  /* The client's CPU is the bound: one core busy, the rate flat. */
  sim_cpu_per_s = 1.0;
  sim_run(&c, 20000, 0.0005, 16, 0);
  CU_ASSERT_EQUAL(c.hi, 16);
  CU_ASSERT_EQUAL(bk_conc_target(&c), 16);
  /* Above the start, a CPU bound with a flat rate steps it back down,
   * to where the rate begins to fall. */
  bk_conc d;
  sim_init(&d, 1, 256);
  sim_run(&d, 20000, 0.08, 100000, 0); /* at 256 */
  CU_ASSERT_EQUAL(bk_conc_target(&d), 256);
  sim_cpu_per_s = 1.0;
  sim_run(&d, 200000, 0.08, 100, 0); /* flat above 100 */
  unsigned t = bk_conc_target(&d);
  CU_ASSERT(t < 256);
  CU_ASSERT(t >= 83 && t <= 163);
  /* While the rate still follows the target, a CPU bound does not take
   * it down (stepping down would lose rate). */
  bk_conc e;
  sim_init(&e, 1, 256);
  sim_run(&e, 20000, 0.08, 100000, 0);
  sim_cpu_per_s = 1.0;
  sim_run(&e, 200000, 0.08, 100000, 0);
  CU_ASSERT_EQUAL(bk_conc_target(&e), 256);
}

static void test_sim_starved_windows_decide_nothing(void) {
  bk_conc c;
  sim_init(&c, 1, 256);
  /* Only 3 items in flight: the input is the bound, not concurrency. */
  sim_run(&c, 5000, 0.08, 100000, 3);
  CU_ASSERT_EQUAL(bk_conc_target(&c), 16);
  CU_ASSERT_EQUAL(c.grows + c.shrinks, 0);
}

/* The early ramp: before any item has ended, ticks with every transfer in
 * flight and the CPU mostly idle grow the target at once. */
static void test_sim_early_ramp(void) {
  bk_conc c;
  sim_init(&c, 1, 256);
  CU_ASSERT_TRUE(bk_conc_early(&c));
  sim_cpu_per_s = 0.05; /* 5% of the core: waiting on the network */
  /* The first tick opens the window; a tick's worth later: x2 (at most,
   * however idle the CPU). */
  CU_ASSERT_FALSE(bk_conc_tick(&c, sim_clock, 16));
  sim_clock += BK_CONC_TICK / 2;
  CU_ASSERT_FALSE(bk_conc_tick(&c, sim_clock, 16)); /* too soon */
  sim_clock += BK_CONC_TICK * 0.6;
  CU_ASSERT_TRUE(bk_conc_tick(&c, sim_clock, 16));
  CU_ASSERT_EQUAL(bk_conc_target(&c), 32);
  /* Not all 32 in flight yet (the input, or the slots filling): nothing. */
  sim_clock += BK_CONC_TICK;
  CU_ASSERT_FALSE(bk_conc_tick(&c, sim_clock, 20));
  CU_ASSERT_FALSE(bk_conc_tick(&c, sim_clock, 32)); /* reopens */
  sim_clock += BK_CONC_TICK;
  CU_ASSERT_TRUE(bk_conc_tick(&c, sim_clock, 32));
  CU_ASSERT_EQUAL(bk_conc_target(&c), 64);
  for (unsigned want = 128; want <= 256; want *= 2) {
    sim_clock += BK_CONC_TICK;
    CU_ASSERT_TRUE(bk_conc_tick(&c, sim_clock, want / 2));
    CU_ASSERT_EQUAL(bk_conc_target(&c), want);
  }
  sim_clock += BK_CONC_TICK;
  CU_ASSERT_FALSE(bk_conc_tick(&c, sim_clock, 256)); /* the maximum */
  CU_ASSERT_EQUAL(c.grows, 4);
  CU_ASSERT_EQUAL(c.hi, 256);
  /* The first item to end closes the ramp for good. */
  bk_conc_item_done(&c, sim_clock, 0, 255);
  CU_ASSERT_FALSE(bk_conc_early(&c));
  bk_conc_init(&c, true, 1, 16, 256, 1.0, sim_clock);
  c.cpu_now = sim_cpu;
  bk_conc_item_done(&c, sim_clock, 0, 15);
  sim_clock += BK_CONC_TICK;
  CU_ASSERT_FALSE(bk_conc_tick(&c, sim_clock, 16));
  sim_clock += BK_CONC_TICK;
  CU_ASSERT_FALSE(bk_conc_tick(&c, sim_clock, 16));
  CU_ASSERT_EQUAL(bk_conc_target(&c), 16);

  /* Partly busy (30% of the core): 0.5 / 0.3, x1.67, 16 -> 27. */
  sim_init(&c, 1, 256);
  sim_cpu_per_s = 0.3;
  bk_conc_tick(&c, sim_clock, 16);
  sim_clock += BK_CONC_TICK;
  CU_ASSERT_TRUE(bk_conc_tick(&c, sim_clock, 16));
  CU_ASSERT_EQUAL(bk_conc_target(&c), 27);

  /* Busy (TLS handshakes, or a LAN): no growth, however long it waits. */
  sim_init(&c, 1, 256);
  sim_cpu_per_s = 0.6;
  for (int i = 0; i < 50; i++) {
    CU_ASSERT_FALSE(bk_conc_tick(&c, sim_clock, 16));
    sim_clock += BK_CONC_TICK;
  }
  CU_ASSERT_EQUAL(bk_conc_target(&c), 16);
  CU_ASSERT_EQUAL(c.grows, 0);

  /* Two cores: 60% of one is 30% of the two. */
  bk_conc_init(&c, true, 1, 16, 256, 2.0, sim_clock);
  c.cpu_now = sim_cpu;
  bk_conc_tick(&c, sim_clock, 16);
  sim_clock += BK_CONC_TICK;
  CU_ASSERT_TRUE(bk_conc_tick(&c, sim_clock, 16));
  CU_ASSERT_EQUAL(bk_conc_target(&c), 27);

  /* Starved throughout (3 items in flight): nothing. */
  sim_init(&c, 1, 256);
  sim_cpu_per_s = 0;
  for (int i = 0; i < 50; i++) {
    CU_ASSERT_FALSE(bk_conc_tick(&c, sim_clock, 3));
    sim_clock += BK_CONC_TICK;
  }
  CU_ASSERT_EQUAL(bk_conc_target(&c), 16);

  /* A pushback closes the ramp too. */
  sim_init(&c, 1, 256);
  bk_conc_pushback(&c, sim_clock, 0);
  CU_ASSERT_FALSE(bk_conc_early(&c));
  bk_conc_tick(&c, sim_clock, 8);
  sim_clock += BK_CONC_TICK;
  CU_ASSERT_FALSE(bk_conc_tick(&c, sim_clock, 8));
  CU_ASSERT_EQUAL(bk_conc_target(&c), 8);

  /* A fixed target has no ramp. */
  bk_conc_init(&c, false, 1, 16, 64, 1.0, sim_clock);
  CU_ASSERT_FALSE(bk_conc_early(&c));
  CU_ASSERT_FALSE(bk_conc_tick(&c, sim_clock + 1, 64));
}

/* A step up stays within the CPU's headroom: at half the core busy, the
 * first step is x1.8 (0.9 / 0.5), not x4. */
static void test_sim_cpu_headroom(void) {
  bk_conc c;
  sim_init(&c, 1, 256);
  sim_cpu_per_s = 0.5;
  while (c.grows == 0 && sim_clock < 1000)
    sim_run(&c, 1, 0.08, 100000, 0);
  CU_ASSERT_EQUAL(c.grows, 1);
  CU_ASSERT_EQUAL(bk_conc_target(&c), 28); /* 16 x 1.8 */
  /* Three quarters busy: x1.25 at least (0.9 / 0.75 is x1.2). */
  sim_init(&c, 1, 256);
  sim_cpu_per_s = 0.75;
  while (c.grows == 0 && sim_clock < 1000)
    sim_run(&c, 1, 0.08, 100000, 0);
  CU_ASSERT_EQUAL(bk_conc_target(&c), 20);
}

static void test_sim_fixed(void) {
  bk_conc c;
  bk_conc_init(&c, false, 1, 16, 24, 1.0, 0);
  CU_ASSERT_EQUAL(bk_conc_target(&c), 24);
  CU_ASSERT_FALSE(bk_conc_pushback(&c, 0, 0));
  sim_clock = 0;
  c.cpu_now = sim_cpu;
  sim_run(&c, 1000, 0.08, 100000, 0);
  CU_ASSERT_EQUAL(bk_conc_target(&c), 24);
  CU_ASSERT_EQUAL(c.lo, 24);
  CU_ASSERT_EQUAL(c.hi, 24);
  CU_ASSERT_EQUAL(c.pushbacks, 1);
}

static void test_sim_bounds(void) {
  bk_conc c;
  /* A maximum below the start: the start is the maximum. */
  bk_conc_init(&c, true, 1, 16, 8, 1.0, 0);
  CU_ASSERT_EQUAL(bk_conc_target(&c), 8);
  CU_ASSERT_EQUAL(c.start, 8);
  /* A minimum above the start (more threads than 16). */
  bk_conc_init(&c, true, 20, 16, 64, 1.0, 0);
  CU_ASSERT_EQUAL(bk_conc_target(&c), 20);
}

/* ---- the engine against a real server ----------------------------------- */

/* Start bench/delay_proxy in front of 127.0.0.1:port; its port, or 0. */
static pid_t proxy_pid;

static unsigned short start_delay_proxy(unsigned short port, int rtt_ms) {
  const char *bin_dir = getenv("BULKUP_TEST_BINARY_DIR");
  char bin[1024], up[64], rtt[16];
  snprintf(bin, sizeof bin, "%s/bench/delay_proxy", bin_dir ? bin_dir : ".");
  snprintf(up, sizeof up, "127.0.0.1:%u", port);
  snprintf(rtt, sizeof rtt, "%d", rtt_ms);
  int pfd[2];
  if (access(bin, X_OK) != 0 || pipe(pfd) != 0)
    return 0;
  pid_t pid = fork();
  if (pid < 0)
    return 0;
  if (pid == 0) {
    dup2(pfd[1], 1);
    close(pfd[0]);
    close(pfd[1]);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0)
      dup2(null, 2);
    execl(bin, bin, "--upstream", up, "--rtt", rtt, "--connect-rtt",
          (char *)NULL);
    _exit(127);
  }
  close(pfd[1]);
  proxy_pid = pid;
  char line[32] = {0};
  size_t got = 0;
  /* It prints its port, then closes stdout. */
  for (;;) {
    ssize_t n = read(pfd[0], line + got, sizeof line - 1 - got);
    if (n <= 0)
      break;
    got += (size_t)n;
    if (memchr(line, '\n', got))
      break;
  }
  close(pfd[0]);
  return (unsigned short)strtoul(line, NULL, 10);
}

static void stop_delay_proxy(void) {
  if (proxy_pid > 0) {
    kill(proxy_pid, SIGTERM);
    waitpid(proxy_pid, NULL, 0);
    proxy_pid = 0;
  }
}

#define N_ITEMS 1000
#define ITEM_SIZE 1024
static unsigned char item_data[ITEM_SIZE];

/* Upload N items of memory to base/a/<i>; returns the report. */
static bulkup_report *upload_many(const bulkup_uploader_options *o,
                                  const char *base, int n, bulkup_err *rc) {
  bulkup_uploader *u = NULL;
  CU_ASSERT_FATAL(bulkup_uploader_new(&u, o) == BULKUP_OK);
  char url[256];
  for (int i = 0; i < n; i++) {
    bulkup_item it;
    bulkup_item_init(&it);
    it.source = BULKUP_SOURCE_MEMORY;
    it.data = item_data;
    it.size = ITEM_SIZE;
    snprintf(url, sizeof url, "%s/a/%d", base, i);
    it.url = url;
    CU_ASSERT_EQUAL(bulkup_uploader_submit(u, &it, NULL), BULKUP_OK);
  }
  bulkup_report *rep = NULL;
  *rc = bulkup_uploader_finish(u, &rep);
  bulkup_uploader_free(u);
  return rep;
}

static void assert_all_stored(int n) {
  char want[65], got[65], path[64];
  bk_sha256_hex(item_data, ITEM_SIZE, want);
  int ok = 0;
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "/a/%d", i);
    if (bk_ts_object_sha256(ts, path, got) == ITEM_SIZE &&
        strcmp(got, want) == 0)
      ok++;
  }
  CU_ASSERT_EQUAL(ok, n);
}

static void test_grows_over_a_round_trip(void) {
  bk_ts_reset(ts);
  bk_fill_random(item_data, ITEM_SIZE, 15);
  unsigned short pport = start_delay_proxy(bk_ts_port(ts), 100);
  CU_ASSERT_FATAL(pport != 0);
  bulkup_uploader_options o;
  fast_options(&o);
  o.workers = BULKUP_WORKERS_AUTO;
  /* 16 in flight at 100 ms: 160 files/s; 32: 320. Rates this low keep
   * the measurement far from the CPU's limits on a loaded machine. */
  o.workers_max = 32;
  o.threads = 1;
  char base[64];
  snprintf(base, sizeof base, "http://127.0.0.1:%u", pport);
  bulkup_err rc;
  bulkup_report *rep = upload_many(&o, base, N_ITEMS, &rc);
  stop_delay_proxy();
  CU_ASSERT_EQUAL(rc, BULKUP_OK);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.succeeded, N_ITEMS);
  CU_ASSERT_EQUAL(s.retries, 0);
  bulkup_concurrency cc;
  bulkup_report_concurrency(rep, &cc);
  CU_ASSERT_TRUE(cc.adaptive);
  CU_ASSERT_EQUAL(cc.start, 16);
  CU_ASSERT_EQUAL(cc.limit, 32);
  CU_ASSERT_EQUAL(cc.threads, 1);
  /* The first step (x4, bounded to 32 here) is taken unmeasured; the
   * level is kept only when the window at 32 measured the rise over 16. */
  CU_ASSERT_EQUAL(cc.max, 32);
  CU_ASSERT_EQUAL(cc.final, 32);
  CU_ASSERT_EQUAL(cc.min, 16);
  CU_ASSERT(cc.min >= 1 && cc.min <= cc.final && cc.final <= cc.max);
  CU_ASSERT_EQUAL(cc.pushbacks, 0);
  /* Never more requests in flight than the target allowed: the server saw
   * at most workers_max connections (one per transfer, kept alive). */
  CU_ASSERT(bk_ts_connections(ts) <= 32);
  assert_all_stored(N_ITEMS);
  char *json = NULL;
  CU_ASSERT_EQUAL(bulkup_report_to_json(rep, false, &json), BULKUP_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"concurrency\":{\"adaptive\":true,"
                                      "\"start\":16,"));
  bulkup_free(json);
  bulkup_report_free(rep);
}

static void shrinks_on_503(unsigned threads) {
  bk_ts_reset(ts);
  bk_fill_random(item_data, ITEM_SIZE, 16);
  /* The first 40 requests, whatever their path, are answered 503. */
  bk_ts_action busy[40];
  for (int i = 0; i < 40; i++)
    busy[i] = (bk_ts_action){.fault = BK_TS_STATUS, .status = 503};
  bk_ts_script(ts, NULL, busy, 40);
  bulkup_uploader_options o;
  fast_options(&o);
  o.workers = BULKUP_WORKERS_AUTO;
  o.workers_max = 64;
  o.threads = threads;
  o.requests.max_retries = 20;
  char *base = bk_ts_url(ts, NULL);
  bulkup_err rc;
  bulkup_report *rep = upload_many(&o, base, 200, &rc);
  free(base);
  CU_ASSERT_EQUAL(rc, BULKUP_OK);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  CU_ASSERT_EQUAL(s.succeeded, 200);
  CU_ASSERT_EQUAL(s.retries, 40);
  bulkup_concurrency cc;
  bulkup_report_concurrency(rep, &cc);
  CU_ASSERT_TRUE(cc.adaptive);
  CU_ASSERT_EQUAL(cc.pushbacks, 40);
  /* The first 503 halves it at once. */
  CU_ASSERT(cc.shrinks >= 1);
  CU_ASSERT(cc.min <= 8);
  CU_ASSERT(cc.min >= threads); /* at least one transfer per thread */
  CU_ASSERT_EQUAL(cc.threads, threads);
  CU_ASSERT(cc.max <= 64);
  CU_ASSERT(cc.final >= cc.min && cc.final <= cc.max);
  assert_all_stored(200);
  bulkup_report_free(rep);
}

static void test_shrinks_on_503(void) { shrinks_on_503(1); }
/* Two event-loop threads share the target (each fills its share). */
static void test_shrinks_on_503_two_threads(void) { shrinks_on_503(2); }

static void test_fixed_workers_do_not_move(void) {
  bk_ts_reset(ts);
  bk_fill_random(item_data, ITEM_SIZE, 17);
  bk_ts_action busy[10];
  for (int i = 0; i < 10; i++)
    busy[i] = (bk_ts_action){.fault = BK_TS_STATUS, .status = 503};
  bk_ts_script(ts, NULL, busy, 10);
  bulkup_uploader_options o;
  fast_options(&o);
  o.workers = 6;
  o.threads = 1;
  o.requests.max_retries = 20;
  char *base = bk_ts_url(ts, NULL);
  bulkup_err rc;
  bulkup_report *rep = upload_many(&o, base, 100, &rc);
  free(base);
  CU_ASSERT_EQUAL(rc, BULKUP_OK);
  bulkup_concurrency cc;
  bulkup_report_concurrency(rep, &cc);
  CU_ASSERT_FALSE(cc.adaptive);
  CU_ASSERT_EQUAL(cc.start, 6);
  CU_ASSERT_EQUAL(cc.min, 6);
  CU_ASSERT_EQUAL(cc.max, 6);
  CU_ASSERT_EQUAL(cc.final, 6);
  CU_ASSERT_EQUAL(cc.limit, 6);
  CU_ASSERT_EQUAL(cc.pushbacks, 10);
  CU_ASSERT_EQUAL(cc.grows + cc.shrinks, 0);
  assert_all_stored(100);
  bulkup_report_free(rep);
}

static void test_options(void) {
  bulkup_uploader_options o;
  bulkup_uploader_options_init(&o);
  CU_ASSERT_EQUAL(o.workers, BULKUP_WORKERS_AUTO);
  CU_ASSERT_EQUAL(o.workers_max, BULKUP_DEFAULT_WORKERS_MAX);
  CU_ASSERT_EQUAL(o.threads, BULKUP_THREADS_AUTO);
  CU_ASSERT_EQUAL(o.http_version, BULKUP_HTTP_DEFAULT);
  bulkup_uploader *u = NULL;
  o.workers_max = 0;
  CU_ASSERT_EQUAL(bulkup_uploader_new(&u, &o), BULKUP_EINVAL);
  o.workers_max = 1025;
  CU_ASSERT_EQUAL(bulkup_uploader_new(&u, &o), BULKUP_EINVAL);
  o.workers_max = 4;
  o.http_version = (bulkup_http_version)3;
  CU_ASSERT_EQUAL(bulkup_uploader_new(&u, &o), BULKUP_EINVAL);
  o.http_version = BULKUP_HTTP_2;
  o.threads = 2;
  CU_ASSERT_EQUAL_FATAL(bulkup_uploader_new(&u, &o), BULKUP_OK);
  bulkup_progress p;
  bulkup_uploader_progress(u, &p);
  CU_ASSERT_EQUAL(p.concurrency, 4); /* start 16, bounded by the max */
  bulkup_report *rep = NULL;
  CU_ASSERT_EQUAL(bulkup_uploader_finish(u, &rep), BULKUP_OK);
  bulkup_concurrency cc;
  bulkup_report_concurrency(rep, &cc);
  CU_ASSERT_EQUAL(cc.threads, 2);
  CU_ASSERT_EQUAL(cc.limit, 4);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  /* A report not from an uploader: zeros. */
  bulkup_report_concurrency(NULL, &cc);
  CU_ASSERT_EQUAL(cc.limit, 0);
}

static void reg(void) {
  bk_suite("controller", NULL, NULL);
  bk_test("latency-bound: grows to the maximum",
          test_sim_latency_bound_grows_to_max);
  bk_test("saturation: goes back", test_sim_saturation_goes_back);
  bk_test("pushback halves once per round",
          test_sim_pushback_halves_once_per_round);
  bk_test("CPU-bound: no growth", test_sim_cpu_bound_stays);
  bk_test("starved windows decide nothing",
          test_sim_starved_windows_decide_nothing);
  bk_test("early ramp: before any item ends", test_sim_early_ramp);
  bk_test("steps within the CPU's headroom", test_sim_cpu_headroom);
  bk_test("fixed", test_sim_fixed);
  bk_test("bounds", test_sim_bounds);
  bk_suite("engine", suite_init, suite_clean);
  bk_test("options", test_options);
  bk_test("grows over a 100 ms round trip", test_grows_over_a_round_trip);
  bk_test("shrinks on 503", test_shrinks_on_503);
  bk_test("shrinks on 503, two threads", test_shrinks_on_503_two_threads);
  bk_test("fixed workers do not move", test_fixed_workers_do_not_move);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
