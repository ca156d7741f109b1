/*
 * upload.c - `bulkup upload`: options, input checks, the upload run, the
 * summary and the exit status.
 *
 * A run has two phases. The first checks the input without uploading
 * anything: every PATH exists, every directory can be walked (counting
 * files and bytes for the progress line), every manifest record parses,
 * names an existing file and an http(s) URL. Bad input ends the run here
 * with status 2. The second phase walks or reads the input again and
 * streams the items into the uploader, whose bounded queue blocks us when
 * the workers are behind, so memory stays flat however many files there
 * are. A manifest that cannot be read twice (standard input, a pipe) is
 * read once: a bad record then becomes a failed item in the report.
 *
 * Signals: SIGINT and SIGTERM are blocked in every thread (the mask is set
 * here before any thread starts, and threads inherit it); one thread
 * (signals.c) takes them with sigwait() and cancels the run. A second
 * signal, a second or more after the first, exits at once. The walk of
 * the PATHs (both phases' walks) and shards are in inputs.c, the summary
 * and --report in console.c: both modes use them.
 */
#include "upload.h"

#include "cli.h"
#include "manifest.h"
#include "numparse.h"
#include "progress.h"
#include "report_merge.h"
#include "urlenc.h"

#include <bulkup.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_BAD_LINES_SHOWN 20


/* ---- help ---------------------------------------------------------------
 */

