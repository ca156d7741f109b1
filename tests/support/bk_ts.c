/*
 * bk_ts.c - the fault-scripting test server (see bk_ts.h): the reference
 * server (src/server) in raw mode with the memory store.
 */
#include "bk_ts.h"

#include <stdlib.h>

int bk_ts_start(bk_ts **out, const bk_ts_options *opt) {
  bks_config cfg;
  bks_config_init(&cfg);
  cfg.mode = BKS_MODE_RAW;
  cfg.tls = opt && opt->tls;
  return bks_server_start(out, &cfg, NULL, 0);
}

void bk_ts_stop(bk_ts *ts) { bks_server_stop(ts); }

unsigned short bk_ts_port(const bk_ts *ts) { return bks_server_port(ts); }

char *bk_ts_url(const bk_ts *ts, const char *path) {
  return bks_server_url(ts, path);
}

const char *bk_ts_ca_file(const bk_ts *ts) { return bks_server_ca_file(ts); }

void bk_ts_script(bk_ts *ts, const char *path, const bk_ts_action *actions,
                  size_t n) {
  bks_server_script(ts, path, actions, n);
}

size_t bk_ts_request_count(bk_ts *ts) { return bks_server_request_count(ts); }

int bk_ts_request_get(bk_ts *ts, size_t i, bk_ts_request *out) {
  return bks_server_request_get(ts, i, out);
}

size_t bk_ts_count_path(bk_ts *ts, const char *path) {
  return bks_server_count_path(ts, path);
}

size_t bk_ts_requests_started(bk_ts *ts) {
  bks_counters c;
  bks_server_counters(ts, &c);
  size_t n = 0;
  for (size_t i = 0; i < BKS_EP_COUNT; i++)
    n += (size_t)c.requests[i];
  return n;
}

unsigned long bk_ts_connections(bk_ts *ts) {
  bks_counters c;
  bks_server_counters(ts, &c);
  return c.connections;
}

long long bk_ts_object_sha256(bk_ts *ts, const char *path, char out[65]) {
  return bks_server_object_sha256(ts, path, out);
}

void *bk_ts_object_data(bk_ts *ts, const char *path, size_t *len) {
  return bks_server_object_data(ts, path, len);
}

size_t bk_ts_wait_requests(bk_ts *ts, size_t n, double timeout) {
  return bks_server_wait_requests(ts, n, timeout);
}

void bk_ts_reset(bk_ts *ts) { bks_server_reset(ts); }

const char *bk_ts_fault_name(bk_ts_fault fault) { return bks_fault_name(fault); }
