/*
 * server.c - the server's public functions (bks_server.h): configuration,
 * start and stop, keys, run-time settings, objects, counters and the
 * request log (resumable sessions: resumable.c).
 */
#include "bks_internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void bks_config_init(bks_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->mode = BKS_MODE_API;
  cfg->host = "127.0.0.1";
  cfg->url_ttl = 900;
  cfg->session_ttl = 7 * 86400;
  cfg->job_pending = 0.5;
  cfg->faults.status = 503;
  cfg->keep_log = 1;
  cfg->max_api_body = 16ull * 1024 * 1024;
}

static int prob_ok(double p) { return p >= 0 && p <= 1; }

static void server_free(bks_server *srv) {
  if (srv->ca_file) {
    unlink(srv->ca_file);
    free(srv->ca_file);
  }
  if (srv->key_pem) {
    OPENSSL_cleanse(srv->key_pem, strlen(srv->key_pem));
    free(srv->key_pem);
  }
  free(srv->cert_pem);
  if (srv->stop_pipe[0] >= 0)
    close(srv->stop_pipe[0]);
  if (srv->stop_pipe[1] >= 0)
    close(srv->stop_pipe[1]);
  bks_scripts_clear_locked(srv);
  bks_v1_free(srv);
  bks_sessions_free(srv->sessions);
  bks_store_free(srv->store);
  bks_keys_free(srv->keys);
  free(srv->reqs);
  free(srv->host);
  free(srv->url_host);
  free(srv->public_url);
  free(srv->self_url);
  OPENSSL_cleanse(srv->secret, sizeof srv->secret);
  pthread_cond_destroy(&srv->cv);
  pthread_cond_destroy(&srv->job_cv);
  pthread_mutex_destroy(&srv->mu);
  free(srv);
}


/* Resolve host:port into a socket address (numeric or a name). */
static int resolve(const char *host, unsigned short port,
                   struct sockaddr_storage *ss, socklen_t *len, int *v6,
                   char *err, size_t errlen) {
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
  struct addrinfo hints, *ai = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int rc = getaddrinfo(host, portstr, &hints, &ai);
  if (rc != 0 || !ai) {
    bks_set_err(err, errlen, "cannot resolve '%s': %s", host,
                gai_strerror(rc));
    return -1;
  }
  memcpy(ss, ai->ai_addr, ai->ai_addrlen);
  *len = ai->ai_addrlen;
  *v6 = ai->ai_family == AF_INET6;
  freeaddrinfo(ai);
  return 0;
}

