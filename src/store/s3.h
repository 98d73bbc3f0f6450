/*
 * s3: a small client for S3-compatible object stores (AWS S3, Ceph RADOS Gateway,
 * MinIO, Garage, R2) over libcurl, signed with AWS Signature V4 (CURLOPT_AWS_SIGV4).
 * Path-style addressing only (ENDPOINT/BUCKET/KEY), which every server accepts.
 * It is what the S3 blob backend sits on; it knows nothing of blobs, photos or files.
 *
 * Keys given to and returned by these functions are relative to the configured prefix
 * (s3://bucket/PREFIX): "o/ab/abcd" is stored as "PREFIX/o/ab/abcd".
 *
 * Failures: requests that fail with 5xx, 429, a refused or reset connection or a
 * timeout are retried cfg.retries times with exponential backoff and jitter; then,
 * and for any other failure at once, the function returns -1 with a message naming
 * the operation, the key, the HTTP status and the S3 error Code and Message from the
 * response body ("... 403 SignatureDoesNotMatch: ..."). Errors after retries are
 * ERR_TRANSIENT, 4xx answers ERR_PERMANENT. The secret key is never logged or put in
 * an error.
 *
 * Threads: one struct s3 may be used by any number of threads at once. It keeps a pool
 * of curl easy handles (each with its own keep-alive connections); a request borrows
 * one for its duration. curl_global_init runs once, at the first s3_open().
 */
#ifndef SHOEBOX_STORE_S3_H
#define SHOEBOX_STORE_S3_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"

#define S3_BUCKET_MAX 64      /* S3 bucket names are 3-63 characters */
#define S3_PREFIX_MAX 512
#define S3_URL_MAX 512        /* the endpoint, scheme included */
#define S3_REGION_MAX 64
#define S3_KEYID_MAX 256      /* access key id and secret key */
#define S3_KEY_MAX 1024       /* S3's own limit on a whole key, prefix included */
#define S3_ETAG_MAX 72        /* quoted; a multipart ETag is "<32 hex>-<parts>" */
#define S3_UPLOAD_ID_MAX 256  /* multipart upload id as the server gave it */

/* Part size of multipart uploads: objects up to one part are one PutObject. */
#define S3_PART_SIZE_DEFAULT (8u * 1024 * 1024)
/* S3 refuses parts (but the last) under 5 MB, and objects over 10000 parts. */
#define S3_PART_SIZE_MIN (5u * 1024 * 1024)
#define S3_PARTS_MAX 10000
/* Retries after the first attempt, and the backoff: the n-th wait is drawn from
 * [d/2, d] with d = min(BACKOFF_MAX, BACKOFF << n). The default window (~6-12 s in all)
 * covers a restarting gateway or a load balancer failing over. */
#define S3_RETRIES_DEFAULT 6
#define S3_BACKOFF_MS_DEFAULT 200
#define S3_BACKOFF_MAX_MS_DEFAULT 4000

/* Everything a client needs; plain data (copy it freely). s3_config_parse fills it
 * with defaults; tests may change the tunables before s3_open. */
struct s3_config {
    char bucket[S3_BUCKET_MAX];
    char prefix[S3_PREFIX_MAX];     /* no leading or trailing '/'; may be empty */
    char endpoint[S3_URL_MAX];      /* http(s)://host[:port], no trailing '/' */
    char region[S3_REGION_MAX];
    char access_key[S3_KEYID_MAX];
    char secret_key[S3_KEYID_MAX];  /* never logged */
    size_t part_size;               /* >= S3_PART_SIZE_MIN */
    int retries;
    int backoff_ms;
    int backoff_max_ms;
    int connect_timeout_ms;
    int stall_seconds;              /* a transfer moving no byte this long is cut (retried) */
    int list_page;                  /* max-keys / max-uploads per page; 0: server default */
};

/* Parses url = s3://BUCKET[/PREFIX][?endpoint=URL&region=R] (query values may be
 * percent-encoded; unknown parameters are an error) with the given keys into cfg, with
 * defaults for the rest: region us-east-1, endpoint https://s3.REGION.amazonaws.com.
 * Keys must be non-empty (the caller reads SHOEBOX_S3_ACCESS_KEY or AWS_ACCESS_KEY_ID
 * through base/config). 0, or -1 + err (ERR_PERMANENT) naming what is wrong. */
int s3_config_parse(struct s3_config *cfg, const char *url, const char *access_key,
                    const char *secret_key, struct err *err);

struct s3;

/* A client for cfg (copied). 0 and *out (free with s3_free), or -1 + err. */
int s3_open(const struct s3_config *cfg, struct s3 **out, struct err *err);
void s3_free(struct s3 *s3);
/* The configuration the client was opened with (borrowed, lives as long as s3). */
const struct s3_config *s3_config(const struct s3 *s3);

struct s3_object {
    uint64_t size;
    char etag[S3_ETAG_MAX];  /* as the server sent it, quotes included */
    int64_t mtime_ms;        /* Last-Modified, ms since the epoch; 0 when unknown */
};

/* Bytes for uploads: returns bytes put into buf (at most n), 0 at the end, -1 to fail
 * the upload (the callback fills its own error; the upload fails with "read failed"). */
