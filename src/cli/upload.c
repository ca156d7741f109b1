/*
 * upload.c - `bulkup upload`'s entry point: the options (upload_options.c)
 * are parsed and checked, the open-file limit raised to fit the run, the
 * signals routed to their thread (signals.c), and the run handed to the
 * direct modes (upload_direct.c: --to, --manifest) or to the workflow
 * (upload_api.c: --api, or the embedded reference server). Its --help text
 * is upload_help.c.
 *
 * Signals: SIGINT and SIGTERM are blocked in every thread (the mask is set
 * here before any thread starts, and threads inherit it); one thread
 * (signals.c) takes them with sigwait() and calls the cancel hook of what
 * runs. A second signal, a second or more after the first, exits at once.
 */
#include "upload.h"

#include "cli.h"
#include "manifest.h"

#include <bulkup.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

/* Open files a run needs: a few dozen of our own (standard streams,
 * manifest, journal, report, results, libcurl's and OpenSSL's files), and
 * per transfer its connection, its source file and one more for the
 * moments it holds two (a resolver's socket pair, a second address tried
 * while connecting; not all transfers at once), with the embedded server
 * the server's end of the connection too; per event-loop thread,
 * libcurl's wake-up socket pair. 1,024 transfers fit in a hard limit of
 * 4,096. */
#define FD_BASE 64
#define FD_PER_WORKER 3
#define FD_PER_THREAD 2

/* Transfers at most: --workers, or --workers-max when adaptive. */
static unsigned long long upload_transfers_max(const upload_cli *c) {
  return c->opt.workers != BULKUP_WORKERS_AUTO ? c->opt.workers
         : c->opt.workers_max                  ? c->opt.workers_max
                                               : BULKUP_DEFAULT_WORKERS_MAX;
}

unsigned long long upload_fds_needed(const upload_cli *c) {
  unsigned long long w = upload_transfers_max(c);
  unsigned long long t = c->opt.threads == BULKUP_THREADS_AUTO
                             ? bulkup_threads_auto()
                         : c->opt.threads                    ? c->opt.threads
                                                             : w;
  if (t > w)
    t = w;
  unsigned long long per = FD_PER_WORKER;
  if (upload_is_workflow(c) && !c->api)
    per++; /* the embedded server's end */
  return FD_BASE + w * per + t * FD_PER_THREAD;
}

/* Raise the soft open-file limit to the hard one (as most servers do: the
 * soft default, often 1024, is far below what the range of --workers
 * needs), and refuse a run whose transfers cannot fit in it: past the
 * limit, sockets cannot be opened and poll() fails for every transfer.
 * -1 to go on, else the exit status. */
static int fit_open_files(upload_cli *c) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return -1;
  if (rl.rlim_cur != rl.rlim_max) {
    struct rlimit up = {rl.rlim_max, rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &up) == 0)
      rl.rlim_cur = rl.rlim_max;
  }
  unsigned long long need = upload_fds_needed(c);
  if (rl.rlim_cur == RLIM_INFINITY || need <= (unsigned long long)rl.rlim_cur)
    return -1;
  unsigned long long w = upload_transfers_max(c);
  bool adaptive = c->opt.workers == BULKUP_WORKERS_AUTO;
  unsigned long long fit = 0;
  while (fit < w) {
    upload_cli t = *c;
    if (adaptive)
      t.opt.workers_max = (unsigned)(fit + 1);
    else
      t.opt.workers = (unsigned)(fit + 1);
    if (upload_fds_needed(&t) > (unsigned long long)rl.rlim_cur)
      break;
    fit++;
  }
  if (adaptive && fit >= 1) {
    /* Adaptive concurrency is bounded by the open-file limit too. */
    c->opt.workers_max = (unsigned)fit;
    return -1;
  }
  cli_error("--workers %llu needs up to %llu open files, but the limit is "
            "%llu (ulimit -n; its hard limit is %llu): use --workers %llu or "
            "fewer, or raise the hard limit. Nothing was uploaded",
            w, need, (unsigned long long)rl.rlim_cur,
            (unsigned long long)rl.rlim_max, fit);
  return CLI_EXIT_USAGE;
}

int cli_upload_main(int argc, char **argv) {
  upload_cli c;
  int rc = upload_parse_args(&c, argc, argv);
  if (rc == -1)
    rc = upload_check_args(&c);
  if (rc == -1 && !c.dry_run)
    rc = fit_open_files(&c);
  if (rc != -1) {
    extras_free(&c.x);
    return rc;
  }

  /* Block the signals before any thread exists, so that every thread
   * (ours and the library's) inherits the mask and only the signal
   * thread receives them. SIGUSR1 is how we stop that thread. */
  static sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  sigset_t old;
  if (pthread_sigmask(SIG_BLOCK, &set, &old) != 0) {
    cli_error("cannot block signals");
    return CLI_EXIT_FAILED;
  }
  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) == 0) {
    upload_set_wake_fd(wake[1]);
    manifest_set_wake_fd(wake[0]);
  }
  pthread_t sig_thread;
  if (pthread_create(&sig_thread, NULL, upload_signal_thread, &set) != 0) {
    cli_error("cannot start the signal thread");
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return CLI_EXIT_FAILED;
  }
  rc = upload_is_workflow(&c) ? upload_api_run(&c) : upload_direct_run(&c);
  extras_free(&c.x);
  upload_signal_thread_stopping();
  pthread_kill(sig_thread, SIGUSR1);
  pthread_join(sig_thread, NULL);
  return rc;
}
