/* cloud/cloud.h - what src/cloud's files share: S3-compatible storage
 * (sigv4.c: SigV4 and the engine's signer; credentials.c: the AWS
 * credentials chain; s3url.c: s3:// and gs:// addressing). The public
 * side is include/bulkup/s3.h.
 *
 * Layering (scripts/check-layers): cloud calls util and net only; the
 * engine never calls cloud: a program installs bulkup_s3_sign_request as
 * options.sign_request. */
#ifndef BK_CLOUD_H
#define BK_CLOUD_H
#include "internal.h"
#endif