int bks_server_start(bks_server **out, const bks_config *cfg, char *err,
                     size_t errlen) {
  *out = NULL;
  bks_config def;
  if (!cfg) {
    bks_config_init(&def);
    cfg = &def;
  }
  if (cfg->mode == BKS_MODE_RAW && cfg->root) {
    bks_set_err(err, errlen, "raw mode needs the memory store (root NULL)");
    return -1;
  }
  if (!(cfg->url_ttl >= 0) || !(cfg->job_pending >= 0) ||
      !(cfg->session_ttl >= 0) ||
      !prob_ok(cfg->faults.rate) || !prob_ok(cfg->faults.reset_rate) ||
      !(cfg->faults.latency >= 0) ||
      (cfg->faults.status && (cfg->faults.status < 100 ||
                              cfg->faults.status > 599))) {
    bks_set_err(err, errlen, "a time, probability or status is out of range");
    return -1;
  }
  if (cfg->hmac_secret && (cfg->hmac_secret_len == 0 ||
                           cfg->hmac_secret_len > 64)) {
    bks_set_err(err, errlen, "the HMAC secret must be 1 to 64 bytes");
    return -1;
  }
  if (cfg->tls && (!cfg->tls_cert_file != !cfg->tls_key_file)) {
    bks_set_err(err, errlen, "give both a TLS certificate and a key, or neither");
    return -1;
  }
  bks_server *srv = calloc(1, sizeof *srv);
  if (!srv) {
    bks_set_err(err, errlen, "out of memory");
    return -1;
  }
  srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&srv->cv, &ca);
  pthread_cond_init(&srv->job_cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&srv->mu, NULL);
  srv->mode = cfg->mode;
  srv->tls = cfg->tls;
  srv->url_ttl = cfg->url_ttl;
  srv->session_ttl = cfg->session_ttl;
  srv->job_pending = cfg->job_pending;
  srv->faults = cfg->faults;
  if (!srv->faults.status)
    srv->faults.status = 503;
  bk_rng_seed(&srv->rng, cfg->faults.seed ? cfg->faults.seed : bk_random_seed());
  srv->keep_log = cfg->keep_log;
  srv->require_folder = cfg->require_folder;
  srv->v2_snake_case = cfg->v2_snake_case;
  srv->max_api_body = cfg->max_api_body;
  const char *host = cfg->host ? cfg->host : "127.0.0.1";
  srv->host = bks_strdup(host);
  srv->url_host = strchr(host, ':') ? bks_asprintf("[%s]", host)
                                    : bks_strdup(host);
  if (cfg->public_url) {
    srv->public_url = bks_strdup(cfg->public_url);
    size_t n = srv->public_url ? strlen(srv->public_url) : 0;
    while (n && srv->public_url[n - 1] == '/')
      srv->public_url[--n] = '\0';
  }
  srv->keys = bks_keys_new();
  srv->sessions = bks_sessions_new();
  if (!srv->host || !srv->url_host || !srv->keys || !srv->sessions ||
      (cfg->public_url && !srv->public_url)) {
    bks_set_err(err, errlen, "out of memory");
    goto fail;
  }
  if (cfg->hmac_secret) {
    memcpy(srv->secret, cfg->hmac_secret, cfg->hmac_secret_len);
    srv->secret_len = cfg->hmac_secret_len;
  } else {
    srv->secret_len = 32;
    if (!bk_random_bytes(srv->secret, 32)) {
      bks_set_err(err, errlen, "no randomness for the HMAC secret");
      goto fail;
    }
  }
  if (cfg->root)
    srv->store = bks_store_new_disk(cfg->root, err, errlen);
  else if (!(srv->store = bks_store_new_memory()))
    bks_set_err(err, errlen, "out of memory");
  if (!srv->store)
    goto fail;
  bks_rs_sweep(srv);
  for (size_t i = 0; i < cfg->ndatasets; i++) {
    if (bks_dataset_add_locked(srv, cfg->datasets[i]) != 0) {
      bks_set_err(err, errlen,
                  "bad dataset hash '%.64s' (1 to 128 printable characters, "
                  "no quotes, backslashes or spaces)",
                  cfg->datasets[i] ? cfg->datasets[i] : "");
      goto fail;
    }
  }
  if (srv->ndatasets == 0) {
    char uuid[37];
    bks_uuid4(uuid);
    if (bks_dataset_add_locked(srv, uuid) != 0) {
      bks_set_err(err, errlen, "out of memory");
      goto fail;
    }
  }
  srv->dataset0 = srv->datasets[0]->hash;
  if (cfg->authorized_keys_file &&
      bks_keys_load(srv->keys, cfg->authorized_keys_file, err, errlen) != 0)
    goto fail;
  if (pipe2(srv->stop_pipe, O_CLOEXEC) != 0) {
    bks_set_err(err, errlen, "pipe: %s", strerror(errno));
    goto fail;
  }
  if (srv->tls) {
    if (cfg->tls_cert_file) {
      srv->cert_pem = bks_read_file(cfg->tls_cert_file, 1u << 20, NULL);
      if (!srv->cert_pem) {
        bks_set_err(err, errlen, "%s: %s", cfg->tls_cert_file,
                    strerror(errno));
        goto fail;
      }
      srv->key_pem = bks_read_file(cfg->tls_key_file, 1u << 20, NULL);
      if (!srv->key_pem) {
        bks_set_err(err, errlen, "%s: %s", cfg->tls_key_file,
                    strerror(errno));
        goto fail;
      }
    } else if (bks_make_self_signed(&srv->key_pem, &srv->cert_pem) != 0 ||
               !(srv->ca_file =
                     bks_write_temp_file("bulkup-serve-ca", srv->cert_pem))) {
      bks_set_err(err, errlen, "cannot make a self-signed certificate");
      goto fail;
    }
  }

  struct sockaddr_storage ss;
  socklen_t sslen = 0;
  int v6 = 0;
  if (resolve(host, cfg->port, &ss, &sslen, &v6, err, errlen) != 0)
    goto fail;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD |
                   MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
  if (v6)
    flags |= MHD_USE_IPv6;
  if (srv->tls)
    flags |= MHD_USE_TLS;
  const char *log = getenv("BK_TS_LOG");
  if (log && *log && strcmp(log, "0") != 0)
    flags |= MHD_USE_ERROR_LOG;
  struct MHD_OptionItem tls_ops[] = {
      {MHD_OPTION_HTTPS_MEM_KEY, 0, srv->key_pem},
      {MHD_OPTION_HTTPS_MEM_CERT, 0, srv->cert_pem},
      {MHD_OPTION_END, 0, NULL}};
  struct MHD_OptionItem no_ops[] = {{MHD_OPTION_END, 0, NULL}};
  /* One thread per connection, each with a small stack, as many as the
   * descriptors allow: a thousand idle connections must not lock out a
   * real client (issue 13 item 15). Beyond the limit, new connections
   * wait in the kernel's listen backlog. */
  unsigned limit = cfg->connection_limit;
  if (!limit) {
    struct rlimit rl;
    rlim_t soft = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
    if (soft == RLIM_INFINITY || soft > 65536 + 64)
      soft = 65536 + 64;
    limit = soft > 64 + 16 ? (unsigned)(soft - 64) : 16;
  }
  srv->daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, bks_http_access, srv, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&ss, MHD_OPTION_URI_LOG_CALLBACK, bks_http_uri_log,
      srv, MHD_OPTION_NOTIFY_COMPLETED, bks_http_completed, srv,
      MHD_OPTION_NOTIFY_CONNECTION, bks_http_notify_connection, srv,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)BKS_CONN_MEMORY,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->idle_timeout,
      MHD_OPTION_CONNECTION_LIMIT, limit,
      MHD_OPTION_THREAD_STACK_SIZE, (size_t)BKS_THREAD_STACK,
      MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
      MHD_OPTION_ARRAY, srv->tls ? tls_ops : no_ops, MHD_OPTION_END);
  if (!srv->daemon) {
    bks_set_err(err, errlen,
                "cannot listen on %s port %u (in use, no permission, or a "
                "bad TLS certificate/key)",
                host, (unsigned)cfg->port);
    goto fail;
  }
  const union MHD_DaemonInfo *di =
      MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
  if (!di || !di->port) {
    MHD_stop_daemon(srv->daemon);
    bks_set_err(err, errlen, "cannot read the listening port");
    goto fail;
  }
  srv->port = di->port;
  (void)sslen;
  {
    const char *h = srv->url_host;
    /* a wildcard address is not a place to connect to */
    if (strcmp(srv->host, "0.0.0.0") == 0)
      h = "127.0.0.1";
    else if (strcmp(srv->host, "::") == 0)
      h = "[::1]";
    srv->self_url = bks_asprintf("%s://%s:%u", srv->tls ? "https" : "http",
                                 h, (unsigned)srv->port);
    if (!srv->self_url) {
      MHD_stop_daemon(srv->daemon);
      bks_set_err(err, errlen, "out of memory");
      goto fail;
    }
  }
  *out = srv;
  return 0;
