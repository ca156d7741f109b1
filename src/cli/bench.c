/*
 * bench.c - `bulkup bench`: PUT N generated objects to a URL prefix, from
 * memory (no disk involved), and report files/s, MB/s, per-request latency
 * percentiles and errors by kind: for benchmarking any PUT endpoint, the
 * job MinIO's warp or s3-benchmark do for S3.
 *
 * Objects are slices of one random buffer (seeded), so memory is the
 * largest object plus a little, whatever N is; latencies are kept (8 bytes
 * per object) for the percentiles.
 */
#include "cli.h"
#include "numparse.h"

#include <bulkup.h>

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char bench_help[] =
    "Usage: bulkup bench --to URL_PREFIX [OPTION]...\n"
    "\n"
    "PUT N generated objects to URL_PREFIX/bench-RUN/I (from memory, no\n"
    "disk involved) and report files/s, MB/s, per-request latency\n"
    "percentiles (p50, p90, p99, max) and errors by kind.\n"
    "\n"
    "Options:\n"
    "  --to URL_PREFIX         where to PUT (http:// or https://)\n"
    "  -n, --count N           objects to PUT (default 1000)\n"
    "  --size SIZE             every object SIZE bytes (default 16K);\n"
    "                          SIZE takes K, M, G (powers of 1024)\n"
    "  --sizes MIN-MAX         sizes log-uniform between MIN and MAX\n"
    "                          instead (e.g. 1K-8M)\n"
    "  --workers N             concurrent uploads (default 16)\n"
    "  --threads N             threads driving them, 0..1024 (0: one per\n"
    "                          upload; default 1)\n"
    "  --seed N                seed of the data and the sizes (default 1)\n"
    "  --max-retries N         retries after a transient failure (default 3)\n"
    "  --connect-timeout S, --read-timeout S, --write-timeout S\n"
    "                          as for upload (default 180)\n"
    "  --content-type CT       Content-Type (default\n"
    "                          application/octet-stream)\n"
    "  --resumable-threshold SIZE, --chunk-size SIZE\n"
    "                          as for upload: objects of SIZE or more go as\n"
    "                          resumable uploads (default 64M; 'never')\n"
    "                          in chunks of SIZE (default 32M)\n"
    "  --cacert FILE           trust the CA certificates in FILE\n"
    "  --insecure              do not verify the server's certificate\n"
    "  --json                  print the results as one JSON object\n"
    "  -h, --help              show this help\n"
    "\n"
    "Exit status: 0 every PUT succeeded, 1 some failed, 2 bad usage.\n"
    "\n"
    "Example:\n"
    "  bulkup bench --to http://127.0.0.1:8080/bucket -n 20000 --size 16K\n";

void cli_bench_help(void *out) { fputs(bench_help, (FILE *)out); }

enum {
  OPT_TO = 256,
  OPT_SIZE,
  OPT_SIZES,
  OPT_WORKERS,
  OPT_THREADS,
  OPT_SEED,
  OPT_MAX_RETRIES,
  OPT_CONNECT_TIMEOUT,
  OPT_READ_TIMEOUT,
  OPT_WRITE_TIMEOUT,
  OPT_CONTENT_TYPE,
  OPT_CACERT,
  OPT_INSECURE,
  OPT_JSON,
  OPT_RESUMABLE_THRESHOLD,
  OPT_CHUNK_SIZE
};

