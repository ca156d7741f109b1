/*
 * inputs.c - the PATH arguments and the shard of `bulkup upload`: the
 * checks both the direct run (upload.c) and the workflow (upload_api.c)
 * make of their PATHs before walking them, and which items fall in this
 * run's --shard.
 */
#include "upload.h"

#include "cli.h"

#include <bulkup.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every PATH exists, is a file or a directory, and a file is readable;
 * each problem is named. Returns -1 when all are fine, else the exit
 * status for bad input (nothing is uploaded). */
int upload_check_path_args(const upload_cli *c) {
  int bad = 0;
  for (int i = 0; i < c->npaths; i++) {
    struct stat st;
    if (stat(c->paths[i], &st) != 0) {
      cli_error("%s: %s", c->paths[i], strerror(errno));
      bad++;
    } else if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
      cli_error("%s: not a regular file or directory", c->paths[i]);
      bad++;
    } else if (S_ISREG(st.st_mode) && access(c->paths[i], R_OK) != 0) {
      cli_error("%s: %s", c->paths[i], strerror(errno));
      bad++;
    }
  }
  if (bad) {
    cli_error("nothing uploaded: %d PATH%s cannot be uploaded", bad,
              bad == 1 ? "" : "s");
    return CLI_EXIT_USAGE;
  }
  return -1;
}

bool upload_in_shard(const upload_cli *c, const char *key, size_t len) {
  return c->shard_n <= 1 || bulkup_shard_hash(key, len) % c->shard_n ==
                                c->shard_k;
}

const char *upload_shard_text(const upload_cli *c) {
  static char buf[48];
  if (!c->shard_n)
    return "";
  snprintf(buf, sizeof buf, "shard %u/%u", c->shard_k, c->shard_n);
  return buf;
}
