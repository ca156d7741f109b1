/*
 * upload_options.c - `bulkup upload`'s command line: the options table,
 * their parsing into an upload_cli (upload_parse_args) and the checks of
 * how they combine (upload_check_args); the workflow's own options are
 * checked by upload_api.c.
 */
#include "upload.h"

#include "cli.h"
#include "manifest.h"
#include "numparse.h"
#include "report_merge.h"
#include "urlenc.h"

#include <bulkup.h>

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- options ------------------------------------------------------------
 */

enum {
  OPT_TO = 256,
  OPT_MANIFEST,
  OPT_WORKERS,
  OPT_THREADS,
  OPT_QUEUE,
  OPT_MAX_RETRIES,
  OPT_BACKOFF,
  OPT_CONN_RETRIES,
  OPT_CONNECT_TIMEOUT,
  OPT_READ_TIMEOUT,
  OPT_WRITE_TIMEOUT,
  OPT_ALLOW_FAILURES,
  OPT_REPORT,
  OPT_JOURNAL,
  OPT_CACERT,
  OPT_INSECURE,
  OPT_CONTENT_MD5,
  OPT_DATA_TYPE,
  OPT_CONTENT_TYPE,
  OPT_PROGRESS,
  OPT_NO_PROGRESS,
  OPT_API,
  OPT_KEY_FILE,
  OPT_KEY_ID,
  OPT_IMAGE_GROUP,
  OPT_DICOM_SERIES,
  OPT_VIDEO,
  OPT_IMAGE,
  OPT_DATASET,
  OPT_FOLDER,
  OPT_FILES_PER_JOB,
  OPT_STORE,
  OPT_CREATE_VIDEO,
  OPT_NO_CREATE_VIDEO,
  OPT_SHARD,
  OPT_RESULTS,
  OPT_DRY_RUN,
  OPT_RESUMABLE_THRESHOLD,
  OPT_CHUNK_SIZE,
  OPT_HEADER,
  OPT_METADATA,
  OPT_AZURE_SAS,
  OPT_AZURE_ENDPOINT,
  /* s3:// and gs:// */
  OPT_ENDPOINT_URL,
  OPT_REGION,
  OPT_PROFILE,
  OPT_ADDRESSING,
  OPT_CHECKSUM,
  OPT_STORAGE_CLASS,
  OPT_SSE,
  OPT_SSE_KMS_KEY_ID,
  OPT_CACHE_CONTROL,
  OPT_NO_PROGRESS_LIMIT,
  OPT_WORKERS_MAX,
  OPT_HTTP1_1,
  OPT_HTTP2,
  OPT_MULTIPART_THRESHOLD,
  OPT_PART_SIZE
};

