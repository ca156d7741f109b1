/*
 * serve.c - `bulkup serve`: the reference server (src/server) on a root
 * directory, until SIGINT or SIGTERM.
 *
 * The signals are blocked before the server starts any thread, so every
 * thread inherits the mask and the main thread takes them with sigwait();
 * then the server stops cleanly (connections closed, threads joined) and
 * the command exits 0. SIGPIPE stays blocked: a client that goes away
 * must not kill the server.
 */
#include "cli.h"
#include "numparse.h"

#include "bks_server.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char serve_help[] =
    "Usage: bulkup serve [OPTION]...\n"
    "\n"
    "Run the reference server: Encord's upload API as the Python SDK v0.1.190\n"
    "speaks it (doc/api-protocol.md): v2 presigned URLs (RFC 9421 signature),\n"
    "storage PUTs to the signed URLs, and the v1 POST /public envelope with\n"
    "the queries dataset and datasetdatalongpolling (create a job, long-poll\n"
    "it; data units per image group, DICOM series, video or image). Requests\n"
    "must be signed by an authorized Ed25519 key (identified by its public-\n"
    "key hex); storage PUTs carry the server's HMAC in their signed URL.\n"
    "Objects are written atomically to ROOT/uploads/<type>/<uuid>. Runs until\n"
    "SIGINT or SIGTERM.\n"
    "\n"
    "Options:\n"
    "  --root DIR              store objects under DIR, created if missing\n"
    "                          (default ./bulkup-store)\n"
    "  --listen HOST:PORT      address to listen on (default 127.0.0.1:0;\n"
    "                          port 0 lets the system pick one); IPv6 as\n"
    "                          [::1]:PORT. Once listening, the first line\n"
    "                          on stdout is 'listening on URL'\n"
    "  --authorized-keys FILE  keys allowed to sign API requests: lines\n"
    "                          'ssh-ed25519 <base64> [comment]', as in a .pub\n"
    "                          file (# comments and blank lines skipped).\n"
    "                          Without it every API request is refused (401)\n"
    "  --dataset HASH          serve this dataset (the v1 ResourceID); may be\n"
    "                          repeated. Default: one random uuid. Each\n"
    "                          dataset is printed on stdout after the\n"
    "                          listening line: 'dataset: HASH folder: UUID'\n"
    "                          (its backing folder)\n"
    "  --require-folder        a job must name the dataset's folder\n"
    "                          (folderUuid), as for Encord's non-mirror\n"
    "                          datasets; default: folderUuid is optional\n"
    "  --v2-snake-case         answer presign in snake_case (item_uuid,\n"
    "                          object_key, signed_url); default camelCase\n"
    "  --url-ttl SECONDS       lifetime of signed storage URLs (default 900)\n"
    "  --session-ttl SECONDS   lifetime of a resumable upload session from\n"
    "                          its start (default 604800, a week; 0: never\n"
    "                          expires); an expired one answers 404\n"
    "  --job-delay SECONDS     how long a new job answers PENDING (default\n"
    "                          0.5); a poll is held until then or its\n"
    "                          timeout_seconds (at most 60)\n"
    "  --idle-timeout SECONDS  close a connection idle this long (default\n"
    "                          300; 0: never)\n"
    "  --connection-limit N    serve at most N connections at once (default:\n"
    "                          the open-file limit less 64, which serve\n"
    "                          first raises to its hard limit)\n"
    "  --public-url URL        base of signed URLs (default: the scheme and\n"
    "                          the request's Host header)\n"
    "  --tls-cert FILE         serve HTTPS with this PEM certificate (chain)\n"
    "  --tls-key FILE          ... and this PEM private key (unencrypted)\n"
    "  --tls-self-signed       serve HTTPS with a throwaway self-signed\n"
    "                          certificate for 127.0.0.1 and localhost; its\n"
    "                          file is printed on stdout ('certificate: FILE')\n"
    "                          and removed at exit\n"
    "\n"
    "Fault injection (for testing clients):\n"
    "  --fault-rate P          answer this fraction of storage PUTs with\n"
    "                          --fault-status, without storing (0 to 1,\n"
    "                          default 0)\n"
    "  --fault-status N        the status for --fault-rate (100 to 599,\n"
    "                          default 503)\n"
    "  --fault-reset-rate P    reset (TCP RST) this fraction of storage PUTs\n"
    "                          halfway through the body (0 to 1, default 0)\n"
    "  --fault-seed N          seed of the random faults, 1 to 2^64-1: the\n"
    "                          same seed and the same order of requests give\n"
    "                          the same faults (default: a random seed)\n"
    "  --latency SECONDS       wait this long before every answer (default 0)\n"
    "  --fault-api-error WHERE:CODE[:N]\n"
    "                          make the next N (default: every) authenticated\n"
    "                          WHERE requests fail: presign:STATUS (400-599,\n"
    "                          {\"message\": ...}; 429 and 503 with\n"
    "                          Retry-After: 1), dataset:|create:|poll:CODE\n"
    "                          (a v1 error: AUTHENTICATION_ERROR,\n"
    "                          AUTHORISATION_ERROR, RESOURCE_NOT_FOUND_ERROR,\n"
    "                          SSH_KEY_NOT_FOUND_ERROR, INVALID_ARGUMENTS_ERROR,\n"
    "                          UPLOAD_OPERATION_NOT_SUPPORTED_ERROR,\n"
    "                          UNKNOWN_ERROR), job:ERROR|CANCELLED (the next\n"
    "                          N jobs end so). May be repeated\n"
    "\n"
    "  -h, --help              show this help\n"
    "\n"
    "Exit status: 0 stopped by SIGINT/SIGTERM, 1 the server could not start,\n"
    "2 bad usage.\n";