static const char upload_help[] =
    "Usage: bulkup upload [OPTION]... PATH...\n"
    "       bulkup upload [OPTION]... [--api URL] --key-file FILE --dataset HASH\n"
    "                     [--folder UUID] (--image-group TITLE [--create-video|\n"
    "                     --no-create-video] | --dicom-series TITLE | --video |\n"
    "                     --image) PATH...\n"
    "       bulkup upload [OPTION]... --to URL_PREFIX|s3://BUCKET/PREFIX PATH...\n"
    "       bulkup upload [OPTION]... --manifest FILE\n"
    "\n"
    "Upload files by HTTP PUT, many at a time, with retries, and report\n"
    "every failure.\n"
    "\n"
    "The workflow (--dataset, or PATHs alone) speaks the Encord API as\n"
    "Encord's Python SDK does (ENCORD_WIRE.md): it asks for signed upload\n"
    "URLs (200 at a time, while the uploads run), PUTs each file to its URL,\n"
    "then posts the job that creates the data units and waits for it (long\n"
    "polls); it prints one 'DATA_HASH  TITLE' line per data unit the API\n"
    "reports on standard output, and nothing else there. The kinds, each\n"
    "the SDK call of the same name:\n"
    "  --image-group TITLE   one image group of all the files\n"
    "                        (create_image_group; one data unit, or several\n"
    "                        when the API clusters it by resolution)\n"
    "  --dicom-series TITLE  one DICOM series of all the files\n"
    "                        (create_dicom_series)\n"
    "  --video               one video per file (upload_video)\n"
    "  --image               one image per file (upload_image)\n"
    "Each PATH is a file or a directory, walked recursively; a directory's\n"
    "files are taken in sorted (byte) order. Every PATH is checked before\n"
    "any request. With a failed upload no job is posted, unless\n"
    "--allow-failures (the data units are then made of the files that were\n"
    "uploaded). API requests are signed with the Ed25519 key, whose id is\n"
    "derived from it (the public key in hex).\n"
    "\n"
    "With PATHs alone (no --dataset, --api, --to or --manifest), the API is\n"
    "an embedded reference server speaking the same protocol, started for\n"
    "the run on 127.0.0.1 with a throwaway key and dataset, storing the\n"
    "objects under --store DIR (default ./bulkup-store); the kind is an\n"
    "image group titled --image-group TITLE or the first PATH's base name.\n"
    "It is the quickest way to see the whole workflow:\n"
    "bulkup upload examples/images\n"
    "\n"
    "--journal and --content-type are for --to and --manifest only, as are\n"
    "--header, --metadata and the Azure options (the workflow refuses them:\n"
    "it PUTs to the URLs the API signed, with the headers they were signed\n"
    "for).\n"
    "\n"
    "With --to, each PATH is a file or a directory. A file goes to\n"
    "URL_PREFIX/NAME, NAME being its base name. A directory is walked\n"
    "recursively and each file in it goes to URL_PREFIX/REL, REL being the\n"
    "file's path relative to that directory (the directory's own name is\n"
    "not part of it): with --to https://h/p, photos/a/b.jpg goes to\n"
    "https://h/p/a/b.jpg. NAME and REL are percent-encoded byte by byte:\n"
    "letters, digits, '-', '.', '_', '~' and '/' are kept; everything else\n"
    "(spaces, quotes, '%', '?', '#', non-ASCII and non-UTF-8 bytes) becomes\n"
    "%XX. Symbolic links to files are followed; symbolic links to\n"
    "directories are not (they are skipped with a note, so link cycles are\n"
    "harmless); FIFOs, sockets and devices are skipped with a note. Files\n"
    "with the same REL under two PATHs go to the same URL.\n"
    "\n"
    "With --manifest, FILE lists each file and its URL ('-' reads standard\n"
    "input). Paths in it are relative to the current directory.\n"
    "\n"
    "Input:\n"
    "  --to URL_PREFIX         base URL for the PATHs: http:// or https://,\n"
    "                          without query or fragment; or\n"
    "                          s3://BUCKET/PREFIX, gs://BUCKET/PREFIX (the\n"
    "                          file goes to key PREFIX/REL, signed; see\n"
    "                          below). A manifest's URLs may be\n"
    "                          s3://BUCKET/KEY and gs://BUCKET/KEY too\n"
    "  --manifest FILE         read the files and URLs from FILE\n"
    "\n"
    "The workflow:\n"
    "  --dataset HASH          the dataset the data units go to (the SDK's\n"
    "                          get_dataset(HASH) is checked first)\n"
    "  --api URL               the API's base URL (default, with --dataset:\n"
    "                          https://api.encord.com), or e.g. the one\n"
    "                          'bulkup serve' prints\n"
    "  --key-file FILE         the Ed25519 private key that signs API\n"
    "                          requests: unencrypted OpenSSH (ssh-keygen -t\n"
    "                          ed25519 -N '') or PEM PKCS#8 (openssl genpkey\n"
    "                          -algorithm ed25519); refused if group or\n"
    "                          others may read it (chmod 600). Default: the\n"
    "                          file named by $ENCORD_SSH_KEY_FILE, else the\n"
    "                          key text in $ENCORD_SSH_KEY (as the SDK)\n"
    "  --key-id ID             optional check: refuse to run unless ID is\n"
    "                          the key's id (its public key in hex)\n"
    "  --folder UUID           the storage folder of the new items\n"
    "                          (folderUuid; datasets that do not mirror a\n"
    "                          folder may need it)\n"
    "  --image-group TITLE, --dicom-series TITLE, --video, --image\n"
    "                          the kind, as above (one of them with\n"
    "                          --dataset)\n"
    "  --create-video, --no-create-video\n"
    "                          image group: ask for a video made from the\n"
    "                          group and clustering by resolution, both or\n"
    "                          neither, as the SDK ties them (default: on)\n"
    "  --files-per-job N       --video/--image: files listed in one job,\n"
    "                          1..1000 (default 1, the SDK's way: one job\n"
    "                          per file; the payload's videos/images are\n"
    "                          lists, so N > 1 posts fewer jobs, each file\n"
    "                          still its own data unit)\n"
    "  --store DIR             the embedded server's store (default\n"
    "                          ./bulkup-store, created if missing)\n"
    "  Every transfer option below applies; --max-retries,\n"
    "  --backoff-factor, --connection-retries and the three timeouts also\n"
    "  govern each API request (the job POST is never retried).\n"
    "\n"
    "Content:\n"
    "  --data-type T           the platform data type, which picks the\n"
    "                          Content-Type (--to and --manifest; in the\n"
    "                          workflow the kind does): image (default), img_group,\n"
    "                          video, audio, dicom, dicom_study, nifti,\n"
    "                          plain_text, pdf, group, scene\n"
    "  --content-type CT       send Content-Type CT for every file (a\n"
    "                          manifest's content_type wins)\n"
    "  --content-md5           send Content-MD5, so that the server rejects\n"
    "                          a body corrupted on the way\n"
    "  --header 'NAME: VALUE'  send this header with every file (repeatable):\n"
    "                          NAME a token, VALUE not empty and without CR,\n"
    "                          LF or another control character; Host,\n"
    "                          Content-Length, Transfer-Encoding and Expect\n"
    "                          are refused (exit 2). It replaces bulkup's own\n"
    "                          Content-Type, Cache-Control, Content-MD5, and\n"
    "                          Azure's x-ms-version and x-ms-blob-type. A JSON\n"
    "                          Lines manifest line's \"headers\" win over it\n"
    "  --metadata KEY=VALUE    object metadata (repeatable; KEY letters,\n"
    "                          digits, '-', '_'), sent as x-ms-meta-KEY to\n"
    "                          Azure (az://, Azure URLs), x-goog-meta-KEY to\n"
    "                          storage.googleapis.com (gs://), x-amz-meta-KEY\n"
    "                          to anything else (s3://, the S3 API)\n"
    "  --cache-control VALUE   the Cache-Control header (default\n"
    "                          max-age=86400)\n"
    "\n"
    "Azure Blob Storage (see README.md, 'Azure'):\n"
    "  A URL whose host ends in .blob.core.windows.net, or whose query holds\n"
    "  a SAS (sv= and sig=, as Azurite's path-style URLs do), is a blob: each\n"
    "  PUT carries x-ms-blob-type: BlockBlob and x-ms-version: "
    BULKUP_AZURE_VERSION "\n"
    "  (unless --header sets them), Cache-Control goes as\n"
    "  x-ms-blob-cache-control, and ServerBusy, OperationTimedOut and\n"
    "  InternalError (x-ms-error-code) are retried, authentication and\n"
    "  authorisation failures never; the SAS's sig is always redacted.\n"
    "  --azure-sas TOKEN       the SAS token for az://ACCOUNT/CONTAINER/PATH\n"
    "                          destinations (--to, and manifest URLs): they go\n"
    "                          to https://ACCOUNT.blob.core.windows.net/\n"
    "                          CONTAINER/PATH?TOKEN (default:\n"
    "                          $AZURE_STORAGE_SAS_TOKEN)\n"
    "  --azure-endpoint URL    the account's blob endpoint instead of\n"
    "                          https://ACCOUNT.blob.core.windows.net, e.g.\n"
    "                          Azurite's http://127.0.0.1:10000/devstoreaccount1\n"
    "\n"
    "S3 and GCS (s3:// and gs:// destinations; every request is signed\n"
    "with AWS Signature V4; GCS through its XML API with HMAC keys):\n"
    "  Credentials, first found: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n"
    "  (and AWS_SESSION_TOKEN) unless a profile is chosen; then the\n"
    "  profile (--profile, AWS_PROFILE, else default) in\n"
    "  AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, then in\n"
    "  AWS_CONFIG_FILE or ~/.aws/config ([profile NAME]). For gs://:\n"
    "  GOOG_ACCESS_KEY_ID and GOOG_SECRET_ACCESS_KEY, then the same files.\n"
    "  Keys never appear in messages, the report or the journal.\n"
    "  --endpoint-url URL      an S3-compatible service (MinIO, R2, ...):\n"
    "                          http(s)://HOST[:PORT][/PATH]. Over http the\n"
    "                          body's SHA-256 is signed (one extra read of\n"
    "                          each file); over https it is not\n"
    "                          (UNSIGNED-PAYLOAD: TLS and --checksum cover it)\n"
    "  --region R              the signing region (default: AWS_REGION,\n"
    "                          AWS_DEFAULT_REGION, the profile's region;\n"
    "                          us-east-1 with --endpoint-url; gs:// auto)\n"
    "  --profile NAME          the profile of the shared files\n"
    "  --addressing path|virtual|auto\n"
    "                          BUCKET.HOST/KEY or HOST/BUCKET/KEY (default\n"
    "                          auto: virtual for AWS and GCS when the bucket\n"
    "                          is a DNS name, path for --endpoint-url)\n"
    "  --checksum crc32c|md5|none\n"
    "                          integrity header the service checks:\n"
    "                          x-amz-checksum-crc32c (gs://: x-goog-hash\n"
    "                          crc32c=), Content-MD5, or none (default\n"
    "                          crc32c; one extra read of each file; for a\n"
    "                          manifest read from a pipe, only with an S3\n"
    "                          option given)\n"
    "  --storage-class CLASS   x-amz-storage-class (gs://: x-goog-)\n"
    "  --sse aws:kms|AES256    server-side encryption\n"
    "  --sse-kms-key-id ID     the KMS key, with --sse aws:kms\n"
    "  --metadata KEY=VALUE goes as x-amz-meta-KEY (gs://: x-goog-meta-).\n"
    "\n"
    "Transfer (N: whole number, S and F: seconds, fractions allowed):\n"
    "  --workers N|auto        parallel uploads: a fixed N, 1..1024, or\n"
    "                          auto (the default): start at 16 and adapt to\n"
    "                          the measured rate, more while it rises, fewer\n"
    "                          when it does not or the server pushes back\n"
    "                          (429, 5xx, timeouts, resets), up to\n"
    "                          --workers-max. The soft open-file limit is\n"
    "                          raised to the hard one at start; a fixed N\n"
    "                          needing more files than that (64 + 3 per\n"
    "                          upload + 2 per thread) is refused (exit 2),\n"
    "                          auto's maximum is lowered to fit\n"
    "  --workers-max N         auto's most uploads at once, 1..1024\n"
    "                          (default 256)\n"
    "  --threads N|auto        threads driving the uploads, 0..1024: each\n"
    "                          runs its share of the workers through one\n"
    "                          event loop; 0 means one per worker; auto (the\n"
    "                          default): one per two cores, 1..8\n"
    "  --http1.1               HTTP/1.1 only, a connection per upload\n"
    "  --http2                 HTTP/2 where an https server offers it, the\n"
    "                          uploads multiplexed over shared connections\n"
    "                          (the default)\n"
    "  --queue N               files queued ahead of the workers\n"
    "                          (default 4 x workers, or 4 x --workers-max)\n"
    "  --resumable-threshold SIZE\n"
    "                          send files of SIZE bytes or more (K, M, G\n"
    "                          suffixes: powers of 1024) as resumable\n"
    "                          uploads in chunks, so a cut connection costs\n"
    "                          at most a chunk, and a killed run with\n"
    "                          --journal resumes mid-file (default 64M;\n"
    "                          'never': off). Servers without the protocol\n"
    "                          (nginx) get one plain PUT instead\n"
    "  --chunk-size SIZE       the resumable chunk: a multiple of 256K, from\n"
    "                          256K to 1G (default 32M)\n"
    "  --multipart-threshold SIZE\n"
    "                          send files of SIZE bytes or more to S3 and\n"
    "                          Azure in parts, several at once (S3\n"
    "                          multipart upload, Azure blocks); with\n"
    "                          --journal a killed run re-sends only the\n"
    "                          parts not done (default 16M; 'never': off)\n"
    "  --part-size SIZE        the size of those parts, 1K to 4000M\n"
    "                          (default 16M)\n"
    "  --max-retries N         retries after a transient failure (a timeout,\n"
    "                          a reset, HTTP 408/429/5xx) (default 3)\n"
    "  --backoff-factor F      retry n waits F * 2^(n-1) s, at most 120 s\n"
    "                          (default 1.5)\n"
    "  --connection-retries N  retries of a connection that could not be\n"
    "                          made (default 3)\n"
    "  --connect-timeout S     time to connect, TCP and TLS (default 180)\n"
    "  --read-timeout S        time to get the response once the body is\n"
    "                          sent (default 180)\n"
    "  --write-timeout S       time the body may make no progress while\n"
    "                          being sent (default 180); 0: no limit\n"
    "  --no-progress-limit S   in an outage (nothing succeeds, the uploads\n"
    "                          wait and probe the server), give up after S\n"
    "                          seconds without a success: every unfinished\n"
    "                          file fails, 'nothing has succeeded for S s'\n"
    "                          (default 300); 0: wait for ever\n"
    "\n"
    "TLS:\n"
    "  --cacert FILE           trust the CA certificates in FILE (PEM)\n"
    "                          instead of the system's\n"
    "  --insecure              do not verify the server's certificate or\n"
    "                          name: anyone on the path can read and change\n"
    "                          the uploads. For test servers only; prefer\n"
    "                          --cacert\n"
    "\n"
    "At scale (see README.md, 'Running at scale'):\n"
    "  --shard K/N             upload only shard K of N (K from 0 to N-1):\n"
    "                          N runs, K = 0..N-1, on any machines, together\n"
    "                          upload every item exactly once. An item's\n"
    "                          shard is the first 8 bytes of the SHA-256 of\n"
    "                          its key, big-endian, modulo N; the key is its\n"
    "                          path relative to its PATH (a file PATH: its\n"
    "                          base name) with --to and in the workflow, its\n"
    "                          URL without query and fragment in a manifest.\n"
    "                          Each run checks the whole input's syntax but\n"
    "                          only the files of its own shard. Give each\n"
    "                          shard its own --journal and --report\n"
    "  --results FILE          write one JSON Lines record per item to FILE\n"
    "                          ('-': standard output) as each one ends:\n"
    "                          index, path, title, url (redacted), status,\n"
    "                          error, http_status, attempts, size,\n"
    "                          bytes_sent, elapsed_s, resumable and requests\n"
    "                          for a resumable upload, and message when it\n"
    "                          did not succeed. JSON is UTF-8: in a file\n"
    "                          name that is not, each stray byte shows as\n"
    "                          U+FFFD and path_b64 / title_b64 (base64)\n"
    "                          hold the exact bytes (so does --report)\n"
    "  --dry-run               read and check the input, apply --shard, and\n"
    "                          print the counts; upload nothing (the workflow\n"
    "                          starts no server and sends no request)\n"
    "\n"
    "Outcome:\n"
    "  --allow-failures        exit 0 if at least one file was uploaded,\n"
    "                          even if others failed\n"
    "  --journal FILE          record every uploaded file in FILE (created if\n"
    "                          missing); a rerun of the same command with\n"
    "                          the same FILE skips the files it records\n"
    "                          (same URL, path, size and mtime), so a run\n"
    "                          that was killed resumes where it stopped (a\n"
    "                          large file mid-file: its resumable session\n"
    "                          is journalled too; mode 0600). A URL's\n"
    "                          signing parameters (X-Goog-*, X-Amz-*,\n"
    "                          Signature, Expires, Azure SAS fields) are\n"
    "                          not part of it: a manifest signed again\n"
    "                          resumes too (entries that older versions\n"
    "                          wrote for signed URLs no longer match)\n"
    "  --report FILE           write a JSON report to FILE: the totals and\n"
    "                          every failed or cancelled file (with the\n"
    "                          reason); written even when the run fails or\n"
    "                          is interrupted. With --to and --manifest the\n"
    "                          totals also hold input (this run's items),\n"
    "                          skipped (recorded by --journal) and\n"
    "                          not_started (never submitted: an interrupted\n"
    "                          run): input = submitted + skipped +\n"
    "                          not_started\n"
    "  --progress              show the progress line even when standard\n"
    "                          error is not a terminal\n"
    "  --no-progress           never show it (default: shown on a terminal)\n"
    "  -q, --quiet             no progress line, notes or summary: errors\n"
    "                          only\n"
    "  -v, --verbose           show the library's log: each failure and\n"
    "                          retry as it happens (twice: debug)\n"
    "  -h, --help              show this help\n"
    "\n"
    "Manifest formats (chosen by extension: .csv, .jsonl or .ndjson;\n"
    "otherwise a first non-blank character '{' means JSON Lines):\n"
    "  CSV (RFC 4180): one 'path,url' record per line, optionally followed\n"
    "  by content_type and title fields; a field in double quotes may hold\n"
    "  commas, line breaks and doubled quotes (\"\"). An optional first line\n"
    "  naming the columns (path, url, content_type, title, data_type, in\n"
    "  any order) sets them. Blank lines are skipped; LF or CRLF.\n"
    "      path,url\n"
    "      img/a.jpg,https://bucket.example/a.jpg?X-Amz-Signature=...\n"
    "      \"img/b, \"\"2\"\".jpg\",https://bucket.example/b.jpg\n"
    "  JSON Lines: one object per line; path and url required,\n"
    "  content_type, title and data_type optional, and headers, an object of\n"
    "  extra headers for that file ({\"x-ms-meta-owner\": \"ana\"}, checked as\n"
    "  --header is); other keys ignored. A CSV manifest carries no headers.\n"
    "      {\"path\": \"img/a.jpg\", \"url\": \"https://...\", "
    "\"title\": \"A\"}\n"
    "  A manifest in a regular file is checked in full before anything is\n"
    "  uploaded. One on standard input, a pipe or a FIFO (--manifest\n"
    "  <(producer)) is read once, as the upload goes (SIGTERM still ends\n"
    "  the run while the producer is idle or has not started): a bad\n"
    "  line, a missing file or a refused URL then\n"
    "  becomes a failed item in the report (the run exits 1).\n"
    "\n"
    "Exit status:\n"
    "  0    every file was uploaded (with --allow-failures: at least one,\n"
    "       or there was nothing to upload) and, in the workflow, the data\n"
    "       units were created\n"
    "  1    some uploads failed (the summary and --report say which), or\n"
    "       the API refused a request (AUTHENTICATION_ERROR: the key is not\n"
    "       registered; RESOURCE_NOT_FOUND_ERROR: no such dataset ...) or a\n"
    "       job failed\n"
    "  2    bad usage or bad input: an unknown option or bad value, a\n"
    "       missing PATH, an unreadable manifest or a line that does not\n"
    "       parse, a URL that is not http(s), a key file that is missing,\n"
    "       malformed or readable by others. Nothing was uploaded\n"
    "  130  interrupted (SIGINT); 143 terminated (SIGTERM): transfers are\n"
    "       cancelled, the report is written (another signal, a second or\n"
    "       more later, quits at once); in the workflow, no job is\n"
    "       posted unless its request had already been sent; files\n"
    "       already uploaded stay\n"
    "\n"
    "Examples:\n"
    "  bulkup upload examples/images\n"
    "  bulkup upload --key-file ~/.ssh/encord --dataset 6a8f3c2e-1d4b-4e59-9a7c-0b1e2f3a4d5c \\\n"
    "      --image-group holiday photos/\n"
    "  ENCORD_SSH_KEY_FILE=~/.ssh/encord bulkup upload --dataset HASH --video clips/\n"
    "  bulkup upload --to https://storage.example/bucket/run1 photos/\n"
    "  bulkup upload --workers 32 --report report.json --manifest urls.csv\n"
    "  bulkup upload --shard $SLURM_ARRAY_TASK_ID/16 --journal j.$SLURM_ARRAY_TASK_ID \\\n"
    "      --report r.$SLURM_ARRAY_TASK_ID.json --to https://storage.example/b data/\n"
    "  produce-urls | bulkup upload --allow-failures --manifest -\n"
    "  bulkup upload --cacert test-ca.pem --to https://localhost:8443/x a.jpg\n"
    "  bulkup upload --azure-sas \"$SAS\" --metadata run=7 \\\n"
    "      --to az://myaccount/photos/2024 photos/\n"
    "  bulkup upload --to s3://my-bucket/run1 photos/ --region eu-west-1\n"
    "  bulkup upload --to s3://bucket/run1 photos/ --endpoint-url http://127.0.0.1:9000\n"
    "  bulkup upload --to gs://my-bucket/run1 photos/ --storage-class NEARLINE\n";