static const struct option long_options[] = {
    {"to", required_argument, NULL, OPT_TO},
    {"manifest", required_argument, NULL, OPT_MANIFEST},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"resumable-threshold", required_argument, NULL, OPT_RESUMABLE_THRESHOLD},
    {"chunk-size", required_argument, NULL, OPT_CHUNK_SIZE},
    {"multipart-threshold", required_argument, NULL, OPT_MULTIPART_THRESHOLD},
    {"part-size", required_argument, NULL, OPT_PART_SIZE},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"max-retries", required_argument, NULL, OPT_MAX_RETRIES},
    {"backoff-factor", required_argument, NULL, OPT_BACKOFF},
    {"connection-retries", required_argument, NULL, OPT_CONN_RETRIES},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"read-timeout", required_argument, NULL, OPT_READ_TIMEOUT},
    {"write-timeout", required_argument, NULL, OPT_WRITE_TIMEOUT},
    {"allow-failures", no_argument, NULL, OPT_ALLOW_FAILURES},
    {"report", required_argument, NULL, OPT_REPORT},
    {"journal", required_argument, NULL, OPT_JOURNAL},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"content-md5", no_argument, NULL, OPT_CONTENT_MD5},
    {"data-type", required_argument, NULL, OPT_DATA_TYPE},
    {"content-type", required_argument, NULL, OPT_CONTENT_TYPE},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
    {"api", required_argument, NULL, OPT_API},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"key-id", required_argument, NULL, OPT_KEY_ID},
    {"image-group", required_argument, NULL, OPT_IMAGE_GROUP},
    {"dicom-series", required_argument, NULL, OPT_DICOM_SERIES},
    {"video", no_argument, NULL, OPT_VIDEO},
    {"image", no_argument, NULL, OPT_IMAGE},
    {"dataset", required_argument, NULL, OPT_DATASET},
    {"folder", required_argument, NULL, OPT_FOLDER},
    {"files-per-job", required_argument, NULL, OPT_FILES_PER_JOB},
    {"store", required_argument, NULL, OPT_STORE},
    {"create-video", no_argument, NULL, OPT_CREATE_VIDEO},
    {"no-create-video", no_argument, NULL, OPT_NO_CREATE_VIDEO},
    {"shard", required_argument, NULL, OPT_SHARD},
    {"results", required_argument, NULL, OPT_RESULTS},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"header", required_argument, NULL, OPT_HEADER},
    {"metadata", required_argument, NULL, OPT_METADATA},
    {"azure-sas", required_argument, NULL, OPT_AZURE_SAS},
    {"azure-endpoint", required_argument, NULL, OPT_AZURE_ENDPOINT},
    {"endpoint-url", required_argument, NULL, OPT_ENDPOINT_URL},
    {"region", required_argument, NULL, OPT_REGION},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"addressing", required_argument, NULL, OPT_ADDRESSING},
    {"checksum", required_argument, NULL, OPT_CHECKSUM},
    {"storage-class", required_argument, NULL, OPT_STORAGE_CLASS},
    {"sse", required_argument, NULL, OPT_SSE},
    {"sse-kms-key-id", required_argument, NULL, OPT_SSE_KMS_KEY_ID},
    {"cache-control", required_argument, NULL, OPT_CACHE_CONTROL},
    {"no-progress-limit", required_argument, NULL, OPT_NO_PROGRESS_LIMIT},
    {"workers-max", required_argument, NULL, OPT_WORKERS_MAX},
    {"http1.1", no_argument, NULL, OPT_HTTP1_1},
    {"http2", no_argument, NULL, OPT_HTTP2},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

static const char *option_name(int id) {
  for (const struct option *o = long_options; o->name; o++)
    if (o->val == id)
      return o->name;
  return "?";
}

static int bad_value(int id, const char *value, num_status st,
                     const char *range) {
  return cli_usage_error("upload", "--%s: '%s' %s (%s)", option_name(id),
                         value, num_status_text(st), range);
}

static int opt_long(int id, const char *v, long min, long max, long *out) {
  num_status st = num_parse_long(v, min, max, out);
  if (st == NUM_OK)
    return 0;
  char range[64];
  snprintf(range, sizeof range, "expected a whole number from %ld to %ld",
           min, max);
  return bad_value(id, v, st, range);
}

static int opt_double(int id, const char *v, double min, double max,
                      double *out) {
  num_status st = num_parse_double(v, min, max, out);
  if (st == NUM_OK)
    return 0;
  char range[80];
  snprintf(range, sizeof range, "expected a number of seconds from %g to %g",
           min, max);
  return bad_value(id, v, st, range);
}

/* --shard K/N: 0 <= K < N, N >= 1. Non-zero after a usage message. */
static int parse_shard(upload_cli *c, const char *v) {
  const char *slash = strchr(v, '/');
  char k[32];
  long kn = -1, nn = 0;
  if (slash && (size_t)(slash - v) < sizeof k) {
    memcpy(k, v, (size_t)(slash - v));
    k[slash - v] = '\0';
    if (num_parse_long(slash + 1, 1, UINT32_MAX, &nn) != NUM_OK ||
        num_parse_long(k, 0, UINT32_MAX, &kn) != NUM_OK)
      kn = -1;
  }
  if (kn < 0)
    return cli_usage_error("upload",
                           "--shard: '%s' is not K/N (two whole numbers, "
                           "the shard K from 0 to N-1 and the count N >= 1, "
                           "e.g. 0/4)",
                           v);
  if (kn >= nn)
    return cli_usage_error("upload",
                           "--shard: shard %ld of %ld does not exist: shards "
                           "are numbered from 0 to %ld (0-based, as "
                           "$SLURM_ARRAY_TASK_ID with --array=0-%ld and "
                           "$JOB_COMPLETION_INDEX are)",
                           kn, nn, nn - 1, nn - 1);
  c->shard_k = (uint32_t)kn;
  c->shard_n = (uint32_t)nn;
  return 0;
}