void cli_serve_help(void *out) { fputs(serve_help, (FILE *)out); }

enum {
  OPT_ROOT = 256,
  OPT_LISTEN,
  OPT_KEYS,
  OPT_URL_TTL,
  OPT_SESSION_TTL,
  OPT_JOB_DELAY,
  OPT_PUBLIC_URL,
  OPT_TLS_CERT,
  OPT_TLS_KEY,
  OPT_TLS_SELF,
  OPT_FAULT_RATE,
  OPT_FAULT_STATUS,
  OPT_FAULT_RESET,
  OPT_FAULT_SEED,
  OPT_LATENCY,
  OPT_DATASET,
  OPT_REQUIRE_FOLDER,
  OPT_SNAKE,
  OPT_IDLE,
  OPT_CONN_LIMIT,
  OPT_API_ERROR
};

static const struct option serve_options[] = {
    {"root", required_argument, NULL, OPT_ROOT},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"authorized-keys", required_argument, NULL, OPT_KEYS},
    {"url-ttl", required_argument, NULL, OPT_URL_TTL},
    {"session-ttl", required_argument, NULL, OPT_SESSION_TTL},
    {"job-delay", required_argument, NULL, OPT_JOB_DELAY},
    {"public-url", required_argument, NULL, OPT_PUBLIC_URL},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-self-signed", no_argument, NULL, OPT_TLS_SELF},
    {"fault-rate", required_argument, NULL, OPT_FAULT_RATE},
    {"fault-status", required_argument, NULL, OPT_FAULT_STATUS},
    {"fault-reset-rate", required_argument, NULL, OPT_FAULT_RESET},
    {"fault-seed", required_argument, NULL, OPT_FAULT_SEED},
    {"latency", required_argument, NULL, OPT_LATENCY},
    {"dataset", required_argument, NULL, OPT_DATASET},
    {"require-folder", no_argument, NULL, OPT_REQUIRE_FOLDER},
    {"v2-snake-case", no_argument, NULL, OPT_SNAKE},
    {"idle-timeout", required_argument, NULL, OPT_IDLE},
    {"connection-limit", required_argument, NULL, OPT_CONN_LIMIT},
    {"fault-api-error", required_argument, NULL, OPT_API_ERROR},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

static const char *serve_option_name(int id) {
  for (const struct option *o = serve_options; o->name; o++)
    if (o->val == id)
      return o->name;
  return "?";
}

static int serve_double(int id, const char *v, double min, double max,
                        double *out) {
  num_status st = num_parse_double(v, min, max, out);
  if (st == NUM_OK)
    return 0;
  return cli_usage_error("serve", "--%s: '%s' %s (expected %g to %g)",
                         serve_option_name(id), v, num_status_text(st), min,
                         max);
}

/* "HOST:PORT" or "[V6]:PORT" into a malloc'ed host and a port. */
static int parse_listen(const char *v, char **host, unsigned short *port) {
  const char *colon;
  const char *h = v;
  size_t hlen;
  if (v[0] == '[') {
    const char *close = strchr(v, ']');
    if (!close || close[1] != ':')
      return -1;
    h = v + 1;
    hlen = (size_t)(close - h);
    colon = close + 1;
  } else {
    colon = strrchr(v, ':');
    if (!colon || memchr(v, ':', (size_t)(colon - v)))
      return -1;
    hlen = (size_t)(colon - v);
  }
  long p;
  if (hlen == 0 || num_parse_long(colon + 1, 0, 65535, &p) != NUM_OK)
    return -1;
  *host = strndup(h, hlen);
  *port = (unsigned short)p;
  return *host ? 0 : -1;
}

#define MAX_API_FAULTS 16

typedef struct serve_cli {
  bks_config cfg;
  char *host;
  int self_signed;
  const char *datasets[64];
  size_t ndatasets;
  struct {
    bks_api_call call;
    char code[48];
    unsigned n;
  } faults[MAX_API_FAULTS];
  size_t nfaults;
} serve_cli;

