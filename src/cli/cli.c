/*
 * cli.c - diagnostics shared by the subcommands.
 */
#include "cli.h"

#include <stdio.h>

void cli_verror(const char *fmt, va_list ap) {
  /* Format into one buffer so that a message is written in one piece even
   * when a progress line or another thread writes to stderr too. */
  char buf[4096];
  int n = snprintf(buf, sizeof buf, "%s: ", CLI_PROG);
  if (n < 0)
    n = 0;
  vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
  flockfile(stderr);
  fputs(buf, stderr);
  fputc('\n', stderr);
  fflush(stderr);
  funlockfile(stderr);
}

void cli_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cli_verror(fmt, ap);
  va_end(ap);
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cli_verror(fmt, ap);
  va_end(ap);
  if (cmd)
    fprintf(stderr, "Try '%s %s --help' for more information.\n", CLI_PROG,
            cmd);
  else
    fprintf(stderr, "Try '%s --help' for more information.\n", CLI_PROG);
  return CLI_EXIT_USAGE;
}