fail:
  server_free(srv);
  return -1;
}

void bks_server_stop(bks_server *srv) {
  if (!srv)
    return;
  /* Wake every sleeping fault first, so MHD_stop_daemon() can join the
   * connection threads without waiting for them. */
  char c = 1;
  while (write(srv->stop_pipe[1], &c, 1) < 0 && errno == EINTR)
    ;
  pthread_mutex_lock(&srv->mu);
  srv->stopping = 1;
  pthread_cond_broadcast(&srv->job_cv);
  pthread_mutex_unlock(&srv->mu);
  MHD_stop_daemon(srv->daemon);
  server_free(srv);
}

unsigned short bks_server_port(const bks_server *srv) { return srv->port; }

char *bks_server_url(const bks_server *srv, const char *path) {
  return bks_asprintf("%s%s", srv->self_url, path ? path : "");
}

const char *bks_server_ca_file(const bks_server *srv) { return srv->ca_file; }

const char *bks_server_root(const bks_server *srv) {
  return bks_store_root(srv->store);
}

int bks_server_add_key(bks_server *srv, const unsigned char public_key[32]) {
  return bks_keys_add(srv->keys, public_key);
}

int bks_server_add_dataset(bks_server *srv, const char *dataset_hash) {
  pthread_mutex_lock(&srv->mu);
  int rc = bks_dataset_add_locked(srv, dataset_hash);
  pthread_mutex_unlock(&srv->mu);
  return rc;
}

const char *bks_server_dataset(const bks_server *srv) {
  /* the first dataset is made at start, and never moves or changes */
  return srv->dataset0;
}

