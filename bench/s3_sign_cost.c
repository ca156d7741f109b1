/* s3_sign_cost: what covering a request's body costs, per request and per
 * byte, on this machine: a SigV4 signature (bulkup_sigv4_sign: canonical
 * request, string to sign, the HMAC chain) with UNSIGNED-PAYLOAD, and the
 * hashes a signed payload or a checksum adds: SHA-256 (OpenSSL EVP, as the
 * engine's sign_payload uses), MD5 (Content-MD5) and CRC-32C (util's, for
 * x-amz-checksum-crc32c), over 16 KiB and 8 MiB bodies in memory (the
 * file read the engine adds for them is not counted: page cache).
 *
 *   s3_sign_cost [SECONDS_PER_FIGURE]   default 0.5
 *
 * Prints one line per figure: microseconds per operation and MB/s. */
#include "internal.h"
#include "util/crc32c.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static volatile unsigned sink;

static bulkup_err count_header(bulkup_request *req, const char *line) {
  (void)req;
  sink += (unsigned)line[0];
  return BULKUP_OK;
}

static void digest(const EVP_MD *md, const unsigned char *b, size_t n) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len;
  EVP_Digest(b, n, out, &len, md, NULL);
  sink += out[0];
}

int main(int argc, char **argv) {
  double secs = argc > 1 ? atof(argv[1]) : 0.5;
  const char *h[] = {"Host: bucket.s3.us-east-1.amazonaws.com",
                     "Content-Type: image/jpeg",
                     "Cache-Control: max-age=86400",
                     "x-amz-checksum-crc32c: 4waSgw==",
                     "X-Amz-Date: 20261202T043000Z",
                     "X-Amz-Content-SHA256: UNSIGNED-PAYLOAD",
                     NULL};
  bulkup_sigv4_input in = {.method = "PUT",
                           .path = "/run1/images/d01/f00042.jpg",
                           .headers = h,
                           .payload_hash = BULKUP_SIGV4_UNSIGNED_PAYLOAD,
                           .amz_date = "20261202T043000Z",
                           .region = "us-east-1",
                           .service = "s3",
                           .access_key_id = "AKIAIOSFODNN7EXAMPLE",
                           .secret_access_key =
                               "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"};
  long n = 0;
  double t0 = now(), t;
  do {
    bulkup_sigv4_output o;
    if (bulkup_sigv4_sign(&o, &in) != BULKUP_OK)
      return 1;
    sink += (unsigned)o.signature[0];
    bulkup_sigv4_output_free(&o);
    n++;
  } while ((t = now()) - t0 < secs);
  printf("sigv4 sign (6 headers, UNSIGNED-PAYLOAD): %.2f us/request\n",
         (t - t0) / n * 1e6);

  /* The engine's signer (the day's signing key kept): what each request
   * costs on a worker thread, the headers added included. */
  bulkup_s3_credentials cred = {.access_key_id = "AKIAIOSFODNN7EXAMPLE",
                                .secret_access_key =
                                    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"};
  bulkup_s3_signer_options so;
  bulkup_s3_signer_options_init(&so);
  so.region = "us-east-1";
  bulkup_s3_signer *sg;
  if (bulkup_s3_signer_new(&sg, &cred, &so) != BULKUP_OK)
    return 1;
  const char *rh[] = {"Content-Type: image/jpeg",
                      "Cache-Control: max-age=86400", "Expect:", NULL};
  bulkup_result item = {0};
  bulkup_request rq = {.method = "PUT",
                       .url = "https://bucket.s3.amazonaws.com/run1/f00042.jpg",
                       .headers = rh,
                       .item = &item,
                       .add_header = count_header};
  n = 0;
  t0 = now();
  do {
    if (bulkup_s3_sign_request(sg, &rq) != BULKUP_OK)
      return 1;
    n++;
  } while ((t = now()) - t0 < secs);
  printf("bulkup_s3_sign_request (signing key kept): %.2f us/request\n",
         (t - t0) / n * 1e6);
  bulkup_s3_signer_free(sg);

  size_t sizes[] = {16 << 10, 8 << 20};
  for (int k = 0; k < 2; k++) {
    size_t sz = sizes[k];
    unsigned char *b = malloc(sz);
    for (size_t i = 0; i < sz; i++)
      b[i] = (unsigned char)(i * 2654435761u >> 13);
    const char *names[] = {"SHA-256", "MD5", "CRC-32C"};
    for (int a = 0; a < 3; a++) {
      n = 0;
      t0 = now();
      do {
        if (a == 0)
          digest(EVP_sha256(), b, sz);
        else if (a == 1)
          digest(EVP_md5(), b, sz);
        else
          sink += bk_crc32c(0, b, sz);
        n++;
      } while ((t = now()) - t0 < secs);
      double per = (t - t0) / n;
      printf("%-8s %8zu B: %10.1f us/body  %7.0f MB/s\n", names[a], sz,
             per * 1e6, sz / per / 1e6);
    }
    free(b);
  }
  return 0;
}
