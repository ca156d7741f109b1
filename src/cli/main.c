/*
 * main.c - `bulkup`: the table of subcommands, --help and --version.
 *
 * A subcommand is one row of `commands`: its name, a line for the
 * overview, its entry point and its help printer. Later subcommands
 * (serve, bench, report merge) are added as rows.
 */
#include "cli.h"

#include <bulkup.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

typedef struct cli_command {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv);
  void (*help)(void *out);
} cli_command;

static const cli_command commands[] = {
    {"upload", "upload files (a directory tree or a manifest) by HTTP PUT",
     cli_upload_main, cli_upload_help},
    {"serve", "run the reference server (API and storage) over a directory",
     cli_serve_main, cli_serve_help},
    {"report", "merge the reports of sharded uploads ('report merge')",
     cli_report_main, cli_report_help},
    {"bench", "PUT generated objects to any endpoint; rates and latencies",
     cli_bench_main, cli_bench_help},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void main_help(FILE *out) {
  fprintf(out,
          "Usage: bulkup COMMAND [OPTION]... [ARG]...\n"
          "       bulkup --help | --version\n"
          "\n"
          "Upload very many files to cloud storage by HTTP PUT, with\n"
          "retries, timeouts and a report of every failure.\n"
          "\n"
          "Commands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(out,
          "  %-10s show a command's help\n"
          "\n"
          "Options:\n"
          "  -h, --help     show this help\n"
          "  -V, --version  show the library version\n"
          "\n"
          "Run 'bulkup COMMAND --help' for a command's options.\n"
          "Exit status: 0 success, 1 failed uploads, 2 bad usage or input,\n"
          "130/143 interrupted by SIGINT/SIGTERM.\n",
          "help");
}

static const cli_command *find_command(const char *name) {
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

int main(int argc, char **argv) {
  /* A reader of our output that goes away (`bulkup upload --results - |
   * head`) must not kill the run: every write then fails with EPIPE, and
   * each writer says so and goes on (--results stops its stream; the
   * uploads and the report carry on). Ignored before any thread starts, for
   * every command (the server's connections too). */
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    main_help(stderr);
    return CLI_EXIT_USAGE;
  }
  const char *a = argv[1];
  if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
    main_help(stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
    printf("bulkup %s\n", bulkup_version_string());
    return CLI_EXIT_OK;
  }
  if (strcmp(a, "help") == 0) {
    if (argc < 3) {
      main_help(stdout);
      return CLI_EXIT_OK;
    }
    const cli_command *c = find_command(argv[2]);
    if (!c)
      return cli_usage_error(NULL, "unknown command '%s'", argv[2]);
    c->help(stdout);
    return CLI_EXIT_OK;
  }
  if (a[0] == '-')
    return cli_usage_error(NULL, "unknown option '%s'", a);
  const cli_command *c = find_command(a);
  if (!c)
    return cli_usage_error(NULL, "unknown command '%s'", a);
  return c->run(argc - 1, argv + 1);
}
