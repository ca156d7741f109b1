/*
 * cli.h - what the parts of the bulkup command-line tool share: exit
 * statuses, diagnostics on stderr, and the subcommand entry points.
 *
 * The tool uses the library through <bulkup.h> only, like any program.
 */
#ifndef BULKUP_CLI_H
#define BULKUP_CLI_H

#include <stdarg.h>

/* Exit statuses (documented in `bulkup upload --help`). */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILED 1   /* one or more uploads failed */
#define CLI_EXIT_USAGE 2    /* bad usage or bad input; nothing uploaded */
#define CLI_EXIT_SIGINT 130 /* 128 + SIGINT */
#define CLI_EXIT_SIGTERM 143

/* The program's name in messages. */
#define CLI_PROG "bulkup"

/* "bulkup: <message>\n" on stderr. Thread-safe (one write per message as
 * far as stdio allows). */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_verror(const char *fmt, va_list ap);

/* A usage error: the message, then "Try 'bulkup <cmd> --help'." Returns
 * CLI_EXIT_USAGE so callers can `return cli_usage_error(...)`. cmd may be
 * NULL for the top level. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Subcommands: argv[0] is the subcommand's name. Return the exit status. */
int cli_upload_main(int argc, char **argv);
/* The subcommand's --help text on `out`. */
void cli_upload_help(void *out);
/* `bulkup serve`: the reference server (src/cli/serve.c). */
int cli_serve_main(int argc, char **argv);
void cli_serve_help(void *out);
/* `bulkup bench`: PUT generated objects and report rates and latencies
 * (src/cli/bench.c). */
int cli_bench_main(int argc, char **argv);
void cli_bench_help(void *out);
/* `bulkup report merge`: shard reports into one (src/cli/report_merge.c). */
int cli_report_main(int argc, char **argv);
void cli_report_help(void *out);

#endif
