/*
 * bk_proxy_main - the fault-injecting proxy of tests/support/bk_proxy.h as
 * a program, for shell tests that put it between the bulkup tool and a real
 * server:
 *
 *   bk_proxy_main HOST PORT [--per-exchange] [--p PROBABILITY] [--seed N]
 *                 [--kinds MASK] [--stats FILE]
 *
 * Prints "PROXY_PORT=N" and "PROXY_URL=http://127.0.0.1:N" on standard
 * output (a shell can eval them), then forwards until SIGTERM or SIGINT; at
 * exit it writes its counters as shell assignments (PROXY_ACCEPTED=...,
 * PROXY_EXCHANGES=..., PROXY_FIRED=..., PROXY_FIRED_RESET=..., ...) to FILE
 * (or to standard error) and exits 0. MASK is a sum of 1 << kind (see
 * bk_proxy_kind); default all kinds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bk_proxy.h"

#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void) {
  fprintf(stderr, "usage: bk_proxy_main HOST PORT [--per-exchange] [--p P] "
                  "[--seed N] [--kinds MASK] [--stats FILE]\n");
  return 2;
}

static void write_stats(FILE *f, const bk_proxy_stats *st) {
  unsigned long long fired = 0;
  for (int k = 1; k < BK_PROXY_KIND_COUNT; k++)
    fired += st->fired[k];
  fprintf(f, "PROXY_ACCEPTED=%llu\nPROXY_EXCHANGES=%llu\nPROXY_FIRED=%llu\n"
             "PROXY_BYTES_C2S=%llu\nPROXY_BYTES_S2C=%llu\n",
          st->accepted, st->periods, fired, st->bytes_c2s, st->bytes_s2c);
  for (int k = 1; k < BK_PROXY_KIND_COUNT; k++)
    fprintf(f, "PROXY_FIRED_%s=%llu\n", bk_proxy_kind_name((bk_proxy_kind)k),
            st->fired[k]);
}

int main(int argc, char **argv) {
  if (argc < 3)
    return usage();
  const char *host = argv[1];
  char *end;
  unsigned long port = strtoul(argv[2], &end, 10);
  if (*end || port == 0 || port > 65535)
    return usage();
  bk_proxy_options o;
  memset(&o, 0, sizeof o);
  double p = 0;
  unsigned long long seed = 1;
  unsigned int kinds = BK_PROXY_ALL_KINDS;
  const char *stats = NULL;
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "--per-exchange"))
      o.per_exchange = 1;
    else if (!strcmp(argv[i], "--p") && i + 1 < argc)
      p = strtod(argv[++i], NULL);
    else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
      seed = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--kinds") && i + 1 < argc)
      kinds = (unsigned int)strtoul(argv[++i], NULL, 0);
    else if (!strcmp(argv[i], "--stats") && i + 1 < argc)
      stats = argv[++i];
    else
      return usage();
  }

  /* Block the stop signals before any thread starts, then wait for one. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  bk_proxy *px;
  if (bk_proxy_start(&px, host, (unsigned short)port, &o) != 0) {
    fprintf(stderr, "bk_proxy_main: cannot start a proxy to %s:%lu\n", host,
            port);
    return 1;
  }
  if (p > 0)
    bk_proxy_set_random(px, p, seed, kinds);
  printf("PROXY_PORT=%u\nPROXY_URL=http://127.0.0.1:%u\n",
         (unsigned)bk_proxy_port(px), (unsigned)bk_proxy_port(px));
  fflush(stdout);

  int sig;
  while (sigwait(&set, &sig) != 0)
    ;
  bk_proxy_stats st;
  bk_proxy_stats_get(px, &st);
  bk_proxy_stop(px);
  FILE *f = stats ? fopen(stats, "w") : stderr;
  if (!f)
    return 1;
  write_stats(f, &st);
  if (f != stderr)
    fclose(f);
  return 0;
}
