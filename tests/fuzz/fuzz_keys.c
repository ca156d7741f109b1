/* libFuzzer target: private key loading (PEM PKCS#8, OpenSSH). */
#include "internal.h"
#include "api/keys.h"

#include <openssl/evp.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  EVP_PKEY *k = NULL;
  if (bk_key_load_mem(data, size, &k) == BULKUP_OK) {
    if (!k || EVP_PKEY_get_id(k) != EVP_PKEY_ED25519)
      abort();
  } else if (k) {
    abort();
  }
  EVP_PKEY_free(k);
  return 0;
}
