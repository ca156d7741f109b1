/* Pure parts of the engine: failure classification, retry budget, URL
 * redaction, content types, the bounded queue. */
#include "bk_test.h"
#include "internal.h"
#include "engine/queue.h"
#include "retry.h"

#include <stdatomic.h>

static bk_verdict classify(CURLcode c, int status, bool connected, bk_abort ab,
                           bulkup_error_kind *k) {
  bk_outcome o = {.curl = c, .http_status = status, .connected = connected,
                  .abort = ab};
  return bk_classify(&o, k);
}

static void test_classify_statuses(void) {
  bulkup_error_kind k;
  for (int s = 200; s < 300; s++) {
    CU_ASSERT_EQUAL(classify(CURLE_OK, s, true, BK_ABORT_NONE, &k), BK_SUCCESS);
    CU_ASSERT_EQUAL(k, BULKUP_ERROR_NONE);
  }
  static const int transient[] = {408, 429, 500, 502, 503, 504};
  for (size_t i = 0; i < BK_ARRAY_LEN(transient); i++) {
    CU_ASSERT_EQUAL(classify(CURLE_OK, transient[i], true, BK_ABORT_NONE, &k),
                    BK_RETRY);
    CU_ASSERT_EQUAL(k, BULKUP_ERROR_HTTP_STATUS);
  }
  static const int permanent[] = {100, 301, 302, 307, 308, 400, 401, 403, 404,
                                  405, 409, 411, 412, 413, 501, 505, 599};
  for (size_t i = 0; i < BK_ARRAY_LEN(permanent); i++) {
    CU_ASSERT_EQUAL(classify(CURLE_OK, permanent[i], true, BK_ABORT_NONE, &k),
                    BK_FAIL);
    CU_ASSERT_EQUAL(k, BULKUP_ERROR_HTTP_STATUS);
  }
}

static void test_classify_curl_codes(void) {
  bulkup_error_kind k;
  CU_ASSERT_EQUAL(classify(CURLE_COULDNT_CONNECT, 0, false, 0, &k), BK_RETRY_CONNECT);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_CONNECT);
  CU_ASSERT_EQUAL(classify(CURLE_COULDNT_RESOLVE_HOST, 0, false, 0, &k), BK_RETRY_CONNECT);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_DNS);
  CU_ASSERT_EQUAL(classify(CURLE_OPERATION_TIMEDOUT, 0, false, 0, &k), BK_RETRY_CONNECT);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_TIMEOUT_CONNECT);
  CU_ASSERT_EQUAL(classify(CURLE_SSL_CONNECT_ERROR, 0, false, 0, &k), BK_RETRY_CONNECT);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_TLS);
  CU_ASSERT_EQUAL(classify(CURLE_PEER_FAILED_VERIFICATION, 0, false, 0, &k), BK_FAIL);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_TLS);
  CU_ASSERT_EQUAL(classify(CURLE_SEND_ERROR, 0, true, 0, &k), BK_RETRY);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_SEND);
  /* A send error before the connection was up never reached the server. */
  CU_ASSERT_EQUAL(classify(CURLE_SEND_ERROR, 0, false, 0, &k), BK_RETRY_CONNECT);
  CU_ASSERT_EQUAL(classify(CURLE_RECV_ERROR, 0, true, 0, &k), BK_RETRY);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_RECV);
  CU_ASSERT_EQUAL(classify(CURLE_GOT_NOTHING, 0, true, 0, &k), BK_RETRY);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_RECV);
  CU_ASSERT_EQUAL(classify(CURLE_PARTIAL_FILE, 200, true, 0, &k), BK_RETRY);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_RECV);
  CU_ASSERT_EQUAL(classify(CURLE_SEND_FAIL_REWIND, 0, true, 0, &k), BK_RETRY);
  CU_ASSERT_EQUAL(classify(CURLE_UNSUPPORTED_PROTOCOL, 0, false, 0, &k), BK_FAIL);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_URL);
  CU_ASSERT_EQUAL(classify(CURLE_UNSUPPORTED_PROTOCOL, 0, true, 0, &k), BK_FAIL);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_PROTOCOL); /* an answer that is not HTTP */
  CU_ASSERT_EQUAL(classify(CURLE_URL_MALFORMAT, 0, false, 0, &k), BK_FAIL);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_URL);
  CU_ASSERT_EQUAL(classify(CURLE_OUT_OF_MEMORY, 0, false, 0, &k), BK_FAIL);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_NOMEM);
  CU_ASSERT_EQUAL(classify(CURLE_WEIRD_SERVER_REPLY, 0, true, 0, &k), BK_FAIL);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_PROTOCOL);
  CU_ASSERT_EQUAL(classify(CURLE_BAD_FUNCTION_ARGUMENT, 0, true, 0, &k), BK_FAIL);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_INTERNAL);
}