/* Parse argv into *c. Returns -1 to go on, or an exit status. */
int upload_parse_args(upload_cli *c, int argc, char **argv) {
  memset(c, 0, sizeof *c);
  bulkup_uploader_options_init(&c->opt);
  c->data_type = BULKUP_DATA_TYPE_IMAGE;
  c->create_video = -1;
  c->progress = -1;
  opterr = 0;
  optind = 1;
  for (;;) {
    int longindex = -1;
    int ch = getopt_long(argc, argv, ":qvh", long_options, &longindex);
    if (ch == -1)
      break;
    long n;
    double d;
    switch (ch) {
    case OPT_TO:
      c->to = optarg;
      break;
    case OPT_MANIFEST:
      c->manifest = optarg;
      break;
    case OPT_WORKERS:
      if (strcmp(optarg, "auto") == 0) {
        c->opt.workers = BULKUP_WORKERS_AUTO;
        break;
      }
      if (opt_long(ch, optarg, 1, 1024, &n))
        return CLI_EXIT_USAGE;
      c->opt.workers = (unsigned)n;
      break;
    case OPT_WORKERS_MAX:
      if (opt_long(ch, optarg, 1, 1024, &n))
        return CLI_EXIT_USAGE;
      c->opt.workers_max = (unsigned)n;
      break;
    case OPT_HTTP1_1:
      c->opt.http_version = BULKUP_HTTP_1_1;
      break;
    case OPT_HTTP2:
      c->opt.http_version = BULKUP_HTTP_2;
      break;
    case OPT_RESUMABLE_THRESHOLD: {
      unsigned long long v;
      if (strcmp(optarg, "never") == 0) {
        c->opt.resumable_threshold = BULKUP_RESUMABLE_NEVER;
        break;
      }
      num_status st = num_parse_size(optarg, 0, 1ULL << 50, &v);
      if (st != NUM_OK)
        return bad_value(ch, optarg, st,
                         "expected a size such as 64M, or 'never'");
      c->opt.resumable_threshold = v;
      break;
    }
    case OPT_CHUNK_SIZE: {
      unsigned long long v;
      num_status st = num_parse_size(optarg, 256ULL << 10, 1ULL << 30, &v);
      if (st == NUM_OK && v % (256ULL << 10) != 0)
        st = NUM_RANGE;
      if (st != NUM_OK)
        return bad_value(ch, optarg, st,
                         "expected a multiple of 256K from 256K to 1G");
      c->opt.resumable_chunk_size = (size_t)v;
      break;
    }
    case OPT_MULTIPART_THRESHOLD: {
      unsigned long long v;
      if (strcmp(optarg, "never") == 0) {
        c->opt.multipart_threshold = BULKUP_MULTIPART_NEVER;
        break;
      }
      num_status st = num_parse_size(optarg, 1, 1ULL << 50, &v);
      if (st != NUM_OK)
        return bad_value(ch, optarg, st,
                         "expected a size such as 16M, or 'never'");
      c->opt.multipart_threshold = v;
      break;
    }
    case OPT_PART_SIZE: {
      unsigned long long v;
      num_status st = num_parse_size(optarg, BULKUP_PART_SIZE_MIN,
                                     BULKUP_PART_SIZE_MAX, &v);
      if (st != NUM_OK)
        return bad_value(ch, optarg, st, "expected a size from 1K to 4000M");
      c->opt.part_size = (size_t)v;
      break;
    }
    case OPT_ENDPOINT_URL:
      c->s3o.endpoint_url = optarg;
      break;
    case OPT_REGION:
      c->s3o.region = optarg;
      break;
    case OPT_PROFILE:
      c->s3o.profile = optarg;
      break;
    case OPT_ADDRESSING:
      c->s3o.addressing = optarg;
      break;
    case OPT_CHECKSUM:
      c->s3o.checksum = optarg;
      break;
    case OPT_STORAGE_CLASS:
      c->s3o.storage_class = optarg;
      break;
    case OPT_SSE:
      c->s3o.sse = optarg;
      break;
    case OPT_SSE_KMS_KEY_ID:
      c->s3o.sse_kms_key_id = optarg;
      break;
    case OPT_CACHE_CONTROL:
      if (strpbrk(optarg, "\r\n"))
        return cli_usage_error("upload", "--cache-control: one line");
      c->cache_control = optarg;
      break;
    case OPT_THREADS:
      if (strcmp(optarg, "auto") == 0) {
        c->opt.threads = BULKUP_THREADS_AUTO;
        break;
      }
      if (opt_long(ch, optarg, 0, 1024, &n))
        return CLI_EXIT_USAGE;
      c->opt.threads = (unsigned)n;
      break;
    case OPT_QUEUE:
      if (opt_long(ch, optarg, 1, 1000000, &n))
        return CLI_EXIT_USAGE;
      c->opt.queue_capacity = (size_t)n;
      break;
    case OPT_MAX_RETRIES:
      if (opt_long(ch, optarg, 0, 1000, &n))
        return CLI_EXIT_USAGE;
      bulkup_cloud_upload_settings_set_max_retries(&c->opt.cloud, (int)n);
      break;
    case OPT_CONN_RETRIES:
      if (opt_long(ch, optarg, 0, 1000, &n))
        return CLI_EXIT_USAGE;
      c->opt.requests.connection_retries = (int)n;
      break;
    case OPT_BACKOFF:
      if (opt_double(ch, optarg, 0, 3600, &d))
        return CLI_EXIT_USAGE;
      bulkup_cloud_upload_settings_set_backoff_factor(&c->opt.cloud, d);
      break;
    case OPT_CONNECT_TIMEOUT:
      if (opt_double(ch, optarg, 0, 1e6, &d))
        return CLI_EXIT_USAGE;
      c->opt.requests.connect_timeout = d;
      break;
    case OPT_READ_TIMEOUT:
      if (opt_double(ch, optarg, 0, 1e6, &d))
        return CLI_EXIT_USAGE;
      c->opt.requests.read_timeout = d;
      break;
    case OPT_WRITE_TIMEOUT:
      if (opt_double(ch, optarg, 0, 1e6, &d))
        return CLI_EXIT_USAGE;
      c->opt.requests.write_timeout = d;
      break;
    case OPT_NO_PROGRESS_LIMIT:
      if (opt_double(ch, optarg, 0, 1e9, &d))
        return CLI_EXIT_USAGE;
      c->opt.no_progress_limit = d;
      break;
    case OPT_ALLOW_FAILURES:
      c->opt.cloud.allow_failures = true;
      break;
    case OPT_REPORT:
      c->report = optarg;
      break;
    case OPT_JOURNAL:
      c->journal = optarg;
      break;
    case OPT_CACERT:
      c->opt.ca_file = optarg;
      break;
    case OPT_INSECURE:
      c->opt.insecure = true;
      break;
    case OPT_CONTENT_MD5:
      c->opt.content_md5 = true;
      break;
    case OPT_DATA_TYPE:
      c->data_type_given = true;
      c->data_type = bulkup_data_type_from_string(optarg);
      if (c->data_type == BULKUP_DATA_TYPE_MISSING) {
        char list[256] = "";
        for (int t = 0; t < BULKUP_DATA_TYPE_COUNT - 1; t++) {
          if (t)
            strncat(list, ", ", sizeof list - strlen(list) - 1);
          strncat(list, bulkup_data_type_to_string((bulkup_data_type)t),
                  sizeof list - strlen(list) - 1);
        }
        return cli_usage_error("upload",
                               "--data-type: unknown data type '%s' "
                               "(expected one of %s)",
                               optarg, list);
      }
      break;
    case OPT_CONTENT_TYPE:
      if (!*optarg || !header_value_ok(optarg))
        return cli_usage_error("upload",
                               "--content-type: '%s' is not a media type",
                               optarg);
      c->content_type = optarg;
      break;
    case OPT_API:
      c->api = optarg;
      break;
    case OPT_KEY_FILE:
      c->key_file = optarg;
      break;
    case OPT_KEY_ID:
      c->key_id = optarg;
      break;
    case OPT_IMAGE_GROUP:
      if (upload_api_set_kind(c, UPLOAD_KIND_IMAGE_GROUP, "--image-group",
                              optarg) != -1)
        return CLI_EXIT_USAGE;
      break;
    case OPT_DICOM_SERIES:
      if (upload_api_set_kind(c, UPLOAD_KIND_DICOM_SERIES, "--dicom-series",
                              optarg) != -1)
        return CLI_EXIT_USAGE;
      break;
    case OPT_VIDEO:
      if (upload_api_set_kind(c, UPLOAD_KIND_VIDEO, "--video", NULL) != -1)
        return CLI_EXIT_USAGE;
      break;
    case OPT_IMAGE:
      if (upload_api_set_kind(c, UPLOAD_KIND_IMAGE, "--image", NULL) != -1)
        return CLI_EXIT_USAGE;
      break;
    case OPT_DATASET:
      c->dataset = optarg;
      break;
    case OPT_FOLDER:
      c->folder = optarg;
      break;
    case OPT_FILES_PER_JOB:
      if (opt_long(ch, optarg, 1, 1000, &n))
        return CLI_EXIT_USAGE;
      c->files_per_job = (unsigned long)n;
      break;
    case OPT_STORE:
      c->store = optarg;
      break;
    case OPT_CREATE_VIDEO:
      c->create_video = 1;
      break;
    case OPT_NO_CREATE_VIDEO:
      c->create_video = 0;
      break;
    case OPT_SHARD:
      if (parse_shard(c, optarg))
        return CLI_EXIT_USAGE;
      break;
    case OPT_RESULTS:
      if (!*optarg)
        return cli_usage_error("upload", "--results: empty file name");
      c->results = optarg;
      break;
    case OPT_DRY_RUN:
      c->dry_run = true;
      break;
    case OPT_HEADER:
      if (extras_add_header(&c->x, optarg))
        return CLI_EXIT_USAGE;
      break;
    case OPT_METADATA:
      if (extras_add_metadata(&c->x, optarg))
        return CLI_EXIT_USAGE;
      break;
    case OPT_AZURE_SAS:
      c->x.azure_sas = optarg;
      break;
    case OPT_AZURE_ENDPOINT:
      c->x.azure_endpoint = optarg;
      break;
    case OPT_PROGRESS:
      c->progress = 1;
      break;
    case OPT_NO_PROGRESS:
      c->progress = 0;
      break;
    case 'q':
      c->quiet = true;
      break;
    case 'v':
      c->verbose++;
      break;
    case 'h':
      cli_upload_help(stdout);
      return CLI_EXIT_OK;
    case ':':
      if (optopt >= 256)
        return cli_usage_error("upload", "option --%s needs a value",
                               option_name(optopt));
      return cli_usage_error("upload", "option '%s' needs a value",
                             argv[optind - 1]);
    default:
      if (optopt > 0 && optopt < 256)
        return cli_usage_error("upload", "unknown option '-%c'", optopt);
      return cli_usage_error("upload", "unknown option '%s'",
                             argv[optind - 1]);
    }
  }
  c->paths = argv + optind;
  c->npaths = argc - optind;
  return -1;
}

