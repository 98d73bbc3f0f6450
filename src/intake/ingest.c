/*
 * ingest: see ingest.h.
 *
 * A part's life (pstate), and who moves it:
 *
 *   part_begin ──> P_OK ──part_data (over max)──────> P_TOO_LARGE   ─┐
 *                   │  ──part_data (sniff: no)───────> P_UNSUPPORTED ─┤ spool removed at once,
 *                   │  ──part_data (open/write err)──> P_IO_FAILED   ─┤ later data dropped
 *                   │                                                 │
 *                   └──part_end: sniff, fsync, record RECEIVED        └─> part_end: record FAILED
 *
 * The spool file is opened lazily on the first byte, so the empty part a
 * browser sends for an unused file input never touches the disk.
 */
#include "intake/ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/limits.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/sha256.h"
#include "base/str.h"
#include "base/timeutil.h"
#include "base/xalloc.h"
#include "media/sniff.h"
#include "store/blob.h"
#include "store/store.h"

#define SPOOL_DIR "spool"
/* Bytes of the display name quoted in messages (fits ERR_MSG_MAX with text). */
#define MSG_NAME_MAX 120
#define OPEN_TRIES 8
/* A transient store failure (busy, I/O, a failed commit) while recording a file
 * is tried this often, pausing RECORD_PAUSE_MS * try, before the request fails:
 * one hiccup must not cost the files still to come in the body. */
#define RECORD_TRIES 3
#define RECORD_PAUSE_MS 50

enum pstate { P_OK, P_TOO_LARGE, P_UNSUPPORTED, P_IO_FAILED };

struct ingest {
    struct store *store;
    struct blob_store *blobs;
    char *data_dir;
    char *spool_dir;
    int64_t upload_id, user_id, max_file_size;
    struct err error; /* sticky: set once, never cleared */

    /* the current part */
    bool part_open;
    bool has_filename;
    enum pstate pstate;
    struct err part_err; /* P_IO_FAILED: why */
    char name[LIMIT_FILENAME_BYTES + 1];
    int fd; /* -1 until the first byte */
    char spool_rel[64];
    char spool_abs[4096];
    struct sha256 *sha;
    unsigned char *wbuf; /* INGEST_WRITE_BUF bytes not yet written to the spool */
    size_t wlen;
    int64_t size;
    unsigned char head[SNIFF_HEAD_BYTES];
    size_t head_len;
    bool sniffed;
    struct sniff_result sniff;
    const char *given_sha; /* ingest_adopt: the digest computed by the caller */
    char sha_hex[SHA256_HEX_LEN + 1]; /* the part's digest, once complete */
    char blob[BLOB_KEY_MAX];          /* the original's key, once handed off */

    /* progress */
    int64_t unreported;
    int64_t last_report_ms;

    struct ingest_stats stats;
    int64_t *ids;
    size_t nids, ids_cap;
};

/* ------------------------------------------------------- display helpers */