static void test_classify_own_aborts_win(void) {
  bulkup_error_kind k;
  CU_ASSERT_EQUAL(classify(CURLE_ABORTED_BY_CALLBACK, 0, true,
                           BK_ABORT_TIMEOUT_WRITE, &k), BK_RETRY);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_TIMEOUT_WRITE);
  CU_ASSERT_EQUAL(classify(CURLE_ABORTED_BY_CALLBACK, 0, true,
                           BK_ABORT_TIMEOUT_READ, &k), BK_RETRY);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_TIMEOUT_READ);
  CU_ASSERT_EQUAL(classify(CURLE_ABORTED_BY_CALLBACK, 0, true,
                           BK_ABORT_CANCEL, &k), BK_FAIL);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_CANCELLED);
  CU_ASSERT_EQUAL(classify(CURLE_ABORTED_BY_CALLBACK, 0, true,
                           BK_ABORT_FILE, &k), BK_FAIL);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_FILE);
  CU_ASSERT_EQUAL(classify(CURLE_ABORTED_BY_CALLBACK, 0, true,
                           BK_ABORT_FILE_CHANGED, &k), BK_FAIL);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_FILE_CHANGED);
  /* Even with a 2xx already seen, a file that changed is a failure. */
  CU_ASSERT_EQUAL(classify(CURLE_OK, 200, true, BK_ABORT_FILE_CHANGED, &k), BK_FAIL);
}

static void test_budget(void) {
  bk_budget b;
  bk_budget_init(&b, true, 12);
  CU_ASSERT_TRUE(bk_budget_take(&b, 5));
  CU_ASSERT_TRUE(bk_budget_take(&b, 5));
  CU_ASSERT_FALSE(bk_budget_take(&b, 5)); /* 2 left */
  CU_ASSERT_EQUAL(atomic_load(&b.tokens), 2);
  bk_budget_refund(&b, 1);
  CU_ASSERT_EQUAL(atomic_load(&b.tokens), 3);
  bk_budget_refund(&b, 100); /* capped at the maximum */
  CU_ASSERT_EQUAL(atomic_load(&b.tokens), 12);
  CU_ASSERT_FALSE(bk_budget_take(&b, 13));
  CU_ASSERT_EQUAL(atomic_load(&b.tokens), 12);
  bk_budget_init(&b, false, 0);
  for (int i = 0; i < 1000; i++)
    CU_ASSERT_TRUE(bk_budget_take(&b, 10));
}

static void check_redact(const char *in, const char *want) {
  char *got = bulkup_redact_url(in);
  CU_ASSERT_PTR_NOT_NULL_FATAL(got);
  CU_ASSERT_STRING_EQUAL(got, want);
  if (strcmp(got, want) != 0)
    fprintf(stderr, "\n redact(%s)\n   got  %s\n   want %s\n", in, got, want);
  bulkup_free(got);
}

