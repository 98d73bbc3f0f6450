/*
 * tus: the state of tus 1.0 uploads (resumable uploads), without HTTP. The
 * handler src/http/h_tus.c maps requests and answers onto these calls.
 *
 * On disk, one upload is two files under DATA/tus/ (not DATA/spool/, which
 * the start-up sweep empties of files the store does not know):
 *   <id>.bin   the bytes received so far (written at their offsets)
 *   <id>.info  a small text file, replaced atomically (temp, fsync, rename,
 *              fsync dir): length, offset, owner, Shoebox upload, expiry,
 *              file name and type, and the saved SHA-256 state of bytes
 *              [0, offset) (sha256.h: a plain struct that can be saved).
 * The offset in <id>.info is the only offset ever reported, and it is
 * written after fdatasync of <id>.bin: every byte below a reported offset
 * survives a crash. A PATCH commits (fsync + info) every TUS_COMMIT_BYTES,
 * at its end, and when it breaks off (keeping what arrived), unless it
 * carries Upload-Checksum: then its bytes count only once verified.
 *
 * When offset reaches length the file is complete: <id>.bin is fdatasynced
 * and recorded through ingest_adopt straight from DATA/tus/ (sniff, the
 * hand-off into the blob store, record RECEIVED; the batches take it like any
 * other file), which removes <id>.bin; the info then keeps "file <id>" so HEAD
 * still answers until the upload expires. That last info is written without
 * fsync (the row and the blob are what is acknowledged): a crash that loses
 * it leaves an info without its bytes, which is no upload (404: the client
 * sends the file again, recorded once), removed by the sweeper once expired.
 * Received bytes are counted in the store (upload_add_bytes) at most every
 * INGEST_REPORT_MS per Shoebox upload; the sweeper thread writes what was
 * gathered in between, and the rest at tus_free().
 *
 * Concurrency: one in-memory entry per upload id (refcounted), its mutex
 * held only around a write or a commit (never across a wait for the
 * network). A PATCH that starts while another is still writing takes the
 * upload over: the earlier request's bytes so far are committed (or, with a
 * checksum, dropped), its later bytes are refused and it ends with
 * TUS_SUPERSEDED (409). So a client whose old connection hangs half-dead
 * resumes at once instead of getting "423 locked"; nothing blocks and the
 * file is never written by two requests at the same offset. A HEAD while a
 * PATCH is writing takes the upload over the same way (its client asks HEAD
 * because it saw that PATCH break; the server may go on reading the broken
 * connection for many seconds): the offset a HEAD answers is final, and the
 * next PATCH from it never meets a 409 from bytes that arrived after it.
 *
 * Expiry: every upload expires expire_ms after its last PATCH; a sweeper
 * thread removes expired uploads' files (complete ones only lose their info
 * file; their bytes belong to the store). A partial one is a file its Shoebox
 * upload will never get: it is recorded there FAILED with the reason ("the
 * upload stopped at 3.2 MB of 10 MB and was not resumed within 24 h; send the
 * file again"), unless the upload already has that file (same name, all its
 * bytes: sent again through another tus upload).
 *
 * A tus file that can never complete ends as a recorded file at once, each in
 * one way: a creation over max_file_size is recorded FAILED (413); a deferred
 * length that goes over it (declared in a PATCH, or reached by the bytes) ends
 * the tus upload (later requests 404) and is recorded FAILED (413); a
 * termination lowers the upload's expected count; an expiry, above. The ones
 * that remove files count once: the call whose unlink removed the info file
 * records (or lowers), across a restart and processes sharing DATA/tus/; a
 * crash between the unlink and the store loses the record (the upload then
 * waits --upload-idle), never makes it twice.
 */
#ifndef SHOEBOX_INTAKE_TUS_H
#define SHOEBOX_INTAKE_TUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/limits.h"

struct store;
struct blob_store;
struct jobs;

#define TUS_ID_LEN 32
/* The first TUS_NODE_LEN hex digits of an id name the web node that holds the
 * upload's partial bytes (DATA/tus/node): a load balancer routes by them, and a
 * node asked about another node's upload says so (404). The other 24 digits
 * (96 random bits) keep ids unguessable. */
#define TUS_NODE_LEN 8
#define TUS_COMMIT_BYTES (8 * 1024 * 1024)
#define TUS_TYPE_MAX 128

enum tus_result {
    TUS_OK = 0,
    TUS_NOT_FOUND,   /* 404: no such upload, or another user's */
    TUS_GONE,        /* 410: expired, or its Shoebox upload is gone (err tells) */
    TUS_CONFLICT,    /* 409: Upload-Offset is not the upload's offset */
    TUS_SUPERSEDED,  /* 409: another PATCH took the upload over */
    TUS_TOO_LARGE,   /* 413: over Upload-Length or --max-file-size */
    TUS_BAD,         /* 400: e.g. Upload-Length given twice, different */
    TUS_CHECKSUM,    /* 460: the request's bytes did not match Upload-Checksum */
    TUS_ERROR,       /* 503: disk or store failure (err tells) */
};