const char *bks_server_dataset_folder(const bks_server *srv,
                                      const char *dataset_hash) {
  bks_server *s = (bks_server *)srv;
  const char *folder = NULL;
  pthread_mutex_lock(&s->mu);
  long i = bks_dataset_find_locked(s, dataset_hash);
  if (i >= 0)
    folder = s->datasets[i]->folder;
  pthread_mutex_unlock(&s->mu);
  return folder;
}

void bks_server_set_clock(bks_server *srv, double unix_time) {
  pthread_mutex_lock(&srv->mu);
  srv->clock = unix_time;
  pthread_mutex_unlock(&srv->mu);
}

static const char *const call_names[BKS_CALL_COUNT] = {
    "presign", "dataset", "create", "poll", "job"};

static int api_fault_code_ok(bks_api_call call, const char *code) {
  if ((int)call < 0 || call >= BKS_CALL_COUNT || !code ||
      strlen(code) >= sizeof ((bks_api_err *)0)->code)
    return 0;
  if (call == BKS_CALL_PRESIGN) {
    char *end = NULL;
    long st = strtol(code, &end, 10);
    return isdigit((unsigned char)code[0]) && !*end && st >= 400 && st <= 599;
  }
  if (call == BKS_CALL_JOB)
    return strcmp(code, "ERROR") == 0 || strcmp(code, "CANCELLED") == 0;
  return bks_v1_code_status(code) != 0;
}

int bks_server_api_fault(bks_server *srv, bks_api_call call, const char *code,
                         unsigned n) {
  if (!api_fault_code_ok(call, code))
    return -1;
  pthread_mutex_lock(&srv->mu);
  bks_api_err *e = &srv->api_err[call];
  snprintf(e->code, sizeof e->code, "%s", code);
  e->left = n;
  e->forever = n == 0;
  pthread_mutex_unlock(&srv->mu);
  return 0;
}

int bks_parse_api_fault(const char *spec, bks_api_call *call, char *code,
                        size_t codelen, unsigned *n) {
  const char *c1 = strchr(spec, ':');
  if (!c1)
    return -1;
  int found = -1;
  for (int i = 0; i < BKS_CALL_COUNT; i++)
    if ((size_t)(c1 - spec) == strlen(call_names[i]) &&
        strncmp(spec, call_names[i], (size_t)(c1 - spec)) == 0)
      found = i;
  if (found < 0)
    return -1;
  const char *c2 = strchr(c1 + 1, ':');
  size_t clen = c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1);
  if (clen == 0 || clen >= codelen)
    return -1;
  memcpy(code, c1 + 1, clen);
  code[clen] = '\0';
  *n = 0;
  if (c2) {
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(c2 + 1, &end, 10);
    if (!isdigit((unsigned char)c2[1]) || *end || errno || v == 0 ||
        v > 1000000000UL)
      return -1;
    *n = (unsigned)v;
  }
  *call = (bks_api_call)found;
  return api_fault_code_ok(*call, code) ? 0 : -1;
}

void bks_server_set_faults(bks_server *srv, const bks_faults *faults) {
  pthread_mutex_lock(&srv->mu);
  srv->faults = *faults;
  if (!srv->faults.status)
    srv->faults.status = 503;
  if (faults->seed)
    bk_rng_seed(&srv->rng, faults->seed);
  pthread_mutex_unlock(&srv->mu);
}

void bks_server_set_url_ttl(bks_server *srv, double seconds) {
  pthread_mutex_lock(&srv->mu);
  srv->url_ttl = seconds;
  pthread_mutex_unlock(&srv->mu);
}

void bks_server_set_job_pending(bks_server *srv, double seconds) {
  pthread_mutex_lock(&srv->mu);
  srv->job_pending = seconds;
  pthread_mutex_unlock(&srv->mu);
}