void cli_upload_help(void *out) { fputs(upload_help, (FILE *)out); }

/* ---- options ------------------------------------------------------------
 */

enum {
  OPT_TO = 256,
  OPT_MANIFEST,
  OPT_WORKERS,
  OPT_THREADS,
  OPT_QUEUE,
  OPT_MAX_RETRIES,
  OPT_BACKOFF,
  OPT_CONN_RETRIES,
  OPT_CONNECT_TIMEOUT,
  OPT_READ_TIMEOUT,
  OPT_WRITE_TIMEOUT,
  OPT_ALLOW_FAILURES,
  OPT_REPORT,
  OPT_JOURNAL,
  OPT_CACERT,
  OPT_INSECURE,
  OPT_CONTENT_MD5,
  OPT_DATA_TYPE,
  OPT_CONTENT_TYPE,
  OPT_PROGRESS,
  OPT_NO_PROGRESS,
  OPT_API,
  OPT_KEY_FILE,
  OPT_KEY_ID,
  OPT_IMAGE_GROUP,
  OPT_DICOM_SERIES,
  OPT_VIDEO,
  OPT_IMAGE,
  OPT_DATASET,
  OPT_FOLDER,
  OPT_FILES_PER_JOB,
  OPT_STORE,
  OPT_CREATE_VIDEO,
  OPT_NO_CREATE_VIDEO,
  OPT_SHARD,
  OPT_RESULTS,
  OPT_DRY_RUN,
  OPT_RESUMABLE_THRESHOLD,
  OPT_CHUNK_SIZE,
  OPT_HEADER,
  OPT_METADATA,
  OPT_AZURE_SAS,
  OPT_AZURE_ENDPOINT,
  /* s3:// and gs:// */
  OPT_ENDPOINT_URL,
  OPT_REGION,
  OPT_PROFILE,
  OPT_ADDRESSING,
  OPT_CHECKSUM,
  OPT_STORAGE_CLASS,
  OPT_SSE,
  OPT_SSE_KMS_KEY_ID,
  OPT_CACHE_CONTROL,
  OPT_NO_PROGRESS_LIMIT,
  OPT_WORKERS_MAX,
  OPT_HTTP1_1,
  OPT_HTTP2,
  OPT_MULTIPART_THRESHOLD,
  OPT_PART_SIZE
};

