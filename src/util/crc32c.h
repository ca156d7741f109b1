/* util/crc32c.h - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78),
 * the checksum of S3's x-amz-checksum-crc32c and GCS's x-goog-hash
 * crc32c (util/crc32c.c). Shared: part of bulkup_util. Cannot fail. */
#ifndef BK_UTIL_CRC32C_H
#define BK_UTIL_CRC32C_H
#include <stddef.h>
#include <stdint.h>
/* The CRC of `crc`'s data followed by n more bytes: start with 0, and
 * feed the pieces in order (bk_crc32c(bk_crc32c(0, a, na), b, nb) is the
 * CRC of a then b). */
uint32_t bk_crc32c(uint32_t crc, const void *data, size_t n);
/* The CRC as the headers carry it: its 4 bytes big-endian, in base64
 * (8 characters and a NUL). */
void bk_crc32c_base64(uint32_t crc, char out[9]);
#endif