static const struct option bench_options[] = {
    {"to", required_argument, NULL, OPT_TO},
    {"count", required_argument, NULL, 'n'},
    {"size", required_argument, NULL, OPT_SIZE},
    {"sizes", required_argument, NULL, OPT_SIZES},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"seed", required_argument, NULL, OPT_SEED},
    {"max-retries", required_argument, NULL, OPT_MAX_RETRIES},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"read-timeout", required_argument, NULL, OPT_READ_TIMEOUT},
    {"write-timeout", required_argument, NULL, OPT_WRITE_TIMEOUT},
    {"content-type", required_argument, NULL, OPT_CONTENT_TYPE},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"json", no_argument, NULL, OPT_JSON},
    {"resumable-threshold", required_argument, NULL, OPT_RESUMABLE_THRESHOLD},
    {"chunk-size", required_argument, NULL, OPT_CHUNK_SIZE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

/* "16K", "1M", "3G", "100": bytes (K/M/G are powers of 1024). */
static int parse_size(const char *s, unsigned long long *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *s == '-')
    return -1;
  unsigned long long mul = 1;
  if (*end == 'K' || *end == 'k')
    mul = 1ULL << 10, end++;
  else if (*end == 'M' || *end == 'm')
    mul = 1ULL << 20, end++;
  else if (*end == 'G' || *end == 'g')
    mul = 1ULL << 30, end++;
  if (*end == 'i' && mul > 1)
    end++;
  if ((*end == 'B' || *end == 'b') && mul > 1)
    end++;
  if (*end || v > (1ULL << 40) / mul)
    return -1;
  *out = v * mul;
  return 0;
}