static const struct option long_options[] = {
    {"to", required_argument, NULL, OPT_TO},
    {"manifest", required_argument, NULL, OPT_MANIFEST},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"resumable-threshold", required_argument, NULL, OPT_RESUMABLE_THRESHOLD},
    {"chunk-size", required_argument, NULL, OPT_CHUNK_SIZE},
    {"multipart-threshold", required_argument, NULL, OPT_MULTIPART_THRESHOLD},
    {"part-size", required_argument, NULL, OPT_PART_SIZE},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"max-retries", required_argument, NULL, OPT_MAX_RETRIES},
    {"backoff-factor", required_argument, NULL, OPT_BACKOFF},
    {"connection-retries", required_argument, NULL, OPT_CONN_RETRIES},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"read-timeout", required_argument, NULL, OPT_READ_TIMEOUT},
    {"write-timeout", required_argument, NULL, OPT_WRITE_TIMEOUT},
    {"allow-failures", no_argument, NULL, OPT_ALLOW_FAILURES},
    {"report", required_argument, NULL, OPT_REPORT},
    {"journal", required_argument, NULL, OPT_JOURNAL},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"content-md5", no_argument, NULL, OPT_CONTENT_MD5},
    {"data-type", required_argument, NULL, OPT_DATA_TYPE},
    {"content-type", required_argument, NULL, OPT_CONTENT_TYPE},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
    {"api", required_argument, NULL, OPT_API},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"key-id", required_argument, NULL, OPT_KEY_ID},
    {"image-group", required_argument, NULL, OPT_IMAGE_GROUP},
    {"dicom-series", required_argument, NULL, OPT_DICOM_SERIES},
    {"video", no_argument, NULL, OPT_VIDEO},
    {"image", no_argument, NULL, OPT_IMAGE},
    {"dataset", required_argument, NULL, OPT_DATASET},
    {"folder", required_argument, NULL, OPT_FOLDER},
    {"files-per-job", required_argument, NULL, OPT_FILES_PER_JOB},
    {"store", required_argument, NULL, OPT_STORE},
    {"create-video", no_argument, NULL, OPT_CREATE_VIDEO},
    {"no-create-video", no_argument, NULL, OPT_NO_CREATE_VIDEO},
    {"shard", required_argument, NULL, OPT_SHARD},
    {"results", required_argument, NULL, OPT_RESULTS},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"header", required_argument, NULL, OPT_HEADER},
    {"metadata", required_argument, NULL, OPT_METADATA},
    {"azure-sas", required_argument, NULL, OPT_AZURE_SAS},
    {"azure-endpoint", required_argument, NULL, OPT_AZURE_ENDPOINT},
    {"endpoint-url", required_argument, NULL, OPT_ENDPOINT_URL},
    {"region", required_argument, NULL, OPT_REGION},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"addressing", required_argument, NULL, OPT_ADDRESSING},
    {"checksum", required_argument, NULL, OPT_CHECKSUM},
    {"storage-class", required_argument, NULL, OPT_STORAGE_CLASS},
    {"sse", required_argument, NULL, OPT_SSE},
    {"sse-kms-key-id", required_argument, NULL, OPT_SSE_KMS_KEY_ID},
    {"cache-control", required_argument, NULL, OPT_CACHE_CONTROL},
    {"no-progress-limit", required_argument, NULL, OPT_NO_PROGRESS_LIMIT},
    {"workers-max", required_argument, NULL, OPT_WORKERS_MAX},
    {"http1.1", no_argument, NULL, OPT_HTTP1_1},
    {"http2", no_argument, NULL, OPT_HTTP2},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

static const char *option_name(int id) {
  for (const struct option *o = long_options; o->name; o++)
    if (o->val == id)
      return o->name;
  return "?";
}

static int bad_value(int id, const char *value, num_status st,
                     const char *range) {
  return cli_usage_error("upload", "--%s: '%s' %s (%s)", option_name(id),
                         value, num_status_text(st), range);
}

static int opt_long(int id, const char *v, long min, long max, long *out) {
  num_status st = num_parse_long(v, min, max, out);
  if (st == NUM_OK)
    return 0;
  char range[64];
  snprintf(range, sizeof range, "expected a whole number from %ld to %ld",
           min, max);
  return bad_value(id, v, st, range);
}

static int opt_double(int id, const char *v, double min, double max,
                      double *out) {
  num_status st = num_parse_double(v, min, max, out);
  if (st == NUM_OK)
    return 0;
  char range[80];
  snprintf(range, sizeof range, "expected a number of seconds from %g to %g",
           min, max);
  return bad_value(id, v, st, range);
}

/* --shard K/N: 0 <= K < N, N >= 1. Non-zero after a usage message. */
static int parse_shard(upload_cli *c, const char *v) {
  const char *slash = strchr(v, '/');
  char k[32];
  long kn = -1, nn = 0;
  if (slash && (size_t)(slash - v) < sizeof k) {
    memcpy(k, v, (size_t)(slash - v));
    k[slash - v] = '\0';
    if (num_parse_long(slash + 1, 1, UINT32_MAX, &nn) != NUM_OK ||
        num_parse_long(k, 0, UINT32_MAX, &kn) != NUM_OK)
      kn = -1;
  }
  if (kn < 0)
    return cli_usage_error("upload",
                           "--shard: '%s' is not K/N (two whole numbers, "
                           "the shard K from 0 to N-1 and the count N >= 1, "
                           "e.g. 0/4)",
                           v);
  if (kn >= nn)
    return cli_usage_error("upload",
                           "--shard: shard %ld of %ld does not exist: shards "
                           "are numbered from 0 to %ld (0-based, as "
                           "$SLURM_ARRAY_TASK_ID with --array=0-%ld and "
                           "$JOB_COMPLETION_INDEX are)",
                           kn, nn, nn - 1, nn - 1);
  c->shard_k = (uint32_t)kn;
  c->shard_n = (uint32_t)nn;
  return 0;
}

/* The shard key of a manifest URL: up to its query or fragment, so that
 * URLs signed again (a new signature, date or expiry) keep their shard. */
static bool url_in_shard(const upload_cli *c, const char *url) {
  return upload_in_shard(c, url, strcspn(url, "?#"));
}

