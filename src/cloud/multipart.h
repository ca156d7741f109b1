/* cloud/multipart.h - the wire format of the two multipart protocols the
 * engine drives (src/engine/parts.c): S3 multipart upload
 * (s3_multipart.c) and Azure blocks (azure_blocks.c). Only strings here:
 * URLs, bodies, the few fields read from answers. Everything returned is
 * bk_malloc'ed (bk_free), NULL when out of memory. */
#ifndef BULKUP_CLOUD_MULTIPART_H
#define BULKUP_CLOUD_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

/* The object URL with `query` added ("?q" or "&q"). */
char *bk_url_with_query(const char *url, const char *query);

/* ---- S3 ---------------------------------------------------------------- */

/* CreateMultipartUpload: POST URL?uploads. */
char *bk_s3_create_url(const char *url);
/* UploadPart: PUT URL?partNumber=N&uploadId=ID (part numbers from 1). */
char *bk_s3_part_url(const char *url, unsigned part_number,
                     const char *upload_id);
/* CompleteMultipartUpload (POST) and AbortMultipartUpload (DELETE):
 * URL?uploadId=ID. */
char *bk_s3_upload_url(const char *url, const char *upload_id);
/* The UploadId of a CreateMultipartUpload answer's XML (the first n
 * bytes of it), unescaped; NULL when there is none. */
char *bk_s3_parse_upload_id(const char *xml, size_t n);
/* Whether an answer's XML is an <Error> (S3 may answer a Complete with
 * 200 and an error in the body). */
int bk_s3_body_is_error(const char *xml, size_t n);
/* The CompleteMultipartUpload body: the parts 1..n with their ETags, in
 * order, and with crcs (not NULL) each part's <ChecksumCRC32C> (its
 * CRC-32C as the part's x-amz-checksum-crc32c carried it: base64 of the
 * four bytes big-endian), as S3 requires of an upload created with
 * x-amz-checksum-algorithm: CRC32C. *len gets its length. */
char *bk_s3_complete_body(const char *const *etags, const char (*crcs)[9],
                          unsigned n, size_t *len);

/* ---- Azure --------------------------------------------------------------- */

/* The block ID of part `index` (from 0): base64 of the index as 6 decimal
 * digits, so every ID of a blob has the same length (8 characters, which
 * the service requires). `out` holds 9 bytes. */
void bk_azure_block_id(unsigned index, char out[9]);
/* Put Block: PUT URL&comp=block&blockid=ID (percent-encoded). */
char *bk_azure_block_url(const char *url, unsigned index);
/* Put Block List: PUT URL&comp=blocklist. */
char *bk_azure_blocklist_url(const char *url);
/* The Put Block List body naming blocks 0..n-1 as <Latest>, in order. */
char *bk_azure_blocklist_body(unsigned n, size_t *len);

#endif
