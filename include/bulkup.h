/*
 * bulkup.h - the one header a program includes to use bulkup.
 *
 * bulkup uploads very large numbers of files to cloud storage (HTTP PUT to
 * signed URLs) with a pool of worker threads, retries with backoff, and a
 * complete failure report. See README.md for an overview.
 */
#ifndef BULKUP_H
#define BULKUP_H

#include "bulkup/common.h"
#include "bulkup/version.h"
#include "bulkup/settings.h"
#include "bulkup/data_type.h"
#include "bulkup/model.h"
#include "bulkup/report.h"
#include "bulkup/uploader.h"
#include "bulkup/journal.h"
#include "bulkup/shard.h"
#include "bulkup/api.h"
#include "bulkup/s3.h"
#include "bulkup/azure.h"

#endif /* BULKUP_H */