/* Parse argv into *c. Returns -1 to go on, or an exit status. */
static int parse_args(upload_cli *c, int argc, char **argv) {
  memset(c, 0, sizeof *c);
  bulkup_uploader_options_init(&c->opt);
  c->data_type = BULKUP_DATA_TYPE_IMAGE;
  c->create_video = -1;
  c->progress = -1;
  opterr = 0;
  optind = 1;
  for (;;) {
    int longindex = -1;
    int ch = getopt_long(argc, argv, ":qvh", long_options, &longindex);
    if (ch == -1)
      break;
    long n;
    double d;
    switch (ch) {
    case OPT_TO:
      c->to = optarg;
      break;
    case OPT_MANIFEST:
      c->manifest = optarg;
      break;
    case OPT_WORKERS:
      if (strcmp(optarg, "auto") == 0) {
        c->opt.workers = BULKUP_WORKERS_AUTO;
        break;
      }
      if (opt_long(ch, optarg, 1, 1024, &n))
        return CLI_EXIT_USAGE;
      c->opt.workers = (unsigned)n;
      break;
    case OPT_WORKERS_MAX:
      if (opt_long(ch, optarg, 1, 1024, &n))
        return CLI_EXIT_USAGE;
      c->opt.workers_max = (unsigned)n;
      break;
    case OPT_HTTP1_1:
      c->opt.http_version = BULKUP_HTTP_1_1;
      break;
    case OPT_HTTP2:
      c->opt.http_version = BULKUP_HTTP_2;
      break;
    case OPT_RESUMABLE_THRESHOLD: {
      unsigned long long v;
      if (strcmp(optarg, "never") == 0) {
        c->opt.resumable_threshold = BULKUP_RESUMABLE_NEVER;
        break;
      }
      num_status st = num_parse_size(optarg, 0, 1ULL << 50, &v);
      if (st != NUM_OK)
        return bad_value(ch, optarg, st,
                         "expected a size such as 64M, or 'never'");
      c->opt.resumable_threshold = v;
      break;
    }
    case OPT_CHUNK_SIZE: {
      unsigned long long v;
      num_status st = num_parse_size(optarg, 256ULL << 10, 1ULL << 30, &v);
      if (st == NUM_OK && v % (256ULL << 10) != 0)
        st = NUM_RANGE;
      if (st != NUM_OK)
        return bad_value(ch, optarg, st,
                         "expected a multiple of 256K from 256K to 1G");
      c->opt.resumable_chunk_size = (size_t)v;
      break;
    }
    case OPT_MULTIPART_THRESHOLD: {
      unsigned long long v;
      if (strcmp(optarg, "never") == 0) {
        c->opt.multipart_threshold = BULKUP_MULTIPART_NEVER;
        break;
      }
      num_status st = num_parse_size(optarg, 1, 1ULL << 50, &v);
      if (st != NUM_OK)
        return bad_value(ch, optarg, st,
                         "expected a size such as 16M, or 'never'");
      c->opt.multipart_threshold = v;
      break;
    }
    case OPT_PART_SIZE: {
      unsigned long long v;
      num_status st = num_parse_size(optarg, BULKUP_PART_SIZE_MIN,
                                     BULKUP_PART_SIZE_MAX, &v);
      if (st != NUM_OK)
        return bad_value(ch, optarg, st, "expected a size from 1K to 4000M");
      c->opt.part_size = (size_t)v;
      break;
    }
    case OPT_ENDPOINT_URL:
      c->s3o.endpoint_url = optarg;
      break;
    case OPT_REGION:
      c->s3o.region = optarg;
      break;
    case OPT_PROFILE:
      c->s3o.profile = optarg;
      break;
    case OPT_ADDRESSING:
      c->s3o.addressing = optarg;
      break;
    case OPT_CHECKSUM:
      c->s3o.checksum = optarg;
      break;
    case OPT_STORAGE_CLASS:
      c->s3o.storage_class = optarg;
      break;
    case OPT_SSE:
      c->s3o.sse = optarg;
      break;
    case OPT_SSE_KMS_KEY_ID:
      c->s3o.sse_kms_key_id = optarg;
      break;
    case OPT_CACHE_CONTROL:
      if (strpbrk(optarg, "\r\n"))
        return cli_usage_error("upload", "--cache-control: one line");
      c->cache_control = optarg;
      break;
    case OPT_THREADS:
      if (strcmp(optarg, "auto") == 0) {
        c->opt.threads = BULKUP_THREADS_AUTO;
        break;
      }
      if (opt_long(ch, optarg, 0, 1024, &n))
        return CLI_EXIT_USAGE;
      c->opt.threads = (unsigned)n;
      break;
    case OPT_QUEUE:
      if (opt_long(ch, optarg, 1, 1000000, &n))
        return CLI_EXIT_USAGE;
      c->opt.queue_capacity = (size_t)n;
      break;
    case OPT_MAX_RETRIES:
      if (opt_long(ch, optarg, 0, 1000, &n))
        return CLI_EXIT_USAGE;
      bulkup_cloud_upload_settings_set_max_retries(&c->opt.cloud, (int)n);
      break;
    case OPT_CONN_RETRIES:
      if (opt_long(ch, optarg, 0, 1000, &n))
        return CLI_EXIT_USAGE;
      c->opt.requests.connection_retries = (int)n;
      break;
    case OPT_BACKOFF:
      if (opt_double(ch, optarg, 0, 3600, &d))
        return CLI_EXIT_USAGE;
      bulkup_cloud_upload_settings_set_backoff_factor(&c->opt.cloud, d);
      break;
    case OPT_CONNECT_TIMEOUT:
      if (opt_double(ch, optarg, 0, 1e6, &d))
        return CLI_EXIT_USAGE;
      c->opt.requests.connect_timeout = d;
      break;
    case OPT_READ_TIMEOUT:
      if (opt_double(ch, optarg, 0, 1e6, &d))
        return CLI_EXIT_USAGE;
      c->opt.requests.read_timeout = d;
      break;
    case OPT_WRITE_TIMEOUT:
      if (opt_double(ch, optarg, 0, 1e6, &d))
        return CLI_EXIT_USAGE;
      c->opt.requests.write_timeout = d;
      break;
    case OPT_NO_PROGRESS_LIMIT:
      if (opt_double(ch, optarg, 0, 1e9, &d))
        return CLI_EXIT_USAGE;
      c->opt.no_progress_limit = d;
      break;
    case OPT_ALLOW_FAILURES:
      c->opt.cloud.allow_failures = true;
      break;
    case OPT_REPORT:
      c->report = optarg;
      break;
    case OPT_JOURNAL:
      c->journal = optarg;
      break;
    case OPT_CACERT:
      c->opt.ca_file = optarg;
      break;
    case OPT_INSECURE:
      c->opt.insecure = true;
      break;
    case OPT_CONTENT_MD5:
      c->opt.content_md5 = true;
      break;
    case OPT_DATA_TYPE:
      c->data_type_given = true;
      c->data_type = bulkup_data_type_from_string(optarg);
      if (c->data_type == BULKUP_DATA_TYPE_MISSING) {
        char list[256] = "";
        for (int t = 0; t < BULKUP_DATA_TYPE_COUNT - 1; t++) {
          if (t)
            strncat(list, ", ", sizeof list - strlen(list) - 1);
          strncat(list, bulkup_data_type_to_string((bulkup_data_type)t),
                  sizeof list - strlen(list) - 1);
        }
        return cli_usage_error("upload",
                               "--data-type: unknown data type '%s' "
                               "(expected one of %s)",
                               optarg, list);
      }
      break;
    case OPT_CONTENT_TYPE:
      if (!*optarg || !header_value_ok(optarg))
        return cli_usage_error("upload",
                               "--content-type: '%s' is not a media type",
                               optarg);
      c->content_type = optarg;
      break;
    case OPT_API:
      c->api = optarg;
      break;
    case OPT_KEY_FILE:
      c->key_file = optarg;
      break;
    case OPT_KEY_ID:
      c->key_id = optarg;
      break;
    case OPT_IMAGE_GROUP:
      if (upload_api_set_kind(c, UPLOAD_KIND_IMAGE_GROUP, "--image-group",
                              optarg) != -1)
        return CLI_EXIT_USAGE;
      break;
    case OPT_DICOM_SERIES:
      if (upload_api_set_kind(c, UPLOAD_KIND_DICOM_SERIES, "--dicom-series",
                              optarg) != -1)
        return CLI_EXIT_USAGE;
      break;
    case OPT_VIDEO:
      if (upload_api_set_kind(c, UPLOAD_KIND_VIDEO, "--video", NULL) != -1)
        return CLI_EXIT_USAGE;
      break;
    case OPT_IMAGE:
      if (upload_api_set_kind(c, UPLOAD_KIND_IMAGE, "--image", NULL) != -1)
        return CLI_EXIT_USAGE;
      break;
    case OPT_DATASET:
      c->dataset = optarg;
      break;
    case OPT_FOLDER:
      c->folder = optarg;
      break;
    case OPT_FILES_PER_JOB:
      if (opt_long(ch, optarg, 1, 1000, &n))
        return CLI_EXIT_USAGE;
      c->files_per_job = (unsigned long)n;
      break;
    case OPT_STORE:
      c->store = optarg;
      break;
    case OPT_CREATE_VIDEO:
      c->create_video = 1;
      break;
    case OPT_NO_CREATE_VIDEO:
      c->create_video = 0;
      break;
    case OPT_SHARD:
      if (parse_shard(c, optarg))
        return CLI_EXIT_USAGE;
      break;
    case OPT_RESULTS:
      if (!*optarg)
        return cli_usage_error("upload", "--results: empty file name");
      c->results = optarg;
      break;
    case OPT_DRY_RUN:
      c->dry_run = true;
      break;
    case OPT_HEADER:
      if (extras_add_header(&c->x, optarg))
        return CLI_EXIT_USAGE;
      break;
    case OPT_METADATA:
      if (extras_add_metadata(&c->x, optarg))
        return CLI_EXIT_USAGE;
      break;
    case OPT_AZURE_SAS:
      c->x.azure_sas = optarg;
      break;
    case OPT_AZURE_ENDPOINT:
      c->x.azure_endpoint = optarg;
      break;
    case OPT_PROGRESS:
      c->progress = 1;
      break;
    case OPT_NO_PROGRESS:
      c->progress = 0;
      break;
    case 'q':
      c->quiet = true;
      break;
    case 'v':
      c->verbose++;
      break;
    case 'h':
      cli_upload_help(stdout);
      return CLI_EXIT_OK;
    case ':':
      if (optopt >= 256)
        return cli_usage_error("upload", "option --%s needs a value",
                               option_name(optopt));
      return cli_usage_error("upload", "option '%s' needs a value",
                             argv[optind - 1]);
    default:
      if (optopt > 0 && optopt < 256)
        return cli_usage_error("upload", "unknown option '-%c'", optopt);
      return cli_usage_error("upload", "unknown option '%s'",
                             argv[optind - 1]);
    }
  }
  c->paths = argv + optind;
  c->npaths = argc - optind;
  return -1;
}

bool upload_is_workflow(const upload_cli *c) {
  return c->api || c->dataset || (!c->to && !c->manifest);
}