/* Length of the UTF-8 sequence at s (1..4) and its code point, or 0 when invalid. */
static size_t utf8_decode(const unsigned char *s, uint32_t *cp)
{
    size_t len;
    uint32_t c = s[0], min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        min = 0x80;
        c &= 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        min = 0x800;
        c &= 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

static bool is_unsafe(uint32_t cp)
{
    return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E || cp == 0x200F;
}

/* The part after the last '/' or '\' (browsers' "C:\fakepath\a.jpg"), unless empty. */
static const char *base_name(const char *in)
{
    const char *slash = strrchr(in, '/');
    const char *back = strrchr(in, '\\');
    const char *last = slash > back ? slash : back;

    return last && last[1] ? last + 1 : in;
}

void ingest_display_name(const char *in, char *out, size_t n)
{
    const unsigned char *p = (const unsigned char *)base_name(in ? in : "");
    size_t limit = n - 1 < LIMIT_FILENAME_BYTES ? n - 1 : LIMIT_FILENAME_BYTES;
    size_t o = 0;

    while (*p) {
        uint32_t cp = 0;
        size_t len = utf8_decode(p, &cp);
        bool bad = len == 0 || is_unsafe(cp);
        size_t outlen = bad ? 1 : len;
        if (o + outlen > limit)
            break;
        if (bad) {
            out[o++] = '?';
        } else {
            memcpy(out + o, p, len);
            o += len;
        }
        p += len ? len : 1;
    }
    out[o] = '\0';
    if (o == 0)
        snprintf(out, n, "unnamed");
}

/* The display name shortened for a message. */
static void msg_name(const struct ingest *ing, char out[MSG_NAME_MAX + 4])
{
    size_t len = strlen(ing->name);

    if (len <= MSG_NAME_MAX) {
        memcpy(out, ing->name, len + 1);
        return;
    }
    len = MSG_NAME_MAX;
    while (len > 0 && ((unsigned char)ing->name[len] & 0xC0) == 0x80)
        len--;
    memcpy(out, ing->name, len);
    memcpy(out + len, "...", 4);
}

/* -------------------------------------------------------------- progress */

static void report_bytes(struct ingest *ing, bool force)
{
    int64_t now = time_mono_ms();
    struct err e = {0};

    if (ing->unreported == 0 || (!force && now - ing->last_report_ms < INGEST_REPORT_MS))
        return;
    /* Progress is advisory: a failed update is retried with the next one. */
    if (ing->store->ops->upload_add_bytes(ing->store, ing->upload_id, ing->unreported,
                                          time_now_ms(), &e)) {
        log_warn("intake", "upload.bytes", "upload=%lld msg=%s", (long long)ing->upload_id,
                 LOG_Q(e.msg));
        return;
    }
    metrics_add(METRICS_BYTES_RECEIVED, (uint64_t)ing->unreported);
    ing->unreported = 0;
    ing->last_report_ms = now;
}

/* ----------------------------------------------------------------- spool */

static void drop_spool(struct ingest *ing)
{
    struct err e = {0};

    ing->wlen = 0;
    if (ing->fd >= 0 && close(ing->fd) < 0)
        log_warn("intake", "spool.close", "path=%s errno=%d", ing->spool_rel, errno);
    ing->fd = -1;
    if (ing->spool_rel[0] && fs_unlink(ing->spool_abs, &e))
        log_warn("intake", "spool.unlink", "path=%s msg=%s", ing->spool_rel, LOG_Q(e.msg));
    ing->spool_rel[0] = '\0';
}

static void io_failed(struct ingest *ing, int errnum, const char *what)
{
    char nm[MSG_NAME_MAX + 4];
    const char *why = errnum == ENOSPC || errnum == EDQUOT ? "disk full" : strerror(errnum);

    msg_name(ing, nm);
    err_set(&ing->part_err, ERR_TRANSIENT, "receive", "cannot store '%s': %s%s", nm, what, why);
    ing->part_err.sys_errno = errnum;
    ing->pstate = P_IO_FAILED;
    drop_spool(ing);
}

static int open_spool(struct ingest *ing)
{
    for (int i = 0; i < OPEN_TRIES; i++) {
        unsigned char rnd[12];
        char hex[sizeof(rnd) * 2 + 1];
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
            io_failed(ing, errno ? errno : EIO, "no randomness: ");
            return -1;
        }
        str_hex(rnd, sizeof(rnd), hex);
        snprintf(ing->spool_rel, sizeof(ing->spool_rel), SPOOL_DIR "/%lld-%s",
                 (long long)ing->upload_id, hex);
        if ((size_t)snprintf(ing->spool_abs, sizeof(ing->spool_abs), "%s/%s", ing->data_dir,
                             ing->spool_rel) >= sizeof(ing->spool_abs)) {
            ing->spool_rel[0] = '\0';
            io_failed(ing, ENAMETOOLONG, "");
            return -1;
        }
        ing->fd = open(ing->spool_abs, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (ing->fd >= 0)
            return 0;
        if (errno != EEXIST) {
            int saved = errno;
            ing->spool_rel[0] = '\0';
            io_failed(ing, saved, "");
            return -1;
        }
    }
    ing->spool_rel[0] = '\0';
    io_failed(ing, EEXIST, "");
    return -1;
}

/* ---------------------------------------------------------------- record */

/* upload_add_file, again while the failure is transient (a failed transaction
 * rolls back, so a retry cannot record the file twice). 0, STORE_EXISTS or -1. */
static int add_file(struct ingest *ing, const struct store_file_new *f, int64_t *id,
                    struct err *e)
{
    for (int i = 1;; i++) {
        err_clear(e);
        int rc = ing->store->ops->upload_add_file(ing->store, f, time_now_ms(), id, e);
        if (rc >= 0)
            return rc;
        if (e->cls != ERR_TRANSIENT || i == RECORD_TRIES)
            return -1;
        log_warn("intake", "file.record_retry", "upload=%lld name=%s try=%d msg=%s",
                 (long long)ing->upload_id, LOG_Q(ing->name), i, LOG_Q(e->msg));
        time_sleep_ms(RECORD_PAUSE_MS * i);
    }
}

static int record(struct ingest *ing, bool failed, const struct err *why)
{
    struct store_file_new f = {0};
    struct err e = {0};
    int64_t id = 0;

    f.upload_id = ing->upload_id;
    f.user_id = ing->user_id;
    f.name = ing->name;
    f.sha256 = failed ? "" : ing->sha_hex;
    f.format = !failed && ing->sniffed ? ing->sniff.name : "";
    /* The bytes a RECEIVED file holds: its original in the blob store. */
    f.spool = failed ? "" : ing->blob;
    f.size = ing->size;
    f.failed = failed;
    f.error = why;
    int rc = add_file(ing, &f, &id, &e);
    if (rc < 0) {
        err_set(&ing->error, e.cls ? e.cls : ERR_TRANSIENT, "store", "cannot record '%s': %s",
                ing->name, e.msg);
        return -1;
    }
    /* RECEIVED: the blob store holds the bytes, the spool copy was a buffer. STORE_EXISTS:
     * sent again after a cut-off request, the store has it already. */
    if (!failed)
        drop_spool(ing);
    if (rc != STORE_EXISTS)
        metrics_add(failed ? METRICS_FILES_FAILED : METRICS_FILES_RECEIVED, 1);
    if (ing->nids == ing->ids_cap) {
        ing->ids_cap = ing->ids_cap ? ing->ids_cap * 2 : 16;
        ing->ids = xrealloc(ing->ids, ing->ids_cap * sizeof(*ing->ids));
    }
    ing->ids[ing->nids++] = id;
    if (failed) {
        ing->stats.failed++;
        log_info("intake", "file.failed", "upload=%lld file=%lld name=%s size=%lld stage=%s msg=%s",
                 (long long)ing->upload_id, (long long)id, LOG_Q(ing->name), (long long)ing->size,
                 why->stage, LOG_Q(why->msg));
    } else {
        ing->stats.received++;
        log_info("intake", "file.received", "upload=%lld file=%lld name=%s size=%lld format=%s",
                 (long long)ing->upload_id, (long long)id, LOG_Q(ing->name), (long long)ing->size,
                 ing->sniff.name);
    }
    return 0;
}

/* Records the part FAILED with the message "unsupported format: <what>". */
static int record_unsupported(struct ingest *ing, const char *what)
{
    struct err why = {0};

    err_set(&why, ERR_PERMANENT, "sniff", "unsupported format: %s", what);
    drop_spool(ing);
    return record(ing, true, &why);
}

static int record_too_large(struct ingest *ing)
{
    char nm[MSG_NAME_MAX + 4], limit[32];
    struct err why = {0};

    msg_name(ing, nm);
    str_format_size(ing->max_file_size, limit, sizeof(limit));
    err_set(&why, ERR_PERMANENT, "receive", "'%s' is larger than %s", nm, limit);
    drop_spool(ing);
    return record(ing, true, &why);
}

/* fsync the file and its directory entry, then close; P_IO_FAILED on error. */
static int make_durable(struct ingest *ing)
{
    struct err e = {0};
    int fd = ing->fd;

    if (fs_fsync(fd, &e) || fs_fsync_dir(ing->spool_dir, &e)) {
        io_failed(ing, e.sys_errno ? e.sys_errno : EIO, "");
        return -1;
    }
    ing->fd = -1;
    if (close(fd) < 0) {
        io_failed(ing, errno, "");
        return -1;
    }
    return 0;
}

/* Write the gathered bytes to the spool (opened on the first flush) and hash them. */
static int flush_spool(struct ingest *ing)
{
    struct err e = {0};

    if (ing->wlen == 0)
        return 0;
    if (ing->fd < 0 && open_spool(ing))
        return -1;
    if (fs_write_all(ing->fd, ing->wbuf, ing->wlen, &e)) {
        io_failed(ing, e.sys_errno ? e.sys_errno : EIO, "");
        return -1;
    }
    sha256_update(ing->sha, ing->wbuf, ing->wlen);
    ing->wlen = 0;
    return 0;
}

/* The hand-off: the complete, durable spool file goes into the blob store as the
 * original (key of its SHA-256) before the file is recorded and acknowledged.
 * Local blobs on the same file system: a link. P_IO_FAILED on error. */
static int hand_off(struct ingest *ing)
{
    struct err e = {0};
    char nm[MSG_NAME_MAX + 4];

    if (ing->given_sha)
        snprintf(ing->sha_hex, sizeof(ing->sha_hex), "%s", ing->given_sha);
    else
        sha256_final_hex(ing->sha, ing->sha_hex);
    blob_key(ing->sha_hex, BLOB_ORIGINAL, ing->blob);
    if (blob_put_file(ing->blobs, ing->blob, ing->spool_abs, &e) == 0)
        return 0;
    msg_name(ing, nm);
    err_set(&ing->part_err, e.cls ? e.cls : ERR_TRANSIENT, "receive",
            "cannot store '%s': %s", nm, e.msg);
    ing->pstate = P_IO_FAILED;
    drop_spool(ing);
    return -1;
}

/* A complete, supported part: hand it off, then record it RECEIVED. */
static int record_received(struct ingest *ing)
{
    if (hand_off(ing))
        return record(ing, true, &ing->part_err);
    return record(ing, false, NULL);
}

static int end_ok_part(struct ingest *ing)
{
    char detected[sizeof(ing->sniff.detected)];

    if (ing->size == 0 && !ing->has_filename) {
        ing->stats.ignored++;
        return 0;
    }
    if (ing->size == 0)
        return record_unsupported(ing, "empty file");
    if (!ing->sniffed) {
        sniff_bytes(ing->head, ing->head_len, &ing->sniff);
        ing->sniffed = true;
    }
    if (!ing->sniff.supported) {
        memcpy(detected, ing->sniff.detected, sizeof(detected));
        return record_unsupported(ing, detected);
    }
    if (flush_spool(ing) || make_durable(ing))
        return record(ing, true, &ing->part_err);
    if (record_received(ing)) {
        drop_spool(ing);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------- API */

struct ingest *ingest_new(const struct ingest_opts *o, struct err *err)
{
    struct ingest *ing;

    if (!o || !o->store || !o->blobs || !o->data_dir || !o->data_dir[0] || o->max_file_size <= 0) {
        err_set(err, ERR_PERMANENT, "receive", "invalid ingest options");
        return NULL;
    }
    ing = xcalloc(1, sizeof(*ing));
    ing->store = o->store;
    ing->blobs = o->blobs;
    ing->data_dir = xstrdup(o->data_dir);
    ing->spool_dir = xasprintf("%s/%s", o->data_dir, SPOOL_DIR);
    ing->upload_id = o->upload_id;
    ing->user_id = o->user_id;
    ing->max_file_size = o->max_file_size;
    ing->fd = -1;
    ing->sha = sha256_new();
    ing->wbuf = xmalloc(INGEST_WRITE_BUF);
    ing->last_report_ms = time_mono_ms();
    if (fs_mkdir_p(ing->spool_dir, 0700, err)) {
        ingest_free(ing);
        return NULL;
    }
    return ing;
}

int ingest_part_begin(struct ingest *ing, const char *client_filename, const char *content_type)
{
    (void)content_type;
    if (ing->part_open && ingest_part_end(ing))
        return -1;
    if (err_is_set(&ing->error))
        return -1;
    ing->part_open = true;
    ing->has_filename = client_filename && client_filename[0];
    ingest_display_name(client_filename, ing->name, sizeof(ing->name));
    ing->pstate = P_OK;
    err_clear(&ing->part_err);
    ing->size = 0;
    ing->head_len = 0;
    ing->sniffed = false;
    ing->spool_rel[0] = '\0';
    ing->sha_hex[0] = '\0';
    ing->blob[0] = '\0';
    sha256_reset(ing->sha);
    return 0;
}

/* Keep the head; sniff as soon as it is full so unsupported data stops early. */
static void take_head(struct ingest *ing, const unsigned char *p, size_t len)
{
    size_t take = SNIFF_HEAD_BYTES - ing->head_len;

    if (take > len)
        take = len;
    memcpy(ing->head + ing->head_len, p, take);
    ing->head_len += take;
    if (ing->head_len == SNIFF_HEAD_BYTES && !ing->sniffed) {
        sniff_bytes(ing->head, ing->head_len, &ing->sniff);
        ing->sniffed = true;
        if (!ing->sniff.supported) {
            ing->pstate = P_UNSUPPORTED;
            drop_spool(ing);
        }
    }
}

int ingest_part_data(struct ingest *ing, const void *data, size_t len)
{

    if (err_is_set(&ing->error))
        return -1;
    if (!ing->part_open)
        return err_set(&ing->error, ERR_PERMANENT, "receive", "file data outside a part");
    if (ing->pstate != P_OK)
        return INGEST_SKIP;
    if (len == 0)
        return 0;
    ing->stats.bytes += (int64_t)len;
    ing->unreported += (int64_t)len;
    report_bytes(ing, false);
    if ((uint64_t)len > (uint64_t)(ing->max_file_size - ing->size)) {
        ing->size += (int64_t)len;
        ing->pstate = P_TOO_LARGE;
        drop_spool(ing);
        return INGEST_SKIP;
    }
    take_head(ing, data, len);
    if (ing->pstate != P_OK)
        return INGEST_SKIP;
    ing->size += (int64_t)len;
    /* The parser hands over data between CR bytes, ~100 bytes at a time in
     * JPEG data: gather it, so the spool sees one write per INGEST_WRITE_BUF. */
    while (len > 0) {
        size_t n = INGEST_WRITE_BUF - ing->wlen < len ? INGEST_WRITE_BUF - ing->wlen : len;
        memcpy(ing->wbuf + ing->wlen, data, n);
        ing->wlen += n;
        data = (const unsigned char *)data + n;
        len -= n;
        if (ing->wlen == INGEST_WRITE_BUF && flush_spool(ing))
            return INGEST_SKIP;
    }
    return 0;
}

int ingest_part_end(struct ingest *ing)
{
    int rc = 0;

    if (err_is_set(&ing->error))
        return -1;
    if (!ing->part_open)
        return 0;
    ing->part_open = false;
    switch (ing->pstate) {
    case P_TOO_LARGE: rc = record_too_large(ing); break;
    case P_IO_FAILED: rc = record(ing, true, &ing->part_err); break;
    case P_UNSUPPORTED: rc = record_unsupported(ing, ing->sniff.detected); break;
    case P_OK: rc = end_ok_part(ing); break;
    }
    drop_spool(ing);
    report_bytes(ing, false);
    return rc;
}

int ingest_finish(struct ingest *ing)
{
    ingest_abort(ing);
    return err_is_set(&ing->error) ? -1 : 0;
}

void ingest_abort(struct ingest *ing)
{
    if (ing->part_open) {
        log_info("intake", "file.aborted", "upload=%lld name=%s size=%lld", (long long)ing->upload_id,
                 LOG_Q(ing->name), (long long)ing->size);
        ing->part_open = false;
    }
    drop_spool(ing);
    report_bytes(ing, true);
}

void ingest_free(struct ingest *ing)
{
    if (!ing)
        return;
    ing->part_open = false;
    drop_spool(ing);
    sha256_free(ing->sha);
    free(ing->wbuf);
    free(ing->ids);
    free(ing->spool_dir);
    free(ing->data_dir);
    free(ing);
}

const struct err *ingest_error(const struct ingest *ing)
{
    return err_is_set(&ing->error) ? &ing->error : NULL;
}

void ingest_get_stats(const struct ingest *ing, struct ingest_stats *out)
{
    *out = ing->stats;
}

const int64_t *ingest_file_ids(const struct ingest *ing, size_t *n)
{
    *n = ing->nids;
    return ing->ids;
}

int ingest_adopt(struct ingest *ing, const char *client_filename, const char *spool_rel,
                 int64_t size, const char *sha_hex, int64_t *file_id)
{
    int fd, rc;
    ssize_t n;

    *file_id = 0;
    if (ingest_part_begin(ing, client_filename, NULL))
        return -1;
    snprintf(ing->spool_rel, sizeof(ing->spool_rel), "%s", spool_rel);
    snprintf(ing->spool_abs, sizeof(ing->spool_abs), "%s/%s", ing->data_dir, spool_rel);
    ing->has_filename = true;
    ing->size = size;
    ing->given_sha = sha_hex;
    ing->stats.bytes += size;
    fd = open(ing->spool_abs, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        io_failed(ing, errno, "");
    } else {
        n = read(fd, ing->head, sizeof(ing->head));
        if (n < 0)
            io_failed(ing, errno, "");
        else
            ing->head_len = (size_t)n;
        close(fd);
    }
    if (ing->pstate == P_OK && size > ing->max_file_size)
        ing->pstate = P_TOO_LARGE;
    ing->part_open = false;
    switch (ing->pstate) {
    case P_TOO_LARGE: rc = record_too_large(ing); break;
    case P_IO_FAILED: rc = record(ing, true, &ing->part_err); break;
    case P_UNSUPPORTED: rc = record_unsupported(ing, ing->sniff.detected); break;
    case P_OK:
    default:
        if (size == 0) {
            rc = record_unsupported(ing, "empty file");
            break;
        }
        sniff_bytes(ing->head, ing->head_len, &ing->sniff);
        ing->sniffed = true;
        if (!ing->sniff.supported) {
            char detected[sizeof(ing->sniff.detected)];
            memcpy(detected, ing->sniff.detected, sizeof(detected));
            rc = record_unsupported(ing, detected);
            break;
        }
        rc = record_received(ing);
        break;
    }
    ing->given_sha = NULL;
    if (rc == 0 && ing->nids > 0)
        *file_id = ing->ids[ing->nids - 1];
    ing->spool_rel[0] = '\0'; /* never unlink the caller's file on a store failure */
    return rc;
}