/* Parse argv into *c. Returns -1 to go on, or an exit status. */
static int serve_parse(serve_cli *c, int argc, char **argv) {
  bks_config_init(&c->cfg);
  c->cfg.root = "./bulkup-store";
  c->cfg.keep_log = 0; /* a long-running server: no unbounded log */
  c->cfg.idle_timeout = 300;
  opterr = 0;
  optind = 1;
  for (;;) {
    int ch = getopt_long(argc, argv, ":h", serve_options, NULL);
    if (ch == -1)
      break;
    double d;
    switch (ch) {
    case OPT_ROOT:
      if (!*optarg)
        return cli_usage_error("serve", "--root: empty directory name");
      c->cfg.root = optarg;
      break;
    case OPT_LISTEN:
      free(c->host);
      c->host = NULL;
      if (parse_listen(optarg, &c->host, &c->cfg.port) != 0)
        return cli_usage_error("serve",
                               "--listen: '%s' is not HOST:PORT (port 0 to "
                               "65535; IPv6 as [ADDR]:PORT)",
                               optarg);
      c->cfg.host = c->host;
      break;
    case OPT_KEYS:
      c->cfg.authorized_keys_file = optarg;
      break;
    case OPT_URL_TTL:
      if (serve_double(ch, optarg, 0, 7 * 86400, &c->cfg.url_ttl))
        return CLI_EXIT_USAGE;
      break;
    case OPT_SESSION_TTL:
      if (serve_double(ch, optarg, 0, 365 * 86400, &c->cfg.session_ttl))
        return CLI_EXIT_USAGE;
      break;
    case OPT_JOB_DELAY:
      if (serve_double(ch, optarg, 0, 86400, &c->cfg.job_pending))
        return CLI_EXIT_USAGE;
      break;
    case OPT_PUBLIC_URL:
      if (strncmp(optarg, "http://", 7) != 0 &&
          strncmp(optarg, "https://", 8) != 0)
        return cli_usage_error("serve", "--public-url: '%s' is not an "
                                        "http:// or https:// URL",
                               optarg);
      c->cfg.public_url = optarg;
      break;
    case OPT_TLS_CERT:
      c->cfg.tls_cert_file = optarg;
      c->cfg.tls = 1;
      break;
    case OPT_TLS_KEY:
      c->cfg.tls_key_file = optarg;
      c->cfg.tls = 1;
      break;
    case OPT_TLS_SELF:
      c->self_signed = 1;
      c->cfg.tls = 1;
      break;
    case OPT_FAULT_RATE:
      if (serve_double(ch, optarg, 0, 1, &c->cfg.faults.rate))
        return CLI_EXIT_USAGE;
      break;
    case OPT_FAULT_STATUS:
      if (serve_double(ch, optarg, 100, 599, &d))
        return CLI_EXIT_USAGE;
      if (d != (double)(int)d)
        return cli_usage_error("serve", "--fault-status: '%s' is not a whole "
                                        "number",
                               optarg);
      c->cfg.faults.status = (int)d;
      break;
    case OPT_FAULT_RESET:
      if (serve_double(ch, optarg, 0, 1, &c->cfg.faults.reset_rate))
        return CLI_EXIT_USAGE;
      break;
    case OPT_FAULT_SEED: {
      /* strtoull takes "-1" and leading blanks; a seed is digits only */
      char *end = NULL;
      unsigned long long seed = 0;
      errno = 0;
      if (optarg[0] >= '0' && optarg[0] <= '9')
        seed = strtoull(optarg, &end, 10);
      if (!end || *end || errno || seed == 0)
        return cli_usage_error("serve", "--fault-seed: '%s' is not a whole "
                                        "number from 1 to 2^64-1",
                               optarg);
      c->cfg.faults.seed = seed;
      break;
    }
    case OPT_LATENCY:
      if (serve_double(ch, optarg, 0, 3600, &c->cfg.faults.latency))
        return CLI_EXIT_USAGE;
      break;
    case OPT_DATASET:
      if (c->ndatasets == sizeof c->datasets / sizeof c->datasets[0])
        return cli_usage_error("serve", "--dataset: at most 64");
      c->datasets[c->ndatasets++] = optarg;
      break;
    case OPT_REQUIRE_FOLDER:
      c->cfg.require_folder = 1;
      break;
    case OPT_SNAKE:
      c->cfg.v2_snake_case = 1;
      break;
    case OPT_IDLE:
      if (serve_double(ch, optarg, 0, 86400, &d))
        return CLI_EXIT_USAGE;
      c->cfg.idle_timeout = (unsigned)d;
      break;
    case OPT_CONN_LIMIT:
      if (serve_double(ch, optarg, 16, 1000000, &d))
        return CLI_EXIT_USAGE;
      c->cfg.connection_limit = (unsigned)d;
      break;
    case OPT_API_ERROR: {
      if (c->nfaults == MAX_API_FAULTS)
        return cli_usage_error("serve", "--fault-api-error: at most %d",
                               MAX_API_FAULTS);
      unsigned n = 0;
      bks_api_call call;
      char code[48];
      if (bks_parse_api_fault(optarg, &call, code, sizeof code, &n) != 0)
        return cli_usage_error("serve", "--fault-api-error: '%s' is not "
                                        "WHERE:CODE[:N] (see --help)",
                               optarg);
      c->faults[c->nfaults].call = call;
      memcpy(c->faults[c->nfaults].code, code, sizeof code);
      c->faults[c->nfaults].n = n;
      c->nfaults++;
      break;
    }
    case 'h':
      cli_serve_help(stdout);
      return CLI_EXIT_OK;
    case ':':
      if (optopt >= 256)
        return cli_usage_error("serve", "option --%s needs a value",
                               serve_option_name(optopt));
      return cli_usage_error("serve", "option '%s' needs a value",
                             argv[optind - 1]);
    default:
      if (optopt > 0 && optopt < 256)
        return cli_usage_error("serve", "unknown option '-%c'", optopt);
      return cli_usage_error("serve", "unknown option '%s'",
                             argv[optind - 1]);
    }
  }
  if (optind < argc)
    return cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
  if (c->self_signed && (c->cfg.tls_cert_file || c->cfg.tls_key_file))
    return cli_usage_error("serve", "--tls-self-signed excludes --tls-cert "
                                    "and --tls-key");
  if (!c->self_signed && c->cfg.tls &&
      (!c->cfg.tls_cert_file || !c->cfg.tls_key_file))
    return cli_usage_error("serve", "--tls-cert and --tls-key go together");
  c->cfg.datasets = c->datasets;
  c->cfg.ndatasets = c->ndatasets;
  if (c->cfg.faults.rate + c->cfg.faults.reset_rate > 1)
    return cli_usage_error("serve", "--fault-rate plus --fault-reset-rate "
                                    "exceeds 1");
  return -1;
}

