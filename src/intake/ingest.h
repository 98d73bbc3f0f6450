/*
 * ingest: writes the files of one upload request to the spool and records
 * each one in the store, as its bytes complete. Knows nothing of
 * libmicrohttpd or multipart framing: the upload handler drives it from the
 * multipart callbacks (begin / data / end for each file part).
 *
 * Per file part:
 *   begin ──data*──> end
 *     - data is written to DATA/spool/<upload>-<random hex> (O_EXCL, 0600; the
 *       client's name never becomes a path), hashed (SHA-256) on the way, and
 *       its first SNIFF_HEAD_BYTES kept for sniffing;
 *     - end: sniff; supported -> fsync file and directory, then the hand-off:
 *       the bytes go into the blob store as the original (blob_key of the
 *       SHA-256; a link for a local store on the same file system), then
 *       upload_add_file(RECEIVED, spool = that blob key) and the spool file is
 *       removed: the spool is a buffer, the blob store the place of record;
 *       otherwise upload_add_file(FAILED, reason) and the spool is removed.
 *   Failures of one file (too large, unsupported, empty, disk full) are
 *   recorded for that file and the next part starts clean. Only a store
 *   failure (the file could not be recorded at all) is fatal: it is sticky,
 *   every later call returns -1 and ingest_error() tells why.
 *
 * Part outcomes (what ingest_part_end records):
 *   no filename and no bytes            -> ignored (a file input left empty)
 *   more than max_file_size bytes       -> FAILED receive "'a.jpg' is larger than 100 MB"
 *   write/fsync/open error              -> FAILED receive "cannot store 'a.jpg': disk full"
 *   the blob store refuses the bytes    -> FAILED receive "cannot store 'a.jpg': <why>"
 *   zero bytes                          -> FAILED sniff "unsupported format: empty file"
 *   sniff says unsupported              -> FAILED sniff "unsupported format: PDF document"
 *   otherwise                           -> RECEIVED (size, sha256, format, blob key)
 *
 * Not thread-safe: one ingest per request, driven by one thread at a time.
 */
#ifndef SHOEBOX_INTAKE_INGEST_H
#define SHOEBOX_INTAKE_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct store;
struct blob_store;

/* Bytes gathered before a write to the spool file (one buffer per request). */
#define INGEST_WRITE_BUF (256 * 1024)
/* How often bytes received are reported to the store (upload_add_bytes). */
#define INGEST_REPORT_MS 250

/* ingest_part_data result: the rest of this part is not wanted (too large,
 * unsupported, write failed). Map it to MULTIPART_SKIP. */
#define INGEST_SKIP 1

struct ingest_opts {
    struct store *store;  /* borrowed; outlives the ingest */
    const char *data_dir; /* copied; spool files go to data_dir/spool/ */
    int64_t upload_id, user_id;
    int64_t max_file_size; /* bytes; a file of exactly this size is accepted */
    struct blob_store *blobs; /* borrowed; where received originals go (the hand-off) */
};

struct ingest_stats {
    int64_t received; /* files recorded RECEIVED */
    int64_t failed;   /* files recorded FAILED */
    int64_t ignored;  /* empty parts without a filename */
    int64_t bytes;    /* file bytes passed to ingest_part_data */
};

struct ingest;

/*
 * New writer for one request; creates data_dir/spool/ (0700) when missing.
 * Returns NULL with err filled (stage "receive") when the directory cannot be
 * made or opts are invalid. Free with ingest_free().
 */
struct ingest *ingest_new(const struct ingest_opts *o, struct err *err);

/*
 * A file part starts. client_filename may be NULL (treated as "") and is
 * display text only: it is cut to LIMIT_FILENAME_BYTES and cleaned
 * (ingest_display_name). content_type is informational (formats come from
 * bytes) and may be NULL. A part still open is ended first (as by
 * ingest_part_end). Returns 0, or -1 on the sticky error.
 */
int ingest_part_begin(struct ingest *ing, const char *client_filename, const char *content_type);

/* Bytes of the current part. Returns 0, INGEST_SKIP when the rest of the part
 * will be dropped anyway (further data calls are cheap no-ops), or -1 on the
 * sticky error / without an open part. */
int ingest_part_data(struct ingest *ing, const void *data, size_t len);

/* The current part is complete: record its outcome (table above). Returns 0
 * (also when the file was recorded FAILED), or -1 on the sticky error. */
int ingest_part_end(struct ingest *ing);

/* The request body is complete: reports the bytes not yet reported. Returns 0
 * or -1 (sticky error). A part still open is aborted, not recorded. */
int ingest_finish(struct ingest *ing);

/* The client went away: the unfinished part's spool file is removed (nothing
 * is recorded for it); files already recorded stay. Safe to call twice. */
void ingest_abort(struct ingest *ing);

/* Aborts an unfinished part, closes everything. NULL-safe. */
void ingest_free(struct ingest *ing);

/* The sticky error, or NULL. Borrowed until ingest_free. */
const struct err *ingest_error(const struct ingest *ing);

void ingest_get_stats(const struct ingest *ing, struct ingest_stats *out);

/* Ids of the files recorded so far (RECEIVED and FAILED, in order); *n gets
 * the count. Borrowed until the next ingest call or ingest_free. */
const int64_t *ingest_file_ids(const struct ingest *ing, size_t *n);

/*
 * A client file name as display text into out (n > 0): invalid UTF-8 bytes,
 * control characters (C0, DEL, C1) and bidirectional overrides become '?',
 * then the text is cut to min(n - 1, LIMIT_FILENAME_BYTES) bytes without
 * splitting a character. An empty result becomes "unnamed".
 */
void ingest_display_name(const char *in, char *out, size_t n);

/*
 * The second door (tus): a file that is already complete and fsynced at
 * DATA/spool_rel (size bytes, SHA-256 sha_hex computed by the caller across
 * requests) is sniffed from its first bytes and recorded like a file part
 * that just ended (the table above): RECEIVED (handed off to the blob store;
 * the spool file is removed) or FAILED (the spool file is removed). *file_id gets the file's id.
 * Returns 0, or -1 on the sticky store error (the spool file is left alone).
 */
int ingest_adopt(struct ingest *ing, const char *client_filename, const char *spool_rel,
                 int64_t size, const char *sha_hex, int64_t *file_id);

#endif
