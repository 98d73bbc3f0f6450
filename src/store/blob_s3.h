/*
 * blob_s3: the S3 backend of the byte-stream blob interface (store/blob.h), over the
 * S3 client (store/s3.h). blob_open() picks it for an s3:// spec.
 */
#ifndef SHOEBOX_STORE_BLOB_S3_H
#define SHOEBOX_STORE_BLOB_S3_H

#include <stdint.h>

#include "base/err.h"
#include "store/blob.h"
#include "store/s3.h"

/* Incomplete multipart uploads older than this are a crashed writer's (remove_temps):
 * an 8 MB part takes well under a minute even on a slow uplink, so an upload an hour
 * old is no live writer's. */
#define BLOB_S3_STALE_UPLOAD_MS (3600 * 1000)
/* Bytes a reader fetches at once (and keeps) when asked for less: thumbnailing reads a
 * JPEG in 64 KB pieces, and one request per piece would cost a round trip each. */
#define BLOB_S3_READAHEAD (4u * 1024 * 1024)

/* The S3 backend over a client for cfg: writers buffer one part (cfg->part_size) and
 * switch to a multipart upload past it; readers do ranged GETs with read-ahead;
 * remove_temps aborts multipart uploads initiated more than stale_ms ago (pid is not
 * used: S3 uploads carry no pid). 0 and *out (free with ops->close), or -1 + err.
 * Thread-safe like s3.h: any thread may use the store; a reader or writer is used by one
 * thread at a time. */
int blob_s3_open(const struct s3_config *cfg, int64_t stale_ms, struct blob_store **out,
                 struct err *err);

#endif