typedef ssize_t (*s3_read_fn)(void *ctx, void *buf, size_t n);
/* Bytes of downloads, in order: 0 to go on, -1 to stop (the call then fails). */
typedef int (*s3_write_fn)(void *ctx, const void *p, size_t n);

/* PutObject of n bytes from memory (signed with their SHA-256). Replaces key. */
int s3_put(struct s3 *s3, const char *key, const void *p, size_t n, struct err *err);
/* Stores everything read until it returns 0 under key: one PutObject when it fits in a
 * part, else a multipart upload (aborted when anything fails). Holds one part in
 * memory at a time. The object appears only when complete. */
int s3_put_stream(struct s3 *s3, const char *key, s3_read_fn read, void *ctx,
                  struct err *err);

/* GetObject of len bytes from off (len UINT64_MAX: to the end) into write. 0 (info,
 * when not NULL, has the whole object's size, ETag and mtime), 1 when key does not
 * exist (write not called), -1 + err. A range starting at or past the end gives 0 and
 * no bytes. A connection cut mid-body is resumed from the next byte (If-Match on the
 * ETag keeps the pieces of one object). */
int s3_get(struct s3 *s3, const char *key, uint64_t off, uint64_t len, s3_write_fn write,
           void *ctx, struct s3_object *info, struct err *err);
/* HeadObject: 0 and *info, 1 when key does not exist, -1 + err. */
int s3_head(struct s3 *s3, const char *key, struct s3_object *info, struct err *err);
/* DeleteObject: 0 also when key did not exist. */
int s3_delete(struct s3 *s3, const char *key, struct err *err);

/* ListObjectsV2 of the keys under prefix (relative; "" for all), every page: cb gets
 * each key (relative, borrowed for the call) with its size, ETag and mtime. */
typedef void (*s3_list_fn)(void *ctx, const char *key, const struct s3_object *obj);
int s3_list(struct s3 *s3, const char *prefix, s3_list_fn cb, void *ctx, struct err *err);

/* --- presigned URLs (SigV4 query signing; no request is made) --- */

/* SigV4's bound on X-Amz-Expires: seven days. */
#define S3_PRESIGN_MAX_SECONDS 604800

/* A query parameter of a presigned URL, raw (the signer encodes it). */
struct s3_param {
    const char *name, *value;
};

/* The query string of a presigned request (AWS SigV4, "Authentication Using Query
 * Parameters"): X-Amz-Algorithm, -Credential, -Date, -Expires, -SignedHeaders=host and the
 * extra parameters, sorted and encoded, then X-Amz-Signature. Only the Host header is
 * signed and the payload is UNSIGNED-PAYLOAD. host is the Host header as the client will
 * send it ("examplebucket.s3.amazonaws.com", "127.0.0.1:7480"), path the request path
 * already percent-encoded ("/bucket/o/ab/abcd"), time_s the signing time (seconds since
 * the epoch). 0, or -1 + err when expires_s is outside 1..S3_PRESIGN_MAX_SECONDS or the
 * result does not fit in n bytes. A pure function: the AWS documentation's example is
 * its unit test. */
int s3_presign_query(const char *method, const char *host, const char *path, const char *region,
                     const char *access_key, const char *secret_key, int64_t time_s,
                     int expires_s, const struct s3_param *extra, size_t nextra, char *out,
                     size_t n, struct err *err);

/* A presigned GET URL of key (relative, under the prefix) on the client's endpoint,
 * path-style, valid expires_s seconds from time_s. content_type and disposition, when
 * not NULL, become response-content-type and response-content-disposition: the server
 * answers with those headers (a download keeps the user's file name). 0, or -1 + err
 * (ERR_PERMANENT) when it does not fit in n bytes. */
int s3_presign_get(const struct s3 *s3, const char *key, int64_t time_s, int expires_s,
                   const char *content_type, const char *disposition, char *out, size_t n,
                   struct err *err);

/* Multipart upload, step by step (s3_put_stream uses these). */
struct s3_part {
    int number;              /* 1..S3_PARTS_MAX */
    char etag[S3_ETAG_MAX];
};
int s3_mpu_create(struct s3 *s3, const char *key, char upload_id[S3_UPLOAD_ID_MAX],
                  struct err *err);
/* Uploads part->number of upload_id from memory; fills part->etag. */
int s3_mpu_part(struct s3 *s3, const char *key, const char *upload_id, struct s3_part *part,
                const void *p, size_t n, struct err *err);
/* Completes with parts in ascending number order; the object then appears. */
int s3_mpu_complete(struct s3 *s3, const char *key, const char *upload_id,
                    const struct s3_part *parts, size_t nparts, struct err *err);
/* Drops the upload and its parts; 0 also when it is already gone. */
int s3_mpu_abort(struct s3 *s3, const char *key, const char *upload_id, struct err *err);
/* ListMultipartUploads under prefix (relative), every page: cb gets each unfinished
 * upload's key (relative), id and initiation time (ms since the epoch; 0 unknown). */
typedef void (*s3_mpu_list_fn)(void *ctx, const char *key, const char *upload_id,
                               int64_t initiated_ms);
int s3_mpu_list(struct s3 *s3, const char *prefix, s3_mpu_list_fn cb, void *ctx,
                struct err *err);

#endif