/* splitmix64: deterministic data and sizes from the seed. */
static unsigned long long mix(unsigned long long *x) {
  unsigned long long z = (*x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

typedef struct bench_state {
  pthread_mutex_t lock;
  double *latency; /* per item, seconds; index = item index */
  unsigned long long errors[64];
} bench_state;

static void on_done(void *ud, const bulkup_result *r) {
  bench_state *b = ud;
  pthread_mutex_lock(&b->lock);
  b->latency[r->index] = r->elapsed_s;
  if (r->status != BULKUP_ITEM_SUCCEEDED && (unsigned)r->error < 64)
    b->errors[r->error]++;
  pthread_mutex_unlock(&b->lock);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double percentile(const double *sorted, size_t n, double p) {
  if (n == 0)
    return 0;
  size_t i = (size_t)ceil(p * (double)n);
  if (i > 0)
    i--;
  return sorted[i < n ? i : n - 1];
}

int cli_bench_main(int argc, char **argv) {
  const char *to = NULL, *content_type = "application/octet-stream";
  long count = 1000, seed = 1;
  unsigned long long size_min = 16384, size_max = 16384;
  bool json = false;
  bulkup_uploader_options opt;
  bulkup_uploader_options_init(&opt);
  /* A fixed number, as documented: a measurement wants one setting. */
  opt.workers = BULKUP_DEFAULT_WORKERS;
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "n:h", bench_options, NULL)) != -1) {
    long l;
    double d;
    switch (c) {
    case OPT_TO:
      to = optarg;
      break;
    case 'n':
      if (num_parse_long(optarg, 1, 1000000000L, &count) != NUM_OK)
        return cli_usage_error("bench", "--count: '%s' is not a whole number "
                               "from 1 to 10^9", optarg);
      break;
    case OPT_SIZE:
      if (parse_size(optarg, &size_min) != 0)
        return cli_usage_error("bench", "--size: '%s' is not a size", optarg);
      size_max = size_min;
      break;
    case OPT_SIZES: {
      char *dash = strchr(optarg, '-');
      if (!dash)
        return cli_usage_error("bench", "--sizes: '%s' is not MIN-MAX", optarg);
      *dash = '\0';
      int bad = parse_size(optarg, &size_min) || parse_size(dash + 1, &size_max) ||
                size_min > size_max || size_min == 0;
      *dash = '-';
      if (bad)
        return cli_usage_error("bench", "--sizes: '%s' is not MIN-MAX with "
                               "0 < MIN <= MAX", optarg);
      break;
    }
    case OPT_WORKERS:
      if (num_parse_long(optarg, 1, 1024, &l) != NUM_OK)
        return cli_usage_error("bench", "--workers: '%s' is not from 1 to 1024",
                               optarg);
      opt.workers = (unsigned)l;
      break;
    case OPT_THREADS:
      if (num_parse_long(optarg, 0, 1024, &l) != NUM_OK)
        return cli_usage_error("bench", "--threads: '%s' is not from 0 to 1024",
                               optarg);
      opt.threads = (unsigned)l;
      break;
    case OPT_SEED:
      if (num_parse_long(optarg, 0, 0x7fffffffL, &seed) != NUM_OK)
        return cli_usage_error("bench", "--seed: '%s' is not a number", optarg);
      break;
    case OPT_MAX_RETRIES:
      if (num_parse_long(optarg, 0, 1000, &l) != NUM_OK)
        return cli_usage_error("bench", "--max-retries: '%s' is not from 0 "
                               "to 1000", optarg);
      bulkup_cloud_upload_settings_set_max_retries(&opt.cloud, (int)l);
      break;
    case OPT_CONNECT_TIMEOUT:
    case OPT_READ_TIMEOUT:
    case OPT_WRITE_TIMEOUT:
      if (num_parse_double(optarg, 0, 1e9, &d) != NUM_OK)
        return cli_usage_error("bench", "timeout: '%s' is not a number of "
                               "seconds", optarg);
      if (c == OPT_CONNECT_TIMEOUT)
        opt.requests.connect_timeout = d;
      else if (c == OPT_READ_TIMEOUT)
        opt.requests.read_timeout = d;
      else
        opt.requests.write_timeout = d;
      break;
    case OPT_CONTENT_TYPE:
      content_type = optarg;
      break;
    case OPT_CACERT:
      opt.ca_file = optarg;
      break;
    case OPT_INSECURE:
      opt.insecure = true;
      break;
    case OPT_JSON:
      json = true;
      break;
    case OPT_RESUMABLE_THRESHOLD: {
      unsigned long long v;
      if (strcmp(optarg, "never") == 0)
        opt.resumable_threshold = BULKUP_RESUMABLE_NEVER;
      else if (num_parse_size(optarg, 0, 1ULL << 50, &v) == NUM_OK)
        opt.resumable_threshold = v;
      else
        return cli_usage_error("bench", "--resumable-threshold: '%s' is not "
                               "a size or 'never'", optarg);
      break;
    }
    case OPT_CHUNK_SIZE: {
      unsigned long long v;
      if (num_parse_size(optarg, 256ULL << 10, 1ULL << 30, &v) != NUM_OK ||
          v % (256ULL << 10) != 0)
        return cli_usage_error("bench", "--chunk-size: '%s' is not a "
                               "multiple of 256K from 256K to 1G", optarg);
      opt.resumable_chunk_size = (size_t)v;
      break;
    }
    case 'h':
      cli_bench_help(stdout);
      return CLI_EXIT_OK;
    default:
      return cli_usage_error("bench", "unknown option or missing value");
    }
  }
  if (optind < argc)
    return cli_usage_error("bench", "unexpected argument '%s'", argv[optind]);
  if (!to || (strncmp(to, "http://", 7) != 0 && strncmp(to, "https://", 8) != 0))
    return cli_usage_error("bench", "--to URL_PREFIX (http:// or https://) is "
                           "required");

  /* One buffer: the largest object plus room to start each slice at a
   * different offset, so objects differ. */
  size_t slack = 65536;
  unsigned char *data = malloc((size_t)size_max + slack);
  double *lat = calloc((size_t)count, sizeof *lat);
  if (!data || !lat) {
    cli_error("out of memory for %llu-byte objects", size_max);
    free(data);
    free(lat);
    return CLI_EXIT_FAILED;
  }
  unsigned long long x = (unsigned long long)seed;
  for (size_t i = 0; i + 8 <= (size_t)size_max + slack; i += 8) {
    unsigned long long v = mix(&x);
    memcpy(data + i, &v, 8);
  }
  bench_state st = {.latency = lat};
  pthread_mutex_init(&st.lock, NULL);
  opt.on_complete = on_done;
  opt.userdata = &st;
  opt.cloud.allow_failures = true;

  bulkup_uploader *u;
  bulkup_err err = bulkup_uploader_new(&u, &opt);
  if (err != BULKUP_OK) {
    cli_error("cannot start: %s", bulkup_last_error_message());
    free(data);
    free(lat);
    return err == BULKUP_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
  }
  char run[32];
  snprintf(run, sizeof run, "%lx-%lx", (long)time(NULL), (long)seed);
  size_t plen = strlen(to);
  while (plen > 0 && to[plen - 1] == '/')
    plen--;
  char *url = malloc(plen + 64);
  double lmin = log((double)size_min), lmax = log((double)size_max);
  for (long i = 0; url && i < count; i++) {
    unsigned long long r = mix(&x);
    unsigned long long size = size_min;
    if (size_max > size_min) {
      double u01 = (double)(r >> 11) / 9007199254740992.0;
      size = (unsigned long long)exp(lmin + u01 * (lmax - lmin));
      if (size < size_min)
        size = size_min;
      if (size > size_max)
        size = size_max;
    }
    snprintf(url, plen + 64, "%.*s/bench-%s/%ld", (int)plen, to, run, i);
    bulkup_item it;
    bulkup_item_init(&it);
    it.source = BULKUP_SOURCE_MEMORY;
    it.data = data + (r % slack);
    it.size = size;
    it.url = url;
    it.content_type = content_type;
    if (bulkup_uploader_submit(u, &it, NULL) != BULKUP_OK)
      break;
  }
  free(url);
  bulkup_report *rep = NULL;
  err = bulkup_uploader_finish(u, &rep);
  bulkup_summary s;
  bulkup_report_summary(rep, &s);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);

  /* Percentiles over the items that ended (all of them, unless cut). */
  size_t n = (size_t)s.submitted;
  qsort(lat, n, sizeof *lat, cmp_double);
  double p50 = percentile(lat, n, 0.50), p90 = percentile(lat, n, 0.90),
         p99 = percentile(lat, n, 0.99), pmax = n ? lat[n - 1] : 0;
  double secs = s.elapsed_s > 0 ? s.elapsed_s : 1e-9;
  double fps = (double)s.succeeded / secs;
  double mbps = (double)s.bytes_succeeded / secs / 1e6;
  if (json) {
    printf("{\"objects\": %llu, \"succeeded\": %llu, \"failed\": %llu, "
           "\"retries\": %llu, \"bytes\": %llu, \"elapsed_s\": %.6f, "
           "\"files_per_s\": %.1f, \"mb_per_s\": %.3f, \"workers\": %u, "
           "\"latency_s\": {\"p50\": %.6f, \"p90\": %.6f, \"p99\": %.6f, "
           "\"max\": %.6f}, \"errors\": {",
           (unsigned long long)s.submitted, (unsigned long long)s.succeeded,
           (unsigned long long)s.failed, (unsigned long long)s.retries,
           (unsigned long long)s.bytes_succeeded, s.elapsed_s, fps, mbps,
           opt.workers, p50, p90, p99, pmax);
    const char *sep = "";
    for (unsigned k = 0; k < 64; k++)
      if (st.errors[k]) {
        printf("%s\"%s\": %llu", sep,
               bulkup_error_kind_name((bulkup_error_kind)k), st.errors[k]);
        sep = ", ";
      }
    printf("}}\n");
  } else {
    printf("objects    %llu of %llu succeeded (%llu bytes), %llu failed, "
           "%llu retries\n",
           (unsigned long long)s.succeeded, (unsigned long long)s.submitted,
           (unsigned long long)s.bytes_succeeded, (unsigned long long)s.failed,
           (unsigned long long)s.retries);
    printf("rate       %.1f files/s, %.2f MB/s in %.3f s (%u workers)\n", fps,
           mbps, s.elapsed_s, opt.workers);
    printf("latency    p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n",
           p50 * 1e3, p90 * 1e3, p99 * 1e3, pmax * 1e3);
    for (unsigned k = 0; k < 64; k++)
      if (st.errors[k])
        printf("errors     %s: %llu\n",
               bulkup_error_kind_name((bulkup_error_kind)k), st.errors[k]);
  }
  pthread_mutex_destroy(&st.lock);
  free(data);
  free(lat);
  return s.failed || s.cancelled || s.succeeded != (unsigned long long)count
             ? CLI_EXIT_FAILED
             : CLI_EXIT_OK;
}
