/* libFuzzer target: the report reader of `bulkup report merge`. The input
 * is written to a file and merged with itself and with a valid report, the
 * way the command reads shard reports. */
#include "cli.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char a[] = "/tmp/bulkup-fuzz-report-XXXXXX";
  int fd = mkstemp(a);
  if (fd < 0)
    return 0;
  if (write(fd, data, size) != (ssize_t)size) {
    close(fd);
    unlink(a);
    return 0;
  }
  close(fd);
  static const char good[] =
      "{\"summary\": {\"submitted\": 1, \"succeeded\": 1, \"failed\": 0, "
      "\"cancelled\": 0, \"retries\": 0, \"bytes_sent\": 1, "
      "\"bytes_succeeded\": 1, \"elapsed_s\": 0.1}, \"failures\": [], "
      "\"cancelled\": []}";
  char b[] = "/tmp/bulkup-fuzz-report-XXXXXX";
  fd = mkstemp(b);
  if (fd >= 0) {
    if (write(fd, good, sizeof good - 1) < 0) {
      /* the merge below then reads a short file: still a valid run */
    }
    close(fd);
  }
  /* The merged report goes to a file of its own: the command writes a
   * temporary file beside its output and renames it over the output, which
   * for /dev/null (run as root) would replace the device with a file. */
  char out[] = "/tmp/bulkup-fuzz-report-out-XXXXXX";
  int ofd = mkstemp(out);
  if (ofd < 0) {
    unlink(a);
    if (fd >= 0)
      unlink(b);
    return 0;
  }
  close(ofd);
  char *argv[] = {"report", "merge", "-q", "--allow-conflicts", "-o",
                  out, a, a, b, NULL};
  int rc = cli_report_main(9, argv);
  /* 0 merged, 1 conflicts, 2 malformed input: nothing else. */
  if (rc != 0 && rc != 1 && rc != 2)
    abort();
  unlink(out);
  unlink(a);
  if (fd >= 0)
    unlink(b);
  return 0;
}
