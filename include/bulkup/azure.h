/*
 * bulkup/azure.h - request headers a user adds to uploads, and Azure Blob
 * Storage destinations.
 *
 * Extra headers: bulkup_item.headers holds "Name: value" lines;
 * bulkup_header_check() is the check bulkup_uploader_submit() applies to
 * each of them, for programs that want to refuse bad input early (the
 * command-line tool does, naming the option or the manifest line).
 *
 * Azure: an item whose URL bulkup_azure_url() recognises (a host ending in
 * ".blob.core.windows.net", or a query holding both "sv=" and "sig=": a
 * SAS, which is how the Azurite emulator's path-style URLs
 * http://127.0.0.1:PORT/devstoreaccount1/CONTAINER/BLOB are recognised)
 * is sent as Azure's Put Blob wants it: with "x-ms-blob-type: BlockBlob"
 * and "x-ms-version: BULKUP_AZURE_VERSION", each unless the item's headers
 * already set it. Content-MD5 goes with options.content_md5 as for every
 * item (Azure checks it). The SAS's "sig" is a credential: it is redacted
 * in everything bulkup reports, logs or returns (bulkup_redact_url).
 * A 500 or 503 whose x-ms-error-code is ServerBusy, OperationTimedOut or
 * InternalError is retried; AuthenticationFailed, AuthorizationFailure and
 * AuthorizationPermissionMismatch never are (nor is any 403); the code is
 * part of the failure's message ("HTTP 403 AuthenticationFailed after 1
 * attempt").
 */
#ifndef BULKUP_AZURE_H
#define BULKUP_AZURE_H

#include <stdbool.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The x-ms-version bulkup sends to Azure (accepted by Azure and by
 * Azurite 3.35, the emulator the tests run). */
#define BULKUP_AZURE_VERSION "2023-11-03"

/*
 * bulkup_header_check - whether `line` may be sent as an extra request
 * header: NULL if so, else why not (static text, e.g. "the name is not a
 * token"). A line is "Name: value": the name an HTTP token (letters,
 * digits and !#$%&'*+-.^_`|~), then a colon, optional spaces or tabs, and
 * a value that is not empty and holds no control character but tab (no
 * CR, LF or NUL: they would end the header and start another). Host,
 * Content-Length, Transfer-Encoding and Expect (any case) are refused:
 * the transfer sets them. NULL `line` is refused.
 */
BULKUP_EXTERN const char *bulkup_header_check(const char *line);

/*
 * bulkup_azure_url - whether bulkup sends `url` as an Azure blob (see
 * above): its host ends in ".blob.core.windows.net" (any case), or its
 * query has both an "sv" and a "sig" parameter.
 */
BULKUP_EXTERN bool bulkup_azure_url(const char *url);

/*
 * bulkup_azure_resolve - the https URL of an az://ACCOUNT/CONTAINER/PATH
 * destination, signed with the SAS token `sas` (its leading '?' optional):
 *   https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH?SAS
 * With `endpoint` (not NULL or empty), the account's blob endpoint
 * replaces "https://ACCOUNT.blob.core.windows.net" (e.g. Azurite's
 * "http://127.0.0.1:10000/devstoreaccount1"; a trailing '/' is dropped).
 * PATH is used as it is written (percent-encoded already, as in a URL)
 * and may be empty only when `allow_empty_path` (a prefix for --to).
 * With `sas` NULL or empty, no query is added. *out is freed with
 * bulkup_free().
 *
 * Returns BULKUP_OK; BULKUP_EINVAL when `az` is not az://ACCOUNT/CONTAINER
 * with a non-empty account and container, holds a query, a fragment, a
 * space or a control character, or when `sas` or `endpoint` does
 * (bulkup_last_error_message() says which); BULKUP_ENOMEM.
 */
BULKUP_EXTERN bulkup_err bulkup_azure_resolve(const char *az, const char *sas,
                                              const char *endpoint,
                                              bool allow_empty_path,
                                              char **out);

#ifdef __cplusplus
}
#endif
#endif /* BULKUP_AZURE_H */