/* Check what can be checked without touching the input. */
static int check_args(upload_cli *c) {
  if (c->to && c->manifest)
    return cli_usage_error("upload",
                           "--to and --manifest cannot be used together");
  if ((c->api || c->dataset) && (c->to || c->manifest))
    return cli_usage_error("upload", "--%s cannot be used with --%s",
                           c->api ? "api" : "dataset",
                           c->to ? "to" : "manifest");
  if (!upload_is_workflow(c)) {
    const char *w = upload_api_option_given(c);
    if (w)
      return cli_usage_error("upload",
                             "%s belongs to the API workflow (--api URL, or "
                             "PATHs alone); it cannot be used with --%s",
                             w, c->to ? "to" : "manifest");
  } else {
    int rc = upload_api_check_args(c);
    if (rc != -1)
      return rc;
  }
  if (c->to && c->npaths == 0)
    return cli_usage_error("upload", "--to needs at least one PATH");
  if (c->manifest && c->npaths > 0)
    return cli_usage_error("upload",
                           "--manifest takes no PATH arguments (got '%s')",
                           c->paths[0]);
  if (extras_check(&c->x, c->to, upload_is_workflow(c)))
    return CLI_EXIT_USAGE;
  {
    int rc = upload_s3_check(&c->s3o, upload_s3_is_dest(c->to),
                             c->manifest != NULL);
    if (rc != -1)
      return rc;
  }
  if (c->to && upload_s3_is_dest(c->to)) {
    if (strpbrk(c->to, "?#"))
      return cli_usage_error("upload", "--to: s3://BUCKET/PREFIX may not "
                             "hold a query or fragment");
  } else if (c->to) {
    if (!url_is_http(c->to) && !c->x.to_resolved)
      return cli_usage_error("upload",
                             "--to: '%s' is not an http:// or https:// URL",
                             c->to);
    if (strpbrk(c->to, "?#"))
      return cli_usage_error(
          "upload", "--to: the URL prefix may not hold a query or fragment");
  }
  if (c->results && strcmp(c->results, "-") == 0 && upload_is_workflow(c))
    return cli_usage_error("upload",
                           "--results -: standard output carries the "
                           "workflow's result lines; give a file");
  if (c->opt.ca_file && access(c->opt.ca_file, R_OK) != 0) {
    cli_error("--cacert: cannot read %s: %s", c->opt.ca_file,
              strerror(errno));
    return CLI_EXIT_USAGE;
  }
  if (c->report && cli_is_stdout(c->report) && c->results &&
      cli_is_stdout(c->results))
    return cli_usage_error("upload", "--report - and --results - cannot both "
                                     "use standard output");
  if (c->report && cli_is_stdout(c->report) && upload_is_workflow(c))
    return cli_usage_error("upload",
                           "--report -: standard output carries the "
                           "workflow's result lines; give a file");
  struct stat rst;
  if (c->report && !cli_is_stdout(c->report) &&
      stat(c->report, &rst) == 0 && !S_ISREG(rst.st_mode) &&
      !S_ISDIR(rst.st_mode)) {
    /* A device, a FIFO, /dev/stdout: written into, so it must be
     * writable itself (its directory need not be). */
    if (access(c->report, W_OK) != 0) {
      cli_error("--report: cannot write %s: %s", c->report, strerror(errno));
      return CLI_EXIT_USAGE;
    }
  } else if (c->report && !cli_is_stdout(c->report)) {
    char *copy = strdup(c->report);
    if (!copy) {
      cli_error("out of memory");
      return CLI_EXIT_USAGE;
    }
    const char *dir = dirname(copy);
    struct stat st;
    int ok = stat(c->report, &st) == 0 && S_ISDIR(st.st_mode) ? -1
             : access(dir, W_OK | X_OK) == 0                ? 0
                                                              : errno;
    free(copy);
    if (ok == -1) {
      cli_error("--report: %s is a directory", c->report);
      return CLI_EXIT_USAGE;
    }
    if (ok != 0) {
      cli_error("--report: cannot write %s: %s", c->report, strerror(ok));
      return CLI_EXIT_USAGE;
    }
  }
  if (bulkup_requests_settings_validate(&c->opt.requests) != BULKUP_OK ||
      bulkup_cloud_upload_settings_validate(&c->opt.cloud) != BULKUP_OK) {
    cli_error("%s", bulkup_last_error_message());
    return CLI_EXIT_USAGE;
  }
  return -1;
}

/* ---- the direct run's cancel hook (the signal thread is in signals.c) ---
 */

/* The direct modes' cancel hook: the uploader stops, the run ends with a
 * report. */
static void cancel_uploader(void *arg, int sig) {
  upload_say("%s: cancelling the uploads (send it again to quit at once)",
      sig == SIGINT ? "interrupted" : "terminated");
  bulkup_uploader_cancel(arg);
}

/* ---- phase one: checking the input ---------------------------------------
 */

typedef struct totals {
  uint64_t files, bytes; /* this run's items (its shard) */
  uint64_t input;        /* the whole input's items */
} totals;

/* The check's count of a file of the shard. */
static int count_file(void *arg, const upload_file *f) {
  totals *t = arg;
  t->files++;
  t->bytes += f->size;
  return -1;
}

/* Every PATH exists and is a file or a directory; walk the directories,
 * counting. */
static int check_paths(upload_cli *c, totals *t) {
  upload_walk w = {.pass = UPLOAD_WALK_CHECK,
                   /* Byte totals only feed the progress line and the dry
                    * run's count. */
                   .sizes = c->dry_run || upload_show_progress(c),
                   .file = count_file,
                   .arg = t};
  int rc = upload_walk_paths(c, &w);
  t->input += w.input;
  return rc;
}

/* A manifest read before the run named an s3:// or gs:// URL. */
static bool manifest_has_s3;

/* Check one manifest record (scheme, file, data type). Returns NULL or a
 * reason written into buf. */
static const char *check_entry(const upload_cli *c, const manifest_entry *e,
                               bool check_file, char *buf, size_t n,
                               uint64_t *size) {
  if (upload_s3_is_dest(e->url)) {
    manifest_has_s3 = true;
  } else if (extras_is_az(e->url)) {
    char *u = extras_resolve_az(&c->x, e->url, buf, n);
    if (!u)
      return buf;
    free(u);
  } else if (!url_is_http(e->url)) {
    char *red = bulkup_redact_url(e->url);
    snprintf(buf, n, "URL '%s' is not http://, https://, s3:// or gs://",
             red ? red : "(unprintable)");
    bulkup_free(red);
    return buf;
  }
  if (e->data_type &&
      bulkup_data_type_from_string(e->data_type) == BULKUP_DATA_TYPE_MISSING) {
    snprintf(buf, n, "unknown data_type '%s'", e->data_type);
    return buf;
  }
  if (!check_file)
    return NULL;
  struct stat st;
  if (stat(e->path, &st) != 0) {
    snprintf(buf, n, "%s: %s", e->path, strerror(errno));
    return buf;
  }
  if (!S_ISREG(st.st_mode)) {
    snprintf(buf, n, "%s: not a regular file", e->path);
    return buf;
  }
  if (access(e->path, R_OK) != 0) {
    snprintf(buf, n, "%s: %s", e->path, strerror(errno));
    return buf;
  }
  *size = (uint64_t)st.st_size;
  return NULL;
}

/* Whether the manifest can be read twice (a regular file). */
static bool manifest_rereadable(const char *path) {
  struct stat st;
  return strcmp(path, "-") != 0 && stat(path, &st) == 0 &&
         S_ISREG(st.st_mode);
}

static int check_manifest(upload_cli *c, totals *t) {
  char err[1024];
  manifest_reader *r = manifest_open(c->manifest, MANIFEST_AUTO, err,
                                     sizeof err);
  if (!r) {
    cli_error("%s", err);
    return CLI_EXIT_USAGE;
  }
  unsigned long bad = 0, steps = 0;
  manifest_entry e;
  manifest_status ms;
  int rc = -1;
  while ((ms = manifest_next(r, &e)) != MANIFEST_EOF) {
    if ((++steps & 1023) == 0 && upload_signal()) {
      rc = upload_exit_for_signal();
      break;
    }
    if (ms == MANIFEST_IOERR) {
      if (upload_signal()) {
        rc = upload_exit_for_signal();
        break;
      }
      cli_error("%s", manifest_error(r));
      rc = CLI_EXIT_USAGE;
      break;
    }
    char buf[PATH_MAX + 256], reason[PATH_MAX + 1024];
    uint64_t size = 0;
    const char *why;
    bool mine = ms == MANIFEST_ENTRY && url_in_shard(c, e.url);
    if (ms == MANIFEST_BAD)
      snprintf(reason, sizeof reason, "%s", manifest_error(r));
    else if ((why = check_entry(c, &e, mine, buf, sizeof buf, &size)) != NULL)
      snprintf(reason, sizeof reason, "%s line %lu: %s", c->manifest, e.line,
               why);
    else {
      t->input++;
      if (mine) {
        t->files++;
        t->bytes += size;
      }
      continue;
    }
    if (++bad <= MAX_BAD_LINES_SHOWN)
      cli_error("%s", reason);
  }
  manifest_close(r);
  if (bad > MAX_BAD_LINES_SHOWN)
    cli_error("... and %lu more bad lines", bad - MAX_BAD_LINES_SHOWN);
  if (rc != -1)
    return rc;
  if (bad) {
    cli_error("nothing uploaded: %lu bad line%s in manifest %s", bad,
              bad == 1 ? "" : "s", c->manifest);
    return CLI_EXIT_USAGE;
  }
  return -1;
}