static void test_redact(void) {
  check_redact("https://storage.googleapis.com/b/o.jpg?X-Goog-Algorithm=GOOG4-RSA-SHA256"
               "&X-Goog-Credential=a%40b%2F20240101&X-Goog-Date=20240101T000000Z"
               "&X-Goog-Expires=900&X-Goog-SignedHeaders=host&X-Goog-Signature=abcdef",
               "https://storage.googleapis.com/b/o.jpg?X-Goog-Algorithm=GOOG4-RSA-SHA256"
               "&X-Goog-Credential=REDACTED&X-Goog-Date=20240101T000000Z"
               "&X-Goog-Expires=900&X-Goog-SignedHeaders=host&X-Goog-Signature=REDACTED");
  check_redact("https://s3.amazonaws.com/b/k?X-Amz-Security-Token=T&x-amz-signature=S"
               "&X-Amz-Credential=C",
               "https://s3.amazonaws.com/b/k?X-Amz-Security-Token=REDACTED"
               "&x-amz-signature=REDACTED&X-Amz-Credential=REDACTED");
  check_redact("https://a.blob.core.windows.net/c/b?sv=2020&sig=SECRET&se=x",
               "https://a.blob.core.windows.net/c/b?sv=2020&sig=REDACTED&se=x");
  check_redact("http://h/p?token=t1&signature=s1&access_token=a1",
               "http://h/p?token=REDACTED&signature=REDACTED&access_token=REDACTED");
  check_redact("http://h/p?signaturex=keep&xsig=keep",
               "http://h/p?signaturex=keep&xsig=keep");
  /* A resumable session URL: its upload_id is the session's credential. */
  check_redact("https://storage.googleapis.com/b/o?upload_id=ADPycdv7&x=1",
               "https://storage.googleapis.com/b/o?upload_id=REDACTED&x=1");
  check_redact("http://user:pass@h:8080/p?a=1", "http://user:REDACTED@h:8080/p?a=1");
  /* A lone userinfo is a token (https://TOKEN@host/): all of it goes. */
  check_redact("http://user@h/p", "http://REDACTED@h/p");
  check_redact("https://ghp_abc123@h:8443/p?a=1", "https://REDACTED@h:8443/p?a=1");
  check_redact("https://u:p@w@h/p", "https://u:REDACTED@h/p");
  /* Percent-encoded names are the same names to the server. */
  check_redact("https://s3.example/b/k?X%2DAmz%2DSignature=S1&X-Amz%2dCredential=C1"
               "&x%2damz%2ddate=D&sig%6E=keep",
               "https://s3.example/b/k?X%2DAmz%2DSignature=REDACTED"
               "&X-Amz%2dCredential=REDACTED&x%2damz%2ddate=D&sig%6E=keep");
  check_redact("http://h/p?%73ig=S&%74oken=T", "http://h/p?%73ig=REDACTED&%74oken=REDACTED");
  check_redact("http://h/p?Signature=S&AWSAccessKeyId=A&Expires=1",
               "http://h/p?Signature=REDACTED&AWSAccessKeyId=REDACTED&Expires=1");
  check_redact("http://h/p", "http://h/p");
  check_redact("http://h/p?", "http://h/p?");
  check_redact("http://h/p?sig", "http://h/p?sig");
  check_redact("http://h/p?sig=", "http://h/p?sig=REDACTED");
  check_redact("http://h/p?sig=a#frag?sig=b", "http://h/p?sig=REDACTED#frag?sig=b");
  check_redact("http://h/p#f?sig=b", "http://h/p#f?sig=b");
  check_redact("http://h/p?a=1;sig=2", "http://h/p?a=1;sig=REDACTED");
  check_redact("", "");
  /* Found by fuzzing: a "://" inside the query is not a scheme, and its
   * "user:password@" is not userinfo. */
  check_redact("a?b://u:p@h/?sig=1", "a?b://u:p@h/?sig=1");
  check_redact("htt?X-Amz-Security-Token=T&x://u:p@h:1/p?sig=1",
               "htt?X-Amz-Security-Token=REDACTED&x://u:p@h:1/p?sig=1");
  CU_ASSERT_PTR_NULL(bulkup_redact_url(NULL));
  /* Worst case growth: every byte a secret parameter. */
  check_redact("http://h/?sig=&sig=&sig=",
               "http://h/?sig=REDACTED&sig=REDACTED&sig=REDACTED");
}

static void check_identity(const char *in, const char *want) {
  char *got = bulkup_url_identity(in);
  CU_ASSERT_PTR_NOT_NULL_FATAL(got);
  CU_ASSERT_STRING_EQUAL(got, want);
  if (strcmp(got, want) != 0)
    fprintf(stderr, "\n identity(%s)\n   got  %s\n   want %s\n", in, got, want);
  bulkup_free(got);
}