void bks_server_script(bks_server *srv, const char *path,
                       const bks_action *actions, size_t n) {
  if (!n)
    return;
  /* Copy outside the lock, then append under it. */
  bks_act *acts = calloc(n, sizeof *acts);
  if (!acts)
    return;
  for (size_t i = 0; i < n; i++) {
    acts[i].fault = actions[i].fault;
    acts[i].status = actions[i].status;
    acts[i].headers = bks_strdup(actions[i].headers);
    acts[i].body = bks_strdup(actions[i].body);
    acts[i].seconds = actions[i].seconds;
    acts[i].after_bytes = actions[i].after_bytes;
  }
  pthread_mutex_lock(&srv->mu);
  bks_script **pp = &srv->any;
  if (path) {
    pp = &srv->scripts;
    while (*pp && strcmp((*pp)->path, path) != 0)
      pp = &(*pp)->next;
  }
  bks_script *s = *pp;
  if (!s) {
    s = calloc(1, sizeof *s);
    if (s && path && !(s->path = bks_strdup(path))) {
      free(s);
      s = NULL;
    }
    if (s)
      *pp = s;
  }
  if (s && s->n + n > s->cap) {
    size_t cap = s->cap ? s->cap : 4;
    while (cap < s->n + n)
      cap *= 2;
    bks_act *a = realloc(s->acts, cap * sizeof *a);
    if (a) {
      s->acts = a;
      s->cap = cap;
    }
  }
  int ok = s && s->n + n <= s->cap;
  if (ok) {
    memcpy(s->acts + s->n, acts, n * sizeof *acts);
    s->n += n;
  }
  pthread_mutex_unlock(&srv->mu);
  if (!ok) {
    for (size_t i = 0; i < n; i++)
      bks_act_free(&acts[i]);
  }
  free(acts);
}

char *bks_server_sign_storage_url(bks_server *srv, const char *object_key,
                                  const char *content_type_pattern,
                                  double ttl) {
  char *base = bks_strdup(srv->public_url ? srv->public_url : srv->self_url);
  char *url = base ? bks_sign_url(srv, base, object_key,
                                      content_type_pattern, ttl)
                   : NULL;
  free(base);
  return url;
}

long long bks_server_object_sha256(bks_server *srv, const char *key,
                                   char out[65]) {
  return bks_store_info(srv->store, key, out);
}

void *bks_server_object_data(bks_server *srv, const char *key, size_t *len) {
  return bks_store_read(srv->store, key, len);
}

int bks_server_object_delete(bks_server *srv, const char *key) {
  return bks_store_delete(srv->store, key);
}

int bks_server_job_cancel(bks_server *srv, const char *process_hash) {
  return bks_v1_job_cancel(srv, process_hash);
}

void bks_server_counters(bks_server *srv, bks_counters *out) {
  pthread_mutex_lock(&srv->mu);
  *out = srv->counters;
  pthread_mutex_unlock(&srv->mu);
}

size_t bks_server_request_count(bks_server *srv) {
  pthread_mutex_lock(&srv->mu);
  size_t n = srv->nreqs;
  pthread_mutex_unlock(&srv->mu);
  return n;
}

int bks_server_request_get(bks_server *srv, size_t i, bks_request *out) {
  int rc = -1;
  pthread_mutex_lock(&srv->mu);
  if (i < srv->nreqs) {
    *out = srv->reqs[i];
    rc = 0;
  }
  pthread_mutex_unlock(&srv->mu);
  return rc;
}

size_t bks_server_count_path(bks_server *srv, const char *path) {
  size_t n = 0;
  pthread_mutex_lock(&srv->mu);
  for (size_t i = 0; i < srv->nreqs; i++)
    n += strcmp(srv->reqs[i].path, path) == 0;
  pthread_mutex_unlock(&srv->mu);
  return n;
}

size_t bks_server_wait_requests(bks_server *srv, size_t n, double timeout) {
  struct timespec end;
  clock_gettime(CLOCK_MONOTONIC, &end);
  if (!(timeout > 0))
    timeout = 0;
  if (timeout > 1e6)
    timeout = 1e6;
  time_t whole = (time_t)timeout;
  end.tv_sec += whole;
  end.tv_nsec += (long)((timeout - (double)whole) * 1e9);
  if (end.tv_nsec >= 1000000000L) {
    end.tv_sec++;
    end.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&srv->mu);
  while (srv->nreqs < n &&
         pthread_cond_timedwait(&srv->cv, &srv->mu, &end) != ETIMEDOUT)
    ;
  size_t got = srv->nreqs;
  pthread_mutex_unlock(&srv->mu);
  return got;
}

void bks_server_reset(bks_server *srv) {
  bks_store_clear(srv->store);
  bks_rs_reset(srv);
  pthread_mutex_lock(&srv->mu);
  bks_scripts_clear_locked(srv);
  free(srv->reqs);
  srv->reqs = NULL;
  srv->nreqs = srv->capreqs = 0;
  unsigned long conns = srv->counters.connections;
  memset(&srv->counters, 0, sizeof srv->counters);
  srv->counters.connections = conns;
  pthread_mutex_unlock(&srv->mu);
}