/* ---- phase two: uploading ------------------------------------------------
 */

typedef struct run {
  upload_cli *c;
  bulkup_uploader *u;
  unsigned long input_errors; /* problems met after the upload started */
  bool stop;
  bulkup_journal *journal;
  unsigned long long skipped; /* recorded as done by the journal */
} run;

/* The journal key of a file item: its destination's identity (the URL
 * without its signing parameters, so that a manifest signed again resumes,
 * and with other credentials redacted: the journal is a plain file) and
 * its source. */
static char *journal_key(const bulkup_item *it) {
  char *url = bulkup_url_identity(it->url);
  if (!url)
    return NULL;
  size_t n = strlen(url) + strlen(it->path) + 2;
  char *k = malloc(n);
  if (k)
    snprintf(k, n, "%s\n%s", url, it->path);
  bulkup_free(url);
  return k;
}

/* Submit one item; false when the run must stop submitting. With a
 * journal, a file recorded as uploaded (same URL, path, size and mtime) is
 * skipped, and the others carry their key so that the library records
 * them when they succeed. */
static bool submit(run *rn, const bulkup_item *item) {
  bulkup_item copy = *item;
  const bulkup_item *it = item;
  char *key = NULL;
  if (rn->journal && item->path) {
    key = journal_key(item);
    struct stat st;
    if (key && stat(item->path, &st) == 0) {
      int64_t mtime =
          (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
      if (bulkup_journal_contains(rn->journal, key, (uint64_t)st.st_size,
                                  mtime)) {
        free(key);
        rn->skipped++;
        return true;
      }
    }
    copy.journal_key = key;
    it = &copy;
  }
  bulkup_err rc = bulkup_uploader_submit(rn->u, it, NULL);
  free(key);
  if (rc == BULKUP_OK)
    return true;
  if (rc == BULKUP_ECANCELED) {
    rn->stop = true;
    return false;
  }
  upload_say("cannot queue %s: %s%s%s", it->path ? it->path : it->url,
      bulkup_strerror(rc), *bulkup_last_error_message() ? ": " : "",
      bulkup_last_error_message());
  rn->input_errors++;
  if (rc != BULKUP_EINVAL)
    rn->stop = true;
  return !rn->stop;
}

static void item_defaults(const upload_cli *c, bulkup_item *it) {
  bulkup_item_init(it);
  it->data_type = c->data_type;
  it->content_type = c->content_type;
  if (c->cache_control)
    it->cache_control = c->cache_control;
}

/* a's lines then b's, NULL-ended (either may be NULL); the strings are
 * not copied. malloc'ed; NULL when out of memory. */
static const char **concat_lines(const char *const *a, const char *const *b) {
  size_t na = 0, nb = 0;
  while (a && a[na])
    na++;
  while (b && b[nb])
    nb++;
  const char **out = malloc((na + nb + 1) * sizeof *out);
  if (!out)
    return NULL;
  for (size_t i = 0; i < na; i++)
    out[i] = a[i];
  for (size_t i = 0; i < nb; i++)
    out[na + i] = b[i];
  out[na + nb] = NULL;
  return out;
}

/* An s3:// or gs:// item: its URL, headers and signer (rel: under the
 * --to prefix; NULL for a manifest's URL). false when it cannot be
 * submitted (said, counted). */
static bool s3_item(run *rn, const char *dest, const char *rel,
                    bulkup_item *it, char **url) {
  char why[1024];
  const char *err = upload_s3_item(rn->c->s3, dest, rel, it, url, why,
                                   sizeof why);
  if (!err) {
    it->storage = BULKUP_STORAGE_S3; /* large files in parallel parts */
    return true;
  }
  upload_say("cannot queue %s: %s", it->path ? it->path : dest, err);
  rn->input_errors++;
  if (strncmp(err, "no credentials", 14) == 0)
    rn->stop = true;
  return false;
}

/* Submit a file of the shard, to --to joined with its key. */
static int submit_file(void *arg, const upload_file *f) {
  run *rn = arg;
  bulkup_item it;
  item_defaults(rn->c, &it);
  it.path = f->path;
  char *url = NULL;
  const char **s3h = NULL;
  if (rn->c->s3 && upload_s3_is_dest(rn->c->to)) {
    if (!s3_item(rn, rn->c->to, f->key, &it, &url))
      return rn->stop ? 0 : -1;
    s3h = concat_lines(it.headers, NULL);
    if (!s3h) {
      upload_say("out of memory");
      rn->stop = true;
      free(url);
      return 0;
    }
  } else {
    url = extras_to_url(&rn->c->x, rn->c->to, f->key);
  }
  hdrlist h = {0};
  bool oom = !url;
  if (url)
    it.headers = extras_item_headers(&rn->c->x, rn->c->to, url,
                                     (const char *const *)s3h, &h, &oom);
  free(s3h);
  if (oom) {
    upload_say("out of memory");
    rn->stop = true;
    free(url);
    return 0;
  }
  it.url = url;
  bool ok = submit(rn, &it);
  hdrlist_free(&h);
  free(url);
  return ok ? -1 : 0;
}

static void upload_paths(run *rn) {
  upload_walk w = {.pass = UPLOAD_WALK_AGAIN,
                   .sizes = false, /* the uploader stats each file itself */
                   .file = submit_file,
                   .arg = rn};
  if (upload_walk_paths(rn->c, &w) != -1)
    rn->stop = true;
  rn->input_errors += w.problems;
}

/* A manifest record that could not be used, as a failed item of kind
 * "input": it keeps its place in the input order and in the report. */
static bool submit_bad_record(run *rn, unsigned long line, const char *why) {
  char title[64];
  snprintf(title, sizeof title, "manifest line %lu", line);
  bulkup_item it;
  item_defaults(rn->c, &it);
  it.title = title;
  upload_say("%s", why);
  bulkup_err err = bulkup_uploader_submit_failure(rn->u, &it, BULKUP_ERROR_INPUT,
                                                  why, NULL);
  if (err != BULKUP_OK) {
    rn->stop = true;
    return false;
  }
  return true;
}

/* Upload from `r` (already open for a one-pass manifest, else NULL: open
 * it again now). Closes the reader. */
static void upload_manifest(run *rn, manifest_reader *r) {
  upload_cli *c = rn->c;
  char err[1024];
  if (!r)
    r = manifest_open(c->manifest, MANIFEST_AUTO, err, sizeof err);
  if (!r) {
    upload_say("%s", err);
    rn->input_errors++;
    return;
  }
  manifest_entry e;
  manifest_status ms;
  while (!rn->stop && (ms = manifest_next(r, &e)) != MANIFEST_EOF) {
    if (ms == MANIFEST_IOERR) {
      if (upload_signal())
        break; /* woken by the signal: the run is being cancelled */
      upload_say("%s", manifest_error(r));
      rn->input_errors++;
      break;
    }
    if (ms == MANIFEST_BAD) {
      /* A record that does not parse has no key: shard 0 reports it, so
       * that merged shard reports hold it once. */
      if (c->shard_k == 0)
        submit_bad_record(rn, manifest_error_line(r), manifest_error(r));
      continue;
    }
    if (!url_in_shard(c, e.url))
      continue;
    bulkup_data_type dt = c->data_type;
    if (e.data_type) {
      dt = bulkup_data_type_from_string(e.data_type);
      if (dt == BULKUP_DATA_TYPE_MISSING) {
        char why[512];
        snprintf(why, sizeof why, "%s line %lu: unknown data_type '%s'",
                 c->manifest, e.line, e.data_type);
        submit_bad_record(rn, e.line, why);
        continue;
      }
    }
    char *az = NULL;
    if (extras_is_az(e.url)) {
      char why[1024];
      if (!(az = extras_resolve_az(&c->x, e.url, why, sizeof why))) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s line %lu: %s", c->manifest, e.line, why);
        submit_bad_record(rn, e.line, msg);
        continue;
      }
    }
    bulkup_item it;
    item_defaults(c, &it);
    it.path = e.path;
    it.url = az ? az : e.url;
    it.data_type = dt;
    if (e.content_type)
      it.content_type = e.content_type;
    if (e.title)
      it.title = e.title;
    char *s3url = NULL;
    const char **lines = NULL;
    if (upload_s3_is_dest(e.url)) {
      if (!s3_item(rn, e.url, NULL, &it, &s3url))
        continue;
      lines = concat_lines(it.headers, e.headers);
      if (!lines) {
        upload_say("out of memory");
        rn->stop = true;
        free(s3url);
        break;
      }
    }
    hdrlist h;
    bool oom;
    it.headers = extras_item_headers(
        &c->x, e.url, it.url,
        lines ? (const char *const *)lines : e.headers, &h, &oom);
    free(lines);
    if (oom) {
      upload_say("out of memory");
      rn->stop = true;
      free(az);
      free(s3url);
      break;
    }
    submit(rn, &it);
    hdrlist_free(&h);
    free(az);
    free(s3url);
  }
  manifest_close(r);
}