static void test_url_identity(void) {
  /* GCS V4, signed on two days: one identity. */
  check_identity("https://storage.googleapis.com/b/o.jpg?X-Goog-Algorithm=GOOG4-RSA-SHA256"
                 "&X-Goog-Credential=a%40b%2F20240101&X-Goog-Date=20240101T000000Z"
                 "&X-Goog-Expires=900&X-Goog-SignedHeaders=host&X-Goog-Signature=abcdef",
                 "https://storage.googleapis.com/b/o.jpg");
  check_identity("https://storage.googleapis.com/b/o.jpg?X-Goog-Algorithm=GOOG4-RSA-SHA256"
                 "&X-Goog-Credential=a%40b%2F20240102&X-Goog-Date=20240102T000000Z"
                 "&X-Goog-Expires=600&X-Goog-SignedHeaders=host&X-Goog-Signature=123456",
                 "https://storage.googleapis.com/b/o.jpg");
  /* S3 SigV4 with other parameters: those stay, in order. */
  check_identity("https://s3.example/b/k?versionId=7&X-Amz-Algorithm=AWS4-HMAC-SHA256"
                 "&X-Amz-Date=20240101T000000Z&X-Amz-Expires=60&X-Amz-Security-Token=T"
                 "&X-Amz-SignedHeaders=host&X-Amz-Credential=C&part=2&X%2DAmz%2DSignature=S",
                 "https://s3.example/b/k?versionId=7&part=2");
  /* V2 signatures. */
  check_identity("https://s3.example/b/k?AWSAccessKeyId=A&Expires=1700000000&Signature=S",
                 "https://s3.example/b/k");
  check_identity("https://storage.googleapis.com/b/k?GoogleAccessId=g&Expires=1&Signature=S&a=1",
                 "https://storage.googleapis.com/b/k?a=1");
  /* Azure SAS: its fields go when the query is a SAS (has sig=). */
  check_identity("https://a.blob.core.windows.net/c/b?sv=2020-08-04&st=2024-01-01&se=2024-01-02"
                 "&sr=b&sp=cw&spr=https&sig=SECRET&comp=block",
                 "https://a.blob.core.windows.net/c/b?comp=block");
  /* Not a SAS: short names such as st= are the application's. */
  check_identity("http://h/p?st=1&sp=2", "http://h/p?st=1&sp=2");
  check_identity("http://h/p?st=1", "http://h/p?st=1");
  check_identity("http://h/p?st=2", "http://h/p?st=2");
  /* Other credentials stay part of the identity, redacted. */
  check_identity("http://h/p?upload_id=U&x=1", "http://h/p?upload_id=REDACTED&x=1");
  check_identity("http://t0k@h/p?X-Amz-Date=1#f", "http://REDACTED@h/p#f");
  check_identity("http://h/p", "http://h/p");
  check_identity("http://h/p?", "http://h/p");
  check_identity("http://h/p?a=1&&b=2", "http://h/p?a=1&b=2");
  CU_ASSERT_PTR_NULL(bulkup_url_identity(NULL));
}

