/* The utility layer (src/util: sha256, str, rand, error save/restore) and
 * the retry decision (retry.c: bk_retry_decide), checked against
 * independent oracles (OpenSSL for SHA-256 and base64) and exact values. */
#include "bk_test.h"
#include "internal.h"
#include "retry.h"
#include "util/rand.h"
#include "util/sha256.h"
#include "util/str.h"

#include <openssl/evp.h>
#include <stdio.h>

static void hex_of(const unsigned char d[32], char out[65]) {
  bk_hex_encode(d, 32, out, false);
}

static void test_sha256_vectors(void) {
  unsigned char d[32];
  char hex[65];
  /* FIPS 180-4 examples. */
  bk_sha256("", 0, d);
  hex_of(d, hex);
  CU_ASSERT_STRING_EQUAL(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  bk_sha256("abc", 3, d);
  hex_of(d, hex);
  CU_ASSERT_STRING_EQUAL(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  bk_sha256(m, strlen(m), d);
  hex_of(d, hex);
  CU_ASSERT_STRING_EQUAL(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  /* A million 'a', fed in uneven pieces. */
  bk_sha256_ctx c;
  bk_sha256_init(&c);
  char a[997];
  memset(a, 'a', sizeof a);
  size_t left = 1000000;
  for (size_t step = 1; left > 0; step = step % 983 + 13) {
    size_t n = step < left ? step : left; /* step <= 995 < sizeof a */
    bk_sha256_update(&c, a, n);
    left -= n;
  }
  bk_sha256_final(&c, d);
  hex_of(d, hex);
  CU_ASSERT_STRING_EQUAL(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_sha256_matches_openssl(void) {
  /* Every length around the block and padding boundaries, split at every
   * 7th byte, against OpenSSL's EVP. */
  unsigned char buf[300];
  bk_fill_random(buf, sizeof buf, 42);
  for (size_t len = 0; len <= sizeof buf; len++) {
    unsigned char want[EVP_MAX_MD_SIZE], got[32];
    unsigned int wn = 0;
    CU_ASSERT_FATAL(EVP_Digest(buf, len, want, &wn, EVP_sha256(), NULL) == 1);
    CU_ASSERT_EQUAL(wn, 32);
    bk_sha256_ctx c;
    bk_sha256_init(&c);
    for (size_t o = 0; o < len; o += 7)
      bk_sha256_update(&c, buf + o, len - o < 7 ? len - o : 7);
    bk_sha256_final(&c, got);
    CU_ASSERT_EQUAL(memcmp(want, got, 32), 0);
  }
}

static void test_hex(void) {
  char out[9];
  bk_hex_encode("\x00\x9f\xa0\xff", 4, out, false);
  CU_ASSERT_STRING_EQUAL(out, "009fa0ff");
  bk_hex_encode("\x00\x9f\xa0\xff", 4, out, true);
  CU_ASSERT_STRING_EQUAL(out, "009FA0FF");
  CU_ASSERT_EQUAL(bk_hex_value('0'), 0);
  CU_ASSERT_EQUAL(bk_hex_value('9'), 9);
  CU_ASSERT_EQUAL(bk_hex_value('a'), 10);
  CU_ASSERT_EQUAL(bk_hex_value('F'), 15);
  CU_ASSERT_EQUAL(bk_hex_value('g'), -1);
  CU_ASSERT_EQUAL(bk_hex_value('/'), -1);
}

static void test_base64(void) {
  /* RFC 4648 section 10. */
  static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba",
                                      "foobar"};
  static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==",
                                    "Zm9vYmE=", "Zm9vYmFy"};
  for (size_t i = 0; i < BK_ARRAY_LEN(plain); i++) {
    char out[16];
    size_t n = bk_b64_encode(plain[i], strlen(plain[i]), out);
    CU_ASSERT_EQUAL(n, BK_B64_ENCODED_LEN(strlen(plain[i])));
    CU_ASSERT_STRING_EQUAL(out, enc[i]);
    unsigned char dec[16];
    long d = bk_b64_decode(enc[i], strlen(enc[i]), dec, sizeof dec, 0);
    CU_ASSERT_EQUAL(d, (long)strlen(plain[i]));
    CU_ASSERT(d >= 0 && memcmp(dec, plain[i], (size_t)d) == 0);
  }
  /* Against OpenSSL, every length up to 100. */
  unsigned char buf[100];
  bk_fill_random(buf, sizeof buf, 7);
  for (size_t len = 0; len <= sizeof buf; len++) {
    char mine[140], theirs[140];
    bk_b64_encode(buf, len, mine);
    EVP_EncodeBlock((unsigned char *)theirs, buf, (int)len);
    CU_ASSERT_STRING_EQUAL(mine, theirs);
  }
  unsigned char dec[16];
  /* Strict: bad length, stray characters, data after padding, non-zero
   * dropped bits, too much padding; whitespace only with the flag. */
  CU_ASSERT_EQUAL(bk_b64_decode("Zg=", 3, dec, sizeof dec, 0), -1);
  CU_ASSERT_EQUAL(bk_b64_decode("Zg", 2, dec, sizeof dec, 0), -1);
  CU_ASSERT_EQUAL(bk_b64_decode("Z!==", 4, dec, sizeof dec, 0), -1);
  CU_ASSERT_EQUAL(bk_b64_decode("Zg=a", 4, dec, sizeof dec, 0), -1);
  CU_ASSERT_EQUAL(bk_b64_decode("Zh==", 4, dec, sizeof dec, 0), -1);
  CU_ASSERT_EQUAL(bk_b64_decode("Zm9=", 4, dec, sizeof dec, 0), -1);
  CU_ASSERT_EQUAL(bk_b64_decode("Z===", 4, dec, sizeof dec, 0), -1);
  CU_ASSERT_EQUAL(bk_b64_decode("Zm 9v", 5, dec, sizeof dec, 0), -1);
  CU_ASSERT_EQUAL(bk_b64_decode("Zm 9v\n", 6, dec, sizeof dec, BK_B64_SPACE), 3);
  CU_ASSERT_EQUAL(memcmp(dec, "foo", 3), 0);
  /* Over capacity. */
  CU_ASSERT_EQUAL(bk_b64_decode("Zm9vYmFy", 8, dec, 5, 0), -1);
  CU_ASSERT_EQUAL(bk_b64_decode("Zm9vYmFy", 8, dec, 6, 0), 6);
}

static void test_pct(void) {
  char out[64];
  const char s[] = "a b%c\x7f/~\xff";
  size_t n = bk_pct_encode(s, sizeof s - 1, out, BK_PCT_PRINTABLE);
  CU_ASSERT_STRING_EQUAL(out, "a%20b%25c%7F/~\xff");
  CU_ASSERT_EQUAL(n, strlen(out));
  bk_pct_encode(s, sizeof s - 1, out, BK_PCT_UNRESERVED);
  CU_ASSERT_STRING_EQUAL(out, "a%20b%25c%7F%2F~%FF");
  bk_pct_encode(s, sizeof s - 1, out, BK_PCT_PATH);
  CU_ASSERT_STRING_EQUAL(out, "a%20b%25c%7F/~%FF");
  char back[64];
  size_t bn = 0;
  CU_ASSERT_TRUE(bk_pct_decode(out, strlen(out), back, &bn, true));
  CU_ASSERT_EQUAL(bn, sizeof s - 1);
  CU_ASSERT_EQUAL(memcmp(back, s, bn), 0);
  /* In place. */
  char in[] = "x%41%4a";
  CU_ASSERT_TRUE(bk_pct_decode(in, 7, in, &bn, false));
  CU_ASSERT_EQUAL(bn, 3);
  CU_ASSERT_EQUAL(memcmp(in, "xAJ", 3), 0);
  CU_ASSERT_FALSE(bk_pct_decode("%4", 2, back, &bn, false));
  CU_ASSERT_FALSE(bk_pct_decode("%zz", 3, back, &bn, false));
  CU_ASSERT_FALSE(bk_pct_decode("a%00", 4, back, &bn, true));
  CU_ASSERT_TRUE(bk_pct_decode("a%00", 4, back, &bn, false));
  CU_ASSERT_EQUAL(bn, 2);
}

static void test_basename(void) {
  CU_ASSERT_STRING_EQUAL(bk_basename("a/b/c.jpg"), "c.jpg");
  CU_ASSERT_STRING_EQUAL(bk_basename("c.jpg"), "c.jpg");
  CU_ASSERT_STRING_EQUAL(bk_basename("a/"), "");
}

static void test_rand(void) {
  bk_rng a, b;
  bk_rng_seed(&a, 1);
  bk_rng_seed(&b, 1);
  for (int i = 0; i < 100; i++)
    CU_ASSERT_EQUAL(bk_rng_next(&a), bk_rng_next(&b));
  bk_rng_seed(&b, 2);
  CU_ASSERT_NOT_EQUAL(bk_rng_next(&a), bk_rng_next(&b));
  bk_rng_seed(&a, 0); /* 0 is a valid seed: the state is never 0 */
  CU_ASSERT_NOT_EQUAL(a.s, 0);
  double lo = 1, hi = 0;
  for (int i = 0; i < 10000; i++) {
    double u = bk_rng_01(&a);
    CU_ASSERT(u >= 0.0 && u < 1.0);
    lo = u < lo ? u : lo;
    hi = u > hi ? u : hi;
    double v = bk_rand01();
    CU_ASSERT(v >= 0.0 && v < 1.0);
  }
  CU_ASSERT(lo < 0.01 && hi > 0.99);
  unsigned char x[16] = {0}, y[16] = {0};
  CU_ASSERT_TRUE(bk_random_bytes(x, sizeof x));
  CU_ASSERT_TRUE(bk_random_bytes(y, sizeof y));
  CU_ASSERT_NOT_EQUAL(memcmp(x, y, sizeof x), 0);
  CU_ASSERT_NOT_EQUAL(bk_random_seed(), bk_random_seed());
}

static void test_error_save_restore(void) {
  bk_error(BULKUP_EIO, "first: %d", 1);
  bk_error_saved saved;
  bk_error_save(&saved);
  bk_error(BULKUP_EINVAL, "second");
  CU_ASSERT_STRING_EQUAL(bulkup_last_error_message(), "second");
  CU_ASSERT_EQUAL(bk_error_restore(&saved, BULKUP_EIO), BULKUP_EIO);
  CU_ASSERT_STRING_EQUAL(bulkup_last_error_message(), "first: 1");
}

/* ---- the retry decision ------------------------------------------------ */

static bulkup_upload_policy policy(int max_retries, int conn_retries,
                                   double factor) {
  bulkup_requests_settings rq;
  bulkup_requests_settings_init(&rq);
  rq.max_retries = max_retries;
  rq.connection_retries = conn_retries;
  rq.backoff_factor = factor;
  bulkup_upload_policy p;
  CU_ASSERT_FATAL(bulkup_upload_policy_merge(&p, &rq, NULL, NULL) == BULKUP_OK);
  return p;
}

static void test_decide_limits(void) {
  bulkup_upload_policy p = policy(2, 1, 0.5);
  bk_retry_state st = {0};
  bk_retry_decision d;
  /* Permanent: never. */
  d = bk_retry_decide(&p, NULL, &st, BK_FAIL, BULKUP_ERROR_HTTP_STATUS, 404,
                      -1, 0.5);
  CU_ASSERT_FALSE(d.retry);
  CU_ASSERT_EQUAL(d.kind, BULKUP_ERROR_HTTP_STATUS);
  /* Two retries after a 500, with 0.5 s then 1 s; the third is refused. */
  d = bk_retry_decide(&p, NULL, &st, BK_RETRY, BULKUP_ERROR_HTTP_STATUS, 500,
                      -1, 0.5);
  CU_ASSERT_TRUE(d.retry);
  CU_ASSERT_EQUAL(d.retry_no, 1);
  CU_ASSERT_DOUBLE_EQUAL(d.wait, 0.5, 1e-12);
  d = bk_retry_decide(&p, NULL, &st, BK_RETRY, BULKUP_ERROR_HTTP_STATUS, 500,
                      -1, 0.5);
  CU_ASSERT_TRUE(d.retry);
  CU_ASSERT_EQUAL(d.retry_no, 2);
  CU_ASSERT_DOUBLE_EQUAL(d.wait, 1.0, 1e-12);
  d = bk_retry_decide(&p, NULL, &st, BK_RETRY, BULKUP_ERROR_HTTP_STATUS, 500,
                      -1, 0.5);
  CU_ASSERT_FALSE(d.retry);
  CU_ASSERT_EQUAL(d.kind, BULKUP_ERROR_HTTP_STATUS);
  CU_ASSERT_FALSE(d.budget_exhausted);
  CU_ASSERT_EQUAL(st.retries, 2);
  /* Connection retries are counted apart: one left; its number follows
   * the others (the backoff grows over both). */
  d = bk_retry_decide(&p, NULL, &st, BK_RETRY_CONNECT, BULKUP_ERROR_CONNECT,
                      0, -1, 0.5);
  CU_ASSERT_TRUE(d.retry);
  CU_ASSERT_EQUAL(d.retry_no, 3);
  CU_ASSERT_DOUBLE_EQUAL(d.wait, 2.0, 1e-12);
  d = bk_retry_decide(&p, NULL, &st, BK_RETRY_CONNECT, BULKUP_ERROR_CONNECT,
                      0, -1, 0.5);
  CU_ASSERT_FALSE(d.retry);
  CU_ASSERT_EQUAL(st.conn_retries, 1);
  CU_ASSERT_EQUAL(st.budget_spent, 0);
}

static void test_decide_retry_after(void) {
  bulkup_upload_policy p = policy(5, 0, 0.5);
  p.backoff.retry_after_max = 30;
  /* Honoured on 429 and 503 (capped), ignored on 500. */
  static const struct {
    int status;
    double ra, want;
  } cases[] = {{429, 7, 7}, {503, 7, 7}, {503, 100, 30}, {500, 7, 0.5},
               {429, 0.1, 0.5}, {429, -1, 0.5}};
  for (size_t i = 0; i < BK_ARRAY_LEN(cases); i++) {
    bk_retry_state st = {0};
    bk_retry_decision d =
        bk_retry_decide(&p, NULL, &st, BK_RETRY, BULKUP_ERROR_HTTP_STATUS,
                        cases[i].status, cases[i].ra, 0.5);
    CU_ASSERT_TRUE(d.retry);
    CU_ASSERT_DOUBLE_EQUAL(d.wait, cases[i].want, 1e-12);
  }
}

static void test_decide_budget(void) {
  bulkup_upload_policy p = policy(10, 10, 0);
  bk_budget b;
  bk_budget_init(&b, true, 22);
  bk_retry_state st = {0};
  /* A timeout costs 10, another failure 5: 22 pays 10 + 5 + 5, then the
   * next 5 cannot be paid (2 left). */
  bk_retry_decision d = bk_retry_decide(&p, &b, &st, BK_RETRY,
                                        BULKUP_ERROR_TIMEOUT_READ, 0, -1, 0);
  CU_ASSERT_TRUE(d.retry);
  CU_ASSERT_EQUAL(st.budget_spent, 10);
  d = bk_retry_decide(&p, &b, &st, BK_RETRY, BULKUP_ERROR_HTTP_STATUS, 503,
                      -1, 0);
  CU_ASSERT_TRUE(d.retry);
  d = bk_retry_decide(&p, &b, &st, BK_RETRY_CONNECT, BULKUP_ERROR_CONNECT, 0,
                      -1, 0);
  CU_ASSERT_TRUE(d.retry);
  CU_ASSERT_EQUAL(st.budget_spent, 20);
  CU_ASSERT_EQUAL(atomic_load(&b.tokens), 2);
  d = bk_retry_decide(&p, &b, &st, BK_RETRY, BULKUP_ERROR_HTTP_STATUS, 503,
                      -1, 0);
  CU_ASSERT_FALSE(d.retry);
  CU_ASSERT_TRUE(d.budget_exhausted);
  CU_ASSERT_EQUAL(d.kind, BULKUP_ERROR_RETRY_BUDGET);
  CU_ASSERT_EQUAL(st.retries, 2);
  CU_ASSERT_EQUAL(st.conn_retries, 1);
  /* Success gives back what the request paid, up to the maximum. */
  bk_retry_succeeded(&b, &st);
  CU_ASSERT_EQUAL(atomic_load(&b.tokens), 22);
  bk_retry_state none = {0};
  bk_budget_init(&b, true, 22);
  CU_ASSERT_TRUE(bk_budget_take(&b, 5));
  bk_retry_succeeded(&b, &none);
  CU_ASSERT_EQUAL(atomic_load(&b.tokens), 18);
  /* A disabled budget always pays. */
  bk_budget_init(&b, false, 0);
  bk_retry_state st2 = {0};
  d = bk_retry_decide(&p, &b, &st2, BK_RETRY, BULKUP_ERROR_HTTP_STATUS, 503,
                      -1, 0);
  CU_ASSERT_TRUE(d.retry);
}


static void test_gate(void) {
  /* Pinned time: the gate opens when the budget cannot pay, sends one
   * probe at a time at most every BK_PROBE_INTERVAL, a failed probe holds
   * its item without counting, the first success closes it and puts
   * tokens back, a parked item then starts afresh; and after the limit
   * without a success, admission gives up. */
  bulkup_upload_policy p = policy(10, 10, 0);
  bk_budget b;
  bk_budget_init(&b, true, 5);
  bk_budget_set_outage(&b, 30, 40, 100.0);
  bk_retry_state a = {0}, c = {0};
  double w;
  CU_ASSERT_EQUAL(bk_retry_admit(&b, &a, 100.0, &w), BK_ADMIT_GO);
  bk_retry_decision d = bk_retry_decide_at(&p, &b, &a, BK_RETRY,
                                           BULKUP_ERROR_HTTP_STATUS, 503, -1,
                                           0, 101.0);
  CU_ASSERT_TRUE(d.retry); /* paid: 5 tokens */
  d = bk_retry_decide_at(&p, &b, &c, BK_RETRY, BULKUP_ERROR_HTTP_STATUS, 503,
                         -1, 0, 101.5);
  CU_ASSERT_FALSE(d.retry);
  CU_ASSERT_TRUE(d.hold);
  CU_ASSERT_TRUE(d.outage_began);
  CU_ASSERT_EQUAL(c.owed, BK_RETRY_COST);
  /* Open: the first asker probes, the next waits. */
  CU_ASSERT_EQUAL(bk_retry_admit(&b, &a, 101.6, &w), BK_ADMIT_GO);
  CU_ASSERT_TRUE(a.probe);
  CU_ASSERT_EQUAL(bk_retry_admit(&b, &c, 101.6, &w), BK_ADMIT_WAIT);
  CU_ASSERT(w > 0);
  /* The probe fails: held, its counters unchanged, next probe later. */
  int before = a.retries;
  d = bk_retry_decide_at(&p, &b, &a, BK_RETRY, BULKUP_ERROR_HTTP_STATUS, 503,
                         -1, 0, 102.0);
  CU_ASSERT_TRUE(d.hold);
  CU_ASSERT_FALSE(d.outage_began);
  CU_ASSERT_EQUAL(a.retries, before);
  CU_ASSERT_FALSE(a.probe);
  CU_ASSERT_EQUAL(bk_retry_admit(&b, &c, 102.0 + BK_PROBE_INTERVAL / 2, &w),
                  BK_ADMIT_WAIT);
  CU_ASSERT_EQUAL(bk_retry_admit(&b, &c, 102.0 + BK_PROBE_INTERVAL, &w),
                  BK_ADMIT_GO);
  CU_ASSERT_TRUE(c.probe);
  /* It succeeds: the gate closes, tokens back (40, up to the max 5). */
  CU_ASSERT_TRUE(bk_retry_succeeded_at(&b, &c, 103.0));
  CU_ASSERT_FALSE(atomic_load(&b.open));
  CU_ASSERT_EQUAL(atomic_load(&b.tokens), 5);
  /* The parked item goes, afresh. */
  CU_ASSERT_EQUAL(bk_retry_admit(&b, &a, 103.1, &w), BK_ADMIT_GO);
  CU_ASSERT_EQUAL(a.retries, 0);
  CU_ASSERT_FALSE(a.parked);
  uint64_t outages, probes;
  bk_budget_outage_stats(&b, &outages, &probes);
  CU_ASSERT_EQUAL(outages, 1);
  CU_ASSERT_EQUAL(probes, 2);
  /* Limits spent while another item fails too and nothing succeeded
   * since: an outage (parked), not the item's failure. */
  bulkup_upload_policy q = policy(0, 0, 0);
  bk_retry_state x = {0}, y = {0};
  d = bk_retry_decide_at(&q, &b, &x, BK_RETRY, BULKUP_ERROR_HTTP_STATUS, 500,
                         -1, 0, 110.0);
  CU_ASSERT_FALSE(d.retry);
  CU_ASSERT_FALSE(d.hold); /* alone: its own failure */
  bk_retry_release(&b, &x, 110.0);
  bk_retry_state x2 = {0};
  d = bk_retry_decide_at(&q, &b, &x2, BK_RETRY, BULKUP_ERROR_HTTP_STATUS,
                         500, -1, 0, 110.0);
  CU_ASSERT_FALSE(d.hold);
  d = bk_retry_decide_at(&q, &b, &y, BK_RETRY, BULKUP_ERROR_HTTP_STATUS, 500,
                         -1, 0, 110.1);
  CU_ASSERT_TRUE(d.hold); /* x2 is failing too, nothing since 103 */
  CU_ASSERT_TRUE(d.outage_began);
  CU_ASSERT_TRUE(y.parked);
  /* Nothing succeeds for 30 s since 103: admission gives up. */
  CU_ASSERT_NOT_EQUAL(bk_retry_admit(&b, &y, 132.9, &w), BK_ADMIT_GIVE_UP);
  bk_retry_release(&b, &y, 132.9);
  CU_ASSERT_EQUAL(bk_retry_admit(&b, &y, 133.0, &w), BK_ADMIT_GIVE_UP);
  CU_ASSERT_DOUBLE_EQUAL(bk_retry_stalled_for(&b, 133.0), 30.0, 1e-9);
  bk_budget_destroy(&b);
}

static void reg(void) {
  bk_suite("sha256", NULL, NULL);
  bk_test("FIPS 180-4 vectors, incremental", test_sha256_vectors);
  bk_test("matches OpenSSL at every length to 300", test_sha256_matches_openssl);
  bk_suite("str", NULL, NULL);
  bk_test("hex", test_hex);
  bk_test("base64: RFC 4648 vectors, OpenSSL, strictness", test_base64);
  bk_test("percent-escapes", test_pct);
  bk_test("basename", test_basename);
  bk_suite("rand", NULL, NULL);
  bk_test("xorshift64*, seeds, range, getrandom", test_rand);
  bk_suite("error", NULL, NULL);
  bk_test("save and restore the message", test_error_save_restore);
  bk_suite("retry_decide", NULL, NULL);
  bk_test("limits and backoff", test_decide_limits);
  bk_test("Retry-After only on 429 and 503", test_decide_retry_after);
  bk_test("the shared budget", test_decide_budget);
  bk_test("the outage gate", test_gate);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