/* ---- the end --------------------------------------------------------------
 */

static int do_run(upload_cli *c) {
  totals t = {0, 0, 0};
  bool known = true;
  manifest_reader *one_pass = NULL;
  int rc;
  if (c->to)
    rc = check_paths(c, &t);
  else if (c->dry_run || manifest_rereadable(c->manifest))
    rc = check_manifest(c, &t);
  else {
    /* Read once, as the upload goes; but a manifest that cannot even be
     * opened is still bad input. */
    struct stat st;
    if (strcmp(c->manifest, "-") != 0 && stat(c->manifest, &st) == 0 &&
        S_ISDIR(st.st_mode)) {
      cli_error("manifest %s is a directory", c->manifest);
      return CLI_EXIT_USAGE;
    }
    char err[1024];
    one_pass = manifest_open(c->manifest, MANIFEST_AUTO, err, sizeof err);
    if (!one_pass) {
      cli_error("%s", err);
      return CLI_EXIT_USAGE;
    }
    known = false;
    rc = -1;
  }
  if (rc != -1)
    return rc;
  /* A one-pass manifest (a pipe, a FIFO) that a signal woke while it was
   * being opened: the run goes on, cancelled, to its report. */
  if (upload_signal() && !one_pass)
    return upload_exit_for_signal();
  if (c->dry_run) {
    upload_print_dry_run(c, t.input, t.files, t.bytes);
    return CLI_EXIT_OK;
  }
  if (c->shard_n && known && !c->quiet)
    cli_error("%s: %llu of the %llu items in the input", upload_shard_text(c),
              (unsigned long long)t.files, (unsigned long long)t.input);

  if (c->opt.insecure)
    cli_error("WARNING: --insecure: TLS certificates and host names are NOT "
              "verified; anyone on the network path can read and alter these "
              "uploads. Use --cacert FILE to trust a test server instead.");

  bulkup_journal *journal = NULL;
  if (c->journal) {
    bulkup_err jerr = bulkup_journal_open(&journal, c->journal, NULL);
    if (jerr != BULKUP_OK) {
      cli_error("--journal: %s", bulkup_last_error_message());
      manifest_close(one_pass);
      return CLI_EXIT_USAGE;
    }
    if (!c->quiet && bulkup_journal_count(journal))
      cli_error("journal %s: %llu file%s already uploaded", c->journal,
                (unsigned long long)bulkup_journal_count(journal),
                bulkup_journal_count(journal) == 1 ? "" : "s");
    c->opt.journal = journal;
  }

  results *res = NULL;
  if (c->results) {
    char rerr[1024];
    res = results_open(c->results, rerr, sizeof rerr);
    if (!res) {
      cli_error("--results: %s", rerr);
      manifest_close(one_pass);
      bulkup_journal_close(journal);
      return CLI_EXIT_USAGE;
    }
    results_set_say(res, upload_say);
    c->opt.on_complete = results_on_complete;
    c->opt.userdata = res;
    upload_set_results(res);
  }

  c->opt.log = upload_log_cb;
  c->opt.log_level = upload_log_level(c);
  upload_s3 s3 = {0};
  /* A manifest read already says whether it names s3:// or gs://; one
   * read as it goes (standard input) may. */
  if ((c->manifest && (!known || manifest_has_s3)) ||
      upload_s3_is_dest(c->to)) {
    int src = upload_s3_setup(&s3, &c->s3o, &c->opt,
                              upload_s3_is_dest(c->to) ? c->to : NULL,
                              c->manifest != NULL, c->manifest && !known);
    if (src != -1) {
      upload_s3_free(&s3);
      manifest_close(one_pass);
      bulkup_journal_close(journal);
      upload_set_results(NULL);
      char rerr[1024];
      results_close(res, rerr, sizeof rerr);
      return src;
    }
    c->s3 = &s3;
  }
  bulkup_uploader *u = NULL;
  bulkup_err err = bulkup_uploader_new(&u, &c->opt);
  if (err != BULKUP_OK) {
    c->s3 = NULL;
    upload_s3_free(&s3);
    const char *detail = bulkup_last_error_message();
    cli_error("cannot start the uploader: %s%s%s", bulkup_strerror(err),
              *detail ? ": " : "", detail);
    manifest_close(one_pass);
    bulkup_journal_close(journal);
    upload_set_results(NULL);
    char rerr[1024];
    results_close(res, rerr, sizeof rerr);
    return err == BULKUP_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
  }
  upload_set_cancel(cancel_uploader, u);
  if (upload_signal())
    bulkup_uploader_cancel(u);

  if (upload_show_progress(c)) {
    progress_totals pt = {known, t.files, t.bytes};
    upload_swap_progress(progress_start(u, stderr, &pt, 0.25));
  }

  run rn = {c, u, 0, false, journal, 0};
  if (c->to)
    upload_paths(&rn);
  else
    upload_manifest(&rn, one_pass);

  bulkup_report *rep = NULL;
  err = bulkup_uploader_finish(u, &rep);
  if (err == BULKUP_EIO) /* uploaded, but not journalled: the exit says so */
    cli_error("--journal: %s", bulkup_last_error_message());

  progress_stop(upload_swap_progress(NULL));

  int status;
  switch (err) {
  case BULKUP_OK:
    status = rn.input_errors ? CLI_EXIT_FAILED : CLI_EXIT_OK;
    break;
  default:
    status = CLI_EXIT_FAILED;
    break;
  }
  if (upload_signal())
    status = upload_exit_for_signal();

  if (res) {
    char rerr[1024];
    upload_set_results(NULL);
    if (results_close(res, rerr, sizeof rerr) != 0) {
      cli_error("--results: %s", rerr);
      if (status == CLI_EXIT_OK)
        status = CLI_EXIT_FAILED;
    }
  }

  if (journal) {
    if (bulkup_journal_close(journal) != BULKUP_OK) {
      cli_error("--journal: %s", bulkup_last_error_message());
      if (status == CLI_EXIT_OK)
        status = CLI_EXIT_FAILED;
    }
    if (rn.skipped && !c->quiet)
      cli_error("skipped %llu file%s recorded as uploaded in %s", rn.skipped,
                rn.skipped == 1 ? "" : "s", c->journal);
  }
  if (rep) {
    /* Every input item the run knew of is accounted for: what phase one
     * counted and was neither submitted nor skipped was never started
     * (a signal stopped the submitting; or the file vanished since). */
    bulkup_summary s;
    bulkup_report_summary(rep, &s);
    uint64_t seen = s.submitted + rn.skipped;
    c->acct.set = true;
    c->acct.skipped = rn.skipped;
    c->acct.input = known && t.files > seen ? t.files : seen;
    c->acct.not_started = c->acct.input - seen;
    if (!c->quiet)
      upload_print_summary(c, rep, true);
    if (!upload_write_report(c, rep) && status == CLI_EXIT_OK)
      status = CLI_EXIT_FAILED;
  } else {
    cli_error("the uploader returned no report (%s)", bulkup_strerror(err));
    if (status == CLI_EXIT_OK)
      status = CLI_EXIT_FAILED;
  }
  if (rn.input_errors)
    cli_error("%lu input error%s after the upload had started (see above)",
              rn.input_errors, rn.input_errors == 1 ? "" : "s");

  upload_set_cancel(NULL, NULL);
  bulkup_report_free(rep);
  bulkup_uploader_free(u);
  c->s3 = NULL;
  upload_s3_free(&s3);
  return status;
}

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
  int rc = parse_args(&c, argc, argv);
  if (rc == -1)
    rc = check_args(&c);
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
  rc = upload_is_workflow(&c) ? upload_api_run(&c) : do_run(&c);
  extras_free(&c.x);
  upload_signal_thread_stopping();
  pthread_kill(sig_thread, SIGUSR1);
  pthread_join(sig_thread, NULL);
  return rc;
}