struct tus_opts {
    struct store *store;   /* borrowed */
    struct blob_store *blobs; /* borrowed; completed files are handed off here (ingest) */
    struct jobs *jobs;     /* may be NULL; woken when a file completes */
    const char *data_dir;
    int64_t max_file_size;
    int64_t batch_size;
    int64_t expire_ms;     /* --tus-expire */
    int64_t sweep_ms;      /* sweeper period; 0 = min(expire_ms / 2, 60 s), at least 200 ms */
};

struct tus_info {
    char id[TUS_ID_LEN + 1];
    int64_t length;        /* -1 while deferred */
    int64_t offset;
    int64_t upload_id, user_id;
    int64_t created_ms, expires_ms;
    int64_t file_id;       /* > 0 once complete and recorded */
    char name[LIMIT_FILENAME_BYTES + 1];
    char type[TUS_TYPE_MAX + 1];
};

struct tus;
struct tus_write;

/* The Shoebox uploads the tus uploads in progress under DATA/tus/ point to
 * (not complete, not expired at now_ms), for the start-up sweep, which must
 * not drop them (jobs_opts.keep_uploads): *ids (free() it) and *n. Runs
 * before tus_new; a damaged info file is skipped. 0, or -1 (err) when the
 * directory cannot be read; a missing directory is no upload. */
int tus_upload_refs(const char *data_dir, int64_t now_ms, int64_t **ids, size_t *n,
                    struct err *err);

/* Makes DATA/tus/, starts the sweeper. NULL with err on failure. */
struct tus *tus_new(const struct tus_opts *o, struct err *err);
void tus_free(struct tus *t);
const struct tus_opts *tus_opts(const struct tus *t);

/* A new upload of user_id: length -1 = deferred. upload_id 0 opens a Shoebox
 * upload of its own (expected 1); otherwise it must be the user's
 * (TUS_NOT_FOUND). TUS_TOO_LARGE over max_file_size; with upload_id the refused
 * file is recorded there FAILED (the upload does not wait for it). */
enum tus_result tus_create(struct tus *t, int64_t user_id, int64_t length, int64_t upload_id,
                           const char *name, const char *type, struct tus_info *out,
                           struct err *err);

/* The upload's committed state (HEAD). A PATCH still writing is taken over
 * (its bytes so far committed, its later bytes refused: TUS_SUPERSEDED), so
 * the offset answered is the one the next PATCH must start at. */
enum tus_result tus_head(struct tus *t, const char *id, int64_t user_id, struct tus_info *out,
                         struct err *err);

/*
 * A PATCH starts at offset. new_length >= 0 sets a deferred length (TUS_BAD
 * if it differs from a known one or is below the offset; TUS_TOO_LARGE over
 * max_file_size, which ends the upload: its file is recorded FAILED in its
 * Shoebox upload, err says why, and the upload is gone). checksum_alg (NULL
 * = none) is "sha1", "sha256" or "md5" (the caller rejects others) and
 * checksum its raw expected digest. On TUS_OK *w is the writer; out is the
 * state before the request.
 */
enum tus_result tus_patch_begin(struct tus *t, const char *id, int64_t user_id, int64_t offset,
                                int64_t new_length, const char *checksum_alg,
                                const unsigned char *checksum, size_t checksum_len,
                                struct tus_write **w, struct tus_info *out, struct err *err);
/* Bytes of the body. Returns TUS_OK, or the sticky outcome (the rest is dropped).
 * Bytes of a deferred-length upload past max_file_size end it as above
 * (TUS_TOO_LARGE; tus_patch_end then gives the reason). */
enum tus_result tus_patch_data(struct tus_write *w, const void *data, size_t len);
/* The body is complete: verify, commit, complete the file when offset ==
 * length. out gets the new state. Frees w. */
enum tus_result tus_patch_end(struct tus_write *w, struct tus_info *out, struct err *err);
/* The body broke off: keep what arrived (commit) unless a checksum was
 * announced. Frees w. NULL-safe. */
void tus_patch_abort(struct tus_write *w);

/* Termination. A PATCH still writing is superseded (its later bytes refused).
 * An upload whose bytes are all there is a file of its Shoebox upload: recorded
 * if a crash cut that off (TUS_ERROR when the store cannot: nothing removed),
 * then only its tus files go. Otherwise its files are removed and the Shoebox
 * upload expects one file less (store upload_drop_expected): the call whose
 * unlink removed the info file counts it, so it counts at most once, across a
 * second DELETE, a restart, and processes sharing DATA/tus/. */
enum tus_result tus_delete(struct tus *t, const char *id, int64_t user_id, struct err *err);

/* Removes every upload whose expiry is before now_ms; *removed counts them.
 * A partial one is recorded FAILED in its Shoebox upload (see Expiry above);
 * a complete one whose recording a crash cut off is recorded first (kept for
 * the next sweep when the store cannot). The sweeper calls it; tests may too. */
int tus_sweep(struct tus *t, int64_t now_ms, int *removed);

/* This node's tag (TUS_NODE_LEN hex digits, kept in DATA/tus/node). */
const char *tus_node(const struct tus *t);

/* Is id a well-formed upload id (TUS_ID_LEN lower-case hex digits)? */
bool tus_id_ok(const char *id);

#endif