static void check_text(const char *in, size_t len, const char *want) {
  size_t n = 0;
  char *got = bk_redact_text(in, len, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(got);
  CU_ASSERT_EQUAL(n, strlen(want));
  CU_ASSERT_STRING_EQUAL(got, want);
  if (strcmp(got, want) != 0)
    fprintf(stderr, "\n text(%s)\n   got  %s\n   want %s\n", in, got, want);
  bk_free(got);
}
#define CHECK_TEXT(in, want) check_text(in, strlen(in), want)

static void test_redact_text(void) {
  /* S3's answer to a bad signature (the shape AWS documents). */
  CHECK_TEXT("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch"
             "</Code><Message>The request signature we calculated does not match</Message>"
             "<AWSAccessKeyId>AKIAEXAMPLE</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256\n"
             "20240101T000000Z</StringToSign><SignatureProvided>0123abcd</SignatureProvided>"
             "<CanonicalRequest>PUT\n/k\nX-Amz-Algorithm=AWS4-HMAC-SHA256&amp;X-Amz-Credential="
             "AKIAEXAMPLE%2F20240101%2Fus-east-1&amp;X-Amz-Date=20240101T000000Z\nhost:h"
             "</CanonicalRequest><CanonicalRequestBytes>50 55 54</CanonicalRequestBytes></Error>",
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch"
             "</Code><Message>The request signature we calculated does not match</Message>"
             "<AWSAccessKeyId>REDACTED</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256\n"
             "20240101T000000Z</StringToSign><SignatureProvided>REDACTED</SignatureProvided>"
             /* the canonical request S3 computed holds the signed headers'
              * values, a session token among them: all of it goes */
             "<CanonicalRequest>REDACTED"
             "</CanonicalRequest><CanonicalRequestBytes>REDACTED</CanonicalRequestBytes></Error>");
  /* A proxy echoing the request line; an element named like a parameter. */
  CHECK_TEXT("bad request: PUT /a?sig=SECRET&se=x HTTP/1.1",
             "bad request: PUT /a?sig=REDACTED&se=x HTTP/1.1");
  CHECK_TEXT("<X-Amz-Credential>AK/1</X-Amz-Credential><sig>s</sig>",
             "<X-Amz-Credential>REDACTED</X-Amz-Credential><sig>REDACTED</sig>");
  CHECK_TEXT("{\"error\": \"x\", \"access_token\" : \"ya29.abc\\\"d\", \"k\": 1}",
             "{\"error\": \"x\", \"access_token\" : \"REDACTED\", \"k\": 1}");
  CHECK_TEXT("see https://TOKEN@h/p and http://u:pw@h/", "see https://REDACTED@h/p and http://u:REDACTED@h/");
  CHECK_TEXT("X%2DAmz%2DSignature=abc def", "X%2DAmz%2DSignature=REDACTED def");
  CHECK_TEXT("an unclosed <Signature>abc", "an unclosed <Signature>REDACTED");
  CHECK_TEXT("nothing here: a=1 <b>2</b> \"c\": \"3\"", "nothing here: a=1 <b>2</b> \"c\": \"3\"");
  CHECK_TEXT("", "");
  /* NULs are kept, and do not stop the scan. */
  size_t n = 0;
  char *got = bk_redact_text("a\0sig=S", 7, &n);
  CU_ASSERT_EQUAL(n, 14);
  CU_ASSERT_EQUAL(memcmp(got, "a\0sig=REDACTED", 15), 0);
  bk_free(got);
}

static void test_content_types(void) {
  CU_ASSERT_STRING_EQUAL(bulkup_content_type_for(BULKUP_DATA_TYPE_IMAGE, "a/b.JPG"), "image/jpeg");
  CU_ASSERT_STRING_EQUAL(bulkup_content_type_for(BULKUP_DATA_TYPE_IMAGE, "x.jpeg"), "image/jpeg");
  CU_ASSERT_STRING_EQUAL(bulkup_content_type_for(BULKUP_DATA_TYPE_IMAGE, "x.png"), "image/png");
  CU_ASSERT_STRING_EQUAL(bulkup_content_type_for(BULKUP_DATA_TYPE_IMG_GROUP, "x.webp"), "image/webp");
  CU_ASSERT_STRING_EQUAL(bulkup_content_type_for(BULKUP_DATA_TYPE_IMAGE, "x.tiff"), "image/tiff");
  CU_ASSERT_STRING_EQUAL(bulkup_content_type_for(BULKUP_DATA_TYPE_IMAGE, "noext"), "application/octet-stream");
  CU_ASSERT_STRING_EQUAL(bulkup_content_type_for(BULKUP_DATA_TYPE_IMAGE, ".png"), "application/octet-stream");
  CU_ASSERT_STRING_EQUAL(bulkup_content_type_for(BULKUP_DATA_TYPE_IMAGE, "dir.png/file"), "application/octet-stream");
  CU_ASSERT_STRING_EQUAL(bulkup_content_type_for(BULKUP_DATA_TYPE_IMAGE, NULL), "application/octet-stream");
  CU_ASSERT_STRING_EQUAL(bulkup_content_type_for(BULKUP_DATA_TYPE_VIDEO, "a.mp4"), "application/octet-stream");
  CU_ASSERT_STRING_EQUAL(bulkup_content_type_for(BULKUP_DATA_TYPE_AUDIO, "a.mp3"), "application/octet-stream");
  CU_ASSERT_STRING_EQUAL(bulkup_content_type_for(BULKUP_DATA_TYPE_DICOM, "a.png"), "application/dicom");
  CU_ASSERT_STRING_EQUAL(bulkup_content_type_for(BULKUP_DATA_TYPE_DICOM_STUDY, "a"), "application/dicom");
  CU_ASSERT_STRING_EQUAL(bulkup_content_type_for(BULKUP_DATA_TYPE_PDF, "a"), "application/pdf");
  CU_ASSERT_STRING_EQUAL(bulkup_content_type_for(BULKUP_DATA_TYPE_PLAIN_TEXT, "a"), "text/plain");
  CU_ASSERT_STRING_EQUAL(bulkup_content_type_for(BULKUP_DATA_TYPE_MISSING, "a.png"), "application/octet-stream");
  CU_ASSERT_STRING_EQUAL(bulkup_error_kind_name(BULKUP_ERROR_TIMEOUT_WRITE), "timeout_write");
  CU_ASSERT_STRING_EQUAL(bulkup_error_kind_name(BULKUP_ERROR_RETRY_BUDGET), "retry_budget");
  CU_ASSERT_STRING_EQUAL(bulkup_error_kind_name((bulkup_error_kind)999), "unknown");
  CU_ASSERT_STRING_EQUAL(bulkup_item_status_name(BULKUP_ITEM_CANCELLED), "cancelled");
}

typedef struct qarg {
  bk_queue *q;
  int from, n;
} qarg;

static void *q_producer(void *arg) {
  qarg *a = arg;
  for (int i = a->from; i < a->from + a->n; i++)
    bk_queue_push(a->q, (void *)(intptr_t)(i + 1));
  return NULL;
}

static atomic_long q_sum;
static atomic_int q_count;

static void *q_consumer(void *arg) {
  bk_queue *q = arg;
  void *p;
  while ((p = bk_queue_pop(q))) {
    atomic_fetch_add(&q_sum, (long)(intptr_t)p);
    atomic_fetch_add(&q_count, 1);
  }
  return NULL;
}

static void test_queue_fifo_and_close(void) {
  bk_queue q;
  CU_ASSERT_EQUAL(bk_queue_init(&q, 0), BULKUP_EINVAL);
  CU_ASSERT_EQUAL_FATAL(bk_queue_init(&q, 3), BULKUP_OK);
  for (intptr_t i = 1; i <= 3; i++)
    CU_ASSERT_TRUE(bk_queue_push(&q, (void *)i));
  CU_ASSERT_EQUAL(bk_queue_length(&q), 3);
  CU_ASSERT_EQUAL((intptr_t)bk_queue_pop(&q), 1);
  CU_ASSERT_TRUE(bk_queue_push(&q, (void *)4));
  CU_ASSERT_EQUAL((intptr_t)bk_queue_pop(&q), 2);
  bk_queue_close(&q);
  CU_ASSERT_FALSE(bk_queue_push(&q, (void *)5));
  /* Closed queues drain before they return NULL. */
  CU_ASSERT_EQUAL((intptr_t)bk_queue_pop(&q), 3);
  CU_ASSERT_EQUAL((intptr_t)bk_queue_pop(&q), 4);
  CU_ASSERT_PTR_NULL(bk_queue_pop(&q));
  bk_queue_destroy(&q);
}

static void test_queue_threads_lose_nothing(void) {
  bk_queue q;
  CU_ASSERT_EQUAL_FATAL(bk_queue_init(&q, 4), BULKUP_OK);
  atomic_store(&q_sum, 0);
  atomic_store(&q_count, 0);
  pthread_t prod[3], cons[4];
  qarg args[3];
  for (int i = 0; i < 4; i++)
    pthread_create(&cons[i], NULL, q_consumer, &q);
  for (int i = 0; i < 3; i++) {
    args[i] = (qarg){&q, i * 10000, 10000};
    pthread_create(&prod[i], NULL, q_producer, &args[i]);
  }
  for (int i = 0; i < 3; i++)
    pthread_join(prod[i], NULL);
  bk_queue_close(&q);
  for (int i = 0; i < 4; i++)
    pthread_join(cons[i], NULL);
  CU_ASSERT_EQUAL(atomic_load(&q_count), 30000);
  /* sum of 1..30000 */
  CU_ASSERT_EQUAL(atomic_load(&q_sum), 30000L * 30001L / 2);
  bk_queue_destroy(&q);
}

static void reg(void) {
  bk_suite("engine-units", NULL, NULL);
  bk_test("classify statuses", test_classify_statuses);
  bk_test("classify curl codes", test_classify_curl_codes);
  bk_test("own aborts win", test_classify_own_aborts_win);
  bk_test("retry budget", test_budget);
  bk_test("redact", test_redact);
  bk_test("url identity", test_url_identity);
  bk_test("redact text", test_redact_text);
  bk_test("content types", test_content_types);
  bk_test("queue fifo and close", test_queue_fifo_and_close);
  bk_test("queue threads lose nothing", test_queue_threads_lose_nothing);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