int cli_serve_main(int argc, char **argv) {
  serve_cli c;
  memset(&c, 0, sizeof c);
  int rc = serve_parse(&c, argc, argv);
  if (rc >= 0) {
    free(c.host);
    return rc;
  }
  if (!c.cfg.authorized_keys_file)
    cli_error("serve: no --authorized-keys: every API request will be "
              "refused (401)");

  /* Block the signals before the server starts its threads. A shell
   * starts background jobs with SIGINT ignored, and an ignored signal is
   * discarded even while blocked: restore the default first (blocked, it
   * never acts; sigwait() takes it). */
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGPIPE);
  if (pthread_sigmask(SIG_BLOCK, &set, &old) != 0) {
    free(c.host);
    cli_error("cannot block signals");
    return CLI_EXIT_FAILED;
  }
  /* Idle connections must not lock real clients out (each connection is
   * a descriptor): use every descriptor the hard limit allows. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
  bks_server *srv = NULL;
  char err[512];
  if (bks_server_start(&srv, &c.cfg, err, sizeof err) != 0) {
    cli_error("serve: %s", err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    free(c.host);
    return CLI_EXIT_FAILED;
  }
  for (size_t i = 0; i < c.nfaults; i++) {
    if (bks_server_api_fault(srv, c.faults[i].call, c.faults[i].code,
                             c.faults[i].n) != 0) {
      cli_error("serve: --fault-api-error: bad code '%s'", c.faults[i].code);
      bks_server_stop(srv);
      pthread_sigmask(SIG_SETMASK, &old, NULL);
      free(c.host);
      return CLI_EXIT_USAGE;
    }
  }
  char *url = bks_server_url(srv, NULL);
  printf("listening on %s\n", url ? url : "?");
  if (c.ndatasets == 0)
    printf("dataset: %s folder: %s\n", bks_server_dataset(srv),
           bks_server_dataset_folder(srv, bks_server_dataset(srv)));
  for (size_t i = 0; i < c.ndatasets; i++)
    printf("dataset: %s folder: %s\n", c.datasets[i],
           bks_server_dataset_folder(srv, c.datasets[i]));
  if (bks_server_ca_file(srv))
    printf("certificate: %s\n", bks_server_ca_file(srv));
  fflush(stdout);
  free(url);

  sigdelset(&set, SIGPIPE);
  int sig = 0;
  while (sigwait(&set, &sig) != 0)
    ;
  cli_error("serve: %s, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  bks_server_stop(srv);
  free(c.host);
  return CLI_EXIT_OK;
}
