/* Azure and extra headers, the pure parts: bulkup_header_check, Azure URL
 * recognition, az:// resolution, the x-ms-error-code classification, the
 * headers added to an Azure request, and the redaction of a SAS's sig in
 * URLs and in response excerpts. */
#include "bk_test.h"
#include "internal.h"
#include "cloud/azure.h"
#include "net/redact.h"
#include "retry.h"

static void test_header_check(void) {
  static const char *const good[] = {
      "x-ms-meta-owner: ana", "X-Custom:v", "a!#$%&'*+-.^_`|~z: tab\tok",
      "Cache-Control: no-cache", "Content-Type: text/plain; charset=utf-8",
      "x: \xc3\xa9t\xc3\xa9" /* obs-text bytes are not controls */};
  for (size_t i = 0; i < BK_ARRAY_LEN(good); i++)
    CU_ASSERT_PTR_NULL(bulkup_header_check(good[i]));
  static const char *const bad[] = {
      NULL, "", ": v", "no colon", "Bad Name: v", "x-a\xc3\xa9: v",
      "x(y): v", "x:", "x:   ", "x: a\r\nInjected: 1", "x: a\nb",
      "x: a\rb", "x: bell\a", "x: del\x7f", "Host: evil",
      "host: evil", "Content-Length: 1", "CONTENT-LENGTH: 1",
      "Transfer-Encoding: chunked", "Expect: 100-continue", "expect: x"};
  for (size_t i = 0; i < BK_ARRAY_LEN(bad); i++)
    CU_ASSERT_PTR_NOT_NULL(bulkup_header_check(bad[i]));
  /* Names that merely start like a reserved one are fine. */
  CU_ASSERT_PTR_NULL(bulkup_header_check("Hosts: x"));
  CU_ASSERT_PTR_NULL(bulkup_header_check("Expect-CT: x"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(bulkup_header_check("Host: x"), "cannot be overridden"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(bulkup_header_check("x: a\r\nb: c"), "line break"));
}

static void test_azure_url(void) {
  CU_ASSERT_TRUE(bulkup_azure_url("https://acct.blob.core.windows.net/c/b"));
  CU_ASSERT_TRUE(bulkup_azure_url("HTTPS://ACCT.BLOB.CORE.WINDOWS.NET/c/b"));
  CU_ASSERT_TRUE(bulkup_azure_url("https://acct.blob.core.windows.net./c/b"));
  CU_ASSERT_TRUE(
      bulkup_azure_url("https://u:p@acct.blob.core.windows.net:443/c/b"));
  CU_ASSERT_TRUE(bulkup_azure_url(
      "http://127.0.0.1:10000/devstoreaccount1/c/b?sv=2021-12-02&sr=c&sig=x"));
  CU_ASSERT_TRUE(bulkup_azure_url("http://h/c/b?SIG=x&SV=1"));
  CU_ASSERT_TRUE(bulkup_azure_url("http://h/c/b?s%76=1&sig=x"));
  /* Not Azure. */
  CU_ASSERT_FALSE(bulkup_azure_url(NULL));
  CU_ASSERT_FALSE(bulkup_azure_url("https://blob.core.windows.net/c/b"));
  CU_ASSERT_FALSE(
      bulkup_azure_url("https://acct.blob.core.windows.net.evil.com/c/b"));
  CU_ASSERT_FALSE(
      bulkup_azure_url("https://evil.com/acct.blob.core.windows.net"));
  CU_ASSERT_FALSE(
      bulkup_azure_url("https://evil.com/x?u=.blob.core.windows.net"));
  CU_ASSERT_FALSE(bulkup_azure_url("http://h/c/b?sig=x"));
  CU_ASSERT_FALSE(bulkup_azure_url("http://h/c/b?sv=1"));
  CU_ASSERT_FALSE(bulkup_azure_url("http://h/c/b?xsv=1&xsig=2"));
  CU_ASSERT_FALSE(bulkup_azure_url("http://h/c/b#sv=1&sig=2"));
  CU_ASSERT_FALSE(bulkup_azure_url("az://acct/c/b?sv=1&sig=2"));
  CU_ASSERT_FALSE(bulkup_azure_url(
      "https://storage.googleapis.com/b/o?X-Goog-Signature=1"));
}

static void expect_resolve(const char *az, const char *sas, const char *ep,
                           bool empty, const char *want) {
  char *out = NULL;
  bulkup_err rc = bulkup_azure_resolve(az, sas, ep, empty, &out);
  if (!want) {
    CU_ASSERT_EQUAL(rc, BULKUP_EINVAL);
    CU_ASSERT_PTR_NULL(out);
    return;
  }
  CU_ASSERT_EQUAL(rc, BULKUP_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  CU_ASSERT_STRING_EQUAL(out, want);
  bulkup_free(out);
}

static void test_azure_resolve(void) {
  expect_resolve(
      "az://acct/cont/dir/a%20b.jpg", "sv=1&sig=S", NULL, false,
      "https://acct.blob.core.windows.net/cont/dir/a%20b.jpg?sv=1&sig=S");
  expect_resolve("az://acct/cont/x", "?sv=1&sig=S", NULL, false,
                 "https://acct.blob.core.windows.net/cont/x?sv=1&sig=S");
  expect_resolve("AZ://acct/cont/x", "sv=1&sig=S",
                 "http://127.0.0.1:10000/devstoreaccount1/", false,
                 "http://127.0.0.1:10000/devstoreaccount1/cont/x?sv=1&sig=S");
  expect_resolve("az://acct/cont", NULL, NULL, true,
                 "https://acct.blob.core.windows.net/cont/");
  expect_resolve("az://acct/cont/", NULL, NULL, true,
                 "https://acct.blob.core.windows.net/cont/");
  expect_resolve("az://acct/cont", "sv=1&sig=S", NULL, false, NULL);
  expect_resolve("az://acct", "sv=1&sig=S", NULL, true, NULL);
  expect_resolve("az:///cont/x", "sv=1&sig=S", NULL, false, NULL);
  expect_resolve("az://acct//x", "sv=1&sig=S", NULL, false, NULL);
  expect_resolve("az://acct/cont/x?sv=1", "sv=1&sig=S", NULL, false, NULL);
  expect_resolve("az://acct/cont/x#f", "sv=1&sig=S", NULL, false, NULL);
  expect_resolve("az://acct/cont/a b", "sv=1&sig=S", NULL, false, NULL);
  expect_resolve("az://acct/cont/x", "sv=1&sig=S\r\nHost: y", NULL, false,
                 NULL);
  expect_resolve("az://acct/cont/x", "sv=1&sig=S", "ftp://h/acct", false,
                 NULL);
  expect_resolve("az://acct/cont/x", "sv=1&sig=S", "http://h/a?q", false,
                 NULL);
  expect_resolve("https://acct/cont/x", "sv=1&sig=S", NULL, false, NULL);
  char *out = (char *)"untouched";
  CU_ASSERT_EQUAL(bulkup_azure_resolve(NULL, NULL, NULL, false, &out),
                  BULKUP_EINVAL);
  CU_ASSERT_PTR_NULL(out);
  CU_ASSERT_EQUAL(bulkup_azure_resolve("az://a/c/b", NULL, NULL, false, NULL),
                  BULKUP_EINVAL);
}

static bk_verdict classify_code(int status, const char *code) {
  bulkup_error_kind k;
  bk_outcome o = {.curl = CURLE_OK, .http_status = status, .connected = true,
                  .error_code = code};
  bk_verdict v = bk_classify(&o, &k);
  CU_ASSERT_EQUAL(k, BULKUP_ERROR_HTTP_STATUS);
  return v;
}

static void test_error_codes(void) {
  CU_ASSERT_EQUAL(bk_azure_error_transient("ServerBusy"), 1);
  CU_ASSERT_EQUAL(bk_azure_error_transient("OperationTimedOut"), 1);
  CU_ASSERT_EQUAL(bk_azure_error_transient("InternalError"), 1);
  CU_ASSERT_EQUAL(bk_azure_error_transient("AuthenticationFailed"), 0);
  CU_ASSERT_EQUAL(bk_azure_error_transient("AuthorizationFailure"), 0);
  CU_ASSERT_EQUAL(bk_azure_error_transient("AuthorizationPermissionMismatch"),
                  0);
  CU_ASSERT_EQUAL(bk_azure_error_transient("serverbusy"), -1);
  CU_ASSERT_EQUAL(bk_azure_error_transient("BlobNotFound"), -1);
  CU_ASSERT_EQUAL(bk_azure_error_transient(""), -1);
  CU_ASSERT_EQUAL(bk_azure_error_transient(NULL), -1);

  CU_ASSERT_EQUAL(classify_code(503, "ServerBusy"), BK_RETRY);
  CU_ASSERT_EQUAL(classify_code(500, "OperationTimedOut"), BK_RETRY);
  CU_ASSERT_EQUAL(classify_code(500, "InternalError"), BK_RETRY);
  /* A code that says the credentials are wrong ends it, even on a 5xx. */
  CU_ASSERT_EQUAL(classify_code(500, "AuthenticationFailed"), BK_FAIL);
  CU_ASSERT_EQUAL(classify_code(503, "AuthorizationFailure"), BK_FAIL);
  /* A 403 stays permanent, whatever the code says. */
  CU_ASSERT_EQUAL(classify_code(403, "AuthenticationFailed"), BK_FAIL);
  CU_ASSERT_EQUAL(classify_code(403, "ServerBusy"), BK_FAIL);
  CU_ASSERT_EQUAL(classify_code(403, "AuthorizationPermissionMismatch"),
                  BK_FAIL);
  /* A transient code on a 4xx does not make it transient. */
  CU_ASSERT_EQUAL(classify_code(400, "InternalError"), BK_FAIL);
  /* Unknown codes and none: the status decides. */
  CU_ASSERT_EQUAL(classify_code(503, "SomethingNew"), BK_RETRY);
  CU_ASSERT_EQUAL(classify_code(500, ""), BK_RETRY);
  CU_ASSERT_EQUAL(classify_code(500, NULL), BK_RETRY);
  CU_ASSERT_EQUAL(classify_code(404, "BlobNotFound"), BK_FAIL);
  CU_ASSERT_EQUAL(classify_code(429, NULL), BK_RETRY);
}

static size_t slist_len(const struct curl_slist *h) {
  size_t n = 0;
  for (; h; h = h->next)
    n++;
  return n;
}

static void test_add_headers(void) {
  bool ok = true;
  struct curl_slist *h = bk_azure_add_headers(NULL, NULL, true, &ok);
  CU_ASSERT_TRUE(ok);
  CU_ASSERT_EQUAL(slist_len(h), 2);
  CU_ASSERT_STRING_EQUAL(h->data, "x-ms-version: " BULKUP_AZURE_VERSION);
  CU_ASSERT_STRING_EQUAL(h->next->data, "x-ms-blob-type: BlockBlob");
  curl_slist_free_all(h);
  /* Put Block: the version only. */
  h = bk_azure_add_headers(NULL, NULL, false, &ok);
  CU_ASSERT_EQUAL(slist_len(h), 1);
  CU_ASSERT_STRING_EQUAL(h->data, "x-ms-version: " BULKUP_AZURE_VERSION);
  curl_slist_free_all(h);
  /* The user's own win (any case). */
  const char *const mine[] = {"X-MS-VERSION: 2021-12-02",
                              "x-ms-blob-type: AppendBlob", NULL};
  h = bk_azure_add_headers(NULL, mine, true, &ok);
  CU_ASSERT_PTR_NULL(h);
  const char *const one[] = {"x-ms-blob-type: PageBlob", NULL};
  h = bk_azure_add_headers(NULL, one, true, &ok);
  CU_ASSERT_EQUAL(slist_len(h), 1);
  CU_ASSERT_STRING_EQUAL(h->data, "x-ms-version: " BULKUP_AZURE_VERSION);
  curl_slist_free_all(h);
  CU_ASSERT_TRUE(ok);
  CU_ASSERT_TRUE(bk_headers_have(mine, "x-ms-version"));
  CU_ASSERT_FALSE(bk_headers_have(mine, "x-ms-versio"));
  CU_ASSERT_FALSE(bk_headers_have(NULL, "x-ms-version"));
}

static void test_sig_redacted(void) {
  const char *url = "http://127.0.0.1:1/devstoreaccount1/c/b?sv=2021-12-02"
                    "&sr=c&sp=rcw&se=2099-01-01&sig=SECRETSIG%2Babc%3D";
  char *r = bulkup_redact_url(url);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_PTR_NULL(strstr(r, "SECRETSIG"));
  CU_ASSERT_PTR_NOT_NULL(strstr(r, "sv=2021-12-02"));
  bulkup_free(r);
  /* The response-excerpt path: a body that echoes the URL or the sig. */
  const char body[] =
      "<Error><Code>AuthenticationFailed</Code><Message>url "
      "https://a.blob.core.windows.net/c/b?sv=1&amp;sig=SECRETSIG%2Babc%3D "
      "and /c/b?sv=1&sig=SECRETSIG2</Message></Error>";
  size_t n = 0;
  char *t = bk_redact_text(body, sizeof body - 1, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  CU_ASSERT_PTR_NULL(strstr(t, "SECRETSIG"));
  CU_ASSERT_PTR_NOT_NULL(strstr(t, "AuthenticationFailed"));
  bk_free(t);
}

static void reg(void) {
  bk_suite("azure-units", NULL, NULL);
  bk_test("header check", test_header_check);
  bk_test("azure url", test_azure_url);
  bk_test("az:// resolve", test_azure_resolve);
  bk_test("x-ms-error-code", test_error_codes);
  bk_test("azure headers", test_add_headers);
  bk_test("sig redacted", test_sig_redacted);
}

int main(int argc, char **argv) { return bk_test_main(argc, argv, reg); }