bool upload_is_workflow(const upload_cli *c) {
  return c->api || c->dataset || (!c->to && !c->manifest);
}

/* Check what can be checked without touching the input. */
int upload_check_args(upload_cli *c) {
  if (c->to && c->manifest)
    return cli_usage_error("upload",
                           "--to and --manifest cannot be used together");
  if ((c->api || c->dataset) && (c->to || c->manifest))
    return cli_usage_error("upload", "--%s cannot be used with --%s",
                           c->api ? "api" : "dataset",
                           c->to ? "to" : "manifest");
  if (!upload_is_workflow(c)) {
    const char *w = upload_api_option_given(c);
    if (w)
      return cli_usage_error("upload",
                             "%s belongs to the API workflow (--api URL, or "
                             "PATHs alone); it cannot be used with --%s",
                             w, c->to ? "to" : "manifest");
  } else {
    int rc = upload_api_check_args(c);
    if (rc != -1)
      return rc;
  }
  if (c->to && c->npaths == 0)
    return cli_usage_error("upload", "--to needs at least one PATH");
  if (c->manifest && c->npaths > 0)
    return cli_usage_error("upload",
                           "--manifest takes no PATH arguments (got '%s')",
                           c->paths[0]);
  if (extras_check(&c->x, c->to, upload_is_workflow(c)))
    return CLI_EXIT_USAGE;
  {
    int rc = upload_s3_check(&c->s3o, upload_s3_is_dest(c->to),
                             c->manifest != NULL);
    if (rc != -1)
      return rc;
  }
  if (c->to && upload_s3_is_dest(c->to)) {
    if (strpbrk(c->to, "?#"))
      return cli_usage_error("upload", "--to: s3://BUCKET/PREFIX may not "
                             "hold a query or fragment");
  } else if (c->to) {
    if (!url_is_http(c->to) && !c->x.to_resolved)
      return cli_usage_error("upload",
                             "--to: '%s' is not an http:// or https:// URL",
                             c->to);
    if (strpbrk(c->to, "?#"))
      return cli_usage_error(
          "upload", "--to: the URL prefix may not hold a query or fragment");
  }
  if (c->results && strcmp(c->results, "-") == 0 && upload_is_workflow(c))
    return cli_usage_error("upload",
                           "--results -: standard output carries the "
                           "workflow's result lines; give a file");
  if (c->opt.ca_file && access(c->opt.ca_file, R_OK) != 0) {
    cli_error("--cacert: cannot read %s: %s", c->opt.ca_file,
              strerror(errno));
    return CLI_EXIT_USAGE;
  }
  if (c->report && cli_is_stdout(c->report) && c->results &&
      cli_is_stdout(c->results))
    return cli_usage_error("upload", "--report - and --results - cannot both "
                                     "use standard output");
  if (c->report && cli_is_stdout(c->report) && upload_is_workflow(c))
    return cli_usage_error("upload",
                           "--report -: standard output carries the "
                           "workflow's result lines; give a file");
  struct stat rst;
  if (c->report && !cli_is_stdout(c->report) &&
      stat(c->report, &rst) == 0 && !S_ISREG(rst.st_mode) &&
      !S_ISDIR(rst.st_mode)) {
    /* A device, a FIFO, /dev/stdout: written into, so it must be
     * writable itself (its directory need not be). */
    if (access(c->report, W_OK) != 0) {
      cli_error("--report: cannot write %s: %s", c->report, strerror(errno));
      return CLI_EXIT_USAGE;
    }
  } else if (c->report && !cli_is_stdout(c->report)) {
    char *copy = strdup(c->report);
    if (!copy) {
      cli_error("out of memory");
      return CLI_EXIT_USAGE;
    }
    const char *dir = dirname(copy);
    struct stat st;
    int ok = stat(c->report, &st) == 0 && S_ISDIR(st.st_mode) ? -1
             : access(dir, W_OK | X_OK) == 0                ? 0
                                                              : errno;
    free(copy);
    if (ok == -1) {
      cli_error("--report: %s is a directory", c->report);
      return CLI_EXIT_USAGE;
    }
    if (ok != 0) {
      cli_error("--report: cannot write %s: %s", c->report, strerror(ok));
      return CLI_EXIT_USAGE;
    }
  }
  if (bulkup_requests_settings_validate(&c->opt.requests) != BULKUP_OK ||
      bulkup_cloud_upload_settings_validate(&c->opt.cloud) != BULKUP_OK) {
    cli_error("%s", bulkup_last_error_message());
    return CLI_EXIT_USAGE;
  }
  return -1;
}
